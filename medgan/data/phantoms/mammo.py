"""Mammogram patch phantom: fatty and fibroglandular breast tissue, with masses and calcifications.

`Mammo` builds the tissue of one patch (each acquisition is another patch
of the same breast) and the lesion layers (float32 [R, R]), composed to a
uint8 [R, R] image, bright = dense. `MAMMO_RULES` maps each name of
MAMMO_CLASSES to the rule that draws it.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from medgan.data.labels import MAMMO_CLASSES
from medgan.data.phantoms.geometry import (
    Pose,
    Scene,
    _cells,
    _dot,
    _edge,
    _fbm,
    _line,
    _noise_sigma,
    _rotate,
    _smoothstep,
)
from medgan.data.phantoms.seeds import _rng


@dataclasses.dataclass(frozen=True)
class _MammoAnatomy:
    """One patient's breast tissue; intensities are the bright = dense grey fraction."""

    density: float  # fibroglandular fraction
    orientation: float  # direction of the ducts towards the nipple
    stretch: float  # anisotropy of the tissue texture
    fat: float
    gland: float
    ligaments: float


def _mammo_anatomy(seed: int) -> _MammoAnatomy:
    """The breast of patient `seed`: fatty to dense (BI-RADS a-d-like), ducts in one direction."""
    r = _rng(seed, "mammo", "anatomy")
    return _MammoAnatomy(
        density=r.uniform(0.15, 0.75),
        orientation=r.uniform(0.0, np.pi),
        stretch=r.uniform(2.0, 3.5),
        fat=r.uniform(0.22, 0.32),
        gland=r.uniform(0.58, 0.7),
        ligaments=r.uniform(0.06, 0.12),
    )


class Mammo(Scene):
    """A mammogram patch: fatty and fibroglandular tissue; each acquisition is another patch of the breast."""

    def __init__(self, seed: int, acquisition: int, resolution: int):
        a = self.anatomy = _mammo_anatomy(seed)
        acq = _rng(seed, "mammo", "acquisition", acquisition)
        self.offset = acq.uniform(-2.0, 2.0, 2)
        super().__init__(resolution, Pose(0.0, 0.0, 0.0, 1.0))  # lesions are placed in patch coordinates
        self.gamma = acq.uniform(0.85, 1.15)
        self.noise = _rng(seed, "mammo", "noise", acquisition, resolution).standard_normal(self.u.shape, np.float32)
        tex = _rng(seed, "mammo", "texture")
        px = self.px
        # Tissue coordinates: this patch's place in the breast, ducts along the first axis.
        tu, tv = _rotate(self.u + self.offset[0], self.v + self.offset[1], -a.orientation)
        extent = 4.5  # |offset| + the patch's half-diagonal, rotated
        # Fibroglandular tissue: cloudy, elongated along the ducts, more of it in denser breasts.
        glandular = _fbm(tex, tu / a.stretch, tv, 20, px, octaves=4, extent=extent)
        threshold = np.float32(0.45 - 0.9 * a.density)
        gland = _smoothstep((glandular - threshold) / 0.9 + 0.5) * (
            0.9 + 0.2 * _fbm(tex, tu, tv, 50, px, octaves=2, extent=extent)
        )
        # Fat lobules: dark rounded cells walled by thin, curved bright septa (Cooper's ligaments),
        # some fading out.
        wu = tu + 0.12 * _fbm(tex, tu, tv, 12, px, octaves=2, extent=extent)
        wv = tv + 0.12 * _fbm(tex, tu, tv, 12, px, octaves=2, extent=extent)
        first, second = _cells(tex, wu / (0.6 * a.stretch), wv, 40, extent)
        cell_size = 2 * extent / 40
        fade = np.clip(0.6 + 1.5 * _fbm(tex, tu, tv, 16, px, octaves=2, extent=extent), 0.0, 1.0)
        septa = _line((second - first) * cell_size * 0.5, 0.006, px) * fade
        lobule = np.clip(first, 0.0, 1.0) ** 2  # lobules are darkest in their centres
        fibres = _fbm(tex, tu / (2 * a.stretch), tv, 60, px, octaves=2, extent=extent)
        vessels = _line(np.abs(_fbm(tex, tu * 0.5, tv * 0.5, 3, px, octaves=2, extent=extent)) * 0.6, 0.008, px)
        fine = _fbm(tex, self.u + self.offset[0], self.v + self.offset[1], 80, px, octaves=2, extent=extent)
        self.tissue = (
            a.fat * (1.1 - 0.25 * lobule)
            + (a.gland - a.fat) * gland
            + a.ligaments * septa * (1.0 - 0.7 * gland)
            + 0.05 * fibres
            + 0.07 * vessels
            + 0.02 * fine
        )
        # Some patches reach the skin line: breast beyond a circular arc, air outside.
        self.breast = np.ones_like(self.u)
        self.skin = self.zeros()
        if acq.random() < 0.3:
            direction, radius = acq.uniform(0.0, 2 * np.pi), acq.uniform(1.5, 3.0)
            reach = acq.uniform(0.7, 0.92)
            cx, cy = -(radius - reach) * math.cos(direction), -(radius - reach) * math.sin(direction)
            sd = np.hypot(self.u - cx, self.v - cy) - radius
            self.breast = _edge(sd, max(0.5 * px, 0.01))
            self.skin = _line(np.abs(sd + 0.015), 0.008, px)
        self.layers = {"mass": self.zeros(), "calcification": self.zeros()}

    def image(self) -> np.ndarray:
        """uint8 [R, R], bright = dense."""
        lesions = self.layers["mass"] + self.layers["calcification"]
        p = 0.03 + (self.tissue + 0.15 * self.skin + lesions - 0.03) * self.breast
        p = np.clip(p, 0.0, 1.0) ** self.gamma + _noise_sigma(self.resolution, 0.02) * self.noise
        return np.clip(p * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _mammo_normal(scene: Mammo, rng: np.random.Generator) -> None:
    """Normal: the absence of lesions; draws nothing."""


def _mammo_mass(scene: Mammo, rng: np.random.Generator) -> None:
    """Mass near the patch centre (radius 0.12-0.22): round with a lobulated, well-defined margin,
    or spiculated: an ill-defined core with 10-18 thin tapering spicules radiating out."""
    u, v, px = scene.u, scene.v, scene.px
    cu, cv = rng.uniform(-0.3, 0.3, 2)
    radius = rng.uniform(0.12, 0.22)
    spiculated = rng.random() < 0.5
    phi = np.arctan2(v - cv, u - cu)
    wobble = 0.12 if spiculated else 0.06
    shape = 1.0 + sum(rng.uniform(0.0, wobble) * np.cos(k * phi + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4))
    rho = np.hypot(u - cu, v - cv)
    core = _edge(rho - radius * shape, max(0.5 * px, 0.03 if spiculated else 0.015))
    mass = rng.uniform(0.28, 0.36) * core * (0.92 + 0.08 * _fbm(rng, u, v, 16, px, octaves=2))
    if spiculated:
        for angle in rng.uniform(0, 2 * np.pi, int(rng.integers(10, 19))):
            length = radius * rng.uniform(0.8, 1.6)
            start = (cu + 0.7 * radius * math.cos(angle), cv + 0.7 * radius * math.sin(angle))
            end = (cu + (radius + length) * math.cos(angle), cv + (radius + length) * math.sin(angle))
            d, h = scene.polyline(np.array([start, end]))
            mass = np.maximum(mass, 0.28 * (1.0 - 0.5 * h) * _line(d, 0.012 * (1.0 - h) + 0.003, px))
    scene.layers["mass"] = scene.layers["mass"] + mass * scene.breast


def _mammo_calcification(scene: Mammo, rng: np.random.Generator) -> None:
    """Cluster of 8-18 tiny very bright dots (radius 0.02-0.032: 0.6-1 px across at 32 px, drawn with
    their full brightness-area) within 0.1-0.2 of a point, scattered or in a line along a duct."""
    u, v, px = scene.u, scene.v, scene.px
    cu, cv = rng.uniform(-0.35, 0.35, 2)
    spread = rng.uniform(0.1, 0.2)
    n = int(rng.integers(8, 19))
    if rng.random() < 0.4:  # linear, along a duct
        angle = rng.uniform(0, np.pi)
        along, across = rng.uniform(-1.0, 1.0, n) * spread, rng.normal(0.0, 0.015, n)
        points = np.stack(
            [
                cu + along * math.cos(angle) - across * math.sin(angle),
                cv + along * math.sin(angle) + across * math.cos(angle),
            ],
            1,
        )
    else:
        r, a = spread * np.sqrt(rng.random(n)), rng.uniform(0, 2 * np.pi, n)
        points = np.stack([cu + r * np.cos(a), cv + r * np.sin(a)], 1)
    dots = scene.zeros()
    for (x, y), radius, brightness in zip(points, rng.uniform(0.02, 0.032, n), rng.uniform(0.6, 0.8, n)):
        dots = np.maximum(dots, brightness * _dot(np.hypot(u - x, v - y), radius, px))
    scene.layers["calcification"] = scene.layers["calcification"] + dots * scene.breast


MAMMO_RULES = dict(zip(MAMMO_CLASSES, (_mammo_normal, _mammo_mass, _mammo_calcification), strict=True))
