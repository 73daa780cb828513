"""Geometry shared by the phantom renderers: smooth shape primitives, texture noise, the pose and the scene.

Geometry is defined in normalised coordinates: x (columns) and y (rows) span
[-1, 1] across the image, y downwards. Anatomy lives in *patient*
coordinates (u, v) that a per-acquisition pose (`Pose`: shift, small
rotation, scale) maps onto the image. Every structure is an analytic
function of (u, v) sampled at pixel centres with a one-pixel edge, so the
same patient appears at every resolution (32 ... 1024 px), and structures
thinner than a pixel keep their integrated brightness (`_line`, `_dot`)
instead of aliasing away at 32 px.

The primitives take and return arrays of one shape (the scene's [R, R]
pixel grid, or a window of it); `Scene` holds that grid for one acquisition
and the float32 [R, R] layers that finding rules draw into.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

# Side index 0 is the patient's right, drawn on the image's left (radiological
# convention), at negative u; side 1 the patient's left, at positive u.
SIGN = (-1.0, 1.0)


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


def _fbm(
    rng: np.random.Generator, x, y, base_cells: int, px: float, octaves: int = 4, extent: float = 1.6
) -> np.ndarray:
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
class Pose:
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


class Scene:
    """The pixel grid of one acquisition in patient coordinates, and the layers finding rules draw into."""

    def __init__(self, resolution: int, pose: Pose):
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
        """Distance from every pixel to a polyline [N, 2] and the arc fraction of the closest point, [R, R] each,
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

    def draw(self, rule: Callable[[Scene, np.random.Generator], None], rng: np.random.Generator) -> np.ndarray:
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
