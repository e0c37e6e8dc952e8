"""CausalCache: the temporal state a Wan causal VAE carries from one chunk of frames to the next.

The Wan VAEs encode frames in chunks (1, 4, 4, ...) and decode one latent frame at a time. Every causal
module keeps the trailing frames it saw so the next chunk is computed exactly as if all frames had been
seen at once. The reference keeps this state in a list indexed by a shared counter; here each module is
the key of its own slot, and the whole state lives in one object whose life is one encode or decode pass.
"""

import torch
from torch import nn

from ..core.errors import SpacetimeError

CACHE_FRAMES = 2  # a kernel-3 causal conv needs the 2 frames before the chunk


class CausalCache:
    """Trailing frames per causal module for one pass over a video.

    Life cycle: create one per encode/decode call (or per tile of a tiled decode), pass it to every
    chunk of that pass in time order, and call `next_chunk()` after each chunk. `first_chunk` is true
    only for the first chunk: the Wan VAEs skip temporal up/down-sampling there.
    `storage_device` (e.g. "cpu") parks the cached frames off the compute device between chunks.
    """

    def __init__(self, storage_device: torch.device | str | None = None):
        self.chunk_index = 0
        self._frames: dict[nn.Module, torch.Tensor] = {}
        self._storage_device = storage_device

    @property
    def first_chunk(self) -> bool:
        return self.chunk_index == 0

    def next_chunk(self) -> None:
        self.chunk_index += 1

    def snapshot(self) -> tuple[int, dict]:
        """The state before a chunk, for decoding that chunk again from it (`restore`). A shallow copy is enough:
        slots are replaced, never changed in place."""
        return self.chunk_index, dict(self._frames)

    def restore(self, state: tuple[int, dict]) -> None:
        self.chunk_index, frames = state
        self._frames = dict(frames)

    def previous(self, module: nn.Module, device: torch.device) -> torch.Tensor | None:
        """The frames `module` remembered from the previous chunk, on `device`; None before the first."""
        frames = self._frames.get(module)
        return None if frames is None else frames.to(device)

    def remember(self, module: nn.Module, x: torch.Tensor, frames: int = CACHE_FRAMES) -> None:
        """Keep the last `frames` frames of x [B, C, T, H, W] for the module's next chunk."""
        tail = x[:, :, -frames:].detach()
        # a copy, so the slot does not keep the whole chunk's tensor alive
        self._frames[module] = tail.to(self._storage_device or x.device, copy=True)


def decode_chunks(latent_frames: int, temporal_chunk: int) -> list[tuple[int, int]]:
    """[start, stop) latent frames per decoder call: frame 0 alone (it decodes to 1 pixel frame), then groups."""
    if temporal_chunk < 1:
        raise SpacetimeError(f"temporal_chunk is {temporal_chunk}; expected 1 or more latent frames.")
    return [(0, 1)] + [(start, min(start + temporal_chunk, latent_frames))
                       for start in range(1, latent_frames, temporal_chunk)]
