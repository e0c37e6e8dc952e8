"""Invisible and visible watermarks: round trips, attacks that must be survived, no false positives."""
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from comfyui_spacetime.core.errors import SpacetimeError
from comfyui_spacetime.core.video import read_mp4, write_mp4
from comfyui_spacetime.provenance import watermark as wm
from comfyui_spacetime.provenance.visible_watermark import add_visible_watermark


def smooth_clip(seed: int, t: int = 9, h: int = 64, w: int = 64) -> torch.Tensor:
    """A panning smooth colour field with mild per-frame noise: [T, H, W, 3] in 0..1."""
    g = torch.Generator().manual_seed(seed)
    field = F.interpolate(torch.rand(1, 3, 5, 5, generator=g), size=(h, w + t), mode="bicubic")[0]
    frames = [field[:, :, i:i + w] + 0.02 * torch.randn(3, h, w, generator=g) for i in range(t)]
    return torch.stack(frames).permute(0, 2, 3, 1).clamp(0.05, 0.95)  # (T, H, W, 3)


def test_round_trip_and_amplitude():
    clip = smooth_clip(0)
    marked = wm.embed_invisible_watermark(clip, "job-42")
    assert (marked - clip).abs().max() <= wm.DEFAULT_WATERMARK.strength + 1e-6
    result = wm.detect_invisible_watermark(marked)
    assert result.found and result.payload == "job-42" and result.confidence > 0.999


def test_survives_h264_crop_and_frame_rate_doubling(tmp_path):
    marked = wm.embed_invisible_watermark(smooth_clip(1), "SPTM")
    decoded, _ = read_mp4(write_mp4(tmp_path / "m.mp4", marked, fps=8, crf=19))
    cropped = decoded[:, 3:-3, 4:-2]  # 10% of each side removed, off-centre
    doubled = torch.stack([f for a, b in zip(cropped[:-1], cropped[1:]) for f in (a, (a + b) / 2)])
    assert wm.detect_invisible_watermark(doubled).payload == "SPTM"


def test_unmarked_and_other_key_are_not_found():
    for seed in range(4):
        assert not wm.detect_invisible_watermark(smooth_clip(10 + seed)).found
    marked = wm.embed_invisible_watermark(smooth_clip(2), "SPTM")
    assert not wm.detect_invisible_watermark(marked, wm.WatermarkConfig(key="someone-else")).found


def test_chase_decoding_fixes_two_weak_bits_and_crc_rejects_garbage():
    config = wm.DEFAULT_WATERMARK
    bits = wm._encode_payload("abc", config)
    soft = (bits.float() * 2 - 1) * 5.0
    soft[[3, 40]] *= -0.1  # two wrong but unsure bits
    assert wm._decode_soft(soft, config) == "abc"
    soft[[7, 20, 50]] *= -1.0  # three confident errors: beyond the decoder
    assert wm._decode_soft(soft, config) is None


def test_bad_payload_and_frames():
    with pytest.raises(SpacetimeError, match="at most 6 bytes"):
        wm.embed_invisible_watermark(smooth_clip(0), "much too long")
    with pytest.raises(SpacetimeError, match=r"expected IMAGE \[T, H, W, 3\]"):
        wm.detect_invisible_watermark(torch.rand(2, 8, 8, 4))


def test_visible_text_mark_moves_and_leaves_input_alone():
    clip = torch.full((9, 64, 96, 3), 0.5)
    marked = add_visible_watermark(clip, text="AI")
    assert torch.equal(clip, torch.full_like(clip, 0.5))
    changed = (marked - clip).abs().sum(-1) > 0.05  # (T, H, W)
    first, last, middle = (changed[i].nonzero().float().mean(0) for i in (0, 8, 4))
    assert changed.any((1, 2)).all()
    assert first[1] > 48 and first[0] > 32  # starts at the bottom right
    assert (middle - first).norm() > 10 and (last - middle).norm() > 10


def test_visible_image_mark_uses_alpha(tmp_path):
    logo = Image.new("RGBA", (20, 10), (255, 0, 0, 255))
    logo.paste((0, 0, 0, 0), (0, 0, 10, 10))  # left half fully transparent
    logo.save(tmp_path / "logo.png")
    clip = torch.zeros(3, 143, 100, 3)  # 7% of 143 rows: the logo keeps its 10 px height, no resampling
    marked = add_visible_watermark(clip, image=tmp_path / "logo.png")
    red = marked[..., 0] > 0
    assert (marked[..., 1:] == 0).all()
    assert red.sum((1, 2)).tolist() == [100, 100, 100]  # the opaque 10 x 10 half, in every frame
    assert torch.allclose(marked[..., 0][red], torch.tensor(0.6))  # default opacity


def test_visible_bad_image(tmp_path):
    (tmp_path / "x.png").write_text("no image")
    with pytest.raises(SpacetimeError, match="could not read the watermark image"):
        add_visible_watermark(torch.zeros(1, 32, 32, 3), image=tmp_path / "x.png")
