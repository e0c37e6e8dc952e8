"""workflow.py: UI -> API conversion, validation and dependency-ordered execution, on small fake nodes."""
import json

import pytest

from comfyui_spacetime.core.errors import SpacetimeError
from comfyui_spacetime.workflow import execute, execution_order, run_workflow, to_api, validate


class Number:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": 100}),
                             "scale": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0})}}

    RETURN_TYPES = ("NUMBER",)
    FUNCTION = "make"

    def make(self, seed, scale):
        return (seed * scale,)


class Add:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("NUMBER", {}), "b": ("NUMBER", {}), "mode": (["sum", "diff"], {})},
                "optional": {"offset": ("FLOAT", {"default": 0.0})}}

    RETURN_TYPES = ("NUMBER",)
    FUNCTION = "add"

    def add(self, a, b, mode, offset=0.0):
        return ((a + b if mode == "sum" else a - b) + offset,)


class Show:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("NUMBER", {})}, "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "show"

    def show(self, value, prompt=None, extra_pnginfo=None):
        return {"ui": {"value": [value], "nodes": [len(prompt)], "has_workflow": [extra_pnginfo is not None]}}


NODES = {"Number": Number, "Add": Add, "Show": Show}


def ui_workflow() -> dict:
    """Two Number nodes (seed with its control_after_generate value) -> Add -> Show, plus a Note."""
    return {
        "nodes": [
            {"id": 9, "type": "Show", "inputs": [{"name": "value", "type": "NUMBER", "link": 3}], "widgets_values": []},
            {"id": 2, "type": "Number", "outputs": [{"links": [1]}], "widgets_values": [3, "randomize", 2.0]},
            {"id": 4, "type": "Number", "outputs": [{"links": [2]}], "widgets_values": [5, "fixed", 1.0]},
            {"id": 7, "type": "Add", "inputs": [{"name": "a", "type": "NUMBER", "link": 1},
                                                {"name": "b", "type": "NUMBER", "link": 2}],
             "widgets_values": ["diff", 0.5]},
            {"id": 11, "type": "Note", "widgets_values": ["what this graph does"]},
        ],
        "links": [[1, 2, 0, 7, 0, "NUMBER"], [2, 4, 0, 7, 1, "NUMBER"], [3, 7, 0, 9, 0, "NUMBER"]],
    }


def test_ui_workflow_converts_skipping_seed_control_and_notes():
    prompt = to_api(ui_workflow(), NODES)
    assert set(prompt) == {"2", "4", "7", "9"}
    assert prompt["2"]["inputs"] == {"seed": 3, "scale": 2.0}
    assert prompt["7"]["inputs"] == {"a": ["2", 0], "b": ["4", 0], "mode": "diff", "offset": 0.5}


def test_links_saved_as_objects_convert_the_same():
    workflow = ui_workflow()
    names = ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type")
    workflow["links"] = [dict(zip(names, row)) for row in workflow["links"]]
    assert to_api(workflow, NODES) == to_api(ui_workflow(), NODES)


def test_execution_follows_links_not_file_order(tmp_path):
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(ui_workflow()))
    ui = run_workflow(path, NODES)
    assert ui == {"9": {"value": [3 * 2.0 - 5 * 1.0 + 0.5], "nodes": [4], "has_workflow": [True]}}


def test_api_format_runs_without_a_workflow_in_extra_pnginfo(tmp_path):
    path = tmp_path / "api.json"
    path.write_text(json.dumps(to_api(ui_workflow(), NODES)))
    assert run_workflow(path, NODES)["9"]["has_workflow"] == [False]


def test_order_is_topological():
    order = execution_order(to_api(ui_workflow(), NODES))
    assert order.index("2") < order.index("7") and order.index("4") < order.index("7") < order.index("9")


def test_cycle_is_named():
    prompt = {"1": {"class_type": "Add", "inputs": {"a": ["2", 0], "b": ["2", 0], "mode": "sum"}},
              "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": ["1", 0], "mode": "sum"}}}
    with pytest.raises(SpacetimeError, match="cycle"):
        execution_order(prompt)


def test_unknown_node_type_is_named():
    workflow = ui_workflow()
    workflow["nodes"][1]["type"] = "KSampler"
    with pytest.raises(SpacetimeError, match="'KSampler'.*only runs the pack's own nodes"):
        to_api(workflow, NODES)


def test_link_of_wrong_type_is_refused():
    workflow = ui_workflow()
    workflow["nodes"][3]["inputs"][0]["name"] = "mode"  # a NUMBER output into a dropdown
    with pytest.raises(SpacetimeError, match="input 'mode' takes COMBO"):
        to_api(workflow, NODES)


def test_validation_reports_every_problem_at_once():
    prompt = to_api(ui_workflow(), NODES)
    prompt["2"]["inputs"]["seed"] = 101
    prompt["7"]["inputs"]["mode"] = "product"
    del prompt["4"]["inputs"]["scale"]
    with pytest.raises(SpacetimeError) as err:
        validate(prompt, NODES)
    message = str(err.value)
    assert "101 is outside 0..100" in message and "'product' is not one of" in message
    assert "required input 'scale'" in message


def test_validation_can_ignore_file_choices():
    prompt = to_api(ui_workflow(), NODES)
    prompt["7"]["inputs"]["mode"] = "not-on-this-machine"
    validate(prompt, NODES, ignore_choices=("mode",))


def test_muted_source_is_reported():
    workflow = ui_workflow()
    workflow["nodes"][1]["mode"] = 2
    with pytest.raises(SpacetimeError, match="missing or muted"):
        to_api(workflow, NODES)


def test_execute_passes_outputs_by_slot():
    prompt = {"1": {"class_type": "Number", "inputs": {"seed": 4, "scale": 0.5}},
              "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": ["1", 0], "mode": "sum"}},
              "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}}}
    assert execute(prompt, NODES)["3"]["value"] == [4.0]
