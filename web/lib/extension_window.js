// Geometry of an Extend Video window: pure functions, no DOM.
//
// The timeline is drawn around the clip's edge (its last frame going forward, its first going backward): the
// clip's known context frames on one side, the frames to generate on the other. Offsets count frames from that
// edge, negative into the clip. The axis keeps headroom past the current values so that a handle can be
// dragged outwards; it is recomputed only between drags so the picture does not rescale under the pointer.

const NICE_STEPS = [1, 2, 5];
const HEADROOM = 1.25;

/** Smallest 1/2/5 x 10^k that is at least `n` (and at least 1). */
export function niceCeil(n) {
  for (let scale = 1; ; scale *= 10) {
    for (const step of NICE_STEPS) if (step * scale >= n) return step * scale;
  }
}

/** Nearest multiple of `step` within [min, max], rounded to hide float noise (0.1 + 0.2). */
export function snapToStep(value, step, min, max) {
  const snapped = Math.round(value / step) * step;
  return Math.min(Math.max(Number(snapped.toFixed(6)), min), max);
}

/**
 * The axis: how many frames it shows inside the clip (`before`) and past its edge (`after`). A context of 0
 * (the sampler's choice) still leaves room inside the clip to drag the context handle into.
 */
export function extensionAxis(contextFrames, added) {
  return { before: niceCeil(Math.max(contextFrames, 8) * HEADROOM), after: niceCeil(added * HEADROOM) };
}

/** x of a frame offset from the clip's edge; going backward the picture is mirrored (new frames on the left). */
export function offsetToX(offset, axis, direction, x0, width) {
  const fraction = (offset + axis.before) / (axis.before + axis.after);
  return direction === "backward" ? x0 + width * (1 - fraction) : x0 + width * fraction;
}

/** Inverse of offsetToX, unsnapped. */
export function xToOffset(x, axis, direction, x0, width) {
  const fraction = direction === "backward" ? 1 - (x - x0) / width : (x - x0) / width;
  return fraction * (axis.before + axis.after) - axis.before;
}
