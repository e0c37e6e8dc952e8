// The timeline of Extend Video: the clip's edge, the context frames the model keeps from the clip (pinned,
// keyframe-coloured; 0 means the sampler chooses) and the new frames; two handles drag the context length
// (in whole latent frames of 4) and the added time.
//
// As with the keyframe timeline, the values live in the node's widgets and a drag writes them there.
import { extensionAxis, offsetToX, snapToStep, xToOffset } from "../lib/extension_window.js";
import { secondsToFrames } from "../lib/timeline.js";
import {
  COLORS, MARKER_Y, TRACK, addCanvasWidget, diamond, handleDrags, setWidgetValue, text, tick, widgetNamed,
} from "./draw.js";

const HEIGHT = 76; // header, labels, track, ruler
const { padX: PAD_X, top: TRACK_Y, height: TRACK_H } = TRACK;
const HIT_RADIUS = 9;
const CONTEXT_HANDLE = 0;
const END_HANDLE = 1;
const LATENT_FRAME = 4; // context frames come in whole latent frames

/**
 * Add the timeline to `node`; `spec` names its widgets: `direction` ("forward" / "backward"), `seconds` (time
 * to add), `fps`, `context` (context frames, 0 = the sampler's choice) and `anchor` (keep the clip's first
 * frame, BOOLEAN).
 */
export function addExtensionTimeline(node, spec) {
  const drag = { handle: -1, axis: null }; // the axis stays frozen while a handle is dragged
  const read = () => readWindow(node, spec, drag.axis);
  const { canvas, redraw } = addCanvasWidget(node, "extension_timeline", HEIGHT,
    () => `${JSON.stringify(read())}|${drag.handle}`,
    (ctx, width) => paint(ctx, read(), width, drag.handle));
  const track = () => [PAD_X, Math.max(canvas.clientWidth - 2 * PAD_X, 1)];

  handleDrags(canvas, {
    hit: (x) => hitHandle(read(), x, ...track()),
    start: () => { drag.axis = read().axis; },
    move: (handle, x) => {
      const w = read();
      const offset = xToOffset(x, w.axis, w.direction, ...track());
      if (handle === CONTEXT_HANDLE) {
        const { min, max } = widgetNamed(node, spec.context).options;
        setWidgetValue(node, spec.context, snapToStep(-offset, LATENT_FRAME, min, max));
      } else {
        const { min, max } = widgetNamed(node, spec.seconds).options;
        setWidgetValue(node, spec.seconds, snapToStep(offset / w.fps, declaredStep(node, spec.seconds), min, max));
      }
    },
    changed: (handle) => {
      drag.handle = handle;
      if (handle < 0) drag.axis = null;
      redraw();
    },
  });
}

/** The step the node declared: the frontend keeps it in `step2` and a legacy ten-fold value in `step`. */
function declaredStep(node, name) {
  const { step, step2 } = widgetNamed(node, name).options;
  return step2 ?? step / 10;
}

function readWindow(node, spec, frozenAxis) {
  const value = (name) => widgetNamed(node, spec[name])?.value;
  const direction = value("direction") === "backward" ? "backward" : "forward";
  const fps = Math.max(1, Number(value("fps")) || 16);
  const seconds = Number(value("seconds")) || 0;
  const context = Math.max(0, Number(value("context")) || 0);
  const added = secondsToFrames(seconds, fps);
  const axis = frozenAxis ?? extensionAxis(context, added);
  return { direction, fps, seconds, context, added, axis, anchor: Boolean(value("anchor")) };
}

function handleOffsets(w) {
  return [-w.context, w.added];
}

function hitHandle(w, x, x0, width) {
  const distances = handleOffsets(w).map((offset) => Math.abs(offsetToX(offset, w.axis, w.direction, x0, width) - x));
  const nearest = distances[CONTEXT_HANDLE] <= distances[END_HANDLE] ? CONTEXT_HANDLE : END_HANDLE;
  return distances[nearest] <= HIT_RADIUS ? nearest : -1;
}

function paint(ctx, w, cssWidth, activeHandle) {
  const x0 = PAD_X;
  const width = Math.max(cssWidth - 2 * PAD_X, 1);
  const at = (offset) => offsetToX(offset, w.axis, w.direction, x0, width);
  const where = w.direction === "forward" ? "after the clip" : "before the clip";
  const context = w.context ? `${w.context} context frames` : "context: sampler's choice";
  text(ctx, `+${w.added} frames (${w.seconds.toFixed(2)} s at ${w.fps} fps) ${where} · ${context}`, PAD_X, 4);
  band(ctx, at(-w.axis.before), at(0), COLORS.clip);
  band(ctx, at(-w.context), at(0), COLORS.key, 0.35);
  band(ctx, at(0), at(w.added), COLORS.fresh);
  text(ctx, "clip", (at(-w.axis.before) + at(-w.context)) / 2, MARKER_Y, { color: COLORS.dim, size: 10, align: "center", baseline: "middle" });
  text(ctx, "new", (at(0) + at(w.added)) / 2, MARKER_Y, { size: 10, align: "center", baseline: "middle" });
  drawSecondsFromEdge(ctx, w, at);
  if (w.anchor) drawAnchor(ctx, at(-w.axis.before));
  handleOffsets(w).forEach((offset, handle) => {
    const x = at(offset);
    const activeColor = handle === activeHandle ? COLORS.keyActive : COLORS.key;
    diamond(ctx, x, MARKER_Y, handle === activeHandle ? 8 : 7, activeColor);
    const label = handle === CONTEXT_HANDLE ? (w.context ? `${w.context}f` : "auto") : `${w.seconds}s`;
    text(ctx, label, x, TRACK_Y - 1, { size: 10, align: "center", baseline: "bottom" });
  });
}

function band(ctx, xa, xb, color, alpha = 1) {
  ctx.globalAlpha = alpha;
  ctx.fillStyle = color;
  ctx.fillRect(Math.min(xa, xb), TRACK_Y, Math.abs(xb - xa), TRACK_H);
  ctx.globalAlpha = 1;
}

/** Ticks in seconds from the clip's edge: 0 at the edge, counting into the new frames. */
function drawSecondsFromEdge(ctx, w, at) {
  const span = w.axis.after / w.fps;
  const step = [0.25, 0.5, 1, 2, 5, 10, 15, 30].find((s) => span / s <= 6) ?? 60;
  const sign = w.direction === "forward" ? "+" : "-";
  for (let s = 0; s <= span + 1e-9; s += step) tick(ctx, at(s * w.fps), TRACK_Y + TRACK_H, s === 0 ? "0" : `${sign}${s}s`);
}

/** The clip's first frame, kept as a keyframe in every window: drawn at the far end of the clip. */
function drawAnchor(ctx, x) {
  ctx.strokeStyle = COLORS.key;
  ctx.setLineDash([3, 3]);
  ctx.beginPath();
  ctx.moveTo(x, TRACK_Y);
  ctx.lineTo(x, TRACK_Y + TRACK_H);
  ctx.stroke();
  ctx.setLineDash([]);
  diamond(ctx, x, MARKER_Y, 5, COLORS.key);
  text(ctx, "first frame", x + 7, TRACK_Y - 1, { size: 10, baseline: "bottom" });
}
