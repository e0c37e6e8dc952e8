"""Load Video and Save Video: mp4 files <-> IMAGE frames, with the workflow in the file and optional provenance."""
import json
from pathlib import Path

import torch

from ..core.errors import SpacetimeError
from ..core.paths import input_dir, output_dir, safe_output_path
from ..core.video import DEFAULT_CRF, read_mp4, write_mp4

VIDEO_EXTENSIONS = (".mp4", ".mov", ".webm", ".mkv", ".avi", ".gif")
WATERMARKS = ["none", "visible", "invisible", "both"]


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
                    "visible: a moving text mark; invisible: a mark a detector can read back "
                    "(spacetime detect-watermark); both; none leaves the pixels as they are."}),
                "watermark_text": ("STRING", {"default": "AI generated", "tooltip":
                    "Text of the visible mark and payload of the invisible one."}),
                "sign_c2pa": ("BOOLEAN", {"default": False, "tooltip":
                    "Embed a signed C2PA manifest (made by a trained algorithm, the model's name and hash). "
                    "Without a certificate a local self-signed one is made: viewers show it as untrusted."}),
                "include_prompt_in_manifest": ("BOOLEAN", {"default": False, "tooltip":
                    "Also put the prompt text into the C2PA manifest (off: the prompt stays private)."}),
            },
            "optional": {
                "model": ("SPACETIME_MODEL", {"tooltip": "The model that made the video, named with its hash in "
                                                         "the C2PA manifest."}),
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
             include_prompt_in_manifest, model=None, prompt=None, extra_pnginfo=None):
        path = safe_output_path(filename_prefix, "mp4")
        frames = apply_watermark(images, watermark, watermark_text, fps)
        write_mp4(path, frames, fps, crf, workflow_metadata(prompt, extra_pnginfo))
        if sign_c2pa:
            sign_video(path, model, prompt if include_prompt_in_manifest else None)
        return {"ui": {"images": [saved_result(path)], "animated": (True,)}, "result": (str(path),)}


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


def apply_watermark(images: torch.Tensor, watermark: str, text: str, fps: float) -> torch.Tensor:
    from ..provenance import watermark as marks

    if watermark in ("visible", "both"):
        images = marks.add_visible(images, text)
    if watermark in ("invisible", "both"):
        images = marks.embed_invisible(images, text)
    return images


def sign_video(path: Path, model, prompt: dict | None) -> None:
    from ..provenance import c2pa_sign

    c2pa_sign.sign_mp4(path, model=model, prompt=prompt)
