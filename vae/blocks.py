"""Building blocks of the Wan 2.1 / 2.2 causal video VAEs (Wan-Video/Wan2.1 wan/modules/vae.py, Wan2.2 vae2_2.py).

Tensors are [B, C, T, H, W]. Modules that carry state across chunks of frames take `(x, cache)` and
set `takes_cache = True`; `CausalSequential` hands the cache to exactly those. Attribute names and
`nn.Sequential` indices follow the reference so the checkpoints' keys load unchanged.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _triple

from .cache import CausalCache


def per_frame(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a 2D module to every frame of x [B, C, T, H, W]."""
    b, _, t, _, _ = x.shape
    frames = x.transpose(1, 2).flatten(0, 1)  # (B*T, C, H, W)
    out = module(frames)  # (B*T, C', H', W')
    return out.unflatten(0, (b, t)).transpose(1, 2)  # (B, C', T, H', W')


class CausalSequential(nn.Sequential):
    """nn.Sequential that passes the temporal cache to the modules that keep one."""

    takes_cache = True

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:
        for module in self:
            x = module(x, cache) if getattr(module, "takes_cache", False) else module(x)
        return x


class CausalConv3d(nn.Conv3d):
    """3D convolution padded in time only in front (2*p frames), so output frame t sees no frame after t.

    With a cache, the frames remembered from the previous chunk replace that zero padding.
    """

    takes_cache = True

    def __init__(self, in_dim: int, out_dim: int, kernel, stride=1, padding=0):
        super().__init__(in_dim, out_dim, kernel, stride=stride, padding=0)
        pad_t, pad_h, pad_w = _triple(padding)
        self.time_pad = 2 * pad_t
        self.space_pad = (pad_w, pad_w, pad_h, pad_h)

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:
        front = self.time_pad
        if cache is not None and self.time_pad:
            previous = cache.previous(self, x.device)
            if previous is not None:
                x = torch.cat([previous, x], dim=2)  # (B, C, T_prev + T, H, W)
                front -= previous.shape[2]
            cache.remember(self, x)
        return super().forward(F.pad(x, (*self.space_pad, front, 0)))


class RMSNorm(nn.Module):
    """Channel RMS norm as Wan writes it: L2-normalize over channels, times sqrt(C) and a learned gain."""

    def __init__(self, dim: int, images: bool = True):
        super().__init__()
        self.scale = dim ** 0.5
        # gamma broadcasts over (H, W) for images, (T, H, W) for videos; the shape is the checkpoint's
        self.gamma = nn.Parameter(torch.ones(dim, *(1,) * (2 if images else 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) * self.scale * self.gamma


class Upsample2x(nn.Module):
    """Nearest-exact 2x spatial upsampling, computed in fp32 because bf16 nearest is not supported everywhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x.float(), scale_factor=2.0, mode="nearest-exact").type_as(x)


class ResidualBlock(nn.Module):
    """RMSNorm-SiLU-CausalConv3d twice, plus a 1x1x1 conv shortcut when the width changes."""

    takes_cache = True

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.residual = CausalSequential(
            RMSNorm(in_dim, images=False), nn.SiLU(), CausalConv3d(in_dim, out_dim, 3, padding=1),
            RMSNorm(out_dim, images=False), nn.SiLU(),
            nn.Identity(),  # the reference's dropout(0.0): keeps the last conv at index 6 as in the checkpoints
            CausalConv3d(out_dim, out_dim, 3, padding=1))
        self.shortcut = CausalConv3d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity()

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        return self.residual(x, cache) + self.shortcut(x)


class AttentionBlock(nn.Module):
    """Single-head self-attention over the pixels of each frame separately (no attention across time)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + per_frame(self._attend, x)

    def _attend(self, frames: torch.Tensor) -> torch.Tensor:
        n, c, h, w = frames.shape  # N = B*T
        qkv = self.to_qkv(self.norm(frames)).reshape(n, 1, 3 * c, h * w)  # (N, 1, 3C, HW)
        q, k, v = qkv.transpose(-1, -2).chunk(3, dim=-1)  # each (N, 1, HW, C)
        out = F.scaled_dot_product_attention(q, k, v)  # (N, 1, HW, C)
        return self.proj(out.squeeze(1).transpose(1, 2).reshape(n, c, h, w))


class Resample(nn.Module):
    """2x spatial up/down-sampling per frame, with a causal 2x in time for the '3d' modes.

    As in the reference, the first chunk passes through without temporal resampling: the lone first
    frame of a video stays one frame (1 pixel frame <-> 1 latent frame).
    """

    takes_cache = True
    MODES = ("upsample2d", "upsample3d", "downsample2d", "downsample3d")

    def __init__(self, dim: int, mode: str, upsample_out_dim: int | None = None):
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"Resample mode {mode!r} is not one of {self.MODES}")
        self.mode = mode
        if mode.startswith("upsample"):
            # Wan 2.1 halves the width here (upsample_out_dim = dim // 2); Wan 2.2 keeps it
            self.resample = nn.Sequential(Upsample2x(), nn.Conv2d(dim, upsample_out_dim or dim, 3, padding=1))
        else:
            # pad right/bottom only: a stride-2 3x3 conv then maps H -> H/2 exactly
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=2))
        if mode == "upsample3d":
            self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
        elif mode == "downsample3d":
            self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1))

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        if self.mode == "upsample3d" and not cache.first_chunk:
            x = self._double_frames(x, cache)
        x = per_frame(self.resample, x)
        if self.mode == "downsample3d":
            x = self._halve_frames(x, cache)
        return x

    def _double_frames(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        b, c, t, h, w = x.shape
        x = self.time_conv(x, cache).reshape(b, 2, c, t, h, w)  # two output frames per input frame
        return x.permute(0, 2, 3, 1, 4, 5).reshape(b, c, 2 * t, h, w)  # interleave: (B, C, 2T, H, W)

    def _halve_frames(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        previous = cache.previous(self, x.device)
        cache.remember(self, x, frames=1)
        if cache.first_chunk:
            return x
        return self.time_conv(torch.cat([previous, x], dim=2))  # (B, C, T/2, H, W) for even T


class AvgDown3D(nn.Module):
    """Wan 2.2's parameter-free shortcut: fold (t, s, s) blocks into channels, then average channel groups."""

    def __init__(self, in_dim: int, out_dim: int, factor_t: int, factor_s: int):
        super().__init__()
        self.out_dim = out_dim
        self.factor_t, self.factor_s = factor_t, factor_s
        self.group_size = in_dim * factor_t * factor_s * factor_s // out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ft, fs = self.factor_t, self.factor_s
        x = F.pad(x, (0, 0, 0, 0, (ft - x.shape[2] % ft) % ft, 0))  # front-pad T to a multiple of ft
        b, c, t, h, w = x.shape
        x = x.reshape(b, c, t // ft, ft, h // fs, fs, w // fs, fs)
        x = x.permute(0, 1, 3, 5, 7, 2, 4, 6)  # (B, C, ft, fs, fs, T', H', W')
        x = x.reshape(b, self.out_dim, self.group_size, t // ft, h // fs, w // fs)
        return x.mean(dim=2)  # (B, out_dim, T', H', W')


class DupUp3D(nn.Module):
    """Wan 2.2's parameter-free shortcut: repeat channels, then unfold them into (t, s, s) blocks."""

    takes_cache = True

    def __init__(self, in_dim: int, out_dim: int, factor_t: int, factor_s: int):
        super().__init__()
        self.out_dim = out_dim
        self.factor_t, self.factor_s = factor_t, factor_s
        self.repeats = out_dim * factor_t * factor_s * factor_s // in_dim

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        ft, fs = self.factor_t, self.factor_s
        b, _, t, h, w = x.shape
        x = x.repeat_interleave(self.repeats, dim=1)  # (B, out_dim*ft*fs*fs, T, H, W)
        x = x.reshape(b, self.out_dim, ft, fs, fs, t, h, w)
        x = x.permute(0, 1, 5, 2, 6, 3, 7, 4)  # (B, C, T, ft, H, fs, W, fs)
        x = x.reshape(b, self.out_dim, t * ft, h * fs, w * fs)
        # the first chunk's lone frame does not double in time (matches Resample)
        return x[:, :, ft - 1:] if cache.first_chunk else x


class DownBlock(nn.Module):
    """Wan 2.2 encoder level: res blocks + resample, plus an average-pool shortcut around them."""

    takes_cache = True

    def __init__(self, in_dim: int, out_dim: int, num_blocks: int, temporal: bool, spatial: bool):
        super().__init__()
        self.avg_shortcut = AvgDown3D(in_dim, out_dim, factor_t=2 if temporal else 1, factor_s=2 if spatial else 1)
        blocks = [ResidualBlock(in_dim if i == 0 else out_dim, out_dim) for i in range(num_blocks)]
        if spatial:
            blocks.append(Resample(out_dim, "downsample3d" if temporal else "downsample2d"))
        self.downsamples = CausalSequential(*blocks)

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        return self.downsamples(x, cache) + self.avg_shortcut(x)


class UpBlock(nn.Module):
    """Wan 2.2 decoder level: res blocks + resample, plus a channel-duplicating shortcut when it upsamples."""

    takes_cache = True

    def __init__(self, in_dim: int, out_dim: int, num_blocks: int, temporal: bool, spatial: bool):
        super().__init__()
        self.avg_shortcut = DupUp3D(in_dim, out_dim, factor_t=2 if temporal else 1, factor_s=2) if spatial else None
        blocks = [ResidualBlock(in_dim if i == 0 else out_dim, out_dim) for i in range(num_blocks)]
        if spatial:
            blocks.append(Resample(out_dim, "upsample3d" if temporal else "upsample2d", upsample_out_dim=out_dim))
        self.upsamples = CausalSequential(*blocks)

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        out = self.upsamples(x, cache)
        return out if self.avg_shortcut is None else out + self.avg_shortcut(x, cache)


def middle_blocks(dim: int) -> CausalSequential:
    return CausalSequential(ResidualBlock(dim, dim), AttentionBlock(dim), ResidualBlock(dim, dim))


def output_head(dim: int, out_dim: int) -> CausalSequential:
    return CausalSequential(RMSNorm(dim, images=False), nn.SiLU(), CausalConv3d(dim, out_dim, 3, padding=1))


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """[B, C, T, H, W] -> [B, C*patch*patch, T, H/patch, W/patch], channel order (c, w-offset, h-offset) as Wan 2.2."""
    if patch == 1:
        return x
    b, c, t, h, w = x.shape
    x = x.reshape(b, c, t, h // patch, patch, w // patch, patch)  # (B, C, T, H', q, W', r)
    x = x.permute(0, 1, 6, 4, 2, 3, 5)  # (B, C, r, q, T, H', W')
    return x.reshape(b, c * patch * patch, t, h // patch, w // patch)


def unpatchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """Inverse of `patchify`."""
    if patch == 1:
        return x
    b, cpp, t, h, w = x.shape
    x = x.reshape(b, cpp // (patch * patch), patch, patch, t, h, w)  # (B, C, r, q, T, H', W')
    x = x.permute(0, 1, 4, 5, 3, 6, 2)  # (B, C, T, H', q, W', r)
    return x.reshape(b, -1, t, h * patch, w * patch)
