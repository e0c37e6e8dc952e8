"""Which parts of a prompt the DiT reads: its loss on held-out clips under their true captions and altered ones.

The quality report says whether generated clips follow their prompts; this says which words the DiT ignores, in
about half a minute and without sampling. Held-out clips of one object moving in a straight line are encoded by the
VAE and noised at fixed levels with fixed noise; the DiT's training loss (object-weighted velocity error) is then
measured with each clip's caption, with the caption's direction of motion reversed, with the object's colour
changed, and with no caption. Altering a part the DiT reads raises the loss; altering one it ignores leaves the loss
where it was. Two tasks: text only, and the first latent frame given (image to video), where the direction alone
says where the object goes next.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from .quality import EVAL_SEED, eval_scenes, straight_movers
from .train import TrainConfig, flow_matching_loss, object_weight, to_pixels
from .world import COLOURS, DIRECTIONS, Scene, describe, visible_on

ALTERATIONS = ("reversed motion", "other colour", "no caption")
TASKS = ("text only", "first frame given")
RELIANCE_SEED = EVAL_SEED + 300_000
# each direction's reverse: the one whose vector is its negation
_OPPOSITE = {name: next(other for other, v in DIRECTIONS.items() if v == (-dx, -dy))
             for name, (dx, dy) in DIRECTIONS.items()}


def altered_caption(scene: Scene, alteration: str, rng: np.random.Generator) -> str:
    """A caption for `scene` (one object, straight motion) with one attribute altered, worded afresh from `rng`."""
    obj = scene.objects[0]
    if alteration == "no caption":
        return ""
    if alteration == "reversed motion":
        obj = dataclasses.replace(obj, motion=_OPPOSITE[obj.motion])
    elif alteration == "other colour":
        others = [c for c in COLOURS if c != obj.colour and visible_on(c, scene.background)]
        obj = dataclasses.replace(obj, colour=str(rng.choice(others)))
    return describe(dataclasses.replace(scene, objects=(obj,)), rng)


@torch.no_grad()
def prompt_reliance(models, clips: int = 72, sigmas=(0.8, 0.95), batch: int = 24,
                    seed: int = RELIANCE_SEED) -> dict[tuple[str, float], dict[str, float]]:
    """{(task, sigma): {"loss": loss with the true captions, alteration: loss with it / loss with the true ones}}.

    `models`: pipeline.Models of a per-frame-timestep DiT (the bundled spacetime-mini) with its VAE. Every caption
    kind sees the same clips and the same noise, so the ratios compare captions alone.
    """
    scenes = straight_movers(eval_scenes(4 * clips, seed))[:clips]
    dit, vae = models.model.dit, models.vae
    device = next(dit.parameters()).device
    pixels = torch.stack([to_pixels(frames) for frames, _ in scenes]).to(device)
    x0 = torch.cat([vae.normalize(vae.encode(pixels[i:i + batch])) for i in range(0, clips, batch)])
    rng = np.random.default_rng(seed)
    captions = {"true": [s.caption for _, s in scenes]}
    captions |= {a: [altered_caption(s, a, rng) for _, s in scenes] for a in ALTERATIONS}
    contexts = {kind: models.text_encoder.encode(texts).to(device) for kind, texts in captions.items()}
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed)).to(device)
    cfg = TrainConfig()  # the loss the DiT was trained on: objects weigh more
    weight = object_weight(x0, cfg.dit_object_weight, cfg.dit_object_threshold, channel_reduce=torch.mean)
    results = {}
    for task in TASKS:
        known = torch.zeros(x0.shape[0], x0.shape[2], dtype=torch.bool, device=device)
        known[:, 0] = task == "first frame given"
        for sigma in sigmas:
            loss = {kind: _batched_loss(dit, x0, context, known, torch.full((len(x0),), sigma, device=device), weight,
                                        noise, batch) for kind, context in contexts.items()}
            results[(task, sigma)] = {"loss": loss["true"]} | {a: loss[a] / loss["true"] for a in ALTERATIONS}
    return results


def _batched_loss(dit, x0, context, known, sigma, weight, noise, batch: int) -> float:
    """`flow_matching_loss` over all clips, `batch` at a time (each argument's first dimension is the clip)."""
    total = 0.0
    for i in range(0, len(x0), batch):
        part = slice(i, i + batch)
        total += float(flow_matching_loss(dit, x0[part], context[part], known[part], sigma[part], weight[part],
                                          noise[part])) * len(x0[part])
    return total / len(x0)


def format_reliance(results: dict[tuple[str, float], dict[str, float]]) -> str:
    """A plain-text table: the true captions' loss, and each alteration's loss as a multiple of it."""
    lines = [f"{'task':<18} {'noise':>5} {'loss':>7}  " + "  ".join(f"{a:>15}" for a in ALTERATIONS)]
    for (task, sigma), row in results.items():
        ratios = "  ".join(f"{row[a]:>14.3f}x" for a in ALTERATIONS)
        lines.append(f"{task:<18} {sigma:>5.2f} {row['loss']:>7.4f}  {ratios}")
    return "\n".join(lines)
