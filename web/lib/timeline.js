// Keyframe timeline maths: pure functions, no DOM, shared by the canvas widget and the node tests.
//
// Frames are pixel frames of the clip (0 .. length-1). The Wan VAEs compress time 4x causally: pixel frame 0
// is latent frame 0 on its own, then each group of 4 pixel frames (1..4, 5..8, ...) is one latent frame, so
// pixel frame p lives in latent frame (p + 3) >> 2. A keyframe pins a whole latent frame; the timeline snaps
// keyframes to multiples of 4, the one pixel frame per latent frame that maps back one to one (4k <-> k) and
// that includes both ends of a 4k+1 clip.

export const FRAMES_PER_LATENT = 4;

/** Latent frame that holds pixel frame `p`. */
export function latentFrameOf(p) {
  return (p + FRAMES_PER_LATENT - 1) >> 2;
}

/** Pixel frames [first, last] that make up latent frame `k`. */
export function pixelRangeOfLatent(k) {
  if (k === 0) return [0, 0];
  return [FRAMES_PER_LATENT * k - 3, FRAMES_PER_LATENT * k];
}

/** Seconds at which frame `p` is shown. */
export function framesToSeconds(p, fps) {
  return p / fps;
}

/** Nearest frame to `seconds`. */
export function secondsToFrames(seconds, fps) {
  return Math.round(seconds * fps);
}

/** Last frame a keyframe may take in a clip of `length` frames: the last multiple of 4 inside the clip. */
export function lastSnappableFrame(length) {
  return Math.max(0, Math.floor((length - 1) / FRAMES_PER_LATENT) * FRAMES_PER_LATENT);
}

/** Snap frame `p` to the nearest frame the model can pin (a multiple of 4) inside a clip of `length` frames. */
export function snapFrame(p, length) {
  const snapped = Math.round(p / FRAMES_PER_LATENT) * FRAMES_PER_LATENT;
  return Math.min(Math.max(snapped, 0), lastSnappableFrame(length));
}

/**
 * Parse a frame list such as "0, 16,-1" (the node also takes ";" and negative indices counted from the end).
 * Returns {frames, tokens, invalid}: frames resolved against `length` and the tokens as written, both in the
 * written order, because the node pairs the i-th image of its batch with the i-th index; `invalid` holds the
 * tokens that are not whole numbers, so the widget can point at them while the user is still typing.
 */
export function parseFrameIndices(text, length) {
  const frames = [];
  const tokens = [];
  const invalid = [];
  for (const raw of String(text).split(/[,;]/)) {
    const token = raw.trim();
    if (token === "") continue;
    if (!/^-?\d+$/.test(token)) {
      invalid.push(token);
      continue;
    }
    const p = Number(token);
    frames.push(p < 0 ? length + p : p);
    tokens.push(token);
  }
  return { frames, tokens, invalid };
}

/**
 * Format frames for the node's STRING widget, order kept: "0,16,32". Given the `parsed` list they came from,
 * a frame that did not move keeps its written token, so "-1" stays "last frame" after a drag of another one.
 */
export function formatFrameIndices(frames, parsed = { frames: [], tokens: [] }) {
  return frames.map((p, i) => (parsed.frames[i] === p ? parsed.tokens[i] : String(p))).join(",");
}

/**
 * Move keyframe `index` to `target`, snapped, and kept strictly between the keyframes on either side of it in
 * time (one latent frame apart), so a drag never passes or merges keyframes. Returns a new array, order kept.
 */
export function dragKeyframe(frames, index, target, length) {
  const p = frames[index];
  const before = frames.filter((q) => q < p);
  const after = frames.filter((q) => q > p);
  const low = before.length ? Math.max(...before) + FRAMES_PER_LATENT : 0;
  const high = after.length ? Math.min(...after) - FRAMES_PER_LATENT : lastSnappableFrame(length);
  const next = [...frames];
  if (low <= high) next[index] = Math.min(Math.max(snapFrame(target, length), low), high);
  return next;
}

/** Horizontal geometry of a timeline drawn from x0 over `width` pixels for a clip of `length` frames. */
export function frameToX(p, length, x0, width) {
  return x0 + (length > 1 ? (p / (length - 1)) * width : 0);
}

/** Inverse of frameToX, unsnapped and unclamped. */
export function xToFrame(x, length, x0, width) {
  return length > 1 ? ((x - x0) / width) * (length - 1) : 0;
}

/** Index of the keyframe nearest to x within `radius` pixels, or -1. */
export function hitKeyframe(frames, x, length, x0, width, radius) {
  let best = -1;
  let bestDistance = radius;
  frames.forEach((p, i) => {
    const distance = Math.abs(frameToX(p, length, x0, width) - x);
    if (distance <= bestDistance) {
      best = i;
      bestDistance = distance;
    }
  });
  return best;
}

/** Tick marks for a ruler: one every `step` seconds, with a step chosen so that about `targetTicks` fit. */
export function secondTicks(length, fps, targetTicks = 8) {
  const duration = framesToSeconds(Math.max(length - 1, 0), fps);
  const steps = [0.25, 0.5, 1, 2, 5, 10, 15, 30, 60];
  const step = steps.find((s) => duration / s <= targetTicks) ?? 60;
  const ticks = [];
  for (let s = 0; s <= duration + 1e-9; s += step) ticks.push({ seconds: s, frame: s * fps });
  return ticks;
}
