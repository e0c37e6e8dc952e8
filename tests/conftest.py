"""Shared fixtures: throwaway model/input/output folders and tiny random-weight model files.

Model files are written in the exact key layout of the real checkpoints and read back through the pack's own
loaders, so the node tests exercise the same code paths as real Wan files, at a size that runs in seconds.
"""
from types import SimpleNamespace

import pytest

from comfyui_spacetime.core.paths import INPUT_DIR_ENV, MODELS_DIR_ENV, MODEL_FOLDERS, OUTPUT_DIR_ENV
from tests import tiny_dit, tiny_te, tiny_vae


@pytest.fixture
def pack_dirs(tmp_path, monkeypatch):
    """Empty models (with ComfyUI's subfolders), input and output folders, pointed at by the pack's env vars."""
    dirs = SimpleNamespace(models=tmp_path / "models", input=tmp_path / "input", output=tmp_path / "output")
    for folder in MODEL_FOLDERS:
        (dirs.models / folder).mkdir(parents=True)
    dirs.input.mkdir()
    monkeypatch.setenv(MODELS_DIR_ENV, str(dirs.models))
    monkeypatch.setenv(INPUT_DIR_ENV, str(dirs.input))
    monkeypatch.setenv(OUTPUT_DIR_ENV, str(dirs.output))
    return dirs


@pytest.fixture
def tiny_models(pack_dirs) -> SimpleNamespace:
    """File names (in the pack_dirs model folders) of a tiny Wan 2.1 T2V DiT, UMT5 text encoder and Wan 2.1 VAE
    that fit together: text width 32, 16 latent channels. Random weights, real key layouts."""
    te_config = tiny_te.tiny_config()
    tiny_te.write_te(pack_dirs.models / "text_encoders" / "tiny_umt5.safetensors", te_config,
                     tiny_te.random_state_dict(te_config))
    dit = tiny_dit.tiny_dit("t2v", text_dim=te_config.d_model)
    tiny_dit.save_dit(pack_dirs.models / "diffusion_models" / "tiny_t2v.safetensors", dit)
    tiny_vae.save_vae(tiny_vae.random_vae(tiny_vae.TINY_21), pack_dirs.models / "vae" / "tiny_wan21_vae.safetensors")
    return SimpleNamespace(dit="tiny_t2v.safetensors", text_encoder="tiny_umt5.safetensors",
                           vae="tiny_wan21_vae.safetensors")
