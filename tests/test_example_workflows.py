"""example_workflows/: the files match their generator, every workflow converts and validates against the nodes,
and every bundled-model workflow runs with `spacetime run` and writes a video."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from comfyui_spacetime.core.errors import SpacetimeError
from comfyui_spacetime.core.paths import BUNDLED_FILES, bundled_path
from comfyui_spacetime.core.video import read_mp4
from comfyui_spacetime.nodes import NODE_CLASS_MAPPINGS
from comfyui_spacetime.workflow import NOTE_TYPES, to_api, validate

EXAMPLES = Path(__file__).resolve().parents[1] / "example_workflows"
WORKFLOWS = sorted(EXAMPLES.glob("*.json"))
BUNDLED = [p for p in WORKFLOWS if p.name.startswith("spacetime_mini_")]
REAL = [p for p in WORKFLOWS if p not in BUNDLED]
MODEL_FILE_INPUTS = ("model_name", "low_noise_model_name", "text_encoder_name", "vae_name", "clip_vision_name")
FILE_INPUTS = (*MODEL_FILE_INPUTS, "image", "video")
BUNDLED_MODEL_PRESENT = all(bundled_path(folder).is_file() for folder in BUNDLED_FILES)
# Frames of the saved video: 2 s clips at 8 fps; an extension adds 2 s to a 17-frame clip; 60 s for the minute.
BUNDLED_FRAMES = {"text_to_video": 17, "image_to_video": 17, "extend_forwards": 33, "extend_backwards": 33,
                  "infill": 33, "minute_long_multishot": 481, "save_with_provenance": 17}


def load_generator():
    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = load_generator()
NODE_CLASSES = NODE_CLASS_MAPPINGS | GENERATOR.CORE_NODES


def ids(paths):
    return [p.stem for p in paths]


def test_every_feature_has_a_bundled_workflow_and_real_ones_exist():
    assert sorted(p.stem.removeprefix("spacetime_mini_") for p in BUNDLED) == sorted(BUNDLED_FRAMES)
    assert {p.stem.split("_", 2)[0] for p in REAL} == {"wan2.1", "wan2.2"}
    assert len(REAL) >= len(BUNDLED_FRAMES)


def test_files_are_what_the_generator_writes():
    graphs = GENERATOR.all_graphs()
    assert sorted(g.name for g in graphs) == sorted(p.stem for p in WORKFLOWS)
    for graph in graphs:
        on_disk = json.loads((EXAMPLES / f"{graph.name}.json").read_text())
        assert on_disk == GENERATOR.to_ui_json(graph), f"{graph.name}.json is stale: run make_examples.py"


@pytest.mark.parametrize("path", WORKFLOWS, ids=ids(WORKFLOWS))
def test_has_a_thumbnail_for_the_template_browser(path):
    """ComfyUI's template browser shows <name>.jpg beside a custom node pack's <name>.json."""
    thumbnail = path.with_suffix(".jpg")
    assert thumbnail.is_file() and thumbnail.read_bytes()[:2] == b"\xff\xd8", f"{thumbnail.name} is not a JPEG"


@pytest.mark.parametrize("path", WORKFLOWS, ids=ids(WORKFLOWS))
def test_ui_format_with_a_note_and_groups(path):
    workflow = json.loads(path.read_text())
    notes = [n for n in workflow["nodes"] if n["type"] in NOTE_TYPES]
    assert len(notes) == 1 and "**Files" in notes[0]["widgets_values"][0]
    assert workflow["groups"], "nodes are grouped by stage"
    for node in workflow["nodes"]:
        assert len(node["pos"]) == 2 and len(node["size"]) == 2
    node_ids = {n["id"] for n in workflow["nodes"]}
    for link_id, source, _, target, _, _ in workflow["links"]:
        assert source in node_ids and target in node_ids, f"link {link_id} points at a missing node"
    assert workflow["last_link_id"] == max((row[0] for row in workflow["links"]), default=0)


@pytest.mark.parametrize("path", WORKFLOWS, ids=ids(WORKFLOWS))
def test_converts_type_checks_and_validates(path):
    """Node types exist, links type-check (in to_api), widget values are in range and among the choices.
    Model and input file names are only checked where the files can be here: the bundled model's."""
    workflow = json.loads(path.read_text())
    prompt = to_api(workflow, NODE_CLASSES)
    ignore = () if path in BUNDLED and BUNDLED_MODEL_PRESENT else FILE_INPUTS
    validate(prompt, NODE_CLASSES, ignore_choices=ignore)
    assert any(node["class_type"] == "SpacetimeSaveVideo" for node in prompt.values())


@pytest.mark.parametrize("path", REAL, ids=ids(REAL))
def test_real_checkpoint_note_names_every_file_the_loaders_use(path):
    workflow = json.loads(path.read_text())
    note = next(n for n in workflow["nodes"] if n["type"] in NOTE_TYPES)["widgets_values"][0]
    prompt = to_api(workflow, NODE_CLASSES)
    files = [value for node in prompt.values() for name, value in node["inputs"].items()
             if name in MODEL_FILE_INPUTS and value != "none"]
    assert files and all(f"/{name}`" in note for name in files)


def test_validation_catches_a_wrong_link():
    workflow = json.loads((EXAMPLES / "spacetime_mini_text_to_video.json").read_text())
    sampler_model_link = next(row for row in workflow["links"] if row[5] == "SPACETIME_MODEL")
    vae_loader = next(n for n in workflow["nodes"] if n["type"] == "SpacetimeLoadVAE")
    sampler_model_link[1] = vae_loader["id"]  # feed the VAE into the sampler's model input
    with pytest.raises(SpacetimeError, match="takes SPACETIME_MODEL"):
        to_api(workflow, NODE_CLASSES)


@pytest.mark.skipif(not BUNDLED_MODEL_PRESENT, reason="models/spacetime-mini/ is not trained yet")
@pytest.mark.parametrize("path", BUNDLED, ids=ids(BUNDLED))
def test_bundled_workflow_runs_with_spacetime_run(path, tmp_path):
    result = subprocess.run([sys.executable, "-m", "comfyui_spacetime.cli", "run", str(path), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    [video] = tmp_path.rglob("*.mp4")
    frames, fps = read_mp4(video)
    assert tuple(frames.shape) == (BUNDLED_FRAMES[path.stem.removeprefix("spacetime_mini_")], 64, 96, 3)
    assert fps == 8
