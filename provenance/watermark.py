"""Invisible video watermark: a keyed +-1 chip tile repeated over the frame and over time, found by FFT correlation.

Reference: Cox et al., "Secure spread spectrum watermarking for multimedia" (1997); the periodic tile with a
known sync part searched by correlation follows Kutter, "Watermarking resisting to translation, rotation and
scaling" (1998); the detector whitens the folded tile as in phase-only matched filtering (Horner & Gianino,
1984). Names: T frames, H x W pixels, n chips per tile side, o detector samples per chip, P = n * o.

The tile is static in screen space, so frame-rate changes, dropped or blended frames keep it; a crop only
shifts it (the FFT search finds the shift) and a resize keeps it on the frame's own grid (chips are a fixed
fraction of the short side). Every frame and every tile repeats every bit, and detection sums them all
(soft repetition decoding); a CRC-16 over the payload rejects chance decodes.
"""
import binascii
import hashlib
import itertools
import math
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from ..core.errors import SpacetimeError

_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, the weights h264's yuv420p conversion uses


@dataclass(frozen=True)
class WatermarkConfig:
    tile: int = 32  # n: chips per tile side
    sync_fraction: float = 0.25  # share of chips carrying the known sync pattern; the rest carry the payload
    chips_per_short_side: int = 96  # chip size = short side / this, so a resize keeps the chip grid
    min_chip_px: float = 2.0  # h264 discards single-pixel detail, so chips never get smaller than this
    strength: float = 3.0 / 255  # luma amplitude of one chip
    payload_bytes: int = 6  # UTF-8 bytes carried; a CRC-16 is added
    chase_bits: int = 8  # on a CRC failure, try flipping up to two of this many least reliable bits
    key: str = "comfyui-spacetime"  # seeds the chip signs and layout; detection needs the same key
    crop_scales: tuple[float, ...] = (1.0, 1 / 0.95, 1 / 0.9, 1 / 0.85)  # chip-size guesses for cropped input
    oversample: int = 2  # o: detector samples per chip side, for half-chip shift accuracy
    min_confidence: float = 0.99  # sync evidence needed (besides the CRC) to report a mark as found

    @property
    def payload_bits(self) -> int:
        return 8 * (self.payload_bytes + 2)


DEFAULT_WATERMARK = WatermarkConfig()


@dataclass(frozen=True)
class WatermarkDetection:
    """found: sync peak and CRC both agree. confidence: 1 - the chance that unmarked content gives this evidence
    (the sync peak, times the CRC's false-accept rate when a payload decoded). Without a payload it is only the
    sync evidence, which is spread over 0..1 on unmarked content: trust `found`, not a lone high confidence."""
    found: bool
    payload: str | None
    confidence: float


def describe_detection(result: WatermarkDetection) -> str:
    """One line for people. A high sync confidence without a payload is not reported: flat unmarked content
    produces one in about 1 of 5 clips (docs/PROVENANCE.md), so only the CRC-checked payload counts."""
    if result.found:
        return f"watermark found: payload {result.payload!r}, confidence {result.confidence:.6f}"
    return "no watermark found"


# ---------------------------------------------------------------- keyed tile layout

@dataclass(frozen=True)
class _Layout:
    signs: torch.Tensor  # (n*n,) +-1 chip signs
    sync: torch.Tensor  # (n*n,) bool, True where a chip belongs to the sync pattern
    bit_of_chip: torch.Tensor  # (n_payload_chips,) payload bit index of each non-sync chip, in chip order


@lru_cache(maxsize=4)
def _layout(config: WatermarkConfig) -> _Layout:
    n_chips = config.tile ** 2
    # SHA-256 rather than a PRNG: the layout must never change across numpy/torch versions, or old marks die.
    stream = torch.tensor(list(_key_bytes(config.key, 5 * n_chips)), dtype=torch.int64)
    signs = (stream[:n_chips] % 2) * 2 - 1
    rank = (stream[n_chips:].reshape(n_chips, 4) * torch.tensor([1 << 24, 1 << 16, 1 << 8, 1])).sum(1)
    order = torch.argsort(rank, stable=True)
    n_sync = round(config.sync_fraction * n_chips)
    sync = torch.zeros(n_chips, dtype=torch.bool)
    sync[order[:n_sync]] = True
    bit_of_chip = torch.arange(n_chips - n_sync) % config.payload_bits
    return _Layout(signs=signs.float(), sync=sync, bit_of_chip=bit_of_chip)


def _key_bytes(key: str, count: int) -> bytes:
    blocks = (hashlib.sha256(f"{key}/{i}".encode()).digest() for i in range(math.ceil(count / 32)))
    return b"".join(blocks)[:count]


def _tile(payload_bits: torch.Tensor, config: WatermarkConfig) -> torch.Tensor:
    """The +-1 chip tile (n, n) for the given payload bits."""
    layout = _layout(config)
    values = torch.ones(config.tile ** 2)
    values[~layout.sync] = payload_bits[layout.bit_of_chip].float() * 2 - 1
    return (values * layout.signs).reshape(config.tile, config.tile)


# ---------------------------------------------------------------- payload coding

def _encode_payload(payload: str, config: WatermarkConfig) -> torch.Tensor:
    data = payload.encode("utf-8")
    if len(data) > config.payload_bytes or "\x00" in payload:
        raise SpacetimeError(f"watermark payload {payload!r} is {len(data)} UTF-8 bytes; expected at most "
                             f"{config.payload_bytes} bytes without NUL characters; use a shorter id")
    data = data.ljust(config.payload_bytes, b"\x00")
    framed = data + binascii.crc_hqx(data, 0xFFFF).to_bytes(2, "big")
    return torch.tensor([(byte >> (7 - i)) & 1 for byte in framed for i in range(8)])


def _decode_soft(soft_bits: torch.Tensor, config: WatermarkConfig) -> str | None:
    """Chase decoding (Chase, 1972): the hard decision, then flips of the least reliable bits, until the CRC holds."""
    hard = soft_bits > 0
    weakest = soft_bits.abs().argsort()[: config.chase_bits]
    for n_flips in range(3):
        for flips in itertools.combinations(weakest.tolist(), n_flips):
            bits = hard.clone()
            bits[list(flips)] ^= True
            payload = _decode_payload(bits)
            if payload is not None:
                return payload
    return None


def _decode_payload(bits: torch.Tensor) -> str | None:
    """The payload string, or None when the CRC does not match."""
    framed = bytes(int("".join(str(int(b)) for b in bits[i:i + 8]), 2) for i in range(0, len(bits), 8))
    data, crc = framed[:-2], int.from_bytes(framed[-2:], "big")
    if binascii.crc_hqx(data, 0xFFFF) != crc:
        return None
    try:
        return data.rstrip(b"\x00").decode("utf-8")
    except UnicodeDecodeError:
        return None


# ---------------------------------------------------------------- embedding

def embed_invisible_watermark(frames: torch.Tensor, payload: str,
                              config: WatermarkConfig = DEFAULT_WATERMARK) -> torch.Tensor:
    """Add the keyed mark carrying `payload` to IMAGE frames [T, H, W, 3] in 0..1; returns new frames."""
    _check_frames(frames)
    _, h, w, _ = frames.shape
    tile = _tile(_encode_payload(payload, config), config)
    pattern = _render(tile, h, w, _chip_px(h, w, config))  # (H, W)
    # The same delta on R, G and B changes luma only, which the eye notices least in a noise-like pattern.
    return (frames + config.strength * pattern.to(frames)[None, :, :, None]).clamp(0, 1)


def _chip_px(h: int, w: int, config: WatermarkConfig) -> float:
    return max(config.min_chip_px, min(h, w) / config.chips_per_short_side)


def _render(tile: torch.Tensor, h: int, w: int, chip: float) -> torch.Tensor:
    """Tile (n, n) of chips repeated over an H x W frame, one chip = `chip` pixels (nearest sampling)."""
    n = tile.shape[0]
    rows = ((torch.arange(h) + 0.5) / chip).floor().long() % n
    cols = ((torch.arange(w) + 0.5) / chip).floor().long() % n
    return tile[rows[:, None], cols[None, :]]  # (H, W)


# ---------------------------------------------------------------- detection

@dataclass(frozen=True)
class _Sync:
    z: float  # sync peak height in standard deviations of the correlation surface
    chips: torch.Tensor  # (n, n) chip values read at the found shift


def detect_invisible_watermark(frames: torch.Tensor,
                               config: WatermarkConfig = DEFAULT_WATERMARK) -> WatermarkDetection:
    """Look for the keyed mark in IMAGE frames [T, H, W, 3]: presence, payload and a confidence."""
    _check_frames(frames)
    _, h, w, _ = frames.shape
    luma = (frames.float() * torch.tensor(_LUMA)).sum(-1)  # (T, H, W)
    chip = _chip_px(h, w, config)
    best = max((_sync_search(luma, chip * scale, config) for scale in config.crop_scales), key=lambda s: s.z)
    sync_chance = _chance(best.z, len(config.crop_scales) * (config.tile * config.oversample) ** 2)
    payload = _decode_soft(_soft_bits(best.chips, config), config)
    found = payload is not None and 1 - sync_chance >= config.min_confidence
    # A decoded payload is further evidence: noise passes the CRC for one of the Chase candidates this rarely.
    chance = sync_chance * (_chase_candidates(config) / 2 ** 16 if found else 1.0)
    return WatermarkDetection(found=found, payload=payload if found else None, confidence=1 - chance)


def _sync_search(luma: torch.Tensor, chip: float, config: WatermarkConfig) -> _Sync:
    o, n = config.oversample, config.tile
    folded = _whiten(_fold(_residual(luma, chip, config), n * o))  # (P, P)
    template = _tile(torch.zeros(config.payload_bits), config) * _layout(config).sync.reshape(n, n)
    template = template.repeat_interleave(o, 0).repeat_interleave(o, 1)  # (P, P), chips of o x o samples
    spectrum = torch.fft.rfft2(folded) * torch.fft.rfft2(template).conj()
    corr = torch.fft.irfft2(spectrum, s=folded.shape)  # (P, P): corr[dy, dx] = sum folded[y+dy, x+dx] * template
    peak = int(corr.argmax())
    dy, dx = divmod(peak, n * o)
    z = float((corr.flatten()[peak] - corr.mean()) / corr.std().clamp(min=1e-12))
    aligned = torch.roll(folded, shifts=(-dy, -dx), dims=(0, 1))  # aligned[y, x] = folded[y+dy, x+dx]
    return _Sync(z=z, chips=aligned.reshape(n, o, n, o).mean((1, 3)))  # (n, n)


def _residual(luma: torch.Tensor, chip: float, config: WatermarkConfig) -> torch.Tensor:
    """Resample so one chip is o x o samples, then keep only chip-scale detail (the mark) and clip edges."""
    o = config.oversample
    grid = F.interpolate(luma[:, None], scale_factor=o / chip, mode="bilinear", antialias=True,
                         align_corners=False)  # (T, 1, H', W')
    k = 2 * o + 1
    local_mean = F.avg_pool2d(grid, k, stride=1, padding=k // 2, count_include_pad=False)
    # Content edges are orders of magnitude above the mark; clipping keeps one edge from outvoting many chips.
    limit = 4 * config.strength
    return (grid - local_mean).clamp(-limit, limit)[:, 0]  # (T, H', W')


def _fold(residual: torch.Tensor, period: int) -> torch.Tensor:
    """Average all samples with the same position modulo `period` over frames and tiles: (T, H', W') -> (P, P)."""
    t, h, w = residual.shape
    hb, wb = math.ceil(h / period), math.ceil(w / period)
    padded = F.pad(residual, (0, wb * period - w, 0, hb * period - h))  # (T, Hb*P, Wb*P)
    counts = F.pad(torch.ones(1, h, w), (0, wb * period - w, 0, hb * period - h))
    total = padded.reshape(t, hb, period, wb, period).sum((0, 1, 3))  # (P, P)
    count = counts.reshape(1, hb, period, wb, period).sum((0, 1, 3)) * t  # (P, P)
    return total / count.clamp(min=1)


def _whiten(folded: torch.Tensor) -> torch.Tensor:
    """Keep the phase, flatten the magnitude: the mark is white, the content's leftovers are not."""
    spectrum = torch.fft.rfft2(folded)
    return torch.fft.irfft2(spectrum / spectrum.abs().clamp(min=1e-12), s=folded.shape)


def _soft_bits(chips: torch.Tensor, config: WatermarkConfig) -> torch.Tensor:
    """Sum each payload bit's chips (sign removed): (n, n) -> (payload_bits,), positive means 1."""
    layout = _layout(config)
    payload = ~layout.sync
    votes = chips.flatten()[payload] * layout.signs[payload]
    return torch.zeros(config.payload_bits).index_add_(0, layout.bit_of_chip, votes)


def _chance(z: float, n_tests: int) -> float:
    """Bonferroni-corrected probability that noise gives a peak of z somewhere among n_tests correlation values."""
    return min(1.0, n_tests * 0.5 * math.erfc(z / math.sqrt(2)))


def _chase_candidates(config: WatermarkConfig) -> int:
    return sum(math.comb(config.chase_bits, flips) for flips in range(3))


def _check_frames(frames: torch.Tensor) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise SpacetimeError(f"frames have shape {tuple(frames.shape)}; expected IMAGE [T, H, W, 3] in 0..1; "
                             "convert RGBA or single images to a [T, H, W, 3] batch first")
