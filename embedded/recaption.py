"""Prompts as people type them -> the caption language spacetime-mini was trained on.

spacetime-mini's text encoder learned a few hundred caption words, and a prompt in other words ("A red ball moves
right across a blue background.") reaches its DiT as half-known tokens: on the report's scenes such wordings lost a
third of the object colours (docs/EMBEDDED.md, "Prompts as people type them"). Sora and DALL-E 3 rewrite a user's
prompt into the captions their models were trained on; with a world this small a parser does it: it reads the
objects (colour + shape), the background (a colour or a gradient), the motion and a left/right relation from the
prompt and writes them back in the world's own template. Words it cannot place (a "star", "brown") are not guessed:
a prompt it cannot read an object from is left as typed.
"""
import re
from dataclasses import dataclass

from .world import COLOURS, Background, caption_words, with_articles, words_of

# The caption language recaption() writes, as a text-encoder file names it (core.text_encoder.CAPTION_LANGUAGE_KEY).
LANGUAGE = "spacetime-mini"

# Other names for the world's colours, only where the hue is the same (a "navy" ball is the world's blue, darker);
# colours between two of the world's (teal, cyan, brown, beige) are not guessed.
_COLOUR_WORDS = {**{c: c for c in COLOURS}, "grey": "gray", "silver": "gray", "violet": "purple",
                 "lavender": "purple", "magenta": "pink", "crimson": "red", "scarlet": "red", "navy": "blue",
                 "azure": "blue", "lime": "green", "emerald": "green", "gold": "yellow", "golden": "yellow",
                 "amber": "orange", "ivory": "white"}
_SHAPE_WORDS = {
    "circle": "circle", "ball": "circle", "dot": "circle", "disc": "circle", "disk": "circle", "sphere": "circle",
    "orb": "circle", "round": "circle", "square": "square", "box": "square", "block": "square", "tile": "square",
    "cube": "square", "rectangle": "square", "triangle": "triangle", "pyramid": "triangle", "triangular": "triangle",
}
_MOTION_WORDS = {  # motions that are not a direction, by the word stems people use for them
    "bounce": ("bounc", "ricochet", "rebound"),
    "grow": ("grow", "expand", "bigger", "larger", "enlarg", "swell", "inflat"),
    "shrink": ("shrink", "smaller", "contract", "deflat"),
    "still": ("still", "stationary", "static", "motionless", "rest", "sits", "sitting", "stays", "idle", "frozen"),
}
_SCALE_PHRASES = {"scales up": "grow", "scale up": "grow", "scaling up": "grow", "scales down": "shrink",
                  "scale down": "shrink", "scaling down": "shrink", "not moving": "still", "does not move": "still",
                  "doesnt move": "still", "isnt moving": "still", "no motion": "still"}
# Direction words -> (dx, dy) in image coordinates (y down), as world.DIRECTIONS.
_AXIS_WORDS = {
    "left": (-1, 0), "leftward": (-1, 0), "leftwards": (-1, 0), "west": (-1, 0),
    "right": (1, 0), "rightward": (1, 0), "rightwards": (1, 0), "east": (1, 0),
    "up": (0, -1), "upward": (0, -1), "upwards": (0, -1), "top": (0, -1), "north": (0, -1), "rises": (0, -1),
    "rise": (0, -1), "rising": (0, -1), "climbs": (0, -1), "climb": (0, -1), "climbing": (0, -1),
    "ascends": (0, -1), "ascending": (0, -1), "upper": (0, -1),
    "down": (0, 1), "downward": (0, 1), "downwards": (0, 1), "bottom": (0, 1), "south": (0, 1), "falls": (0, 1),
    "fall": (0, 1), "falling": (0, 1), "drops": (0, 1), "drop": (0, 1), "dropping": (0, 1), "sinks": (0, 1),
    "sink": (0, 1), "sinking": (0, 1), "descends": (0, 1), "descending": (0, 1), "lower": (0, 1),
}
_DIRECTION_NAMES = {(-1, 0): "left", (1, 0): "right", (0, -1): "up", (0, 1): "down", (-1, -1): "up-left",
                    (1, -1): "up-right", (-1, 1): "down-left", (1, 1): "down-right"}
# The world's own phrases for each motion (world._DIRECTION_WORDS / _MOTION_PHRASES, first choice).
_WORLD_MOTION = {"left": "moving to the left", "right": "moving to the right", "up": "moving up",
                 "down": "moving down", "up-left": "moving up and to the left",
                 "up-right": "moving up and to the right", "down-left": "moving down and to the left",
                 "down-right": "moving down and to the right",
                 "bounce": "bouncing", "grow": "growing", "shrink": "shrinking", "still": "standing still"}
_PUNCTUATION = frozenset(",.;:!?()+|")
_GRADIENT_WORDS = ("gradient", "fade", "fades", "fading", "blend", "blends", "blending", "transition")


@dataclass(frozen=True)
class _Object:
    colour: str | None
    shape: str
    words: frozenset[int]  # indices of its shape word and colour word


@dataclass(frozen=True)
class Reading:
    """What a prompt asks of the world. `objects`: (colour or None, shape), left to right when there are two."""

    objects: tuple[tuple[str | None, str], ...]
    background: Background | None
    motion: str | None  # one of world.MOTIONS


def recaption(prompt: str) -> str:
    """`prompt` in the world's caption language; as typed when all its words are the world's or it names no object.

    A prompt in the world's words stays as typed: rewritten into one template the report's held-out captions drew
    their colours and left/right no more often (docs/EMBEDDED.md), so there is nothing to gain from touching them.
    """
    if set(words_of(prompt)) <= caption_words():
        return prompt
    reading = read_prompt(prompt)
    return prompt if reading is None else world_caption(reading)


def read_prompt(prompt: str) -> Reading | None:
    """The objects, background and motion a prompt names; None when it names no object."""
    tokens = _tokens(prompt)
    objects = _objects(tokens)
    if not objects:
        return None
    used = set().union(*(o.words for o in objects))
    background, background_words = _background(tokens, used)
    left_to_right, side_words = _relation(tokens, objects, background_words)
    motion = _motion(tokens, used | side_words | background_words)
    return Reading(tuple((o.colour, o.shape) for o in left_to_right or objects), background, motion)


def _tokens(prompt: str) -> list[str]:
    """Lower-case words and the punctuation that ends a phrase or places a thing ("red (left)", "left: a ball").

    Apostrophes go ("doesn't" -> "doesnt"); hyphens and other marks read as spaces ("blue-to-black").
    """
    return re.findall(r"[a-z]+|[,.;:!?()+|]", re.sub("['\u2019]", "", prompt.lower()))


def _objects(tokens: list[str]) -> list[_Object]:
    """Up to two objects: each shape word with a colour word at most two words before it ("a bright red ball")."""
    found = []
    for i, word in enumerate(tokens):
        shape = _SHAPE_WORDS.get(word) or _SHAPE_WORDS.get(word.removesuffix("s"))
        if shape is None or (word == "round" and any(w in _SHAPE_WORDS for w in tokens[i + 1:i + 3])):
            continue  # "round" alone is a shape; before "ball" it only describes one
        colour_at = None
        for j in range(i - 1, max(-1, i - 3), -1):
            if tokens[j] in _COLOUR_WORDS:
                colour_at = j
                break
            if tokens[j] in _PUNCTUATION:
                break
        colour = None if colour_at is None else _COLOUR_WORDS[tokens[colour_at]]
        found.append(_Object(colour, shape, frozenset({i} if colour_at is None else {i, colour_at})))
    return found[:2]


def _relation(tokens: list[str], objects: list[_Object], taken: set[int]) -> tuple[list[_Object] | None, set[int]]:
    """(the two objects ordered left to right, or None; indices of the words that placed them).

    "A left of B", "A to the right of B": the object before the side is on it. Otherwise a side names one object:
    "A on the left", "A (left)", "B with A on its left", "left: A", "the red one on the left" ("to the left"
    alone is a motion), "A and, to its left, B". `taken`: words that are not sides (a gradient's "red on the left").
    """
    if len(objects) < 2:
        return None, set()
    sides, side_words = {}, set()
    for i, word in enumerate(tokens):
        if word not in ("left", "right") or i in taken:
            continue
        if tokens[i + 1:i + 2] == ["of"]:
            before = [o for o in objects if max(o.words) < i]
            if before and before[-1] is not objects[-1]:
                placed, other = before[-1], next(o for o in objects if o is not before[-1])
                return ([placed, other] if word == "left" else [other, placed]), {i, i + 1}
            continue
        owner = _side_owner(tokens, i, objects)
        if owner is not None:
            sides.setdefault(owner, word)
            side_words.add(i)
    first, second = objects
    if sides.get(second) == "left" or sides.get(first) == "right":
        first, second = second, first
    return ([first, second] if sides else None), side_words


def _side_owner(tokens: list[str], index: int, objects: list[_Object]) -> _Object | None:
    """The object a "left"/"right" at `index` places, or None when it is no place ("moving left")."""
    if tokens[max(0, index - 2):index] == ["to", "its"]:  # "A and, to its left, B"
        return _object_after(objects, index)
    j = index - 1
    while j >= 0 and tokens[j] in ("the", "its", "their", "side"):
        j -= 1
    if j >= 0 and tokens[j] in ("on", "at", "in", "("):  # "A on the left", "A (left)": the object before it
        locative = j
        j -= 1
        while j >= 0 and tokens[j] in ("is", "sits", "are", "placed", "shape", "beside", "next", "to", "it", "one"):
            if tokens[j] == "one" and j > 0 and tokens[j - 1] in _COLOUR_WORDS:  # "the red one on the left"
                return next((o for o in objects if o.colour == _COLOUR_WORDS[tokens[j - 1]]), None)
            j -= 1
        before = [o for o in objects if max(o.words) == j]
        if before:
            return before[0]
        if locative == 0 or tokens[locative - 1] in _PUNCTUATION:  # "On the left, a red ball"
            return _object_after(objects, index)
        return None
    if tokens[index + 1:index + 2] == [":"]:  # "left: a red ball"
        return _object_after(objects, index)
    return None


def _object_after(objects: list[_Object], index: int) -> _Object | None:
    return next((o for o in objects if index < min(o.words) <= index + 5), None)


def _background(words: list[str], used: set[int]) -> tuple[Background | None, set[int]]:
    """(the background, or None; indices of the words it took).

    The colours no object took. Two of them with a gradient word make a gradient, ordered top to bottom or left to
    right by the position words after each colour ("red at the top"), else in the order typed.
    """
    free = [i for i, w in enumerate(words) if w in _COLOUR_WORDS and i not in used
            and words[i + 1:i + 2] != ["one"]]  # "the red one": an object again
    if not free:
        return None, set()
    from_to = len(free) >= 2 and "from" in words[:free[0]] and "to" in words[free[0]:free[1]]
    gradient = len(free) >= 2 and (from_to or any(w in _GRADIENT_WORDS for w in words))
    if not gradient:
        i = min(free, key=lambda j: _distance_to(words, j, ("background", "backdrop", "bg", "backgroud")))
        return Background("solid", (_COLOUR_WORDS[words[i]],)), {i}
    first, second = free[:2]
    taken = {first, second}
    places = [_place_after(words, first), _place_after(words, second)]
    taken |= {j for j, _ in places if j is not None}
    kind = "horizontal" if any(p in ("left", "right") for _, p in places) else "vertical"
    if places[0][1] is None and places[1][1] is None:
        kind, orientation = _orientation(words)
        taken |= orientation
    elif places[0][1] in ("bottom", "right") or places[1][1] in ("top", "left"):
        first, second = second, first
    return Background(kind, (_COLOUR_WORDS[words[first]], _COLOUR_WORDS[words[second]])), taken


def _distance_to(words: list[str], index: int, targets) -> int:
    return min((abs(j - index) for j, w in enumerate(words) if w in targets), default=len(words))


def _place_after(words: list[str], index: int) -> tuple[int | None, str | None]:
    """The top/bottom/left/right a gradient colour is placed at: "red at the top", "red (left)", "red on the left"."""
    for j in range(index + 1, min(index + 4, len(words))):
        if words[j] in ("top", "bottom", "left", "right"):
            return j, words[j]
        if words[j] not in ("at", "on", "in", "the", "("):
            break
    return None, None


def _orientation(words: list[str]) -> tuple[str, set[int]]:
    """A gradient without placed colours: "horizontal", "left to right" or "side to side" make it horizontal."""
    for i, word in enumerate(words):
        if word == "horizontal" or (word == "side" and words[i + 1:i + 3] == ["to", "side"]):
            return "horizontal", {i}
        if word == "vertical":
            return "vertical", {i}
        if word in ("left", "right", "top", "bottom") and words[i + 1:i + 2] == ["to"] and i + 2 < len(words) \
                and words[i + 2] in ("left", "right", "top", "bottom") and _near_gradient(words, i):
            return ("horizontal" if word in ("left", "right") else "vertical"), {i, i + 2}
    return "vertical", set()


def _near_gradient(words: list[str], index: int) -> bool:
    return _distance_to(words, index, _GRADIENT_WORDS) <= 4


def _motion(words: list[str], taken: set[int]) -> str | None:
    """The motion: bounce / grow / shrink / still when one of their words appears, else a direction (None if none).

    Direction words between "from" and "to" say where it starts and are skipped ("from the bottom left to the top
    right" goes up-right); the others that are left (not the background's, not a relation's) add up, so "up and to
    the left" is up-left.
    """
    text = " ".join(words)
    for phrase, motion in _SCALE_PHRASES.items():
        if re.search(rf"\b{phrase}\b", text):
            return motion
    for motion, stems in _MOTION_WORDS.items():
        if any(w.startswith(stem) for w in words for stem in stems):
            return motion
    dx = dy = 0
    starting_point = False
    for i, word in enumerate(words):
        if word == "from":
            starting_point = True
        elif word in ("to", "toward", "towards", "into") or word in _PUNCTUATION:
            starting_point = False
        elif word in _AXIS_WORDS and i not in taken and not starting_point:
            x, y = _AXIS_WORDS[word]
            dx, dy = dx or x, dy or y
    return _DIRECTION_NAMES.get((dx, dy))


def world_caption(reading: Reading) -> str:
    """The world's first single-object or pair template (world.describe) for what was read."""
    names = [" ".join(filter(None, obj)) for obj in reading.objects]
    background = _background_phrase(reading.background)
    if len(names) == 2:
        caption = f"a {names[0]} left of a {names[1]}{background}"
        if reading.motion not in (None, "still"):
            caption += f", both {_WORLD_MOTION[reading.motion]}"
    else:
        motion = "" if reading.motion is None else f" {_WORLD_MOTION[reading.motion]}"
        caption = f"a {names[0]}{motion}{background}"
    return with_articles(caption)


def _background_phrase(background: Background | None) -> str:
    if background is None:
        return ""
    if background.kind == "solid":
        return f" on a {background.colours[0]} background"
    return f" on a {background.kind} gradient from {background.colours[0]} to {background.colours[1]}"
