"""The pack in a real ComfyUI server: its nodes in /object_info, its example workflows in the template list, its
web/ folder served, a tiny Wan 2.1 I2V prompt (CLIP vision, a LoRA) queued over the API from ComfyUI's own model
folders, and the canvas driven in headless chromium by tests/browser/canvas.mjs.

Runs only when COMFYUI_DIR names a ComfyUI checkout (0.3.6x); COMFYUI_PYTHON is the Python that has ComfyUI's
requirements and the pack's (default: this one). shared/tools/comfyui-cpu/ sets both up on a CPU-only machine.
The browser test also needs Debian's chromium and playwright-core (`npm install` at the repository root).
SPACETIME_SCREENSHOTS names a folder to keep its screenshots in (docs/screenshots/ is made that way).
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from comfyui_spacetime.core.paths import BUNDLED_FILES, bundled_path
from comfyui_spacetime.nodes import NODE_CLASS_MAPPINGS

COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
pytestmark = pytest.mark.skipif(not COMFYUI_DIR, reason="COMFYUI_DIR is not set: no ComfyUI checkout to run")

PACK = Path(__file__).resolve().parents[1]
PACK_FOLDER = "ComfyUI-Spacetime"  # the folder name users clone into custom_nodes/
WORKFLOWS = sorted((PACK / "example_workflows").glob("*.json"))
NOTE_TYPES = {"Note", "MarkdownNote"}  # frontend-only nodes
STARTUP_SECONDS = 180
BROWSER_SECONDS = 1200
QUEUED_WORKFLOW = "spacetime_mini_text_to_video"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read(), response.headers.get("Content-Type", "")


def get_json(url: str):
    return json.loads(get(url)[0])


def wait_until_up(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"ComfyUI exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            get(url + "object_info")
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.5)
    pytest.fail(f"ComfyUI did not answer within {STARTUP_SECONDS} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """ComfyUI on a free port with the pack linked into a throwaway base directory; stopped afterwards."""
    base = tmp_path_factory.mktemp("comfyui-base")
    for folder in ("custom_nodes", "input", "output"):
        (base / folder).mkdir()
    (base / "custom_nodes" / PACK_FOLDER).symlink_to(PACK, target_is_directory=True)
    port, log = free_port(), base / "comfyui.log"
    command = [os.environ.get("COMFYUI_PYTHON", sys.executable), "main.py", "--cpu", "--listen", "127.0.0.1",
               "--port", str(port), "--disable-auto-launch", "--base-directory", str(base),
               "--database-url", "sqlite:///:memory:"]
    with open(log, "wb") as log_file:
        process = subprocess.Popen(command, cwd=COMFYUI_DIR, stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_up(process, url, log)
        yield SimpleNamespace(url=url, base=base, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def queue_prompt(server, prompt: dict, timeout: float = 300) -> dict:
    """POST an API-format prompt and wait for its history entry."""
    request = urllib.request.Request(server.url + "prompt", data=json.dumps({"prompt": prompt}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        prompt_id = json.loads(response.read())["prompt_id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        history = get_json(f"{server.url}history/{prompt_id}")
        if prompt_id in history and history[prompt_id]["status"].get("completed") is not None:
            return history[prompt_id]
        time.sleep(0.5)
    pytest.fail(f"the prompt did not finish within {timeout} s:\n{server.log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def object_info(server):
    return get_json(server.url + "object_info")


def test_pack_imports_without_errors(server):
    log = server.log.read_text()
    assert f"custom_nodes/{PACK_FOLDER}" in log
    assert "IMPORT FAILED" not in log, log[-4000:]


def test_every_node_has_a_category_and_a_tooltip_on_every_input(object_info):
    missing = []
    for name in NODE_CLASS_MAPPINGS:
        assert name in object_info, f"{name} is not in /object_info"
        info = object_info[name]
        assert info["category"].startswith("Spacetime"), f"{name}: category {info['category']!r}"
        for section in ("required", "optional"):
            for input_name, spec in info["input"].get(section, {}).items():
                if len(spec) < 2 or not spec[1].get("tooltip"):
                    missing.append(f"{name}.{input_name}")
    assert not missing, f"inputs without a tooltip: {missing}"


def test_example_workflows_are_listed_and_served_with_thumbnails(server):
    listed = get_json(server.url + "api/workflow_templates")
    assert sorted(listed[PACK_FOLDER]) == sorted(p.stem for p in WORKFLOWS)
    for path in WORKFLOWS:
        served = get_json(f"{server.url}api/workflow_templates/{PACK_FOLDER}/{path.name}")
        assert served == json.loads(path.read_text()), path.name
        thumbnail, content_type = get(f"{server.url}api/workflow_templates/{PACK_FOLDER}/{path.stem}.jpg")
        assert content_type == "image/jpeg" and thumbnail[:2] == b"\xff\xd8", f"{path.stem}.jpg"


def test_web_folder_is_served(server):
    extensions = get_json(server.url + "extensions")
    for path in sorted((PACK / "web").rglob("*.js")):
        relative = path.relative_to(PACK / "web").as_posix()
        assert f"/extensions/{PACK_FOLDER}/{relative}" in extensions
        assert get(f"{server.url}extensions/{PACK_FOLDER}/{relative}")[0] == path.read_bytes()


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_workflow_links_type_check_against_the_live_nodes(path, object_info):
    """Core nodes included (Load Image, Batch Images): every type exists, every link joins matching types."""
    workflow = json.loads(path.read_text())
    nodes = {n["id"]: n for n in workflow["nodes"] if n["type"] not in NOTE_TYPES}
    for node in nodes.values():
        assert node["type"] in object_info, f"{path.stem}: unknown node type {node['type']}"
    for link_id, source, source_slot, target, target_slot, kind in workflow["links"]:
        produced = object_info[nodes[source]["type"]]["output"][source_slot]
        target_input = nodes[target]["inputs"][target_slot]["name"]
        declared = {**object_info[nodes[target]["type"]]["input"].get("required", {}),
                    **object_info[nodes[target]["type"]]["input"].get("optional", {})}[target_input][0]
        expected = "COMBO" if isinstance(declared, list) else declared
        assert produced == kind == expected, f"{path.stem}: link {link_id} carries {produced} into {expected}"


def browser_available() -> str | None:
    """Why the browser test cannot run here, or None."""
    if not Path("/usr/bin/chromium").exists():
        return "Debian's chromium is not installed (apt-get install chromium)"
    if shutil.which("node") is None:
        return "node is not installed"
    probe = subprocess.run(["node", "-e", "import('playwright-core')"], cwd=PACK, capture_output=True)
    return None if probe.returncode == 0 else "playwright-core is not installed (npm install at the repo root)"


@pytest.fixture(scope="module")
def canvas(server, tmp_path_factory):
    """Run tests/browser/canvas.mjs once against the server and return its report."""
    reason = browser_available()
    if reason:
        pytest.skip(reason)
    out = Path(os.environ.get("SPACETIME_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    command = ["node", "tests/browser/canvas.mjs", "--url", server.url, "--pack", PACK_FOLDER, "--out", str(out),
               "--workflows", ",".join(p.stem for p in WORKFLOWS)]
    if all(bundled_path(folder).is_file() for folder in BUNDLED_FILES):
        command += ["--queue", QUEUED_WORKFLOW]
    result = subprocess.run(command, cwd=PACK, capture_output=True, text=True, timeout=BROWSER_SECONDS)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    report["out"] = out
    return report


def test_extension_loads_without_errors_of_its_own(canvas):
    assert canvas["extensionLoaded"]
    assert canvas["ownProblems"] == []


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_workflow_opens_from_the_template_browser(canvas, path):
    opened = canvas["workflows"][path.stem]
    assert opened["nodes"] == len(json.loads(path.read_text())["nodes"])
    assert opened["missingTypes"] == [] and opened["tooSmall"] == []
    assert (canvas["out"] / f"{path.stem}.png").stat().st_size > 10_000


def test_dragging_a_keyframe_changes_the_saved_and_queued_value(canvas):
    assert canvas["infillDrag"] == {"before": "0,8,16,24,32", "after": "0,12,16,24,32", "queued": "0,12,16,24,32"}


def test_dragging_the_extension_end_adds_time(canvas):
    drag = canvas["extensionDrag"]
    assert drag["after"] > drag["before"] and drag["queued"] == drag["after"]
    assert drag["after"] * 4 == int(drag["after"] * 4), "add_seconds snaps to the widget's 0.25 s step"


def test_size_preset_sets_width_and_height_and_shows_tokens(canvas):
    preset = canvas["preset"]
    assert (preset["width"], preset["height"]) == (848, 480)  # 16:9 at 480p, sides multiples of 16
    assert preset["info"][0].startswith("7,950 tokens")  # 5 latent frames x 30 x 53
    assert "peak memory" in preset["info"][1]


def test_a_bundled_workflow_queued_from_the_page_makes_a_video(canvas, server):
    if "queue" not in canvas:
        pytest.skip("models/spacetime-mini/ is not trained yet")
    queue = canvas["queue"]
    assert queue["status"] == "success", queue
    videos = [name for name in queue["outputs"] if name.endswith(".mp4")]
    assert videos and list(server.base.joinpath("output").rglob(videos[0]))
    assert queue["video"] and queue["video"]["width"] > 0, "the mp4 plays in Spacetime Save Video"
    assert queue["previews"] > 0, "the sampler sent live latent previews"
    assert "first frame sampled first" in (queue["runInfo"] or ""), "the Sampler shows its info after the run"


def test_wan21_image_to_video_with_clip_vision_and_a_lora_runs_in_the_server(server):
    """Tiny random-weight files in ComfyUI's own model folders (loras and clip_vision included), queued over the API,
    with the keyframe fit on."""
    from PIL import Image

    from tests import tiny_clip, tiny_dit, tiny_lora, tiny_te, tiny_vae

    models = server.base / "models"
    for folder in ("diffusion_models", "text_encoders", "vae", "clip_vision", "loras"):
        (models / folder).mkdir(parents=True, exist_ok=True)
    te_config = tiny_te.tiny_config()
    tiny_te.write_te(models / "text_encoders" / "t_umt5.safetensors", te_config, tiny_te.random_state_dict(te_config))
    dit = tiny_dit.tiny_dit("i2v-clip", text_dim=te_config.d_model)
    tiny_dit.save_dit(models / "diffusion_models" / "t_i2v.safetensors", dit)
    tiny_vae.save_vae(tiny_vae.random_vae(tiny_vae.TINY_21), models / "vae" / "t_vae.safetensors")
    tiny_clip.save_clip(models / "clip_vision" / "t_clip.safetensors", width=1280, layers=2, mlp=640, image_size=224)
    tiny_lora.write_lora(models / "loras" / "t_lora.safetensors", tiny_lora.lora_tensors(dit))
    Image.new("RGB", (40, 40), (200, 40, 40)).save(server.base / "input" / "start.png")
    prompt = {
        "1": {"class_type": "SpacetimeLoadDiffusionModel", "inputs": {"model_name": "t_i2v.safetensors",
              "weight_dtype": "default", "attention": "sdpa", "block_swap": 0, "low_noise_model_name": "none"}},
        "2": {"class_type": "SpacetimeLoadLoRA", "inputs": {"model": ["1", 0], "lora_name": "t_lora.safetensors",
                                                            "strength": 0.5, "expert": "both"}},
        "3": {"class_type": "SpacetimeLoadTextEncoder", "inputs": {"text_encoder_name": "t_umt5.safetensors"}},
        "4": {"class_type": "SpacetimeLoadVAE", "inputs": {"vae_name": "t_vae.safetensors"}},
        "5": {"class_type": "SpacetimeLoadCLIPVision", "inputs": {"clip_vision_name": "t_clip.safetensors"}},
        "6": {"class_type": "LoadImage", "inputs": {"image": "start.png"}},
        "7": {"class_type": "SpacetimeImageToVideo", "inputs": {"vae": ["4", 0], "start_image": ["6", 0],
                                                                "strength": 1.0, "clip_vision": ["5", 0]}},
        "8": {"class_type": "SpacetimeTextEncode", "inputs": {"text_encoder": ["3", 0], "prompt": "a red ball",
                                                              "negative_prompt": ""}},
        "9": {"class_type": "SpacetimeEmptyLatentVideo", "inputs": {"vae": ["4", 0], "width": 32, "height": 32,
                                                                   "frames": 5, "batch_size": 1}},
        "10": {"class_type": "SpacetimeSampler", "inputs": {
            "model": ["2", 0], "conditioning": ["8", 0], "latent": ["9", 0], "keyframes": ["7", 0], "vae": ["4", 0],
            "seed": 1, "steps": 2, "cfg": 1.0, "shift": 5.0, "solver": "euler", "denoise": 1.0, "fps": 8.0,
            "keyframe_fit": "on"}},  # gradients through a VAE ComfyUI loaded in inference mode
        "11": {"class_type": "SpacetimeVAEDecode", "inputs": {"vae": ["4", 0], "latent": ["10", 0], "tiled": False,
                                                             "tile_size": 256, "tile_overlap": 64, "batch_index": 0}},
        "12": {"class_type": "SpacetimeSaveVideo", "inputs": {
            "images": ["11", 0], "fps": 8.0, "filename_prefix": "wan21_i2v", "crf": 19, "watermark": "none",
            "watermark_text": "", "sign_c2pa": False, "include_prompt_in_manifest": False}},
    }
    result = queue_prompt(server, prompt)
    assert result["status"]["status_str"] == "success", result["status"]
    info = result["outputs"]["10"]["text"][0]
    assert info.startswith("concat") and "LoRA t_lora.safetensors: 5 low-rank layers" in info
    assert "keyframe fit: 1 latent frame(s)" in info
    assert list(server.base.joinpath("output").glob("wan21_i2v_*.mp4"))
