"""The one module that meets the host: inside ComfyUI it defers to `comfy`, outside it decides for itself.

ComfyUI has always imported `comfy.model_management` before it loads custom nodes, so its presence in
`sys.modules` tells the two cases apart without importing anything. Every `comfy` import stays inside a
function: importing this module never touches ComfyUI, a GPU, or the file system.
"""
import sys

import torch
from tqdm import tqdm

PREVIEW_FORMAT = "JPEG"
DEFAULT_PREVIEW_SIZE = 512


def inside_comfyui() -> bool:
    """True when this process is a ComfyUI server that loaded the pack as a custom node."""
    return "comfy.model_management" in sys.modules


def _model_management():
    import comfy.model_management

    return comfy.model_management


def get_device() -> torch.device:
    """The device to compute on: ComfyUI's choice inside it, else CUDA, then MPS, then the CPU."""
    if inside_comfyui():
        return _model_management().get_torch_device()
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_name(device: torch.device | str) -> str:
    """What a benchmark row or a log line calls `device`: the GPU's model, or the CPU and its torch threads."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        return f"CPU ({torch.get_num_threads()} threads)"
    return device.type.upper()


def free_memory(device: torch.device) -> int:
    """Bytes free on `device` (for block swap and tile sizes); ComfyUI counts its own cached models too."""
    if inside_comfyui():
        return int(_model_management().get_free_memory(device))
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "mps":
        return int(torch.mps.recommended_max_memory() - torch.mps.current_allocated_memory())
    return _available_ram()


def _available_ram() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # the kernel reports kB
    raise OSError("/proc/meminfo has no MemAvailable line")


def check_interrupt() -> None:
    """Raise ComfyUI's interrupt exception when the user pressed Cancel; outside ComfyUI Ctrl-C does that."""
    if inside_comfyui():
        _model_management().throw_exception_if_processing_interrupted()


class Progress:
    """A progress bar: ComfyUI's (with a preview image on the node) inside it, tqdm outside.

    Use as a context manager and call it as `progress(step, total, preview)` with the number of steps done,
    the total (it may grow, e.g. when a long video adds windows) and optionally RGB frames [T, H, W, 3] in
    0..1, of which the middle frame is shown. Each call first honours ComfyUI's Cancel button.
    """

    def __init__(self, description: str = ""):
        self.description = description
        self._bar = None

    def __enter__(self) -> "Progress":
        if inside_comfyui():
            import comfy.utils

            self._bar = comfy.utils.ProgressBar(1)
        else:
            self._bar = tqdm(desc=self.description, leave=False, file=sys.stderr)
        return self

    def __call__(self, step: int, total: int, preview: torch.Tensor | None = None) -> None:
        check_interrupt()
        if isinstance(self._bar, tqdm):
            self._bar.total = total
            self._bar.update(step - self._bar.n)
            return
        image = None if preview is None else (PREVIEW_FORMAT, _preview_image(preview), _preview_size())
        self._bar.update_absolute(step, total, image)

    def __exit__(self, *exc_info) -> None:
        if isinstance(self._bar, tqdm):
            self._bar.close()


def _preview_image(frames: torch.Tensor):
    """The middle frame of [T, H, W, 3] in 0..1 as a PIL image, the form ComfyUI sends to the browser."""
    from PIL import Image

    frame = frames[frames.shape[0] // 2]  # (H, W, 3)
    return Image.fromarray((frame.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy())


def _preview_size() -> int:
    """ComfyUI's --preview-size (the longest side of a preview image it sends to the browser)."""
    import comfy.cli_args

    return getattr(comfy.cli_args.args, "preview_size", DEFAULT_PREVIEW_SIZE)
