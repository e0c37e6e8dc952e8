
from .text_encoder import load_text_encoder
from .loaders import SpacetimeModel, load_dit, load_model
