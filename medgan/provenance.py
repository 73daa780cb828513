"""What produced a result: package versions, Python, platform and devices, for reproducing a figure."""

from __future__ import annotations

import importlib.metadata
import platform

PACKAGES = ("medgan", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "tensorflow-datasets", "numpy")


def software_versions() -> dict[str, str]:
    """Installed versions of medgan and the libraries its results depend on."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def software() -> dict:
    """`software_versions` plus Python, the device platform and kind, and the device and process counts."""
    import jax

    return {
        **software_versions(),
        "python": platform.python_version(),
        "platform": jax.devices()[0].platform,
        "device_kind": jax.devices()[0].device_kind,
        "devices": jax.device_count(),
        "processes": jax.process_count(),
    }
