"""Presets of the Comfy-Org repackaged Wan files, fetched with huggingface-hub into ComfyUI's model folders.

Each file goes to `<models_dir>/<folder>/<file name>` (folders: diffusion_models, text_encoders, vae,
clip_vision), the names ComfyUI workflows refer to. hf_hub_download does the transfer (token, retries, in-process resume with HTTP Range,
size check); the finished file is then checked against the hub's own SHA-256 (the ETag of LFS files) before it is
moved into place, so a model folder never holds a partial or corrupt file. Files already present are skipped.
`HF_ENDPOINT` (read at call time) points it at a mirror; `HF_TOKEN` or `token=` authenticates.
"""
import argparse
import hashlib
import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .errors import SpacetimeError

WAN21_REPO = "Comfy-Org/Wan_2.1_ComfyUI_repackaged"
WAN22_REPO = "Comfy-Org/Wan_2.2_ComfyUI_Repackaged"
DEFAULT_ENDPOINT = "https://huggingface.co"
STAGING_DIR = ".spacetime-download"  # inside models_dir: same file system, so the final move is a rename
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class HubFile:
    repo_id: str
    path: str  # inside the repository
    folder: str  # ComfyUI model folder it belongs in

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def url(self, endpoint: str) -> str:
        return f"{endpoint}/{self.repo_id}/resolve/main/{self.path}"


@dataclass(frozen=True)
class DownloadPreset:
    description: str
    files: tuple[HubFile, ...]


def _wan21(folder: str, name: str) -> HubFile:
    return HubFile(WAN21_REPO, f"split_files/{folder}/{name}", folder)


def _wan22(folder: str, name: str) -> HubFile:
    return HubFile(WAN22_REPO, f"split_files/{folder}/{name}", folder)


UMT5_FP8 = _wan21("text_encoders", "umt5_xxl_fp8_e4m3fn_scaled.safetensors")
UMT5_FP16 = _wan21("text_encoders", "umt5_xxl_fp16.safetensors")
WAN21_VAE = _wan21("vae", "wan_2.1_vae.safetensors")
WAN22_VAE = _wan22("vae", "wan2.2_vae.safetensors")
CLIP_VISION_H = _wan21("clip_vision", "clip_vision_h.safetensors")  # Wan 2.1 I2V / FLF2V read images through it


def _a14b(task: str) -> tuple[HubFile, ...]:
    experts = (_wan22("diffusion_models", f"wan2.2_{task}_{noise}_noise_14B_fp8_scaled.safetensors")
               for noise in ("high", "low"))
    return (*experts, UMT5_FP8, WAN21_VAE)  # the A14B experts use the Wan 2.1 VAE


def _image_model(name: str) -> tuple[HubFile, ...]:
    return (_wan21("diffusion_models", name), UMT5_FP8, WAN21_VAE, CLIP_VISION_H)


DOWNLOAD_PRESETS: dict[str, DownloadPreset] = {
    "wan2.1-t2v-1.3b": DownloadPreset("Wan 2.1 text-to-video 1.3B (fp16) + text encoder + VAE", (
        _wan21("diffusion_models", "wan2.1_t2v_1.3B_fp16.safetensors"), UMT5_FP8, WAN21_VAE)),
    "wan2.2-ti2v-5b": DownloadPreset("Wan 2.2 text/image-to-video 5B (fp16) + text encoder + Wan 2.2 VAE", (
        _wan22("diffusion_models", "wan2.2_ti2v_5B_fp16.safetensors"), UMT5_FP8, WAN22_VAE)),
    "wan2.2-t2v-a14b": DownloadPreset("Wan 2.2 text-to-video A14B high+low noise experts (fp8_scaled)", _a14b("t2v")),
    "wan2.2-i2v-a14b": DownloadPreset("Wan 2.2 image-to-video A14B high+low noise experts (fp8_scaled)", _a14b("i2v")),
    "wan2.1-i2v-14b-480p": DownloadPreset("Wan 2.1 image-to-video 14B 480p (fp8_scaled) + text encoder + VAE + "
                                          "CLIP vision", _image_model("wan2.1_i2v_480p_14B_fp8_scaled.safetensors")),
    "wan2.1-i2v-14b-720p": DownloadPreset("Wan 2.1 image-to-video 14B 720p (fp8_scaled) + text encoder + VAE + "
                                          "CLIP vision", _image_model("wan2.1_i2v_720p_14B_fp8_scaled.safetensors")),
    "wan2.1-flf2v-14b": DownloadPreset("Wan 2.1 first-last-frame-to-video 14B 720p (fp8) + text encoder + VAE + "
                                       "CLIP vision", _image_model("wan2.1_flf2v_720p_14B_fp8_e4m3fn.safetensors")),
    "wan2.1-vace-1.3b": DownloadPreset("Wan 2.1 VACE 1.3B (fp16) + text encoder + VAE", (
        _wan21("diffusion_models", "wan2.1_vace_1.3B_fp16.safetensors"), UMT5_FP8, WAN21_VAE)),
    "wan2.1-vace-14b": DownloadPreset("Wan 2.1 VACE 14B (fp16) + text encoder + VAE", (
        _wan21("diffusion_models", "wan2.1_vace_14B_fp16.safetensors"), UMT5_FP8, WAN21_VAE)),
    "umt5-xxl": DownloadPreset("UMT5-XXL text encoder (fp8_scaled)", (UMT5_FP8,)),
    "umt5-xxl-fp16": DownloadPreset("UMT5-XXL text encoder (fp16)", (UMT5_FP16,)),
    "wan2.1-vae": DownloadPreset("Wan 2.1 VAE (z16; 2.1 models and the 2.2 A14B experts)", (WAN21_VAE,)),
    "wan2.2-vae": DownloadPreset("Wan 2.2 VAE (z48; TI2V 5B)", (WAN22_VAE,)),
    "clip-vision-h": DownloadPreset("CLIP vision ViT-H/14 (Wan 2.1 I2V / FLF2V)", (CLIP_VISION_H,)),
}


def download_preset(name: str, models_dir, token: str | None = None, progress: bool = True) -> list[Path]:
    """Fetch every file of a preset into `models_dir/<folder>/`; returns their paths (present ones are kept)."""
    if name not in DOWNLOAD_PRESETS:
        raise SpacetimeError(f"unknown download preset '{name}'; expected one of {', '.join(DOWNLOAD_PRESETS)} "
                             "(`spacetime download --list` describes them)")
    models_dir = Path(models_dir)
    endpoint = os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")
    files = DOWNLOAD_PRESETS[name].files
    paths = [_fetch(f, files, models_dir, token, endpoint, progress) for f in files]
    shutil.rmtree(models_dir / STAGING_DIR, ignore_errors=True)
    return paths


def target_path(file: HubFile, models_dir: Path) -> Path:
    return models_dir / file.folder / file.name


def _fetch(file: HubFile, preset_files, models_dir: Path, token, endpoint: str, progress: bool) -> Path:
    target = target_path(file, models_dir)
    if target.is_file():
        return target
    from huggingface_hub import hf_hub_download

    expected = _hub_metadata(file, preset_files, models_dir, token, endpoint)
    with _hub_errors(file, preset_files, models_dir, endpoint):
        staged = Path(hf_hub_download(file.repo_id, file.path, local_dir=models_dir / STAGING_DIR, token=token,
                                      endpoint=endpoint, tqdm_class=None if progress else _SilentTqdm))
    _verify(staged, expected, file)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, target)
    return target


def _hub_metadata(file: HubFile, preset_files, models_dir: Path, token, endpoint: str):
    """One HEAD request, without retries, so a machine without network gets the manual instructions at once."""
    from huggingface_hub import get_hf_file_metadata

    with _hub_errors(file, preset_files, models_dir, endpoint):
        return get_hf_file_metadata(file.url(endpoint), token=token, endpoint=endpoint)


def _verify(staged: Path, expected, file: HubFile) -> None:
    """Size, and SHA-256 where the hub's ETag is one (LFS files); a bad file is deleted so a rerun fetches it anew."""
    problem = None
    if expected.size is not None and staged.stat().st_size != expected.size:
        problem = f"{staged.stat().st_size} bytes, expected {expected.size}"
    elif expected.etag and _SHA256.match(expected.etag) and _sha256(staged) != expected.etag:
        problem = f"SHA-256 differs from the hub's {expected.etag}"
    if problem:
        staged.unlink()
        raise SpacetimeError(f"downloaded {file.name} is corrupt ({problem}); it was deleted, run the download again")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 23):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def _hub_errors(file: HubFile, preset_files, models_dir: Path, endpoint: str):
    """Turn huggingface-hub failures into a SpacetimeError that says what to do."""
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        yield
    except _network_errors() as error:
        status = getattr(getattr(error, "response", None), "status_code", None)
        if isinstance(error, GatedRepoError) or status in (401, 403):
            raise SpacetimeError(f"{endpoint} refused {file.repo_id} ({status}): pass --token / token= or set "
                                 "HF_TOKEN to a Hugging Face token that can read it") from error
        if isinstance(error, RepositoryNotFoundError) or status == 404:
            raise SpacetimeError(f"{file.url(endpoint)} was not found (404); the preset may be out of date, "
                                 f"download the file by hand:\n{_manual(preset_files, models_dir)}") from error
        if isinstance(error, HfHubHTTPError):
            raise SpacetimeError(f"{endpoint} answered {status} for {file.name} ({error}); try again later, or "
                                 f"place the files by hand:\n{_manual(preset_files, models_dir)}") from error
        raise SpacetimeError(f"could not reach {endpoint} ({type(error).__name__}: {error}). Without network, "
                             f"download these files elsewhere and place them:\n{_manual(preset_files, models_dir)}"
                             ) from error


def _network_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    errors = (HfHubHTTPError, LocalEntryNotFoundError, ConnectionError, TimeoutError)
    try:  # huggingface-hub >= 2 speaks httpx2, whose transport errors are not OSErrors; older versions use requests
        import httpx2
    except ImportError:
        return errors
    return (*errors, httpx2.TransportError)


def _manual(preset_files, models_dir: Path) -> str:
    missing = [f for f in preset_files if not target_path(f, models_dir).is_file()]
    return "\n".join(f"  {f.url(DEFAULT_ENDPOINT)}\n    -> {target_path(f, models_dir)}" for f in missing)


class _SilentTqdm(tqdm):
    """The progress bar huggingface-hub draws, switched off (progress=False)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{**kwargs, "disable": True})


# ---------------------------------------------------------------------------------------------------------------------
# CLI: spacetime download <preset> [--models-dir D] [--token T] [--list]
# ---------------------------------------------------------------------------------------------------------------------


def add_download_command(subparsers) -> argparse.ArgumentParser:
    """Register `download` on the `spacetime` CLI; the parsed args' `func(args)` runs it and returns an exit code."""
    parser = subparsers.add_parser("download", help="fetch Comfy-Org Wan files into ComfyUI's model folders",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("preset", nargs="?", choices=sorted(DOWNLOAD_PRESETS), metavar="PRESET",
                        help="what to fetch; --list shows the presets")
    parser.add_argument("--models-dir", type=Path, default=None,
                        help="ComfyUI's models directory (default: $SPACETIME_MODELS_DIR, else ./models)")
    parser.add_argument("--token", default=None, help="Hugging Face token (default: $HF_TOKEN or a saved login)")
    parser.add_argument("--list", action="store_true", help="list the presets and their files, then exit")
    parser.set_defaults(func=run_download_command)
    return parser


def run_download_command(args) -> int:
    if args.list or args.preset is None:
        print(describe_presets())
        return 0
    models_dir = args.models_dir or Path(os.environ.get("SPACETIME_MODELS_DIR", "models"))
    for path in download_preset(args.preset, models_dir, token=args.token):
        print(path)
    return 0


def describe_presets() -> str:
    lines = []
    for name, preset in DOWNLOAD_PRESETS.items():
        lines.append(f"{name}: {preset.description}")
        lines.extend(f"    {f.folder}/{f.name}" for f in preset.files)
    return "\n".join(lines)
