// Size presets, token count and a memory estimate for an empty video latent: pure functions, no DOM.
//
// A Wan VAE compresses space by `spatial` (8 for Wan 2.1, 16 for Wan 2.2) and the DiT then patches 2x2, so a
// pixel side must be a multiple of 2 * spatial (16 / 32) and one token covers (2 * spatial)^2 pixels of one
// latent frame. Frames are 4k+1; latent frames T' = (frames - 1) / 4 + 1.

export const ASPECT_RATIOS = { "16:9": [16, 9], "9:16": [9, 16], "1:1": [1, 1], "4:3": [4, 3], "2.39:1": [2.39, 1] };

// Named by the short side, as video resolutions are ("720p" is 1280x720 landscape or 720x1280 portrait).
export const SHORT_SIDES = [128, 256, 480, 720, 1080];

// `decoderWidth`: channels of the decoder's last level per full-resolution pixel (Wan 2.2 decodes at half
// resolution with 256 channels, then unpatchifies 2x2).
export const VAE_KINDS = {
  "wan2.1": { spatial: 8, channels: 16, decoderWidth: 96 },
  "wan2.2": { spatial: 16, channels: 48, decoderWidth: 64 },
  "spacetime-mini": { spatial: 8, channels: 16, decoderWidth: 16 }, // the bundled model's VAE, Wan 2.1 layout
};

// Models an estimate is shown for, by the VAE their latents use. Weights in the dtype of the Comfy-Org files;
// `window`: the model's native length in frames; the sampler runs a longer video one window at a time.
export const MODEL_SPECS = [
  { name: "Wan 2.1 1.3B", vae: "wan2.1", params: 1.3e9, weightBytes: 2, dim: 1536, ffn: 8960, window: 81 },
  { name: "Wan 14B fp8", vae: "wan2.1", params: 14e9, weightBytes: 1, dim: 5120, ffn: 13824, window: 81 },
  { name: "Wan 2.2 5B", vae: "wan2.2", params: 5e9, weightBytes: 2, dim: 3072, ffn: 14336, window: 121 },
  { name: "spacetime-mini", vae: "spacetime-mini", params: 6e6, weightBytes: 4, dim: 256, ffn: 768, window: 17 },
];

const GIB = 1024 ** 3;
const ACTIVATION_BYTES = 2; // bf16 / fp16 compute
const CFG_BATCH = 2; // the conditional and unconditional passes run as one batch

function vaeKind(vae) {
  const kind = VAE_KINDS[vae];
  if (!kind) throw new Error(`unknown VAE kind "${vae}"; expected one of ${Object.keys(VAE_KINDS).join(", ")}`);
  return kind;
}

/** Pixel multiple a side must be for `vae`: VAE stride times the DiT's 2x2 patch. */
export function sizeMultiple(vae) {
  return vaeKind(vae).spatial * 2;
}

/** Largest multiple of `multiple` not above `value`, and at least one multiple. */
export function snapSide(value, multiple) {
  return Math.max(multiple, Math.floor(value / multiple) * multiple);
}

/** Nearest frame count of the form 4k+1, at least 1. */
export function snapFrames(frames) {
  return Math.max(1, Math.round((frames - 1) / 4) * 4 + 1);
}

/** Latent frames T' of a clip of `frames` pixel frames. */
export function latentFrames(frames) {
  return Math.floor((frames - 1) / 4) + 1;
}

/** {width, height} for an aspect ratio name and a short side, both snapped down to the VAE's multiple. */
export function presetSize(aspect, shortSide, vae) {
  const ratio = ASPECT_RATIOS[aspect];
  if (!ratio) throw new Error(`unknown aspect ratio "${aspect}"; expected one of ${Object.keys(ASPECT_RATIOS).join(", ")}`);
  const [w, h] = ratio;
  const multiple = sizeMultiple(vae);
  const long = (shortSide * Math.max(w, h)) / Math.min(w, h);
  const [width, height] = w >= h ? [long, shortSide] : [shortSide, long];
  return { width: snapSide(width, multiple), height: snapSide(height, multiple) };
}

/** Name of the preset aspect ratio closest to width:height (for showing the current choice). */
export function nearestAspect(width, height) {
  const target = Math.log(width / height);
  let best = null;
  for (const [name, [w, h]] of Object.entries(ASPECT_RATIOS)) {
    const distance = Math.abs(Math.log(w / h) - target);
    if (best === null || distance < best.distance) best = { name, distance };
  }
  return best.name;
}

/** DiT tokens of one sample: T' * (H / (2 * spatial)) * (W / (2 * spatial)). */
export function tokenCount({ width, height, frames, vae }) {
  const multiple = sizeMultiple(vae);
  return latentFrames(frames) * Math.floor(height / multiple) * Math.floor(width / multiple);
}

/**
 * Rough peak memory in bytes of sampling then decoding, for `spec` (one of MODEL_SPECS).
 * Sampling holds the weights plus one block's activations for one window: residual, q/k/v/o and the FFN hidden
 * for the CFG batch (attention itself is memory-efficient SDPA, linear in tokens). Decoding holds about six full-resolution
 * feature maps of the decoder's last level for a 4-frame chunk; the DiT is offloaded by then.
 */
export function memoryEstimate({ width, height, frames, batch = 1 }, spec) {
  const tokens = tokenCount({ width, height, frames: Math.min(frames, spec.window), vae: spec.vae }) * batch;
  const weights = spec.params * spec.weightBytes;
  const perToken = (6 * spec.dim + 2 * spec.ffn) * ACTIVATION_BYTES;
  const activations = tokens * perToken * CFG_BATCH;
  const decode = width * height * 4 * vaeKind(spec.vae).decoderWidth * ACTIVATION_BYTES * 6 * batch;
  return { weights, activations, decode, peak: Math.max(weights + activations, decode) };
}

/** "12.3 GiB" / "850 MiB". */
export function formatBytes(bytes) {
  return bytes >= GIB ? `${(bytes / GIB).toFixed(1)} GiB` : `${Math.round(bytes / 1024 ** 2)} MiB`;
}

/** "32,760". */
export function formatCount(n) {
  return n.toLocaleString("en-US");
}
