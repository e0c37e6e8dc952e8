from .clip_vision import load_clip_vision
from .loaders import SpacetimeModel, load_dit, load_model
from .text_encoder import load_text_encoder
