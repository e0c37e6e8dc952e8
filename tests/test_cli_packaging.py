"""Packaging rules: cheap import, one module that imports `comfy`, requirements.txt without torch, scripts."""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIPPED = {".git", ".venv", "tests", "node_modules", "example_workflows", "benchmarks"}


def package_sources() -> list[Path]:
    return [p for p in ROOT.rglob("*.py") if not SKIPPED & set(p.relative_to(ROOT).parts)]


def test_importing_the_pack_touches_neither_comfy_nor_a_device():
    code = ("import sys, comfyui_spacetime as pack; "
            "assert not {'comfy', 'folder_paths'} & set(sys.modules), 'comfy imported'; "
            "import torch; assert not torch.cuda.is_initialized(), 'cuda initialized'; "
            "print(len(pack.NODE_CLASS_MAPPINGS))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) >= 14


def test_only_core_host_imports_comfy():
    pattern = re.compile(r"^\s*(import comfy\b|from comfy\b)", re.MULTILINE)
    importers = [p.relative_to(ROOT).as_posix() for p in package_sources() if pattern.search(p.read_text())]
    assert importers == ["core/host.py"]


def test_requirements_are_the_dependencies_without_torch():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    required = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert not [r for r in required if re.match(r"torch\b", r)]
    assert sorted(required) == sorted(d for d in declared if not re.match(r"torch\b", d))


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "./scripts/test.sh" in readme and "./scripts/demo.sh" in readme
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    for script in ("scripts/setup.sh", "scripts/test.sh", "scripts/demo.sh", ".ci/run"):
        assert (ROOT / script).stat().st_mode & 0o111, f"{script} is not executable"
