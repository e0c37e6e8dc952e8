"""WanVAE: the Wan 2.1 (z16, 4x8x8) and Wan 2.2 (z48, 4x16x16) causal video VAEs.

Encoding runs the frames in chunks 1, 4, 4, ... and decoding one latent frame at a time (or a few, after
the first), each pass carrying a `CausalCache`; this matches the reference chunk for chunk, so the same
weights give the same latents and pixels. Pixels are [B, 3, T, H, W] in -1..1, latents [B, C, T', H', W'].
"""

from collections.abc import Iterator

import torch
from torch import nn

from ..core.errors import SpacetimeError
from .blocks import (CausalConv3d, CausalSequential, DownBlock, ResidualBlock, Resample, UpBlock,
                     middle_blocks, output_head, patchify, unpatchify)
from .cache import CausalCache, decode_chunks
from .config import VAEConfig
from .latent_format import denormalize, normalize
from .tiling import decode_frames_tiled


class Encoder3d(nn.Module):
    """Pixels (patchified) -> mean and log-variance of the latent, 2*z channels."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        dims = [config.base_dim * m for m in (1, *config.dim_mult)]
        self.conv1 = CausalConv3d(config.pixel_channels, dims[0], 3, padding=1)
        levels = _encoder_levels_21 if config.variant == "wan2.1" else _encoder_levels_22
        self.downsamples = CausalSequential(*levels(config, dims))
        self.middle = middle_blocks(dims[-1])
        self.head = output_head(dims[-1], 2 * config.z_dim)

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        x = self.conv1(x, cache)
        x = self.downsamples(x, cache)
        x = self.middle(x, cache)
        return self.head(x, cache)


class Decoder3d(nn.Module):
    """Latent -> pixels (patchified), upsampling in the reverse order of the encoder."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        mult = config.dim_mult
        dims = [config.decoder_base_dim * m for m in (mult[-1], *mult[::-1])]
        self.conv1 = CausalConv3d(config.z_dim, dims[0], 3, padding=1)
        self.middle = middle_blocks(dims[0])
        levels = _decoder_levels_21 if config.variant == "wan2.1" else _decoder_levels_22
        self.upsamples = CausalSequential(*levels(config, dims))
        self.head = output_head(dims[-1], config.pixel_channels)

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        return self.upsample(self.latent_stage(x, cache), cache)

    def latent_stage(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        """conv1 + middle at latent resolution: cheap, and the only step that mixes a whole frame (attention)."""
        return self.middle(self.conv1(x, cache), cache)

    def upsample(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        """Upsampling levels + head: where the memory goes, and what a tiled decode splits into tiles."""
        return self.head(self.upsamples(x, cache), cache)


def _encoder_levels_21(config: VAEConfig, dims: list[int]) -> list[nn.Module]:
    """Wan 2.1: a flat list of res blocks, a resample after every level but the last."""
    blocks, last = [], len(dims) - 2
    for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
        blocks += [ResidualBlock(in_dim if j == 0 else out_dim, out_dim) for j in range(config.num_res_blocks)]
        if i != last:
            blocks.append(Resample(out_dim, "downsample3d" if config.temporal_downsample[i] else "downsample2d"))
    return blocks


def _encoder_levels_22(config: VAEConfig, dims: list[int]) -> list[nn.Module]:
    last = len(dims) - 2
    return [DownBlock(in_dim, out_dim, config.num_res_blocks,
                      temporal=i != last and config.temporal_downsample[i], spatial=i != last)
            for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:]))]


def _decoder_levels_21(config: VAEConfig, dims: list[int]) -> list[nn.Module]:
    """Wan 2.1: each upsample halves the width, so every level after the first starts at half width."""
    upsample_in_time, blocks, last = config.temporal_downsample[::-1], [], len(dims) - 2
    for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
        in_dim = in_dim // 2 if i > 0 else in_dim
        blocks += [ResidualBlock(in_dim if j == 0 else out_dim, out_dim) for j in range(config.num_res_blocks + 1)]
        if i != last:
            mode = "upsample3d" if upsample_in_time[i] else "upsample2d"
            blocks.append(Resample(out_dim, mode, upsample_out_dim=out_dim // 2))
    return blocks


def _decoder_levels_22(config: VAEConfig, dims: list[int]) -> list[nn.Module]:
    upsample_in_time, last = config.temporal_downsample[::-1], len(dims) - 2
    return [UpBlock(in_dim, out_dim, config.num_res_blocks + 1,
                    temporal=i != last and upsample_in_time[i], spatial=i != last)
            for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:]))]


class WanVAE(nn.Module):
    """A Wan causal video VAE: `encode` pixels -> raw latents (the mean), `decode` latents -> pixels.

    Module names match the Wan checkpoints (`encoder.*`, `conv1`, `conv2`, `decoder.*`).
    """

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder3d(config)
        self.conv1 = CausalConv3d(2 * config.z_dim, 2 * config.z_dim, 1)
        self.conv2 = CausalConv3d(config.z_dim, config.z_dim, 1)
        self.decoder = Decoder3d(config)

    # -- encode ---------------------------------------------------------------------------------------
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Pixels [B, 3, T, H, W] in -1..1 (T = 4k+1), on any device -> raw latents [B, z, (T-1)/4+1, H/s, W/s]
        (fp32, on the VAE's device)."""
        return self.encode_distribution(video)[0]

    def encode_distribution(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of the latent (both [B, z, T', H', W'], fp32), e.g. for a KL loss."""
        self._check_pixels(video)
        x = patchify(self._to_params(video), self.config.patch_size)  # (B, 3*p*p, T, H/p, W/p)
        cache, chunks = CausalCache(), []
        for start, stop in self._encode_chunks(x.shape[2]):
            chunks.append(self.encoder(x[:, :, start:stop], cache))
            cache.next_chunk()
        mean, log_var = self.conv1(torch.cat(chunks, dim=2)).chunk(2, dim=1)  # each (B, z, T', H', W')
        return mean.float(), log_var.float()

    def _encode_chunks(self, frames: int) -> Iterator[tuple[int, int]]:
        """Frame 0 alone, then groups of the temporal compression (4): one group per latent frame."""
        step = self.config.compression[0]
        yield 0, 1
        for start in range(1, frames, step):
            yield start, start + step

    # -- decode ---------------------------------------------------------------------------------------
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Raw latents [B, z, T', H', W'], on any device -> pixels [B, 3, 4(T'-1)+1, H'*s, W'*s], clamped to -1..1
        (fp32, on the VAE's device)."""
        return torch.cat(list(self.decode_frames(z)), dim=2)

    def decode_frames(self, z: torch.Tensor, temporal_chunk: int = 1, tile: int | None = None,
                      overlap: int = 16, cache_device: torch.device | str | None = None) -> Iterator[torch.Tensor]:
        """Decode chunk by chunk, yielding pixels [B, 3, t, H, W] (1 frame first, then 4*temporal_chunk).

        Only one chunk of frames is ever on the device, so minute-long videos stream through.
        `tile` (latent pixels) decodes spatial tiles blended over `overlap`; see tiling.py.
        `cache_device` parks the temporal cache elsewhere (e.g. "cpu") between chunks: less memory on the
        VAE's device, at the cost of copying the cache there and back for every chunk. Untiled it defaults to
        the VAE's device; tiled, to the CPU (see tiling.py for why).
        """
        self._check_latent(z)
        z = z.to(self.conv2.weight.device)
        if tile is None:
            yield from self.decode_stream(z, temporal_chunk, cache_device)
        else:
            yield from decode_frames_tiled(self, z, tile, overlap, temporal_chunk, cache_device)

    def decode_stream(self, z: torch.Tensor, temporal_chunk: int = 1,
                      cache_device: torch.device | str | None = None) -> Iterator[torch.Tensor]:
        """Untiled chunked decode of a checked latent."""
        x = self.conv2(self._to_params(z))  # (B, z, T', H', W')
        cache = CausalCache(cache_device)
        for start, stop in decode_chunks(x.shape[2], temporal_chunk):
            out = self.decoder(x[:, :, start:stop], cache)  # (B, 3*p*p, t, H/p, W/p)
            cache.next_chunk()
            yield self.to_pixels(out).clamp(-1.0, 1.0)

    def to_pixels(self, out: torch.Tensor) -> torch.Tensor:
        """Decoder output (patchified) -> pixels [B, 3, t, H, W] in fp32, not yet clamped."""
        return unpatchify(out, self.config.patch_size).float()

    def decode_tiled(self, z: torch.Tensor, tile: int = 64, overlap: int = 16, temporal_chunk: int = 1,
                     cache_device: torch.device | str | None = None) -> torch.Tensor:
        """`decode` in spatial tiles of `tile` latent pixels blended over `overlap`: peak memory set by the tile
        (the full-frame temporal cache waits on `cache_device`, the CPU unless given)."""
        return torch.cat(list(self.decode_frames(z, temporal_chunk, tile, overlap, cache_device)), dim=2)

    # -- latent statistics ----------------------------------------------------------------------------
    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """Raw latents -> the DiT's unit-scale latents, with this VAE's per-channel mean/std."""
        return normalize(z, self.config.latent_mean, self.config.latent_std)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return denormalize(z, self.config.latent_mean, self.config.latent_std)

    # -- input checks ---------------------------------------------------------------------------------
    def _to_params(self, x: torch.Tensor) -> torch.Tensor:
        """`x` on the weights' device and in their dtype (callers may hand over CPU float32 tensors)."""
        return x.to(self.conv2.weight.device, self.conv2.weight.dtype)

    def _check_pixels(self, video: torch.Tensor) -> None:
        if video.dim() != 5 or video.shape[1] != 3:
            raise SpacetimeError(
                f"the VAE got pixels of shape {tuple(video.shape)}; expected [B, 3, T, H, W] in -1..1 "
                "(convert a ComfyUI IMAGE [T, H, W, 3] with image.permute(3, 0, 1, 2)[None] * 2 - 1).")
        t, h, w = video.shape[2:]
        step_t, step_h, step_w = self.config.compression
        if (t - 1) % step_t:
            valid = (t - 1) // step_t * step_t + 1
            raise SpacetimeError(
                f"the VAE got {t} frames; {self.config.label} needs {step_t}k+1 frames: use {valid} "
                f"or {valid + step_t}.")
        if h % step_h or w % step_w:
            near_h, near_w = _nearest_multiple(h, step_h), _nearest_multiple(w, step_w)
            raise SpacetimeError(
                f"the VAE got {w}x{h} pixels; {self.config.label} needs width and height multiples of "
                f"{step_w}x{step_h}: resize or crop to {near_w}x{near_h}.")

    def _check_latent(self, z: torch.Tensor) -> None:
        if z.dim() != 5:
            raise SpacetimeError(f"the VAE got a latent of shape {tuple(z.shape)}; expected [B, C, T, H, W].")
        if z.shape[1] != self.config.z_dim:
            raise SpacetimeError(
                f"the latent has {z.shape[1]} channels but this is a {self.config.label}. "
                "Wan 2.1 models (T2V/I2V/VACE, A14B) use the Wan 2.1 VAE (16 channels); Wan 2.2 TI2V 5B uses "
                "the Wan 2.2 VAE (48 channels): connect the VAE that matches the model.")


def _nearest_multiple(value: int, step: int) -> int:
    return max(step, round(value / step) * step)
