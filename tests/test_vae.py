"""WanVAE through safetensors: round trips per variant, dtype and prefix; the public API; bad input."""

import json

import pytest
import torch
from safetensors.torch import save_file

from comfyui_spacetime.core.errors import SpacetimeError
from comfyui_spacetime.vae import VAEConfig, WanVAE, load_vae

from tests.tiny_vae import TINY_21, TINY_22, random_vae, random_video, save_vae


@pytest.fixture(scope="module")
def tiny_vaes():
    return {"wan2.1": random_vae(TINY_21), "wan2.2": random_vae(TINY_22)}


@pytest.mark.parametrize("variant", ["wan2.1", "wan2.2"])
@pytest.mark.parametrize("dtype,tolerance", [(torch.float32, 0.0), (torch.bfloat16, 0.03), (torch.float16, 0.005)])
@pytest.mark.parametrize("prefix", ["", "first_stage_model."])
def test_round_trip_through_safetensors(tmp_path, tiny_vaes, variant, dtype, tolerance, prefix):
    original = tiny_vaes[variant]
    path = save_vae(original, tmp_path / "vae.safetensors", dtype=dtype, prefix=prefix)
    vae = load_vae(path, dtype=dtype)
    assert vae.config == original.config
    assert next(vae.parameters()).dtype == dtype
    video = random_video(vae.config, frames=5)
    with torch.no_grad():
        z, z_ref = vae.encode(video), original.encode(video)
        pixels, pixels_ref = vae.decode(z_ref), original.decode(z_ref)
    assert z.shape == (1, vae.config.z_dim, 2, 2, 3) and z.dtype == torch.float32
    assert pixels.shape == video.shape and pixels.dtype == torch.float32
    # fp32 loads bit-exact; half precision is judged on the mean error (random weights amplify a few pixels)
    assert (z - z_ref).abs().mean() <= tolerance * z_ref.abs().mean()
    assert (pixels - pixels_ref).abs().mean() <= tolerance


def test_compression_and_channels():
    assert (VAEConfig().compression, VAEConfig().latent_channels) == ((4, 8, 8), 16)
    assert (TINY_22.compression, TINY_22.latent_channels, TINY_22.pixel_channels) == ((4, 16, 16), 48, 12)


def test_decode_is_clamped_and_encode_is_the_mean(tiny_vaes):
    vae = tiny_vaes["wan2.1"]
    video = random_video(vae.config)
    with torch.no_grad():
        mean, log_var = vae.encode_distribution(video)
        assert torch.equal(vae.encode(video), mean)
        assert not torch.equal(mean, log_var)
        pixels = vae.decode(3 * mean)
    assert pixels.abs().max() <= 1.0


def test_normalize_uses_the_per_channel_stats(tiny_vaes):
    vae = tiny_vaes["wan2.1"]
    z = torch.randn(1, 16, 2, 3, 3)
    normalized = vae.normalize(z)
    assert torch.allclose(normalized[0, 7], (z[0, 7] - 1.5508) / 2.0743)
    assert torch.allclose(vae.denormalize(normalized), z, atol=1e-6)


def test_metadata_mean_std_is_read_back(tmp_path):
    config = VAEConfig("wan2.1", base_dim=4, decoder_base_dim=4, z_dim=4, dim_mult=(1, 1, 1), num_res_blocks=1,
                       temporal_downsample=(True, True), latent_mean=(0.1, 0.2, 0.3, 0.4), latent_std=(1, 2, 3, 4))
    path = save_vae(random_vae(config), tmp_path / "mini.safetensors", metadata=config.to_metadata())
    assert load_vae(path).config == config
    assert json.loads(config.to_metadata()["spacetime_config"])["component"] == "vae"


def test_training_gets_gradients():
    vae = random_vae(TINY_21).train().requires_grad_(True)
    video = random_video(TINY_21, frames=1)
    mean, log_var = vae.encode_distribution(video)
    loss = vae.decode(mean).sub(video).square().mean() + log_var.exp().mean()
    loss.backward()
    assert vae.encoder.conv1.weight.grad.abs().sum() > 0
    assert vae.decoder.head[2].weight.grad.abs().sum() > 0


def test_wrong_latent_channels_name_both_vaes(tiny_vaes):
    with pytest.raises(SpacetimeError, match=r"48 channels.*wan2\.1 VAE.*Wan 2\.2 VAE \(48"):
        tiny_vaes["wan2.1"].decode(torch.zeros(1, 48, 1, 2, 2))
    with pytest.raises(SpacetimeError, match=r"16 channels.*wan2\.2 VAE"):
        tiny_vaes["wan2.2"].decode(torch.zeros(1, 16, 1, 2, 2))


def test_wrong_pixel_sizes_name_the_nearest_valid_one(tiny_vaes):
    with pytest.raises(SpacetimeError, match="needs width and height multiples of 8x8: resize or crop to 24x16"):
        tiny_vaes["wan2.1"].encode(torch.zeros(1, 3, 1, 17, 23))
    with pytest.raises(SpacetimeError, match="multiples of 16x16: resize or crop to 32x16"):
        tiny_vaes["wan2.2"].encode(torch.zeros(1, 3, 1, 16, 24))
    with pytest.raises(SpacetimeError, match="needs 4k\\+1 frames: use 5 or 9"):
        tiny_vaes["wan2.1"].encode(torch.zeros(1, 3, 7, 16, 16))
    with pytest.raises(SpacetimeError, match=r"expected \[B, 3, T, H, W\]"):
        tiny_vaes["wan2.1"].encode(torch.zeros(1, 16, 16, 3))


def test_other_model_files_name_their_loader(tmp_path):
    dit = {"head.modulation": torch.zeros(1, 2, 8), "patch_embedding.weight": torch.zeros(8, 16, 1, 2, 2)}
    save_file(dit, str(tmp_path / "dit.safetensors"))
    with pytest.raises(SpacetimeError, match="diffusion model.*Spacetime Load Diffusion Model"):
        load_vae(tmp_path / "dit.safetensors")
    text_encoder = {"shared.weight": torch.zeros(4, 8), "encoder.final_layer_norm.weight": torch.zeros(8)}
    save_file(text_encoder, str(tmp_path / "te.safetensors"))
    with pytest.raises(SpacetimeError, match="text encoder.*Spacetime Load Text Encoder"):
        load_vae(tmp_path / "te.safetensors")


def test_broken_files_are_named(tmp_path, tiny_vaes):
    path = save_vae(tiny_vaes["wan2.1"], tmp_path / "vae.safetensors")
    (tmp_path / "cut.safetensors").write_bytes(path.read_bytes()[:-100])
    with pytest.raises(SpacetimeError, match="truncated"):
        load_vae(tmp_path / "cut.safetensors")
    with pytest.raises(SpacetimeError, match="does not exist"):
        load_vae(tmp_path / "missing.safetensors")
    state = dict(tiny_vaes["wan2.1"].state_dict())
    state["decoder.extra.weight"] = torch.zeros(1)
    save_file(state, str(tmp_path / "extra.safetensors"))
    with pytest.raises(SpacetimeError, match="decoder.extra.weight"):
        load_vae(tmp_path / "extra.safetensors")


def test_config_rejects_inconsistent_fields():
    with pytest.raises(SpacetimeError, match="variant 'wan3'"):
        VAEConfig("wan3")
    with pytest.raises(SpacetimeError, match="latent_mean has 2 values but z_dim is 16"):
        VAEConfig(latent_mean=(0.0, 1.0))
    with pytest.raises(SpacetimeError, match="temporal_downsample has 1 entries"):
        VAEConfig(temporal_downsample=(True,))


def test_builds_on_meta_without_memory():
    with torch.device("meta"):
        vae = WanVAE(VAEConfig())
    assert vae.decoder.conv1.weight.is_meta


def test_inputs_on_another_device_move_to_the_vae():
    # A CUDA VAE handed CPU pixels used to fail deep in torch ("slow_conv3d_forward ... CUDA backend"); the
    # meta device stands in for the GPU here: only shapes flow, on the VAE's device.
    with torch.device("meta"):
        vae = WanVAE(TINY_21)
    video = random_video(TINY_21, latent_hw=(2, 3))  # on the CPU
    z = vae.encode(video)
    assert z.device.type == "meta" and z.shape == (1, TINY_21.z_dim, 2, 2, 3)
    tiled = vae.decode_tiled(torch.zeros(z.shape), tile=2, overlap=1, cache_device="meta")  # meta can't reach the CPU
    for pixels in (vae.decode(torch.zeros(z.shape)), tiled):
        assert pixels.device.type == "meta" and pixels.shape == video.shape
