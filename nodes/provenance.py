"""Provenance nodes: prompt policy, watermark (visible/invisible), watermark detector, C2PA reader."""
from ..provenance.c2pa_manifest import read_provenance
from ..provenance.policy import enforce_policy
from ..provenance.visible_watermark import add_visible_watermark
from ..provenance.watermark import (DEFAULT_WATERMARK, describe_detection, detect_invisible_watermark,
                                    embed_invisible_watermark)
from .video_io import resolve_video

CATEGORY = "Spacetime/Provenance"
WATERMARK_MODES = ["visible", "invisible", "both"]


class SpacetimePromptPolicy:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "prompt": ("STRING", {"multiline": True, "tooltip": "The prompt to check before Text Encode."}),
            "enabled": ("BOOLEAN", {"default": True, "tooltip":
                "Off passes every prompt through unchecked."}),
            "policy_file": ("STRING", {"default": "", "tooltip":
                "Path to a policy JSON; empty uses ~/.config/comfyui-spacetime/policy.json when it exists, "
                "else the pack's default_policy.json."}),
        }}

    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("prompt",)
    FUNCTION = "check"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Passes the prompt on unchanged when the policy allows it; stops the run with a message naming "
                   "the policy category when it does not.")

    def check(self, prompt, enabled, policy_file):
        return (enforce_policy(prompt, policy_file or None) if enabled else prompt,)


class SpacetimeWatermark:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "Video frames [T, H, W, 3] to mark."}),
                "mode": (WATERMARK_MODES, {"default": "both", "tooltip":
                    "visible: a moving text/PNG mark; invisible: a hidden mark Spacetime Detect Watermark reads "
                    "back; both."}),
                "text": ("STRING", {"default": "AI-generated", "tooltip": "Text of the visible mark."}),
                "payload": ("STRING", {"default": "STM", "tooltip":
                    f"What the invisible mark carries: at most {DEFAULT_WATERMARK.payload_bytes} UTF-8 bytes."}),
            },
            "optional": {
                "mark_image": ("STRING", {"default": "", "tooltip":
                    "Path to a PNG with alpha to use as the visible mark instead of the text."}),
            },
        }

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "mark"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Adds a visible moving mark and/or an invisible mark (robust to h264, crop and frame-rate "
                   "changes at 480p; weaker at 64x64) to video frames.")

    def mark(self, images, mode, text, payload, mark_image=""):
        if mode in ("invisible", "both"):  # invisible first: the visible mark then sits on top, unaltered
            images = embed_invisible_watermark(images, payload)
        if mode in ("visible", "both"):
            images = add_visible_watermark(images, text=text, image=mark_image or None)
        return (images,)


class SpacetimeDetectWatermark:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {"tooltip": "Video frames [T, H, W, 3] to search; more frames, surer answer."}),
        }}

    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("report",)
    OUTPUT_NODE = True
    FUNCTION = "detect"
    CATEGORY = CATEGORY
    DESCRIPTION = "Looks for the pack's invisible watermark and reports presence, payload and confidence."

    def detect(self, images):
        report = describe_detection(detect_invisible_watermark(images))
        return {"ui": {"text": [report]}, "result": (report,)}


class SpacetimeReadProvenance:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "video": ("STRING", {"default": "", "tooltip":
                "An mp4 in ComfyUI's input folder, or a full path to one."}),
        }}

    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("report",)
    OUTPUT_NODE = True
    FUNCTION = "read"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Validates the C2PA manifest of an mp4 and reports what it says: generator, action, model and "
                   "hash, prompt (if recorded), signer; a file changed after signing is reported INVALID.")

    def read(self, video):
        report = read_provenance(resolve_video(video)).text()
        return {"ui": {"text": [report]}, "result": (report,)}


NODE_CLASS_MAPPINGS = {node.__name__: node for node in (
    SpacetimePromptPolicy, SpacetimeWatermark, SpacetimeDetectWatermark, SpacetimeReadProvenance)}
NODE_DISPLAY_NAME_MAPPINGS = {
    "SpacetimePromptPolicy": "Spacetime Prompt Policy",
    "SpacetimeWatermark": "Spacetime Watermark",
    "SpacetimeDetectWatermark": "Spacetime Detect Watermark",
    "SpacetimeReadProvenance": "Spacetime Read Provenance",
}
