"""An install that cannot half-work: torch and torchvision that do not go together stop a command in one line naming
both versions and the fix, before any work; a matching pair costs no import of torchvision."""

import subprocess
import sys

import pytest

from sublim.core import versions
from sublim.core.files import InstallError
from sublim.core.versions import check_torchvision


def installed(monkeypatch, torch: str, torchvision: str) -> None:
    """Pretend these versions are installed, and torchvision cannot be imported at all."""
    monkeypatch.setattr(versions.metadata, "version", {"torch": torch, "torchvision": torchvision}.__getitem__)
    monkeypatch.setitem(sys.modules, "torchvision", None)  # `import torchvision` raises ImportError


@pytest.mark.parametrize("torch, torchvision", [("2.14.1", "0.29.1"), ("2.14.1+cpu", "0.29.1+cpu"),
                                                ("2.8.0+cu128", "0.23.0+cu128")])
def test_a_pair_built_together_passes_without_importing_torchvision(monkeypatch, torch, torchvision):
    installed(monkeypatch, torch, torchvision)
    check_torchvision()


def test_a_pair_that_fails_to_import_names_both_versions_and_the_matching_pair(monkeypatch):
    installed(monkeypatch, "2.14.1+cpu", "0.28.0")
    with pytest.raises(InstallError, match=r"^torch 2\.14\.1\+cpu and torchvision 0\.28\.0 do not work together "
                                           r"\(.*\); .*pip install torch==2\.14\.1 torchvision==0\.29\.1"):
        check_torchvision()


def test_sublim_run_with_a_cpu_torch_beside_a_cuda_torchvision_says_so_in_one_line(tmp_path):
    """The case a mixed index gives: torchvision's compiled operators do not load with this torch."""
    fake = tmp_path / "site"
    (fake / "torchvision").mkdir(parents=True)
    (fake / "torchvision" / "__init__.py").write_text('raise RuntimeError("operator torchvision::nms does not exist")')
    for name, version in (("torch", "2.14.1+cpu"), ("torchvision", "0.29.1")):
        info = fake / f"{name}-{version}.dist-info"
        info.mkdir()
        info.joinpath("METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    result = subprocess.run([sys.executable, "-m", "sublim", "run", "--seed", "0", "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, env={"PYTHONPATH": str(fake), "PATH": "/usr/bin:/bin"},
                            timeout=300)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("sublim run: error: torch 2.14.1+cpu and torchvision 0.29.1 do not work together "
                                    "(operator torchvision::nms does not exist)")
    assert "pip install torch==2.14.1 torchvision==0.29.1" in result.stderr and not (tmp_path / "out").exists()
