"""Shared fixtures: throwaway model/input/output folders and tiny random-weight model files.

Model files are written in the exact key layout of the real checkpoints and read back through the pack's own
loaders, so the node tests exercise the same code paths as real Wan files, at a size that runs in seconds.
"""
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file

from comfyui_spacetime.core.paths import INPUT_DIR_ENV, MODELS_DIR_ENV, MODEL_FOLDERS, OUTPUT_DIR_ENV
from comfyui_spacetime.vae import VAEConfig, WanVAE
from tests import tiny_dit, tiny_te

TINY_VAE = {  # about 100k weights; compression (4, 8, 8) like Wan 2.1, (4, 16, 16) like Wan 2.2
    "wan2.1": VAEConfig("wan2.1", base_dim=4, decoder_base_dim=4, z_dim=16, dim_mult=(1, 2, 2, 2)),
    "wan2.2": VAEConfig("wan2.2", base_dim=4, decoder_base_dim=4, z_dim=48, dim_mult=(1, 2, 2, 2), patch_size=2),
}


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


def write_tiny_vae(path: Path, variant: str = "wan2.1", seed: int = 0) -> Path:
    """A random tiny Wan VAE saved with bare keys, as wan_2.1_vae.safetensors / wan2.2_vae.safetensors are."""
    torch.manual_seed(seed)
    vae = WanVAE(TINY_VAE[variant])
    save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, str(path))
    return path


@pytest.fixture
def tiny_models(pack_dirs) -> SimpleNamespace:
    """File names (in the pack_dirs model folders) of a tiny Wan 2.1 T2V DiT, UMT5 text encoder and Wan 2.1 VAE
    that fit together: text width 32, 16 latent channels. Random weights, real key layouts."""
    te_config = tiny_te.tiny_config()
    tiny_te.write_te(pack_dirs.models / "text_encoders" / "tiny_umt5.safetensors", te_config,
                     tiny_te.random_state_dict(te_config))
    dit = tiny_dit.tiny_dit("t2v", text_dim=te_config.d_model)
    tiny_dit.save_dit(pack_dirs.models / "diffusion_models" / "tiny_t2v.safetensors", dit)
    write_tiny_vae(pack_dirs.models / "vae" / "tiny_wan21_vae.safetensors")
    return SimpleNamespace(dit="tiny_t2v.safetensors", text_encoder="tiny_umt5.safetensors",
                           vae="tiny_wan21_vae.safetensors")
