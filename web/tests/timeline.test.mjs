import { test } from "node:test";
import assert from "node:assert/strict";
import {
  dragKeyframe, formatFrameIndices, frameToX, framesToSeconds, hitKeyframe, lastSnappableFrame, latentFrameOf,
  parseFrameIndices, pixelRangeOfLatent, secondTicks, secondsToFrames, snapFrame, xToFrame,
} from "../lib/timeline.js";

test("pixel frame p lives in latent frame (p+3)//4", () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 8, 9, 16, 80].map(latentFrameOf), [0, 1, 1, 1, 1, 2, 2, 3, 4, 20]);
});

test("latent frame k covers pixel frames 4k-3..4k, frame 0 alone", () => {
  assert.deepEqual(pixelRangeOfLatent(0), [0, 0]);
  assert.deepEqual(pixelRangeOfLatent(1), [1, 4]);
  assert.deepEqual(pixelRangeOfLatent(20), [77, 80]);
  for (let k = 1; k < 10; k++) {
    const [first, last] = pixelRangeOfLatent(k);
    assert.equal(latentFrameOf(first), k);
    assert.equal(latentFrameOf(last), k);
    assert.equal(latentFrameOf(first - 1), k - 1);
  }
});

test("frames and seconds convert at the clip's fps", () => {
  assert.equal(framesToSeconds(48, 16), 3);
  assert.equal(framesToSeconds(12, 24), 0.5);
  assert.equal(secondsToFrames(3, 16), 48);
  assert.equal(secondsToFrames(0.52, 24), 12);
});

test("snapping goes to the nearest multiple of 4 inside the clip", () => {
  assert.deepEqual([0, 1, 2, 3, 5, 6, 7, 14, 15].map((p) => snapFrame(p, 33)), [0, 0, 4, 4, 4, 8, 8, 16, 16]);
  assert.equal(snapFrame(-7, 33), 0);
  assert.equal(snapFrame(40, 33), 32);
  assert.equal(lastSnappableFrame(33), 32);
  assert.equal(lastSnappableFrame(35), 32); // a 35-frame clip is not 4k+1: the last pinnable frame is 32
  assert.equal(lastSnappableFrame(1), 0);
  for (let p = 0; p <= 80; p++) assert.equal(snapFrame(p, 81) % 4, 0);
});

test("parse keeps the written order, resolves negative indices and reports bad tokens", () => {
  assert.deepEqual(parseFrameIndices("0,16,32", 33), { frames: [0, 16, 32], tokens: ["0", "16", "32"], invalid: [] });
  assert.deepEqual(parseFrameIndices(" 32, 0 ;16, ", 33).frames, [32, 0, 16]);
  assert.deepEqual(parseFrameIndices("0,-1", 81), { frames: [0, 80], tokens: ["0", "-1"], invalid: [] });
  assert.deepEqual(parseFrameIndices("0,x,2.5,-", 33), { frames: [0], tokens: ["0"], invalid: ["x", "2.5", "-"] });
  assert.deepEqual(parseFrameIndices("", 33), { frames: [], tokens: [], invalid: [] });
});

test("format writes moved frames as numbers and keeps unmoved tokens", () => {
  assert.equal(formatFrameIndices([32, 0, 16]), "32,0,16");
  const parsed = parseFrameIndices("0, 40, -1", 81);
  assert.equal(formatFrameIndices([0, 44, 80], parsed), "0,44,-1");
  assert.equal(formatFrameIndices([0, 40, 76], parsed), "0,40,76");
});

test("a drag snaps and stays between its neighbours in time", () => {
  assert.deepEqual(dragKeyframe([0, 16, 32], 1, 21.6, 33), [0, 20, 32]);
  assert.deepEqual(dragKeyframe([0, 16, 32], 1, 31, 33), [0, 28, 32]); // one latent frame before the next
  assert.deepEqual(dragKeyframe([0, 16, 32], 1, 1, 33), [0, 4, 32]);
  assert.deepEqual(dragKeyframe([0, 16, 32], 2, 99, 33), [0, 16, 32]); // the end is the last pinnable frame
  assert.deepEqual(dragKeyframe([0, 16, 32], 0, 9, 33), [8, 16, 32]);
  assert.deepEqual(dragKeyframe([0, 4], 0, 3, 33), [0, 4]); // no room: stays put
  assert.deepEqual(dragKeyframe([32, 0, 16], 2, 2, 33), [32, 0, 4]); // neighbours by time, not by position
  const frames = [0, 16, 32];
  dragKeyframe(frames, 1, 8, 33);
  assert.deepEqual(frames, [0, 16, 32], "the input array is not mutated");
});

test("x and frame map onto each other across the track", () => {
  assert.equal(frameToX(0, 33, 10, 320), 10);
  assert.equal(frameToX(32, 33, 10, 320), 330);
  assert.equal(frameToX(16, 33, 10, 320), 170);
  assert.equal(xToFrame(170, 33, 10, 320), 16);
  assert.equal(snapFrame(xToFrame(frameToX(12, 81, 5, 400), 81, 5, 400), 81), 12);
});

test("hit testing picks the nearest keyframe within the radius", () => {
  // frames 0, 16, 32 at x = 10, 170, 330
  assert.equal(hitKeyframe([0, 16, 32], 175, 33, 10, 320, 8), 1);
  assert.equal(hitKeyframe([0, 16, 32], 190, 33, 10, 320, 8), -1);
  assert.equal(hitKeyframe([0, 16, 32], 8, 33, 10, 320, 8), 0);
});

test("ruler ticks fall on whole steps of seconds", () => {
  const ticks = secondTicks(81, 16); // 5 s
  assert.deepEqual(ticks.map((t) => t.seconds), [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(ticks.map((t) => t.frame), [0, 16, 32, 48, 64, 80]);
  assert.deepEqual(secondTicks(17, 16).map((t) => t.seconds), [0, 0.25, 0.5, 0.75, 1]);
  assert.deepEqual(secondTicks(961, 16).map((t) => t.seconds), [0, 10, 20, 30, 40, 50, 60]);
});
