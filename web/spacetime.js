// ComfyUI-Spacetime in the canvas: keyframe timelines on Infill Frames and Extend Video, size presets with a
// token count and memory estimate on Empty Latent Video, the Sampler's info on the node after a run.
//
// Only the frontend's extension API is used (registerExtension, nodeCreated, DOM widgets). Latent previews
// during sampling and the finished mp4 in Save Video need nothing here: the sampler sends previews through
// ComfyUI's progress bar and Save Video returns its file as an animated output, which the frontend plays.
import { app } from "../../scripts/app.js";
import { addExtensionTimeline } from "./widgets/extension_timeline.js";
import { addKeyframeTimeline } from "./widgets/keyframe_timeline.js";
import { showRunInfo } from "./widgets/run_info.js";
import { addSizePresets } from "./widgets/size_presets.js";

const MIN_WIDTH = 380; // the timelines need room for their labels

/** Whose latents an Empty Latent Video makes, read from the VAE loader wired into it (by its file name). */
function vaeKindOf(node) {
  const slot = node.findInputSlot?.("vae") ?? -1;
  const loader = slot >= 0 ? node.getInputNode(slot) : null;
  const name = String(loader?.widgets?.find((w) => w.name === "vae_name")?.value ?? "");
  if (/spacetime_mini/i.test(name)) return "spacetime-mini";
  return /wan2[._]2/i.test(name) ? "wan2.2" : "wan2.1";
}

const WIDGETS = {
  SpacetimeInfillFrames: (node) => addKeyframeTimeline(node, { frames: "frame_indices", length: "length", fps: "fps" }),
  SpacetimeExtendVideo: (node) => addExtensionTimeline(node, {
    direction: "direction", seconds: "add_seconds", fps: "fps", context: "context_frames", anchor: "anchor_first_frame",
  }),
  SpacetimeEmptyLatentVideo: (node) => addSizePresets(node, {
    width: "width", height: "height", length: "frames", batch: "batch_size", vaeKind: vaeKindOf,
  }),
};

app.registerExtension({
  name: "Spacetime.Canvas",
  nodeCreated(node) {
    if (node.comfyClass === "SpacetimeSampler") showRunInfo(node);
    const add = WIDGETS[node.comfyClass];
    if (!add) return;
    add(node);
    const [width, height] = node.computeSize();
    node.setSize([Math.max(node.size[0], width, MIN_WIDTH), Math.max(node.size[1], height)]);
  },
});
