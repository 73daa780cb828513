"""Full-field phantom mammograms (CC and MLO views) with masses and calcification clusters and their masks.

The mammography study cuts 256 px patches out of whole mammograms, around
lesions and from healthy tissue (Wu et al. 2020, Sec. 3), so its phantom is a
whole breast: `render_full_mammogram` draws one view of one breast, portrait
[H, W] with W = 5/8 H (the CBIS-DDSM shape), the chest wall on the image's
left for a LEFT breast and on its right for a RIGHT one:

* the breast: a half-ellipse from the chest wall, darker towards the skin
  where the compressed breast is thinner; on an MLO view also the pectoral
  muscle, a bright triangle in the upper chest-wall corner;
* tissue as in the patch phantom (`mammo.py`): fibroglandular clouds along
  the ducts, fat lobules walled by Cooper's ligaments, vessels;
* lesions by rule, each **benign or malignant** (the classic descriptors of
  BI-RADS): a benign mass is round or oval with a circumscribed, smooth
  margin; a malignant mass is irregular, with an ill-defined margin and
  spicules; benign calcifications are few, larger, round and smooth, loosely
  scattered; malignant ones are many, tiny, pleomorphic (elongated, of
  varied size), tightly clustered or in a fine linear branching run.

Each lesion comes with its mask: where its drawn layer exceeds 10% of its
peak (a mass's core and the roots of its spicules); for a cluster of
calcifications the region within a few pixels of its dots, as CBIS-DDSM's
ROI outlines a cluster. `conspicuity` scales every lesion's contrast (1 = as
drawn). Lesion positions are given in breast coordinates (depth from the
chest wall, angle from the nipple axis), so a lesion lies in the breast
whatever the view's geometry.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import scipy.ndimage as ndimage

from medgan.data.phantoms.geometry import _cells, _edge, _fbm, _line, _smoothstep
from medgan.data.phantoms.seeds import _rng

SIDES = ("LEFT", "RIGHT")
VIEWS = ("CC", "MLO")
KINDS = ("mass", "calcification")
PATHOLOGIES = ("MALIGNANT", "BENIGN")
ASPECT = 0.625  # width / height of a full mammogram
MASK_LEVEL = 0.1  # a lesion's mask: its layer above this share of its peak
SIZES = {"mass": (0.014, 0.03), "calcification": (0.012, 0.022)}  # radius / image height: a mass, a cluster


@dataclasses.dataclass(frozen=True)
class Lesion:
    """One abnormality: kind, pathology, where in the breast, and its size (radius / image height)."""

    kind: str  # "mass" or "calcification"
    pathology: str  # "MALIGNANT" or "BENIGN"
    depth: float  # 0 at the chest wall, 1 at the skin, along the lesion's ray
    angle: float  # radians from the nipple axis, towards the feet when positive
    size: float

    def __post_init__(self):
        if self.kind not in KINDS or self.pathology not in PATHOLOGIES:
            raise ValueError(f"lesion {self.kind}/{self.pathology}: kind in {KINDS}, pathology in {PATHOLOGIES}")


@dataclasses.dataclass(frozen=True)
class Mammogram:
    """One view of one breast of one patient; `seed` draws the breast (shared by the breast's views)."""

    patient_id: str
    side: str
    view: str
    lesions: tuple[Lesion, ...]
    seed: int

    @property
    def image_id(self) -> str:
        return f"{self.patient_id}_{self.side}_{self.view}"


@dataclasses.dataclass(frozen=True)
class _Breast:
    centre_row: float  # the nipple axis, fraction of the height
    depth: float  # semi-axis from the chest wall, fraction of the width
    half_height: float  # semi-axis along the chest wall, fraction of the height
    pectoral: tuple[float, float] | None  # (fraction of the width at the top, of the height at the wall), MLO only
    density: float
    orientation: float


def _breast(seed: int, view: str) -> _Breast:
    r = _rng(seed, "mammo_full", "breast", view)
    anatomy = _rng(seed, "mammo_full", "anatomy")
    density, orientation = anatomy.uniform(0.15, 0.75), anatomy.uniform(-0.3, 0.3)
    if view == "CC":
        return _Breast(r.uniform(0.47, 0.53), r.uniform(0.78, 0.94), r.uniform(0.36, 0.44), None, density,
                       orientation)
    return _Breast(r.uniform(0.5, 0.56), r.uniform(0.8, 0.95), r.uniform(0.44, 0.5),
                   (r.uniform(0.25, 0.4), r.uniform(0.35, 0.55)), density, orientation)


def lesion_centre(mammogram: Mammogram, lesion: Lesion, height: int) -> tuple[float, float]:
    """(row, column) in pixels of a lesion, in the image as stored (mirrored for a RIGHT breast)."""
    breast, width = _breast(mammogram.seed, mammogram.view), round(ASPECT * height)
    column = lesion.depth * math.cos(lesion.angle) * breast.depth * width
    row = (breast.centre_row + lesion.depth * math.sin(lesion.angle) * breast.half_height) * height
    return row, (width - 1 - column if mammogram.side == "RIGHT" else column)


def _mass(rows, cols, centre, radius, malignant, rng, px_scale) -> np.ndarray:
    """A mass's added density [H, W]: oval and smooth (benign) or irregular and spiculated (malignant)."""
    dy, dx = rows - centre[0], cols - centre[1]
    rho, phi = np.hypot(dy, dx), np.arctan2(dy, dx)
    if malignant:
        shape = 1.0 + sum(rng.uniform(0.05, 0.16) * np.cos(k * phi + rng.uniform(0, 2 * np.pi)) for k in range(2, 7))
        width = max(1.0, 0.18 * radius)  # ill-defined margin
    else:
        aspect, tilt = rng.uniform(0.75, 1.0), rng.uniform(0, np.pi)
        shape = aspect / np.sqrt((np.cos(phi - tilt) * aspect) ** 2 + np.sin(phi - tilt) ** 2)  # an ellipse
        shape = shape * (1.0 + 0.02 * np.cos(3 * phi + rng.uniform(0, 2 * np.pi)))
        width = 0.6 * px_scale  # circumscribed: a sharp margin
    core = _edge(rho - radius * shape, width)
    layer = rng.uniform(0.26, 0.34) * core * (0.85 + 0.15 * np.clip(1.0 - rho / (radius * 1.2), 0.0, 1.0))
    if malignant:
        for angle in rng.uniform(0, 2 * np.pi, int(rng.integers(8, 17))):
            length = radius * rng.uniform(0.8, 1.8)
            t = np.clip(((dx * math.cos(angle) + dy * math.sin(angle)) - 0.7 * radius) / length, 0.0, 1.0)
            along = 0.7 * radius + t * length
            distance = np.hypot(dx - along * math.cos(angle), dy - along * math.sin(angle))
            spicule = 0.26 * (1.0 - 0.6 * t) * _line(distance, 0.7 * px_scale * (1.0 - t) + 0.3, 1.0)
            layer = np.maximum(layer, spicule)
    return layer.astype(np.float32)


def _calcifications(rows, cols, centre, spread, malignant, rng, px_scale) -> tuple[np.ndarray, np.ndarray]:
    """A cluster's added density [H, W] and the dots' centres [n, 2] (rows, cols)."""
    if malignant:
        n = int(rng.integers(10, 26))
        if rng.random() < 0.4:  # fine linear branching: along a duct, with a side branch
            angle = rng.uniform(0, np.pi)
            t = rng.uniform(-1.0, 1.0, n) * spread
            offsets = np.stack([t * math.sin(angle), t * math.cos(angle)], 1) + rng.normal(0, 0.08 * spread, (n, 2))
            branch = rng.random(n) < 0.3
            offsets[branch] += np.abs(t[branch, None]) * np.array([math.cos(angle), -math.sin(angle)]) * 0.5
        else:
            r, a = 0.6 * spread * np.sqrt(rng.random(n)), rng.uniform(0, 2 * np.pi, n)
            offsets = np.stack([r * np.sin(a), r * np.cos(a)], 1)
        radii = rng.uniform(0.45, 1.1, n) * px_scale
        elongation = rng.uniform(1.0, 2.6, n)  # pleomorphic: rods and commas as well as dots
        brightness = rng.uniform(0.45, 0.75, n)
    else:
        n = int(rng.integers(3, 9))
        r, a = spread * np.sqrt(rng.random(n)), rng.uniform(0, 2 * np.pi, n)
        offsets = np.stack([r * np.sin(a), r * np.cos(a)], 1)
        radii = rng.uniform(1.2, 2.2, n) * px_scale
        elongation = np.ones(n)
        brightness = rng.uniform(0.5, 0.7, n)
    points = np.asarray(centre) + offsets
    layer = np.zeros(rows.shape, np.float32)
    for (y, x), radius, stretch, level in zip(points, radii, elongation, brightness):
        angle = rng.uniform(0, np.pi)
        u = (cols - x) * math.cos(angle) + (rows - y) * math.sin(angle)
        v = -(cols - x) * math.sin(angle) + (rows - y) * math.cos(angle)
        distance = np.hypot(u / stretch, v)
        layer = np.maximum(layer, level * _edge(distance - radius, 0.5))
    return layer, points


def render_full_mammogram(mammogram: Mammogram, height: int, conspicuity: float = 1.0
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image uint8 [H, W], lesion masks bool [L, H, W] in the order of `mammogram.lesions`, breast bool [H, W])."""
    if mammogram.side not in SIDES or mammogram.view not in VIEWS:
        raise ValueError(f"{mammogram.image_id}: side in {SIDES}, view in {VIEWS}")
    if height < 64:
        raise ValueError(f"full mammogram height {height}: at least 64 px")
    width = round(ASPECT * height)
    breast = _breast(mammogram.seed, mammogram.view)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    px = 2.0 / height
    # Breast coordinates: the chest wall at column 0; normalised by the height so texture is isotropic.
    u, v = cols / height * 2.0, (rows / height - breast.centre_row) * 2.0
    reach = np.sqrt((cols / (breast.depth * width)) ** 2 + ((rows / height - breast.centre_row)
                                                            / breast.half_height) ** 2)
    inside = _edge(reach - 1.0, 1.5 / (breast.depth * width))
    thickness = _smoothstep((1.0 - reach) / 0.25)  # the compressed breast thins towards the skin
    tex = _rng(mammogram.seed, "mammo_full", "texture")
    tu = u * math.cos(breast.orientation) + v * math.sin(breast.orientation)
    tv = -u * math.sin(breast.orientation) + v * math.cos(breast.orientation)
    extent = 2.5
    glandular = _fbm(tex, tu / 2.5, tv, 12, px, octaves=4, extent=extent)
    gland = _smoothstep((glandular - (0.45 - 0.9 * breast.density)) / 0.9 + 0.5) * (1.0 - 0.5 * reach)
    first, second = _cells(tex, tu / 1.5, tv, 70, extent)
    septa = _line((second - first) * (2 * extent / 70) * 0.5, 0.003, px) * np.clip(
        0.5 + 1.5 * _fbm(tex, tu, tv, 10, px, octaves=2, extent=extent), 0.0, 1.0)  # some septa fade out
    vessels = _line(np.abs(_fbm(tex, tu * 0.5, tv * 0.5, 3, px, octaves=2, extent=extent)) * 0.5, 0.004, px)
    fine = _fbm(tex, u, v, 60, px, octaves=2, extent=extent)
    tissue = 0.25 * (1.05 - 0.15 * np.clip(first, 0, 1) ** 2) + 0.35 * gland + 0.05 * septa * (1 - gland) \
        + 0.06 * vessels + 0.02 * fine
    density = tissue * (0.55 + 0.45 * thickness)
    if breast.pectoral is not None:
        top, wall = breast.pectoral
        muscle = _edge(cols / (top * width) + rows / (wall * height) - 1.0, 0.02)
        density = density * (1.0 - muscle) + muscle * (0.62 + 0.03 * fine)
    masks, lesion_layer = [], np.zeros((height, width), np.float32)
    px_scale = height / 512.0  # lesion detail in pixels of a 512 px image
    for n, lesion in enumerate(mammogram.lesions):
        rng = _rng(mammogram.seed, "mammo_full", "lesion", mammogram.view, n)
        column = lesion.depth * math.cos(lesion.angle) * breast.depth * width
        row = (breast.centre_row + lesion.depth * math.sin(lesion.angle) * breast.half_height) * height
        radius = lesion.size * height
        malignant = lesion.pathology == "MALIGNANT"
        if lesion.kind == "mass":
            layer = _mass(rows, cols, (row, column), radius, malignant, rng, px_scale)
            mask = layer > MASK_LEVEL * layer.max()
        else:
            layer, points = _calcifications(rows, cols, (row, column), radius, malignant, rng, px_scale)
            dots = layer > MASK_LEVEL * layer.max()
            mask = ndimage.distance_transform_edt(~dots) <= max(2.0, 0.35 * radius)
            mask = ndimage.binary_closing(mask, np.ones((3, 3), bool), iterations=max(1, round(0.3 * radius)))
        lesion_layer = np.maximum(lesion_layer, layer * inside)
        masks.append(mask & (inside > 0.5))
    noise = _rng(mammogram.seed, "mammo_full", "noise", mammogram.view, height).standard_normal(
        (height, width)).astype(np.float32)
    p = 0.03 + (density + conspicuity * lesion_layer) * inside
    p = np.clip(p, 0.0, 1.0) ** 0.95 + 0.015 * noise
    image = np.clip(p * 255.0 + 0.5, 0, 255).astype(np.uint8)
    masks_array = np.stack(masks) if masks else np.zeros((0, height, width), bool)
    breast_mask = inside > 0.5
    if mammogram.side == "RIGHT":
        image, masks_array, breast_mask = image[:, ::-1], masks_array[:, :, ::-1], breast_mask[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(masks_array), np.ascontiguousarray(breast_mask)


def sample_mammograms(num_patients: int, seed: int) -> list[Mammogram]:
    """A cohort of CC and MLO views of one breast per patient, each breast with 1-2 lesions (as in CBIS-DDSM,
    every image holds an abnormality): masses and calcification clusters, half of each malignant."""
    images = []
    for p in range(num_patients):
        r = _rng("mammo_full", "cohort", seed, p)
        patient, side = f"P_{p + 1:05d}", SIDES[int(r.integers(2))]
        count = 1 if r.random() < 0.8 else 2
        kinds = [KINDS[int(r.random() < 0.45)] for _ in range(count)]
        pathologies = [PATHOLOGIES[int(r.random() < 0.5)] for _ in range(count)]
        breast_seed = int(r.integers(2**62))
        for view in VIEWS:
            placement = _rng("mammo_full", "placement", seed, p, view)
            lesions = tuple(
                Lesion(kind, pathology, depth=float(placement.uniform(0.25, 0.7)),
                       angle=float(placement.uniform(-0.6, 0.6)),
                       size=float(placement.uniform(*SIZES[kind])))
                for kind, pathology in zip(kinds, pathologies))
            images.append(Mammogram(patient, side, view, lesions, breast_seed))
    return images
