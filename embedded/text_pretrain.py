"""Pre-training the small UMT5 to read a caption's scene before the DiT learns to draw it.

Trained only through the DiT's flow-matching loss, the text encoder stayed a bag of word embeddings (the same word
at two positions encoded identically), so the DiT could not tell which colour belonged to the background and which
to the object: at high noise it predicted the dataset's mean colour whatever the prompt. Here each scene attribute
(background colour, first object's colour and shape, ...) is read back from the encoder's tokens by its own
attention-pooling probe, the same kind of query-over-tokens read the DiT's cross-attention does. The probes are
thrown away; only the encoder, which now binds each colour to its noun, goes on to the DiT stage.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.text_encoder import UMT5Encoder
from ..core.tokenizer import Tokenizer
from .world import BACKGROUND_KINDS, COLOURS, MOTIONS, SHAPES, Scene, WorldConfig, sample_scene

_COLOURS = tuple(COLOURS)
NONE = "none"
# attribute -> its classes; NONE where a scene may lack it (one object, a solid background)
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "background_kind": BACKGROUND_KINDS,
    "background_colour": _COLOURS,
    "background_colour_2": (*_COLOURS, NONE),
    "colour": _COLOURS,
    "shape": SHAPES,
    "motion": MOTIONS,
    "second_colour": (*_COLOURS, NONE),
    "second_shape": (*SHAPES, NONE),
    "relation": ("left of", "right of", NONE),
}


def scene_labels(scene: Scene) -> dict[str, int]:
    """The class index of every attribute the caption of `scene` states."""
    background, first = scene.background, scene.objects[0]
    second = scene.objects[1] if len(scene.objects) > 1 else None
    values = {"background_kind": background.kind, "background_colour": background.colours[0],
              "background_colour_2": background.colours[1] if len(background.colours) > 1 else NONE,
              "colour": first.colour, "shape": first.shape, "motion": first.motion,
              "second_colour": second.colour if second else NONE, "second_shape": second.shape if second else NONE,
              "relation": scene.relation or NONE}
    return {name: ATTRIBUTES[name].index(value) for name, value in values.items()}


class AttributeProbes(nn.Module):
    """One learned query per attribute attends over the encoder's tokens; a linear layer reads the class."""

    def __init__(self, width: int):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(len(ATTRIBUTES), width) * width ** -0.5)
        self.heads = nn.ModuleList(nn.Linear(width, len(classes)) for classes in ATTRIBUTES.values())

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """tokens [B, L, D], mask [B, L] -> per attribute, logits [B, classes]."""
        scores = torch.einsum("ad,bld->bal", self.queries, tokens) / tokens.shape[-1] ** 0.5
        weights = scores.masked_fill(~mask.bool()[:, None, :], float("-inf")).softmax(-1)  # [B, A, L]
        pooled = torch.einsum("bal,bld->bad", weights, tokens)
        return [head(pooled[:, a]) for a, head in enumerate(self.heads)]


def caption_batch(rng: np.random.Generator, tokenizer: Tokenizer, count: int, min_length: int):
    """(ids [B, L], mask [B, L], labels [B, attributes]) for `count` fresh scenes of the world."""
    world = WorldConfig(long_fraction=0.0)
    scenes = [sample_scene(rng, world) for _ in range(count)]
    ids, mask = tokenizer([s.caption for s in scenes], min_length)
    labels = torch.tensor([list(scene_labels(s).values()) for s in scenes])
    return ids, mask, labels


def probe_loss(text: UMT5Encoder, probes: AttributeProbes, ids, mask, labels) -> tuple[torch.Tensor, float]:
    """Mean cross-entropy over attributes, and the fraction of captions with every attribute right."""
    logits = probes(text(ids, mask), mask)
    loss = sum(F.cross_entropy(lg, labels[:, a]) for a, lg in enumerate(logits)) / len(logits)
    right = torch.stack([lg.argmax(-1) == labels[:, a] for a, lg in enumerate(logits)], 1).all(1)
    return loss, right.float().mean().item()
