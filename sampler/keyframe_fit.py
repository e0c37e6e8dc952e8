"""Keyframe fit: after sampling, nudge each latent frame that holds a keyframe until the VAE decodes the given image.

The sampler pins a keyframe's latent frame to the VAE's encoding of it, so what reaches the screen is that encoding
decoded: through a lossy VAE, a softer image than the one given. spacetime-mini's VAE gives a lone first frame back
at about 26 dB PSNR, and the last frame of a 4-frame group at about 22 (docs/EMBEDDED.md, "Keyframe fit"). Fitting
the latent frame by gradient descent through the decoder, from the temporal cache the frames before it left, makes
the decoder show the given image there while the group's other pixel frames are held to what they decoded to. The
DiT never sees the fitted latents (it sampled with the encoded ones); only the decoded video changes.

Single images only (Image to Video, Infill Frames): a clip given whole, as Extend Video gives one, is left as
sampled, since fitting it made the copied clip sharper than its continuation and the seam between them twice as
visible. Each step is a backward pass through the decoder for one latent frame: tens of milliseconds at 64x64,
seconds and gigabytes at 480p.
"""
import math

import torch
from torch.func import functional_call

from ..vae.cache import CausalCache
from .conditioning import Keyframes, latent_frame_of, pixel_count, pixel_span

FIT_STEPS = 10
FIT_LEARNING_RATE = 0.1  # Adam, in raw latent units (spacetime-mini's latents have a std of about 1)
# weight of each of a latent frame's other pixel frames staying as decoded, against 1 for the given one
HOLD_WEIGHT = 1.0


def fit_keyframes(latent_raw: torch.Tensor, keyframes: Keyframes, steps: int = FIT_STEPS,
                  progress=None) -> tuple[torch.Tensor, str]:
    """Raw latents [B, C, T, H, W] with each latent frame holding a single keyframe image of strength 1 fitted, and
    a note for the user ("" when there was none): how many were fitted, and their PSNR before and after.

    `progress(done, total)` is called after every step (raising from it stops the fit, e.g. ComfyUI's Cancel)."""
    vae = keyframes.vae
    _, step_h, step_w = vae.config.compression
    size = (latent_raw.shape[3] * step_h, latent_raw.shape[4] * step_w)
    images = keyframes.pinned_images(pixel_count(latent_raw.shape[2]), size)
    if not images or steps < 1:
        return latent_raw, ""
    by_latent = {latent_frame_of(pixel): (pixel, image.permute(2, 0, 1) * 2 - 1) for pixel, image in images.items()}
    errors, total = [], steps * len(by_latent)
    # a frame's step, counted after the steps of the frames already fitted (one `errors` entry each)
    report = (lambda step: progress(len(errors) * steps + step, total)) if progress is not None else None
    with torch.inference_mode(False), torch.enable_grad():
        decode = _Decoder(vae)
        z = latent_raw.detach().clone().float().to(decode.device)
        cache = CausalCache()
        for j in range(max(by_latent) + 1):  # the decoder is causal: frames after the last keyframe do not matter
            if j in by_latent:
                z[:, :, j:j + 1], before, after = _fit_frame(decode, z[:, :, j:j + 1], cache, j, *by_latent[j], steps,
                                                             report)
                errors.append((before, after))
            else:
                with torch.no_grad():
                    decode(z[:, :, j:j + 1], cache)
            cache.next_chunk()
    before, after = (sum(pair[i] for pair in errors) / len(errors) for i in (0, 1))
    note = (f"keyframe fit: {len(errors)} latent frame(s) fitted to decode to their keyframe image, "
            f"{_psnr(before):.1f} -> {_psnr(after):.1f} dB")
    return z.to(latent_raw.device, latent_raw.dtype), note


class _Decoder:
    """The VAE's decoder as a function of one latent frame and the cache, on weights autograd can use.

    ComfyUI runs nodes in inference mode, where loaded weights are inference tensors that cannot be saved for a
    backward pass; those are copied (the decoder's size, once per fit)."""

    def __init__(self, vae):
        self.vae, self.device, self.dtype = vae, vae.conv2.weight.device, vae.conv2.weight.dtype
        self.conv2 = _usable_weights(vae.conv2)
        self.decoder = _usable_weights(vae.decoder)

    def __call__(self, z: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        """Raw latent frame [B, C, 1, H, W] -> pixels [B, 3, t, H', W'] in about -1..1 (not clamped), t = 1 or 4."""
        x = functional_call(self.vae.conv2, self.conv2, (z.to(self.dtype),))
        return self.vae.to_pixels(functional_call(self.vae.decoder, self.decoder, (x, cache)))


def _usable_weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: w.clone() if w.is_inference() else w.detach() for name, w in module.named_parameters()}


def _fit_frame(decode: _Decoder, z: torch.Tensor, cache: CausalCache, latent: int, pixel: int, image: torch.Tensor,
               steps: int, report=None) -> tuple[torch.Tensor, float, float]:
    """Fit `z` [B, C, 1, H, W], latent frame `latent`, so that it decodes after the frames before it (`cache`) to
    `image` [3, H, W] in -1..1 at pixel frame `pixel`, its other pixel frames staying as they were.

    Returns the fitted frame and the image's mean squared error (in -1..1) before and after, and leaves `cache` past
    the fitted frame, as decoding it would. The cache keeps no graph, so the frames after this one are not held:
    measured, they moved by about 35 dB PSNR (docs/EMBEDDED.md, "Keyframe fit"). `report(step)` is called after
    each step."""
    state = cache.snapshot()
    slot = list(pixel_span(latent)).index(pixel)
    image = image.to(z.device)
    with torch.no_grad():
        goal = decode(z, cache)  # [B, 3, t, H, W] as sampled
    before = _error(goal[:, :, slot], image)
    goal[:, :, slot] = image
    weight = torch.full((goal.shape[2],), HOLD_WEIGHT, device=goal.device)
    weight[slot] = 1.0
    weight = (weight / weight.sum()).view(1, 1, -1, 1, 1)
    shift = torch.zeros_like(z, requires_grad=True)
    optimizer = torch.optim.Adam([shift], lr=FIT_LEARNING_RATE)
    for step in range(steps):
        cache.restore(state)
        loss = ((decode(z + shift, cache) - goal) ** 2 * weight).mean(dim=(0, 1, 3, 4)).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if report is not None:
            report(step + 1)
    cache.restore(state)
    fitted = (z + shift).detach()
    with torch.no_grad():
        after = _error(decode(fitted, cache)[:, :, slot], image)
    return fitted, before, after


def _error(decoded: torch.Tensor, image: torch.Tensor) -> float:
    """Mean squared error of decoded pixels [B, 3, H, W] (clamped as shown) against `image` [3, H, W], in -1..1."""
    return float(((decoded.clamp(-1, 1) - image) ** 2).mean())


def _psnr(mse: float) -> float:
    """PSNR in dB of a mean squared error measured in -1..1 (a range of 2)."""
    return 10 * math.log10(4 / max(mse, 1e-12))
