"""ComfyUI-Spacetime: Sora-style spacetime-patch video generation for ComfyUI.

Importing this package is cheap: it registers node classes and the web folder; no model loads here.
"""
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
