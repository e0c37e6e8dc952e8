"""Where model files are found and where outputs go, inside ComfyUI (`folder_paths`) or standalone.

Model folders use ComfyUI's names (`diffusion_models`, `text_encoders`, `vae`, `loras`, `clip_vision`). The pack's bundled model
(models/spacetime-mini/) is listed first in each folder, under its bare file name. Standalone, the models
directory is `$SPACETIME_MODELS_DIR` (the CLI's --models-dir sets it) with the same subfolder names, and
outputs go to `$SPACETIME_OUTPUT_DIR` or ./output.
"""
import os
import re
from pathlib import Path

from .errors import SpacetimeError
from .host import inside_comfyui

MODEL_FOLDERS = ("diffusion_models", "text_encoders", "vae", "loras", "clip_vision")
MODEL_EXTENSIONS = (".safetensors", ".sft")
BUNDLED_DIR = Path(__file__).resolve().parents[1] / "models" / "spacetime-mini"
BUNDLED_FILES = {
    "diffusion_models": "spacetime_mini_dit.safetensors",
    "text_encoders": "spacetime_mini_umt5.safetensors",
    "vae": "spacetime_mini_vae.safetensors",
}
MODELS_DIR_ENV = "SPACETIME_MODELS_DIR"
OUTPUT_DIR_ENV = "SPACETIME_OUTPUT_DIR"
INPUT_DIR_ENV = "SPACETIME_INPUT_DIR"


def _folder_paths():
    import folder_paths

    return folder_paths


def _check_folder(folder: str) -> None:
    if folder not in MODEL_FOLDERS:
        raise SpacetimeError(f"unknown model folder '{folder}'; expected one of {', '.join(MODEL_FOLDERS)}")


def bundled_path(folder: str) -> Path | None:
    """The bundled spacetime-mini file for a model folder (it may not exist in a partial checkout); None for the
    folders spacetime-mini has no file in (loras, clip_vision)."""
    _check_folder(folder)
    return BUNDLED_DIR / BUNDLED_FILES[folder] if folder in BUNDLED_FILES else None


def _has_bundled(folder: str) -> bool:
    path = bundled_path(folder)
    return path is not None and path.is_file()


def models_dir() -> Path | None:
    """The standalone models directory, or None when neither --models-dir nor $SPACETIME_MODELS_DIR is set."""
    value = os.environ.get(MODELS_DIR_ENV)
    return Path(value).expanduser() if value else None


def _standalone_files(folder: str) -> list[str]:
    root = models_dir()
    if root is None or not (root / folder).is_dir():
        return []
    files = (p for p in (root / folder).rglob("*") if p.suffix in MODEL_EXTENSIONS and p.is_file())
    return sorted(p.relative_to(root / folder).as_posix() for p in files)


def list_models(folder: str) -> list[str]:
    """File names for a loader dropdown: the bundled file first, then the host's model folder."""
    _check_folder(folder)
    bundled = [BUNDLED_FILES[folder]] if _has_bundled(folder) else []
    if inside_comfyui():
        found = _folder_paths().get_filename_list(folder)
    else:
        found = _standalone_files(folder)
    return bundled + [name for name in found if name not in bundled]


def resolve_model(folder: str, name: str) -> Path:
    """The file behind a dropdown name (bundled first, then the model folder), or an existing path as given."""
    _check_folder(folder)
    if name == BUNDLED_FILES.get(folder) and _has_bundled(folder):
        return bundled_path(folder)
    found = _find_in_folder(folder, name)
    if found is not None:
        return found
    if Path(name).expanduser().is_file():
        return Path(name).expanduser()
    raise SpacetimeError(f"model file '{name}' was not found in the {folder} folder ({_describe_folder(folder)}); "
                         f"expected a file listed there or a path to an existing file; put the file in that folder "
                         f"or download it with `spacetime download`")


def _find_in_folder(folder: str, name: str) -> Path | None:
    if inside_comfyui():
        full = _folder_paths().get_full_path(folder, name)
        return Path(full) if full else None
    root = models_dir()
    if root is not None and (root / folder / name).is_file():
        return root / folder / name
    return None


def _describe_folder(folder: str) -> str:
    if inside_comfyui():
        return ", ".join(_folder_paths().get_folder_paths(folder))
    root = models_dir()
    return str(root / folder) if root else f"no models directory: pass --models-dir or set {MODELS_DIR_ENV}"


def download_dir() -> Path:
    """The models directory downloads go into (files land in its `<folder>/` subfolders)."""
    if inside_comfyui():
        return Path(_folder_paths().models_dir)
    return models_dir() or Path("models")


def input_dir() -> Path:
    """Where Load Video looks for file names: ComfyUI's input folder, or $SPACETIME_INPUT_DIR / ./input."""
    if inside_comfyui():
        return Path(_folder_paths().get_input_directory())
    return Path(os.environ.get(INPUT_DIR_ENV, "input"))


def output_dir() -> Path:
    """Where Save Video writes: ComfyUI's output folder, or $SPACETIME_OUTPUT_DIR (the CLI's --out) / ./output."""
    if inside_comfyui():
        return Path(_folder_paths().get_output_directory())
    return Path(os.environ.get(OUTPUT_DIR_ENV, "output"))


def safe_output_path(prefix: str, ext: str) -> Path:
    """Reserve a new empty file `<output>/<prefix>_<counter:05>_.<ext>`: it never overwrites (the file is
    created exclusively, so two writers never share a name) and never leaves the output directory.

    `prefix` may name subfolders ("video/clip"); an absolute path or a `..` part raises SpacetimeError.
    """
    relative = _check_prefix(prefix)
    root = output_dir().resolve()
    folder = (root / relative).parent
    if not folder.resolve().is_relative_to(root):
        raise SpacetimeError(f"filename_prefix '{prefix}' leads outside the output folder {root} (through a link); "
                             f"expected a name inside it; choose another prefix")
    folder.mkdir(parents=True, exist_ok=True)
    stem = relative.name
    counter = _next_counter(folder, stem, ext)
    while True:
        path = folder / f"{stem}_{counter:05}_.{ext}"
        try:
            path.open("x").close()
            return path
        except FileExistsError:
            counter += 1


def _check_prefix(prefix: str) -> Path:
    cleaned = prefix.strip().replace("\\", "/")
    if not cleaned or cleaned.endswith("/"):
        raise SpacetimeError(f"filename_prefix '{prefix}' has no file name; expected e.g. 'Spacetime' or "
                             f"'video/Spacetime'; type a name")
    relative = Path(cleaned)
    if relative.is_absolute() or cleaned.startswith("~") or ".." in relative.parts:
        raise SpacetimeError(f"filename_prefix '{prefix}' points outside the output folder; expected a name "
                             f"relative to it without '..', e.g. 'video/Spacetime'; remove the path part")
    return relative


def _next_counter(folder: Path, stem: str, ext: str) -> int:
    pattern = re.compile(rf"{re.escape(stem)}_(\d+)_\.{re.escape(ext)}")
    numbers = [int(m.group(1)) for p in folder.iterdir() if (m := pattern.fullmatch(p.name))]
    return max(numbers, default=0) + 1
