// Drive a running ComfyUI (with ComfyUI-Spacetime installed) in headless chromium and report what happened.
//
// usage: node tests/browser/canvas.mjs --url http://127.0.0.1:8188/ --pack ComfyUI-Spacetime --out DIR
//          [--workflows a,b,...] [--thumbs DIR] [--queue NAME]
// Opens each example workflow from the template browser and screenshots it at full scale (DIR/<name>.png; with
// --thumbs also a small <name>.jpg for the template browser), drags a keyframe on Infill Frames and a handle on
// Extend Video, picks a size preset on Empty Latent Video, and with --queue runs that workflow from the Run button
// and waits for the video. Prints one JSON line; tests/test_comfyui_server.py asserts on it.
// Needs Debian's chromium (/usr/bin/chromium) and playwright-core (`npm install` at the repository root).
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";

import { extensionAxis, offsetToX } from "../../web/lib/extension_window.js";
import { frameToX, secondsToFrames } from "../../web/lib/timeline.js";
import { MARKER_Y, TRACK } from "../../web/widgets/draw.js";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string" }, pack: { type: "string" }, out: { type: "string" },
    workflows: { type: "string", default: "" }, thumbs: { type: "string" }, queue: { type: "string" },
  },
});
const { chromium } = await import("playwright-core");

const CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const VIEWPORT = { width: 1600, height: 1000 };
const SHOT_MARGIN = 30;
const THUMB_SIZE = 320;
const THUMB_CROP = 560; // the square of the graph a thumbnail shows, at scale 1, around its main node
// The node a thumbnail centres on: the first of these types in the workflow (`[present, shown]`).
const THUMB_FOCUS = [
  ["SpacetimeInfillFrames", "SpacetimeInfillFrames"], ["SpacetimeExtendVideo", "SpacetimeExtendVideo"],
  ["SpacetimeImageToVideo", "SpacetimeImageToVideo"], ["SpacetimeReadProvenance", "SpacetimeSaveVideo"],
  ["SpacetimeTextEncode", "SpacetimeTextEncode"],
];
const QUEUE_TIMEOUT_MS = 540_000;

// ---- page and log ------------------------------------------------------------------------------------------

async function openComfy(browser) {
  const page = await browser.newPage({ viewport: VIEWPORT });
  const log = { console: [], pageErrors: [], failedRequests: [] };
  page.on("console", (m) => log.console.push({ type: m.type(), text: m.text(), url: m.location()?.url ?? "" }));
  page.on("pageerror", (e) => log.pageErrors.push(e.stack || e.message));
  page.on("requestfailed", (r) => log.failedRequests.push(`${r.url()} ${r.failure()?.errorText}`));
  page.on("response", (r) => { if (r.status() >= 400) log.failedRequests.push(`${r.url()} ${r.status()}`); });
  await page.goto(opts.url, { waitUntil: "domcontentloaded" });
  await page.waitForFunction(() => window.app?.graph && window.app.extensionManager, null, { timeout: 90_000 });
  await page.waitForTimeout(1500);
  await page.keyboard.press("Escape"); // the first-run template dialog
  // Full-detail drawing at any zoom, and no minimap or canvas statistics over the screenshots.
  await page.evaluate(async () => {
    const settings = window.app.extensionManager.setting;
    await settings.set("LiteGraph.Canvas.MinFontSizeForLOD", 0);
    await settings.set("Comfy.Minimap.Visible", false);
    await settings.set("Comfy.Graph.CanvasInfo", false);
    await settings.set("Comfy.Graph.CanvasMenu", false);
  });
  return { page, log };
}

/** Errors that come from this pack: its web files, its extension, its node names. */
function ownProblems(log) {
  const ours = (s) => s.includes(`/extensions/${opts.pack}/`) || /spacetime/i.test(s);
  return [
    ...log.console.filter((m) => m.type === "error" && (ours(m.text) || ours(m.url))).map((m) => m.text),
    ...log.pageErrors.filter(ours),
    ...log.failedRequests.filter(ours),
  ];
}

// ---- template browser --------------------------------------------------------------------------------------

async function openTemplate(page, name) {
  // While ComfyUI starts, its first-run template dialog can open late or close under us (the command toggles the
  // dialog), so open it only when it is not showing, and try again if the click loses it.
  const packFolder = page.getByRole("option", { name: opts.pack }).first();
  for (let attempt = 1; ; attempt++) {
    if (!(await packFolder.isVisible())) {
      await page.evaluate(() => window.app.extensionManager.command.execute("Comfy.BrowseTemplates"));
    }
    try {
      await packFolder.click({ timeout: 5_000 });
      break;
    } catch (error) {
      if (attempt === 6) throw error;
    }
  }
  await page.getByPlaceholder(/search/i).fill(name);
  const card = page.locator(`[data-testid="template-workflow-${name}"]`);
  await card.click({ timeout: 30_000 });
  await card.waitFor({ state: "detached", timeout: 30_000 }); // the dialog closes once the graph is loaded
  await page.waitForTimeout(500);
}

async function graphReport(page) {
  return page.evaluate(() => {
    const nodes = window.app.graph._nodes;
    const registered = window.LiteGraph.registered_node_types;
    return {
      nodes: nodes.length,
      missingTypes: nodes.filter((n) => !registered[n.type]).map((n) => n.type),
      // A node smaller than the frontend's own minimum would clip its widgets.
      tooSmall: nodes.filter((n) => n.computeSize()[1] > n.size[1] + 1).map((n) => `${n.id} ${n.type}`),
    };
  });
}

/** Screenshot the whole graph at scale 1 (the viewport grows to fit it) and, if asked, a JPEG thumbnail. */
async function screenshotGraph(page, name) {
  const bounds = await page.evaluate(() => {
    const boxes = [
      ...window.app.graph._nodes.map((n) => [n.pos[0], n.pos[1] - 55, n.pos[0] + n.size[0], n.pos[1] + n.size[1]]),
      ...window.app.graph._groups.map((g) => { const [x, y, w, h] = g._bounding; return [x, y, x + w, y + h]; }),
    ];
    return [0, 1, 2, 3].map((i) => (i < 2 ? Math.min : Math.max)(...boxes.map((b) => b[i])));
  });
  const width = Math.ceil(bounds[2] - bounds[0] + 2 * SHOT_MARGIN);
  const height = Math.ceil(bounds[3] - bounds[1] + 2 * SHOT_MARGIN);
  const canvasBox = await page.locator("canvas#graph-canvas").boundingBox();
  await page.setViewportSize({ width: width + Math.ceil(canvasBox.x) + 20, height: height + Math.ceil(canvasBox.y) + 20 });
  await page.evaluate(([x, y, margin]) => {
    const ds = window.app.canvas.ds;
    ds.scale = 1;
    ds.offset[0] = margin - x;
    ds.offset[1] = margin - y;
    window.app.canvas.setDirty(true, true);
  }, [bounds[0], bounds[1], SHOT_MARGIN]);
  await page.waitForTimeout(1200); // DOM widgets follow the canvas on the next frames
  const box = await page.locator("canvas#graph-canvas").boundingBox();
  const png = await page.screenshot({ clip: { x: box.x, y: box.y, width, height } });
  fs.writeFileSync(path.join(opts.out, `${name}.png`), png);
  if (opts.thumbs) {
    const focus = await focusPoint(page);
    const crop = [focus[0] - bounds[0] + SHOT_MARGIN - 30, focus[1] - bounds[1] + SHOT_MARGIN - 80];
    fs.writeFileSync(path.join(opts.thumbs, `${name}.jpg`), await thumbnail(page, png, crop));
  }
  await page.setViewportSize(VIEWPORT);
}

/** Graph position of the top left of the node a thumbnail shows (see THUMB_FOCUS). */
async function focusPoint(page) {
  return page.evaluate((focus) => {
    const nodes = window.app.graph._nodes;
    const [, shown] = focus.find(([present]) => nodes.some((n) => n.type === present));
    const node = nodes.find((n) => n.type === shown);
    return [node.pos[0], node.pos[1]];
  }, THUMB_FOCUS);
}

/** A THUMB_CROP square of the PNG from `crop` (clamped inside it), scaled to THUMB_SIZE, as JPEG. */
async function thumbnail(page, png, crop) {
  const base64 = await page.evaluate(async ([data, [x, y], cropSize, size]) => {
    const bitmap = await createImageBitmap(await (await fetch(`data:image/png;base64,${data}`)).blob());
    const side = Math.min(cropSize, bitmap.width, bitmap.height);
    const left = Math.max(0, Math.min(x, bitmap.width - side));
    const top = Math.max(0, Math.min(y, bitmap.height - side));
    const canvas = new OffscreenCanvas(size, size);
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(bitmap, left, top, side, side, 0, 0, size, size);
    const blob = await canvas.convertToBlob({ type: "image/jpeg", quality: 0.85 });
    const bytes = new Uint8Array(await blob.arrayBuffer());
    let binary = "";
    for (const b of bytes) binary += String.fromCharCode(b);
    return btoa(binary);
  }, [png.toString("base64"), crop, THUMB_CROP, THUMB_SIZE]);
  return Buffer.from(base64, "base64");
}

// ---- widgets -----------------------------------------------------------------------------------------------

/** Put the node of `type` at the top left at scale 1 and return the box of its DOM widget `widgetName`. */
async function focusWidget(page, type, widgetName) {
  await page.evaluate((t) => {
    const node = window.app.graph._nodes.find((n) => n.type === t);
    const ds = window.app.canvas.ds;
    ds.scale = 1;
    ds.offset[0] = 80 - node.pos[0];
    ds.offset[1] = 120 - node.pos[1];
    window.app.canvas.setDirty(true, true);
  }, type);
  await page.waitForTimeout(800);
  return page.evaluate(([t, w]) => {
    const node = window.app.graph._nodes.find((n) => n.type === t);
    const r = node.widgets.find((x) => x.name === w).element.getBoundingClientRect();
    return { x: r.x, y: r.y, width: r.width, height: r.height };
  }, [type, widgetName]);
}

async function widgetValue(page, type, name) {
  return page.evaluate(([t, n]) => window.app.graph._nodes.find((x) => x.type === t).widgets.find((w) => w.name === n).value, [type, name]);
}

/** What the graph would queue for the first node of `type`: its API-format inputs. */
async function queuedInputs(page, type) {
  return page.evaluate(async (t) => {
    const { output } = await window.app.graphToPrompt();
    return Object.values(output).find((n) => n.class_type === t).inputs;
  }, type);
}

async function drag(page, from, to) {
  await page.mouse.move(from.x, from.y);
  await page.mouse.down();
  for (let i = 1; i <= 8; i++) await page.mouse.move(from.x + ((to.x - from.x) * i) / 8, from.y + ((to.y - from.y) * i) / 8);
  await page.mouse.up();
  await page.waitForTimeout(300);
}

async function widgetValues(page, type, names) {
  return Object.fromEntries(await Promise.all(names.map(async (n) => [n, await widgetValue(page, type, n)])));
}

function cropAround(box) {
  return { x: box.x - 30, y: box.y - 260, width: box.width + 60, height: box.height + 280 };
}

/** Drag the keyframe at frame `from` to frame `to` on Infill Frames' timeline, as a user does with the mouse. */
async function dragInfillKeyframe(page, from, to) {
  const box = await focusWidget(page, "SpacetimeInfillFrames", "keyframe_timeline");
  const { length, frame_indices: before } = await widgetValues(page, "SpacetimeInfillFrames", ["length", "frame_indices"]);
  const xOf = (frame) => frameToX(frame, length, box.x + TRACK.padX, box.width - 2 * TRACK.padX);
  await drag(page, { x: xOf(from), y: box.y + MARKER_Y }, { x: xOf(to) + 1, y: box.y + MARKER_Y });
  const after = await widgetValue(page, "SpacetimeInfillFrames", "frame_indices");
  const queued = (await queuedInputs(page, "SpacetimeInfillFrames")).frame_indices;
  await page.screenshot({ path: path.join(opts.out, "timeline_drag.png"), clip: cropAround(box) });
  return { before, after, queued };
}

/** Drag Extend Video's right handle (the end of the new frames) `dx` pixels outwards. */
async function dragExtensionEnd(page, dx) {
  const box = await focusWidget(page, "SpacetimeExtendVideo", "extension_timeline");
  const w = await widgetValues(page, "SpacetimeExtendVideo", ["direction", "add_seconds", "fps", "context_frames"]);
  const added = secondsToFrames(w.add_seconds, w.fps);
  const axis = extensionAxis(w.context_frames, added);
  const x = offsetToX(added, axis, w.direction, box.x + TRACK.padX, box.width - 2 * TRACK.padX);
  const outwards = w.direction === "forward" ? dx : -dx;
  await drag(page, { x, y: box.y + MARKER_Y }, { x: x + outwards, y: box.y + MARKER_Y });
  const after = await widgetValue(page, "SpacetimeExtendVideo", "add_seconds");
  await page.screenshot({ path: path.join(opts.out, "extension_drag.png"), clip: cropAround(box) });
  return { before: w.add_seconds, after, queued: (await queuedInputs(page, "SpacetimeExtendVideo")).add_seconds };
}

/** Pick aspect and size on Empty Latent Video's presets and read back width, height and the token line. */
async function pickPreset(page, aspect, size) {
  const box = await focusWidget(page, "SpacetimeEmptyLatentVideo", "size_presets");
  const selects = page.locator(".spacetime-size-presets select");
  await selects.nth(0).selectOption(aspect);
  await selects.nth(1).selectOption(size);
  await page.waitForTimeout(300);
  await page.screenshot({ path: path.join(opts.out, "size_presets.png"), clip: cropAround(box) });
  return page.evaluate(() => {
    const node = window.app.graph._nodes.find((n) => n.type === "SpacetimeEmptyLatentVideo");
    const value = (n) => node.widgets.find((w) => w.name === n).value;
    const info = [...document.querySelectorAll(".spacetime-size-presets .spacetime-estimate")].map((e) => e.textContent);
    return { width: value("width"), height: value("height"), info };
  });
}

// ---- queue -------------------------------------------------------------------------------------------------

/**
 * Press Run, count latent previews while it samples, wait for the run, check the video plays in Save Video, and
 * read the info the Sampler shows after the run.
 */
async function queueFromPage(page) {
  await page.evaluate(() => {
    window.__spacetimePreviews = 0;
    window.comfyAPI.api.api.addEventListener("b_preview", () => { window.__spacetimePreviews += 1; });
  });
  const historyUrl = new URL("/history", opts.url).href;
  const before = Object.keys(await (await page.request.get(historyUrl)).json());
  await page.locator('[data-testid="queue-button"]').click();
  const started = Date.now();
  let entry = null;
  while (!entry && Date.now() - started < QUEUE_TIMEOUT_MS) {
    await page.waitForTimeout(1000);
    const history = await (await page.request.get(historyUrl)).json();
    const id = Object.keys(history).find((k) => !before.includes(k) && history[k].status?.completed !== undefined);
    entry = id ? history[id] : null;
  }
  if (!entry) return { status: "timed out" };
  const video = await page.waitForFunction(() => {
    const element = document.querySelector("video");
    return element && element.readyState >= 2 ? { src: element.src, width: element.videoWidth, height: element.videoHeight } : null;
  }, null, { timeout: 30_000 }).then((h) => h.jsonValue()).catch(() => null);
  await page.evaluate(() => window.app.extensionManager.command.execute("Comfy.Canvas.FitView"));
  await page.waitForTimeout(800);
  await page.screenshot({ path: path.join(opts.out, "queued_result.png") });
  const outputs = Object.values(entry.outputs).flatMap((o) => o.images ?? []).map((i) => i.filename);
  return {
    status: entry.status.status_str, messages: entry.status.messages.filter(([kind]) => kind === "execution_error"),
    outputs, previews: await page.evaluate(() => window.__spacetimePreviews), video,
    runInfo: await page.evaluate(() => document.querySelector(".spacetime-run-info")?.textContent ?? null),
    seconds: Math.round((Date.now() - started) / 1000),
  };
}

// ---- main --------------------------------------------------------------------------------------------------

async function main() {
  fs.mkdirSync(opts.out, { recursive: true });
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: CHROMIUM_ARGS });
  const { page, log } = await openComfy(browser);
  const report = {
    extensionLoaded: await page.evaluate(() => window.app.extensions.some((e) => e.name === "Spacetime.Canvas")),
    workflows: {},
  };
  for (const name of opts.workflows.split(",").filter(Boolean)) {
    await openTemplate(page, name);
    report.workflows[name] = await graphReport(page);
    await screenshotGraph(page, name);
  }
  await openTemplate(page, "spacetime_mini_infill");
  report.infillDrag = await dragInfillKeyframe(page, 8, 12);
  await openTemplate(page, "spacetime_mini_extend_forwards");
  report.extensionDrag = await dragExtensionEnd(page, 40);
  await openTemplate(page, "spacetime_mini_text_to_video");
  report.preset = await pickPreset(page, "16:9", "480p");
  if (opts.queue) {
    await openTemplate(page, opts.queue);
    report.queue = await queueFromPage(page);
  }
  report.ownProblems = ownProblems(log);
  console.log(JSON.stringify(report));
  await browser.close();
}

await main();
