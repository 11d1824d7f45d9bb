"""The library versions stored with every result (numbers are only comparable under the same libraries), and the
check that torch and torchvision go together."""

from __future__ import annotations

import platform
from importlib import metadata

from .files import InstallError
from .mitigations import MITIGATIONS

VERSIONED = ("sublim", "torch", "torchvision", "ray", "numpy", "pandas", "pyarrow", "pyyaml")


def library_versions(mitigation: str = "none") -> dict[str, str]:
    """Python's, the platform's and each VERSIONED package's; and, when `mitigation` is a plugin's, its
    distribution's."""
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for package in VERSIONED:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    plugin = MITIGATIONS.plugins.get(mitigation)
    if plugin:
        versions[plugin.distribution] = plugin.version
    return versions


def check_torchvision() -> None:
    """Before any work: torchvision's compiled operators load with this torch. Versions built for one another (torch
    2.M.P and torchvision 0.(M+15).P, the same build tag such as +cpu) pass at once, from their metadata alone;
    otherwise torchvision is imported to see (that takes seconds), and a failure is one line naming both versions
    and the fix."""
    torch_version, vision_version = metadata.version("torch"), metadata.version("torchvision")
    pair = _torchvision_for(torch_version)
    if vision_version == pair + torch_version[len(torch_version.split("+")[0]):]:
        return
    try:
        import torchvision  # noqa: F401
    except Exception as error:  # RuntimeError: operator torchvision::nms does not exist; ImportError; OSError
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        base = torch_version.split("+")[0]
        raise InstallError(
            f"torch {torch_version} and torchvision {vision_version} do not work together ({reason}); install the "
            f"pair built together from one index: pip install torch=={base} torchvision=={pair} (PyPI's build), or "
            f"add --index-url https://download.pytorch.org/whl/cpu for the CPU-only pair") from None


def _torchvision_for(torch_version: str) -> str:
    """The torchvision release built with torch `torch_version` (2.14.1 -> 0.29.1)."""
    major, minor, patch = (torch_version.split("+")[0].split(".") + ["0", "0"])[:3]
    return f"0.{int(minor) + 15}.{patch}" if major == "2" else "?"
