"""The explicit temporal cache: chunked computation equals one-shot computation, and decoding is causal."""

import torch

from comfyui_spacetime.vae.blocks import CausalConv3d, ResidualBlock, Resample
from comfyui_spacetime.vae.cache import CausalCache

from tests.tiny_vae import FAST_21, TINY_22, random_vae, random_video


def _chunked(module, x, sizes):
    cache, outs, start = CausalCache(), [], 0
    for size in sizes:
        outs.append(module(x[:, :, start:start + size], cache))
        cache.next_chunk()
        start += size
    return torch.cat(outs, dim=2)


def test_cache_life_cycle():
    cache, conv = CausalCache(), torch.nn.Identity()
    assert cache.first_chunk and cache.previous(conv, torch.device("cpu")) is None
    x = torch.arange(5.0).view(1, 1, 5, 1, 1)
    cache.remember(conv, x)
    cache.next_chunk()
    assert not cache.first_chunk
    assert cache.previous(conv, torch.device("cpu")).flatten().tolist() == [3.0, 4.0]
    x[..., 4, 0, 0] = 9.0  # the cache holds a copy, not a view of the chunk
    assert cache.previous(conv, torch.device("cpu")).flatten().tolist() == [3.0, 4.0]


def test_causal_conv_chunked_equals_one_shot():
    torch.manual_seed(0)
    conv = CausalConv3d(3, 5, 3, padding=1)
    x = torch.randn(1, 3, 9, 6, 6)
    with torch.no_grad():
        assert torch.allclose(_chunked(conv, x, [1, 4, 4]), conv(x), atol=1e-6)
        assert torch.allclose(_chunked(conv, x, [1] * 9), conv(x), atol=1e-6)


def test_causal_conv_pads_time_only_in_front():
    conv = CausalConv3d(1, 1, (3, 1, 1), padding=(1, 0, 0))
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, 10.0, 100.0]).view(1, 1, 3, 1, 1))
        conv.bias.zero_()
        out = conv(torch.tensor([1.0, 2.0, 3.0]).view(1, 1, 3, 1, 1))
    # frame t = 1*x[t-2] + 10*x[t-1] + 100*x[t]: never a later frame
    assert out.flatten().tolist() == [100.0, 210.0, 321.0]


def test_residual_block_chunked_equals_one_shot():
    torch.manual_seed(0)
    block = ResidualBlock(4, 6)
    x = torch.randn(1, 4, 9, 5, 5)
    with torch.no_grad():
        assert torch.allclose(_chunked(block, x, [1, 4, 4]), _chunked(block, x, [9]), atol=1e-5)


def test_first_chunk_skips_temporal_resampling():
    torch.manual_seed(0)
    down, up = Resample(4, "downsample3d"), Resample(4, "upsample3d", upsample_out_dim=2)
    x = torch.randn(1, 4, 1, 8, 8)
    with torch.no_grad():
        assert _chunked(down, torch.randn(1, 4, 5, 8, 8), [1, 4]).shape == (1, 4, 3, 4, 4)  # 1 + 4/2 frames
        assert _chunked(up, torch.randn(1, 4, 3, 8, 8), [1, 2]).shape == (1, 2, 5, 16, 16)  # 1 + 2*2 frames
        assert down(x, CausalCache()).shape[2] == up(x, CausalCache()).shape[2] == 1


def test_encode_is_causal_per_latent_frame():
    vae = random_vae(FAST_21)
    video = random_video(FAST_21, frames=9, latent_hw=(2, 2))
    with torch.no_grad():
        full, head = vae.encode(video), vae.encode(video[:, :, :5])
    # latent frames 0, 1 only see pixel frames 0..4, encoded in the same chunks
    assert torch.allclose(full[:, :, :2], head, atol=1e-6)


def test_decode_is_causal_and_streams():
    for config in (FAST_21, TINY_22):
        vae = random_vae(config)
        z = torch.randn(1, config.z_dim, 4, 2, 2, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            full = vae.decode(z)
            head = vae.decode(z[:, :, :2])
            chunks = list(vae.decode_frames(z, temporal_chunk=2))
        assert full.shape[2] == 13
        # appending latent frames leaves earlier ones; 1e-5, as below: convolutions over a longer clip may take another
        # kernel and round differently (2.8e-6 seen on an AVX-512 CPU)
        assert torch.allclose(full[:, :, :5], head, atol=1e-5)
        assert [c.shape[2] for c in chunks] == [1, 8, 4]
        assert torch.allclose(torch.cat(chunks, dim=2), full, atol=1e-5)  # multi-frame chunks are exact
