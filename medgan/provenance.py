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


VECTOR_EXTENSIONS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")


def cpu_model() -> dict:
    """The processor's name and the vector extensions XLA's CPU code can use (Linux /proc/cpuinfo).

    Recorded with every figure: the same code runs 3-4x slower on an AVX2-only
    processor than on one with AVX-512/AMX.
    """
    name, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and name == "unknown":
                    name = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {"cpu_model": name, "vector_extensions": [e for e in VECTOR_EXTENSIONS if e in flags]}
