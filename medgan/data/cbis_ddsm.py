"""CBIS-DDSM (Lee et al., Scientific Data 2017), as distributed: four case-description CSVs and DICOM folders.

    root/mass_case_description_train_set.csv    one row per abnormality
    root/mass_case_description_test_set.csv
    root/calc_case_description_train_set.csv
    root/calc_case_description_test_set.csv
    root/CBIS-DDSM/Mass-Training_P_00001_LEFT_CC/<uid>/<uid>/000000.dcm          the full mammogram
    root/CBIS-DDSM/Mass-Training_P_00001_LEFT_CC_1/<uid>/<uid>/00000{0,1}.dcm    ROI mask, cropped image

Columns read: patient_id, left or right breast, image view, abnormality id,
abnormality type, pathology (MALIGNANT, BENIGN, BENIGN_WITHOUT_CALLBACK: the
last two are benign), image file path, ROI mask file path. Paths are relative
to `root/CBIS-DDSM`, as in the release's CSVs (whose paths start with the
case folder).

`read_cases` groups the rows into one `MammogramCase` per full image (patient,
side, view), whichever CSVs list it; rows that cannot be used (an unknown
pathology, side or view, a missing file) are dropped and counted by reason,
never fatal. `load_case` reads a mammogram and its abnormalities' masks,
resized to a common height: the release's ROI folders hold the mask and a
cropped image, and some rows point at the cropped image; a "mask" whose
size is not the mammogram's is then looked for among its folder's files.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from medgan.data import csvfile
from medgan.data.records import UnreadableImage

CSV_FILES = tuple(f"{kind}_case_description_{split}_set.csv"
                  for kind in ("mass", "calc") for split in ("train", "test"))
IMAGE_DIR = "CBIS-DDSM"
COLUMNS = ("patient_id", "left or right breast", "image view", "abnormality id", "abnormality type", "pathology",
           "image file path", "ROI mask file path")
PATHOLOGY = {"MALIGNANT": "malignant", "BENIGN": "benign", "BENIGN_WITHOUT_CALLBACK": "benign"}
KIND = {"mass": "mass", "calcification": "calcification"}
SIDES, VIEWS = ("LEFT", "RIGHT"), ("CC", "MLO")


@dataclasses.dataclass(frozen=True)
class Abnormality:
    kind: str  # "mass" or "calcification"
    pathology: str  # "malignant" or "benign"
    abnormality_id: int
    mask_path: str  # relative to root/CBIS-DDSM


@dataclasses.dataclass(frozen=True)
class MammogramCase:
    """One full mammogram and the abnormalities outlined on it."""

    image_id: str  # "P_00001_LEFT_CC"
    patient_id: str
    side: str
    view: str
    image_path: str  # relative to root/CBIS-DDSM
    abnormalities: tuple[Abnormality, ...]


def read_cases(root: str | os.PathLike) -> tuple[list[MammogramCase], dict[str, int]]:
    """Every full mammogram of the CSVs under `root` with its abnormalities, and the rows dropped per reason.

    Raises FileNotFoundError when none of the four CSVs is there, and
    ValueError (naming the file) when a CSV lacks a column.
    """
    root = Path(root)
    present = [root / name for name in CSV_FILES if (root / name).exists()]
    if not present:
        raise FileNotFoundError(f"{root}: none of the CBIS-DDSM case-description CSVs {list(CSV_FILES)}")
    dropped: collections.Counter = collections.Counter()
    images: dict[str, dict] = {}
    for path in present:
        with csvfile.open_csv(path, COLUMNS) as (column, rows):
            for _, row in rows:
                field = {name: row[index].strip() for name, index in column.items()}
                pathology = PATHOLOGY.get(field["pathology"].upper())
                kind = KIND.get(field["abnormality type"].lower())
                side, view = field["left or right breast"].upper(), field["image view"].upper()
                if pathology is None:
                    dropped["unknown_pathology"] += 1
                    continue
                if kind is None or side not in SIDES or view not in VIEWS:
                    dropped["unknown_type_side_or_view"] += 1
                    continue
                try:
                    abnormality_id = int(field["abnormality id"])
                except ValueError:
                    dropped["bad_abnormality_id"] += 1
                    continue
                image_path, mask_path = _clean(field["image file path"]), _clean(field["ROI mask file path"])
                if not (root / IMAGE_DIR / image_path).is_file():
                    dropped["missing_image_file"] += 1
                    continue
                if not (root / IMAGE_DIR / mask_path).is_file():
                    dropped["missing_mask_file"] += 1
                    continue
                patient = field["patient_id"]
                image_id = f"{patient}_{side}_{view}"
                entry = images.setdefault(image_id, {"patient": patient, "side": side, "view": view,
                                                     "path": image_path, "abnormalities": []})
                entry["abnormalities"].append(Abnormality(kind, pathology, abnormality_id, mask_path))
    cases = [MammogramCase(image_id, e["patient"], e["side"], e["view"], e["path"],
                           tuple(sorted(e["abnormalities"], key=lambda a: a.abnormality_id)))
             for image_id, e in sorted(images.items())]
    return cases, dict(dropped)


def _clean(path: str) -> str:
    """A CSV path as a relative path (the release's values carry stray newlines and Windows separators)."""
    return path.strip().replace("\\", "/").lstrip("/")


def read_dicom(path: str | os.PathLike) -> np.ndarray:
    """A DICOM image as float32 [H, W] in [0, 1] (MONOCHROME1 inverted); UnreadableImage names a bad file."""
    import pydicom

    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array.astype(np.float32)
    except Exception as err:  # pydicom raises many types for truncated or foreign files
        raise UnreadableImage(f"{path}: {type(err).__name__}: {err}") from err
    if pixels.ndim != 2:
        raise UnreadableImage(f"{path}: pixel array of shape {pixels.shape}, expected one grey image")
    top = float(2 ** int(getattr(ds, "BitsStored", 16)) - 1)
    pixels = np.clip(pixels / top, 0.0, 1.0)
    if getattr(ds, "PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1":
        pixels = 1.0 - pixels
    return pixels


def _resized(image: np.ndarray, height: int, width: int, nearest: bool = False) -> np.ndarray:
    from PIL import Image

    method = Image.NEAREST if nearest else Image.BOX if image.shape[0] >= height else Image.BILINEAR
    return np.asarray(Image.fromarray(image.astype(np.float32), mode="F").resize((width, height), method))


def load_case(root: str | os.PathLike, case: MammogramCase, height: int
              ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(image float32 [H, W] in [0, 1], masks bool [A, H, W] of its abnormalities, notes) at `height` px.

    The width keeps the mammogram's aspect ratio. A mask file whose size
    differs from the image's is replaced by the file of that size in the same
    folder when there is one (a note says so); otherwise UnreadableImage.
    """
    base = Path(root) / IMAGE_DIR
    image = read_dicom(base / case.image_path)
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    masks, notes = [], []
    for abnormality in case.abnormalities:
        mask_path = base / abnormality.mask_path
        mask = read_dicom(mask_path)
        if mask.shape != image.shape:
            mask_path, mask = _mask_beside(mask_path, image.shape)
            notes.append(f"{case.image_id} abnormality {abnormality.abnormality_id}: the ROI mask path names a "
                         f"file of another size; used {mask_path.name} of its folder")
        masks.append(_resized(mask, height, width, nearest=True) > 0.5)
    stacked = np.stack(masks) if masks else np.zeros((0, height, width), bool)
    return _resized(image, height, width), stacked, notes


def _mask_beside(path: Path, shape: tuple[int, ...]) -> tuple[Path, np.ndarray]:
    candidates: Iterable[Path] = sorted(p for p in path.parent.glob("*.dcm") if p != path)
    for candidate in candidates:
        mask = read_dicom(candidate)
        if mask.shape == shape:
            return candidate, mask
    raise UnreadableImage(f"{path}: {shape} is the mammogram's size; no ROI mask of that size in {path.parent}")
