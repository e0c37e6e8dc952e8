"""Tiled decode: the upsampling part of the decoder runs on spatial tiles blended linearly where they overlap.

Two things keep the tiles faithful to an untiled decode:
- The decoder's first stage (conv1 + middle blocks, with the per-frame attention) runs untiled at latent
  resolution: it is cheap there, and it is the only step that mixes a whole frame.
- The temporal cache is shared: every causal module keeps full-frame trailing features (`FrameStore`);
  a tile reads its whole window from it and writes back the part it owns (up to the middle of each
  overlap). A tile's next chunk thus sees its neighbours' features, as the untiled decode does, and
  tile-border errors do not spread inward chunk after chunk.
The store lives on the CPU when decoding on a GPU, so the device holds one tile's activations at a time. That
is what makes tiling save memory: kept on the GPU, the store (this chunk's and the last) outweighs the untiled
decode's cache and activations together. The price is copying each tile's window there and back every chunk
(on an H200 at 480p, 2.34 GiB instead of 4.98 but 14x the untiled time; BENCHMARKS.md).
"""

import math
from collections.abc import Iterator

import torch
from torch import nn

from ..core.errors import SpacetimeError
from .cache import CACHE_FRAMES, CausalCache, decode_chunks


def tile_spans(size: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Evenly spaced [start, stop) spans of length `tile` covering `size`, neighbours sharing >= `overlap`."""
    if size <= tile:
        return [(0, size)]
    count = math.ceil((size - overlap) / (tile - overlap))
    starts = [round(i * (size - tile) / (count - 1)) for i in range(count)]
    return [(start, start + tile) for start in starts]


def owned_span(spans: list[tuple[int, int]], index: int) -> tuple[int, int]:
    """The part of span `index` it writes to the shared cache: up to the middle of each overlap."""
    start = 0 if index == 0 else (spans[index - 1][1] + spans[index][0]) // 2
    stop = spans[index][1] if index == len(spans) - 1 else (spans[index][1] + spans[index + 1][0]) // 2
    return start, stop


def blend_ramp(spans: list[tuple[int, int]], index: int, scale: int) -> torch.Tensor:
    """Weights along one axis for the pixels of span `index`, crossfading with each neighbour.

    The crossfade is linear over the middle half of the overlap: the outer quarter next to a tile's
    edge, where zero padding has bent its output, gets no weight at all.
    """
    start, stop = spans[index][0] * scale, spans[index][1] * scale
    position = torch.arange(start, stop, dtype=torch.float32) + 0.5  # pixel centres
    weight = torch.ones(stop - start)
    if index > 0:
        weight = torch.minimum(weight, _crossfade(position, start, spans[index - 1][1] * scale))
    if index < len(spans) - 1:
        weight = torch.minimum(weight, 1 - _crossfade(position, spans[index + 1][0] * scale, stop))
    return weight


def _crossfade(position: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """0 before the middle half of [start, stop), 1 after it, linear inside."""
    quarter = (stop - start) / 4
    return ((position - start - quarter) / (2 * quarter)).clamp(0.0, 1.0)


class FrameStore:
    """Full-frame trailing features of every causal module, shared by the tiles; one buffer per chunk.

    Tiles read the previous chunk's features (`current`) while writing this chunk's (`pending`), so a
    tile decoded later in a chunk never sees features from the same chunk. The two buffers swap roles each
    chunk and are reused: every pixel is rewritten each chunk (the tiles' owned boxes cover the frame), and
    allocating (and, on the CPU for a GPU, pinning) a fresh buffer per module per chunk costs more than the copy.
    """

    def __init__(self, latent_height: int, latent_width: int, storage_device: torch.device | str):
        self.latent_height, self.latent_width = latent_height, latent_width
        self.storage_device = torch.device(storage_device)
        self.current: dict[nn.Module, torch.Tensor] = {}
        self.pending: dict[nn.Module, torch.Tensor] = {}

    def advance(self) -> None:
        self.current, self.pending = self.pending, self.current

    def pending_buffer(self, module: nn.Module, tail: torch.Tensor, scale: int) -> torch.Tensor:
        """This chunk's full-frame buffer for `module`, shaped like `tail` at `scale` x the latent size."""
        b, c, t = tail.shape[:3]
        size = (b, c, t, self.latent_height * scale, self.latent_width * scale)
        buffer = self.pending.get(module)
        if buffer is None or buffer.shape != size:
            # pinned host memory: copies to and from the GPU run at full speed, without a staging copy
            pin = self.storage_device.type == "cpu" and tail.device.type == "cuda"
            buffer = torch.empty(size, dtype=tail.dtype, device=self.storage_device, pin_memory=pin)
            self.pending[module] = buffer
        return buffer


class TileCache(CausalCache):
    """The CausalCache one tile sees: its window of the shared FrameStore (boxes in latent pixels)."""

    def __init__(self, store: FrameStore, window: tuple[int, int, int, int], owned: tuple[int, int, int, int]):
        super().__init__()
        self.store = store
        self.window, self.owned = window, owned  # (top, bottom, left, right)

    def previous(self, module: nn.Module, device: torch.device) -> torch.Tensor | None:
        full = self.store.current.get(module)  # (B, C, frames, H*s, W*s)
        if full is None:
            return None
        top, bottom, left, right = _scaled(self.window, full.shape[3] // self.store.latent_height)
        # the whole buffer crosses in one contiguous copy and is cut on the device: a window of a CPU buffer
        # would first be gathered, row piece by row piece, on the CPU
        return full.to(device)[..., top:bottom, left:right]

    def remember(self, module: nn.Module, x: torch.Tensor, frames: int = CACHE_FRAMES) -> None:
        tail = x[:, :, -frames:].detach()  # (B, C, frames, h*s, w*s), s = this module's resolution
        scale = tail.shape[3] // (self.window[1] - self.window[0])
        full = self.store.pending_buffer(module, tail, scale)
        top, bottom, left, right = _scaled(self.owned, scale)
        offset_y, offset_x = self.window[0] * scale, self.window[2] * scale
        owned = tail[..., top - offset_y:bottom - offset_y, left - offset_x:right - offset_x]
        full[..., top:bottom, left:right] = owned.to(full.device)


def _scaled(box: tuple[int, ...], scale: int) -> tuple[int, ...]:
    return tuple(v * scale for v in box)


class _Tile:
    """One tile: its latent window, its pixel box, its blend weights and its view of the shared cache."""

    def __init__(self, rows, cols, i: int, j: int, scale: int, store: FrameStore, device):
        window = (*rows[i], *cols[j])  # (top, bottom, left, right) in latent pixels
        self.latent = (slice(rows[i][0], rows[i][1]), slice(cols[j][0], cols[j][1]))
        self.pixels = (slice(rows[i][0] * scale, rows[i][1] * scale), slice(cols[j][0] * scale, cols[j][1] * scale))
        self.weight = torch.outer(blend_ramp(rows, i, scale), blend_ramp(cols, j, scale)).to(device)  # (h, w)
        self.cache = TileCache(store, window, (*owned_span(rows, i), *owned_span(cols, j)))


def decode_frames_tiled(vae, z: torch.Tensor, tile: int, overlap: int, temporal_chunk: int,
                        cache_device: torch.device | str | None = None) -> Iterator[torch.Tensor]:
    """Yield pixel chunks [B, 3, t, H, W] of `vae.decode(z)`, the upsampling done in tiles (sizes in latent pixels);
    `cache_device` holds the shared temporal cache (None: the CPU, whatever device decodes)."""
    if not 0 <= overlap < tile:
        raise SpacetimeError(f"tile {tile} with overlap {overlap}: expected 0 <= overlap < tile (e.g. tile 32, overlap 8).")
    scale = vae.config.compression[1]
    height, width = z.shape[3], z.shape[4]
    rows, cols = tile_spans(height, tile, overlap), tile_spans(width, tile, overlap)
    store = FrameStore(height, width, cache_device or "cpu")
    tiles = [_Tile(rows, cols, i, j, scale, store, z.device) for i in range(len(rows)) for j in range(len(cols))]
    total = torch.zeros(height * scale, width * scale, device=z.device)  # (H, W) sum of blend weights
    for t in tiles:
        total[t.pixels] += t.weight
    x = vae.conv2(z.to(vae.conv2.weight.dtype))  # (B, z, T', H', W')
    latent_cache = CausalCache()
    for start, stop in decode_chunks(x.shape[2], temporal_chunk):
        h = vae.decoder.latent_stage(x[:, :, start:stop], latent_cache)  # (B, D, t', H', W'), whole frames
        latent_cache.next_chunk()
        yield _blend_chunk(vae, h, tiles, total)
        store.advance()


def _blend_chunk(vae, h: torch.Tensor, tiles: list[_Tile], total: torch.Tensor) -> torch.Tensor:
    out = None
    for t in tiles:
        piece = vae.to_pixels(vae.decoder.upsample(h[..., t.latent[0], t.latent[1]], t.cache))  # (B, 3, t, h*s, w*s)
        t.cache.next_chunk()
        if out is None:
            out = torch.zeros(*piece.shape[:3], *total.shape, device=piece.device)  # (B, 3, t, H, W)
        out[..., t.pixels[0], t.pixels[1]] += piece * t.weight
    return (out / total).clamp(-1.0, 1.0)
