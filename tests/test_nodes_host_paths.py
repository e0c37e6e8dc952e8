"""core/host.py and core/paths.py, standalone and inside a (faked) ComfyUI."""
import sys
from types import ModuleType, SimpleNamespace

import pytest
import torch

from comfyui_spacetime.core import host, paths
from comfyui_spacetime.core.errors import SpacetimeError


class FakeProgressBar:
    updates = []

    def __init__(self, total):
        self.total, self.current = total, 0

    def update_absolute(self, value, total=None, preview=None):
        self.current = value
        FakeProgressBar.updates.append((value, total, preview))


@pytest.fixture
def fake_comfyui(monkeypatch, tmp_path):
    """comfy.model_management, comfy.utils, comfy.cli_args and folder_paths as ComfyUI would have them loaded."""
    interrupted = SimpleNamespace(flag=False)

    def throw_if_interrupted():
        if interrupted.flag:
            raise InterruptedError("Processing interrupted")

    modules = {
        "comfy": ModuleType("comfy"),
        "comfy.model_management": SimpleNamespace(
            get_torch_device=lambda: torch.device("cpu"), get_free_memory=lambda device: 123,
            throw_exception_if_processing_interrupted=throw_if_interrupted),
        "comfy.utils": SimpleNamespace(ProgressBar=FakeProgressBar),
        "comfy.cli_args": SimpleNamespace(args=SimpleNamespace(preview_size=256)),
        "folder_paths": SimpleNamespace(
            get_filename_list=lambda folder: [f"{folder}.safetensors"],
            get_full_path=lambda folder, name: str(tmp_path / name) if name == f"{folder}.safetensors" else None,
            get_folder_paths=lambda folder: [str(tmp_path / folder)],
            get_output_directory=lambda: str(tmp_path / "comfy_output"),
            get_input_directory=lambda: str(tmp_path / "comfy_input")),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    for key in ("utils", "cli_args", "model_management"):
        monkeypatch.setattr(modules["comfy"], key, modules[f"comfy.{key}"], raising=False)
    FakeProgressBar.updates = []
    return interrupted


def test_standalone_host_uses_torch_and_tqdm():
    assert not host.inside_comfyui()
    assert host.get_device().type in ("cpu", "cuda", "mps")
    assert host.free_memory(torch.device("cpu")) > 0
    assert host.device_name("cpu") == f"CPU ({torch.get_num_threads()} threads)"
    host.check_interrupt()
    with host.Progress("test") as progress:
        progress(1, 2)
        progress(2, 3, torch.rand(3, 4, 4, 3))
        assert progress._bar.n == 2 and progress._bar.total == 3


def test_inside_comfyui_host_defers_to_comfy(fake_comfyui):
    assert host.inside_comfyui()
    assert host.free_memory(torch.device("cpu")) == 123
    frames = torch.zeros(3, 4, 6, 3)
    frames[1] = 1.0  # the middle frame is the one shown
    with host.Progress() as progress:
        progress(1, 3)
        progress(2, 3, frames)
    (first, second) = FakeProgressBar.updates
    assert first == (1, 3, None) and second[:2] == (2, 3)
    kind, image, size = second[2]
    assert kind == "JPEG" and size == 256 and image.size == (6, 4) and image.getpixel((0, 0)) == (255, 255, 255)
    fake_comfyui.flag = True
    with pytest.raises(InterruptedError):
        host.check_interrupt()
    with pytest.raises(InterruptedError), host.Progress() as progress:
        progress(3, 3)


def test_inside_comfyui_paths_use_folder_paths(fake_comfyui, tmp_path):
    (tmp_path / "vae.safetensors").write_bytes(b"")
    assert paths.list_models("vae")[-1] == "vae.safetensors"
    assert paths.resolve_model("vae", "vae.safetensors") == tmp_path / "vae.safetensors"
    assert paths.output_dir() == tmp_path / "comfy_output"
    assert paths.safe_output_path("clip", "mp4").parent == (tmp_path / "comfy_output").resolve()


def test_standalone_model_folders(pack_dirs):
    (pack_dirs.models / "diffusion_models" / "wan").mkdir()
    (pack_dirs.models / "diffusion_models" / "wan" / "b.safetensors").write_bytes(b"")
    (pack_dirs.models / "diffusion_models" / "a.safetensors").write_bytes(b"")
    (pack_dirs.models / "diffusion_models" / "readme.txt").write_text("")
    listed = paths.list_models("diffusion_models")
    bundled = [paths.BUNDLED_FILES["diffusion_models"]] if paths.bundled_path("diffusion_models").is_file() else []
    assert listed == bundled + ["a.safetensors", "wan/b.safetensors"]
    assert paths.resolve_model("diffusion_models", "wan/b.safetensors").name == "b.safetensors"


def test_bundled_files_come_first_when_present():
    assert paths.bundled_path("loras") is None and paths.list_models("loras") == []  # no bundled LoRA
    for folder in paths.BUNDLED_FILES:
        if paths.bundled_path(folder).is_file():
            assert paths.list_models(folder)[0] == paths.BUNDLED_FILES[folder]
            assert paths.resolve_model(folder, paths.BUNDLED_FILES[folder]) == paths.bundled_path(folder)


def test_missing_model_file_names_the_folder(pack_dirs):
    with pytest.raises(SpacetimeError, match=r"'nope.safetensors' was not found in the vae folder \(.*models/vae\)"):
        paths.resolve_model("vae", "nope.safetensors")


def test_unknown_folder_is_refused():
    with pytest.raises(SpacetimeError, match="unknown model folder"):
        paths.list_models("checkpoints")
