"""The denoiser: wraps a Wan DiT into the solvers' `denoised = model(x, sigma)` for one window of a video.

It applies known frames the way the model can take them (`mechanism`), classifier-free guidance, and the Wan 2.2
A14B switch from the high-noise to the low-noise expert. Latents here are normalized, [B, C, T, H, W].

A known latent frame with strength s is active while sigma > 1 - s (always for s = 1, never for s = 0).
Whatever the mechanism, the sampler returns strength-1 frames as given; the mechanism decides how the model
sees them while it generates the others:
- per_token (Wan 2.2 TI2V 5B, spacetime-mini): active frames enter clean with timestep 0 and leave as given;
- renoise (plain T2V): active frames enter re-noised to the current sigma with the window's own noise,
  x_t = sigma*noise + (1-sigma)*x0_known, and leave as given;
- concat (Wan 2.2 I2V A14B, Wan 2.1 I2V / FLF2V): input [x 16 | mask 4 | image latent 16]; the mask has one
  channel per pixel frame of a latent frame, 1 where that frame is given, and the image latent encodes the given
  pixel frames with gray between them, as Wan's reference builds them (a last frame alone in its latent frame
  is [gray, gray, gray, last], mask 0 0 0 1; only latent frames given whole are kept as given). Wan 2.1's also
  cross-attend to the CLIP-vision tokens of the first (and last) known frame, with and without the prompt alike;
- vace (Wan 2.1 VACE): vace_context [inactive 16 | reactive 16 | mask 64]: inactive holds the known frames,
  reactive the latent of gray, mask 0 on active frames and 1 elsewhere. Subject references (as Wan's VACE
  pipeline takes them) are latent frames of their own in front of the window's, in x and in vace_context
  [reference | zeros | mask 0]; the runner drops them after sampling.
"""
from dataclasses import dataclass

import torch

from ..core.errors import SpacetimeError

MECHANISMS = ("per_token", "concat", "vace", "renoise")
VACE_MASK_CHANNELS = 64  # the 8x8 pixel mask of each latent pixel folded into channels
CONCAT_MASK_CHANNELS = 4  # one per pixel frame of a latent frame

DESCRIPTIONS = {
    "per_token": "per-token timesteps: known latent frames stay clean (timestep 0) while the rest are denoised",
    "concat": "channel concat: a mask and the known frames' latents are fed as extra input channels",
    "vace": "VACE: known frames enter as control frames with a mask",
    "renoise": "re-noising: known latent frames are re-noised to the current noise level at every step",
}


# ------------------------------------------------------------------ which mechanism

def _can_take(config) -> dict[str, str | None]:
    """Mechanism -> None when `config`'s model can take it, else why not."""
    plain = config.in_dim == config.out_dim and not config.vace_layers
    return {
        "per_token": None if config.per_frame_timesteps else "it was not trained with per-frame timesteps",
        "concat": None if config.in_dim == 2 * config.out_dim + CONCAT_MASK_CHANNELS
        else f"it takes {config.in_dim} input channels, not {2 * config.out_dim + CONCAT_MASK_CHANNELS}",
        "vace": None if config.vace_layers else "it has no VACE blocks",
        "renoise": None if plain else "its extra input channels need their own conditioning",
    }


def resolve_mechanism(model, requested: str | None = None) -> str:
    """The conditioning mechanism to use with a SpacetimeModel: its own, or `requested` if it can take it."""
    config = model.config
    if requested is None:
        return config.mechanism
    if requested not in MECHANISMS:
        raise SpacetimeError(f"conditioning mechanism {requested!r} is unknown; expected one of {MECHANISMS}.")
    reasons = _can_take(config)
    if reasons[requested] is not None:
        usable = [name for name, why in reasons.items() if why is None]
        raise SpacetimeError(f"{config.variant} can't take {requested!r} conditioning: {reasons[requested]}. "
                             f"It can take: {', '.join(usable)}.")
    return requested


# ------------------------------------------------------------------ one window's inputs

@dataclass(frozen=True)
class WindowInputs:
    """What the denoiser needs for one window, on the compute device."""
    mechanism: str
    strength: torch.Tensor  # [T] known-frame strength, 0 where unknown
    known: torch.Tensor  # [1 or B, C, T, H, W] normalized latents of the known frames
    noise: torch.Tensor  # [B, C, T, H, W] the window's initial noise (re-noising reuses it)
    gray: torch.Tensor | None  # [1, C, T, H, W] latent of an all-gray video (concat, vace)
    context: torch.Tensor  # [1, L, D]
    negative: torch.Tensor | None  # [1, L', D]; None when cfg == 1
    image_tokens: torch.Tensor | None = None  # [1 or 2, 257, 1280] CLIP-vision tokens (Wan 2.1 I2V / FLF2V)
    slots: torch.Tensor | None = None  # [4, t] channel concat: strength of each latent frame's 4 pixel frames
    references: torch.Tensor | None = None  # [1, C, R, H, W] VACE subject references (x then holds R + t frames)
    reference_noise: torch.Tensor | None = None  # [B, C, R, H, W]

    def active(self, sigma: float) -> torch.Tensor:
        """[T] bool: known frames that are pinned at noise level `sigma`."""
        return self.strength > 1 - sigma


def _frames(mask: torch.Tensor) -> torch.Tensor:
    """[T] -> [1, 1, T, 1, 1] for broadcasting over latents."""
    return mask.view(1, 1, -1, 1, 1)


class Denoiser:
    """`denoised = Denoiser(model, inputs, cfg)(x, sigma)`, the x0 estimate of a window's normalized latent."""

    def __init__(self, model, inputs: WindowInputs, cfg: float):
        self.model, self.inputs, self.cfg = model, inputs, cfg

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s = float(sigma)
        v, v_negative = self.velocities(x, s, negative=self.cfg != 1)
        if v_negative is not None:
            v = v_negative + self.cfg * (v - v_negative)  # classifier-free guidance in velocity space
        denoised = x - s * v  # flow matching: x_t = sigma*noise + (1-sigma)*x0, v = noise - x0
        if self.inputs.mechanism in ("per_token", "renoise"):
            denoised = torch.where(_frames(self.inputs.active(s)), self.inputs.known, denoised)
        return denoised

    def _model_input(self, x, sigma, active):
        """(DiT input, timestep [B] or [B, T], extra DiT kwargs) for the mechanism in use."""
        inputs, batch = self.inputs, x.shape[0]
        pinned = _frames(active)
        t = torch.full((batch,), sigma * 1000, device=x.device)
        if inputs.mechanism == "per_token":
            frame_t = torch.where(active, 0.0, sigma * 1000).to(x.device)  # [T]
            return torch.where(pinned, inputs.known, x), frame_t.expand(batch, -1), {}
        if inputs.mechanism == "renoise":
            renoised = sigma * inputs.noise + (1 - sigma) * inputs.known
            return torch.where(pinned, renoised, x), t, {}
        if inputs.mechanism == "concat":
            given = inputs.slots > 1 - sigma  # [4, T]: the pixel frames of each latent frame given at this sigma
            image = torch.where(_frames(given.any(0)), inputs.known, inputs.gray).expand(batch, -1, -1, -1, -1)
            mask = given.float()[None, :, :, None, None].expand(batch, -1, -1, *x.shape[3:])
            extra = {} if inputs.image_tokens is None else {"clip_fea": inputs.image_tokens.repeat(batch, 1, 1)}
            return torch.cat([x, mask, image], dim=1), t, extra  # [B, C + 4 + C, T, H, W]
        image = torch.where(pinned, inputs.known, inputs.gray).expand(batch, -1, -1, -1, -1)
        mask = (~pinned).float().expand(batch, VACE_MASK_CHANNELS, -1, *x.shape[3:])
        reactive = inputs.gray.expand(batch, -1, -1, -1, -1)
        control = torch.cat([image, reactive, mask], dim=1)  # [B, 2C + 64, T, H, W]
        if inputs.references is not None:  # in front, as x holds them: each its latent, zeros, mask 0 (known)
            refs = inputs.references.expand(batch, -1, -1, -1, -1)
            known = refs.new_zeros(batch, VACE_MASK_CHANNELS, *refs.shape[2:])
            control = torch.cat([torch.cat([refs, torch.zeros_like(refs), known], dim=1), control], dim=2)
        return x, t, {"vace_context": control}

    def velocities(self, x: torch.Tensor, sigma: float, negative: bool = True):
        """(velocity with the prompt, velocity with the negative prompt or None) at noise level `sigma`."""
        x_in, timestep, extra = self._model_input(x, sigma, self.inputs.active(sigma))
        dit, batch = self.model.expert(sigma), x_in.shape[0]
        v = dit(x_in, timestep, self.inputs.context.expand(batch, -1, -1), **extra)
        if not negative:
            return v, None
        return v, dit(x_in, timestep, self.inputs.negative.expand(batch, -1, -1), **extra)
