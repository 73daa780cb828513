"""PA chest radiograph phantom: the thorax of a patient, and one drawing rule per CheXpert finding.

`Chest` builds the anatomy of one acquisition as float32 [R, R] layers
(heart, mediastinum, lung fields and their air, bone, added density ...)
and composes them to a uint8 [R, R] image, bright = dense (MONOCHROME2).
The radiograph is rendered as attenuation: a density map D (soft tissue
0.5-1 by path length, aerated lung ~0.25, rib +0.1, callus +0.5, metal +1
to +3) through 1 - exp(-k D). `CHEST_RULES` maps each name of
CHEXPERT_FINDINGS to the rule that draws it into those layers.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from medgan.data.labels import CHEXPERT_FINDINGS
from medgan.data.phantoms.geometry import (
    SIGN,
    Pose,
    Scene,
    _bezier,
    _dot,
    _edge,
    _ellipse_sd,
    _fbm,
    _line,
    _noise_sigma,
    _resolved,
    _rotate,
    _segment,
    _smoothstep,
    _value_noise,
)
from medgan.data.phantoms.seeds import _rng


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


class Chest(Scene):
    """A PA chest radiograph: anatomy, its layers, and the composition to grey levels."""

    def __init__(self, seed: int, acquisition: int, resolution: int):
        a = self.anatomy = _chest_anatomy(seed)
        acq = _rng(seed, "chest", "acquisition", acquisition)
        pose = Pose(
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
        self.abdomen = sum(_edge(self.diaphragm(side, SIGN[side] * u)[0] + 0.02 - v, 0.04) for side in (0, 1)) / 2
        self.soft = a.habitus * body * (0.5 + 0.45 * path) * (1.0 + 0.04 * _fbm(tex, u, v, 4, px))
        # Lung markings: vessels fanning out of each hilum, tapering to the periphery.
        markings = self.zeros()
        for side, s in enumerate(SIGN):
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
        bronchi = sum(_line(_segment(u, v, (0.0, -0.2), (s * 0.15, -0.07))[0], 0.018, px) for s in SIGN)
        bx, by, ba, bb = a.bubble
        bubble = _edge(_ellipse_sd(u - bx, v - (a.dome[1] + by), ba, bb), max(0.5 * px, 0.015))
        self.airways = 0.22 * np.maximum(trachea, 0.6 * bronchi) + 0.3 * bubble

        bone = self.zeros()
        for side in (0, 1):
            for k in range(11):
                bone += self.rib(side, k)
            bone += self.anterior_ribs(side) + self.clavicle(side)
            s = SIGN[side]
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
        t = SIGN[side] * u
        ax = a.lung_ax[side] * (1.0 + 0.22 * np.clip((v - a.lung_cy) / a.lung_ay, -1.0, 1.0))
        return _ellipse_sd(t - a.lung_cx[side], v - a.lung_cy, ax, a.lung_ay)

    def diaphragm_sd(self, side: int, lift: float = 0.0, u=None, v=None):
        u = self.u if u is None else u
        v = self.v if v is None else v
        dome, slope = self.diaphragm(side, SIGN[side] * u, lift)
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
            if self.in_lung(side, SIGN[side] * t, v, margin):
                return side, SIGN[side] * t, v
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
        rows, cols = self.window(*sorted((0.0, SIGN[side] * 1.0)), ys.min() - reach, ys.max() + reach)
        u, v = self.u[rows, cols], self.v[rows, cols]
        t = SIGN[side] * u
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
            rows, cols = self.window(*sorted((SIGN[side] * 0.15, SIGN[side] * (c + 0.1))), v0 - 0.1, v0 + 0.4 * c + 0.1)
            t, v = SIGN[side] * self.u[rows, cols], self.v[rows, cols]
            d = np.abs(v - v0 - 0.4 * (c - t)) / math.sqrt(1.0 + 0.4**2)
            total[rows, cols] += (
                0.035 * _edge(d - 0.03, max(0.5 * px, 0.012)) * _edge(t - c, 0.04) * _edge(0.25 - t, 0.06)
            )
        return total

    def clavicle(self, side: int):
        s = SIGN[side]
        dv = self.anatomy.rib_top + 0.77
        points = _bezier(
            [(s * 0.06, -0.64 + dv), (s * 0.3, -0.62 + dv), (s * 0.45, -0.72 + dv), (s * 0.62, -0.74 + dv)], 16
        )
        d, _ = self.polyline(points)
        return 0.12 * _edge(d - 0.03, max(0.5 * self.px, 0.008)) + 0.06 * _line(np.abs(d - 0.025), 0.006, self.px)

    def hilum(self, side: int) -> tuple[float, float]:
        return SIGN[side] * (self.anatomy.medi_hw + 0.08), -0.02

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


def _chest_no_finding(scene: Chest, rng: np.random.Generator) -> None:
    """No Finding: the absence of the other rules; draws nothing."""


def _chest_enlarged_cardiomediastinum(scene: Chest, rng: np.random.Generator) -> None:
    """Superior mediastinum widened on both sides (half-width +0.13 to +0.18, more than doubling it)."""
    widened = scene.mediastinum(widen=rng.uniform(0.13, 0.18))
    scene.layers["medi"] = np.maximum(scene.layers["medi"], widened)


def _chest_cardiomegaly(scene: Chest, rng: np.random.Generator) -> None:
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


def _patchy(scene: Chest, rng: np.random.Generator, cells: int) -> np.ndarray:
    """Patchy texture in [0.4, 1] for airspace disease: never empty, so the disease always shows."""
    return 0.4 + 0.6 * np.clip(0.5 + 1.2 * _fbm(rng, scene.u, scene.v, cells, scene.px, octaves=3), 0.0, 1.0)


def _bump(x, y, a, b) -> np.ndarray:
    """Smooth compact bump: 1 at the centre, 0 outside the ellipse of half-axes a, b."""
    return np.clip(1.0 - (x / a) ** 2 - (y / b) ** 2, 0.0, 1.0) ** 2


def _chest_lung_opacity(scene: Chest, rng: np.random.Generator) -> None:
    """Patchy airspace brightening in an upper or mid zone of one lung (sometimes also the other lung)."""
    a = scene.anatomy
    sides = [int(rng.integers(2))]
    if rng.random() < 0.35:
        sides.append(1 - sides[0])
    amount = scene.zeros()
    for side in sides:
        zone = rng.uniform(-0.45, 0.05) * a.lung_ay + a.lung_cy
        cx = SIGN[side] * (a.lung_cx[side] + rng.uniform(-0.05, 0.08))
        patch = _bump(scene.u - cx, scene.v - zone, rng.uniform(0.2, 0.26), rng.uniform(0.2, 0.26))
        amount = np.maximum(amount, 0.8 * np.sqrt(patch) * _patchy(scene, rng, 6) * scene.lung_space(side))
    scene.add_opacity(amount)


def _chest_lung_lesion(scene: Chest, rng: np.random.Generator) -> None:
    """A round, slightly lobulated nodule or mass (radius 0.06-0.10) inside one lung, clear of the heart."""
    radius = rng.uniform(0.06, 0.10)
    side, u, v = scene.sample_in_lung(rng, (0, 1), (-0.4, 0.6), (-0.65, 0.45), radius + 0.03)
    phi = np.arctan2(scene.v - v, scene.u - u)
    lobulation = 1.0 + sum(rng.uniform(0.0, 0.07) * np.cos(k * phi + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
    sd = np.hypot(scene.u - u, scene.v - v) - radius * lobulation
    scene.add_opacity(0.8 * _edge(sd, max(0.5 * scene.px, 0.015)) * scene.lung_space(side))


def _chest_edema(scene: Chest, rng: np.random.Generator) -> None:
    """Bilateral perihilar ("bat-wing") haze with fine interstitial texture, fading towards the periphery."""
    amount = scene.zeros()
    texture = 0.75 + 0.5 * _fbm(rng, scene.u, scene.v, 10, scene.px, octaves=2)
    reach = (rng.uniform(0.34, 0.42), rng.uniform(0.42, 0.52))
    for side in (0, 1):
        hu, hv = scene.hilum(side)
        haze = _bump(scene.u - hu - SIGN[side] * 0.06, scene.v - hv - 0.05, *reach)
        amount = np.maximum(amount, rng.uniform(0.7, 0.8) * np.sqrt(haze) * texture * scene.lung_space(side))
    scene.add_opacity(amount)


def _chest_consolidation(scene: Chest, rng: np.random.Generator) -> None:
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


def _chest_pneumonia(scene: Chest, rng: np.random.Generator) -> None:
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


def _chest_atelectasis(scene: Chest, rng: np.random.Generator) -> None:
    """Volume loss and plate atelectasis: the hemidiaphragm lifted by 0.08-0.12 and
    one or two dense linear bands across the lower zone of that lung."""
    a, u, v, px = scene.anatomy, scene.u, scene.v, scene.px
    side = int(rng.integers(2))
    s = SIGN[side]
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
        # a plate seen edge-on
        width = rng.uniform(0.02, 0.028) * np.sqrt(np.clip(1.0 - (2.0 * h - 1.0) ** 2, 0.05, 1.0))
        bands = np.maximum(bands, _edge(d - width, max(0.5 * px, 0.012)))
    scene.add_opacity(0.7 * bands * scene.lung_space(side))


def _chest_pneumothorax(scene: Chest, rng: np.random.Generator) -> None:
    """Apical-lateral pneumothorax: the lung retracts towards its hilum base, leaving a dark rim
    without lung markings between chest wall and a thin bright visceral pleural line."""
    a, u, v, px = scene.anatomy, scene.u, scene.v, scene.px
    side = int(rng.integers(2))
    s = SIGN[side]
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


def _chest_pleural_effusion(scene: Chest, rng: np.random.Generator) -> None:
    """Fluid at one or both lung bases: its meniscus rises towards the lateral wall, the
    costophrenic angle is blunted and the hemidiaphragm silhouette is lost."""
    a, u, v = scene.anatomy, scene.u, scene.v
    draw = rng.random()
    sides = (0,) if draw < 0.4 else (1,) if draw < 0.7 else (0, 1)
    amount = scene.zeros()
    for side in sides:
        t = SIGN[side] * u
        depth = rng.uniform(0.16, 0.3)
        lateral = np.clip((t - a.lung_cx[side] + a.lung_ax[side]) / (2.2 * a.lung_ax[side]), 0.0, 1.0)
        level = a.dome[side] - depth * (0.3 + 1.3 * lateral**2)  # meniscus climbing the lateral wall
        amount = np.maximum(amount, _edge(level - v, 0.03) * scene.lung_space(side))
    scene.add_opacity(0.97 * amount)


def _chest_pleural_other(scene: Chest, rng: np.random.Generator) -> None:
    """Pleural thickening with lumpy plaques (0.04-0.08 thick, calcified along their inner margin)
    lining the lateral chest wall of the mid zone, often bilateral."""
    a, u, v, px = scene.anatomy, scene.u, scene.v, scene.px
    sides = (0, 1) if rng.random() < 0.5 else (int(rng.integers(2)),)
    amount = scene.zeros()
    for side in sides:
        top, bottom = a.lung_cy + rng.uniform(-0.5, -0.35), a.lung_cy + rng.uniform(0.15, 0.3)
        span = _edge(top - v, 0.05) * _edge(v - bottom, 0.05) * _edge(a.lung_cx[side] + 0.05 - SIGN[side] * u, 0.05)
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


def _chest_fracture(scene: Chest, rng: np.random.Generator) -> None:
    """Healing displaced fracture of one or two adjacent posterior ribs on the lateral wall: a cortical
    gap, a step of about a rib's width between the fragments, and a bright fusiform callus at the break."""
    u, v = scene.u, scene.v
    side, k = int(rng.integers(2)), int(rng.integers(2, 7))
    t0 = rng.uniform(0.45, 0.6)
    step = rng.choice([-1.0, 1.0]) * rng.uniform(0.04, 0.055)
    s = SIGN[side]
    for rib in range(k, k + 1 + int(rng.random() < 0.6)):
        yc, slope = scene.rib_centre(rib, t0)
        callus = _bump(*_rotate(u - s * t0, v - yc - 0.5 * step, -s * math.atan(slope)), 0.075, 0.045)
        change = (scene.rib(side, rib, (t0, step)) - scene.rib(side, rib)) + 0.5 * np.sqrt(callus)
        scene.layers["bone"] = scene.layers["bone"] + change


def _chest_support_devices(scene: Chest, rng: np.random.Generator) -> None:
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
        metal = np.maximum(
            metal,
            tube(
                [(0.03, -1.3), (0.04, -0.2), (0.05, a.dome[1] + 0.05), (a.bubble[0] + 0.1, a.dome[1] + 0.25)],
                0.012,
                1.2,
            ),
        )
    if "cvc" in devices:
        s = rng.choice(SIGN)
        metal = np.maximum(
            metal, tube([(s * 0.62, -0.82), (s * 0.2, -0.66), (-0.06, -0.45), (-0.06, -0.12)], 0.01, 1.4)
        )
    if "pacer" in devices:
        bx, by = rng.uniform(0.45, 0.58), rng.uniform(-0.62, -0.5)
        du, dv = np.abs(u - bx) - 0.07, np.abs(v - by) - 0.045  # rounded box, 0.18 x 0.13
        box = _edge(
            np.hypot(np.maximum(du, 0.0), np.maximum(dv, 0.0)) + np.minimum(np.maximum(du, dv), 0.0) - 0.02, 0.5 * px
        )
        metal = np.maximum(metal, 3.0 * box)
        for tip in ((-0.05, 0.05), (0.12, 0.34)):
            metal = np.maximum(metal, tube([(bx - 0.06, by), (0.05, -0.5), (-0.08, -0.15), tip], 0.009, 2.0))
    if "ecg" in devices:
        for _ in range(3):
            cx, cy = rng.uniform(-0.7, 0.7), rng.uniform(-0.7, 0.2)
            ring = (
                _line(np.abs(np.hypot(u - cx, v - cy) - 0.03), 0.008, px)
                + 0.6 * _dot(np.hypot(u - cx, v - cy), 0.01, px)
            )
            wire = tube([(cx, cy), (cx + rng.uniform(-0.3, 0.3), cy - 0.3), (cx * 1.6, -1.3)], 0.005, 0.8)
            metal = np.maximum(metal, np.maximum(1.5 * ring, wire))
    scene.layers["extra"] = scene.layers["extra"] + metal


CHEST_RULES = dict(
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
