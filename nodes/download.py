"""Download Model: fetch the Comfy-Org files of a preset into the model folders, from inside the graph."""
from ..core.download import DOWNLOAD_PRESETS, download_preset
from ..core.paths import download_dir


class SpacetimeDownloadModel:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "preset": (list(DOWNLOAD_PRESETS), {"tooltip": "What to fetch from Hugging Face: "
                    + "; ".join(f"{name}: {preset.description}" for name, preset in DOWNLOAD_PRESETS.items())}),
            },
            "optional": {
                "token": ("STRING", {"default": "", "tooltip":
                    "Hugging Face token, for gated repositories; empty uses $HF_TOKEN or a saved login."}),
            },
        }

    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("paths",)
    OUTPUT_NODE = True
    FUNCTION = "download"
    CATEGORY = "Spacetime/loaders"
    DESCRIPTION = ("Downloads a preset's files (resumable, checked against the hub's hashes) into the models "
                   "folders the loaders list; files already there are kept. Refresh the page to see them.")

    def download(self, preset, token=""):
        paths = download_preset(preset, download_dir(), token=token.strip() or None)
        return ("\n".join(str(path) for path in paths),)
