"""The phantoms' rendering API: an image of any modality from its labels, seed and acquisition.

render_chest and render_mammo give uint8 [R, R] (bright = dense),
render_head_ct_hu int16 [R, R] Hounsfield units. A finding's rule draws into
the scene's layers (lung opacity, added density, blood fraction ...), so for
a fixed (seed, acquisition) toggling one label changes only the pixels its
rule draws; finding_region gives that bool [R, R] mask, by construction
where the rule changes a layer of the image that has that finding alone.

Conspicuity: a finding's rule adds to the scene's layers (density, lung
opacity, blood fraction ...); `conspicuity` c scales what the rules add,
layer = normal + c * (with findings - normal), before the imaging chain
(exposure, gamma, noise), so c sets a finding's contrast against the
patient's anatomical variation and the detector noise: 1 draws findings at
the rules' full contrast (a classifier aces them at 32 px), 0 makes them
invisible. DEFAULT_CONSPICUITY is calibrated so that the small judge of the
CPU study points reaches a real mean AUC inside the real cohorts' range
(BENCHMARKS.md, "Phantom conspicuity").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medgan.data.labels import CLASSES_BY_MODALITY
from medgan.data.phantoms.chest import CHEST_RULES, Chest
from medgan.data.phantoms.geometry import Scene
from medgan.data.phantoms.head_ct import HEAD_RULES, HeadCT
from medgan.data.phantoms.mammo import MAMMO_RULES, Mammo
from medgan.data.phantoms.seeds import _rng

MODALITIES = ("chest", "head_ct", "mammo")
DEFAULT_CONSPICUITY = 0.6  # findings a reader sees at 32 px: BENCHMARKS.md, "Phantom conspicuity and label noise"
# (miss, false positive) rates of the phantom cohorts' labels, as a report labeller's (cohorts.reported_labels):
# with visible findings they keep the real judge off the ceiling, as noisy report labels do on real cohorts.
DEFAULT_LABEL_NOISE = (0.2, 0.05)
MIN_RESOLUTION, MAX_RESOLUTION = 32, 1024

# The scene registry: each modality's scene type and its rule per class name.
_SCENES = {"chest": (Chest, CHEST_RULES), "head_ct": (HeadCT, HEAD_RULES), "mammo": (Mammo, MAMMO_RULES)}


def check_modality(modality: str) -> None:
    if modality not in _SCENES:
        raise ValueError(f"unknown phantom modality {modality!r}; expected one of {MODALITIES}")


def check_resolution(resolution: int) -> None:
    if not isinstance(resolution, (int, np.integer)) or not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise ValueError(
            f"phantom resolution must be an int in [{MIN_RESOLUTION}, {MAX_RESOLUTION}], got {resolution!r}"
        )


def check_conspicuity(conspicuity: float) -> None:
    if not isinstance(conspicuity, (int, float, np.floating)) or not 0.0 <= conspicuity <= 4.0:
        raise ValueError(f"phantom conspicuity must be a number in [0, 4], got {conspicuity!r}")


def _scene(
    modality: str, labels: Sequence[int], resolution: int, seed: int, acquisition: int, conspicuity: float
) -> Scene:
    """The scene of `modality` with the rule of every positive label drawn, in class order, at `conspicuity`."""
    check_resolution(resolution)
    check_conspicuity(conspicuity)
    scene_type, rules = _SCENES[modality]
    names = CLASSES_BY_MODALITY[modality]
    labels = tuple(int(label) for label in labels)
    if len(labels) != len(names) or any(label not in (0, 1) for label in labels):
        raise ValueError(f"{modality} labels must be {len(names)} values in {{0, 1}} ({names}), got {labels}")
    scene = scene_type(int(seed), int(acquisition), int(resolution))
    normal = {name: layer.copy() for name, layer in scene.layers.items()} if conspicuity != 1 else {}
    for name, label in zip(names, labels):
        if label:
            rules[name](scene, _rng(seed, modality, "finding", name))
    for name, before in normal.items():
        scene.layers[name] = before + np.float32(conspicuity) * (scene.layers[name] - before)
    return scene


def render_chest(
    labels: Sequence[int], resolution: int, seed: int, acquisition: int = 0,
    conspicuity: float = DEFAULT_CONSPICUITY,
) -> np.ndarray:
    """PA chest radiograph: uint8 [resolution, resolution], bright = dense.

    Args:
      labels: 14 values in {0, 1}, CHEXPERT_FINDINGS order. Each positive
        finding is drawn by its rule (the `_chest_*` functions of chest.py);
        "No Finding" draws nothing, and no consistency between labels is
        required.
      resolution: 32 ... 1024.
      seed: the patient (anatomy and where each finding is drawn).
      acquisition: the exposure of that patient (positioning, exposure, noise).
      conspicuity: scales what the findings add (module docstring); 0 ... 4.
    """
    return _scene("chest", labels, resolution, seed, acquisition, conspicuity).image()


def render_head_ct_hu(
    labels: Sequence[int], resolution: int, seed: int, acquisition: int = 0,
    conspicuity: float = DEFAULT_CONSPICUITY,
) -> np.ndarray:
    """Axial head CT slice in Hounsfield units: int16 [resolution, resolution] in [-1024, 3071].

    Air -1000, scalp ~25, bone 700-1800, grey matter 37-42, white matter
    25-30, CSF 2-8, blood 55-85. labels: 6 values, ICH_CLASSES order.
    """
    return _scene("head_ct", labels, resolution, seed, acquisition, conspicuity).hu()


def render_mammo(
    labels: Sequence[int], resolution: int, seed: int, acquisition: int = 0,
    conspicuity: float = DEFAULT_CONSPICUITY,
) -> np.ndarray:
    """Mammogram patch: uint8 [resolution, resolution], bright = dense. labels: 3 values, MAMMO_CLASSES order."""
    return _scene("mammo", labels, resolution, seed, acquisition, conspicuity).image()


def finding_region(modality: str, finding_name: str, resolution: int, seed: int, acquisition: int = 0) -> np.ndarray:
    """Where the rule of `finding_name` draws in the image of (seed, acquisition) with that finding alone.

    bool [resolution, resolution]; empty for the "no finding"/"normal" classes.
    Computed by the renderer's own rule on the renderer's own scene (the
    layers it changes), not from rendered pixels.
    """
    check_modality(modality)
    check_resolution(resolution)
    scene_type, rules = _SCENES[modality]
    if finding_name not in rules:
        raise ValueError(f"unknown {modality} finding {finding_name!r}; expected one of {tuple(rules)}")
    scene = scene_type(int(seed), int(acquisition), int(resolution))
    return scene.draw(rules[finding_name], _rng(seed, modality, "finding", finding_name))
