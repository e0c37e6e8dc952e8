"""Prompts worded the way people type them, for scenes of the embedded model's procedural world.

`people_prompt(scene, rng)` describes exactly the content of a `Scene` (each object's colour, shape and
motion; the background's colour, or a gradient's two colours in order and its direction; for two objects
their left/right relation and shared motion) but in the loose wording artists type into a video generator:
full sentences, terse comma lists, lower-case fragments, finite verbs, other direction phrases, shape
synonyms, other background phrasings and an occasional harmless extra word ("simple", "2D", "video of").

Every choice is drawn from the given `numpy.random.Generator`, so a prompt is a pure function of the scene
and the generator's state.
Written apart from embedded/recaption.py, to test it (and docs/EMBEDDED.md's "Prompts in other words") with
wordings its author did not choose.
"""
from __future__ import annotations

import re

import numpy as np

# ---------------------------------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------------------------------

_SHAPE_SYNONYMS = {
    "circle": ("circle", "ball", "dot", "disc", "sphere", "round shape", "circle"),
    "square": ("square", "box", "block", "tile", "square"),
    "triangle": ("triangle", "triangle", "triangle shape"),
}
_ROLLERS = ("circle", "ball", "disc", "sphere", "round shape")  # shape words that can "roll"

# (finite, participle) verb pairs usable with any direction phrase.
_GENERIC_VERBS = (
    ("moves", "moving"), ("travels", "traveling"), ("slides", "sliding"), ("glides", "gliding"),
    ("heads", "heading"), ("goes", "going"), ("drifts", "drifting"), ("moves", "moving"),
)
_UP_VERBS = (("rises", "rising"), ("climbs", "climbing"), ("floats", "floating"))
_DOWN_VERBS = (("falls", "falling"), ("drops", "dropping"), ("sinks", "sinking"))
_BARE_OK = ("rises", "climbs", "falls", "drops", "sinks")  # these say the direction on their own

_DIRECTION_PHRASES = {
    "left": ("to the left", "left", "leftwards", "leftward", "towards the left", "toward the left",
             "to the left side", "from right to left", "across the frame from right to left",
             "toward the left edge"),
    "right": ("to the right", "right", "rightwards", "rightward", "towards the right", "toward the right",
              "to the right side", "from left to right", "across the frame from left to right",
              "toward the right edge"),
    "up": ("up", "upward", "upwards", "towards the top", "to the top", "from the bottom to the top",
           "up the screen", "toward the top of the frame"),
    "down": ("down", "downward", "downwards", "towards the bottom", "to the bottom", "from the top to the bottom",
             "down the screen", "toward the bottom of the frame"),
    "up-left": ("up and to the left", "up and left", "diagonally up and to the left", "diagonally up-left",
                "up-left", "toward the top left corner", "towards the upper left",
                "diagonally toward the top-left corner", "diagonally from bottom right to top left"),
    "up-right": ("up and to the right", "up and right", "diagonally up and to the right", "diagonally up-right",
                 "up-right", "toward the top right corner", "towards the upper right",
                 "diagonally toward the top-right corner", "diagonally from bottom left to top right"),
    "down-left": ("down and to the left", "down and left", "diagonally down and to the left",
                  "diagonally down-left", "down-left", "toward the bottom left corner", "towards the lower left",
                  "diagonally toward the bottom-left corner", "diagonally from top right to bottom left"),
    "down-right": ("down and to the right", "down and right", "diagonally down and to the right",
                   "diagonally down-right", "down-right", "toward the bottom right corner",
                   "towards the lower right", "diagonally toward the bottom-right corner",
                   "diagonally from top left to bottom right"),
}

# Non-straight motions: finite verb phrases, participle / post-noun phrases, pre-noun adjectives.
_OTHER_MOTIONS = {
    "bounce": (
        ("bounces around", "bounces off the edges", "bounces off the walls", "ricochets around the frame",
         "ricochets off the edges", "bounces around the screen", "keeps bouncing off the sides", "bounces"),
        ("bouncing around", "bouncing off the edges", "ricocheting off the walls", "bouncing around the frame",
         "bouncing", "bouncing off the sides"),
        ("bouncing",),
    ),
    "grow": (
        ("grows", "gets bigger", "expands", "scales up", "grows larger", "grows in size", "gradually gets bigger"),
        ("growing", "getting bigger", "expanding", "scaling up", "growing larger"),
        ("growing", "expanding"),
    ),
    "shrink": (
        ("shrinks", "gets smaller", "scales down", "shrinks in size", "gradually gets smaller", "contracts"),
        ("shrinking", "getting smaller", "scaling down", "shrinking in size"),
        ("shrinking",),
    ),
    "still": (
        ("stays still", "doesn't move", "sits motionless", "stays in place", "remains stationary",
         "does not move", "just sits there", "stays put"),
        ("staying still", "sitting still", "not moving", "motionless", "stationary", "static", "standing still"),
        ("static", "stationary", "motionless", "still"),
    ),
}

# Shared motion of a pair: (sentence, participle / post-phrase, verb phrase after a plural subject).
_PAIR_MOTIONS = {
    "up": (
        ("Both move up.", "Both of them rise.", "They drift upward together.", "Both float up.",
         "They move from the bottom to the top together.", "Both go up together.", "They both head towards the top.",
         "Both are moving up."),
        ("moving up together", "both moving up", "both rising", "drifting upward together", "rising together",
         "both heading towards the top", "both going up", "both moving upwards"),
        ("move up together", "rise together", "both drift upward", "both float up",
         "travel towards the top together", "go from the bottom to the top together", "both move up"),
    ),
    "down": (
        ("Both move down.", "Both of them sink.", "They drift downward together.", "Both fall.",
         "They move from the top to the bottom together.", "Both go down together.",
         "They both head towards the bottom.", "Both are moving down."),
        ("moving down together", "both moving down", "both sinking", "drifting downward together",
         "falling together", "both heading towards the bottom", "both going down", "both moving downwards"),
        ("move down together", "sink together", "both drift downward", "both fall",
         "travel towards the bottom together", "go from the top to the bottom together", "both move down"),
    ),
    "still": (
        ("Both stay still.", "Neither moves.", "Neither of them moves.", "Both are static.", "They don't move.",
         "Both stay in place.", "Nothing moves."),
        ("both static", "both stationary", "neither moving", "not moving", "both still"),
        ("stay still", "don't move", "sit motionless", "stay in place", "remain stationary", "both stay still"),
    ),
}

_SOLID = {
    "on": ("on a {c} background", "against a {c} backdrop", "over {c}", "on {c}", "with a plain {c} background",
           "set on solid {c}", "on a flat {c} background", "in front of a {c} background", "on a solid {c} bg",
           "on plain {c}", "against solid {c}"),
    "np": ("a {c} background", "a plain {c} background", "a solid {c} backdrop", "a flat {c} background",
           "a {c} backdrop"),
    "terse": ("{c} background", "{c} bg", "plain {c} background", "solid {c} backdrop", "bg {c}", "{c} backdrop",
              "background: {c}", "solid {c} bg"),
    "sent": ("the background is {c}", "the background is plain {c}", "the backdrop is solid {c}",
             "background is {c}", "the whole background is a flat {c}"),
}
_GRADIENT = {
    "vertical": {
        "np": ("a gradient from {a} at the top to {b} at the bottom", "a {a}-to-{b} vertical gradient",
               "a vertical gradient from {a} to {b}", "a top-to-bottom gradient from {a} to {b}",
               "a {a} to {b} gradient running top to bottom",
               "a vertical gradient with {a} at the top and {b} at the bottom",
               "a gradient that goes from {a} (top) to {b} (bottom)"),
        "on_only": ("on a background fading from {a} at the top to {b} at the bottom",
                    "with a background that fades from {a} at the top to {b} at the bottom"),
        "terse": ("{a}-to-{b} vertical gradient bg", "vertical gradient {a} to {b}",
                  "gradient bg, {a} top to {b} bottom", "{a} (top) to {b} (bottom) gradient",
                  "top to bottom gradient {a} to {b}"),
        "sent": ("the background fades from {a} at the top to {b} at the bottom",
                 "the background is a vertical gradient from {a} to {b}",
                 "the background goes from {a} at the top to {b} at the bottom",
                 "the background is a gradient, {a} on top fading to {b} at the bottom",
                 "background is {a} at the top blending into {b} at the bottom"),
    },
    "horizontal": {
        "np": ("a gradient from {a} on the left to {b} on the right", "a {a}-to-{b} horizontal gradient",
               "a horizontal gradient from {a} to {b}", "a left-to-right gradient from {a} to {b}",
               "a {a} to {b} gradient running left to right",
               "a horizontal gradient with {a} on the left and {b} on the right",
               "a gradient that goes from {a} (left) to {b} (right)"),
        "on_only": ("on a background fading from {a} on the left to {b} on the right",
                    "with a background that fades from {a} (left) to {b} (right)"),
        "terse": ("{a}-to-{b} horizontal gradient bg", "horizontal gradient {a} to {b}",
                  "gradient bg, {a} left to {b} right", "{a} (left) to {b} (right) gradient",
                  "left to right gradient {a} to {b}"),
        "sent": ("the background fades from {a} (left) to {b} (right)",
                 "the background is a horizontal gradient from {a} to {b}",
                 "background fades from {a} on the left to {b} on the right",
                 "the background goes from {a} on the left to {b} on the right",
                 "background is {a} on the left blending into {b} on the right"),
    },
}
_PREPOSITIONS = ("on", "against", "over", "in front of", "on", "set on")

_OBJECT_ADJECTIVES = ("simple", "flat", "single")
_SENTENCE_TAILS = ("Simple 2D animation.", "Flat, minimal style.", "Clean, simple look.", "Minimal flat design.",
                   "2D, flat colours.", "Keep it minimal.")
_LIST_TAILS = ("flat 2D", "minimal", "simple animation", "clean", "2D", "minimalist style", "flat style")
_LEADS = ("video of", "animation of", "2d animation of", "a clip of", "simple video of", "minimal animation of",
          "clean 2d video of")
_SHOW_VERBS = ("Show", "Generate", "Animate", "Create a video of", "Render", "Make a clip of")


def _pick(rng: np.random.Generator, options) -> str:
    return str(options[int(rng.integers(len(options)))])


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def fix_articles(text: str) -> str:
    """English articles: "a orange" -> "an orange", "A orange" -> "An orange"."""
    def repl(match: re.Match) -> str:
        article, space, first = match.group(1), match.group(2), match.group(3)
        word = "an" if first.lower() in "aeiou" else "a"
        return (_cap(word) if article[0] == "A" else word) + space + first
    return re.sub(r"\b([Aa]n?)\b(\s+)([A-Za-z])", repl, text)


# ---------------------------------------------------------------------------------------------------------------
# Phrase context: one per prompt, so each object keeps its colour and shape word throughout
# ---------------------------------------------------------------------------------------------------------------


class _Ctx:
    def __init__(self, scene, rng: np.random.Generator):
        self.scene, self.rng = scene, rng
        self.colour_words = [self._colour(o.colour) for o in scene.objects]
        self.shape_words = [_pick(rng, _SHAPE_SYNONYMS[o.shape]) for o in scene.objects]
        self.adjectives = [(_pick(rng, _OBJECT_ADJECTIVES) + " ") if rng.random() < 0.1 else ""
                           for _ in scene.objects]

    def _colour(self, name: str) -> str:
        return "grey" if name == "gray" and self.rng.random() < 0.4 else name

    def pick(self, options) -> str:
        return _pick(self.rng, options)

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    # Objects ----------------------------------------------------------------------------------------------
    def obj(self, i: int = 0, article: bool = True, adjective: bool = True) -> str:
        words = f"{self.adjectives[i] if adjective else ''}{self.colour_words[i]} {self.shape_words[i]}"
        return f"a {words}" if article else words

    # Motions of one object ----------------------------------------------------------------------------------
    def _straight(self, i: int, participle: bool) -> str:
        motion, shape = self.scene.objects[i].motion, self.shape_words[i]
        verbs = list(_GENERIC_VERBS)
        if motion in ("left", "right") and shape in _ROLLERS:
            verbs.append(("rolls", "rolling"))
        if motion.startswith("up"):
            verbs += list(_UP_VERBS)
        if motion.startswith("down"):
            verbs += list(_DOWN_VERBS)
        finite, ing = verbs[int(self.rng.integers(len(verbs)))]
        verb = ing if participle else finite
        if finite in _BARE_OK and motion in ("up", "down") and self.chance(0.4):
            return verb  # "rises", "falls": the verb alone says up or down
        phrases = list(_DIRECTION_PHRASES[motion])
        if finite == "heads":  # "heads up" is an idiom: only with "to"/"toward"/"diagonally" phrases
            phrases = [p for p in phrases if p.startswith(("to", "diagonally", "across"))]
        if finite in ("rises", "climbs", "floats", "falls", "drops", "sinks"):
            phrases = [p for p in phrases if not p.startswith(("from", "across"))] or phrases
        return f"{verb} {self.pick(phrases)}"

    def vfin(self, i: int = 0) -> str:
        motion = self.scene.objects[i].motion
        if motion in _DIRECTION_PHRASES:
            return self._straight(i, participle=False)
        return self.pick(_OTHER_MOTIONS[motion][0])

    def ving(self, i: int = 0) -> str:
        motion = self.scene.objects[i].motion
        if motion in _DIRECTION_PHRASES:
            return self._straight(i, participle=True)
        return self.pick(_OTHER_MOTIONS[motion][1])

    def adj(self, i: int = 0) -> str:
        return self.pick(_OTHER_MOTIONS[self.scene.objects[i].motion][2])

    # Background ---------------------------------------------------------------------------------------------
    def _bg(self, form: str) -> str:
        background = self.scene.background
        if background.kind == "solid":
            return self.pick(_SOLID[form]).format(c=self._colour(background.colours[0]))
        a, b = (self._colour(c) for c in background.colours)
        table = _GRADIENT[background.kind]
        if form == "on":
            if self.chance(0.25):
                return self.pick(table["on_only"]).format(a=a, b=b)
            return f"{self.pick(_PREPOSITIONS)} {self.pick(table['np'])}".format(a=a, b=b)
        return self.pick(table[form]).format(a=a, b=b)

    def bg_on(self) -> str:
        return self._bg("on")

    def bg_np(self) -> str:
        return self._bg("np")

    def bg_terse(self) -> str:
        return self._bg("terse")

    def bg_sent(self) -> str:
        return self._bg("sent")

    # Pairs --------------------------------------------------------------------------------------------------
    @property
    def left_index(self) -> int:
        return 0 if self.scene.relation == "left of" else 1

    def relation_phrase(self) -> str:
        side = self.scene.relation.split()[0]
        return self.pick((f"to the {side} of", f"{side} of", f"on the {side} of", f"just {side} of",
                          f"to the {side} of"))

    def pos(self, article: bool = True, inline: bool = False) -> str:
        """The two objects and where they are; `inline` forms read well when a background phrase follows."""
        li, ri = self.left_index, 1 - self.left_index
        L, R = self.obj(li, article), self.obj(ri, article)
        o0, o1 = self.obj(0, article), self.obj(1, article)
        side = self.scene.relation.split()[0]
        forms = [
            lambda: f"{o0} {self.relation_phrase()} {o1}",
            lambda: f"{L} on the left and {R} on the right",
            lambda: f"{R} on the right and {L} on the left",
        ]
        if not inline:
            forms += [
                lambda: f"{o1} with {o0} on its {side}",
                lambda: f"{L} and {R} side by side, the {self.colour_words[li]} one on the left",
                lambda: f"{L} on the left, {R} on the right",
                lambda: f"{o1} and, to its {side}, {o0}",
            ]
        return forms[int(self.rng.integers(len(forms)))]()

    def pos_and(self) -> str:
        """A plural subject naming both objects and their sides."""
        li, ri = self.left_index, 1 - self.left_index
        L, R = self.obj(li), self.obj(ri)
        return self.pick((f"{L} on the left and {R} on the right", f"{R} on the right and {L} on the left",
                          f"{L} on the left and {R} beside it on the right"))

    @property
    def pair_motion(self) -> str:
        return self.scene.objects[0].motion

    def both_sentence(self, optional: bool = True) -> str:
        """' Both move up.' (with a leading space), or '' for a still pair when the user leaves it out."""
        if self.pair_motion == "still" and optional and self.chance(0.5):
            return ""
        return " " + self.pick(_PAIR_MOTIONS[self.pair_motion][0])

    def both_ing(self, sep: str = ", ", optional: bool = True) -> str:
        if self.pair_motion == "still" and optional and self.chance(0.5):
            return ""
        return sep + self.pick(_PAIR_MOTIONS[self.pair_motion][1])

    def plural_fin(self) -> str:
        return self.pick(_PAIR_MOTIONS[self.pair_motion][2])

    # Extras -------------------------------------------------------------------------------------------------
    def tail(self, style: str) -> str:
        if not self.chance(0.25):
            return ""
        if style == "S":
            return " " + self.pick(_SENTENCE_TAILS)
        return ", " + self.pick(_LIST_TAILS)


# ---------------------------------------------------------------------------------------------------------------
# Templates: (style, applies-to-scene, builder). Style S: sentences; T: terse comma list; F: lower-case fragment.
# ---------------------------------------------------------------------------------------------------------------

def _always(ctx: _Ctx) -> bool:
    return True


def _has_adjective(ctx: _Ctx) -> bool:
    return ctx.scene.objects[0].motion in _OTHER_MOTIONS


_SINGLE_TEMPLATES = (
    ("S", _always, lambda c: f"{_cap(c.obj())} {c.vfin()} {c.bg_on()}."),
    ("S", _always, lambda c: f"{_cap(c.obj())} {c.vfin()}. {_cap(c.bg_sent())}."),
    ("S", _always, lambda c: f"{_cap(c.bg_on())}, {c.obj()} {c.vfin()}."),
    ("S", _always, lambda c: f"{_cap(c.bg_sent())}, and {c.obj()} {c.vfin()}."),
    ("S", _always, lambda c: f"There is {c.obj()} {c.bg_on()}. It {c.vfin()}."),
    ("S", _always, lambda c: f"{c.pick(_SHOW_VERBS)} {c.obj()} {c.ving()} {c.bg_on()}."),
    ("S", _always, lambda c: f"{c.pick(('I want', 'Give me', 'I need'))} {c.obj()} that {c.vfin()}, {c.bg_on()}."),
    ("S", _always, lambda c: f"{_cap(c.obj())} {c.bg_on()} {c.vfin()}."),
    ("S", _always, lambda c: f"{_cap(c.bg_np())}. {_cap(c.obj())} {c.vfin()}."),
    ("S", _always, lambda c: f"{_cap(c.bg_np())} with {c.obj()} {c.ving()}."),
    ("T", _always, lambda c: f"{c.obj(article=False)}, {c.ving()}, {c.bg_terse()}"),
    ("T", _always, lambda c: f"{c.bg_terse()}, {c.obj(article=False)} {c.ving()}"),
    ("T", _always, lambda c: f"{c.obj(article=False)} {c.ving()}, {c.bg_terse()}"),
    ("T", _has_adjective, lambda c: f"{c.adj()} {c.obj(article=False, adjective=False)}, {c.bg_terse()}"),
    ("T", _always, lambda c: f"{c.obj(article=False)} | {c.ving()} | {c.bg_terse()}"),
    ("F", _always, lambda c: f"{c.obj()} {c.ving()} {c.bg_on()}"),
    ("F", _always, lambda c: f"{c.obj(article=False)} {c.vfin()} {c.bg_on()}"),
    ("F", _always, lambda c: f"{c.obj()} {c.bg_on()}, {c.ving()}"),
    ("F", _always, lambda c: f"{c.obj(article=False)} that {c.vfin()}, {c.bg_terse()}"),
    ("F", _always, lambda c: f"{c.bg_terse()}. {c.obj(article=False)} {c.vfin()}"),
    ("F", _always, lambda c: f"{c.pick(_LEADS)} {c.obj()} {c.ving()} {c.bg_on()}"),
)

_PAIR_TEMPLATES = (
    ("S", _always, lambda c: f"{_cap(c.pos(inline=True))} {c.bg_on()}.{c.both_sentence()}"),
    ("S", _always, lambda c: f"{_cap(c.bg_sent())}. {_cap(c.pos())}{c.both_ing()}."),
    ("S", _always, lambda c: f"{_cap(c.pos_and())} {c.plural_fin()} {c.bg_on()}."),
    ("S", _always, lambda c: f"{_cap(c.bg_on())}, {c.pos()}.{c.both_sentence()}"),
    ("S", _always, lambda c: f"Two shapes {c.bg_on()}: {c.pos()}.{c.both_sentence()}"),
    ("S", _always, lambda c: f"{_cap(c.bg_np())} with {c.pos(inline=True)}{c.both_ing()}."),
    ("T", _always, lambda c: f"{c.pos(article=False)}{c.both_ing()}, {c.bg_terse()}"),
    ("T", _always, lambda c: (f"{c.bg_terse()}, left: {c.obj(c.left_index, article=False)}, "
                              f"right: {c.obj(1 - c.left_index, article=False)}{c.both_ing()}")),
    ("T", _always, lambda c: (f"{c.obj(c.left_index, article=False)} (left) + "
                              f"{c.obj(1 - c.left_index, article=False)} (right), {c.bg_terse()}{c.both_ing()}")),
    ("F", _always, lambda c: f"{c.pos(inline=True)} {c.bg_on()}{c.both_ing()}"),
    ("F", _always, lambda c: f"{c.pos_and()} {c.plural_fin()} {c.bg_on()}"),
    ("F", _always, lambda c: f"{c.pick(_LEADS)} {c.pos(inline=True)} {c.bg_on()}{c.both_ing(sep=', ')}"),
)


def people_prompt(scene, rng: np.random.Generator) -> str:
    """An English prompt with exactly the scene's content, worded the way people type video prompts."""
    ctx = _Ctx(scene, rng)
    templates = _SINGLE_TEMPLATES if scene.relation is None else _PAIR_TEMPLATES
    usable = [t for t in templates if t[1](ctx)]
    style, _, build = usable[int(rng.integers(len(usable)))]
    text = build(ctx) + ctx.tail(style)
    if style in "TF":
        text = text.lower()
        if style == "T" and ctx.chance(0.2):
            text = _cap(text)
    return fix_articles(re.sub(r"\s+", " ", text).strip())
