"""Run a ComfyUI workflow JSON with the pack's own nodes, outside ComfyUI.

Two formats come in. The UI format is what the canvas saves (`nodes` with `widgets_values`, and `links` rows
`[id, from_node, from_slot, to_node, to_slot, type]`); the API format is `{id: {"class_type", "inputs"}}`
with links as `[from_id, from_slot]`. A UI workflow is first converted to the API format, as the ComfyUI
frontend does before queueing, then every workflow is validated and executed in dependency order.
"""
import json
from pathlib import Path

from .core.errors import SpacetimeError
from .nodes import NODE_CLASS_MAPPINGS

NOTE_TYPES = frozenset({"Note", "MarkdownNote"})
MUTED_MODE = 2  # a node switched off with Ctrl+M; ComfyUI does not run it
BYPASSED_MODE = 4
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN"})
SEED_CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})
UPLOAD_OPTIONS = ("image_upload", "video_upload")
UPLOAD_WIDGET_VALUES = frozenset({"image", "video"})
HIDDEN_VALUES = ("PROMPT", "EXTRA_PNGINFO", "UNIQUE_ID")


def load_workflow(path: str | Path) -> dict:
    """Read a workflow JSON file (either format)."""
    path = Path(path)
    if not path.is_file():
        raise SpacetimeError(f"workflow file {path} does not exist; expected a .json saved from ComfyUI; "
                             f"check the path")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SpacetimeError(f"{path} is not valid JSON ({err}); expected a workflow saved from ComfyUI") from err


def is_ui_format(workflow: dict) -> bool:
    return isinstance(workflow.get("nodes"), list) and isinstance(workflow.get("links"), list)


def run_workflow(path: str | Path, node_classes: dict | None = None) -> dict[str, dict]:
    """Load, convert, validate and execute a workflow file; returns each output node's `ui` dict by node id."""
    workflow = load_workflow(path)
    node_classes = NODE_CLASS_MAPPINGS if node_classes is None else node_classes
    if is_ui_format(workflow):
        prompt, extra_pnginfo = to_api(workflow, node_classes), {"workflow": workflow}
    else:
        prompt, extra_pnginfo = workflow, None
    validate(prompt, node_classes)
    return execute(prompt, node_classes, extra_pnginfo)


# ---- UI format -> API format -------------------------------------------------------------------------------

def to_api(workflow: dict, node_classes: dict | None = None) -> dict[str, dict]:
    """Convert a UI-format workflow to the API format; link types are checked on the way."""
    node_classes = NODE_CLASS_MAPPINGS if node_classes is None else node_classes
    nodes = {node["id"]: node for node in workflow["nodes"] if _runs(node)}
    links = {row[0]: row for row in map(_link_row, workflow["links"])}
    prompt = {}
    for node_id, node in nodes.items():
        node_class = _node_class(node["type"], node_id, node_classes)
        inputs = _widget_inputs(node_class, node)
        inputs.update(_linked_inputs(node, nodes, links, node_classes))
        prompt[str(node_id)] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def _link_row(link) -> tuple:
    """(id, from_node, from_slot, to_node, to_slot, type): the frontend saves a link as this list (schema 0.4)
    or as an object with these names (schema 1)."""
    if isinstance(link, dict):
        return tuple(link[key] for key in ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type"))
    return tuple(link[:6])


def _runs(node: dict) -> bool:
    if node["type"] in NOTE_TYPES or node.get("mode", 0) == MUTED_MODE:
        return False
    if node.get("mode", 0) == BYPASSED_MODE:
        raise SpacetimeError(f"node {node['id']} ({node['type']}) is bypassed; `spacetime run` does not reroute "
                             f"bypassed nodes; un-bypass it or delete it in ComfyUI and save the workflow again")
    return True


def _node_class(node_type: str, node_id, node_classes: dict):
    if node_type not in node_classes:
        raise SpacetimeError(f"node {node_id} is of type '{node_type}', which ComfyUI-Spacetime does not provide; "
                             f"`spacetime run` only runs the pack's own nodes (Spacetime...); replace that node "
                             f"or run the workflow inside ComfyUI")
    return node_classes[node_type]


def _input_specs(node_class) -> dict[str, tuple]:
    """Every declared input, required then optional, in declaration order: name -> (type, options)."""
    declared = node_class.INPUT_TYPES()
    specs = {**declared.get("required", {}), **declared.get("optional", {})}
    return {name: (spec[0], spec[1] if len(spec) > 1 else {}) for name, spec in specs.items()}


def _is_widget(kind) -> bool:
    return isinstance(kind, (list, tuple)) or kind in WIDGET_TYPES


def _widget_inputs(node_class, node: dict) -> dict:
    """Map `widgets_values` onto the widget inputs in declaration order, skipping the frontend's extra values."""
    values = node.get("widgets_values") or []
    widgets = {name: spec for name, spec in _input_specs(node_class).items() if _is_widget(spec[0])}
    if isinstance(values, dict):
        return {name: values[name] for name in widgets if name in values}
    queue, inputs = list(values), {}
    for name, (kind, options) in widgets.items():
        if not queue:
            break
        inputs[name] = queue.pop(0)
        if queue and queue[0] in _extra_widget_values(name, kind, options):
            queue.pop(0)
    return inputs


def _extra_widget_values(name: str, kind, options: dict) -> frozenset:
    """Values of widgets the frontend adds after an input (seed control, upload button): not node inputs."""
    if kind == "INT" and (name in ("seed", "noise_seed") or options.get("control_after_generate")):
        return SEED_CONTROL_VALUES
    if any(options.get(key) for key in UPLOAD_OPTIONS):
        return UPLOAD_WIDGET_VALUES
    return frozenset()


def _linked_inputs(node: dict, nodes: dict, links: dict, node_classes: dict) -> dict:
    inputs = {}
    for slot in node.get("inputs", []):
        if slot.get("link") is None:
            continue
        _, source_id, source_slot, _, _, _ = links[slot["link"]]
        if source_id not in nodes:
            raise SpacetimeError(f"node {node['id']} ({node['type']}) input '{slot['name']}' comes from node "
                                 f"{source_id}, which is missing or muted; expected a running node; reconnect it")
        _check_link_type(nodes[source_id], source_slot, node, slot, node_classes)
        inputs[slot["name"]] = [str(source_id), source_slot]
    return inputs


def _check_link_type(source: dict, source_slot: int, target: dict, slot: dict, node_classes: dict) -> None:
    produced = node_classes[source["type"]].RETURN_TYPES[source_slot]
    kind = _input_specs(node_classes[target["type"]]).get(slot["name"], (None,))[0]
    expected = "COMBO" if isinstance(kind, (list, tuple)) else kind
    if kind is None or (produced != expected and "*" not in (produced, expected)):
        raise SpacetimeError(f"node {target['id']} ({target['type']}) input '{slot['name']}' takes {expected}, but "
                             f"is linked to output {source_slot} ({produced}) of node {source['id']} "
                             f"({source['type']}); connect an output of type {expected}")


# ---- validation ---------------------------------------------------------------------------------------------

def validate(prompt: dict, node_classes: dict | None = None, ignore_choices=()) -> None:
    """Check an API-format prompt as ComfyUI does before running: known nodes, required inputs present, links
    to existing nodes, numbers in range, dropdown values among the choices (except inputs in `ignore_choices`,
    e.g. model file names when the files are not on this machine). All problems are reported at once."""
    node_classes = NODE_CLASS_MAPPINGS if node_classes is None else node_classes
    problems = []
    for node_id, node in prompt.items():
        node_class = _node_class(node["class_type"], node_id, node_classes)
        problems += _missing_inputs(node_id, node, node_class)
        for name, value in node["inputs"].items():
            problems += _value_problems(node_id, node, name, value, prompt, _input_specs(node_class), ignore_choices)
    if problems:
        raise SpacetimeError("the workflow does not validate:\n  " + "\n  ".join(problems))


def _missing_inputs(node_id: str, node: dict, node_class) -> list[str]:
    required = node_class.INPUT_TYPES().get("required", {})
    return [f"node {node_id} ({node['class_type']}): required input '{name}' has no value or link"
            for name in required if name not in node["inputs"]]


def _value_problems(node_id, node, name, value, prompt, specs, ignore_choices) -> list[str]:
    where = f"node {node_id} ({node['class_type']}) input '{name}'"
    if name not in specs:
        return [f"{where}: the node has no such input"]
    if _is_link(value):
        return [] if value[0] in prompt else [f"{where}: linked to node {value[0]}, which is not in the workflow"]
    kind, options = specs[name]
    if isinstance(kind, (list, tuple)):
        ok = name in ignore_choices or value in kind
        return [] if ok else [f"{where}: '{value}' is not one of the choices {list(kind)[:8]}"]
    if kind in ("INT", "FLOAT"):
        return _number_problems(where, value, options)
    return []


def _number_problems(where: str, value, options: dict) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return [f"{where}: {value!r} is not a number"]
    low, high = options.get("min", float("-inf")), options.get("max", float("inf"))
    return [] if low <= value <= high else [f"{where}: {value} is outside {low}..{high}"]


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


# ---- execution ----------------------------------------------------------------------------------------------

def execute(prompt: dict, node_classes: dict | None = None, extra_pnginfo: dict | None = None) -> dict[str, dict]:
    """Run every node once in dependency order; returns the `ui` dict of each node that gave one, by node id."""
    node_classes = NODE_CLASS_MAPPINGS if node_classes is None else node_classes
    results, ui = {}, {}
    for node_id in execution_order(prompt):
        node = prompt[node_id]
        node_class = node_classes[node["class_type"]]
        kwargs = {name: results[value[0]][value[1]] if _is_link(value) else value
                  for name, value in node["inputs"].items()}
        kwargs.update(_hidden_inputs(node_class, node_id, prompt, extra_pnginfo))
        output = getattr(node_class(), node_class.FUNCTION)(**kwargs)
        if isinstance(output, dict):
            ui[node_id] = output.get("ui", {})
            output = output.get("result", ())
        results[node_id] = tuple(output)
    return ui


def _hidden_inputs(node_class, node_id: str, prompt: dict, extra_pnginfo: dict | None) -> dict:
    values = dict(zip(HIDDEN_VALUES, (prompt, extra_pnginfo, node_id)))
    hidden = node_class.INPUT_TYPES().get("hidden", {})
    return {name: values[kind] for name, kind in hidden.items() if kind in values}


def execution_order(prompt: dict) -> list[str]:
    """Node ids sorted so that every node comes after the nodes it reads from (Kahn's algorithm)."""
    waiting_on = {node_id: {v[0] for v in node["inputs"].values() if _is_link(v)} for node_id, node in prompt.items()}
    order = []
    while waiting_on:
        ready = sorted((n for n, deps in waiting_on.items() if not deps), key=_id_sort_key)
        if not ready:
            raise SpacetimeError(f"the workflow has a cycle through nodes {sorted(waiting_on, key=_id_sort_key)}; "
                                 f"expected links that only go forward; remove the link that closes the loop")
        for node_id in ready:
            del waiting_on[node_id]
        for deps in waiting_on.values():
            deps.difference_update(ready)
        order += ready
    return order


def _id_sort_key(node_id: str) -> tuple:
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)
