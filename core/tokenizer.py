"""SentencePiece tokenizer of UMT5, read from the `spiece_model` tensor the Comfy-Org text-encoder files carry.

Special ids follow umT5: pad 0, EOS 1 (appended to every prompt), unk 2, no BOS. Prompts are cleaned the way
Wan's reference does (`wan/modules/tokenizers.py`, clean="whitespace"): HTML entities unescaped, runs of
whitespace collapsed, ends stripped. No lowercasing here: each SentencePiece model applies the normalization
stored in it (umT5's keeps case; the embedded model's folds it, see `train_spiece_model`). Wan also runs
`ftfy.fix_text` (mojibake repair), which is not a dependency here: correctly encoded text is unaffected.
"""
import html
import io
import re
from pathlib import Path

import torch

from .errors import SpacetimeError

PAD_ID = 0
EOS_ID = 1
UNK_ID = 2
SPIECE_KEY = "spiece_model"


def clean_prompt(text: str) -> str:
    """Wan's whitespace cleaning: unescape HTML entities (twice, for double-escaped text), collapse whitespace."""
    text = html.unescape(html.unescape(text))
    return re.sub(r"\s+", " ", text).strip()


def spiece_tensor(model_proto: bytes) -> torch.Tensor:
    """The serialized SentencePiece model as the uint8 tensor stored under `spiece_model` in a checkpoint."""
    return torch.frombuffer(bytearray(model_proto), dtype=torch.uint8)


def train_spiece_model(sentences, vocab_size: int, seed_words: int = 0) -> bytes:
    """Train a small unigram SentencePiece model with umT5's special ids; returns the serialized model.

    `sentences` is any iterable of strings. Used by the embedded model's training and by the tests.
    `seed_words` > 0 sets SentencePiece's seed sentencepiece size, for corpora too small for the default.
    The model folds case as it encodes (SentencePiece's `nmt_nfkc_cf` rule, stored in the model): a corpus in
    lower case, like the world's captions, would otherwise read each capital of "A Red Circle" as an unknown token.
    """
    import sentencepiece

    writer = io.BytesIO()
    options = dict(
        sentence_iterator=iter(sentences), model_writer=writer, vocab_size=vocab_size, model_type="unigram",
        pad_id=PAD_ID, eos_id=EOS_ID, unk_id=UNK_ID, bos_id=-1, hard_vocab_limit=False,
        normalization_rule_name="nmt_nfkc_cf", num_threads=1, minloglevel=2,
    )
    if seed_words > 0:
        options["seed_sentencepiece_size"] = seed_words
    sentencepiece.SentencePieceTrainer.train(**options)
    return writer.getvalue()


class Tokenizer:
    """UMT5 tokenizer: prompts -> (input_ids [B, L], attention_mask [B, L]) with L = max(longest, min_length)."""

    def __init__(self, model_proto: bytes):
        import sentencepiece

        self.processor = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
        self._check_special_ids()

    def _check_special_ids(self):
        found = (self.processor.pad_id(), self.processor.eos_id(), self.processor.bos_id())
        if found != (PAD_ID, EOS_ID, -1):
            raise SpacetimeError(
                f"the SentencePiece model has pad/eos/bos ids {found}, but UMT5 expects ({PAD_ID}, {EOS_ID}, -1); "
                "use the tokenizer that was trained with this text encoder (the `spiece_model` of its file)")

    @property
    def vocab_size(self) -> int:
        return self.processor.get_piece_size()

    def serialize(self) -> bytes:
        return self.processor.serialized_model_proto()

    def ids(self, prompt: str) -> list[int]:
        """Token ids of one cleaned prompt with the EOS appended; never truncated."""
        return self.processor.encode(clean_prompt(prompt)) + [EOS_ID]

    def __call__(self, prompts: list[str], min_length: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(prompts, str):
            raise SpacetimeError("tokenize got one string, expected a list of prompts; wrap it: [prompt]")
        rows = [self.ids(p) for p in prompts]
        length = max([min_length] + [len(r) for r in rows])
        input_ids = torch.full((len(rows), length), PAD_ID, dtype=torch.long)  # (B, L)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)  # (B, L)
        for i, row in enumerate(rows):
            input_ids[i, :len(row)] = torch.tensor(row)
            attention_mask[i, :len(row)] = 1
        return input_ids, attention_mask


def read_tokenizer_file(path) -> Tokenizer:
    """A tokenizer from a SentencePiece `spiece.model` file or a safetensors file holding a `spiece_model` tensor."""
    path = Path(path)
    if not path.is_file():
        raise SpacetimeError(f"tokenizer file {path} does not exist; pass a SentencePiece spiece.model file "
                             "or a umt5_xxl_*.safetensors that contains `spiece_model`")
    if path.suffix == ".safetensors":
        return _tokenizer_from_safetensors(path)
    try:
        return Tokenizer(path.read_bytes())
    except RuntimeError as error:
        raise SpacetimeError(f"{path} is not a SentencePiece model ({error}); expected a spiece.model file "
                             "(a HuggingFace tokenizer.json is not accepted)") from error


def _tokenizer_from_safetensors(path: Path) -> Tokenizer:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        if SPIECE_KEY not in f.keys():
            raise SpacetimeError(f"{path} has no `{SPIECE_KEY}` tensor; expected a text-encoder file that embeds "
                                 "its tokenizer, or a SentencePiece spiece.model file")
        return Tokenizer(f.get_tensor(SPIECE_KEY).numpy().tobytes())
