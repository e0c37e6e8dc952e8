// The keyframe timeline of Infill Frames: the clip's frames and seconds, its latent frames, and a draggable
// marker per keyframe.
//
// The widget keeps no copy of the values: it reads the node's widgets (frame list, length, fps) on every draw
// and writes a drag straight into the frame-list widget, so the graph saves, shares and queues what it shows.
import {
  dragKeyframe, formatFrameIndices, frameToX, framesToSeconds, hitKeyframe, latentFrameOf, parseFrameIndices,
  pixelRangeOfLatent, secondTicks, xToFrame,
} from "../lib/timeline.js";
import {
  COLORS, MARKER_Y, TRACK, addCanvasWidget, diamond, handleDrags, setWidgetValue, text, tick, widgetNamed,
} from "./draw.js";

const HEIGHT = 76; // header, labels, track, ruler
const { padX: PAD_X, top: TRACK_Y, height: TRACK_H } = TRACK;
const HIT_RADIUS = 9;

/** Add the timeline to `node`; `spec` names its widgets: `frames` ("0,16,32"), `length` and `fps`. */
export function addKeyframeTimeline(node, spec) {
  const active = { dragging: -1 };
  const read = () => readTimeline(node, spec);
  const { canvas, redraw } = addCanvasWidget(node, "keyframe_timeline", HEIGHT,
    () => `${JSON.stringify(read())}|${active.dragging}`,
    (ctx, width) => paint(ctx, read(), width, active.dragging));
  const track = () => [PAD_X, Math.max(canvas.clientWidth - 2 * PAD_X, 1)];

  handleDrags(canvas, {
    hit: (x) => {
      const t = read();
      return hitKeyframe(t.frames, x, t.length, ...track(), HIT_RADIUS);
    },
    move: (index, x) => {
      const t = read();
      const next = dragKeyframe(t.frames, index, xToFrame(x, t.length, ...track()), t.length);
      setWidgetValue(node, spec.frames, formatFrameIndices(next, t.parsed));
    },
    changed: (dragging) => {
      active.dragging = dragging;
      redraw();
    },
  });
}

/** Everything the timeline draws, read from the node's widgets. */
function readTimeline(node, spec) {
  const textValue = String(widgetNamed(node, spec.frames)?.value ?? "");
  const length = Math.max(1, Number(widgetNamed(node, spec.length)?.value) || 1);
  const fps = Math.max(1, Number(widgetNamed(node, spec.fps)?.value) || 16);
  const parsed = parseFrameIndices(textValue, length);
  const outside = parsed.frames.filter((p) => p < 0 || p >= length);
  return { length, fps, frames: parsed.frames, parsed, invalid: parsed.invalid, outside };
}

function paint(ctx, t, cssWidth, dragging) {
  const x0 = PAD_X;
  const width = Math.max(cssWidth - 2 * PAD_X, 1);
  const seconds = framesToSeconds(t.length, t.fps).toFixed(2);
  const latent = latentFrameOf(t.length - 1) + 1;
  text(ctx, `${t.length} frames · ${seconds} s at ${t.fps} fps · ${latent} latent frames`, PAD_X, 4);
  const problems = [...t.invalid.map((s) => `"${s}"`), ...t.outside.map(String)];
  if (problems.length) text(ctx, `not a frame: ${problems.join(", ")}`, cssWidth - PAD_X, 4, { color: COLORS.warn, align: "right" });
  drawLatentCells(ctx, t.length, x0, width);
  for (const s of secondTicks(t.length, t.fps)) tick(ctx, frameToX(s.frame, t.length, x0, width), TRACK_Y + TRACK_H, `${s.seconds}s`);
  t.frames.forEach((p, i) => {
    if (p < 0 || p >= t.length) return;
    const x = frameToX(p, t.length, x0, width);
    diamond(ctx, x, MARKER_Y, i === dragging ? 8 : 7, i === dragging ? COLORS.keyActive : COLORS.key);
    text(ctx, String(p), x, TRACK_Y - 1, { size: 10, align: "center", baseline: "bottom" });
  });
}

/** The track, striped by latent frame so it shows which pixel frames share one. */
function drawLatentCells(ctx, length, x0, width) {
  ctx.fillStyle = COLORS.track;
  ctx.fillRect(x0, TRACK_Y, width, TRACK_H);
  if (frameToX(4, length, x0, width) - x0 < 3) return; // too dense to show
  ctx.fillStyle = COLORS.latent;
  for (let k = 1; k <= latentFrameOf(length - 1); k += 2) {
    const [first, last] = pixelRangeOfLatent(k);
    const left = frameToX(first, length, x0, width);
    ctx.fillRect(left, TRACK_Y, frameToX(Math.min(last, length - 1), length, x0, width) - left, TRACK_H);
  }
}
