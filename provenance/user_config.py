"""Where the pack keeps per-user files (the local signing identity, an edited prompt policy)."""
import os
from pathlib import Path

PACK_NAME = "comfyui-spacetime"


def user_config_dir() -> Path:
    """$XDG_CONFIG_HOME/comfyui-spacetime, else ~/.config/comfyui-spacetime; not created here."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / PACK_NAME
