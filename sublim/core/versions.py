"""The library versions stored with every result: numbers are only comparable under the same libraries."""

from __future__ import annotations

import platform
from importlib import metadata

VERSIONED = ("sublim", "torch", "torchvision", "ray", "numpy", "pandas", "pyarrow", "pyyaml")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for package in VERSIONED:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions
