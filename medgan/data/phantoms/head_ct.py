"""Axial non-contrast head CT phantom: a slice at the level of the lateral ventricles, in Hounsfield units.

`HeadCT` builds the skull, brain, CSF spaces and the blood and oedema
layers (float32 [R, R]) of one acquisition and renders them to int16
[R, R] HU, clipped to HU_RANGE (the 12-bit range scanners store).
`HEAD_RULES` maps each name of ICH_CLASSES to the rule that draws that
haemorrhage subtype.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from medgan.data.labels import ICH_CLASSES
from medgan.data.phantoms.geometry import (
    SIGN,
    Pose,
    Scene,
    _capsules,
    _dot,
    _edge,
    _ellipse_sd,
    _fbm,
    _line,
    _noise_sigma,
    _segment,
    _value_noise,
    _wrap,
)
from medgan.data.phantoms.seeds import _rng

HU_RANGE = (-1024, 3071)


@dataclasses.dataclass(frozen=True)
class _HeadAnatomy:
    """One patient's head at the level of the basal ganglia; lengths in patient units, densities in HU."""

    size: float
    head_ab: tuple[float, float]
    harmonics: tuple[tuple[float, float], ...]  # (amplitude, phase) of cos(k theta), k = 2, 3, 4
    skull: tuple[float, float]  # thickness at the temples, extra at front and back
    scalp: float
    csf_rim: float  # subarachnoid space over the convexity (grows with age)
    ventricles: float  # scale of the ventricular system
    sulci: np.ndarray  # [n, 2]: angle, depth
    sulcus_hw: float
    cortex: float  # depth of the grey-matter ribbon
    grey: float
    white: float
    csf: float
    bone: float


def _head_anatomy(seed: int) -> _HeadAnatomy:
    """The head of patient `seed`: adult ranges, atrophy (sulci, ventricles, CSF rim) growing with age."""
    r = _rng(seed, "head_ct", "anatomy")
    age = r.random()  # atrophy: wider sulci, bigger ventricles and CSF rim
    n = int(r.integers(40, 56))
    angles = np.sort(_wrap(np.linspace(-np.pi, np.pi, n, endpoint=False) + r.uniform(-0.05, 0.05, n) + r.uniform(0, 1)))
    return _HeadAnatomy(
        size=r.uniform(0.92, 1.02),
        head_ab=(r.uniform(0.70, 0.76), r.uniform(0.86, 0.92)),
        harmonics=tuple((r.uniform(0.0, 0.012), r.uniform(0.0, 2 * np.pi)) for _ in range(3)),
        skull=(r.uniform(0.035, 0.045), r.uniform(0.012, 0.022)),
        scalp=r.uniform(0.025, 0.04),
        csf_rim=0.006 + 0.012 * age,
        ventricles=0.85 + 0.4 * age,
        sulci=np.stack([angles, r.uniform(0.025, 0.075, n)], axis=1),
        sulcus_hw=0.004 + 0.005 * age,
        cortex=r.uniform(0.045, 0.06),
        grey=r.uniform(37.0, 42.0),
        white=r.uniform(25.0, 30.0),
        csf=r.uniform(2.0, 8.0),
        bone=r.uniform(1500.0, 1800.0),
    )


class HeadCT(Scene):
    """An axial non-contrast head CT slice at the level of the lateral ventricles, in HU."""

    def __init__(self, seed: int, acquisition: int, resolution: int):
        a = self.anatomy = _head_anatomy(seed)
        acq = _rng(seed, "head_ct", "acquisition", acquisition)
        pose = Pose(
            dx=acq.normal(0.0, 0.03), dy=acq.normal(0.0, 0.03), angle=acq.normal(0.0, 0.12),
            scale=a.size * acq.uniform(0.97, 1.03),
        )
        super().__init__(resolution, pose)
        self.noise = _rng(seed, "head_ct", "noise", acquisition, resolution).standard_normal(self.u.shape, np.float32)
        tex = _rng(seed, "head_ct", "texture")
        u, v, px = self.u, self.v, self.px
        self.r, self.theta = np.hypot(u, v), np.arctan2(v, u)
        self.texture = _fbm(tex, u, v, 8, px, octaves=3)
        inner = self.inner_table(self.theta)
        self.brain = _edge(self.r - inner, 0.5 * px)
        depth = inner - self.r  # below the inner table
        angle = self.theta / (2 * np.pi) + 0.5
        self.sulcus_warp = 0.06 * _value_noise(tex, angle, np.clip(depth / 0.2, 0, 1), (4, 90), periodic_x=True)
        # Sulci: CSF clefts from the surface inwards, lined by grey matter.
        sulcus_dist, sulcus_depth = self.nearest_sulcus()
        sulci = _line(sulcus_dist, a.sulcus_hw * (1.0 - 0.6 * np.clip(depth / sulcus_depth, 0, 1)), px)
        sulci = sulci * _edge(depth - sulcus_depth, 0.01)
        ribbon = a.cortex * (1.0 + 0.25 * _value_noise(tex, angle, 0.5, (1, 40), periodic_x=True))
        grey = np.maximum(
            _edge(depth - ribbon, 0.015),
            _edge(sulcus_dist - 0.03, 0.012) * _edge(depth - sulcus_depth - 0.03, 0.015),
        )
        for s in SIGN:  # basal ganglia and thalami
            grey = np.maximum(grey, 0.8 * _edge(_ellipse_sd(u - s * 0.17, v + 0.01, 0.065, 0.11), 0.02))
            grey = np.maximum(grey, 0.8 * _edge(_ellipse_sd(u - s * 0.075, v - 0.14, 0.06, 0.07), 0.02))
        self.parenchyma = a.white + (a.grey - a.white) * grey
        ventricles = _edge(self.ventricles_sd(), 0.5 * px)
        fissure = self.fissures()
        cistern = _edge(_ellipse_sd(u, v - 0.25 * a.ventricles, 0.06, 0.03), 0.5 * px)
        rim = _edge(depth - a.csf_rim, 0.5 * px)
        self.csf = np.maximum.reduce([ventricles, sulci, fissure, cistern, rim])
        self.falx = _line(np.abs(u), 0.004, px) * self.interhemispheric()
        k = a.ventricles
        calcs = sum(
            _dot(np.hypot(u - x * k, v - y * k), 0.009, px) for x, y in ((-0.16, 0.2), (0.16, 0.2), (0.0, 0.16))
        )
        self.calcifications = calcs * self.brain
        self.layers = {
            "blood": self.zeros(),  # fraction of the pixel that is blood
            "blood_hu": np.full(self.u.shape, 70.0, np.float32),
            "oedema": self.zeros(),
        }

    def outer_table(self, theta):
        a = self.anatomy
        ra, rb = a.head_ab
        radius = ra * rb / np.sqrt((rb * np.cos(theta)) ** 2 + (ra * np.sin(theta)) ** 2)
        for k, (amplitude, phase) in enumerate(a.harmonics, start=2):
            radius = radius + amplitude * np.cos(k * theta + phase)
        return radius

    def inner_table(self, theta):
        thin, extra = self.anatomy.skull
        return self.outer_table(theta) - thin - extra * np.sin(theta) ** 2  # thicker frontal and occipital bone

    def nearest_sulcus(self) -> tuple[np.ndarray, np.ndarray]:
        """Distance to the nearest sulcus (a wavy cleft running in from the surface) and that sulcus's depth."""
        angles, depths = self.anatomy.sulci[:, 0], self.anatomy.sulci[:, 1]
        n = len(angles)
        theta = _wrap(self.theta + self.sulcus_warp)
        after = np.searchsorted(angles, theta) % n
        before = (after - 1) % n
        d_after = np.abs(_wrap(theta - angles[after]))
        d_before = np.abs(_wrap(theta - angles[before]))
        nearest = np.where(d_after < d_before, after, before)
        return np.minimum(d_after, d_before) * self.r, depths[nearest].astype(np.float32)

    def ventricles_sd(self, u=None, v=None):
        """Frontal horns, atria with occipital horns, and the third ventricle (basal ganglia level)."""
        u = self.u if u is None else u
        v = self.v if v is None else v
        k = self.anatomy.ventricles
        sd = _capsules(u, v, np.array([(0.0, -0.07), (0.0, 0.1)]) * k, (0.008 * k, 0.006 * k))
        for s in SIGN:
            frontal = np.array([(s * 0.035, -0.1), (s * 0.07, -0.22), (s * 0.1, -0.3)]) * k
            sd = np.minimum(sd, _capsules(u, v, frontal, np.array((0.022, 0.03, 0.012)) * k))
            occipital = np.array([(s * 0.13, 0.14), (s * 0.17, 0.24), (s * 0.19, 0.34)]) * k
            sd = np.minimum(sd, _capsules(u, v, occipital, np.array((0.02, 0.03, 0.01)) * k))
        return sd

    def fissures(self):
        """Interhemispheric fissure (front and back) and both Sylvian fissures, as CSF coverage."""
        a, px = self.anatomy, self.px
        midline = _line(np.abs(self.u), 0.006 + 0.4 * a.sulcus_hw, px) * self.interhemispheric()
        sylvian = sum(_line(d, (0.012 + a.sulcus_hw) * (1.0 - 0.7 * h), px) for d, h in (self.sylvian(s) for s in SIGN))
        return np.maximum(midline, sylvian)

    def interhemispheric(self):
        """Where the interhemispheric fissure runs: the midline in front of and behind the ventricles."""
        k = self.anatomy.ventricles
        span = np.maximum(_edge(self.v + 0.36 * k, 0.02), _edge(0.42 * k - self.v, 0.02))
        return span * _edge(self.r - self.inner_table(self.theta), 0.5 * self.px)

    def sylvian(self, s: float) -> tuple[np.ndarray, np.ndarray]:
        """Distance to the Sylvian fissure of side s, and the position along it (0 at the surface)."""
        outer = float(self.inner_table(np.array(np.pi if s < 0 else 0.0) - s * 0.12))
        start = (s * outer * math.cos(0.12), -outer * math.sin(0.12))
        return _segment(self.u, self.v, start, (s * 0.5, -0.04))

    def add_blood(self, fraction, hu: float):
        fraction = np.clip(fraction, 0.0, 1.0) * self.brain
        self.layers["blood_hu"] = np.where(fraction > self.layers["blood"], np.float32(hu), self.layers["blood_hu"])
        self.layers["blood"] = np.maximum(self.layers["blood"], fraction)

    def hu(self) -> np.ndarray:
        """int16 [R, R] Hounsfield units."""
        a, layers = self.anatomy, self.layers
        brain = self.parenchyma - 14.0 * layers["oedema"] + 1.5 * self.texture
        brain = brain + (a.csf - brain) * self.csf
        brain = brain + (62.0 - brain) * self.falx
        brain = brain + (layers["blood_hu"] + 3.0 * self.texture - brain) * layers["blood"]
        brain = brain + 300.0 * self.calcifications
        outer = self.outer_table(self.theta)
        thickness = outer - self.inner_table(self.theta)
        across = np.clip((outer - self.r) / thickness, 0.0, 1.0)  # 0 at the outer, 1 at the inner table
        bone = a.bone - 0.55 * a.bone * np.sin(np.pi * across) ** 2  # cortical tables, cancellous diploe between
        skull = _edge(self.r - outer, 0.5 * self.px)
        head = _edge(self.r - outer - a.scalp, 0.5 * self.px)
        hu = -1000.0 + (25.0 + 1000.0) * head
        hu = hu + (bone - hu) * skull
        hu = hu + (brain - hu) * self.brain
        hu = hu + _noise_sigma(self.resolution, 5.0) * self.noise
        return np.clip(np.round(hu), *HU_RANGE).astype(np.int16)


def _head_no_finding(scene: HeadCT, rng: np.random.Generator) -> None:
    """No finding: the absence of the haemorrhage rules; draws nothing."""


def _collection(scene: HeadCT, thickness: np.ndarray) -> np.ndarray:
    """A collection lining the inner table, `thickness` [R, R] deep (inwards) at each pixel's angle."""
    inner = scene.inner_table(scene.theta)
    return _edge(inner - thickness - scene.r, 0.5 * scene.px) * np.clip(thickness / scene.px, 0.0, 1.0)


def _head_epidural(scene: HeadCT, rng: np.random.Generator) -> None:
    """Epidural: biconvex lens (elliptic thickness profile, 0.11-0.16 at its centre, 0.8-1.1 rad long)
    against the inner table over the temporal/parietal convexity, 65-85 HU."""
    side = rng.choice(SIGN)
    theta0 = (0.0 if side > 0 else np.pi) + rng.uniform(-0.5, 0.5)
    extent = rng.uniform(0.38, 0.55)
    profile = np.sqrt(np.clip(1.0 - (_wrap(scene.theta - theta0) / extent) ** 2, 0.0, 1.0))
    scene.add_blood(_collection(scene, rng.uniform(0.11, 0.16) * profile), rng.uniform(65, 85))


def _head_subdural(scene: HeadCT, rng: np.random.Generator) -> None:
    """Subdural: crescent of even thickness (0.05-0.08) along 2-3 rad of the inner table,
    tapering at its ends, concave towards the brain, 60-80 HU."""
    theta0 = rng.choice([0.0, np.pi]) + rng.uniform(-0.7, 0.7)
    extent = rng.uniform(1.0, 1.5)
    profile = np.clip(1.0 - np.abs(_wrap(scene.theta - theta0) / extent) ** 4, 0.0, 1.0) ** 0.4
    scene.add_blood(_collection(scene, rng.uniform(0.05, 0.08) * profile), rng.uniform(60, 80))


def _head_subarachnoid(scene: HeadCT, rng: np.random.Generator) -> None:
    """Subarachnoid: blood filling (and distending) the sulci of a 1.2-1.8 rad sector, the Sylvian
    fissure of that side and the quadrigeminal cistern: thin bright lines, 60-75 HU."""
    a, u, v, px = scene.anatomy, scene.u, scene.v, scene.px
    side = rng.choice(SIGN)
    theta0 = (0.0 if side > 0 else np.pi) + rng.uniform(-0.6, 0.6)
    sector = _edge(np.abs(_wrap(scene.theta - theta0)) - rng.uniform(0.6, 0.9), 0.05)
    depth = scene.inner_table(scene.theta) - scene.r
    distance, sulcus_depth = scene.nearest_sulcus()
    sulci = _line(distance, 1.8 * a.sulcus_hw + 0.006, px) * _edge(depth - sulcus_depth - 0.01, 0.01)
    surface = _edge(depth - a.csf_rim - 0.01, 0.5 * px)
    sylvian = _line(scene.sylvian(side)[0], 0.02, px)
    cistern = _edge(_ellipse_sd(u, v - 0.25 * a.ventricles, 0.08, 0.045), 0.5 * px)
    scene.add_blood(np.maximum.reduce([np.maximum(sulci, surface) * sector, sylvian, cistern]), rng.uniform(60, 75))


def _head_intraparenchymal(scene: HeadCT, rng: np.random.Generator) -> None:
    """Intraparenchymal: rounded, slightly irregular hyperdense focus (radius 0.07-0.12, 65-85 HU) in the
    basal ganglia or a lobe, with a rim of hypodense oedema (0.03-0.06 wide)."""
    radius = rng.uniform(0.07, 0.12)
    for _ in range(50):
        if rng.random() < 0.5:  # deep: basal ganglia / thalamus
            cu, cv = rng.choice(SIGN) * rng.uniform(0.14, 0.22), rng.uniform(-0.08, 0.12)
        else:  # lobar
            angle, reach = rng.uniform(-np.pi, np.pi), rng.uniform(0.35, 0.55)
            cu, cv = reach * math.cos(angle), reach * math.sin(angle)
        inner = float(scene.inner_table(np.array(math.atan2(cv, cu))))
        clear = float(scene.ventricles_sd(np.array(cu), np.array(cv))) > radius + 0.02
        if clear and math.hypot(cu, cv) < inner - radius - 0.1:
            break
    else:
        raise AssertionError("no place in the parenchyma fits; the anatomy ranges are inconsistent")
    phi = np.arctan2(scene.v - cv, scene.u - cu)
    shape = 1.0 + sum(rng.uniform(0.0, 0.1) * np.cos(k * phi + rng.uniform(0, 2 * np.pi)) for k in (2, 3))
    sd = np.hypot(scene.u - cu, scene.v - cv) - radius * shape
    oedema = _edge(sd - rng.uniform(0.03, 0.06), 0.02) * scene.brain
    scene.layers["oedema"] = np.maximum(scene.layers["oedema"], oedema)
    scene.add_blood(_edge(sd, max(0.5 * scene.px, 0.006)), rng.uniform(65, 85))


def _head_intraventricular(scene: HeadCT, rng: np.random.Generator) -> None:
    """Intraventricular: blood layering in the dependent (posterior: supine patient) part of the
    ventricles, with a horizontal fluid level in the image, 55-75 HU."""
    k = scene.anatomy.ventricles
    tips = np.array([(s * 0.19 * k, 0.35 * k) for s in SIGN] + [(s * 0.13 * k, 0.12 * k) for s in SIGN])
    _, y = scene.pose.to_image(tips[:, 0], tips[:, 1])
    low, high = float(y[:2].max()), float(y[2:].min())  # image rows of the occipital horn tips and atria
    level = low - rng.uniform(0.45, 0.7) * (low - high)
    layering = _edge(level - scene.y, 1.0 / scene.resolution) * _edge(scene.ventricles_sd(), 0.5 * scene.px)
    scene.add_blood(layering, rng.uniform(55, 75))


HEAD_RULES = dict(
    zip(
        ICH_CLASSES,
        (
            _head_no_finding,
            _head_epidural,
            _head_intraparenchymal,
            _head_intraventricular,
            _head_subarachnoid,
            _head_subdural,
        ),
        strict=True,
    )
)
