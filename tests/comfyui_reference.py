"""Run by tests/test_comfyui_parity.py with ComfyUI's Python: ComfyUI's own Wan DiT, VAEs and UMT5 at tiny sizes
with random weights, written as safetensors in their state-dict layout (the Comfy-Org files' keys) beside their
outputs on fixed inputs.

    python comfyui_reference.py <ComfyUI checkout> <output folder>

The pack then loads each file through its own loaders and must give the same numbers. Only ComfyUI's classes are
used: nothing of the pack is imported here.
"""
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, sys.argv[1])
from comfy.cli_args import args  # noqa: E402  (ComfyUI's modules read the device from its arguments)

args.cpu = True
import comfy.ops  # noqa: E402
from comfy.ldm.wan import vae as vae_21, vae2_2  # noqa: E402
from comfy.ldm.wan.model import VaceWanModel, WanModel  # noqa: E402
from comfy.text_encoders.t5 import T5  # noqa: E402

OUT = sys.argv[2]
OPS = comfy.ops.disable_weight_init  # ComfyUI's layers, left uninitialised: randomize() fills them


@torch.no_grad()
def randomize(model: torch.nn.Module) -> torch.nn.Module:
    """Every weight random and well scaled (norm gains around 1), so no part of the maths hides behind an identity."""
    for name, p in model.named_parameters():
        if "norm" in name or name.endswith("gamma"):
            p.copy_(1 + 0.1 * torch.randn_like(p))
        elif p.dim() >= 2:
            p.copy_(torch.randn_like(p) * p[0].numel() ** -0.5)
        else:
            p.copy_(0.05 * torch.randn_like(p))
    return model.eval()


def save(name: str, model: torch.nn.Module, outputs: dict) -> None:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{OUT}/{name}.safetensors")
    torch.save(outputs, f"{OUT}/{name}.pt")


@torch.no_grad()
def dits() -> None:
    for name, channels in (("wan21_t2v", 16), ("wan22_ti2v", 48)):
        model = randomize(WanModel(in_dim=channels, out_dim=channels, dim=256, ffn_dim=512, num_heads=2, num_layers=2,
                                   text_dim=64, operations=OPS, dtype=torch.float32))
        x = torch.randn(2, channels, 3, 8, 12)
        context = torch.zeros(2, 512, 64)  # 7 prompt tokens, then the zero rows Wan pads prompts to 512 with
        context[:, :7] = torch.randn(2, 7, 64)
        timestep = torch.tensor([500.0, 873.5])
        per_token = torch.full((2, 3, 4, 6), 700.0)  # Wan 2.2's per-token timesteps: latent frame 0 clean
        per_token[:, 0] = 0.0
        save(name, model, {"x": x, "context": context, "timestep": timestep, "out": model(x, timestep, context),
                           "per_token_out": model(x, per_token.flatten(1), context)})


@torch.no_grad()
def image_and_vace_dits() -> None:
    """Wan 2.1 I2V and FLF2V (CLIP-vision tokens, the latter with their position embedding) and VACE (one control
    video, its hints added after blocks 0 and 1)."""
    small = dict(dim=256, ffn_dim=512, num_heads=2, num_layers=2, text_dim=64, operations=OPS, dtype=torch.float32)
    x, timestep = torch.randn(2, 36, 3, 8, 12), torch.tensor([500.0, 873.5])
    context = torch.randn(2, 512, 64)
    for name, tokens, flf in (("wan21_i2v", 257, None), ("wan21_flf2v", 514, 514)):
        model = randomize(WanModel(model_type="i2v", in_dim=36, out_dim=16, flf_pos_embed_token_number=flf, **small))
        clip_fea = torch.randn(2, tokens, 1280)  # FLF2V: the first frame's 257 tokens, then the last frame's
        save(name, model, {"x": x, "context": context, "timestep": timestep, "clip_fea": clip_fea,
                           "out": model(x, timestep, context, clip_fea=clip_fea)})
    model = randomize(VaceWanModel(in_dim=16, out_dim=16, vace_layers=2, vace_in_dim=96, **small))
    x, vace_context = torch.randn(2, 16, 3, 8, 12), torch.randn(2, 1, 96, 3, 8, 12)  # [B, controls, C, T, H, W]
    save("wan21_vace", model, {"x": x, "context": context, "timestep": timestep, "vace_context": vace_context[:, 0],
                               "out": model(x, timestep, context, vace_context=vace_context, vace_strength=[0.7])})


@torch.no_grad()
def vaes() -> None:
    for name, model, shape in (
            ("wan21_vae", vae_21.WanVAE(dim=16, z_dim=16, temperal_downsample=[False, True, True]), (1, 3, 9, 32, 48)),
            ("wan22_vae", vae2_2.WanVAE(dim=16, dec_dim=24, z_dim=48, temperal_downsample=[False, True, True]),
             (1, 3, 9, 64, 64))):
        randomize(model)
        pixels = torch.rand(*shape) * 2 - 1
        latent = model.encode(pixels)
        save(name, model, {"pixels": pixels, "latent": latent, "decoded": model.decode(latent)})


@torch.no_grad()
def text_encoder() -> None:
    config = {"d_ff": 256, "d_kv": 32, "d_model": 128, "dense_act_fn": "gelu_pytorch_tanh", "is_gated_act": True,
              "model_type": "umt5", "num_heads": 4, "num_layers": 2, "vocab_size": 400}
    model = randomize(T5(config, torch.float32, "cpu", OPS))
    ids = torch.randint(3, 400, (2, 12))
    mask = torch.ones(2, 12)
    ids[1, 8:], mask[1, 8:] = 0, 0  # the second prompt is 8 tokens, padded
    save("umt5", model, {"ids": ids, "mask": mask, "out": model(ids, attention_mask=mask)[0]})


@torch.no_grad()
def clip_vision() -> None:
    """ComfyUI's CLIP-vision model (the class clip_vision_h loads into) at a tiny width: the penultimate block's
    tokens, which ComfyUI's Wan I2V nodes pass to the DiT, on pixels already resized and normalized."""
    from comfy.clip_model import CLIPVisionModelProjection

    config = {"hidden_size": 160, "intermediate_size": 320, "num_attention_heads": 2, "num_hidden_layers": 3,
              "hidden_act": "gelu", "image_size": 56, "patch_size": 14, "num_channels": 3, "projection_dim": 80,
              "model_type": "clip_vision_model", "layer_norm_eps": 1e-5}
    model = randomize(CLIPVisionModelProjection(config, torch.float32, "cpu", OPS))
    with torch.no_grad():
        model.vision_model.embeddings.class_embedding.normal_()
    pixels = torch.randn(2, 3, 56, 56)
    save("clip_vision", model, {"pixels": pixels, "tokens": model(pixel_values=pixels, intermediate_output=-2)[1]})


def first_last_frame() -> None:
    """ComfyUI's WanFirstLastFrameToVideo node (Wan 2.1 FLF2V, also used with Wan 2.2 I2V): the pixel video it
    encodes for the channel-concat input and its mask, for a first and a last image at the video's size. A stand-in
    VAE records the video (the VAE itself is compared above)."""
    from comfy_extras.nodes_wan import WanFirstLastFrameToVideo

    class RecordingVAE:
        latent_channels = 16

        def spacial_compression_encode(self):
            return 8

        def encode(self, image):
            self.image = image.clone()
            return torch.zeros(1, 16, (image.shape[0] - 1) // 4 + 1, image.shape[1] // 8, image.shape[2] // 8)

    vae, images = RecordingVAE(), torch.rand(2, 32, 48, 3)
    positive, _, _ = WanFirstLastFrameToVideo.execute([[torch.zeros(1, 1, 8), {}]], [[torch.zeros(1, 1, 8), {}]], vae,
                                                      48, 32, 17, 1, start_image=images[:1], end_image=images[1:])
    torch.save({"images": images, "video": vae.image, "mask": positive[0][1]["concat_mask"]},
               f"{OUT}/first_last_frame.pt")


@torch.no_grad()
def lora() -> None:
    """A LoRA on a Wan 2.1 T2V model, merged at strength 0.8 by ComfyUI's own LoRA code (its key map and weight
    adapters): low-rank pairs with alpha in ComfyUI's layout and in kohya's flattened one (one on the Conv3d patch
    embedding), and whole differences for a norm's weight, a bias and a block's modulation."""
    import comfy.lora

    model = randomize(WanModel(in_dim=16, out_dim=16, dim=256, ffn_dim=512, num_heads=2, num_layers=2, text_dim=64,
                               operations=OPS, dtype=torch.float32))
    state = model.state_dict()
    save("wan21_t2v_for_lora", model, {})
    weights = {}
    for i, name in enumerate(("blocks.0.self_attn.q", "blocks.1.cross_attn.k", "blocks.0.ffn.2", "head.head",
                              "patch_embedding")):
        shape = state[f"{name}.weight"].shape
        key = f"lora_unet_{name.replace('.', '_')}" if i % 2 else f"diffusion_model.{name}"
        weights[f"{key}.lora_up.weight"] = torch.randn(shape[0], 4) * 0.1
        weights[f"{key}.lora_down.weight"] = torch.randn(4, *shape[1:]) * 0.1
        weights[f"{key}.alpha"] = torch.tensor(2.0)
    weights["diffusion_model.blocks.0.norm3.diff"] = torch.randn(256) * 0.05
    weights["diffusion_model.blocks.1.self_attn.o.diff_b"] = torch.randn(256) * 0.05
    weights["diffusion_model.blocks.1.modulation.diff"] = torch.randn(1, 6, 256) * 0.05
    save_file(weights, f"{OUT}/lora.safetensors")

    class Wrapped:  # what comfy.lora's key map reads of a ComfyUI model: prefixed keys and a (here empty) unet config
        model_config = type("Config", (), {"unet_config": {}})()

        def state_dict(self):
            return {f"diffusion_model.{k}": v for k, v in state.items()}

    patches = comfy.lora.load_lora(weights, comfy.lora.model_lora_keys_unet(Wrapped(), {}))
    merged = dict(state)
    for key, patch in patches.items():
        name = key.removeprefix("diffusion_model.")
        merged[name] = comfy.lora.calculate_weight([(0.8, patch, 1.0, None, None)], state[name].clone(), key)
    model.load_state_dict(merged)
    x, timestep, context = torch.randn(2, 16, 3, 8, 12), torch.tensor([500.0, 873.5]), torch.randn(2, 512, 64)
    torch.save({"x": x, "timestep": timestep, "context": context, "patched": len(patches),
                "out": model(x, timestep, context)}, f"{OUT}/lora.pt")


if __name__ == "__main__":
    torch.manual_seed(0)
    dits()
    image_and_vace_dits()
    vaes()
    text_encoder()
    clip_vision()
    first_last_frame()
    lora()
