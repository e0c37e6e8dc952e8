// The Sampler's `info` on the node after a run: how it applied keyframes, how Text Encode recaptioned the prompt
// for spacetime-mini, which words or sizes the model never saw. The node's `info` output carries the same text.
//
// The widget is added with the node, empty and 0 px tall, so that it sits above the preview image the frontend
// appends during sampling; a loaded graph keeps its layout until the first run fills it.
import { COLORS } from "./draw.js";

const LINE_HEIGHT = 15;
const MAX_LINES = 8; // longer notes scroll
const CHAR_WIDTH = 6; // about, at 11 px: to guess how many lines a note wraps to

/** Show `message.text` (the node's `ui.text`) under the Sampler's widgets, above its preview, after each run. */
export function showRunInfo(node) {
  const onExecuted = node.onExecuted;
  const layout = { height: 0 }; // what the node's layout gives the widget
  const element = addInfoWidget(node, layout);
  node.onExecuted = function (message) {
    onExecuted?.apply(this, arguments);
    const lines = (message?.text ?? []).flatMap((text) => String(text).split("; "));
    if (!lines.length) return;
    element.textContent = lines.join("\n");
    const perLine = Math.max(1, Math.floor((node.size[0] - 30) / CHAR_WIDTH));
    const wrapped = lines.reduce((sum, line) => sum + Math.ceil(line.length / perLine), 0);
    layout.height = Math.min(wrapped, MAX_LINES) * LINE_HEIGHT + 8;
    node.setSize([node.size[0], Math.max(node.size[1], node.computeSize()[1])]);
    node.setDirtyCanvas(true, true);
  };
}

function addInfoWidget(node, layout) {
  const element = document.createElement("div");
  element.className = "spacetime-run-info";
  element.style.cssText = `font:11px/${LINE_HEIGHT}px sans-serif;color:${COLORS.text};white-space:pre-wrap;`
    + "overflow-y:auto;padding:4px 6px;box-sizing:border-box;user-select:text";
  const widget = node.addDOMWidget("run_info", "spacetime_run_info", element, {
    serialize: false, // keeps it out of the queued prompt
    getMinHeight: () => layout.height,
    getMaxHeight: () => layout.height,
  });
  widget.serialize = false; // keeps it out of the saved widgets_values
  return element;
}
