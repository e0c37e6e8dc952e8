// Canvas helpers shared by the timeline widgets: a DOM <canvas> widget that redraws only when what it shows
// changes, and the few shapes both timelines draw.

export const COLORS = {
  text: "#d8d8d8", dim: "#8a8a8a", track: "#1d1f24", latent: "#2f333b", tick: "#6b7280", clip: "#3a3f48",
  fresh: "#2c5d8a", key: "#f5b82e", keyActive: "#ffe08a", warn: "#ff7b72",
};

// Geometry shared by both timelines (and by the browser test that drags their markers): the track runs from
// `padX` to width - `padX`, markers sit on its middle line.
export const TRACK = { padX: 14, top: 30, height: 22 };
export const MARKER_Y = TRACK.top + TRACK.height / 2;

export function widgetNamed(node, name) {
  return node.widgets?.find((w) => w.name === name);
}

/** Set a widget the way a user edit does (value, then its callback) and ask the canvas to redraw. */
export function setWidgetValue(node, name, value) {
  const widget = widgetNamed(node, name);
  if (!widget || widget.value === value) return;
  widget.value = value;
  widget.callback?.(widget.value);
  node.setDirtyCanvas(true, true);
}

const MARGIN = 4; // around the element, inside the widget's slot

/**
 * Add a <canvas> DOM widget `height` pixels tall to `node`. `paint(ctx, width, height)` runs when `stateKey()`
 * changes or the canvas is resized; the widget is not serialized (the node's own widgets carry the values).
 */
export function addCanvasWidget(node, name, height, stateKey, paint) {
  const canvas = document.createElement("canvas");
  canvas.className = `spacetime-${name}`;
  canvas.style.cssText = "width:100%;height:100%;display:block;touch-action:none";
  let drawnKey = "";
  const redraw = () => {
    const key = `${stateKey()}|${canvas.clientWidth}x${canvas.clientHeight}`;
    if (key === drawnKey || canvas.clientWidth === 0) return;
    drawnKey = key;
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(canvas.clientWidth * ratio);
    canvas.height = Math.round(canvas.clientHeight * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    paint(ctx, canvas.clientWidth, canvas.clientHeight);
  };
  const widget = node.addDOMWidget(name, `spacetime_${name}`, canvas, {
    serialize: false, // keeps it out of the queued prompt
    hideOnZoom: true,
    margin: MARGIN,
    getMinHeight: () => height + 2 * MARGIN,
    getMaxHeight: () => height + 2 * MARGIN,
    onDraw: redraw,
  });
  widget.serialize = false; // keeps it out of the saved widgets_values
  // The frontend lays the element out after the node's first draw; paint again once it has a size.
  new ResizeObserver(redraw).observe(canvas);
  return { canvas, widget, redraw };
}

export function text(ctx, value, x, y, { color = COLORS.text, size = 11, align = "left", baseline = "top" } = {}) {
  ctx.font = `${size}px sans-serif`;
  ctx.fillStyle = color;
  ctx.textAlign = align;
  ctx.textBaseline = baseline;
  ctx.fillText(value, x, y);
}

export function diamond(ctx, x, y, r, color) {
  ctx.fillStyle = color;
  ctx.beginPath();
  ctx.moveTo(x, y - r);
  ctx.lineTo(x + r, y);
  ctx.lineTo(x, y + r);
  ctx.lineTo(x - r, y);
  ctx.closePath();
  ctx.fill();
}

export function tick(ctx, x, y, label) {
  ctx.strokeStyle = COLORS.tick;
  ctx.beginPath();
  ctx.moveTo(x, y);
  ctx.lineTo(x, y + 4);
  ctx.stroke();
  text(ctx, label, x, y + 6, { color: COLORS.dim, size: 10, align: "center" });
}

/** Pointer dragging on `canvas`: `hit(x)` picks a handle (or -1), `move(handle, x)` applies the drag. */
export function handleDrags(canvas, { hit, move, start = () => {}, changed }) {
  let dragging = -1;
  canvas.addEventListener("pointerdown", (event) => {
    const handle = hit(event.offsetX);
    if (handle < 0) return;
    event.preventDefault();
    event.stopPropagation(); // the drag belongs to the timeline, not to the canvas under it
    dragging = handle;
    start();
    canvas.setPointerCapture(event.pointerId);
    changed(dragging);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (dragging >= 0) move(dragging, event.offsetX);
    else canvas.style.cursor = hit(event.offsetX) >= 0 ? "grab" : "default";
    changed(dragging);
  });
  const end = (event) => {
    if (dragging < 0) return;
    dragging = -1;
    canvas.releasePointerCapture(event.pointerId);
    changed(dragging);
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
}
