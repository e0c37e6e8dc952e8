"""Tiled decode: seamless against the untiled decode, exact when the overlap covers the decoder's reach,
and its activations bounded by the tile."""

import pytest
import torch

from comfyui_spacetime.core.errors import SpacetimeError
from comfyui_spacetime.vae.tiling import blend_ramp, owned_span, tile_spans

from tests.tiny_vae import FAST_21, TINY_22, random_vae


def _latent(config, frames, height, width):
    return torch.randn(1, config.z_dim, frames, height, width, generator=torch.Generator().manual_seed(1))


def test_spans_cover_with_overlap_and_weights_sum_to_one():
    spans = tile_spans(50, 16, 6)
    assert spans[0][0] == 0 and spans[-1][1] == 50
    assert all(b[0] <= a[1] - 6 for a, b in zip(spans, spans[1:]))
    owned = [owned_span(spans, i) for i in range(len(spans))]
    assert [o[0] for o in owned[1:]] == [o[1] for o in owned[:-1]] and owned[-1][1] == 50  # a partition
    total = torch.zeros(50 * 8)
    for i, (start, stop) in enumerate(spans):
        total[start * 8:stop * 8] += blend_ramp(spans, i, 8)
    assert torch.allclose(total, torch.ones_like(total))
    assert tile_spans(10, 16, 6) == [(0, 10)]


def test_exact_when_the_overlap_covers_the_decoders_reach():
    # FAST_21's upsampling path reaches 4 + 5/2 + 6/4 = 8 latent pixels; the crossfade stays a quarter
    # overlap (32/4 = 8) from every tile edge, and each tile's cache writes stay half an overlap away
    vae = random_vae(FAST_21)
    z = _latent(FAST_21, 3, 4, 48)
    with torch.no_grad():
        tiled, full = vae.decode_tiled(z, tile=40, overlap=32), vae.decode(z)
    assert (tiled - full).abs().max() < 1e-5


@pytest.mark.parametrize("config,latent_hw,tile,overlap", [(FAST_21, (12, 24), 12, 8), (TINY_22, (6, 12), 8, 6)],
                         ids=["wan2.1", "wan2.2"])
def test_seams_differ_by_under_one_percent_of_range(config, latent_hw, tile, overlap):
    # overlaps below the decoder's reach: random weights bend a few seam pixels, the mean stays well under 1%
    vae = random_vae(config)
    z = _latent(config, 3, *latent_hw)
    with torch.no_grad():
        full = vae.decode(z)
        tiled = torch.cat(list(vae.decode_frames(z, temporal_chunk=2, tile=tile, overlap=overlap)), dim=2)
    assert tiled.shape == full.shape
    assert (tiled - full).abs().mean() < 0.01 * (full.max() - full.min())


def test_activations_are_bounded_by_the_tile():
    vae = random_vae(FAST_21)
    z = _latent(FAST_21, 2, 8, 48)
    peaks = {}

    def record(mode):
        def hook(module, inputs, output):
            peaks[mode] = max(peaks.get(mode, 0), output.numel())
        return hook

    with torch.no_grad():
        for mode, decode in (("full", vae.decode), ("tiled", lambda z: vae.decode_tiled(z, tile=12, overlap=4))):
            handles = [m.register_forward_hook(record(mode)) for m in vae.decoder.upsamples.modules()]
            decode(z)
            for handle in handles:
                handle.remove()
    assert peaks["tiled"] <= peaks["full"] * 12 / 48


def test_bad_tile_settings():
    vae = random_vae(FAST_21)
    with pytest.raises(SpacetimeError, match="overlap < tile"):
        vae.decode_tiled(_latent(FAST_21, 1, 4, 4), tile=8, overlap=8)
    with pytest.raises(SpacetimeError, match="temporal_chunk is 0"):
        vae.decode_tiled(_latent(FAST_21, 1, 4, 4), tile=8, overlap=2, temporal_chunk=0)
