"""DiTConfig: the shape of a Wan 2.1 / 2.2 diffusion transformer, named presets, and detection from a state dict.

Every size is read from the checkpoint's keys and shapes (never the file name), so a tiny random test model goes
through the same path as a real file. Sampling defaults live in the presets so the sampler and nodes read them
from one place; the pack's own model stores its config and defaults in the safetensors metadata instead.
"""
import dataclasses
import json
import re
from dataclasses import dataclass

from .errors import SpacetimeError

HEAD_DIM = 128  # every released Wan DiT uses 128-wide heads; num_heads = dim // 128 unless metadata says otherwise
WAN_TEXT_LEN = 512  # Wan pads every prompt to 512 tokens (its UMT5 context length)
METADATA_KEY = "spacetime_config"


@dataclass(frozen=True)
class SamplingDefaults:
    """What the reference pipelines use for a variant; `boundary` is the A14B high->low-noise expert switch."""
    shift: float
    steps: int
    cfg: float
    fps: int
    frames: int
    width: int
    height: int
    sampler: str = "unipc"
    boundary: float | None = None
    cfg_low_noise: float | None = None  # A14B uses a different guidance for its low-noise expert
    first_frame_first: bool = False  # text to video samples its first frame in a pass of its own (sampler/sample.py)
    keyframe_fit: bool = False  # the latent frames holding keyframes are fitted to decode to them (keyframe_fit.py)


@dataclass(frozen=True)
class DiTConfig:
    variant: str
    in_dim: int
    out_dim: int
    dim: int
    ffn_dim: int
    num_heads: int
    num_layers: int
    text_dim: int = 4096
    freq_dim: int = 256
    patch_size: tuple[int, int, int] = (1, 2, 2)
    eps: float = 1e-6
    vace_layers: tuple[int, ...] | None = None  # main blocks that receive a VACE hint, in hint order
    vace_in_dim: int = 96
    has_image_embedding: bool = False  # 2.1 I2V/FLF2V: CLIP-vision tokens through img_emb + k_img/v_img
    flf_pos_len: int = 0  # FLF2V: learned position embedding over the two images' 2 x 257 CLIP tokens
    per_frame_timesteps: bool = False  # one timestep per latent frame (Wan 2.2 TI2V and the pack's own model)
    # a shorter context gets zero rows up to this many tokens before the text embedding, as Wan's reference model
    # does: the rows it embeds from them are attended to, so a prompt is not the same without them (0: as given)
    text_len: int = WAN_TEXT_LEN
    sampling: SamplingDefaults | None = None

    def __post_init__(self):
        if self.dim % self.num_heads:
            raise SpacetimeError(f"DiT width {self.dim} is not divisible by num_heads {self.num_heads}; "
                                 f"set num_heads in the file's `{METADATA_KEY}` metadata.")
        if self.head_dim % 2 or self.head_dim < 6:
            raise SpacetimeError(f"DiT head dim {self.head_dim} cannot carry 3-axis RoPE; expected an even size >= 6.")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def rope_dims(self) -> tuple[int, int, int]:
        """Per-head channels given to the (t, h, w) axes: [44, 42, 42] for head_dim 128, as in the reference."""
        d = self.head_dim
        return d - 4 * (d // 6), 2 * (d // 6), 2 * (d // 6)

    @property
    def mechanism(self) -> str:
        """How known frames condition this model: per_token timesteps, concat channels, VACE, or re-noising."""
        if self.per_frame_timesteps:
            return "per_token"
        if self.vace_layers:
            return "vace"
        if self.in_dim == 2 * self.out_dim + 4:  # noise | 4-channel mask | image latent
            return "concat"
        return "renoise"

    @property
    def family(self) -> str:
        """The structural kind of model, independent of its size."""
        if self.has_image_embedding:
            return "flf2v" if self.flf_pos_len else "i2v-clip"
        if self.mechanism == "concat":
            return "i2v"
        if self.mechanism == "per_token":
            return "ti2v"
        return "vace" if self.vace_layers else "t2v"


def _wan21(**kw) -> SamplingDefaults:
    base = dict(shift=8.0, steps=50, cfg=5.0, fps=16, frames=81, width=832, height=480)
    return SamplingDefaults(**{**base, **kw})


_BIG = dict(dim=5120, ffn_dim=13824, num_heads=40, num_layers=40)
_SMALL = dict(dim=1536, ffn_dim=8960, num_heads=12, num_layers=30)

DIT_PRESETS: dict[str, DiTConfig] = {c.variant: c for c in (
    DiTConfig("wan2.1-t2v-1.3b", 16, 16, **_SMALL, sampling=_wan21()),
    DiTConfig("wan2.1-t2v-14b", 16, 16, **_BIG, sampling=_wan21(width=1280, height=720)),
    DiTConfig("wan2.2-ti2v-5b", 48, 48, dim=3072, ffn_dim=14336, num_heads=24, num_layers=30, per_frame_timesteps=True,
              sampling=_wan21(shift=5.0, fps=24, frames=121, width=1280, height=704)),
    DiTConfig("wan2.2-t2v-a14b", 16, 16, **_BIG,
              sampling=_wan21(shift=12.0, steps=40, cfg=4.0, cfg_low_noise=3.0, boundary=0.875,
                              width=1280, height=720)),
    DiTConfig("wan2.2-i2v-a14b", 36, 16, **_BIG,
              sampling=_wan21(shift=5.0, steps=40, cfg=3.5, cfg_low_noise=3.5, boundary=0.9, width=1280, height=720)),
    # Wan's generate.py: VACE and FLF2V sample at shift 16; I2V 40 steps at shift 5 (3 at 480p)
    DiTConfig("wan2.1-vace-1.3b", 16, 16, **_SMALL, vace_layers=tuple(range(0, 30, 2)), sampling=_wan21(shift=16.0)),
    DiTConfig("wan2.1-vace-14b", 16, 16, **_BIG, vace_layers=tuple(range(0, 40, 5)),
              sampling=_wan21(shift=16.0, width=1280, height=720)),
    DiTConfig("wan2.1-i2v-14b", 36, 16, **_BIG, has_image_embedding=True,
              sampling=_wan21(shift=5.0, steps=40, width=1280, height=720)),
    DiTConfig("wan2.1-flf2v-14b", 36, 16, **_BIG, has_image_embedding=True, flf_pos_len=514,
              sampling=_wan21(shift=16.0, width=1280, height=720)),
)}

# a single file of an A14B expert looks like its 2.1 sibling; a high/low-noise pair is the 2.2 model
_EXPERT_PAIRS = {"t2v": "wan2.2-t2v-a14b", "i2v": "wan2.2-i2v-a14b"}


def _shape(sd: dict, key: str) -> tuple[int, ...]:
    if key not in sd:
        raise SpacetimeError(f"the state dict has no `{key}`, which every Wan DiT file has; "
                             "this is not a Wan diffusion model (check which file is connected).")
    return tuple(sd[key].shape)


def _count(sd: dict, prefix: str) -> int:
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.")
    indices = {int(m.group(1)) for k in sd for m in [pattern.match(k)] if m}
    return max(indices) + 1 if indices else 0


def _optional_dim(sd: dict, key: str, axis: int, default: int) -> int:
    return sd[key].shape[axis] if key in sd else default


def _vace_layers(num_layers: int, num_vace: int) -> tuple[int, ...] | None:
    """Hints go to every `stride`-th main block (Wan 2.1 VACE: every 2nd of 30, every 5th of 40)."""
    if num_vace == 0:
        return None
    stride = num_layers // num_vace
    return tuple(range(0, stride * num_vace, stride))


def _preset_for(structure: DiTConfig) -> DiTConfig:
    """The preset of the same family whose width is closest (exact for real files, smallest for tiny ones).

    Ties go to the earlier preset, so a lone A14B T2V expert reads as its structural twin, Wan 2.1 T2V 14B.
    """
    same = [p for p in DIT_PRESETS.values() if p.family == structure.family]
    return min(same, key=lambda p: abs(p.dim - structure.dim))


def read_metadata_config(metadata: dict | None) -> dict:
    """The pack's own `spacetime_config` JSON from safetensors metadata ({} when absent)."""
    raw = (metadata or {}).get(METADATA_KEY)
    if raw is None:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise SpacetimeError(f"the file's `{METADATA_KEY}` metadata is not valid JSON ({e}); re-save the model.") from e


def detect_dit_config(state_dict: dict, metadata: dict | None = None) -> DiTConfig:
    """Read every size of a Wan DiT from its (prefix-stripped, Comfy-named) keys and shapes."""
    meta = read_metadata_config(metadata)
    dim = _shape(state_dict, "head.modulation")[-1]
    patch = _shape(state_dict, "patch_embedding.weight")[2:]
    out_dim = _shape(state_dict, "head.head.weight")[0] // (patch[0] * patch[1] * patch[2])
    num_layers = _count(state_dict, "blocks")
    structure = DiTConfig(
        variant="unknown",  # named below, once the structure is known
        in_dim=_shape(state_dict, "patch_embedding.weight")[1],
        out_dim=out_dim,
        dim=dim,
        ffn_dim=_shape(state_dict, "blocks.0.ffn.0.weight")[0],
        num_heads=int(meta.get("num_heads", max(dim // HEAD_DIM, 1))),
        num_layers=num_layers,
        text_dim=_shape(state_dict, "text_embedding.0.weight")[1],
        freq_dim=_shape(state_dict, "time_embedding.0.weight")[1],
        patch_size=tuple(patch),
        vace_layers=_vace_layers(num_layers, _count(state_dict, "vace_blocks")),
        vace_in_dim=_optional_dim(state_dict, "vace_patch_embedding.weight", 1, default=96),
        has_image_embedding="img_emb.proj.0.weight" in state_dict,
        flf_pos_len=_optional_dim(state_dict, "img_emb.emb_pos", 1, default=0),
        # Wan 2.2's 48-channel latent is only ever used with per-frame timesteps (TI2V)
        per_frame_timesteps=bool(meta.get("per_frame_timesteps", out_dim == 48)),
        # the pack's own files name it; those from before the field are spacetime-mini sets, whose text encoder
        # pads its prompts itself
        text_len=int(meta.get("text_len", 0 if "variant" in meta else WAN_TEXT_LEN)),
    )
    preset = _preset_for(structure)
    sampling = SamplingDefaults(**meta["sampling"]) if "sampling" in meta else preset.sampling
    return dataclasses.replace(structure, variant=meta.get("variant", preset.variant), sampling=sampling)


def expert_pair_config(config: DiTConfig) -> DiTConfig:
    """The config of a Wan 2.2 A14B high/low-noise pair whose experts each detect as `config`."""
    name = _EXPERT_PAIRS.get(config.family)
    if name is None:
        raise SpacetimeError(f"a low-noise expert was given, but {config.variant} ({config.family}) has no "
                             f"two-expert form; expected a Wan 2.2 A14B T2V or I2V pair. Leave low_noise_path empty.")
    preset = DIT_PRESETS[name]
    return dataclasses.replace(config, variant=name, sampling=preset.sampling)


def dit_metadata(config: DiTConfig) -> dict[str, str]:
    """safetensors metadata that makes `detect_dit_config` return `config` (for the pack's own model)."""
    fields = {"variant": config.variant, "num_heads": config.num_heads,
              "per_frame_timesteps": config.per_frame_timesteps, "text_len": config.text_len}
    if config.sampling is not None:
        fields["sampling"] = dataclasses.asdict(config.sampling)
    return {METADATA_KEY: json.dumps(fields)}
