"""Write the example workflows (UI format, as the ComfyUI frontend saves them) from the graphs described below.

This script is the source of truth for example_workflows/*.json: edit a graph here and run
    python example_workflows/make_examples.py
Widget values follow each node's INPUT_TYPES (defaults filled in, extra frontend values such as the seed's
"control after generate" inserted where the frontend puts them), so the files stay in step with the nodes.
Nodes are laid out in columns; each node's height is what the frontend computes for it, so nothing overlaps.
"""
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from comfyui_spacetime.nodes import NODE_CLASS_MAPPINGS

HERE = Path(__file__).resolve().parent

# ---- ComfyUI core nodes the real-checkpoint workflows use (signatures as in ComfyUI's nodes.py) -------------


class LoadImage:
    """ComfyUI's Load Image: the user's picture for image-to-video and keyframes."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": (["example.png"], {"image_upload": True})}}

    RETURN_TYPES = ("IMAGE", "MASK")


class ImageBatch:
    """ComfyUI's Batch Images: two images into one batch (keyframes for Infill Frames)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image1": ("IMAGE",), "image2": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE",)


CORE_NODES = {"LoadImage": LoadImage, "ImageBatch": ImageBatch}
NOTE = "MarkdownNote"

# ---- frontend layout constants (LiteGraph: slot rows 20 px, widgets 20 px + 4 px gap) -----------------------

SLOT_HEIGHT = 20
WIDGET_HEIGHT = 24
NODE_PADDING = 6
WIDGETS_PADDING = 8
TEXTAREA_HEIGHT = 96
DOM_WIDGET_HEIGHTS = {  # the canvas extension's widgets (web/widgets/*.js) plus the 4 px gap
    "SpacetimeInfillFrames": 88, "SpacetimeExtendVideo": 88, "SpacetimeEmptyLatentVideo": 88,
}
WIDE_NODES = {"SpacetimeTextEncode", "SpacetimeInfillFrames", "SpacetimeExtendVideo", "SpacetimeEmptyLatentVideo",
              "SpacetimeLoadDiffusionModel", "SpacetimeLoadTextEncoder", "SpacetimeLoadVAE"}
NODE_WIDTH, WIDE_WIDTH, NOTE_WIDTH, NOTE_HEIGHT = 320, 400, 420, 420
TITLE_HEIGHT = 30  # a node's title bar sits above its `pos`
BADGE_HEIGHT = 20  # the frontend's "Spacetime" source badge sits above the title bar
COLUMN_GAP, ROW_GAP = 50, 30
GROUP_PAD, GROUP_TITLE = 15, 40
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")
SEED_CONTROL = "fixed"  # examples re-run the same video; the user switches to randomize


def node_class(node_type):
    return NODE_CLASS_MAPPINGS.get(node_type) or CORE_NODES[node_type]


def input_specs(node_type) -> dict:
    declared = node_class(node_type).INPUT_TYPES()
    required, optional = declared.get("required", {}), declared.get("optional", {})
    specs = {name: (spec[0], spec[1] if len(spec) > 1 else {}, False) for name, spec in required.items()}
    specs.update({name: (spec[0], spec[1] if len(spec) > 1 else {}, True) for name, spec in optional.items()})
    return specs


def is_widget(kind) -> bool:
    return isinstance(kind, (list, tuple)) or kind in WIDGET_TYPES


# ---- graph description ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Out:
    """Output `slot` of node `node_id` (what a link starts from)."""

    node_id: int
    slot: int


@dataclass
class Node:
    id: int
    type: str
    column: int
    row: int
    values: dict
    group: str | None
    title: str | None = None
    pos: tuple = (0, 0)
    size: tuple = (0, 0)

    def __getitem__(self, name) -> Out:
        """An output by its RETURN_NAMES name (or its type for core nodes)."""
        cls = node_class(self.type)
        names = getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)
        return Out(self.id, list(names).index(name))


@dataclass
class Graph:
    """A workflow: a note (node 1, top left) and nodes placed by column and row; ids follow the order of add()."""

    name: str
    note: str
    nodes: list = field(default_factory=list)

    def __post_init__(self):
        self.add(NOTE, column=0, text=self.note)

    def add(self, node_type, column, row=0, group=None, title=None, **values) -> Node:
        node = Node(len(self.nodes) + 1, node_type, column, row, values, group, title)
        self.nodes.append(node)
        return node


# ---- serialization --------------------------------------------------------------------------------------------


def widget_values(node: Node) -> list:
    """widgets_values in the frontend's order: declared widgets, each followed by any widget the frontend adds."""
    values = []
    for name, (kind, options, _) in input_specs(node.type).items():
        if not is_widget(kind):
            continue
        given = node.values.get(name)
        values.append(default_value(kind, options) if given is None or isinstance(given, Out) else given)
        if options.get("control_after_generate"):
            values.append(SEED_CONTROL)
        if options.get("image_upload") or options.get("video_upload"):
            values.append("image")  # the upload button's value, as the frontend saves it
    return values


def default_value(kind, options: dict):
    """The value a new node shows: the declared default, else the first choice, else empty."""
    if "default" in options:
        return options["default"]
    if isinstance(kind, (list, tuple)):
        return kind[0] if kind else ""
    return "" if kind == "STRING" else 0


def node_height(node: Node) -> int:
    if node.type == NOTE:
        return NOTE_HEIGHT
    specs = input_specs(node.type)
    sockets = sum(1 for kind, _, _ in specs.values() if not is_widget(kind))
    outputs = len(node_class(node.type).RETURN_TYPES)
    widgets = widget_values(node)
    textareas = sum(1 for kind, options, _ in specs.values() if kind == "STRING" and options.get("multiline"))
    height = NODE_PADDING + SLOT_HEIGHT * max(sockets, outputs)
    if widgets:
        height += WIDGET_HEIGHT * (len(widgets) - textareas) + TEXTAREA_HEIGHT * textareas + WIDGETS_PADDING
    return height + DOM_WIDGET_HEIGHTS.get(node.type, 0)


def node_width(node: Node) -> int:
    if node.type == NOTE:
        return NOTE_WIDTH
    return WIDE_WIDTH if node.type in WIDE_NODES else NODE_WIDTH


def layout(graph: Graph) -> None:
    """Columns left to right, rows top to bottom; in a cell, nodes stack in the order they were added. A row
    starts below the previous row's lowest node in the columns it uses, so groups of different rows never meet."""
    for node in graph.nodes:
        node.size = (node_width(node), node_height(node))
    columns = sorted({n.column for n in graph.nodes})
    column_x, x = {}, 0
    for column in columns:
        column_x[column] = x
        x += max(n.size[0] for n in graph.nodes if n.column == column) + COLUMN_GAP
    bottoms = {column: 0 for column in columns}
    for row in sorted({n.row for n in graph.nodes}):
        members = [n for n in graph.nodes if n.row == row]
        used = {n.column for n in members}
        top = max(bottoms[c] for c in used) + (ROW_GAP if row else 0)
        for column in used:
            y = top
            for node in (n for n in members if n.column == column):
                y += GROUP_TITLE if node.group and node.group != previous_group(members, node) else 0
                node.pos = (column_x[column], y + BADGE_HEIGHT + TITLE_HEIGHT)
                y = node.pos[1] + node.size[1] + ROW_GAP
            bottoms[column] = y - ROW_GAP


def previous_group(members: list, node: Node):
    """The group of the node stacked just above `node` in its cell (None at the top of the cell)."""
    above = [n for n in members if n.column == node.column and n.id < node.id]
    return above[-1].group if above else None


def input_slots(node_type) -> list:
    """(name, kind, optional, widget) per input slot in the frontend's order: sockets, then one per widget (a
    widget's slot takes a link when the widget is driven by another node's output)."""
    if node_type == NOTE:
        return []
    specs = [(name, kind, optional, is_widget(kind)) for name, (kind, _, optional) in input_specs(node_type).items()]
    return [s for s in specs if not s[3]] + [s for s in specs if s[3]]


def link_rows(graph: Graph) -> list:
    """[id, from_node, from_slot, to_node, to_slot, type] for every input given as an Out."""
    rows = []
    for node in graph.nodes:
        for slot, (name, *_) in enumerate(input_slots(node.type)):
            source = node.values.get(name)
            if isinstance(source, Out):
                kind = node_class(graph.nodes[source.node_id - 1].type).RETURN_TYPES[source.slot]
                rows.append([len(rows) + 1, source.node_id, source.slot, node.id, slot, kind])
    return rows


def serialize_input(name, kind, optional, widget, link) -> dict:
    entry = {"name": name, "type": "COMBO" if isinstance(kind, (list, tuple)) else kind, "link": link}
    if widget:
        entry["widget"] = {"name": name}
    if optional:
        entry["shape"] = 7  # the frontend draws optional inputs hollow
    return entry


def serialize_node(node: Node, links: list, order: int) -> dict:
    base = {"id": node.id, "type": node.type, "pos": list(node.pos), "size": list(node.size), "flags": {},
            "order": order, "mode": 0}
    if node.type == NOTE:
        return {**base, "inputs": [], "outputs": [], "properties": {}, "widgets_values": [node.values["text"]],
                "color": "#432", "bgcolor": "#653"}
    incoming = {row[4]: row[0] for row in links if row[3] == node.id}
    inputs = [serialize_input(*spec, incoming.get(slot)) for slot, spec in enumerate(input_slots(node.type))]
    cls = node_class(node.type)
    names = getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)
    outputs = [{"name": name, "type": kind, "links": [row[0] for row in links if row[1] == node.id and row[2] == slot]}
               for slot, (name, kind) in enumerate(zip(names, cls.RETURN_TYPES))]
    serialized = {**base, "inputs": inputs, "outputs": outputs, "properties": {"Node name for S&R": node.type},
                  "widgets_values": widget_values(node)}
    return {**serialized, "title": node.title} if node.title else serialized


def groups(graph: Graph) -> list:
    result = []
    for title in dict.fromkeys(n.group for n in graph.nodes if n.group):
        members = [n for n in graph.nodes if n.group == title]
        left = min(n.pos[0] for n in members) - GROUP_PAD
        top = min(n.pos[1] for n in members) - TITLE_HEIGHT - BADGE_HEIGHT - GROUP_TITLE
        right = max(n.pos[0] + n.size[0] for n in members) + GROUP_PAD
        bottom = max(n.pos[1] + n.size[1] for n in members) + GROUP_PAD
        result.append({"id": len(result) + 1, "title": title, "bounding": [left, top, right - left, bottom - top],
                       "color": "#3f789e", "font_size": 24, "flags": {}})
    return result


def execution_order(graph: Graph, links: list) -> dict:
    """A topological order of the nodes (the frontend saves one in each node's `order`)."""
    parents = {n.id: {row[1] for row in links if row[3] == n.id} for n in graph.nodes}
    order, done = {}, set()
    while len(done) < len(graph.nodes):
        ready = [n.id for n in graph.nodes if n.id not in done and parents[n.id] <= done]
        for node_id in ready:
            order[node_id] = len(order)
            done.add(node_id)
    return order


def to_ui_json(graph: Graph) -> dict:
    layout(graph)
    links = link_rows(graph)
    order = execution_order(graph, links)
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"comfyui-spacetime/{graph.name}")),
        "revision": 0,
        "last_node_id": len(graph.nodes),
        "last_link_id": len(links),
        "nodes": [serialize_node(n, links, order[n.id]) for n in graph.nodes],
        "links": links,
        "groups": groups(graph),
        "config": {},
        "extra": {"ds": {"scale": 0.8, "offset": [40, 80]}},
        "version": 0.4,
    }


# ---- models ---------------------------------------------------------------------------------------------------

UMT5 = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
NEGATIVE = "blurry, low quality, jpeg artifacts, static frame, distorted, deformed, extra limbs, watermark, text"


@dataclass(frozen=True)
class Model:
    """The files and the sampling settings of one model, as the workflows use them."""

    key: str  # start of the workflow file names
    label: str
    dit: str
    text_encoder: str
    vae: str
    width: int
    height: int
    frames: int
    fps: float
    steps: int
    cfg: float
    shift: float
    low_noise: str = "none"
    clip_vision: str = ""  # Wan 2.1 I2V / FLF2V also read their images through this CLIP-vision file
    download: str = ""  # `spacetime download` preset; empty for the bundled model

    @property
    def seconds(self) -> float:
        return (self.frames - 1) / self.fps


MINI = Model("spacetime_mini", "spacetime-mini (bundled)", "spacetime_mini_dit.safetensors",
             "spacetime_mini_umt5.safetensors", "spacetime_mini_vae.safetensors",
             width=96, height=64, frames=17, fps=8, steps=20, cfg=4.0, shift=3.0)
WAN21_T2V = Model("wan2.1_t2v_1.3B", "Wan 2.1 T2V 1.3B", "wan2.1_t2v_1.3B_fp16.safetensors", UMT5,
                  "wan_2.1_vae.safetensors", width=832, height=480, frames=81, fps=16, steps=30, cfg=6.0, shift=8.0,
                  download="wan2.1-t2v-1.3b")
WAN21_VACE = Model("wan2.1_vace_1.3B", "Wan 2.1 VACE 1.3B", "wan2.1_vace_1.3B_fp16.safetensors", UMT5,
                   "wan_2.1_vae.safetensors", width=832, height=480, frames=81, fps=16, steps=30, cfg=6.0,
                   shift=16.0, download="wan2.1-vace-1.3b")
WAN22_TI2V = Model("wan2.2_ti2v_5B", "Wan 2.2 TI2V 5B", "wan2.2_ti2v_5B_fp16.safetensors", UMT5,
                   "wan2.2_vae.safetensors", width=1280, height=704, frames=121, fps=24, steps=30, cfg=5.0,
                   shift=5.0, download="wan2.2-ti2v-5b")
WAN22_T2V_A14B = Model("wan2.2_t2v_A14B", "Wan 2.2 T2V A14B", "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors",
                       UMT5, "wan_2.1_vae.safetensors", width=832, height=480, frames=81, fps=16, steps=40, cfg=4.0,
                       shift=12.0, low_noise="wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors",
                       download="wan2.2-t2v-a14b")
WAN22_I2V_A14B = Model("wan2.2_i2v_A14B", "Wan 2.2 I2V A14B", "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
                       UMT5, "wan_2.1_vae.safetensors", width=832, height=480, frames=81, fps=16, steps=40, cfg=3.5,
                       shift=5.0, low_noise="wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors",
                       download="wan2.2-i2v-a14b")
WAN21_I2V = Model("wan2.1_i2v_480p_14B", "Wan 2.1 I2V 14B 480p", "wan2.1_i2v_480p_14B_fp8_scaled.safetensors", UMT5,
                  "wan_2.1_vae.safetensors", width=832, height=480, frames=81, fps=16, steps=40, cfg=5.0, shift=3.0,
                  clip_vision="clip_vision_h.safetensors", download="wan2.1-i2v-14b-480p")
WAN21_FLF2V = Model("wan2.1_flf2v_720p_14B", "Wan 2.1 FLF2V 14B 720p", "wan2.1_flf2v_720p_14B_fp8_e4m3fn.safetensors",
                    UMT5, "wan_2.1_vae.safetensors", width=1280, height=720, frames=81, fps=16, steps=50, cfg=5.0,
                    shift=16.0, clip_vision="clip_vision_h.safetensors", download="wan2.1-flf2v-14b")


# ---- notes ----------------------------------------------------------------------------------------------------


def files_note(m: Model) -> str:
    if not m.download:
        return ("**Files:** none to fetch. The loaders list the pack's own model first "
                "(`custom_nodes/ComfyUI-Spacetime/models/spacetime-mini/`); it runs on a CPU.")
    experts = f"\n- `models/diffusion_models/{m.low_noise}` (low-noise expert)" if m.low_noise != "none" else ""
    clip = f"\n- `models/clip_vision/{m.clip_vision}`" if m.clip_vision else ""
    return (f"**Files** (Comfy-Org repackaged; `spacetime download {m.download}` or the Spacetime Download Model "
            f"node puts them in place):\n- `models/diffusion_models/{m.dit}`{experts}\n"
            f"- `models/text_encoders/{m.text_encoder}`\n- `models/vae/{m.vae}`{clip}")


def note(title: str, m: Model, body: str) -> str:
    return f"## {title}\n**Model:** {m.label}\n\n{body}\n\n{files_note(m)}"


# ---- building blocks ------------------------------------------------------------------------------------------


def load_models(g: Graph, m: Model):
    model = g.add("SpacetimeLoadDiffusionModel", 1, group="Models", model_name=m.dit, low_noise_model_name=m.low_noise)
    text_encoder = g.add("SpacetimeLoadTextEncoder", 1, group="Models", text_encoder_name=m.text_encoder)
    vae = g.add("SpacetimeLoadVAE", 1, group="Models", vae_name=m.vae)
    return model, text_encoder, vae


def clip_vision_loader(g: Graph, m: Model) -> Out | None:
    """The CLIP-vision encoder for the models that read their keyframes through it (Wan 2.1 I2V / FLF2V)."""
    if not m.clip_vision:
        return None
    return g.add("SpacetimeLoadCLIPVision", 1, group="Models", clip_vision_name=m.clip_vision)["clip_vision"]


def encode(g: Graph, text_encoder: Node, prompt: str, row: int, group: str, negative=NEGATIVE) -> Node:
    return g.add("SpacetimeTextEncode", 2, row, group, text_encoder=text_encoder["text_encoder"], prompt=prompt,
                 negative_prompt=negative)


def empty_latent(g: Graph, m: Model, vae: Node, row: int, group: str, frames: int | None = None) -> Node:
    return g.add("SpacetimeEmptyLatentVideo", 2, row, group, vae=vae["vae"], width=m.width, height=m.height,
                 frames=frames or m.frames)


def sample_and_decode(g: Graph, m: Model, model: Node, vae: Node, conditioning: Node, latent: Out, row: int,
                      group: str, keyframes: Out | None = None, seed: int = 42, steps: int | None = None) -> Node:
    sampler = g.add("SpacetimeSampler", 3, row, group, model=model["model"], conditioning=conditioning["conditioning"],
                    latent=latent, keyframes=keyframes, vae=vae["vae"], seed=seed, steps=steps or m.steps, cfg=m.cfg,
                    shift=m.shift, fps=m.fps)
    return g.add("SpacetimeVAEDecode", 4, row, group, vae=vae["vae"], latent=sampler["latent"])


def save(g: Graph, m: Model, images: Node, row: int, group: str, prefix: str, **options) -> Node:
    return g.add("SpacetimeSaveVideo", 4, row, group, images=images["images"], fps=m.fps,
                 filename_prefix=f"spacetime/{prefix}", **options)


def text_to_clip(g: Graph, m: Model, models, prompt: str, row: int, group: str, frames: int | None = None,
                 seed: int = 42, steps: int | None = None) -> Node:
    """Prompt -> empty latent -> sampler -> decoded frames, in one row."""
    model, text_encoder, vae = models
    conditioning = encode(g, text_encoder, prompt, row, group)
    latent = empty_latent(g, m, vae, row, group, frames)
    return sample_and_decode(g, m, model, vae, conditioning, latent["latent"], row, group, seed=seed, steps=steps)


# ---- the workflows --------------------------------------------------------------------------------------------

MINI_PROMPT = "a red circle moving to the right on a blue background"


def text_to_video(m: Model, prompt: str) -> Graph:
    g = Graph(f"{m.key}_text_to_video", note("Text to video", m,
        f"Type a prompt, press **Run**. The sampler shows a live preview; **Spacetime Save Video** plays the mp4 "
        f"({m.frames} frames = {m.seconds:g} s at {m.fps:g} fps, {m.width}x{m.height}).\n\n"
        "**Empty Latent Video** has size presets and shows the token count and a memory estimate before you run."))
    models = load_models(g, m)
    images = text_to_clip(g, m, models, prompt, 0, "Generate")
    save(g, m, images, 0, "Generate", "text_to_video")
    return g


def image_to_video(m: Model, prompt: str) -> Graph:
    own = m.download != ""
    source = ("**Load Image** takes your picture (upload it with the node's button)." if own else
              "Group 1 makes a still with the same model so the graph runs as it is; to start from your own "
              "picture, connect a **Load Image** node to *start_image* instead.")
    g = Graph(f"{m.key}_image_to_video", note("Image to video", m,
        f"The picture becomes frame 0 and the sampler animates it. {source} The picture is resized to cover "
        f"{m.width}x{m.height} and centre-cropped."))
    model, text_encoder, vae = models = load_models(g, m)
    if own:
        picture = g.add("LoadImage", 2, 0, "1. Start image", image="example.png")["IMAGE"]
    else:
        picture = text_to_clip(g, m, models, "a yellow square on a purple background", 0, "1. Start image",
                               frames=1, seed=7)["images"]
    group = "2. Animate it"
    start = g.add("SpacetimeImageToVideo", 2, 1, group, vae=vae["vae"], start_image=picture,
                  clip_vision=clip_vision_loader(g, m))
    conditioning = encode(g, text_encoder, prompt, 1, group)
    latent = empty_latent(g, m, vae, 1, group)
    images = sample_and_decode(g, m, model, vae, conditioning, latent["latent"], 1, group, start["keyframes"])
    save(g, m, images, 1, group, "image_to_video")
    return g


def extend(m: Model, direction: str, prompt: str, add_seconds: float, context_frames: int) -> Graph:
    own = m.download != ""
    where = "after its last frame" if direction == "forward" else "before its first frame"
    source = ("**Spacetime Load Video** reads your clip from ComfyUI's input folder (upload it with its button)."
              if own else "Group 1 makes a short clip with the same model so the graph runs as it is; use "
                          "**Spacetime Load Video** to extend your own.")
    g = Graph(f"{m.key}_extend_{direction}s", note(f"Extend a video {direction}s", m,
        f"Adds {add_seconds:g} s {where}. {source}\n\n**Extend Video**'s timeline shows the clip's edge, the "
        "context frames the model keeps (drag the left handle) and the new time (drag the right handle). The "
        "sampler chains windows when the result is longer than one model window."))
    model, text_encoder, vae = models = load_models(g, m)
    if own:
        clip = g.add("SpacetimeLoadVideo", 2, 0, "1. The clip", video="clip.mp4")["images"]
    else:
        clip = text_to_clip(g, m, models, MINI_PROMPT, 0, "1. The clip")["images"]
    group = f"2. Extend it {direction}s"
    extension = g.add("SpacetimeExtendVideo", 2, 1, group, vae=vae["vae"], video=clip, direction=direction,
                      add_seconds=add_seconds, fps=m.fps, context_frames=context_frames)
    conditioning = encode(g, text_encoder, prompt, 1, group)
    images = sample_and_decode(g, m, model, vae, conditioning, extension["latent"], 1, group, extension["keyframes"])
    save(g, m, images, 1, group, f"extend_{direction}s")
    return g


def infill(m: Model, prompt: str, frame_indices: str, length: int) -> Graph:
    own = m.download != ""
    source = ("Two **Load Image** nodes give the first and the last frame (**Batch Images** keeps their order)."
              if own else "Group 1 makes a 5-frame clip with the same model; its frames become the keyframes, "
                          "one per index, so the graph runs as it is.")
    g = Graph(f"{m.key}_infill", note("Infill between keyframes", m,
        f"Known frames at `frame_indices` ({frame_indices}); the sampler generates the frames between them. "
        f"{source}\n\nDrag a keyframe on **Infill Frames**' timeline: it snaps to frames the model can pin (every "
        "4th frame, one per latent frame) and writes `frame_indices`, which the graph saves. The i-th image "
        "goes to the i-th index."))
    model, text_encoder, vae = models = load_models(g, m)
    if own:
        first = g.add("LoadImage", 2, 0, "1. Keyframes", title="First frame", image="example.png")
        last = g.add("LoadImage", 2, 0, "1. Keyframes", title="Last frame", image="example.png")
        keyframe_images = g.add("ImageBatch", 3, 0, "1. Keyframes", image1=first["IMAGE"],
                                image2=last["IMAGE"])["IMAGE"]
    else:
        keyframe_images = text_to_clip(g, m, models, "a green triangle moving down on a white background", 0,
                                       "1. Keyframes", frames=5, seed=3)["images"]
    group = "2. Fill in between"
    keyframes = g.add("SpacetimeInfillFrames", 2, 1, group, vae=vae["vae"], images=keyframe_images,
                      frame_indices=frame_indices, length=length, fps=m.fps, clip_vision=clip_vision_loader(g, m))
    conditioning = encode(g, text_encoder, prompt, 1, group)
    latent = empty_latent(g, m, vae, 1, group, frames=length)
    images = sample_and_decode(g, m, model, vae, conditioning, latent["latent"], 1, group, keyframes["keyframes"])
    save(g, m, images, 1, group, "infill")
    return g


def minute_long(m: Model, shots: list[str], steps: int | None = None) -> Graph:
    """`steps`: fewer than the model's default keeps a minute of many short windows affordable on a CPU."""
    frames = int(60 * m.fps) + 1
    schedule = "\n".join(f"{15 * i}: {shot}" for i, shot in enumerate(shots))
    g = Graph(f"{m.key}_minute_long_multishot", note("A minute-long video in shots", m,
        f"{frames} frames = 60 s at {m.fps:g} fps. The prompt is a shot list, one `<start seconds>: prompt` per "
        "line; the sampler chains model windows over the whole length, each window keeping the end of the one "
        "before as context and taking the shot that covers it."))
    models = load_models(g, m)
    images = text_to_clip(g, m, models, schedule, 0, "Generate", frames=frames, steps=steps)
    save(g, m, images, 0, "Generate", "minute_long")
    return g


def subject_across_shots(m: Model, shots: list[str], seconds: int = 20) -> Graph:
    frames = int(seconds * m.fps) + 1
    schedule = "\n".join(f"{5 * i}: {shot}" for i, shot in enumerate(shots))
    g = Graph(f"{m.key}_subject_across_shots", note("One subject across shots", m,
        f"**Spacetime Subject Reference** shows the model your subject (**Load Image**: a character or an object, "
        f"best on a plain background) beside every window, not as a frame of the video, so it keeps its look "
        f"through all the shots of the prompt's shot list ({frames} frames = {seconds} s). VACE models only."))
    model, text_encoder, vae = load_models(g, m)
    group = "Generate"
    subject = g.add("LoadImage", 2, 0, group, title="Subject", image="subject.png")
    reference = g.add("SpacetimeSubjectReference", 2, 0, group, vae=vae["vae"], images=subject["IMAGE"])
    conditioning = encode(g, text_encoder, schedule, 0, group)
    latent = empty_latent(g, m, vae, 0, group, frames)
    images = sample_and_decode(g, m, model, vae, conditioning, latent["latent"], 0, group, reference["keyframes"])
    save(g, m, images, 0, group, "subject_across_shots")
    return g


def save_with_provenance(m: Model, prompt: str) -> Graph:
    g = Graph(f"{m.key}_save_with_provenance", note("Save with provenance", m,
        "**Spacetime Prompt Policy** checks the prompt before it is encoded and stops the run, naming the policy "
        "category, when the policy refuses it. **Spacetime Save Video** marks the video as AI-made: a visible "
        "moving mark, an invisible watermark (`spacetime detect-watermark FILE` reads it back) and a signed C2PA "
        "manifest naming the model and its hash, which **Spacetime Read Provenance** validates and shows. The "
        "prompt stays out of the manifest unless *include_prompt_in_manifest* is on. Without your own "
        "certificate a local self-signed one is made; viewers show it as untrusted."))
    model, text_encoder, vae = load_models(g, m)
    group = "Generate"
    policy = g.add("SpacetimePromptPolicy", 2, 0, group, prompt=prompt)
    conditioning = encode(g, text_encoder, policy["prompt"], 0, group)
    latent = empty_latent(g, m, vae, 0, group)
    images = sample_and_decode(g, m, model, vae, conditioning, latent["latent"], 0, group)
    saved = save(g, m, images, 0, group, "provenance", model=model["model"], watermark="both", sign_c2pa=True)
    g.add("SpacetimeReadProvenance", 4, 0, group, video=saved["path"])
    return g


def all_graphs() -> list[Graph]:
    mini_shots = ["a red circle moving to the right on a blue background",
                  "a yellow square growing on a black background",
                  "a white triangle bouncing around on a green backdrop",
                  "a purple disc moving up on a vertical gradient from orange to pink"]
    real_shots = ["a red kite climbs over a windy beach at sunrise, wide shot",
                  "close-up of the kite's tail snapping in the wind",
                  "a child on the sand pulls the kite string, laughing, handheld camera",
                  "the kite drifts away over the sea as the sun rises, slow pan"]
    scene = "a fox walks through fresh snow in a birch forest, soft morning light, cinematic"
    return [
        text_to_video(MINI, MINI_PROMPT),
        image_to_video(MINI, "a yellow square moving down on a purple background"),
        extend(MINI, "forward", "a red circle moving to the right on a blue background", 2.0, 8),
        extend(MINI, "backward", "a red circle moving to the right on a blue background", 2.0, 8),
        infill(MINI, "a green triangle moving down on a white background", "0,8,16,24,32", 33),
        minute_long(MINI, mini_shots, steps=10),
        save_with_provenance(MINI, MINI_PROMPT),
        text_to_video(WAN21_T2V, scene),
        text_to_video(WAN22_TI2V, scene),
        text_to_video(WAN22_T2V_A14B, scene),
        image_to_video(WAN22_TI2V, "the subject turns to the camera and smiles, gentle camera push-in"),
        image_to_video(WAN22_I2V_A14B, "the subject turns to the camera and smiles, gentle camera push-in"),
        image_to_video(WAN21_I2V, "the subject turns to the camera and smiles, gentle camera push-in"),
        extend(WAN21_VACE, "forward", "the scene continues naturally, same camera motion", 5.0, 16),
        extend(WAN21_VACE, "backward", "the scene leading up to this moment, same camera motion", 5.0, 16),
        infill(WAN21_VACE, "a smooth, natural transition between the two moments", "0,80", 81),
        infill(WAN21_FLF2V, "a smooth, natural transition between the two moments", "0,-1", 81),
        minute_long(WAN21_VACE, real_shots),
        subject_across_shots(WAN21_VACE, ["a woman in a red coat walks along a rainy street at night, wide shot",
                                          "close-up of the woman in the red coat, she looks up at the rain",
                                          "the woman in the red coat enters a warm cafe, handheld camera",
                                          "the woman in the red coat sits by the window with a cup of tea"]),
        save_with_provenance(WAN22_TI2V, scene),
    ]


def main() -> None:
    for graph in all_graphs():
        path = HERE / f"{graph.name}.json"
        path.write_text(json.dumps(to_ui_json(graph), indent=1) + "\n", encoding="utf-8")
        print(f"wrote {path.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
