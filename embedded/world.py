"""The procedural video world of the embedded model: coloured shapes moving on plain or gradient backgrounds.

Every clip is a pure function of a seed: `make_clip(seed)` returns the frames and a `Scene` that records what
was drawn (colours, shapes, motion, per-frame positions and sizes) and a caption in the world's language.
The quality module reads the same `Scene` to know what a generated clip should show.

Coordinates are in pixels, x to the right and y downwards; frames are float32 `[T, H, W, 3]` in 0..1.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace

import numpy as np

# ---------------------------------------------------------------------------------------------------------------
# Vocabulary of the world
# ---------------------------------------------------------------------------------------------------------------

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.10, 0.10),
    "orange": (0.97, 0.55, 0.08),
    "yellow": (0.97, 0.90, 0.15),
    "green": (0.12, 0.68, 0.20),
    "blue": (0.12, 0.28, 0.92),
    "purple": (0.55, 0.18, 0.78),
    "pink": (0.98, 0.58, 0.78),
    "white": (0.97, 0.97, 0.97),
    "black": (0.05, 0.05, 0.05),
    "gray": (0.50, 0.50, 0.50),
}
SHAPES = ("circle", "square", "triangle")
# Unit direction per named straight motion, in image coordinates (y grows downwards).
DIRECTIONS: dict[str, tuple[float, float]] = {
    "left": (-1.0, 0.0),
    "right": (1.0, 0.0),
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
    "up-left": (-0.7071, -0.7071),
    "up-right": (0.7071, -0.7071),
    "down-left": (-0.7071, 0.7071),
    "down-right": (0.7071, 0.7071),
}
MOTIONS = tuple(DIRECTIONS) + ("bounce", "grow", "shrink", "still")
SIZES = ((64, 64), (96, 64), (64, 96))  # (width, height)
BACKGROUND_KINDS = ("solid", "vertical", "horizontal")

# Minimum RGB distance between an object's colour and any background colour behind it, so it stays visible.
_MIN_CONTRAST = 0.35


@dataclass(frozen=True)
class WorldConfig:
    """How clips are drawn: sizes, lengths and the mix of scene kinds."""

    sizes: tuple[tuple[int, int], ...] = SIZES
    frames: int = 17
    long_frames: int = 33
    long_fraction: float = 0.2
    fps: int = 8
    two_object_fraction: float = 0.25
    gradient_fraction: float = 0.25


# ---------------------------------------------------------------------------------------------------------------
# Scene description
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Background:
    """A solid colour (`colours` has one name) or a linear gradient from `colours[0]` to `colours[1]`.

    `vertical` runs from the top edge to the bottom edge, `horizontal` from the left edge to the right edge.
    """

    kind: str
    colours: tuple[str, ...]


@dataclass(frozen=True)
class SceneObject:
    """One drawn object: `centers` is `[T, 2]` (x, y) and `sizes` is `[T]` half-extents, both in pixels."""

    shape: str
    colour: str
    motion: str
    centers: np.ndarray
    sizes: np.ndarray


@dataclass(frozen=True)
class Scene:
    """Everything a clip shows. With two objects, `relation` is "left of" or "right of": objects[0] rel objects[1]."""

    width: int
    height: int
    frames: int
    fps: int
    background: Background
    objects: tuple[SceneObject, ...]
    relation: str | None
    caption: str

    @property
    def moves_straight(self) -> bool:
        """One object moving in a straight line: the scenes whose caption's direction says where the object goes."""
        return self.relation is None and self.objects[0].motion in DIRECTIONS


# ---------------------------------------------------------------------------------------------------------------
# Sampling a scene
# ---------------------------------------------------------------------------------------------------------------


def _rgb(name: str) -> np.ndarray:
    return np.asarray(COLOURS[name], dtype=np.float32)


def _distance_to_segment(point: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """RGB distance from a colour to the segment of blends between a and b (a gradient's colours)."""
    ab = b - a
    t = float(np.clip(np.dot(point - a, ab) / max(float(np.dot(ab, ab)), 1e-8), 0.0, 1.0))
    return float(np.linalg.norm(point - (a + t * ab)))


def visible_on(colour: str, background: Background) -> bool:
    """Whether an object of this colour stands out everywhere on the background."""
    ends = [_rgb(c) for c in background.colours]
    return _distance_to_segment(_rgb(colour), ends[0], ends[-1]) >= _MIN_CONTRAST


def _sample_background(rng: np.random.Generator, config: WorldConfig) -> Background:
    names = list(COLOURS)
    if rng.random() >= config.gradient_fraction:
        return Background("solid", (str(rng.choice(names)),))
    first, second = rng.choice(names, size=2, replace=False)
    kind = "vertical" if rng.random() < 0.5 else "horizontal"
    return Background(kind, (str(first), str(second)))


def _sample_colours(rng: np.random.Generator, background: Background, count: int) -> list[str]:
    allowed = [c for c in COLOURS if c not in background.colours and visible_on(c, background)]
    return [str(c) for c in rng.choice(allowed, size=count, replace=False)]


def _straight_path(rng, frames, width, height, radius, direction) -> np.ndarray:
    """Centers `[T, 2]` of a straight motion at 1-2 px/frame that stays fully inside the frame."""
    dx, dy = DIRECTIONS[direction]
    margin = radius + 1.0
    room = min(
        (width - 2 * margin) / abs(dx) if dx else np.inf,
        (height - 2 * margin) / abs(dy) if dy else np.inf,
    )
    speed = min(rng.uniform(1.0, 2.0), room / (frames - 1))
    travel = np.array([dx, dy]) * speed * (frames - 1)
    lo = np.array([margin, margin]) + np.maximum(-travel, 0.0)
    hi = np.array([width - margin, height - margin]) - np.maximum(travel, 0.0)
    start = rng.uniform(lo, np.maximum(hi, lo))  # equal when the path spans the whole frame (up to rounding)
    steps = np.arange(frames)[:, None]
    return start + steps * np.array([dx, dy]) * speed


def _reflect(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Fold an unbounded 1-D path into [lo, hi] as if it bounced off both walls."""
    span = hi - lo
    phase = np.mod(values - lo, 2 * span)
    return lo + np.where(phase > span, 2 * span - phase, phase)


def _bounce_path(rng, frames, width, height, radius) -> np.ndarray:
    margin = radius + 1.0
    angle = rng.uniform(0.25, 0.75) * np.pi / 2 + rng.integers(4) * np.pi / 2  # never axis-aligned
    velocity = rng.uniform(2.5, 4.0) * np.array([np.cos(angle), np.sin(angle)])
    start = rng.uniform([margin, margin], [width - margin, height - margin])
    free = start + np.arange(frames)[:, None] * velocity  # (T, 2) path without walls
    xs = _reflect(free[:, 0], margin, width - margin)
    ys = _reflect(free[:, 1], margin, height - margin)
    return np.stack([xs, ys], axis=1)


def _sample_single(rng, width, height, frames, colour) -> SceneObject:
    shape = str(rng.choice(SHAPES))
    motion = str(rng.choice(MOTIONS))
    scale = min(width, height) / 64.0
    radius = rng.uniform(6.0, 11.0) * scale
    sizes = np.full(frames, radius)
    if motion in DIRECTIONS:
        centers = _straight_path(rng, frames, width, height, radius, motion)
    elif motion == "bounce":
        centers = _bounce_path(rng, frames, width, height, radius)
    else:
        small, large = rng.uniform(4.0, 6.0) * scale, rng.uniform(13.0, 17.0) * scale
        ramp = np.linspace(0.0, 1.0, frames)
        sizes = {"grow": small + (large - small) * ramp, "shrink": large + (small - large) * ramp}.get(motion, sizes)
        margin = sizes.max() + 1.0
        center = rng.uniform([margin, margin], [width - margin, height - margin])
        centers = np.repeat(center[None], frames, axis=0)
    return SceneObject(shape, colour, motion, centers.astype(np.float32), sizes.astype(np.float32))


def _sample_pair(rng, width, height, frames, colours) -> tuple[SceneObject, SceneObject]:
    """Two objects side by side (left one first), both still or drifting up or down together."""
    scale = min(width, height) / 64.0
    radii = rng.uniform(5.0, 8.5, size=2) * scale
    motion = str(rng.choice(["still", "still", "up", "down"]))
    x_left = rng.uniform(radii[0] + 1.0, width * 0.4)
    x_right = rng.uniform(width * 0.6, width - radii[1] - 1.0)
    drift = {"still": 0.0, "up": -1.0, "down": 1.0}[motion] * rng.uniform(0.6, 1.2)
    margin = float(radii.max()) + 1.0
    travel = drift * (frames - 1)
    y_lo, y_hi = margin + max(-travel, 0.0), height - margin - max(travel, 0.0)
    steps = np.arange(frames)
    objects = []
    for x, radius, colour in zip((x_left, x_right), radii, colours):
        y = rng.uniform(y_lo, y_hi) + drift * steps
        centers = np.stack([np.full(frames, x), y], axis=1)  # (T, 2)
        sizes = np.full(frames, radius)
        objects.append(SceneObject(str(rng.choice(SHAPES)), colour, motion, centers.astype(np.float32),
                                   sizes.astype(np.float32)))
    return objects[0], objects[1]


def sample_scene(rng: np.random.Generator, config: WorldConfig = WorldConfig()) -> Scene:
    """Draw a random scene (without its frames); the caption wording is drawn from the same generator."""
    width, height = config.sizes[rng.integers(len(config.sizes))]
    frames = config.long_frames if rng.random() < config.long_fraction else config.frames
    background = _sample_background(rng, config)
    relation = None
    if rng.random() < config.two_object_fraction:
        left, right = _sample_pair(rng, width, height, frames, _sample_colours(rng, background, 2))
        relation, objects = ("left of", (left, right)) if rng.random() < 0.5 else ("right of", (right, left))
    else:
        objects = (_sample_single(rng, width, height, frames, _sample_colours(rng, background, 1)[0]),)
    scene = Scene(width, height, frames, config.fps, background, objects, relation, caption="")
    return replace(scene, caption=describe(scene, rng))


# ---------------------------------------------------------------------------------------------------------------
# Captions: several templates per scene kind, synonyms for shapes and motions
# ---------------------------------------------------------------------------------------------------------------

_SHAPE_WORDS = {"circle": ("circle", "disc", "ball", "dot"), "square": ("square", "box", "block"),
                "triangle": ("triangle",)}
_DIRECTION_WORDS = {
    "left": ("to the left", "left", "leftward"), "right": ("to the right", "right", "rightward"),
    "up": ("up", "upward", "to the top"), "down": ("down", "downward", "to the bottom"),
    "up-left": ("up and to the left", "diagonally up left"), "up-right": ("up and to the right", "diagonally up right"),
    "down-left": ("down and to the left", "diagonally down left"),
    "down-right": ("down and to the right", "diagonally down right"),
}
_MOVE_VERBS = ("moving", "sliding", "drifting", "gliding")
_MOTION_PHRASES = {
    "bounce": ("bouncing off the walls", "bouncing around", "bouncing"),
    "grow": ("growing", "getting bigger", "expanding"),
    "shrink": ("shrinking", "getting smaller", "contracting"),
    "still": ("standing still", "resting", "not moving"),
}
_SINGLE_TEMPLATES = (
    "a {colour} {shape} {motion} on a {background}",
    "{background_lead}, a {colour} {shape} {motion}",
    "a {colour} {shape} {motion}, {background}",
    "{motion_lead} a {colour} {shape} on a {background}",
)
_PAIR_TEMPLATES = (
    "a {a} {relation} a {b} on a {background}",
    "{background_lead}, a {a} {relation} a {b}",
    "a {a} {relation_long} a {b}, {background}",
)


def _pick(rng: np.random.Generator, options) -> str:
    return str(options[rng.integers(len(options))])


def with_articles(text: str) -> str:
    """English articles: "a orange" -> "an orange"."""
    return " ".join(
        "an" if word == "a" and following[0] in "aeiou" else word
        for word, following in zip(text.split(), text.split()[1:] + ["x"])
    )


def _background_phrases(background: Background, rng) -> tuple[str, str]:
    """(a phrase after "on a", a leading clause) for the background."""
    if background.kind == "solid":
        colour = background.colours[0]
        nouns = ("background", "backdrop")
        return f"{colour} {_pick(rng, nouns)}", f"{colour} {_pick(rng, nouns)}"  # each phrase draws its own noun
    first, second = background.colours
    lead = {"vertical": "top to bottom", "horizontal": "left to right"}[background.kind]
    phrase = f"{background.kind} gradient from {first} to {second}"
    return phrase, f"a {first} to {second} gradient from {lead}"


def _motion_phrase(motion: str, rng) -> str:
    if motion in DIRECTIONS:
        return f"{_pick(rng, _MOVE_VERBS)} {_pick(rng, _DIRECTION_WORDS[motion])}"
    return _pick(rng, _MOTION_PHRASES[motion])


def describe(scene: Scene, rng: np.random.Generator) -> str:
    """A caption for the scene in the world's language, wording drawn from `rng`."""
    background, background_lead = _background_phrases(scene.background, rng)
    if scene.relation is None:
        obj = scene.objects[0]
        motion = _motion_phrase(obj.motion, rng)
        template = _pick(rng, _SINGLE_TEMPLATES)
        shape = _pick(rng, _SHAPE_WORDS[obj.shape])
        return with_articles(template.format(colour=obj.colour, shape=shape, motion=motion, motion_lead=motion,
                                             background=background, background_lead=background_lead))
    a, b = (f"{o.colour} {_pick(rng, _SHAPE_WORDS[o.shape])}" for o in scene.objects)
    caption = _pick(rng, _PAIR_TEMPLATES).format(
        a=a, b=b, relation=scene.relation, relation_long=f"to the {scene.relation.split()[0]} of",
        background=background, background_lead=background_lead)
    if scene.objects[0].motion != "still":
        caption += f", both {_pick(rng, _MOVE_VERBS)} {_pick(rng, _DIRECTION_WORDS[scene.objects[0].motion])}"
    return with_articles(caption)


@functools.cache
def caption_words() -> frozenset[str]:
    """Every word a caption of the world can use: the templates' own words, synonyms, colours and relations."""
    phrases = [*_SINGLE_TEMPLATES, *_PAIR_TEMPLATES, *COLOURS, *_MOVE_VERBS, "an", "both", "vertical horizontal",
               "background backdrop gradient from to top bottom left right of",
               *(w for words in _SHAPE_WORDS.values() for w in words),
               *(w for words in _DIRECTION_WORDS.values() for w in words),
               *(w for words in _MOTION_PHRASES.values() for w in words)]
    return frozenset(word for phrase in phrases for word in words_of(re.sub(r"\{\w+\}", " ", phrase)))


def words_of(text: str) -> list[str]:
    """Lower-case words of a prompt, as the caption vocabulary counts them."""
    return re.findall(r"[a-z]+", text.lower())


def unfamiliar_request(prompts: list[str], width: int, height: int) -> str:
    """A note for the user when a request leaves what the world taught the model ("" when it does not)."""
    notes = []
    new_words = sorted({w for prompt in prompts for w in words_of(prompt)} - caption_words())
    if new_words:
        notes.append(f"words the model never saw in training steer it little: {', '.join(new_words)} (it knows "
                     "circles, squares and triangles in ten colours on plain or gradient backgrounds, moving, "
                     "bouncing, growing or shrinking)")
    if (width, height) not in SIZES:
        trained = ", ".join(f"{w}x{h}" for w, h in SIZES)
        notes.append(f"{width}x{height} is not a size it was trained at ({trained}); expect a weaker result")
    return "; ".join(notes)


# ---------------------------------------------------------------------------------------------------------------
# Rendering (anti-aliased through signed distances, vectorised over frames)
# ---------------------------------------------------------------------------------------------------------------

# Outward edge normals of an upward-pointing equilateral triangle in image coordinates (y down).
_TRIANGLE_NORMALS = np.array([[0.0, 1.0], [-0.8660, -0.5], [0.8660, -0.5]], dtype=np.float32)


def _signed_distance(shape: str, dx: np.ndarray, dy: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Signed distance in pixels (negative inside) for offsets from the center; size is the half-extent."""
    if shape == "circle":
        return np.sqrt(dx * dx + dy * dy) - size
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) - size
    # The inradius 0.6*size gives a triangle 1.8*size tall, about as tall as the square of the same size.
    planes = [nx * dx + ny * dy for nx, ny in _TRIANGLE_NORMALS]
    return np.maximum(np.maximum(planes[0], planes[1]), planes[2]) - 0.6 * size


def render_background(background: Background, width: int, height: int) -> np.ndarray:
    """The background image `[H, W, 3]`."""
    if background.kind == "solid":
        return np.broadcast_to(_rgb(background.colours[0]), (height, width, 3)).copy()
    first, second = (_rgb(c) for c in background.colours)
    if background.kind == "vertical":
        ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]  # (H, 1, 1)
    else:
        ramp = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]  # (1, W, 1)
    return np.broadcast_to(first + ramp * (second - first), (height, width, 3)).astype(np.float32)


def object_coverage(obj: SceneObject, width: int, height: int) -> np.ndarray:
    """Fraction of each pixel the object covers, `[T, H, W]` in 0..1 (pixel centers at +0.5)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    dx = xs[None] - obj.centers[:, 0, None, None]  # (T, H, W)
    dy = ys[None] - obj.centers[:, 1, None, None]
    return np.clip(0.5 - _signed_distance(obj.shape, dx, dy, obj.sizes[:, None, None]), 0.0, 1.0)


def render(scene: Scene) -> np.ndarray:
    """The frames `[T, H, W, 3]` float32 in 0..1; objects are painted in order."""
    frames = np.repeat(render_background(scene.background, scene.width, scene.height)[None], scene.frames, axis=0)
    for obj in scene.objects:
        alpha = object_coverage(obj, scene.width, scene.height)[..., None]  # (T, H, W, 1)
        frames = frames * (1.0 - alpha) + _rgb(obj.colour) * alpha
    return frames.astype(np.float32)


def make_clip(seed: int, config: WorldConfig = WorldConfig()) -> tuple[np.ndarray, Scene]:
    """The clip of a seed: (frames `[T, H, W, 3]` in 0..1, its Scene)."""
    scene = sample_scene(np.random.default_rng(seed), config)
    return render(scene), scene


def captions(seed: int, count: int, config: WorldConfig = WorldConfig()) -> list[str]:
    """Captions of `count` scenes from one seed (no rendering): the text corpus of the world."""
    rng = np.random.default_rng(seed)
    return [sample_scene(rng, config).caption for _ in range(count)]
