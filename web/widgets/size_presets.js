// Size presets on an empty-latent node: aspect ratio and resolution pickers that fill in width and height,
// snapping of width / height / length to sizes the model can take, and the token count and memory estimate
// shown on the node before anything is queued.
import {
  ASPECT_RATIOS, MODEL_SPECS, SHORT_SIDES, formatBytes, formatCount, latentFrames, memoryEstimate, nearestAspect,
  presetSize, sizeMultiple, snapFrames, snapSide, tokenCount,
} from "../lib/presets.js";
import { setWidgetValue, widgetNamed } from "./draw.js";

const HEIGHT = 84;
const CUSTOM = "custom";

/**
 * Add the presets to `node`. `spec` names its widgets (`width`, `height`, `length`, `batch`) and gives
 * `vaeKind(node)`, which says whose latents these are (a key of VAE_KINDS) and so the size multiple.
 */
export function addSizePresets(node, spec) {
  const root = document.createElement("div");
  root.className = "spacetime-size-presets";
  root.style.cssText = "display:flex;flex-direction:column;gap:4px;font:11px sans-serif;color:#d8d8d8;padding:2px 0";
  const aspect = select(["aspect", ...Object.keys(ASPECT_RATIOS)]);
  const side = select(["size", ...SHORT_SIDES.map((s) => `${s}p`), CUSTOM]);
  const row = document.createElement("div");
  row.style.cssText = "display:flex;gap:6px";
  row.append(aspect, side);
  const tokens = line();
  const memory = line();
  root.append(row, tokens, memory);

  const widget = node.addDOMWidget("size_presets", "spacetime_size_presets", root, {
    serialize: false, // width and height carry the choice
    hideOnZoom: true,
    getMinHeight: () => HEIGHT,
    getMaxHeight: () => HEIGHT,
    onDraw: () => refresh(),
  });
  widget.serialize = false;

  const value = (name) => Number(widgetNamed(node, spec[name])?.value);
  let shownKey = "";

  function refresh() {
    const size = { width: value("width"), height: value("height"), frames: value("length"), batch: value("batch") || 1 };
    const vae = spec.vaeKind(node);
    const key = JSON.stringify([size, vae]);
    if (key === shownKey) return;
    shownKey = key;
    aspect.value = nearestAspect(size.width, size.height);
    side.value = matchingSide(size, vae, aspect.value);
    tokens.textContent = tokenLine(size, vae);
    memory.textContent = memoryLine(size, vae);
  }

  // A new aspect with a custom size keeps the current short side.
  const applyPreset = () => {
    const short = side.value === CUSTOM ? Math.min(value("width"), value("height")) : parseInt(side.value, 10);
    const { width, height } = presetSize(aspect.value, short, spec.vaeKind(node));
    setWidgetValue(node, spec.width, width);
    setWidgetValue(node, spec.height, height);
    refresh();
  };
  aspect.addEventListener("change", applyPreset);
  side.addEventListener("change", applyPreset);

  const multiple = () => sizeMultiple(spec.vaeKind(node));
  snapOnChange(node, spec.width, (v) => snapSide(v, multiple()));
  snapOnChange(node, spec.height, (v) => snapSide(v, multiple()));
  snapOnChange(node, spec.length, snapFrames);
}

function select(options) {
  const element = document.createElement("select");
  element.style.cssText = "flex:1;min-width:0;background:#222;color:#ddd;border:1px solid #444;border-radius:4px;padding:2px";
  for (const option of options) element.add(new Option(option, option));
  element.options[0].disabled = true; // the first entry is the label of the picker
  return element;
}

function line() {
  const element = document.createElement("div");
  element.className = "spacetime-estimate";
  element.style.cssText = "white-space:nowrap;overflow:hidden;text-overflow:ellipsis";
  return element;
}

/** The resolution entry that produces the current size, or "custom". */
function matchingSide(size, vae, aspect) {
  const match = SHORT_SIDES.find((s) => {
    const preset = presetSize(aspect, s, vae);
    return preset.width === size.width && preset.height === size.height;
  });
  return match === undefined ? CUSTOM : `${match}p`;
}

function tokenLine(size, vae) {
  const count = tokenCount({ ...size, vae }) * size.batch;
  return `${formatCount(count)} tokens · ${latentFrames(size.frames)} latent frames · ${size.width}x${size.height}`;
}

function memoryLine(size, vae) {
  const specs = MODEL_SPECS.filter((s) => s.vae === vae);
  const estimates = specs.map((s) => `${s.name} ≈ ${formatBytes(memoryEstimate(size, s).peak)}`);
  const windows = [...new Set(specs.filter((s) => size.frames > s.window).map((s) => s.window))];
  const chained = windows.length ? ` (a ${windows.join("/")}-frame window at a time)` : "";
  return `peak memory: ${estimates.join(" · ")}${chained}`;
}

/** After the user changes widget `name`, replace its value with `snap(value)` when they differ. */
function snapOnChange(node, name, snap) {
  const widget = widgetNamed(node, name);
  if (!widget) return;
  const original = widget.callback;
  widget.callback = function (value, ...rest) {
    const snapped = snap(Number(value));
    if (snapped !== Number(value)) widget.value = snapped;
    return original?.call(this, widget.value, ...rest);
  };
}
