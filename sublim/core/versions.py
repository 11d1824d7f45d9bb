"""The library versions stored with every result: numbers are only comparable under the same libraries."""

from __future__ import annotations

import platform
from importlib import metadata

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
