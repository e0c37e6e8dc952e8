"""The provenance nodes and CLI subcommands, called directly on tiny inputs."""
import argparse

import pytest
import torch

from comfyui_spacetime.core.errors import SpacetimeError
from comfyui_spacetime.core.video import write_mp4
from comfyui_spacetime.nodes import provenance as nodes
from comfyui_spacetime.provenance.c2pa_manifest import sign_video
from comfyui_spacetime.provenance.commands import add_provenance_commands


def clip(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.interpolate(torch.rand(1, 3, 4, 4, generator=g), size=(64, 64), mode="bilinear")
    return base[0].permute(1, 2, 0).expand(9, 64, 64, 3).clamp(0.1, 0.9).contiguous()  # (T, H, W, 3)


def run_cli(*argv) -> int:
    parser = argparse.ArgumentParser(prog="spacetime")
    add_provenance_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_every_input_has_a_tooltip_and_the_mappings_match():
    assert set(nodes.NODE_CLASS_MAPPINGS) == set(nodes.NODE_DISPLAY_NAME_MAPPINGS)
    for node in nodes.NODE_CLASS_MAPPINGS.values():
        assert node.CATEGORY == "Spacetime/Provenance"
        for group in node.INPUT_TYPES().values():
            assert all("tooltip" in spec[1] for spec in group.values())


def test_prompt_policy_node(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    node = nodes.SpacetimePromptPolicy()
    assert node.check("a red ball", True, "") == ("a red ball",)
    with pytest.raises(SpacetimeError, match="'extreme gore'"):
        node.check("a realistic beheading", True, "")
    assert node.check("a realistic beheading", False, "") == ("a realistic beheading",)


def test_watermark_then_detect_nodes():
    frames = clip()
    (marked,) = nodes.SpacetimeWatermark().mark(frames, "both", "AI", "STM")
    assert marked.shape == frames.shape and not torch.equal(marked, frames)
    report = nodes.SpacetimeDetectWatermark().detect(marked)["result"][0]
    assert report.startswith("watermark found: payload 'STM'")
    (visible_only,) = nodes.SpacetimeWatermark().mark(frames, "visible", "AI", "STM")
    assert nodes.SpacetimeDetectWatermark().detect(visible_only)["result"][0].startswith("no watermark found")


def test_read_provenance_node_and_cli(tmp_path, capsys):
    path = write_mp4(tmp_path / "v.mp4", clip(), fps=8)
    assert run_cli("provenance", str(path)) == 1
    sign_video(path, path, "mini.safetensors", "0" * 64, config_dir=tmp_path / "config")
    report = nodes.SpacetimeReadProvenance().read(str(path))["result"][0]
    assert "VALID C2PA manifest" in report and "mini.safetensors" in report
    capsys.readouterr()
    assert run_cli("provenance", str(path), "--json") == 0
    assert '"com.comfyui-spacetime.generation"' in capsys.readouterr().out


def test_detect_watermark_cli(tmp_path, capsys):
    marked = nodes.SpacetimeWatermark().mark(clip(1), "invisible", "", "job7")[0]
    assert run_cli("detect-watermark", str(write_mp4(tmp_path / "m.mp4", marked, fps=8))) == 0
    assert capsys.readouterr().out == "job7\n"
    assert run_cli("detect-watermark", str(write_mp4(tmp_path / "u.mp4", clip(1), fps=8))) == 1
