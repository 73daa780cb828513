"""Patches of full mammograms, sampled as the mammography study did (Wu et al. 2020, Sec. 3, "Dataset details").

* Normal patch: a random location whose patch holds at least `min_tissue`
  (90%) breast tissue, and, since a CBIS-DDSM image always holds a lesion,
  no lesion pixel of its image.
* Lesion patch: a random pixel of the lesion's mask, then a random offset of
  up to `max_offset` (128 px of a 256 px patch, i.e. half the patch) in x and
  in y, so the lesion sits anywhere in the patch, sometimes at its edge.
* Every patch: flipped left/right at random, rotated by a multiple of 90
  degrees, and scaled by a factor drawn from [0.8, 1.2] (a window of
  size / factor px is cut and resampled to `size`).

Patches are float32 [S, S] in [0, 1] with their lesion mask bool [S, S] (the
union of the image's lesions there). Patients are split 60/20/20 before any
patch is cut (`folds.split_patients`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.ndimage as ndimage


@dataclasses.dataclass(frozen=True)
class PatchRules:
    """The sampling rules; sizes are in pixels of the mammograms as loaded."""

    size: int = 256
    min_tissue: float = 0.9
    max_offset: int = 128
    scale: tuple[float, float] = (0.8, 1.2)
    attempts: int = 200  # random locations tried for a normal patch before the image counts as too small

    def __post_init__(self):
        if not 0 < self.min_tissue <= 1 or self.max_offset < 0 or not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"patch rules {self}: min_tissue in (0, 1], max_offset >= 0, 0 < scale[0] <= scale[1]")


def tissue_mask(image: np.ndarray, level: float = 0.06) -> np.ndarray:
    """Breast tissue of a mammogram [H, W] in [0, 1]: the largest bright region, holes filled (bool [H, W]).

    A 5 x 5 median ignores detector noise without moving the skin line, as a blur would.
    """
    bright = ndimage.median_filter(np.asarray(image, np.float32), size=5) > level
    labels, count = ndimage.label(bright)
    if count == 0:
        return bright
    largest = np.argmax(np.bincount(labels.ravel())[1:]) + 1
    return ndimage.binary_fill_holes(labels == largest)


def _window(centre: tuple[float, float], side: int) -> tuple[int, int]:
    return int(round(centre[0] - side / 2)), int(round(centre[1] - side / 2))


def _cut(array: np.ndarray, top: int, left: int, side: int, fill: float) -> np.ndarray:
    """array[top:top+side, left:left+side], padded with `fill` where the window leaves the image."""
    out = np.full((side, side), fill, array.dtype)
    h, w = array.shape
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + side, h), min(left + side, w)
    if r1 > r0 and c1 > c0:
        out[r0 - top:r1 - top, c0 - left:c1 - left] = array[r0:r1, c0:c1]
    return out


def _augment(patch: np.ndarray, mask: np.ndarray, size: int, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray]:
    """Resampled to size, flipped left/right with probability 1/2, rotated by k * 90 degrees, k in 0..3."""
    zoom = size / patch.shape[0]
    if patch.shape[0] != size:
        patch = ndimage.zoom(patch, zoom, order=1, grid_mode=True, mode="nearest")[:size, :size]
        mask = ndimage.zoom(mask.astype(np.uint8), zoom, order=0, grid_mode=True, mode="nearest")[:size, :size] > 0
    if rng.random() < 0.5:
        patch, mask = patch[:, ::-1], mask[:, ::-1]
    k = int(rng.integers(4))
    return np.ascontiguousarray(np.rot90(patch, k), np.float32), np.ascontiguousarray(np.rot90(mask, k))


def normal_patch(image: np.ndarray, tissue: np.ndarray, lesions: np.ndarray, rules: PatchRules,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """A patch of healthy tissue (>= min_tissue tissue, no lesion pixel), or None when none was found."""
    side = int(round(rules.size / rng.uniform(*rules.scale)))
    h, w = image.shape
    if side > min(h, w):
        return None
    # Window tops/lefts where the tissue share and the lesion count are known in O(1) from summed-area tables.
    tissue_sum = _window_sums(tissue, side)
    lesion_sum = _window_sums(lesions, side)
    allowed = np.argwhere((tissue_sum >= rules.min_tissue * side * side) & (lesion_sum == 0))
    if len(allowed) == 0:
        return None
    top, left = allowed[int(rng.integers(len(allowed)))]
    patch = image[top:top + side, left:left + side]
    return _augment(patch, np.zeros_like(patch, bool), rules.size, rng)


def _window_sums(mask: np.ndarray, side: int) -> np.ndarray:
    """[H - side + 1, W - side + 1]: the number of True pixels of each side x side window (by its top-left)."""
    table = np.pad(np.cumsum(np.cumsum(mask.astype(np.int64), 0), 1), ((1, 0), (1, 0)))
    return table[side:, side:] - table[:-side, side:] - table[side:, :-side] + table[:-side, :-side]


def lesion_patch(image: np.ndarray, mask: np.ndarray, all_lesions: np.ndarray, rules: PatchRules,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A patch around a random pixel of `mask` moved by up to max_offset in x and y; its mask is `all_lesions`."""
    pixels = np.argwhere(mask)
    if len(pixels) == 0:
        raise ValueError("the lesion's mask is empty")
    factor = rng.uniform(*rules.scale)
    side = int(round(rules.size / factor))
    offset = rng.integers(-rules.max_offset, rules.max_offset + 1, 2) / factor
    pixel = pixels[int(rng.integers(len(pixels)))]
    top, left = _window(pixel + offset, side)
    top, left = np.clip((top, left), pixel - side + 1, pixel)  # at the largest offsets the pixel is on the edge
    patch = _cut(image, top, left, side, fill=float(image.min()))
    return _augment(patch, _cut(all_lesions, top, left, side, fill=False), rules.size, rng)


KINDS = ("normal", "mass", "calcification")
PATHOLOGIES = ("normal", "benign", "malignant")


@dataclasses.dataclass(frozen=True)
class PatchSet:
    """Patches of one split. images uint8 [N, S, S], masks bool [N, S, S]; per patch its kind and pathology
    (indices into KINDS and PATHOLOGIES) and the patient and image it was cut from."""

    images: np.ndarray
    masks: np.ndarray
    kind: np.ndarray
    pathology: np.ndarray
    patient_ids: np.ndarray
    image_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def where(self, kind: str, pathology: str | None = None) -> np.ndarray:
        """Indices of the patches of `kind` (and `pathology`)."""
        chosen = self.kind == KINDS.index(kind)
        if pathology is not None:
            chosen &= self.pathology == PATHOLOGIES.index(pathology)
        return np.nonzero(chosen)[0]


def sample_patch_set(loaded, rules: PatchRules, *, per_lesion: int, normals_per_image: int, seed: int
                     ) -> tuple[PatchSet, dict[str, int]]:
    """Patches of mammograms `loaded`: (case, image [H, W] in [0, 1], masks bool [A, H, W]) triples.

    `per_lesion` patches around each abnormality, `normals_per_image` of
    healthy tissue per image. Returns the set and the counts of what could
    not be cut (e.g. "normal_no_room": an image without room for a normal
    patch), never silently short.
    """
    images, masks, kinds, pathologies, patients, image_ids = [], [], [], [], [], []
    missed: dict[str, int] = {}
    for n, (case, image, lesion_masks) in enumerate(loaded):
        rng = np.random.default_rng([seed, n])
        union = lesion_masks.any(0) if len(lesion_masks) else np.zeros(image.shape, bool)
        cut = []
        for abnormality, mask in zip(case.abnormalities, lesion_masks):
            if not mask.any():
                missed["empty_mask"] = missed.get("empty_mask", 0) + per_lesion
                continue
            for _ in range(per_lesion):
                cut.append((lesion_patch(image, mask, union, rules, rng), abnormality.kind, abnormality.pathology))
        tissue = tissue_mask(image)
        # Keep normal patches a little away from the lesions: their margins are not always in the mask.
        near = ndimage.binary_dilation(union, iterations=max(1, rules.size // 16)) if union.any() else union
        for _ in range(normals_per_image):
            found = normal_patch(image, tissue, near, rules, rng)
            if found is None:
                missed["normal_no_room"] = missed.get("normal_no_room", 0) + 1
                continue
            cut.append((found, "normal", "normal"))
        for (patch, patch_mask), kind, pathology in cut:
            images.append(np.clip(np.round(patch * 255.0), 0, 255).astype(np.uint8))
            masks.append(patch_mask)
            kinds.append(KINDS.index(kind))
            pathologies.append(PATHOLOGIES.index(pathology))
            patients.append(case.patient_id)
            image_ids.append(case.image_id)
    size = rules.size
    return PatchSet(np.stack(images) if images else np.zeros((0, size, size), np.uint8),
                    np.stack(masks) if masks else np.zeros((0, size, size), bool),
                    np.array(kinds, np.int8), np.array(pathologies, np.int8),
                    np.array(patients), np.array(image_ids)), missed


def save_patch_set(path: str, patches: PatchSet) -> None:
    """One split's patches as a compressed .npz, written atomically."""
    from medgan import fileio

    with fileio.atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **{field.name: getattr(patches, field.name)
                                  for field in dataclasses.fields(PatchSet)})


def load_patch_set(path: str) -> PatchSet:
    with np.load(path) as npz:
        return PatchSet(**{field.name: npz[field.name] for field in dataclasses.fields(PatchSet)})


LESION_MODELS = ("mass", "calcification", "removal")


def generator_inputs(patches: PatchSet, lesion: str) -> np.ndarray:
    """Indices of the patches a contextual GAN for `lesion` edits: normal tissue, or malignant lesions to remove."""
    if lesion not in LESION_MODELS:
        raise ValueError(f"lesion {lesion!r}: one of {LESION_MODELS}")
    if lesion == "removal":
        return np.sort(np.concatenate([patches.where(kind, "malignant") for kind in ("mass", "calcification")]))
    return patches.where("normal")


def contextual_roles(patches: PatchSet, lesion: str) -> dict[str, np.ndarray]:
    """Indices of the patches that play each role in training the contextual GAN for `lesion`.

    {"base": G's input, "real": what its output must pass for (class 0 of D),
    "benign", "normal": D's auxiliary classes}. Adding a mass or a
    calcification: normal tissue in, malignant lesions of that kind to
    imitate, benign lesions (either kind) and normal tissue as the auxiliary
    classes (the study's semi-supervised loss). Removal: malignant lesions of
    either kind in, normal tissue to imitate; the auxiliary slots hold benign
    and malignant lesions, so D learns what any lesion looks like and G must
    leave none. An empty role is an error naming it.
    """
    base = generator_inputs(patches, lesion)
    normal = patches.where("normal")
    benign = np.concatenate([patches.where("mass", "benign"), patches.where("calcification", "benign")])
    if lesion == "removal":
        roles = {"base": base, "real": normal, "benign": benign, "normal": base}
    else:
        roles = {"base": base, "real": patches.where(lesion, "malignant"), "benign": benign, "normal": normal}
    empty = [role for role, rows in roles.items() if len(rows) == 0]
    if empty:
        raise ValueError(f"the training patches have none for the role(s) {empty} of the {lesion} model")
    return {role: np.sort(rows) for role, rows in roles.items()}
