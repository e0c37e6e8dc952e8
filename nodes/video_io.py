"""Load Video and Save Video: mp4 files <-> IMAGE frames, with the workflow in the file and optional provenance."""
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core.errors import SpacetimeError
from ..core.paths import input_dir, output_dir, safe_output_path
from ..core.video import DEFAULT_CRF, read_mp4, write_mp4
from ..provenance import add_visible_watermark, embed_invisible_watermark, sign_video

VIDEO_EXTENSIONS = (".mp4", ".mov", ".webm", ".mkv", ".avi", ".gif")
WATERMARKS = ["none", "visible", "invisible", "both"]
INVISIBLE_PAYLOAD = "STM"  # the payload the pack's detector reports for Save Video's own mark (6 bytes at most)


def _video_files() -> list[str]:
    folder = input_dir()
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())


def resolve_video(name: str) -> Path:
    """A file name in the input folder, or a path to an existing file."""
    for candidate in (input_dir() / name, Path(name).expanduser()):
        if candidate.is_file():
            return candidate
    raise SpacetimeError(f"video '{name}' was not found in the input folder {input_dir()} nor as a path; "
                         f"expected a video file; upload it or give its full path")


class SpacetimeLoadVideo:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "video": (_video_files(), {"video_upload": True, "tooltip":
                "A video from ComfyUI's input folder (upload one with the button), or a path when run standalone."}),
        }}

    RETURN_TYPES = ("IMAGE", "FLOAT", "INT")
    RETURN_NAMES = ("images", "fps", "frame_count")
    FUNCTION = "load"
    CATEGORY = "Spacetime/video"
    DESCRIPTION = "Reads every frame of a video file as IMAGE frames [T, H, W, 3] in 0..1, with its frame rate."

    @classmethod
    def IS_CHANGED(cls, video):
        return resolve_video(video).stat().st_mtime

    def load(self, video):
        frames, fps = read_mp4(resolve_video(video))
        return (frames, fps, frames.shape[0])


class SpacetimeSaveVideo:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The frames of the video, e.g. from Spacetime VAE Decode."}),
                "fps": ("FLOAT", {"default": 16.0, "min": 1.0, "max": 120.0, "step": 1.0, "tooltip":
                    "Frame rate of the mp4: 16 for Wan 2.1, 24 for Wan 2.2 TI2V 5B, 8 for spacetime-mini."}),
                "filename_prefix": ("STRING", {"default": "Spacetime", "tooltip":
                    "File name start, inside the output folder; may hold subfolders ('video/clip'). A counter is "
                    "appended and files are never overwritten; '..' and absolute paths are refused."}),
                "crf": ("INT", {"default": DEFAULT_CRF, "min": 0, "max": 51, "tooltip":
                    "h264 quality: lower is better and larger (0 lossless, 18-23 typical, 51 worst)."}),
                "watermark": (WATERMARKS, {"default": "none", "tooltip":
                    f"visible: watermark_text moving over the clip; invisible: a mark carrying '{INVISIBLE_PAYLOAD}' "
                    "that `spacetime detect-watermark` finds (for another payload use Spacetime Watermark before "
                    "this node); both; none leaves the pixels as they are."}),
                "watermark_text": ("STRING", {"default": "AI-generated", "tooltip": "Text of the visible mark."}),
                "sign_c2pa": ("BOOLEAN", {"default": False, "tooltip":
                    "Embed a signed C2PA manifest: made by a trained algorithm, with the model's file name and "
                    "sha256 (connect the model). Without c2pa_cert/c2pa_key a local self-signed identity is made "
                    "and viewers show the signer as untrusted."}),
                "include_prompt_in_manifest": ("BOOLEAN", {"default": False, "tooltip":
                    "Also write the prompt (from the connected conditioning) into the C2PA manifest; off keeps "
                    "the prompt private."}),
            },
            "optional": {
                "model": ("SPACETIME_MODEL", {"tooltip": "The model that made the video, named with its hash in "
                                                         "the C2PA manifest (needed for sign_c2pa)."}),
                "conditioning": ("SPACETIME_CONDITIONING", {"tooltip":
                    "The prompt that made the video, for include_prompt_in_manifest."}),
                "c2pa_cert": ("STRING", {"default": "", "tooltip":
                    "PEM certificate chain to sign with (leaf first); empty uses the local self-signed identity."}),
                "c2pa_key": ("STRING", {"default": "", "tooltip": "PEM private key of c2pa_cert."}),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    OUTPUT_NODE = True
    FUNCTION = "save"
    CATEGORY = "Spacetime/video"
    DESCRIPTION = ("Saves the frames as an mp4 (h264) in the output folder with the workflow inside, so dropping "
                   "the file on the canvas restores the graph; optional watermark and C2PA signature.")

    def save(self, images, fps, filename_prefix, crf, watermark, watermark_text, sign_c2pa,
             include_prompt_in_manifest, model=None, conditioning=None, c2pa_cert="", c2pa_key="", prompt=None,
             extra_pnginfo=None):
        signing = None
        if sign_c2pa:
            recorded = None
            if include_prompt_in_manifest and conditioning is not None:
                recorded = "\n".join(conditioning.prompts)
            signing = Signing.for_model(model, recorded, c2pa_cert, c2pa_key)
        path = safe_output_path(filename_prefix, "mp4")
        save_video(path, images, fps, crf, watermark, watermark_text, workflow_metadata(prompt, extra_pnginfo), signing)
        return {"ui": {"images": [saved_result(path)], "animated": (True,)}, "result": (str(path),)}


@dataclass(frozen=True)
class Signing:
    """What a C2PA manifest records and who signs it (cert/key None: the local self-signed identity)."""
    model_name: str
    model_sha256: str
    prompt: str | None = None
    cert: str | None = None
    key: str | None = None
    loras: tuple[tuple[str, str, float], ...] = ()  # (file name, sha256, strength)

    @classmethod
    def for_model(cls, model, prompt: str | None = None, cert: str = "", key: str = "") -> "Signing":
        """The first file of the model (the high-noise expert of an A14B pair) names it in the manifest, with the
        LoRAs it ran with; `prompt` is recorded when given."""
        if model is None:
            raise SpacetimeError("sign_c2pa is on but no model is connected; the manifest names the model that "
                                 "made the video: connect the model to Save Video, or turn sign_c2pa off")
        loras = tuple((lora.name, lora.sha256, strength) for lora, strength, _ in model.loras)
        return cls(model.file_names[0], model.sha256[0], prompt, cert.strip() or None, key.strip() or None, loras)


def save_video(path: Path, images: torch.Tensor, fps: float, crf: int = DEFAULT_CRF, watermark: str = "none",
               watermark_text: str = "AI-generated", metadata: dict[str, str] | None = None,
               signing: Signing | None = None) -> Path:
    """Watermark (optional), write the mp4 with its metadata, then sign it in place (optional)."""
    if watermark not in WATERMARKS:
        raise SpacetimeError(f"watermark '{watermark}' is unknown; expected one of {', '.join(WATERMARKS)}")
    if watermark in ("visible", "both"):
        images = add_visible_watermark(images, watermark_text)
    if watermark in ("invisible", "both"):
        images = embed_invisible_watermark(images, INVISIBLE_PAYLOAD)
    write_mp4(path, images, fps, crf, metadata)
    if signing is not None:
        sign_video(path, path, signing.model_name, signing.model_sha256, signing.prompt, signing.cert, signing.key,
                   loras=signing.loras)
    return path


def workflow_metadata(prompt: dict | None, extra_pnginfo: dict | None) -> dict[str, str]:
    """ComfyUI's keys in a saved file: `prompt` (API graph) and each extra_pnginfo entry (`workflow`), as JSON."""
    metadata = {key: json.dumps(value) for key, value in (extra_pnginfo or {}).items()}
    if prompt is not None:
        metadata["prompt"] = json.dumps(prompt)
    return metadata


def saved_result(path: Path) -> dict:
    """The entry the frontend uses to fetch an output file through /view."""
    subfolder = path.parent.resolve().relative_to(output_dir().resolve()).as_posix()
    return {"filename": path.name, "subfolder": "" if subfolder == "." else subfolder, "type": "output"}
