"""Procedural phantoms: chest radiographs, head CTs and mammogram patches with findings drawn by rule.

No real cohort can be downloaded where medgan is developed and tested, so the
project ships phantoms (DESIGN.md, "The embedded default"): images rendered
from a seed whose findings are drawn by an explicit anatomical rule (an
enlarged heart, fluid at a lung base, a lens-shaped bright collection inside
the skull, a spiculated mass ...), in cohorts whose label co-occurrence is
long-tailed like CheXpert's and RSNA ICH's, and that can be written in those
cohorts' on-disk layouts so the real loaders run on them.

Conventions
  * Geometry is defined in normalised coordinates: x (columns) and y (rows)
    span [-1, 1] across the image, y downwards. Anatomy lives in *patient*
    coordinates (u, v) that a per-acquisition pose (shift, small rotation,
    scale) maps onto the image. Every structure is an analytic function of
    (u, v) sampled at pixel centres with a one-pixel edge, so the same patient
    appears at every resolution (32 ... 1024 px), and structures thinner than
    a pixel keep their integrated brightness (`_line`, `_dot`) instead of
    aliasing away at 32 px.
  * Chest radiographs and mammograms: bright = dense (uint8, MONOCHROME2).
    Radiographs are rendered as attenuation: a density map D (soft tissue
    0.5-1 by path length, aerated lung ~0.25, rib +0.1, callus +0.5,
    metal +1 to +3) through 1 - exp(-k D).
    Head CT: Hounsfield units (int16, clipped to [-1024, 3071], the 12-bit
    range scanners store).
  * Randomness: every random quantity comes from its own
    np.random.Generator seeded by a BLAKE2 hash of a name path (never
    Python's per-process salted hash()):
        anatomy       (seed)                 the patient
        finding f     (seed, f)              where and how f is drawn
        acquisition   (seed, acquisition)    pose, exposure
        noise         (seed, acquisition, R) detector noise at resolution R
    So for a fixed (seed, acquisition) toggling one label changes only the
    pixels its rule draws (`finding_region`), and two acquisitions of one
    seed are the same patient imaged twice (follow-up films, neighbouring CT
    slices, patches of one breast). Images are bit-identical for a seed with
    a given NumPy version.
  * A finding's rule draws into the scene's layers (lung opacity, added
    density, blood fraction ...); `finding_region` is, by construction, where
    the rule changes a layer of the image that has that finding alone.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Union

import numpy as np

from medgan import fileio
from medgan.data.labels import (
    CHEXPERT_FINDINGS,
    CLASSES_BY_MODALITY,
    ICH_CLASSES,
    ICH_SUBTYPES,
    MAMMO_CLASSES,
)
from medgan.data.records import ImageRecord
from medgan.data.windowing import WINDOWS, apply_window

MODALITIES = ("chest", "head_ct", "mammo")
MIN_RESOLUTION, MAX_RESOLUTION = 32, 1024
HU_RANGE = (-1024, 3071)
# Part of PhantomSource's identity: bump when a change of this module changes
# pixels or cohorts, so prepared shards of the old phantoms are not reused.
RENDERER_VERSION = 1

PathLike = Union[str, "os.PathLike[str]"]

# Side index 0 is the patient's right, drawn on the image's left (radiological
# convention), at negative u; side 1 the patient's left, at positive u.
_SIGN = (-1.0, 1.0)


# --------------------------------------------------------------------------- seeds


def _stable_int(*parts: object) -> int:
    """63-bit hash of `parts`, identical in every process and on every platform."""
    text = "\x1f".join(str(part) for part in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def _rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(_stable_int(*parts))


def render_seeds(cohort_seed: int, record: ImageRecord) -> tuple[int, int]:
    """(seed, acquisition) with which an image of a cohort sampled with `cohort_seed` is rendered.

    seed comes from (cohort_seed, patient_id), so all images of a patient show
    the same anatomy and the same placement of each finding; acquisition comes
    from (cohort_seed, image_id) and varies positioning, exposure and noise.
    """
    return (
        _stable_int("patient", cohort_seed, record.patient_id),
        _stable_int("acquisition", cohort_seed, record.image_id),
    )


# --------------------------------------------------------------------------- geometry


def _smoothstep(s: np.ndarray) -> np.ndarray:
    s = np.clip(s, 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def _edge(sd: np.ndarray, w) -> np.ndarray:
    """Inside-indicator of a shape with signed distance `sd` (negative inside).

    1 for sd <= -w, 0 for sd >= w, smooth in between: compact support, so a
    shape changes no pixel farther than w outside it.
    """
    return _smoothstep(0.5 - sd / (2.0 * w))


def _line(dist: np.ndarray, half_width, px: float) -> np.ndarray:
    """Coverage of a line of `half_width` at distance `dist`, antialiased over one pixel.

    Below half a pixel the line is drawn half a pixel wide with its amplitude
    scaled by half_width / (px / 2): its integrated brightness, what a
    detector of that pitch records, is kept.
    """
    drawn = np.maximum(half_width, 0.5 * px)
    return (half_width / drawn) * _edge(dist - drawn, 0.5 * px)


def _dot(dist: np.ndarray, radius: float, px: float) -> np.ndarray:
    """`_line` for a disc: keeps the area (radius^2) of sub-pixel dots."""
    drawn = max(radius, 0.5 * px)
    return (radius / drawn) ** 2 * _edge(dist - drawn, 0.5 * px)


def _ellipse_sd(x: np.ndarray, y: np.ndarray, a, b) -> np.ndarray:
    """Approximate signed distance to the ellipse x^2/a^2 + y^2/b^2 = 1 (exact on the boundary)."""
    k0 = np.sqrt((x / a) ** 2 + (y / b) ** 2)
    k1 = np.sqrt((x / (a * a)) ** 2 + (y / (b * b)) ** 2)
    return np.maximum(k0 * (k0 - 1.0) / np.maximum(k1, 1e-6), -np.minimum(a, b))


def _rotate(x: np.ndarray, y: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = math.cos(angle), math.sin(angle)
    return c * x - s * y, s * x + c * y


def _wrap(angle: np.ndarray) -> np.ndarray:
    """Angle difference mapped to [-pi, pi)."""
    return (angle + np.pi) % (2.0 * np.pi) - np.pi


def _segment(x, y, a, b) -> tuple[np.ndarray, np.ndarray]:
    """Distance from (x, y) to the segment a-b, and the position h in [0, 1] of the closest point."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    h = np.clip(((x - a[0]) * dx + (y - a[1]) * dy) / max(dx * dx + dy * dy, 1e-12), 0.0, 1.0)
    return np.hypot(x - a[0] - h * dx, y - a[1] - h * dy), h


def _capsules(x, y, points: np.ndarray, half_widths: Sequence[float]) -> np.ndarray:
    """Signed distance to a tube along a polyline whose half-width varies linearly between vertices."""
    sd = None
    for i in range(len(points) - 1):
        d, h = _segment(x, y, points[i], points[i + 1])
        s = d - (half_widths[i] + h * (half_widths[i + 1] - half_widths[i]))
        sd = s if sd is None else np.minimum(sd, s)
    return sd


def _bezier(control: Sequence[tuple[float, float]], n: int = 24) -> np.ndarray:
    """n points [n, 2] on the Bezier curve of `control` points."""
    p = np.asarray(control, dtype=np.float64)
    t = np.linspace(0.0, 1.0, n)[:, None]
    k = len(p) - 1
    return sum(math.comb(k, i) * (1 - t) ** (k - i) * t**i * p[i] for i in range(k + 1))


def _value_noise(rng: np.random.Generator, x, y, cells: tuple[int, int], periodic_x: bool = False) -> np.ndarray:
    """Smooth random field on x, y in [0, 1] (clipped) with `cells` = (along y, along x) lattice cells.

    Values of a random lattice interpolated with a quintic fade: the lattice
    (drawn from `rng`, sized by `cells` only) is the same at every resolution,
    so a texture is a property of the patient, not of the pixel grid.
    Roughly N(0, 0.6^2) marginals. periodic_x: x = 0 and x = 1 meet without a
    seam (x is an angle).
    """
    cy, cx = cells
    lattice = rng.standard_normal((cy + 2, cx + 2)).astype(np.float32)
    if periodic_x:
        lattice[:, cx:] = lattice[:, :2]
    gx = np.clip(x, 0.0, 1.0) * cx
    gy = np.clip(y, 0.0, 1.0) * cy
    ix = np.minimum(gx.astype(np.int32), cx)
    iy = np.minimum(gy.astype(np.int32), cy)
    fx, fy = gx - ix, gy - iy
    fx = fx * fx * fx * (fx * (fx * 6 - 15) + 10)
    fy = fy * fy * fy * (fy * (fy * 6 - 15) + 10)
    flat, stride = lattice.ravel(), cx + 2
    corner = iy * stride + ix
    top = flat.take(corner) * (1 - fx) + flat.take(corner + 1) * fx
    bottom = flat.take(corner + stride) * (1 - fx) + flat.take(corner + stride + 1) * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def _resolved(cell: float, px: float) -> float:
    """Weight of texture detail of size `cell` in an image of pixel size px: 1 from 3 px up, 0 below 2 px.

    Detail a detector cannot resolve averages out instead of aliasing into a
    moire pattern at 32 px.
    """
    return float(np.clip(cell / px - 2.0, 0.0, 1.0))


def _fbm(rng: np.random.Generator, x, y, base_cells: int, px: float, octaves: int = 4, extent: float = 1.6) -> np.ndarray:
    """Fractal noise on x, y in [-extent, extent]: octaves of `_value_noise`, each twice as fine, half as strong.

    Octaves finer than the pixel size px fade to their mean, zero (`_resolved`);
    every octave's lattice is still drawn, so coarser octaves and later
    draws from `rng` do not depend on the resolution.
    """
    nx, ny = (x + extent) / (2 * extent), (y + extent) / (2 * extent)
    total, norm = 0.0, 0.0
    for i in range(octaves):
        cells = base_cells * 2**i
        amplitude = 0.5**i
        octave = _value_noise(rng, nx, ny, (cells, cells))
        total = total + amplitude * _resolved(2 * extent / cells, px) * octave
        norm += amplitude
    return total / norm


def _cells(rng: np.random.Generator, x, y, cells: int, extent: float) -> tuple[np.ndarray, np.ndarray]:
    """Cellular (Worley) noise on x, y in [-extent, extent]: distances to the nearest and second-nearest
    of one jittered point per lattice cell, in cell units. F2 - F1 is small on the walls between cells."""
    points = rng.random((cells + 2, cells + 2, 2)).astype(np.float32)
    gx = (np.clip(x, -extent, extent) + extent) * (cells / (2 * extent))
    gy = (np.clip(y, -extent, extent) + extent) * (cells / (2 * extent))
    ix, iy = np.minimum(gx.astype(np.int32), cells - 1), np.minimum(gy.astype(np.int32), cells - 1)
    first = np.full(gx.shape, np.inf, np.float32)
    second = np.full(gx.shape, np.inf, np.float32)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            cx, cy = ix + dx, iy + dy  # lattice index of a neighbouring cell (offset by one)
            px, py = points[cy, cx, 0] + cx - 1, points[cy, cx, 1] + cy - 1
            d = np.hypot(gx - px, gy - py)
            second = np.where(d < first, first, np.minimum(second, d))
            first = np.minimum(first, d)
    return first, second


@dataclasses.dataclass(frozen=True)
class _Pose:
    """Where the patient lies in the image: image = shift + scale * rotate(patient, angle)."""

    dx: float
    dy: float
    angle: float
    scale: float

    def to_patient(self, x, y):
        return _rotate((x - self.dx) / self.scale, (y - self.dy) / self.scale, -self.angle)

    def to_image(self, u, v):
        ru, rv = _rotate(np.asarray(u, np.float64), np.asarray(v, np.float64), self.angle)
        return self.dx + self.scale * ru, self.dy + self.scale * rv


def _grid(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates x, y: float32 [R, R] in (-1, 1), x along columns, y down the rows."""
    c = ((np.arange(resolution, dtype=np.float32) + 0.5) * (2.0 / resolution) - 1.0).astype(np.float32)
    y, x = np.meshgrid(c, c, indexing="ij")
    return x, y


class _Scene:
    """The pixel grid of one acquisition in patient coordinates, and the layers finding rules draw into."""

    def __init__(self, resolution: int, pose: _Pose):
        self.resolution = resolution
        self.pose = pose
        self.x, self.y = _grid(resolution)
        self.u, self.v = pose.to_patient(self.x, self.y)
        self.px = 2.0 / resolution / pose.scale  # one pixel in patient units
        self.layers: dict[str, np.ndarray] = {}

    def zeros(self) -> np.ndarray:
        return np.zeros((self.resolution, self.resolution), np.float32)

    def window(self, u0: float, u1: float, v0: float, v1: float) -> tuple[slice, slice]:
        """Rows and columns of the pixels that can lie in the patient-coordinate box [u0, u1] x [v0, v1]."""
        x, y = self.pose.to_image(np.array([u0, u1, u0, u1]), np.array([v0, v0, v1, v1]))
        half = self.resolution / 2.0

        def span(low, high):
            start = int(np.clip(math.floor((low + 1.0) * half) - 1, 0, self.resolution))
            return slice(start, int(np.clip(math.ceil((high + 1.0) * half) + 1, start, self.resolution)))

        return span(y.min(), y.max()), span(x.min(), x.max())

    def polyline(self, points: np.ndarray, reach: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
        """Distance to a polyline [N, 2] and the arc fraction of the closest point, like `_polyline`,
        computed only near each segment: distances beyond `reach` (or two pixels) read as that cap."""
        reach = max(reach, 2.0 * self.px)
        lengths = np.hypot(*np.diff(points, axis=0).T)
        starts = np.concatenate([[0.0], np.cumsum(lengths)]) / max(lengths.sum(), 1e-12)
        best = np.full(self.u.shape, reach, np.float32)
        arc = self.zeros()
        for i in range(len(points) - 1):
            (ua, va), (ub, vb) = points[i], points[i + 1]
            rows, cols = self.window(min(ua, ub) - reach, max(ua, ub) + reach, min(va, vb) - reach, max(va, vb) + reach)
            d, h = _segment(self.u[rows, cols], self.v[rows, cols], points[i], points[i + 1])
            closer = d < best[rows, cols]
            best[rows, cols] = np.where(closer, d, best[rows, cols])
            arc[rows, cols] = np.where(closer, starts[i] + h * (starts[i + 1] - starts[i]), arc[rows, cols])
        return best, arc

    def draw(self, rule: Callable[[_Scene, np.random.Generator], None], rng: np.random.Generator) -> np.ndarray:
        """Applies `rule` and returns where it changed a layer: bool [R, R]."""
        before = {name: layer.copy() for name, layer in self.layers.items()}
        rule(self, rng)
        changed = np.zeros((self.resolution, self.resolution), bool)
        for name, layer in self.layers.items():
            changed |= np.abs(layer - before[name]) > 1e-5  # not float rounding of an added zero
        return changed


def _noise_sigma(resolution: int, sigma: float) -> float:
    """Pixel noise of a detector imaged at `resolution`: full at >= 256 px, averaged down below."""
    return sigma * min(1.0, resolution / 256.0)


# --------------------------------------------------------------------------- chest radiograph (PA)


@dataclasses.dataclass(frozen=True)
class _ChestAnatomy:
    """One patient's thorax; lengths in patient units (the image spans 2)."""

    size: float
    body_hw: float
    lung_cx: tuple[float, float]  # lateral centre of each lung (distance from the midline)
    lung_cy: float
    lung_ax: tuple[float, float]
    lung_ay: float
    dome: tuple[float, float]  # top of each hemidiaphragm (the right one is higher)
    dome_curve: float
    heart_c: tuple[float, float]
    heart_ax: tuple[float, float]
    heart_angle: float
    medi_hw: float
    rib_top: float
    rib_spacing: float
    rib_curve: float
    rib_hw: float
    air: float  # density removed by aerated lung
    vessels: float  # strength of the lung markings
    bubble: tuple[float, float, float, float]  # gastric air bubble under the left dome
    habitus: float  # soft-tissue thickness (slim ... obese)


def _chest_anatomy(seed: int) -> _ChestAnatomy:
    """The thorax of patient `seed`: ranges of a healthy adult PA film."""
    r = _rng(seed, "chest", "anatomy")
    lung_cx = r.uniform(0.38, 0.43)
    lung_ax = r.uniform(0.3, 0.35)
    dome_right = r.uniform(0.33, 0.48)
    return _ChestAnatomy(
        size=r.uniform(0.9, 1.04),
        body_hw=r.uniform(0.84, 0.98),
        lung_cx=(lung_cx, lung_cx + r.uniform(-0.01, 0.02)),
        lung_cy=r.uniform(-0.04, 0.05),
        lung_ax=(lung_ax, lung_ax * r.uniform(0.9, 1.0)),
        lung_ay=r.uniform(0.67, 0.77),
        dome=(dome_right, dome_right + r.uniform(0.02, 0.09)),
        dome_curve=r.uniform(0.16, 0.28),
        heart_c=(r.uniform(0.08, 0.14), r.uniform(0.24, 0.31)),
        heart_ax=(r.uniform(0.29, 0.34), r.uniform(0.19, 0.23)),
        heart_angle=r.uniform(0.3, 0.6),
        medi_hw=r.uniform(0.09, 0.115),
        rib_top=r.uniform(-0.80, -0.74),
        rib_spacing=r.uniform(0.125, 0.14),
        rib_curve=r.uniform(0.6, 0.8),
        rib_hw=r.uniform(0.030, 0.036),
        air=r.uniform(0.78, 0.86),
        vessels=r.uniform(0.12, 0.18),
        bubble=(r.uniform(0.25, 0.38), r.uniform(0.10, 0.16), r.uniform(0.07, 0.11), r.uniform(0.035, 0.06)),
        habitus=r.uniform(0.85, 1.2),
    )


class _Chest(_Scene):
    """A PA chest radiograph: anatomy, its layers, and the composition to grey levels."""

    def __init__(self, seed: int, acquisition: int, resolution: int):
        a = self.anatomy = _chest_anatomy(seed)
        acq = _rng(seed, "chest", "acquisition", acquisition)
        pose = _Pose(
            dx=acq.normal(0.0, 0.012),
            dy=acq.normal(0.02, 0.012),
            angle=acq.normal(0.0, 0.015),
            scale=a.size * acq.uniform(0.985, 1.015),
        )
        self.exposure = acq.uniform(1.55, 1.75)
        self.gamma = acq.uniform(0.95, 1.05)
        super().__init__(resolution, pose)
        self.noise = _rng(seed, "chest", "noise", acquisition, resolution).standard_normal(self.u.shape, np.float32)
        tex = _rng(seed, "chest", "texture")
        u, v, px = self.u, self.v, self.px

        # Soft tissue: torso narrowing to sloping shoulders, and the neck; the
        # X-ray path is longest through the midline.
        width = a.body_hw * (1.0 - 0.12 * np.clip((0.1 - v) / 0.9, 0.0, 1.0) ** 2)
        shoulders = -0.93 + 0.22 * (u / a.body_hw) ** 2  # trapezius sloping from the neck
        torso = np.maximum(np.abs(u) - width, shoulders - v)
        neck = np.abs(u) - 0.2
        body = _edge(np.minimum(torso, neck), max(0.5 * px, 0.03))
        path = np.sqrt(np.clip(1.0 - (u / width) ** 2, 0.0, 1.0))
        self.abdomen = sum(_edge(self.diaphragm(side, _SIGN[side] * u)[0] + 0.02 - v, 0.04) for side in (0, 1)) / 2
        self.soft = a.habitus * body * (0.5 + 0.45 * path) * (1.0 + 0.04 * _fbm(tex, u, v, 4, px))
        # Lung markings: vessels fanning out of each hilum, tapering to the periphery.
        markings = self.zeros()
        for side, s in enumerate(_SIGN):
            hu, hv = self.hilum(side)
            r = np.hypot(u - hu, v - hv)
            theta = np.arctan2(v - hv, s * (u - hu))
            tn, rn = theta / (2 * np.pi) + 0.5, np.clip(r / 1.2, 0.0, 1.0)
            ridge = 0.0
            for w, (cy, cx) in ((1.0, (5, 36)), (0.7, (10, 72)), (0.4, (20, 144))):
                vessels = (1.0 - np.minimum(np.abs(_value_noise(tex, tn, rn, (cy, cx))) / 0.4, 1.0)) ** 3
                resolved = _resolved(0.4 * 2 * np.pi / cx, px)  # vessel spacing 0.4 from the hilum
                ridge = ridge + w * (resolved * vessels + (1.0 - resolved) * float(vessels.mean()))
            markings += a.vessels * ridge * np.exp(-r / 0.4) + 0.22 * _edge(r - 0.07, 0.06)
        self.markings = markings * (1.0 + 0.3 * _fbm(tex, u, v, 12, px, octaves=2))
        # Airways (trachea and main bronchi) and the gastric bubble: air outside the lungs.
        trachea = _line(np.abs(u), 0.03, px) * _edge(v + 0.2, 0.03) * _edge(-1.2 - v, 0.02)
        bronchi = sum(_line(_segment(u, v, (0.0, -0.2), (s * 0.15, -0.07))[0], 0.018, px) for s in _SIGN)
        bx, by, ba, bb = a.bubble
        bubble = _edge(_ellipse_sd(u - bx, v - (a.dome[1] + by), ba, bb), max(0.5 * px, 0.015))
        self.airways = 0.22 * np.maximum(trachea, 0.6 * bronchi) + 0.3 * bubble

        bone = self.zeros()
        for side in (0, 1):
            for k in range(11):
                bone += self.rib(side, k)
            bone += self.anterior_ribs(side) + self.clavicle(side)
            s = _SIGN[side]
            bone += 0.05 * np.clip(1.0 - ((s * u - 0.68) / 0.16) ** 2 - ((v + 0.42) / 0.32) ** 2, 0.0, 1.0)  # scapula
        vertebrae = 0.8 + 0.2 * _resolved(a.rib_spacing, px) * np.cos(2.0 * np.pi * (v - a.rib_top) / a.rib_spacing)
        bone += 0.14 * _edge(np.abs(u) - 0.075, max(0.5 * px, 0.015)) * vertebrae * body
        self.layers = {
            "heart": self.heart(),
            "medi": self.mediastinum(),
            "lung0": self.lung(0),
            "lung1": self.lung(1),
            "air0": self.lung_air(0),
            "air1": self.lung_air(1),
            "opacity": self.zeros(),  # fraction of the lung's air replaced (fluid, consolidation, mass)
            "air": self.zeros(),  # extra air (pneumothorax)
            "clear": self.zeros(),  # lung markings absent (pneumothorax)
            "bone": bone,
            "extra": self.zeros(),  # added density: devices, pleura
        }

    # Anatomy, in patient coordinates; finding rules call these with their changes.

    def heart(self, grow: tuple[float, float] = (1.0, 1.0), shift: tuple[float, float] = (0.0, 0.0)):
        """The cardiac silhouette: an ellipse tilted towards the apex (patient's left, down)."""
        a = self.anatomy
        x, y = _rotate(self.u - a.heart_c[0] - shift[0], self.v - a.heart_c[1] - shift[1], -a.heart_angle)
        sd = _ellipse_sd(x, y, a.heart_ax[0] * grow[0], a.heart_ax[1] * grow[1])
        return _edge(sd, max(0.5 * self.px, 0.012))

    def mediastinum(self, widen: float = 0.0):
        """The superior mediastinum (great vessels) above the heart, with the aortic knob on the patient's left."""
        a, u, v = self.anatomy, self.u, self.v
        hw = a.medi_hw + widen * np.clip(1.0 - ((v + 0.34) / 0.36) ** 2, 0.0, 1.0)
        sd = np.maximum(np.abs(u - 0.01) - hw, v - 0.3)
        knob = _ellipse_sd(u - a.medi_hw - 0.015, v + 0.40, 0.06, 0.055)
        return _edge(np.minimum(sd, knob), max(0.5 * self.px, 0.008))

    def diaphragm(self, side: int, t, lift: float = 0.0):
        """Height of the hemidiaphragm dome at lateral position t, and its slope dv/dt."""
        a = self.anatomy
        tc = a.lung_cx[side] - 0.03
        q = (t - tc) / 0.4
        return a.dome[side] - lift + a.dome_curve * q * q, 2.0 * a.dome_curve * q / 0.4

    def lung_sd(self, side: int, u=None, v=None):
        """Signed distance to the lung outline, ignoring the diaphragm (egg-shaped, wider at the base)."""
        a = self.anatomy
        u = self.u if u is None else u
        v = self.v if v is None else v
        t = _SIGN[side] * u
        ax = a.lung_ax[side] * (1.0 + 0.22 * np.clip((v - a.lung_cy) / a.lung_ay, -1.0, 1.0))
        return _ellipse_sd(t - a.lung_cx[side], v - a.lung_cy, ax, a.lung_ay)

    def diaphragm_sd(self, side: int, lift: float = 0.0, u=None, v=None):
        u = self.u if u is None else u
        v = self.v if v is None else v
        dome, slope = self.diaphragm(side, _SIGN[side] * u, lift)
        return (v - dome) / np.sqrt(1.0 + slope * slope)

    def lung(self, side: int, lift: float = 0.0):
        """Lung field of one side: its outline above the diaphragm, [R, R] in [0, 1]."""
        w = max(0.5 * self.px, 0.005)
        return _edge(self.lung_sd(side), w) * _edge(self.diaphragm_sd(side, lift), w)

    def lung_air(self, side: int, lift: float = 0.0):
        """Aerated thickness of the lung field: thin at its edges and over the diaphragm's recesses."""
        depth = np.minimum(-self.lung_sd(side) / 0.22, -self.diaphragm_sd(side, lift) / 0.14)
        return self.lung(side, lift) * (0.3 + 0.7 * np.sqrt(np.clip(depth, 0.0, 1.0)))

    def in_lung(self, side: int, u: float, v: float, margin: float) -> bool:
        """True when the point lies inside the lung field, `margin` away from its edges, heart and mediastinum."""
        pu, pv = np.array(u), np.array(v)
        a = self.anatomy
        hx, hy = _rotate(pu - a.heart_c[0], pv - a.heart_c[1], -a.heart_angle)
        return bool(
            self.lung_sd(side, pu, pv) < -margin
            and self.diaphragm_sd(side, 0.0, pu, pv) < -margin
            and _ellipse_sd(hx, hy, a.heart_ax[0], a.heart_ax[1]) > margin
            and abs(u) > a.medi_hw + 0.04 + margin
        )

    def sample_in_lung(self, rng: np.random.Generator, sides, t_range, v_range, margin) -> tuple[int, float, float]:
        """A random (side, u, v) inside a lung (`in_lung`); t, v ranges are fractions of the lung's half-axes."""
        a = self.anatomy
        for _ in range(200):
            side = int(rng.choice(sides))
            t = a.lung_cx[side] + rng.uniform(*t_range) * a.lung_ax[side]
            v = a.lung_cy + rng.uniform(*v_range) * a.lung_ay
            if self.in_lung(side, _SIGN[side] * t, v, margin):
                return side, _SIGN[side] * t, v
        raise AssertionError("no point of the lung field fits; the anatomy ranges are inconsistent")

    def thorax_width(self) -> float:
        """Widest distance between the lateral lung borders above the diaphragm (the CTR's denominator)."""
        a = self.anatomy
        v = np.linspace(a.lung_cy - a.lung_ay, a.lung_cy + a.lung_ay, 401)
        extent = []
        for side in (0, 1):
            ax = a.lung_ax[side] * (1.0 + 0.22 * (v - a.lung_cy) / a.lung_ay)
            t = a.lung_cx[side] + ax * np.sqrt(np.clip(1.0 - ((v - a.lung_cy) / a.lung_ay) ** 2, 0.0, 1.0))
            extent.append(np.where(v < self.diaphragm(side, t)[0], t, 0.0))
        return float((extent[0] + extent[1]).max())

    def cage(self, v):
        """Half-width of the rib cage at height v."""
        a = self.anatomy
        return (a.body_hw - 0.1) * (1.0 - 0.25 * np.clip((-0.1 - v) / 0.7, 0.0, 1.0) ** 2)

    def rib_centre(self, k: int, t):
        """Height of posterior rib k's centre line at lateral position t, and its slope."""
        a = self.anatomy
        return a.rib_top + k * a.rib_spacing - 0.12 * t + a.rib_curve * t * t, -0.12 + 2.0 * a.rib_curve * t

    def rib(self, side: int, k: int, fracture: tuple[float, float] | None = None):
        """Posterior rib k of one side: a band rising a little from the spine, then curving down the lateral wall.

        fracture = (t0, step): a cortical gap at lateral position t0 and the
        lateral fragment displaced by `step`, settling over 0.2.
        """
        a, px = self.anatomy, self.px
        # Only the rows the rib can reach: its centre line over t in [0, 1], the step, its width.
        ts = np.linspace(0.0, 1.0, 11)
        reach = a.rib_hw * 1.3 + 0.06 + px
        ys = self.rib_centre(k, ts)[0]
        rows, cols = self.window(*sorted((0.0, _SIGN[side] * 1.0)), ys.min() - reach, ys.max() + reach)
        u, v = self.u[rows, cols], self.v[rows, cols]
        t = _SIGN[side] * u
        yc, slope = self.rib_centre(k, t)
        if fracture is not None:
            t0, step = fracture
            yc = yc + step * _smoothstep((t - t0) / 0.012 + 0.5) * np.clip(1.0 - (t - t0) / 0.2, 0.0, 1.0)
        d = np.abs(v - yc) / np.sqrt(1.0 + slope * slope)
        hw = a.rib_hw * (1.0 + 0.025 * k)
        band = 0.075 * _edge(d - hw, max(0.5 * px, 0.008)) + 0.045 * _line(np.abs(d - 0.8 * hw), 0.2 * hw, px)
        # Ribs closer than a few pixels blur into their mean density over the rib's share of the wall.
        resolved = _resolved(a.rib_spacing, px)
        mean = (0.075 * 2.0 * hw + 0.045 * 0.8 * hw) / a.rib_spacing
        band = resolved * band + (1.0 - resolved) * mean * _edge(d - 0.5 * a.rib_spacing, 0.5 * px)
        band = band * _edge(t - self.cage(yc), 0.04) * _edge(0.04 - t, 0.02)
        if fracture is not None:
            band = band * (1.0 - _edge(np.abs(t - fracture[0]) - 0.012, 0.5 * px))
        rib = self.zeros()
        rib[rows, cols] = band
        return rib

    def anterior_ribs(self, side: int):
        """The faint anterior ribs, running from the lateral wall down towards the sternum."""
        a, px = self.anatomy, self.px
        total = self.zeros()
        for k in range(6):
            v0 = a.rib_top + 0.25 + k * 1.4 * a.rib_spacing
            c = float(self.cage(v0))
            rows, cols = self.window(*sorted((_SIGN[side] * 0.15, _SIGN[side] * (c + 0.1))), v0 - 0.1, v0 + 0.4 * c + 0.1)
            t, v = _SIGN[side] * self.u[rows, cols], self.v[rows, cols]
            d = np.abs(v - v0 - 0.4 * (c - t)) / math.sqrt(1.0 + 0.4**2)
            total[rows, cols] += 0.035 * _edge(d - 0.03, max(0.5 * px, 0.012)) * _edge(t - c, 0.04) * _edge(0.25 - t, 0.06)
        return total

    def clavicle(self, side: int):
        s = _SIGN[side]
        dv = self.anatomy.rib_top + 0.77
        points = _bezier([(s * 0.06, -0.64 + dv), (s * 0.3, -0.62 + dv), (s * 0.45, -0.72 + dv), (s * 0.62, -0.74 + dv)], 16)
        d, _ = self.polyline(points)
        return 0.12 * _edge(d - 0.03, max(0.5 * self.px, 0.008)) + 0.06 * _line(np.abs(d - 0.025), 0.006, self.px)

    def hilum(self, side: int) -> tuple[float, float]:
        return _SIGN[side] * (self.anatomy.medi_hw + 0.08), -0.02

    def lung_space(self, side: int):
        """Lung field of one side not covered by the heart and mediastinum: where airspace disease shows."""
        return self.layers[f"lung{side}"] * (1.0 - self.layers["heart"]) * (1.0 - self.layers["medi"])

    def add_opacity(self, amount):
        """Fills a fraction `amount` [R, R] of the lungs' air (fluid, consolidation, a mass ...)."""
        opacity = self.layers["opacity"]
        self.layers["opacity"] = opacity + np.clip(amount, 0.0, 1.0) * (1.0 - opacity)

    def image(self) -> np.ndarray:
        """uint8 [R, R], bright = dense."""
        layers, a = self.layers, self.anatomy
        air = np.minimum(layers["air0"] + layers["air1"], 1.0) * (1.0 - layers["heart"]) * (1.0 - layers["medi"])
        aerated = air * (1.0 - layers["opacity"])
        density = (
            self.soft
            + layers["bone"]
            + 0.1 * np.maximum(layers["heart"], self.abdomen)
            + 0.03 * layers["medi"]
            - a.air * aerated
            - 0.2 * layers["air"]
            + self.markings * aerated * (1.0 - layers["clear"])
            + layers["extra"]
            - self.airways
        )
        p = 1.0 - np.exp(-self.exposure * np.maximum(density, 0.0))
        p = np.clip((p - 0.03) / 0.92, 0.0, 1.0) ** self.gamma + _noise_sigma(self.resolution, 0.015) * self.noise
        return np.clip(p * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _chest_no_finding(scene: _Chest, rng: np.random.Generator) -> None:
    """No Finding: the absence of the other rules; draws nothing."""


def _chest_enlarged_cardiomediastinum(scene: _Chest, rng: np.random.Generator) -> None:
    """Superior mediastinum widened on both sides (half-width +0.13 to +0.18, more than doubling it)."""
    widened = scene.mediastinum(widen=rng.uniform(0.13, 0.18))
    scene.layers["medi"] = np.maximum(scene.layers["medi"], widened)


def _chest_cardiomegaly(scene: _Chest, rng: np.random.Generator) -> None:
    """Heart enlarged, mostly towards the patient's left, to a cardiothoracic ratio of 0.58-0.68
    (normal phantoms 0.35-0.48; > 0.5 is the radiological criterion)."""
    a = scene.anatomy
    ratio, taller = rng.uniform(0.58, 0.68), rng.uniform(1.12, 1.22)
    # Horizontal half-extent of the tilted ellipse: sqrt((gx a cos)^2 + (gy b sin)^2) = ratio * width / 2.
    c, s = math.cos(a.heart_angle), math.sin(a.heart_angle)
    half = 0.5 * ratio * scene.thorax_width()
    grow = math.sqrt(max(half**2 - (taller * a.heart_ax[1] * s) ** 2, 0.0)) / (a.heart_ax[0] * c)
    big = scene.heart(grow=(max(grow, 1.0), taller), shift=(rng.uniform(0.04, 0.07), 0.03))
    scene.layers["heart"] = np.maximum(scene.layers["heart"], big)


def _patchy(scene: _Chest, rng: np.random.Generator, cells: int) -> np.ndarray:
    """Patchy texture in [0.4, 1] for airspace disease: never empty, so the disease always shows."""
    return 0.4 + 0.6 * np.clip(0.5 + 1.2 * _fbm(rng, scene.u, scene.v, cells, scene.px, octaves=3), 0.0, 1.0)


def _bump(x, y, a, b) -> np.ndarray:
    """Smooth compact bump: 1 at the centre, 0 outside the ellipse of half-axes a, b."""
    return np.clip(1.0 - (x / a) ** 2 - (y / b) ** 2, 0.0, 1.0) ** 2


def _chest_lung_opacity(scene: _Chest, rng: np.random.Generator) -> None:
    """Patchy airspace brightening in an upper or mid zone of one lung (sometimes also the other lung)."""
    a = scene.anatomy
    sides = [int(rng.integers(2))]
    if rng.random() < 0.35:
        sides.append(1 - sides[0])
    amount = scene.zeros()
    for side in sides:
        zone = rng.uniform(-0.45, 0.05) * a.lung_ay + a.lung_cy
        cx = _SIGN[side] * (a.lung_cx[side] + rng.uniform(-0.05, 0.08))
        patch = _bump(scene.u - cx, scene.v - zone, rng.uniform(0.2, 0.26), rng.uniform(0.2, 0.26))
        amount = np.maximum(amount, 0.8 * np.sqrt(patch) * _patchy(scene, rng, 6) * scene.lung_space(side))
    scene.add_opacity(amount)


def _chest_lung_lesion(scene: _Chest, rng: np.random.Generator) -> None:
    """A round, slightly lobulated nodule or mass (radius 0.06-0.10) inside one lung, clear of the heart."""
    radius = rng.uniform(0.06, 0.10)
    side, u, v = scene.sample_in_lung(rng, (0, 1), (-0.4, 0.6), (-0.65, 0.45), radius + 0.03)
    phi = np.arctan2(scene.v - v, scene.u - u)
    lobulation = 1.0 + sum(rng.uniform(0.0, 0.07) * np.cos(k * phi + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
    sd = np.hypot(scene.u - u, scene.v - v) - radius * lobulation
    scene.add_opacity(0.8 * _edge(sd, max(0.5 * scene.px, 0.015)) * scene.lung_space(side))


def _chest_edema(scene: _Chest, rng: np.random.Generator) -> None:
    """Bilateral perihilar ("bat-wing") haze with fine interstitial texture, fading towards the periphery."""
    amount = scene.zeros()
    texture = 0.75 + 0.5 * _fbm(rng, scene.u, scene.v, 10, scene.px, octaves=2)
    reach = (rng.uniform(0.34, 0.42), rng.uniform(0.42, 0.52))
    for side in (0, 1):
        hu, hv = scene.hilum(side)
        haze = _bump(scene.u - hu - _SIGN[side] * 0.06, scene.v - hv - 0.05, *reach)
        amount = np.maximum(amount, rng.uniform(0.7, 0.8) * np.sqrt(haze) * texture * scene.lung_space(side))
    scene.add_opacity(amount)


def _chest_consolidation(scene: _Chest, rng: np.random.Generator) -> None:
    """Dense, homogeneous lobar opacity: right upper lobe down to the horizontal fissure (sharp edge),
    right middle lobe against the right heart border, or a lower lobe above the diaphragm."""
    a, u, v, px = scene.anatomy, scene.u, scene.v, scene.px
    lobe = int(rng.integers(4))
    fissure = a.lung_cy + rng.uniform(-0.12, -0.04)
    if lobe == 0:  # right upper lobe
        side, shape = 0, _edge(v - fissure, 0.5 * px)
    elif lobe == 1:  # right middle lobe
        side = 0
        shape = _edge(fissure - v, 0.5 * px) * _edge(v - fissure - 0.32, 0.06) * _edge(-u - a.lung_cx[0] - 0.08, 0.06)
    else:  # lower lobe, either side
        side = lobe - 2
        shape = _edge(a.dome[side] - 0.32 - v, 0.08)
    texture = 0.9 + 0.1 * _fbm(rng, u, v, 8, px, octaves=2)
    scene.add_opacity(0.92 * shape * texture * scene.lung_space(side))


def _chest_pneumonia(scene: _Chest, rng: np.random.Generator) -> None:
    """Lower-zone consolidation with air bronchograms: dark branching tubes inside a dense patch."""
    u, v, px = scene.u, scene.v, scene.px
    side, cu, cv = scene.sample_in_lung(rng, (0, 1), (-0.2, 0.5), (0.05, 0.35), 0.08)
    irregular = 0.75 + 0.6 * _fbm(rng, u, v, 6, px, octaves=3)
    patch = np.sqrt(_bump(u - cu, v - cv, rng.uniform(0.24, 0.28), rng.uniform(0.2, 0.24))) * irregular
    hu, hv = scene.hilum(side)
    bronchi = scene.zeros()
    for _ in range(3):  # branches from the hilum towards the patch, forking once
        angle = math.atan2(cv - hv, cu - hu) + rng.uniform(-0.5, 0.5)
        mid = (hu + 0.3 * math.cos(angle), hv + 0.3 * math.sin(angle))
        for fork in (-0.3, 0.3):
            end = (mid[0] + 0.3 * math.cos(angle + fork), mid[1] + 0.3 * math.sin(angle + fork))
            d, h = scene.polyline(np.array([(hu, hv), mid, end]))
            bronchi = np.maximum(bronchi, _line(d, 0.008 * (1.0 - 0.5 * h), px))
    amount = 0.95 * np.clip(1.5 * patch, 0.0, 1.0) * (1.0 - 0.4 * bronchi)
    scene.add_opacity(amount * scene.lung_space(side))


def _chest_atelectasis(scene: _Chest, rng: np.random.Generator) -> None:
    """Volume loss and plate atelectasis: the hemidiaphragm lifted by 0.08-0.12 and
    one or two dense linear bands across the lower zone of that lung."""
    a, u, v, px = scene.anatomy, scene.u, scene.v, scene.px
    side = int(rng.integers(2))
    s = _SIGN[side]
    lift = rng.uniform(0.08, 0.12)
    scene.layers[f"lung{side}"] = scene.lung(side, lift=lift)
    scene.layers[f"air{side}"] = scene.lung_air(side, lift=lift)
    bands = scene.zeros()
    for i in range(1 + int(rng.random() < 0.6)):
        cv = a.dome[side] - lift - rng.uniform(0.12, 0.2) - 0.12 * i
        ct = a.lung_cx[side] + rng.uniform(-0.05, 0.05)
        half, tilt = rng.uniform(0.14, 0.2), rng.uniform(-0.12, 0.12)
        p0 = (s * (ct - half), cv - tilt * half)
        p1 = (s * (ct + half), cv + tilt * half)
        d, h = _segment(u, v, p0, p1)
        width = rng.uniform(0.02, 0.028) * np.sqrt(np.clip(1.0 - (2.0 * h - 1.0) ** 2, 0.05, 1.0))  # a plate seen edge-on
        bands = np.maximum(bands, _edge(d - width, max(0.5 * px, 0.012)))
    scene.add_opacity(0.7 * bands * scene.lung_space(side))


def _chest_pneumothorax(scene: _Chest, rng: np.random.Generator) -> None:
    """Apical-lateral pneumothorax: the lung retracts towards its hilum base, leaving a dark rim
    without lung markings between chest wall and a thin bright visceral pleural line."""
    a, u, v, px = scene.anatomy, scene.u, scene.v, scene.px
    side = int(rng.integers(2))
    s = _SIGN[side]
    collapse = rng.uniform(0.72, 0.82)
    # Scale the lung outline by `collapse` towards an anchor at its medial base.
    au, av = s * (a.lung_cx[side] - 0.5 * a.lung_ax[side]), a.dome[side]
    sd = scene.lung_sd(side, au + (u - au) / collapse, av + (v - av) / collapse) * collapse
    lung = scene.lung_space(side)
    space = lung * (1.0 - _edge(sd, 0.5 * px))
    pleura = _line(np.abs(sd), 0.006, px) * lung
    scene.layers["air"] = np.maximum(scene.layers["air"], space)
    scene.layers["clear"] = np.maximum(scene.layers["clear"], space)
    scene.layers["extra"] = scene.layers["extra"] + 0.3 * pleura


def _chest_pleural_effusion(scene: _Chest, rng: np.random.Generator) -> None:
    """Fluid at one or both lung bases: its meniscus rises towards the lateral wall, the
    costophrenic angle is blunted and the hemidiaphragm silhouette is lost."""
    a, u, v = scene.anatomy, scene.u, scene.v
    draw = rng.random()
    sides = (0,) if draw < 0.4 else (1,) if draw < 0.7 else (0, 1)
    amount = scene.zeros()
    for side in sides:
        t = _SIGN[side] * u
        depth = rng.uniform(0.16, 0.3)
        lateral = np.clip((t - a.lung_cx[side] + a.lung_ax[side]) / (2.2 * a.lung_ax[side]), 0.0, 1.0)
        level = a.dome[side] - depth * (0.3 + 1.3 * lateral**2)  # meniscus climbing the lateral wall
        amount = np.maximum(amount, _edge(level - v, 0.03) * scene.lung_space(side))
    scene.add_opacity(0.97 * amount)


def _chest_pleural_other(scene: _Chest, rng: np.random.Generator) -> None:
    """Pleural thickening with lumpy plaques (0.04-0.08 thick, calcified along their inner margin)
    lining the lateral chest wall of the mid zone, often bilateral."""
    a, u, v, px = scene.anatomy, scene.u, scene.v, scene.px
    sides = (0, 1) if rng.random() < 0.5 else (int(rng.integers(2)),)
    amount = scene.zeros()
    for side in sides:
        top, bottom = a.lung_cy + rng.uniform(-0.5, -0.35), a.lung_cy + rng.uniform(0.15, 0.3)
        span = _edge(top - v, 0.05) * _edge(v - bottom, 0.05) * _edge(a.lung_cx[side] + 0.05 - _SIGN[side] * u, 0.05)
        lumps = sum(
            rng.uniform(0.02, 0.04) * np.exp(-(((v - c) / 0.07) ** 2)) for c in rng.uniform(top, bottom, 3)
        )
        thickness = 0.04 + lumps
        sd = scene.lung_sd(side)
        rim = _edge(sd, 0.5 * px) * _edge(-sd - thickness, max(0.5 * px, 0.01)) * span * scene.layers[f"lung{side}"]
        amount = np.maximum(amount, rim)
        calcified = _line(np.abs(sd + thickness), 0.006, px) * span * scene.layers[f"lung{side}"]
        scene.layers["extra"] = scene.layers["extra"] + 0.1 * rim + 0.1 * calcified
    scene.add_opacity(0.95 * amount)


def _chest_fracture(scene: _Chest, rng: np.random.Generator) -> None:
    """Healing displaced fracture of one or two adjacent posterior ribs on the lateral wall: a cortical
    gap, a step of about a rib's width between the fragments, and a bright fusiform callus at the break."""
    u, v = scene.u, scene.v
    side, k = int(rng.integers(2)), int(rng.integers(2, 7))
    t0 = rng.uniform(0.45, 0.6)
    step = rng.choice([-1.0, 1.0]) * rng.uniform(0.04, 0.055)
    s = _SIGN[side]
    for rib in range(k, k + 1 + int(rng.random() < 0.6)):
        yc, slope = scene.rib_centre(rib, t0)
        callus = _bump(*_rotate(u - s * t0, v - yc - 0.5 * step, -s * math.atan(slope)), 0.075, 0.045)
        change = (scene.rib(side, rib, (t0, step)) - scene.rib(side, rib)) + 0.5 * np.sqrt(callus)
        scene.layers["bone"] = scene.layers["bone"] + change


def _chest_support_devices(scene: _Chest, rng: np.random.Generator) -> None:
    """Radiopaque lines and boxes: endotracheal tube, nasogastric tube, central venous line,
    pacemaker with leads and ECG electrodes (a random non-empty subset)."""
    a, u, v, px = scene.anatomy, scene.u, scene.v, scene.px
    devices = [name for name in ("ett", "ng", "cvc", "pacer", "ecg") if rng.random() < 0.45] or [
        ("ett", "ng", "cvc", "pacer", "ecg")[int(rng.integers(5))]
    ]
    metal = scene.zeros()

    def tube(control, half_width, strength):
        d, _ = scene.polyline(_bezier(control))
        return strength * _line(d, half_width, px)

    if "ett" in devices:
        tip = -0.28 - rng.uniform(0.0, 0.1)
        metal = np.maximum(metal, tube([(0.01, -1.3), (0.0, -0.8), (0.005, tip)], 0.016, 0.9))
    if "ng" in devices:
        metal = np.maximum(metal, tube([(0.03, -1.3), (0.04, -0.2), (0.05, a.dome[1] + 0.05), (a.bubble[0] + 0.1, a.dome[1] + 0.25)], 0.012, 1.2))
    if "cvc" in devices:
        s = rng.choice(_SIGN)
        metal = np.maximum(metal, tube([(s * 0.62, -0.82), (s * 0.2, -0.66), (-0.06, -0.45), (-0.06, -0.12)], 0.01, 1.4))
    if "pacer" in devices:
        bx, by = rng.uniform(0.45, 0.58), rng.uniform(-0.62, -0.5)
        du, dv = np.abs(u - bx) - 0.07, np.abs(v - by) - 0.045  # rounded box, 0.18 x 0.13
        box = _edge(np.hypot(np.maximum(du, 0.0), np.maximum(dv, 0.0)) + np.minimum(np.maximum(du, dv), 0.0) - 0.02, 0.5 * px)
        metal = np.maximum(metal, 3.0 * box)
        for tip in ((-0.05, 0.05), (0.12, 0.34)):
            metal = np.maximum(metal, tube([(bx - 0.06, by), (0.05, -0.5), (-0.08, -0.15), tip], 0.009, 2.0))
    if "ecg" in devices:
        for _ in range(3):
            cx, cy = rng.uniform(-0.7, 0.7), rng.uniform(-0.7, 0.2)
            ring = _line(np.abs(np.hypot(u - cx, v - cy) - 0.03), 0.008, px) + 0.6 * _dot(np.hypot(u - cx, v - cy), 0.01, px)
            wire = tube([(cx, cy), (cx + rng.uniform(-0.3, 0.3), cy - 0.3), (cx * 1.6, -1.3)], 0.005, 0.8)
            metal = np.maximum(metal, np.maximum(1.5 * ring, wire))
    scene.layers["extra"] = scene.layers["extra"] + metal


_CHEST_RULES = dict(
    zip(
        CHEXPERT_FINDINGS,
        (
            _chest_no_finding,
            _chest_enlarged_cardiomediastinum,
            _chest_cardiomegaly,
            _chest_lung_opacity,
            _chest_lung_lesion,
            _chest_edema,
            _chest_consolidation,
            _chest_pneumonia,
            _chest_atelectasis,
            _chest_pneumothorax,
            _chest_pleural_effusion,
            _chest_pleural_other,
            _chest_fracture,
            _chest_support_devices,
        ),
        strict=True,
    )
)


# --------------------------------------------------------------------------- head CT (axial)


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


class _HeadCT(_Scene):
    """An axial non-contrast head CT slice at the level of the lateral ventricles, in HU."""

    def __init__(self, seed: int, acquisition: int, resolution: int):
        a = self.anatomy = _head_anatomy(seed)
        acq = _rng(seed, "head_ct", "acquisition", acquisition)
        pose = _Pose(
            dx=acq.normal(0.0, 0.03), dy=acq.normal(0.0, 0.03), angle=acq.normal(0.0, 0.12), scale=a.size * acq.uniform(0.97, 1.03)
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
        grey = np.maximum(_edge(depth - ribbon, 0.015), _edge(sulcus_dist - 0.03, 0.012) * _edge(depth - sulcus_depth - 0.03, 0.015))
        for s in _SIGN:  # basal ganglia and thalami
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
        calcs = sum(_dot(np.hypot(u - x * k, v - y * k), 0.009, px) for x, y in ((-0.16, 0.2), (0.16, 0.2), (0.0, 0.16)))
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
        for s in _SIGN:
            frontal = np.array([(s * 0.035, -0.1), (s * 0.07, -0.22), (s * 0.1, -0.3)]) * k
            sd = np.minimum(sd, _capsules(u, v, frontal, np.array((0.022, 0.03, 0.012)) * k))
            occipital = np.array([(s * 0.13, 0.14), (s * 0.17, 0.24), (s * 0.19, 0.34)]) * k
            sd = np.minimum(sd, _capsules(u, v, occipital, np.array((0.02, 0.03, 0.01)) * k))
        return sd

    def fissures(self):
        """Interhemispheric fissure (front and back) and both Sylvian fissures, as CSF coverage."""
        a, px = self.anatomy, self.px
        midline = _line(np.abs(self.u), 0.006 + 0.4 * a.sulcus_hw, px) * self.interhemispheric()
        sylvian = sum(_line(d, (0.012 + a.sulcus_hw) * (1.0 - 0.7 * h), px) for d, h in (self.sylvian(s) for s in _SIGN))
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


def _head_no_finding(scene: _HeadCT, rng: np.random.Generator) -> None:
    """No finding: the absence of the haemorrhage rules; draws nothing."""


def _collection(scene: _HeadCT, thickness: np.ndarray) -> np.ndarray:
    """A collection lining the inner table, `thickness` [R, R] deep (inwards) at each pixel's angle."""
    inner = scene.inner_table(scene.theta)
    return _edge(inner - thickness - scene.r, 0.5 * scene.px) * np.clip(thickness / scene.px, 0.0, 1.0)


def _head_epidural(scene: _HeadCT, rng: np.random.Generator) -> None:
    """Epidural: biconvex lens (elliptic thickness profile, 0.11-0.16 at its centre, 0.8-1.1 rad long)
    against the inner table over the temporal/parietal convexity, 65-85 HU."""
    side = rng.choice(_SIGN)
    theta0 = (0.0 if side > 0 else np.pi) + rng.uniform(-0.5, 0.5)
    extent = rng.uniform(0.38, 0.55)
    profile = np.sqrt(np.clip(1.0 - (_wrap(scene.theta - theta0) / extent) ** 2, 0.0, 1.0))
    scene.add_blood(_collection(scene, rng.uniform(0.11, 0.16) * profile), rng.uniform(65, 85))


def _head_subdural(scene: _HeadCT, rng: np.random.Generator) -> None:
    """Subdural: crescent of even thickness (0.05-0.08) along 2-3 rad of the inner table,
    tapering at its ends, concave towards the brain, 60-80 HU."""
    theta0 = rng.choice([0.0, np.pi]) + rng.uniform(-0.7, 0.7)
    extent = rng.uniform(1.0, 1.5)
    profile = np.clip(1.0 - np.abs(_wrap(scene.theta - theta0) / extent) ** 4, 0.0, 1.0) ** 0.4
    scene.add_blood(_collection(scene, rng.uniform(0.05, 0.08) * profile), rng.uniform(60, 80))


def _head_subarachnoid(scene: _HeadCT, rng: np.random.Generator) -> None:
    """Subarachnoid: blood filling (and distending) the sulci of a 1.2-1.8 rad sector, the Sylvian
    fissure of that side and the quadrigeminal cistern: thin bright lines, 60-75 HU."""
    a, u, v, px = scene.anatomy, scene.u, scene.v, scene.px
    side = rng.choice(_SIGN)
    theta0 = (0.0 if side > 0 else np.pi) + rng.uniform(-0.6, 0.6)
    sector = _edge(np.abs(_wrap(scene.theta - theta0)) - rng.uniform(0.6, 0.9), 0.05)
    depth = scene.inner_table(scene.theta) - scene.r
    distance, sulcus_depth = scene.nearest_sulcus()
    sulci = _line(distance, 1.8 * a.sulcus_hw + 0.006, px) * _edge(depth - sulcus_depth - 0.01, 0.01)
    surface = _edge(depth - a.csf_rim - 0.01, 0.5 * px)
    sylvian = _line(scene.sylvian(side)[0], 0.02, px)
    cistern = _edge(_ellipse_sd(u, v - 0.25 * a.ventricles, 0.08, 0.045), 0.5 * px)
    scene.add_blood(np.maximum.reduce([np.maximum(sulci, surface) * sector, sylvian, cistern]), rng.uniform(60, 75))


def _head_intraparenchymal(scene: _HeadCT, rng: np.random.Generator) -> None:
    """Intraparenchymal: rounded, slightly irregular hyperdense focus (radius 0.07-0.12, 65-85 HU) in the
    basal ganglia or a lobe, with a rim of hypodense oedema (0.03-0.06 wide)."""
    radius = rng.uniform(0.07, 0.12)
    for _ in range(50):
        if rng.random() < 0.5:  # deep: basal ganglia / thalamus
            cu, cv = rng.choice(_SIGN) * rng.uniform(0.14, 0.22), rng.uniform(-0.08, 0.12)
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


def _head_intraventricular(scene: _HeadCT, rng: np.random.Generator) -> None:
    """Intraventricular: blood layering in the dependent (posterior: supine patient) part of the
    ventricles, with a horizontal fluid level in the image, 55-75 HU."""
    k = scene.anatomy.ventricles
    tips = np.array([(s * 0.19 * k, 0.35 * k) for s in _SIGN] + [(s * 0.13 * k, 0.12 * k) for s in _SIGN])
    _, y = scene.pose.to_image(tips[:, 0], tips[:, 1])
    low, high = float(y[:2].max()), float(y[2:].min())  # image rows of the occipital horn tips and atria
    level = low - rng.uniform(0.45, 0.7) * (low - high)
    layering = _edge(level - scene.y, 1.0 / scene.resolution) * _edge(scene.ventricles_sd(), 0.5 * scene.px)
    scene.add_blood(layering, rng.uniform(55, 75))


_HEAD_RULES = dict(
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


# --------------------------------------------------------------------------- mammogram patch


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


class _Mammo(_Scene):
    """A mammogram patch: fatty and fibroglandular tissue; each acquisition is another patch of the breast."""

    def __init__(self, seed: int, acquisition: int, resolution: int):
        a = self.anatomy = _mammo_anatomy(seed)
        acq = _rng(seed, "mammo", "acquisition", acquisition)
        self.offset = acq.uniform(-2.0, 2.0, 2)
        super().__init__(resolution, _Pose(0.0, 0.0, 0.0, 1.0))  # lesions are placed in patch coordinates
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
        gland = _smoothstep((glandular - threshold) / 0.9 + 0.5) * (0.9 + 0.2 * _fbm(tex, tu, tv, 50, px, octaves=2, extent=extent))
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


def _mammo_normal(scene: _Mammo, rng: np.random.Generator) -> None:
    """Normal: the absence of lesions; draws nothing."""


def _mammo_mass(scene: _Mammo, rng: np.random.Generator) -> None:
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


def _mammo_calcification(scene: _Mammo, rng: np.random.Generator) -> None:
    """Cluster of 8-18 tiny very bright dots (radius 0.02-0.032: 0.6-1 px across at 32 px, drawn with
    their full brightness-area) within 0.1-0.2 of a point, scattered or in a line along a duct."""
    u, v, px = scene.u, scene.v, scene.px
    cu, cv = rng.uniform(-0.35, 0.35, 2)
    spread = rng.uniform(0.1, 0.2)
    n = int(rng.integers(8, 19))
    if rng.random() < 0.4:  # linear, along a duct
        angle = rng.uniform(0, np.pi)
        along, across = rng.uniform(-1.0, 1.0, n) * spread, rng.normal(0.0, 0.015, n)
        points = np.stack([cu + along * math.cos(angle) - across * math.sin(angle), cv + along * math.sin(angle) + across * math.cos(angle)], 1)
    else:
        r, a = spread * np.sqrt(rng.random(n)), rng.uniform(0, 2 * np.pi, n)
        points = np.stack([cu + r * np.cos(a), cv + r * np.sin(a)], 1)
    dots = scene.zeros()
    for (x, y), radius, brightness in zip(points, rng.uniform(0.02, 0.032, n), rng.uniform(0.6, 0.8, n)):
        dots = np.maximum(dots, brightness * _dot(np.hypot(u - x, v - y), radius, px))
    scene.layers["calcification"] = scene.layers["calcification"] + dots * scene.breast


_MAMMO_RULES = dict(zip(MAMMO_CLASSES, (_mammo_normal, _mammo_mass, _mammo_calcification), strict=True))


# --------------------------------------------------------------------------- rendering API

_SCENES = {"chest": (_Chest, _CHEST_RULES), "head_ct": (_HeadCT, _HEAD_RULES), "mammo": (_Mammo, _MAMMO_RULES)}


def _check_modality(modality: str) -> None:
    if modality not in _SCENES:
        raise ValueError(f"unknown phantom modality {modality!r}; expected one of {MODALITIES}")


def _check_resolution(resolution: int) -> None:
    if not isinstance(resolution, (int, np.integer)) or not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise ValueError(f"phantom resolution must be an int in [{MIN_RESOLUTION}, {MAX_RESOLUTION}], got {resolution!r}")


def _scene(modality: str, labels: Sequence[int], resolution: int, seed: int, acquisition: int) -> _Scene:
    """The scene of `modality` with the rule of every positive label drawn, in class order."""
    _check_resolution(resolution)
    scene_type, rules = _SCENES[modality]
    names = CLASSES_BY_MODALITY[modality]
    labels = tuple(int(label) for label in labels)
    if len(labels) != len(names) or any(label not in (0, 1) for label in labels):
        raise ValueError(f"{modality} labels must be {len(names)} values in {{0, 1}} ({names}), got {labels}")
    scene = scene_type(int(seed), int(acquisition), int(resolution))
    for name, label in zip(names, labels):
        if label:
            rules[name](scene, _rng(seed, modality, "finding", name))
    return scene


def render_chest(labels: Sequence[int], resolution: int, seed: int, acquisition: int = 0) -> np.ndarray:
    """PA chest radiograph: uint8 [resolution, resolution], bright = dense.

    Args:
      labels: 14 values in {0, 1}, CHEXPERT_FINDINGS order. Each positive
        finding is drawn by its rule (see the `_chest_*` functions); "No
        Finding" draws nothing, and no consistency between labels is required.
      resolution: 32 ... 1024.
      seed: the patient (anatomy and where each finding is drawn).
      acquisition: the exposure of that patient (positioning, exposure, noise).
    """
    return _scene("chest", labels, resolution, seed, acquisition).image()


def render_head_ct_hu(labels: Sequence[int], resolution: int, seed: int, acquisition: int = 0) -> np.ndarray:
    """Axial head CT slice in Hounsfield units: int16 [resolution, resolution] in [-1024, 3071].

    Air -1000, scalp ~25, bone 700-1800, grey matter 37-42, white matter
    25-30, CSF 2-8, blood 55-85. labels: 6 values, ICH_CLASSES order.
    """
    return _scene("head_ct", labels, resolution, seed, acquisition).hu()


def render_mammo(labels: Sequence[int], resolution: int, seed: int, acquisition: int = 0) -> np.ndarray:
    """Mammogram patch: uint8 [resolution, resolution], bright = dense. labels: 3 values, MAMMO_CLASSES order."""
    return _scene("mammo", labels, resolution, seed, acquisition).image()


def finding_region(modality: str, finding_name: str, resolution: int, seed: int, acquisition: int = 0) -> np.ndarray:
    """Where the rule of `finding_name` draws in the image of (seed, acquisition) with that finding alone.

    bool [resolution, resolution]; empty for the "no finding"/"normal" classes.
    Computed by the renderer's own rule on the renderer's own scene (the
    layers it changes), not from rendered pixels.
    """
    _check_modality(modality)
    _check_resolution(resolution)
    scene_type, rules = _SCENES[modality]
    if finding_name not in rules:
        raise ValueError(f"unknown {modality} finding {finding_name!r}; expected one of {tuple(rules)}")
    scene = scene_type(int(seed), int(acquisition), int(resolution))
    return scene.draw(rules[finding_name], _rng(seed, modality, "finding", finding_name))


# --------------------------------------------------------------------------- cohorts
#
# Generative rule (per patient, then per image), chosen to mimic the real
# cohorts' long-tailed label co-occurrence (a few combinations very common,
# a long tail of rare ones):
#   * images per patient: min(Geometric(p=0.42), 8), mean ~2.3;
#   * a patient draws a clinical scenario, and from it a set of findings;
#   * each image shows each of the patient's findings with probability
#     _KEEP (follow-up films, neighbouring slices, other patches), plus rare
#     incidental ones; the exclusive class ("No Finding", "no finding",
#     "normal") is set exactly when nothing else is (for chest, Support
#     Devices does not count: CheXpert reports it beside No Finding).

_MAX_IMAGES = 8
_IMAGES_P = 0.42
_KEEP = 0.85
_INCIDENTAL = 0.01

# (scenario, weight, P(finding | scenario)); image prevalences come out
# CheXpert-like: Support Devices 0.42, Lung Opacity 0.38, Pleural Effusion
# 0.29, No Finding 0.22, Edema and Atelectasis 0.17, Fracture, Lung Lesion
# and Pleural Other 0.05-0.07 (measured on 3000 patients); the top label
# combination is ~200x as frequent as the median one.
_CHEST_SCENARIOS = (
    ("no acute disease", 0.14, {"Support Devices": 0.15}),
    ("lines and tubes (ICU)", 0.30, {"Support Devices": 0.95, "Lung Opacity": 0.55, "Pleural Effusion": 0.45,
                                     "Atelectasis": 0.35, "Edema": 0.2, "Consolidation": 0.1, "Pneumothorax": 0.08,
                                     "Cardiomegaly": 0.08, "Enlarged Cardiomediastinum": 0.06}),
    ("heart failure", 0.18, {"Edema": 0.75, "Pleural Effusion": 0.65, "Cardiomegaly": 0.55, "Lung Opacity": 0.45,
                             "Support Devices": 0.45, "Enlarged Cardiomediastinum": 0.2, "Atelectasis": 0.2}),
    ("infection", 0.16, {"Lung Opacity": 0.9, "Consolidation": 0.35, "Pneumonia": 0.3, "Pleural Effusion": 0.3,
                         "Atelectasis": 0.3, "Support Devices": 0.35}),
    ("pneumothorax", 0.09, {"Pneumothorax": 0.85, "Support Devices": 0.7, "Lung Opacity": 0.3,
                            "Pleural Effusion": 0.2, "Atelectasis": 0.2, "Fracture": 0.2}),
    ("nodule or mass", 0.06, {"Lung Lesion": 0.85, "Lung Opacity": 0.4, "Pleural Effusion": 0.25, "Pleural Other": 0.15}),
    ("pleural disease", 0.04, {"Pleural Other": 0.7, "Pleural Effusion": 0.5, "Lung Opacity": 0.3, "Fracture": 0.1}),
    ("trauma", 0.03, {"Fracture": 0.85, "Support Devices": 0.3, "Pneumothorax": 0.15, "Lung Opacity": 0.2}),
)

# Head CT: 66% of patients bleed; the first subtype is drawn by weight
# (subdural and intraparenchymal most common, epidural rare, as in RSNA ICH)
# and each other subtype joins it with the probability in its row, so
# mixed haemorrhages are common. Comes out at ~37% "no finding" images,
# subdural, intraparenchymal and subarachnoid ~0.27 each, intraventricular
# 0.18, epidural 0.05 (RSNA itself is ~86% negative: too few positives for
# a benchmark).
_HEAD_POSITIVE = 0.66
_HEAD_FIRST = {"subdural": 0.32, "intraparenchymal": 0.28, "subarachnoid": 0.2, "intraventricular": 0.14, "epidural": 0.06}
_HEAD_WITH = {
    "epidural": {"subdural": 0.3, "subarachnoid": 0.25, "intraparenchymal": 0.1},
    "intraparenchymal": {"intraventricular": 0.35, "subarachnoid": 0.3, "subdural": 0.2, "epidural": 0.02},
    "intraventricular": {"intraparenchymal": 0.4, "subarachnoid": 0.35, "subdural": 0.1},
    "subarachnoid": {"subdural": 0.3, "intraparenchymal": 0.25, "intraventricular": 0.25, "epidural": 0.02},
    "subdural": {"subarachnoid": 0.35, "intraparenchymal": 0.2, "intraventricular": 0.08, "epidural": 0.04},
}

# Mammography: the patient's lesions, then per image a healthy patch of the
# same breast with probability _MAMMO_HEALTHY_PATCH (~55% normal patches).
_MAMMO_PATIENT = ((("normal",), 0.35), (("mass",), 0.35), (("calcification",), 0.2), (("mass", "calcification"), 0.1))
_MAMMO_HEALTHY_PATCH = 0.2


def _patient_findings(modality: str, rng: np.random.Generator) -> set[str]:
    if modality == "chest":
        weights = np.array([w for _, w, _ in _CHEST_SCENARIOS])
        _, _, probabilities = _CHEST_SCENARIOS[rng.choice(len(weights), p=weights / weights.sum())]
        return {name for name in CHEXPERT_FINDINGS[1:] if rng.random() < probabilities.get(name, _INCIDENTAL)}
    if modality == "head_ct":
        if rng.random() >= _HEAD_POSITIVE:
            return set()
        names = list(_HEAD_FIRST)
        weights = np.array(list(_HEAD_FIRST.values()))
        first = names[rng.choice(len(names), p=weights / weights.sum())]
        return {first} | {name for name, p in _HEAD_WITH[first].items() if rng.random() < p}
    combos, weights = zip(*_MAMMO_PATIENT)
    weights = np.array(weights)
    return set(combos[rng.choice(len(combos), p=weights / weights.sum())]) - {"normal"}


def _image_labels(modality: str, patient: set[str], rng: np.random.Generator) -> tuple[int, ...]:
    names = CLASSES_BY_MODALITY[modality]
    if modality == "mammo" and rng.random() < _MAMMO_HEALTHY_PATCH:
        present: set[str] = set()
    else:
        present = {name for name in sorted(patient) if rng.random() < _KEEP}
    if modality == "chest":
        present |= {name for name in names[1:] if rng.random() < _INCIDENTAL / 4}
        pathology = present - {"Support Devices"}
    else:
        pathology = present
    exclusive = names[0]  # "No Finding", "no finding", "normal"
    if not pathology:
        present = (present & {"Support Devices"}) | {exclusive}
    return tuple(int(name in present) for name in names)


def sample_cohort(modality: str, num_patients: int, seed: int) -> list[ImageRecord]:
    """A phantom cohort: records (path None) of `num_patients` patients with 1-8 images each.

    image_id "chest-p000123-i2" (patients and images numbered from 1),
    patient_id "chest-p000123". Labels follow the generative rule above; they
    always have a positive, and the modality's first class ("No Finding",
    "no finding", "normal") is exclusive (chest: except Support Devices).
    Patient i depends only on (modality, seed, i): a bigger cohort extends a
    smaller one. Render an image with `render_seeds(seed, record)`.
    """
    _check_modality(modality)
    if not isinstance(num_patients, (int, np.integer)) or num_patients < 1:
        raise ValueError(f"num_patients must be a positive int, got {num_patients!r}")
    records = []
    for i in range(1, num_patients + 1):
        rng = _rng("cohort", modality, seed, i)
        patient_id = f"{modality}-p{i:06d}"
        patient = _patient_findings(modality, rng)
        for j in range(1, min(int(rng.geometric(_IMAGES_P)), _MAX_IMAGES) + 1):
            records.append(ImageRecord(f"{patient_id}-i{j}", patient_id, _image_labels(modality, patient, rng)))
    return records


def _render_uint8(modality: str, labels: Sequence[int], resolution: int, seed: int, acquisition: int) -> np.ndarray:
    """uint8 [R, R] of any modality; head CT through the brain window."""
    if modality == "head_ct":
        return apply_window(render_head_ct_hu(labels, resolution, seed, acquisition), *WINDOWS["brain"])
    renderer = render_chest if modality == "chest" else render_mammo
    return renderer(labels, resolution, seed, acquisition)


class PhantomSource:
    """A phantom cohort as a medgan Source (medgan.data.sources): rendered on load, nothing on disk.

    Head CT is loaded through the brain window (40/80), like RSNA ICH's default.
    """

    channels = 1

    def __init__(self, modality: str, num_patients: int, seed: int):
        _check_modality(modality)
        self.modality = modality
        self.num_patients = num_patients
        self.seed = seed
        self.version = RENDERER_VERSION  # part of the prepared shards' fingerprint
        self.name = f"phantom_{modality}"
        self.class_names = CLASSES_BY_MODALITY[modality]
        self._records: list[ImageRecord] | None = None

    def index(self) -> tuple[list[ImageRecord], dict[str, int]]:
        if self._records is None:
            self._records = sample_cohort(self.modality, self.num_patients, self.seed)
        return list(self._records), {}

    def load(self, record: ImageRecord, resolution: int) -> tuple[np.ndarray, str]:
        seed, acquisition = render_seeds(self.seed, record)
        image = _render_uint8(self.modality, record.labels, resolution, seed, acquisition)
        return image[..., None], record.patient_id


# --------------------------------------------------------------------------- on-disk layouts


def _check_records(records: Sequence[ImageRecord], modality: str) -> None:
    """The writers' input: records of `modality` with a positive label, as sample_cohort makes them."""
    width = len(CLASSES_BY_MODALITY[modality])
    for record in records:
        if len(record.labels) != width or any(label not in (0, 1) for label in record.labels):
            raise ValueError(f"record {record.image_id!r} has labels {record.labels}; {modality} needs {width} values in {{0, 1}}")
        if not any(record.labels):
            raise ValueError(f"record {record.image_id!r} has no positive label; the loaders would drop it")


_CHEST_PATIENT = re.compile(r"chest-p(\d+)")


def chexpert_patient_id(patient_id: str) -> str:
    """Phantom patient "chest-p000123" -> CheXpert patient folder "patient00123" (same number)."""
    match = _CHEST_PATIENT.fullmatch(patient_id)
    if match is None:
        raise ValueError(f"patient id {patient_id!r} is not a chest phantom id like 'chest-p000123'")
    return f"patient{int(match.group(1)):05d}"


def write_chexpert_layout(
    root: PathLike,
    records: Sequence[ImageRecord],
    resolution: int,
    seed: int,
    lateral_fraction: float = 0.2,
    uncertain_fraction: float = 0.1,
) -> list[ImageRecord]:
    """Writes chest phantom records as a CheXpert-v1.0-small release rooted at `root`.

    `root` is the dataset folder itself (what the CheXpert loader takes as its
    root; name it "CheXpert-v1.0-small" to mirror the download):
        root/train.csv
        root/train/patient00123/study2/view1_frontal.jpg   (and view2_lateral.jpg)
    Path values are "CheXpert-v1.0-small/train/patient00123/study2/view1_frontal.jpg",
    relative to root's parent as in the real CSV. Patient "chest-p000123" is
    "patient00123"; its k-th image (in record order) is study k. The frontal
    image is `PhantomSource("chest", n, seed).load(record)` stored as JPEG
    (quality 95). With probability lateral_fraction a study also has a
    lateral view (a placeholder image: the loader drops laterals by the CSV's
    Frontal/Lateral column, not by pixels).

    Values: positives "1.0", written "-1.0" (uncertain) with probability
    uncertain_fraction (never No Finding, which CheXpert only marks 1.0 or
    blank); negatives "0.0" or blank at random; Sex, Age and AP/PA filled in.
    Images are written first and train.csv last (temp file + rename).

    Returns:
      The frontal records as medgan.data.chexpert.read_index(root, policy="ones")
      reads them back: image_id "patient00123/study2/view1_frontal",
      patient_id "patient00123", the same labels, path
      "train/patient00123/study2/view1_frontal.jpg".
    """
    from PIL import Image

    _check_records(records, "chest")
    root = Path(root)
    rows, frontal = [], []
    studies: dict[str, int] = {}
    for record in records:
        patient = chexpert_patient_id(record.patient_id)
        studies[patient] = study = studies.get(patient, 0) + 1
        person = _rng("chexpert", seed, record.patient_id)
        sex, age = ("Female", "Male")[int(person.integers(2))], int(person.integers(18, 91))
        r = _rng("chexpert", seed, record.image_id)
        render_seed, acquisition = render_seeds(seed, record)
        views = [("view1_frontal", "Frontal", ("AP", "PA")[int(r.random() < 0.3)], acquisition)]
        if r.random() < lateral_fraction:
            views.append(("view2_lateral", "Lateral", "", _stable_int("lateral", acquisition)))
        values = []
        for name, label in zip(CHEXPERT_FINDINGS, record.labels):
            if label:
                uncertain = name != "No Finding" and r.random() < uncertain_fraction
                values.append("-1.0" if uncertain else "1.0")
            else:
                values.append("" if name == "No Finding" or r.random() < 0.5 else "0.0")
        for view, orientation, projection, view_acquisition in views:
            relative = f"train/{patient}/study{study}/{view}.jpg"
            image = render_chest(record.labels, resolution, render_seed, view_acquisition)
            with fileio.atomic_path(root / relative) as temp:
                Image.fromarray(image).save(temp, format="JPEG", quality=95)
            rows.append([f"CheXpert-v1.0-small/{relative}", sex, str(age), orientation, projection, *values])
            if orientation == "Frontal":
                frontal.append(ImageRecord(f"{patient}/study{study}/{view}", patient, tuple(record.labels), relative))

    with fileio.atomic_path(root / "train.csv") as temp, open(temp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_FINDINGS])
        writer.writerows(rows)
    return frontal


# (PixelRepresentation, BitsStored, RescaleSlope, RescaleIntercept): the stored-value
# conventions seen in RSNA ICH. raw = (HU - intercept) / slope is exact for all.
_CT_STORAGE = ((0, 12, 1.0, -1024.0), (1, 16, 1.0, -1024.0), (1, 16, 1.0, 0.0), (0, 16, 0.5, -1024.0))


def _rsna_id(kind: str, seed: int, name: str, digits: int) -> str:
    return "ID_" + hashlib.blake2b(f"rsna/{kind}/{seed}/{name}".encode(), digest_size=8).hexdigest()[:digits]


def write_rsna_layout(
    root: PathLike, records: Sequence[ImageRecord], resolution: int, seed: int, compressed_fraction: float = 0.3
) -> list[ImageRecord]:
    """Writes head CT phantom records as the RSNA ICH (Kaggle stage 2) layout rooted at `root`.

        root/stage_2_train.csv       "ID,Label"; rows ID_<hex>_<subtype> for the 5
                                     subtypes and "any" (= 1 - "no finding")
        root/stage_2_train/ID_<hex>.dcm

    One CT Image Storage file per record: HU of `render_head_ct_hu` at the
    record's `render_seeds(seed, record)`, stored as raw = (HU - intercept) /
    slope with one of the conventions of _CT_STORAGE (uint16 with intercept
    -1024, int16 with intercept -1024 or 0, slope 0.5), WindowCenter/Width
    (single or multi-valued), PatientID, Study/Series/SOPInstanceUID. A
    fraction `compressed_fraction` is compressed losslessly as archives
    deliver them (RLE Lossless or JPEG 2000 Lossless); the rest is Explicit
    or Implicit VR Little Endian. Image ids are "ID_" + 9 hex digits and
    PatientIDs "ID_" + 8 hex digits, hashed from (seed, phantom id).
    Images are written first and the CSV last (temp file + rename).

    Returns:
      The records as medgan.data.rsna_ich.RsnaIchSource(root) gives them back
      after load: image_id "ID_<hex>", patient_id the DICOM PatientID, the
      same labels, path "stage_2_train/ID_<hex>.dcm".
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import (
        CTImageStorage,
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
        JPEG2000Lossless,
        RLELossless,
        generate_uid,
    )

    _check_records(records, "head_ct")
    root = Path(root)
    image_ids = [_rsna_id("image", seed, record.image_id, 9) for record in records]
    if len(set(image_ids)) != len(image_ids):
        raise ValueError("two records hash to the same RSNA image id; are image_ids unique?")
    written, rows = [], []
    slice_number: dict[str, int] = {}
    for record, image_id in zip(records, image_ids):
        patient_id = _rsna_id("patient", seed, record.patient_id, 8)
        slice_number[patient_id] = number = slice_number.get(patient_id, 0) + 1
        r = _rng("rsna", seed, record.image_id)
        pixel_representation, bits, slope, intercept = _CT_STORAGE[int(r.integers(len(_CT_STORAGE)))]
        hu = render_head_ct_hu(record.labels, resolution, *render_seeds(seed, record))
        raw = np.round((hu.astype(np.float64) - intercept) / slope)
        raw = raw.astype(np.int16 if pixel_representation else np.uint16)

        ds = pydicom.Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["sop", str(seed), record.image_id])
        ds.StudyInstanceUID = generate_uid(entropy_srcs=["study", str(seed), record.patient_id])
        ds.SeriesInstanceUID = generate_uid(entropy_srcs=["series", str(seed), record.patient_id])
        ds.Modality = "CT"
        ds.PatientID = patient_id
        ds.StudyID = ""
        ds.InstanceNumber = number
        ds.ImagePositionPatient = [-125.0, -125.0, 5.0 * number]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [round(250.0 / resolution, 6)] * 2
        ds.SliceThickness = 5.0
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ds.Columns = resolution
        ds.BitsAllocated = 16
        ds.BitsStored = bits
        ds.HighBit = bits - 1
        ds.PixelRepresentation = pixel_representation
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
        ds.RescaleType = "HU"
        if r.random() < 0.5:
            ds.WindowCenter, ds.WindowWidth = [40, 40], [80, 80]
        else:
            ds.WindowCenter, ds.WindowWidth = 40, 80
        ds.PixelData = raw.tobytes()
        draw = r.random()
        if draw < compressed_fraction:
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.compress(RLELossless if r.random() < 0.5 else JPEG2000Lossless)
        else:
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian if r.random() < 0.5 else ImplicitVRLittleEndian
        relative = f"stage_2_train/{image_id}.dcm"
        with fileio.atomic_path(root / relative) as temp:
            ds.save_as(temp, enforce_file_format=True)
        any_ = 1 - record.labels[0]
        rows += [(f"{image_id}_{name}", label) for name, label in zip(ICH_SUBTYPES, record.labels[1:])]
        rows.append((f"{image_id}_any", any_))
        written.append(ImageRecord(image_id, patient_id, tuple(record.labels), relative))

    with fileio.atomic_path(root / "stage_2_train.csv") as temp, open(temp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["ID", "Label"])
        writer.writerows(rows)
    return written
