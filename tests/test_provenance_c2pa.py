"""C2PA signing and reading: a signed mp4 validates, a changed byte invalidates it, bad input is explained."""
import pytest
import torch

from comfyui_spacetime.core.errors import SpacetimeError
from comfyui_spacetime.provenance import c2pa_manifest as cm
from comfyui_spacetime.core.video import write_mp4

SHA = "ab" * 32


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    return cm.ensure_local_identity(tmp_path_factory.mktemp("config"))


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    frames = torch.rand(5, 16, 16, 3, generator=torch.Generator().manual_seed(0))
    return write_mp4(tmp_path_factory.mktemp("video") / "clip.mp4", frames, fps=8)


@pytest.fixture(scope="module")
def signed(identity, video, tmp_path_factory):
    cert, key = identity
    return cm.sign_video(video, tmp_path_factory.mktemp("out") / "signed.mp4", "tiny.safetensors", SHA,
                         prompt="a red ball", cert=cert, key=key)


def test_signed_video_validates_and_reports_the_manifest(signed):
    report = cm.read_provenance(signed)
    assert report.has_manifest and report.valid and not report.trusted
    assert report.failures == (cm.UNTRUSTED_CODE,)
    assert report.generation() == {"model": {"name": "tiny.safetensors", "sha256": SHA}, "prompt": "a red ball"}
    actions = cm._assertion(report.manifest, "c2pa.actions")["actions"]
    assert actions[0]["action"] == "c2pa.created"
    assert actions[0]["digitalSourceType"] == cm.TRAINED_ALGORITHMIC_MEDIA
    assert report.manifest["claim_generator_info"][0]["name"] == cm.PACK_NAME
    text = report.text()
    assert "VALID" in text and "a red ball" in text and "not on any trust list" in text


def test_one_changed_byte_of_video_data_is_reported_invalid(signed, tmp_path):
    data = bytearray(signed.read_bytes())
    data[data.find(b"mdat") + 64] ^= 0x01
    tampered = tmp_path / "tampered.mp4"
    tampered.write_bytes(bytes(data))
    report = cm.read_provenance(tampered)
    assert report.has_manifest and not report.valid
    assert "assertion.bmffHash.mismatch" in report.failures
    assert report.text().splitlines()[0].endswith("INVALID C2PA manifest")


def test_prompt_is_recorded_only_when_given(identity, video, tmp_path):
    dst = cm.sign_video(video, tmp_path / "s.mp4", "m.safetensors", SHA, cert=identity[0], key=identity[1])
    report = cm.read_provenance(dst)
    assert report.valid and "prompt" not in report.generation()
    assert "prompt: not recorded" in report.text()


def test_loras_are_recorded_beside_the_model(identity, video, tmp_path):
    loras = (("style.safetensors", "ab" * 32, 0.8),)
    dst = cm.sign_video(video, tmp_path / "l.mp4", "m.safetensors", SHA, cert=identity[0], key=identity[1],
                        loras=loras)
    report = cm.read_provenance(dst)
    assert report.valid and report.generation()["loras"] == [{"name": "style.safetensors", "sha256": "ab" * 32,
                                                              "strength": 0.8}]
    assert f"LoRA: style.safetensors at 0.8 sha256={'ab' * 32}" in report.text()
    with pytest.raises(SpacetimeError, match="not a sha256"):
        cm.sign_video(video, tmp_path / "x.mp4", "m", SHA, cert=identity[0], key=identity[1],
                      loras=(("style.safetensors", "12", 1.0),))


def test_local_identity_is_made_once_and_signs_by_default(video, tmp_path):
    chain, key = cm.ensure_local_identity(tmp_path)
    assert cm.ensure_local_identity(tmp_path) == (chain, key)
    assert chain.read_text().count("BEGIN CERTIFICATE") == 2 and key.stat().st_mode & 0o077 == 0
    dst = cm.sign_video(video, tmp_path / "d.mp4", "m", SHA, config_dir=tmp_path)
    assert cm.read_provenance(dst).valid


def test_signing_in_place(identity, video, tmp_path):
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(video.read_bytes())
    assert cm.sign_video(copy, copy, "m", SHA, cert=identity[0], key=identity[1]) == copy
    assert cm.read_provenance(copy).valid and list(tmp_path.iterdir()) == [copy]


def test_unsigned_video_has_no_manifest(video):
    report = cm.read_provenance(video)
    assert not report.has_manifest and "no C2PA manifest" in report.text()


def test_unreadable_certificate(identity, video, tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(SpacetimeError, match="could not read the certificate"):
        cm.sign_video(video, tmp_path / "x.mp4", "m", SHA, cert=bad, key=identity[1])


def test_wrong_key(identity, video, tmp_path):
    _, other_key = cm.ensure_local_identity(tmp_path / "other")
    with pytest.raises(SpacetimeError, match="does not belong to the certificate"):
        cm.sign_video(video, tmp_path / "x.mp4", "m", SHA, cert=identity[0], key=other_key)


def test_cert_without_key(identity, video, tmp_path):
    with pytest.raises(SpacetimeError, match="expected both or neither"):
        cm.sign_video(video, tmp_path / "x.mp4", "m", SHA, cert=identity[0])


def test_non_mp4_to_reader_and_signer(identity, tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"GIF89a" + bytes(100))
    with pytest.raises(SpacetimeError, match="not an mp4"):
        cm.read_provenance(fake)
    with pytest.raises(SpacetimeError, match="not an mp4"):
        cm.sign_video(fake, tmp_path / "x.mp4", "m", SHA, cert=identity[0], key=identity[1])


def test_bad_model_hash(identity, video, tmp_path):
    with pytest.raises(SpacetimeError, match="not a sha256 hex digest"):
        cm.sign_video(video, tmp_path / "x.mp4", "m", "1234", cert=identity[0], key=identity[1])


def test_file_sha256(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    assert cm.file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
