import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ASPECT_RATIOS, MODEL_SPECS, SHORT_SIDES, formatBytes, formatCount, latentFrames, memoryEstimate, nearestAspect,
  presetSize, sizeMultiple, snapFrames, snapSide, tokenCount,
} from "../lib/presets.js";

test("sides are multiples of 16 for Wan 2.1 and 32 for Wan 2.2", () => {
  assert.equal(sizeMultiple("wan2.1"), 16);
  assert.equal(sizeMultiple("wan2.2"), 32);
  assert.throws(() => sizeMultiple("sd15"), /unknown VAE kind "sd15"/);
  assert.equal(snapSide(720, 32), 704);
  assert.equal(snapSide(853.3, 16), 848);
  assert.equal(snapSide(5, 16), 16);
});

test("presets give the familiar Wan sizes", () => {
  assert.deepEqual(presetSize("16:9", 720, "wan2.1"), { width: 1280, height: 720 });
  assert.deepEqual(presetSize("16:9", 720, "wan2.2"), { width: 1280, height: 704 });
  assert.deepEqual(presetSize("9:16", 480, "wan2.1"), { width: 480, height: 848 });
  assert.deepEqual(presetSize("4:3", 480, "wan2.1"), { width: 640, height: 480 });
  assert.deepEqual(presetSize("1:1", 256, "wan2.2"), { width: 256, height: 256 });
  assert.deepEqual(presetSize("2.39:1", 1080, "wan2.1"), { width: 2576, height: 1072 });
  assert.throws(() => presetSize("3:2", 480, "wan2.1"), /unknown aspect ratio "3:2"/);
});

test("every preset is valid for its VAE and no taller than 1080 on the short side", () => {
  for (const vae of ["wan2.1", "wan2.2"]) {
    for (const aspect of Object.keys(ASPECT_RATIOS)) {
      for (const side of SHORT_SIDES) {
        const { width, height } = presetSize(aspect, side, vae);
        assert.equal(width % sizeMultiple(vae), 0);
        assert.equal(height % sizeMultiple(vae), 0);
        assert.ok(Math.min(width, height) <= 1080);
      }
    }
  }
});

test("the nearest aspect names the current size", () => {
  assert.equal(nearestAspect(832, 480), "16:9");
  assert.equal(nearestAspect(480, 832), "9:16");
  assert.equal(nearestAspect(2576, 1072), "2.39:1");
  assert.equal(nearestAspect(512, 512), "1:1");
});

test("frames snap to 4k+1 and give (frames-1)/4+1 latent frames", () => {
  assert.deepEqual([0, 1, 2, 3, 4, 80, 81, 83, 121].map(snapFrames), [1, 1, 1, 5, 5, 81, 81, 85, 121]);
  assert.deepEqual([1, 5, 33, 81, 121].map(latentFrames), [1, 2, 9, 21, 31]);
});

test("token counts match the Wan reference sizes", () => {
  assert.equal(tokenCount({ width: 832, height: 480, frames: 81, vae: "wan2.1" }), 21 * 30 * 52); // 32,760
  assert.equal(tokenCount({ width: 1280, height: 704, frames: 121, vae: "wan2.2" }), 31 * 22 * 40); // 27,280
  assert.equal(tokenCount({ width: 64, height: 64, frames: 1, vae: "wan2.1" }), 16);
});

test("the memory estimate adds weights to activations and compares with decoding", () => {
  const small = MODEL_SPECS.find((s) => s.name === "Wan 2.1 1.3B");
  const size = { width: 832, height: 480, frames: 81 };
  const m = memoryEstimate(size, small);
  assert.equal(m.weights, 2.6e9);
  assert.equal(m.activations, 32760 * (6 * 1536 + 2 * 8960) * 2 * 2);
  assert.equal(m.decode, 832 * 480 * 4 * 96 * 2 * 6);
  assert.equal(m.peak, Math.max(m.weights + m.activations, m.decode));
  const twice = memoryEstimate({ ...size, batch: 2 }, small);
  assert.equal(twice.activations, 2 * m.activations);
  const bigger = memoryEstimate({ width: 1280, height: 720, frames: 81 }, small);
  assert.ok(bigger.peak > m.peak);
  const minute = memoryEstimate({ width: 832, height: 480, frames: 961 }, small);
  assert.equal(minute.activations, m.activations, "a minute is sampled one 81-frame window at a time");
  const wan22 = MODEL_SPECS.find((s) => s.vae === "wan2.2");
  assert.equal(memoryEstimate({ width: 1280, height: 704, frames: 121 }, wan22).decode, 1280 * 704 * 4 * 64 * 2 * 6);
});

test("numbers are formatted for the node", () => {
  assert.equal(formatBytes(3 * 1024 ** 3), "3.0 GiB");
  assert.equal(formatBytes(300 * 1024 ** 2), "300 MiB");
  assert.equal(formatCount(32760), "32,760");
});

test("the bundled model's latents take Wan 2.1 sizes and get their own estimate", () => {
  assert.equal(sizeMultiple("spacetime-mini"), 16);
  assert.equal(tokenCount({ width: 96, height: 64, frames: 17, vae: "spacetime-mini" }), 5 * 4 * 6);
  const mini = MODEL_SPECS.filter((s) => s.vae === "spacetime-mini");
  assert.equal(mini.length, 1);
  const m = memoryEstimate({ width: 96, height: 64, frames: 17 }, mini[0]);
  assert.equal(m.decode, 96 * 64 * 4 * 16 * 2 * 6);
  assert.ok(m.peak < 64 * 1024 ** 2);
});
