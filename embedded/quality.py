"""Measured quality of the embedded model: an analytic detector for the procedural world, and the report.

The world is synthetic, so a generated frame can be read without a learned model: the background is a plane
(solid colours and linear gradients are both planar per channel), fitted to the frame's border; object pixels
are those far from it, grouped by their nearest named colour, an object's soft rim (its blend with the background)
taken as the object's colour. From that come object and background colour, shape, motion and left/right
adherence, and the conditioning measures (I2V frame-0 PSNR, extension seam, infill keyframes, background drift
over a long chained video). `spacetime quality` prints them against the targets of issue 5.

Frames are float arrays `[T, H, W, 3]` (or one frame `[H, W, 3]`) in 0..1; positions are pixels (x right, y down).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .world import COLOURS, DIRECTIONS, Scene, WorldConfig, make_clip

NAMES = tuple(COLOURS)
PALETTE = np.array([COLOURS[n] for n in NAMES], dtype=np.float32)  # (K, 3)
# Held-out prompts and clips: far from the training seeds (20261122 and 202611220 + clip index).
EVAL_SEED = 5_550_000
TARGETS = {"colour": 0.90, "direction": 0.85, "i2v_psnr": 25.0, "seam_ratio": 2.0, "keyframe_psnr": 25.0,
           "drift_255": 5.0}


@dataclass(frozen=True)
class DetectorConfig:
    """Thresholds of the detector, in RGB distance (0..sqrt(3)) and pixels."""

    border: int = 2  # width of the frame border the background plane is fitted to
    object_distance: float = 0.2  # a pixel this far from the background belongs to some object
    min_core_pixels: int = 4  # fewer interior pixels of one colour than this is an edge blend, not an object
    outlier: float = 0.12  # border pixels further than this from the first fit are objects touching the edge
    edge_tolerance: float = 0.1  # a soft edge lies this close to the line from the background to its object's colour


@dataclass(frozen=True)
class Blob:
    """One object found in one frame: its named colour, pixel area, centroid (x, y) and bounding-box fill ratio."""

    colour: str
    area: float
    center: tuple[float, float]
    fill: float


# ---------------------------------------------------------------------------------------------------------------
# Per-frame detection
# ---------------------------------------------------------------------------------------------------------------


def _plane_design(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(xs), xs, ys], axis=1)  # (N, 3): 1, x, y


def background_plane(frame: np.ndarray, config: DetectorConfig = DetectorConfig()) -> np.ndarray:
    """The background `[H, W, 3]`: a per-channel plane a + b*x + c*y fitted to the border, refitted without outliers."""
    height, width = frame.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    border = np.zeros((height, width), dtype=bool)
    border[:config.border], border[-config.border:] = True, True
    border[:, :config.border], border[:, -config.border:] = True, True
    keep = border.copy()
    for _ in range(2):
        design = _plane_design(xs[keep], ys[keep])
        coef = np.linalg.lstsq(design, frame[keep], rcond=None)[0]  # (3, 3): plane terms x channels
        plane = _plane_design(xs.ravel(), ys.ravel()) @ coef  # (H*W, 3)
        plane = plane.reshape(height, width, 3)
        inlier = np.linalg.norm(frame - plane, axis=-1) < config.outlier
        keep = border & inlier if (border & inlier).sum() >= 3 else border
    return plane


def _shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The mask moved by (dy, dx) with False shifted in."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = mask[max(-dy, 0):h - max(dy, 0),
                                                                     max(-dx, 0):w - max(dx, 0)]
    return out


def _erode(mask: np.ndarray) -> np.ndarray:
    return mask & _shift(mask, 1, 0) & _shift(mask, -1, 0) & _shift(mask, 0, 1) & _shift(mask, 0, -1)


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    for _ in range(radius):
        mask = mask | _shift(mask, 1, 0) | _shift(mask, -1, 0) | _shift(mask, 0, 1) | _shift(mask, 0, -1)
    return mask


def _coverage(frame: np.ndarray, background: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """How much of each pixel is `colour` over the background: projection of (pixel - bg) on (colour - bg)."""
    direction = colour - background  # (H, W, 3)
    amount = ((frame - background) * direction).sum(-1) / np.maximum((direction ** 2).sum(-1), 1e-6)
    return np.clip(amount, 0.0, 1.0)


def nearest_named(rgb: np.ndarray) -> np.ndarray:
    """Index into NAMES / PALETTE of the named colour nearest each colour of `rgb` [..., 3]."""
    return np.argmin(np.linalg.norm(rgb[..., None, :] - PALETTE, axis=-1), axis=-1)


def off_background(frame: np.ndarray, background: np.ndarray, config: DetectorConfig = DetectorConfig()) -> np.ndarray:
    """`[H, W]` bool: the pixels of `frame` far enough from `background` to belong to some object."""
    return np.linalg.norm(frame - background, axis=-1) > config.object_distance


def _blend_residual(frame: np.ndarray, background: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """`[H, W]` distance of each pixel from the segment between its background and `colour`."""
    blend = background + _coverage(frame, background, colour)[..., None] * (colour - background)
    return np.linalg.norm(frame - blend, axis=-1)


def _label_soft_edges(frame, background, foreground, labels, config: DetectorConfig) -> np.ndarray:
    """`labels` with each object's soft edge given the object's colour.

    A soft (decoded) object fades into the background through colours of their own: a white triangle on black has
    a gray rim, a yellow disc on red an orange one, and the rim can cover more pixels than the interior. The pixels
    reached from a colour's interior through blends of that colour with the background are its edge, not objects
    of their own. Colours furthest from the background claim their edges first, so a rim never claims its object.
    (A gray object touching a white one on black would be taken for the white one's edge.)
    """
    out, claimed = labels.copy(), np.zeros_like(foreground)
    contrast = np.linalg.norm(PALETTE - background.mean(axis=(0, 1)), axis=-1)  # (K,)
    for k in sorted(np.unique(labels[foreground]), key=lambda k: -contrast[k]):
        core = _erode(foreground & (out == k))
        if core.sum() < config.min_core_pixels:
            continue
        blend = _blend_residual(frame, background, PALETTE[k]) < config.edge_tolerance
        passable = foreground & ~claimed & ((out == k) | blend)
        region = core
        while True:  # grow from the interior through the colour and its blends, a pixel at a time
            grown = (_dilate(region, 1) & passable) | core
            if (grown == region).all():
                break
            region = grown
        out[region] = k
        claimed |= region
    return out


def detect(frame: np.ndarray, config: DetectorConfig = DetectorConfig()) -> list[Blob]:
    """The objects in one frame `[H, W, 3]`, largest first."""
    background = background_plane(frame, config)
    foreground = off_background(frame, background, config)  # (H, W)
    labels = _label_soft_edges(frame, background, foreground, nearest_named(frame), config)  # (H, W)
    ys, xs = np.mgrid[0:frame.shape[0], 0:frame.shape[1]].astype(np.float32) + 0.5
    blobs = []
    for k in np.unique(labels[foreground]):
        core = _erode(foreground & (labels == k))  # interior pixels: edge blends of two colours fall away
        if core.sum() < config.min_core_pixels:
            continue
        mask = _dilate(core, 2) & (_coverage(frame, background, PALETTE[k]) > 0.5)
        if mask.sum() < config.min_core_pixels:  # a colour cast, not an object painted over the background
            continue
        height = np.ptp(ys[mask]) + 1.0
        width = np.ptp(xs[mask]) + 1.0
        area = float(mask.sum())
        blobs.append(Blob(NAMES[k], area, (float(xs[mask].mean()), float(ys[mask].mean())), area / (width * height)))
    return sorted(blobs, key=lambda b: -b.area)


# ---------------------------------------------------------------------------------------------------------------
# Per-clip measures
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Track:
    """One colour followed through a clip: centers `[T, 2]` (NaN where not found), areas and fill ratios `[T]`."""

    centers: np.ndarray
    areas: np.ndarray
    fills: np.ndarray

    @property
    def found(self) -> np.ndarray:
        return ~np.isnan(self.centers[:, 0])


def detect_clip(frames: np.ndarray, config: DetectorConfig = DetectorConfig()) -> list[list[Blob]]:
    return [detect(frame, config) for frame in frames]


def track(detections: list[list[Blob]], colour: str) -> Track:
    """The largest blob of `colour` in each frame."""
    picks = [next((b for b in blobs if b.colour == colour), None) for blobs in detections]
    nan = (math.nan, math.nan)
    return Track(np.array([b.center if b else nan for b in picks], dtype=np.float32),
                 np.array([b.area if b else 0.0 for b in picks], dtype=np.float32),
                 np.array([b.fill if b else math.nan for b in picks], dtype=np.float32))


def dominant_colours(detections: list[list[Blob]], count: int) -> list[str]:
    """The `count` colours covering the most object pixels over the clip."""
    totals: dict[str, float] = {}
    for blobs in detections:
        for blob in blobs:
            totals[blob.colour] = totals.get(blob.colour, 0.0) + blob.area
    return sorted(totals, key=lambda c: -totals[c])[:count]


def colour_ok(detections, scene: Scene) -> bool:
    """The clip's main object colours are the prompt's colours."""
    wanted = {o.colour for o in scene.objects}
    return set(dominant_colours(detections, len(wanted))) == wanted


def foreground_fraction(frames: np.ndarray, config: DetectorConfig = DetectorConfig()) -> float:
    """Share of a clip's pixels `[T, H, W, 3]` that differ from their frame's fitted background: its objects' area."""
    return float(np.mean([off_background(f, background_plane(f, config), config).mean() for f in frames]))


def background_ok(frames: np.ndarray, scene: Scene) -> bool:
    """The clip's mean background colour is nearest the prompt's (solid) background colour in the palette."""
    return NAMES[int(nearest_named(background_colour(frames)))] == scene.background.colours[0]


def classify_shape(fill: float) -> str:
    """Bounding-box fill ratio: square 1.0, circle pi/4 = 0.785, triangle 0.5 (AA edges move these a little)."""
    if fill >= 0.89:
        return "square"
    return "circle" if fill >= 0.64 else "triangle"


def shape_ok(detections, scene: Scene) -> bool:
    """The first object's median fill ratio names its shape."""
    fills = track(detections, scene.objects[0].colour).fills
    return bool(np.any(~np.isnan(fills))) and classify_shape(float(np.nanmedian(fills))) == scene.objects[0].shape


def observed_motion(tr: Track, min_travel: float = 3.0) -> str | None:
    """The named motion a track shows: one of DIRECTIONS, grow, shrink or still; None if the object is lost."""
    found = np.flatnonzero(tr.found)
    if len(found) < max(2, len(tr.found) // 2):
        return None
    first, last = found[0], found[-1]
    travel = tr.centers[last] - tr.centers[first]
    if np.linalg.norm(travel) >= min_travel:
        names = list(DIRECTIONS)
        return names[int(np.argmax([np.dot(travel, DIRECTIONS[n]) for n in names]))]
    growth = tr.areas[last] / max(tr.areas[first], 1.0)
    return "grow" if growth > 1.5 else "shrink" if growth < 1 / 1.5 else "still"


def motion_ok(detections, scene: Scene) -> bool | None:
    """The first object moves as the prompt says; None for bouncing (no single direction to check)."""
    obj = scene.objects[0]
    if obj.motion == "bounce":
        return None
    return observed_motion(track(detections, obj.colour)) == obj.motion


def relation_ok(detections, scene: Scene) -> bool | None:
    """For two objects: objects[0] is on the stated side of objects[1] (median x over the clip)."""
    if scene.relation is None:
        return None
    tracks = [track(detections, o.colour) for o in scene.objects]
    if not all(t.found.any() for t in tracks):
        return False  # an object that never appears is on no side
    xs = [np.median(t.centers[t.found, 0]) for t in tracks]
    return bool(xs[0] < xs[1]) == (scene.relation == "left of")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for images in 0..1."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 10.0 * math.log10(1.0 / max(mse, 1e-10))


def seam_ratio(frames: np.ndarray, seam: int) -> float:
    """Mean change from frame seam-1 to seam, over the median change between other consecutive frames."""
    steps = np.abs(np.diff(np.asarray(frames, np.float64), axis=0)).mean(axis=(1, 2, 3))  # (T-1,)
    normal = np.median(np.delete(steps, seam - 1))
    return float(steps[seam - 1] / max(normal, 1e-4))


def position_error(detections, scene: Scene, frames: list[int]) -> float:
    """Mean distance in pixels between detected and true centers of the first object at the given frames."""
    tr = track(detections, scene.objects[0].colour)
    errors = [np.linalg.norm(tr.centers[f] - scene.objects[0].centers[f]) if tr.found[f] else float(scene.width)
              for f in frames]
    return float(np.mean(errors))


def background_colour(frames: np.ndarray, config: DetectorConfig = DetectorConfig()) -> np.ndarray:
    """Mean background colour `[3]` over a stretch of frames."""
    return np.mean([background_plane(f, config).mean(axis=(0, 1)) for f in frames], axis=0)


def drift_255(first: np.ndarray, last: np.ndarray) -> float:
    """Largest per-channel change of the mean background colour between two stretches, in /255 levels."""
    return float(np.abs(background_colour(first) - background_colour(last)).max() * 255.0)


def video_drift(video: np.ndarray) -> float:
    """`drift_255` between a long video's first and last 17 frames."""
    return drift_255(video[:17], video[-17:])


# ---------------------------------------------------------------------------------------------------------------
# Held-out scenes
# ---------------------------------------------------------------------------------------------------------------


def eval_scenes(count: int, seed: int = EVAL_SEED, size: tuple[int, int] = (64, 64)) -> list[tuple[np.ndarray, Scene]]:
    """`count` held-out 17-frame clips on solid backgrounds (gradients are judged by drift only), one per seed."""
    config = WorldConfig(sizes=(size,), long_fraction=0.0, gradient_fraction=0.0)
    return [make_clip(seed + i, config) for i in range(count)]


# ---------------------------------------------------------------------------------------------------------------
# The report: generation through the public pipeline, measured against the targets
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportConfig:
    """How many held-out cases each measure uses, and the length and number of the chained videos for drift."""

    t2v: int = 60
    i2v: int = 28  # as many straight movers as text to video has, so the two direction measures compare
    extend: int = 6
    infill: int = 6
    drift_seconds: float = 60.0
    drift_chains: int = 4
    drift_round_trips: int = 6  # true clips of that length through the VAE, for the drift row's round trip
    seed: int = EVAL_SEED


QUICK = ReportConfig(t2v=12, i2v=3, extend=2, infill=2, drift_seconds=20.0, drift_chains=1, drift_round_trips=2)
FULL = ReportConfig()


def _frames(generation) -> np.ndarray:
    return generation.frames.detach().cpu().numpy().astype(np.float32)  # (T, H, W, 3)


def _image(frame: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(frame))[None]  # (1, H, W, 3) IMAGE


def straight_movers(scenes):
    """The scenes of one object moving in a straight line (the ones with a direction to check)."""
    return [(f, s) for f, s in scenes if s.moves_straight]


# the text-to-video measures: fractions of prompts, reported in percent
T2V_MEASURES = ("colour", "background", "shape", "direction", "grow/shrink/still", "left/right")
PERCENT_MEASURES = (*T2V_MEASURES, "i2v_direction")


def measure_t2v(clip_for, scenes) -> dict[str, float]:
    """Object and background colour, shape, direction, other motions and left/right over held-out prompts, and
    the objects' total area against the true clips' (1 is right; above 1 objects bloom or multiply).

    `clip_for(index, scene)` gives the frames to judge for each scene: generated from its caption, or its true clip
    through the VAE.
    """
    scores: dict[str, list[bool]] = {name: [] for name in T2V_MEASURES}
    areas = []  # (judged, true) foreground fractions
    for i, (true_frames, scene) in enumerate(scenes):
        frames = clip_for(i, scene)
        areas.append((foreground_fraction(frames), foreground_fraction(true_frames)))
        detections = detect_clip(frames)
        scores["colour"].append(colour_ok(detections, scene))
        scores["background"].append(background_ok(frames, scene))
        if scene.relation is not None:
            scores["left/right"].append(bool(relation_ok(detections, scene)))
            continue
        scores["shape"].append(shape_ok(detections, scene))
        moved = motion_ok(detections, scene)
        if moved is not None:
            scores["direction" if scene.objects[0].motion in DIRECTIONS else "grow/shrink/still"].append(moved)
    results = {name: (float(np.mean(v)), len(v)) for name, v in scores.items() if v}
    judged, true = np.sum(areas, axis=0)
    return results | {"object_area": (float(judged / true), len(areas))}


def measure_i2v(generate, scenes) -> dict[str, float]:
    """Straight movers from their first frame: PSNR of frame 0, and whether the object moves as the prompt says.

    Against text to video's direction, the second tells a DiT that cannot move objects from one that cannot read
    from the prompt where to.
    """
    values, moved = [], []
    for i, (frames, scene) in enumerate(scenes):
        video = _frames(generate(scene.caption, image=_image(frames[0]), seed=i))
        values.append(psnr(video[0], frames[0]))
        moved.append(bool(motion_ok(detect_clip(video), scene)))
    return {"i2v_psnr": (float(np.mean(values)), len(values)), "i2v_direction": (float(np.mean(moved)), len(moved))}


def measure_extension(generate, scenes) -> dict[str, float]:
    """Forward extension of a 17-frame clip by 2 s: change across the seam vs the median frame-to-frame change."""
    values = []
    for i, (frames, scene) in enumerate(scenes):
        video = _frames(generate(scene.caption, extend=_image(frames)[0], seconds=2.0, seed=i))
        values.append(seam_ratio(video, len(frames)))
    return {"seam_ratio": (float(np.median(values)), len(values))}


def measure_infill(generate, scenes) -> dict[str, float]:
    """First and last frame given: PSNR at the keyframes and the object's position error in between."""
    kf_psnr, errors = [], []
    for i, (frames, scene) in enumerate(scenes):
        last = len(frames) - 1
        video = _frames(generate(scene.caption, keyframes=[(0, _image(frames[0])), (last, _image(frames[last]))],
                                 frames=len(frames), seed=i))
        kf_psnr += [psnr(video[0], frames[0]), psnr(video[last], frames[last])]
        errors.append(position_error(detect_clip(video), scene, list(range(1, last - 3))))
    return {"keyframe_psnr": (float(np.mean(kf_psnr)), len(kf_psnr)),
            "infill_position_px": (float(np.mean(errors)), len(errors))}


def measure_drift(generate, scenes, seconds: float) -> dict[str, float]:
    """Mean drift over chained videos of `seconds`, one per scene's caption. A chain is chaotic (the same prompt
    and seed drifted 7 or 16/255 on one or two torch threads), so one says little."""
    drifts = [video_drift(_frames(generate(scene.caption, seconds=seconds, seed=0))) for _, scene in scenes]
    return {"drift_255": (float(np.mean(drifts)), len(drifts))}


def quality_report(generate, config: ReportConfig = QUICK) -> dict[str, tuple[float, int]]:
    """{measure: (value, cases)} with `generate(prompt, **kw)` the pipeline's generate (models bound)."""
    scenes = eval_scenes(config.t2v, config.seed)
    movers = _movers(config)
    results = measure_t2v(lambda i, scene: _frames(generate(scene.caption, seed=i)), scenes)
    results |= measure_i2v(generate, movers[:config.i2v])
    results |= measure_extension(generate, movers[:config.extend])
    results |= measure_infill(generate, movers[:config.infill])
    results |= measure_drift(generate, movers[:config.drift_chains], config.drift_seconds)
    return results


def _movers(config: ReportConfig):
    """The held-out straight movers that image to video, extension and infill start from."""
    return straight_movers(eval_scenes(4 * max(config.i2v, config.extend, config.infill), config.seed + 100_000))


def vae_round_trip(vae, frames: np.ndarray) -> np.ndarray:
    """A clip `[T, H, W, 3]` encoded and decoded by `vae` (a WanVAE)."""
    import torch

    from ..nodes.vae_nodes import image_to_pixels, pixels_to_image

    with torch.inference_mode():
        decoded = vae.decode(vae.encode(image_to_pixels(torch.from_numpy(np.ascontiguousarray(frames)))))[0]
    return pixels_to_image(decoded.cpu()).numpy()


def round_trip_ceiling(vae, config: ReportConfig = QUICK) -> dict[str, tuple[float, int]]:
    """The text-to-video measures, the PSNR of the frames image to video and infill are given, and the background
    drift of long clips, on the VAE round trips of the report's true held-out clips.

    A DiT's clips reach the screen through this VAE, so these are the most any DiT could score with it: they show
    whether a low score comes from the DiT or from the VAE. Two exceptions. The given frames' PSNR: the keyframe fit
    (sampler/keyframe_fit.py) fits their latent frames to the decoder and can beat the encoder's round trip. Drift:
    it says what the decoder alone lets a minute's background wander, not a bound, since the sampler's drift
    control also moves a chain's latents.
    """
    scenes = eval_scenes(config.t2v, config.seed)
    results = measure_t2v(lambda i, scene: vae_round_trip(vae, scenes[i][0]), scenes)
    movers = _movers(config)
    first = [psnr(vae_round_trip(vae, frames[:1])[0], frames[0]) for frames, _ in movers[:config.i2v]]
    ends = []  # first and last frame, the keyframes infill is given
    for frames, _ in movers[:config.infill]:
        decoded = vae_round_trip(vae, frames)
        ends += [psnr(decoded[0], frames[0]), psnr(decoded[-1], frames[-1])]
    return results | {"i2v_psnr": (float(np.mean(first)), len(first)),
                      "keyframe_psnr": (float(np.mean(ends)), len(ends)),
                      "drift_255": round_trip_drift(vae, config)}


def round_trip_drift(vae, config: ReportConfig = QUICK) -> tuple[float, int]:
    """The drift measure on held-out true clips as long as the report's chained video, through the VAE in one
    stream: the background colour the VAE alone lets wander between the first and the last 17 frames."""
    from ..sampler import frames_for_seconds

    length = frames_for_seconds(config.drift_seconds, WorldConfig().fps)  # 481 for a minute at the world's 8 fps
    # one object: the world's pairs drift at a speed that would carry them out of so long a clip
    world = WorldConfig(sizes=((64, 64),), frames=length, long_fraction=0.0, two_object_fraction=0.0,
                        gradient_fraction=0.0)
    drifts = [video_drift(vae_round_trip(vae, make_clip(config.seed + 300_000 + i, world)[0]))
              for i in range(config.drift_round_trips)]
    return float(np.mean(drifts)), len(drifts)


def round_trip_error_by_latent_frame(vae, config: ReportConfig = QUICK) -> dict[str, tuple[np.ndarray, int]]:
    """What the VAE round trip loses of the objects, latent frame by latent frame: {"moving" / "still": (errors
    [5], clips)}, the mean absolute error on the true clips' object pixels at frame 0, then over frames 1-4, 5-8,
    9-12 and 13-16 (one latent frame each), for held-out objects moving in a straight line and objects standing still.

    The Wan VAE encodes frame 0 alone and every later latent frame from four frames. An error that grows after frame
    0 for moving objects only is the cost of coding motion into a latent frame; one that grows for still objects too
    comes from the VAE's temporal cache (docs/EMBEDDED.md).
    """
    scenes = eval_scenes(8 * config.i2v, config.seed + 200_000)  # about one scene in seven stands still
    groups = {"moving": straight_movers(scenes)[:config.i2v],
              "still": [(f, s) for f, s in scenes if _stands_still(s)][:config.i2v]}
    return {name: (np.mean([_object_error(frames, vae_round_trip(vae, frames)) for frames, _ in clips], axis=0),
                   len(clips)) for name, clips in groups.items()}


def _stands_still(scene: Scene) -> bool:
    return all(np.ptp(o.centers, axis=0).max() == 0 and np.ptp(o.sizes) == 0 for o in scene.objects)


def _object_error(true_frames: np.ndarray, decoded: np.ndarray,
                  config: DetectorConfig = DetectorConfig()) -> np.ndarray:
    """17 frames -> [5]: mean absolute error over object pixels (off the true background) per latent frame."""
    per_frame = []
    for true, out in zip(true_frames, decoded):
        on_object = off_background(true, background_plane(true, config), config)
        per_frame.append(np.abs(out - true).mean(axis=-1)[on_object].mean())
    per_frame = np.array(per_frame)
    return np.concatenate([per_frame[:1], per_frame[1:].reshape(-1, 4).mean(axis=1)])


def format_error_by_latent_frame(errors: dict[str, tuple[np.ndarray, int]]) -> str:
    """A plain-text table of `round_trip_error_by_latent_frame`: one row per group of objects."""
    lines = [f"{'objects':<16} {'frame 0':>8} {'1-4':>6} {'5-8':>6} {'9-12':>6} {'13-16':>6}"]
    for name, (values, clips) in errors.items():
        lines.append(f"{f'{name} ({clips})':<16} {values[0]:>8.3f} " + " ".join(f"{v:>6.3f}" for v in values[1:]))
    return "\n".join(lines)


def meets_target(name: str, value: float) -> bool | None:
    """Whether a measure meets its issue-5 target; None for measures without one."""
    if name not in TARGETS:
        return None
    return value <= TARGETS[name] if name in ("seam_ratio", "drift_255") else value >= TARGETS[name]


def format_report(results: dict[str, tuple[float, int]], ceiling: dict[str, tuple[float, int]] | None = None) -> str:
    """A plain-text table: measure, value, target, cases, verdict, and the VAE round trip's value where given."""
    target_of = {"colour": ">= 90%", "direction": ">= 85%", "i2v_psnr": ">= 25 dB", "seam_ratio": "<= 2x",
                 "keyframe_psnr": ">= 25 dB", "drift_255": "<= 5/255"}
    ceiling = ceiling or {}
    lines = [f"{'measure':<20} {'value':>9} {'target':>10} {'cases':>6}  ok   VAE round trip"]
    for name, (value, cases) in results.items():
        shown = _shown(name, value)
        verdict = {True: "yes", False: "NO", None: "-"}[meets_target(name, value)]
        bound = _shown(name, ceiling[name][0]) if name in ceiling else "-"
        lines.append(f"{name:<20} {shown:>9} {target_of.get(name, '-'):>10} {cases:>6}  {verdict:<3}  {bound:>9}")
    return "\n".join(lines)


def _shown(name: str, value: float) -> str:
    if name in PERCENT_MEASURES:
        return f"{100 * value:.1f}%"
    return f"{value:.2f}x" if name == "object_area" else f"{value:.2f}"


def contact_sheet(clips: list[np.ndarray], path, columns: int = 5) -> None:
    """A PNG with one row per clip (`[T, H, W, 3]` in 0..1): `columns` frames evenly spread over the clip."""
    from PIL import Image

    height = max(c.shape[1] for c in clips)
    width = max(c.shape[2] for c in clips)
    sheet = np.ones((len(clips) * (height + 2), columns * (width + 2), 3), dtype=np.float32)
    for row, clip in enumerate(clips):
        for col, index in enumerate(np.linspace(0, len(clip) - 1, columns).round().astype(int)):
            y, x = row * (height + 2), col * (width + 2)
            sheet[y:y + clip.shape[1], x:x + clip.shape[2]] = clip[index]
    Image.fromarray((sheet * 255).round().astype(np.uint8)).save(path)
