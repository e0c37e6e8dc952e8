
from .text_encoder import load_text_encoder
