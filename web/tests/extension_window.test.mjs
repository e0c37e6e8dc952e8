import { test } from "node:test";
import assert from "node:assert/strict";
import {
  extensionAxis, niceCeil, offsetToX, snapToStep, xToOffset,
} from "../lib/extension_window.js";

test("nice ceilings step 1, 2, 5, 10, 20, ...", () => {
  assert.deepEqual([0, 1, 1.5, 3, 7, 10, 11, 21.25, 100, 101].map(niceCeil), [1, 1, 2, 5, 10, 10, 20, 50, 100, 200]);
});

test("context frames snap to whole latent frames (multiples of 4) inside the widget's range", () => {
  assert.deepEqual([-3, 0, 1, 2, 15, 17, 19, 5000].map((n) => snapToStep(n, 4, 0, 4096)), [0, 0, 0, 4, 16, 16, 20, 4096]);
});

test("seconds snap to the widget's step inside its range", () => {
  assert.equal(snapToStep(5.1, 0.25, 0.25, 60), 5);
  assert.equal(snapToStep(5.13, 0.25, 0.25, 60), 5.25);
  assert.equal(snapToStep(0.01, 0.25, 0.25, 60), 0.25);
  assert.equal(snapToStep(99, 0.25, 0.25, 60), 60);
  assert.equal(snapToStep(0.3, 0.1, 0, 1), 0.3); // no 0.30000000000000004
});

test("the axis leaves headroom on both sides of the clip's edge", () => {
  assert.deepEqual(extensionAxis(16, 80), { before: 20, after: 100 });
  assert.deepEqual(extensionAxis(24, 80), { before: 50, after: 100 });
  assert.deepEqual(extensionAxis(0, 4), { before: 10, after: 5 }); // room to drag a context out of "auto"
});

const close = (actual, expected) => assert.ok(Math.abs(actual - expected) < 1e-9, `${actual} != ${expected}`);

test("offsets map to x around the edge, mirrored going backward", () => {
  const axis = { before: 50, after: 100 }; // 150 frames over 300 px
  close(offsetToX(0, axis, "forward", 0, 300), 100);
  close(offsetToX(80, axis, "forward", 0, 300), 260);
  close(offsetToX(-17, axis, "forward", 0, 300), 66);
  close(offsetToX(0, axis, "backward", 0, 300), 200);
  close(offsetToX(80, axis, "backward", 0, 300), 40);
  for (const direction of ["forward", "backward"]) {
    for (const offset of [-50, -17, 0, 33, 100]) {
      close(xToOffset(offsetToX(offset, axis, direction, 7, 300), axis, direction, 7, 300), offset);
    }
  }
});
