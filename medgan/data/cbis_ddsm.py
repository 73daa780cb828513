"""CBIS-DDSM (Lee et al., Scientific Data 2017) as users download it today, linked to its CSVs by series UID.

Two releases are read, whichever folder of them the user names:

* **TCIA (DICOM)**, downloaded by opening the collection's `.tcia` manifest
  in the NBIA Data Retriever:

      <download>/manifest-<digits>/metadata.csv     one row per series: Series UID, File Location, ...
      <download>/manifest-<digits>/CBIS-DDSM/...    the series folders
      <download>/{mass,calc}_case_description_{train,test}_set.csv   (separate downloads; here or beside metadata.csv)

  Retriever 3.6 and later name the files `1-1.dcm`, `1-2.dcm`; its default
  "descriptive" folders read `Mass-Training_P_00001_LEFT_CC/07-20-2016-DDSM-NA-74994/
  1.000000-full mammogram images-24515/1-1.dcm`, its "classic" option
  `<subject>/<study UID>/<series UID>/1-1.dcm`; older copies hold `000000.dcm`.
  `root` may be the download folder, a manifest folder, or any folder holding
  `CBIS-DDSM/` (then without `metadata.csv` the DICOM headers are indexed).
* **Kaggle's JPEG re-release** (8-bit, lossy): `root/csv/dicom_info.csv`,
  `root/csv/*_case_description_*_set.csv`, `root/jpeg/<SeriesInstanceUID>/1-<k>.jpg`.

The CSVs' paths (`<subject>/<study UID>/<series UID>/000000.dcm`, written
against the 2017 layout) match none of these trees by name; their third
component, the series UID, is the link. A series is found through
`metadata.csv`'s File Location, Kaggle's `dicom_info.csv`, or else an index
of every DICOM header's SeriesInstanceUID under the tree (built once, cached
in `cache_dir` and refreshed for files whose size or time changed).

Columns read: patient_id, left or right breast, image view, abnormality id,
abnormality type, pathology (MALIGNANT; BENIGN and BENIGN_WITHOUT_CALLBACK
are benign), image file path, cropped image file path, ROI mask file path.
An abnormality's mask and crop are two files of one "ROI mask images" series
in no fixed order, or a mask series beside a "cropped images" series, and
many rows name the crop as the mask; so both series are candidates and
`load_case` takes as the mask the binary image of the mammogram's size
(within `MASK_SIZE_TOLERANCE`, resized onto it), never a crop.

Rows that cannot be used are dropped and counted by reason, with the first
example of each reason kept for the error a caller raises when too few rows
survive (`check_kept`).
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from medgan import fileio
from medgan.data import csvfile
from medgan.data.records import TooFewKept, UnreadableImage

CSV_FILES = tuple(f"{kind}_case_description_{split}_set.csv"
                  for kind in ("mass", "calc") for split in ("train", "test"))
IMAGE_DIR = "CBIS-DDSM"
METADATA_FILE = "metadata.csv"
METADATA_COLUMNS = ("Series UID", "File Location")
KAGGLE_INFO = os.path.join("csv", "dicom_info.csv")
KAGGLE_COLUMNS = ("image_path", "SeriesInstanceUID")
HEADER_INDEX_FILE = "cbis_series_index.json"
COLUMNS = ("patient_id", "left or right breast", "image view", "abnormality id", "abnormality type", "pathology",
           "image file path", "cropped image file path", "ROI mask file path")
PATHOLOGY = {"MALIGNANT": "malignant", "BENIGN": "benign", "BENIGN_WITHOUT_CALLBACK": "benign"}
KIND = {"mass": "mass", "calcification": "calcification"}
SIDES, VIEWS = ("LEFT", "RIGHT"), ("CC", "MLO")
IMAGE_SUFFIXES = (".dcm", ".jpg", ".jpeg", ".png")
# A mask may be this many pixels, or this share of a side if more, larger or smaller than its mammogram
# and still be resized onto it (the release has masks a few pixels off); beyond it the abnormality is dropped.
MASK_SIZE_TOLERANCE = (8, 0.01)
WHERE_FROM = (
    "CBIS-DDSM comes from The Cancer Imaging Archive's collection page: the images through the .tcia "
    "manifest opened in the NBIA Data Retriever (a folder manifest-<digits>/ with metadata.csv and "
    "CBIS-DDSM/), and the four case-description CSVs as separate downloads, "
    f"{', '.join(CSV_FILES)}, put beside metadata.csv or in the folder above it. Kaggle's JPEG "
    "re-release is read as it unpacks: csv/ (dicom_info.csv and the four CSVs) beside jpeg/.")


@dataclasses.dataclass(frozen=True)
class Abnormality:
    kind: str  # "mass" or "calcification"
    pathology: str  # "malignant" or "benign"
    abnormality_id: int
    candidates: tuple[str, ...]  # the files of its mask and crop series: the mask is one of them
    crop_column: tuple[str, ...] = ()  # those of them the row lists as its cropped image's series


@dataclasses.dataclass(frozen=True)
class MammogramCase:
    """One full mammogram and the abnormalities outlined on it."""

    image_id: str  # "P_00001_LEFT_CC"
    patient_id: str
    side: str
    view: str
    image_path: str  # the file, absolute
    abnormalities: tuple[Abnormality, ...]


@dataclasses.dataclass(frozen=True)
class Release:
    """Where the parts of one CBIS-DDSM copy are."""

    layout: str  # "dicom" (TCIA) or "jpeg" (Kaggle)
    root: Path  # the folder the user named
    csv_paths: tuple[Path, ...]
    metadata: tuple[Path, ...] = ()  # TCIA metadata.csv files, one per manifest folder
    image_dirs: tuple[Path, ...] = ()  # CBIS-DDSM/ folders to index by DICOM header (no metadata.csv)
    dicom_info: Path | None = None  # Kaggle

    @property
    def index_kind(self) -> str:
        if self.layout == "jpeg":
            return "dicom_info.csv"
        return METADATA_FILE if self.metadata else "DICOM headers"

    def describe(self) -> str:
        if self.layout == "jpeg":
            return f"Kaggle JPEG re-release at {self.root} (series linked through {self.dicom_info})"
        where = ", ".join(map(str, self.metadata or self.image_dirs))
        return f"TCIA DICOM release at {self.root} (series linked through {self.index_kind}: {where})"


@dataclasses.dataclass(frozen=True)
class SeriesIndex:
    """Series UID -> the files of that series (or, from metadata.csv, its folder, listed when asked)."""

    kind: str
    entries: dict[str, tuple[Path, ...]]
    unreadable: tuple[str, ...] = ()  # DICOM files whose header could not be read (header index)
    _listed: dict[str, tuple[Path, ...]] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def files(self, uid: str) -> tuple[Path, ...] | None:
        """The series' image files that exist, in natural order; None for a series the index does not know.

        Listed once per series: an image with several abnormalities, or a mask and crop sharing a
        series, is named by several rows.
        """
        if uid not in self.entries:
            return None
        if uid not in self._listed:
            self._listed[uid] = self._list(uid)
        return self._listed[uid]

    def _list(self, uid: str) -> tuple[Path, ...]:
        found: list[Path] = []
        for entry in self.entries[uid]:
            if entry.is_dir():
                found += [p for p in entry.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
            elif entry.is_file():
                found.append(entry)
        return tuple(sorted(set(found), key=_natural))


@dataclasses.dataclass(frozen=True)
class Cases:
    """What `read_cases` found: the mammograms, and what it dropped and why."""

    release: Release
    index: SeriesIndex
    cases: list[MammogramCase]
    rows: int  # abnormality rows in the CSVs
    dropped: dict[str, int]  # reason -> rows
    first_dropped: dict[str, str]  # reason -> the first such row, "file row N: path"

    @property
    def kept(self) -> int:
        return sum(len(case.abnormalities) for case in self.cases)


def _natural(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def find_release(root: str | os.PathLike) -> Release:
    """The release under `root`: a TCIA download, manifest folder or folder holding CBIS-DDSM/, or Kaggle's JPEGs.

    Raises FileNotFoundError naming what was expected and where it comes from.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory. {WHERE_FROM}")
    for base in (root, *_subdirs(root)):
        if (base / KAGGLE_INFO).is_file():
            csvs = _case_csvs((base / "csv", base))
            if not csvs:
                raise FileNotFoundError(f"{base / 'csv'}: dicom_info.csv but none of {list(CSV_FILES)}. {WHERE_FROM}")
            return Release("jpeg", base, csvs, dicom_info=base / KAGGLE_INFO)
    if (root / METADATA_FILE).is_file():
        manifests = [root]
    else:
        manifests = [d for d in _subdirs(root) if (d / METADATA_FILE).is_file()]
    image_dirs = [] if manifests else [d for d in (root, *_subdirs(root)) if (d / IMAGE_DIR).is_dir()]
    if root.name == IMAGE_DIR and not manifests and not image_dirs:
        image_dirs = [root.parent]
    csvs = _case_csvs([root, *manifests, *image_dirs, *(m.parent for m in manifests)])
    if not csvs:
        raise FileNotFoundError(
            f"{root}: none of the CBIS-DDSM case-description CSVs {list(CSV_FILES)} here, in a "
            f"manifest-<digits>/ folder below it or beside {METADATA_FILE}. {WHERE_FROM}")
    if not manifests and not image_dirs:
        raise FileNotFoundError(
            f"{root}: the case-description CSVs but no images: expected {METADATA_FILE} and {IMAGE_DIR}/ here or "
            f"in a manifest-<digits>/ folder below (TCIA), a folder holding {IMAGE_DIR}/, or csv/dicom_info.csv "
            f"and jpeg/ (Kaggle). {WHERE_FROM}")
    return Release("dicom", root, csvs, metadata=tuple(m / METADATA_FILE for m in manifests),
                   image_dirs=tuple(d / IMAGE_DIR for d in image_dirs))


def _case_csvs(folders: Iterable[Path]) -> tuple[Path, ...]:
    """Each of the four CSVs from the first folder that has it."""
    folders = list(dict.fromkeys(folders))
    found = []
    for name in CSV_FILES:
        path = next((folder / name for folder in folders if (folder / name).is_file()), None)
        if path is not None:
            found.append(path)
    return tuple(found)


def _relative(cell: str) -> str:
    """A path cell as a relative POSIX path: stray newlines, Windows separators and a leading ./ removed."""
    path = cell.strip().replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path.lstrip("/")


def index_series(release: Release, cache_dir: str | os.PathLike | None = None,
                 on_file: Callable[[int, int], None] | None = None) -> SeriesIndex:
    """The release's series index (see the module docstring); `on_file(done, total)` reports header reading."""
    entries: dict[str, list[Path]] = collections.defaultdict(list)
    if release.layout == "jpeg":
        with csvfile.open_csv(release.dicom_info, KAGGLE_COLUMNS) as (column, rows):
            for _, row in rows:
                relative = _relative(row[column["image_path"]])
                path = release.root / relative
                if not path.exists() and "/" in relative:  # the cells start with CBIS-DDSM/, the unpacked tree not
                    path = release.root / relative.split("/", 1)[1]
                entries[row[column["SeriesInstanceUID"]].strip()].append(path)
        return SeriesIndex("dicom_info.csv", {uid: tuple(paths) for uid, paths in entries.items()})
    if release.metadata:
        for metadata in release.metadata:
            with csvfile.open_csv(metadata, METADATA_COLUMNS) as (column, rows):
                for _, row in rows:
                    entries[row[column["Series UID"]].strip()].append(
                        metadata.parent / _relative(row[column["File Location"]]))
        return SeriesIndex(METADATA_FILE, {uid: tuple(paths) for uid, paths in entries.items()})
    return _header_index(release.image_dirs, cache_dir, on_file)


def _header_index(image_dirs: Iterable[Path], cache_dir, on_file) -> SeriesIndex:
    """SeriesInstanceUID of every .dcm under `image_dirs`, reusing a cached entry while a file's size and time hold."""
    import pydicom

    files = sorted(Path(folder) / name for image_dir in image_dirs
                   for folder, _, names in os.walk(image_dir) for name in names if name.lower().endswith(".dcm"))
    cache_path = Path(cache_dir) / HEADER_INDEX_FILE if cache_dir else None
    cached = fileio.read_json(cache_path)["files"] if cache_path and cache_path.exists() else {}
    index: dict[str, list] = {}
    entries: dict[str, list[Path]] = collections.defaultdict(list)
    unreadable = []
    for done, path in enumerate(files, start=1):
        stat = path.stat()
        key, stamp = str(path), [stat.st_size, stat.st_mtime_ns]
        if key in cached and cached[key][:2] == stamp:
            uid = cached[key][2]
        else:
            try:
                uid = str(pydicom.dcmread(path, stop_before_pixels=True,
                                          specific_tags=["SeriesInstanceUID"]).SeriesInstanceUID)
            except Exception:  # pydicom raises many types for foreign or truncated files
                uid = None
        index[key] = [*stamp, uid]
        if uid is None:
            unreadable.append(key)
        else:
            entries[uid].append(path)
        if on_file is not None:
            on_file(done, len(files))
    if cache_path is not None and index != cached:
        fileio.write_json(str(cache_path), {"files": index})
    return SeriesIndex("DICOM headers", {uid: tuple(paths) for uid, paths in entries.items()}, tuple(unreadable))


def _series_uid(cell: str) -> str | None:
    """The series UID of a CSV path cell, `<subject>/<study UID>/<series UID>/<file>`; None if it has no such part."""
    parts = _relative(cell).split("/")
    return parts[2] if len(parts) >= 4 and parts[2] else None


def read_cases(root: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
               on_file: Callable[[int, int], None] | None = None) -> Cases:
    """Every full mammogram of the CSVs under `root` with its abnormalities' candidate mask files.

    Rows are dropped and counted by reason: an unknown pathology, type, side
    or view, a path with no series UID, a series the index does not know, a
    series whose files are not on disk, an image series of several files.
    Raises FileNotFoundError (no release found) and ValueError naming a CSV
    that lacks a column.
    """
    release = find_release(root)
    index = index_series(release, cache_dir, on_file)
    dropped: collections.Counter = collections.Counter()
    first_dropped: dict[str, str] = {}
    images: dict[str, dict] = {}
    rows = 0

    def drop(reason: str, where: str) -> None:
        dropped[reason] += 1
        first_dropped.setdefault(reason, where)

    for csv_path in release.csv_paths:
        with csvfile.open_csv(csv_path, COLUMNS) as (column, csv_rows):
            for line, row in csv_rows:
                rows += 1
                field = {name: row[index_].strip() for name, index_ in column.items()}
                where = f"{csv_path.name} row {line}"
                pathology = PATHOLOGY.get(field["pathology"].upper())
                kind = KIND.get(field["abnormality type"].lower())
                side, view = field["left or right breast"].upper(), field["image view"].upper()
                if pathology is None:
                    drop("unknown_pathology", f"{where}: pathology {field['pathology']!r}")
                    continue
                if kind is None or side not in SIDES or view not in VIEWS:
                    drop("unknown_type_side_or_view", f"{where}: {kind!r} {side!r} {view!r}")
                    continue
                try:
                    abnormality_id = int(field["abnormality id"])
                except ValueError:
                    drop("bad_abnormality_id", f"{where}: abnormality id {field['abnormality id']!r}")
                    continue
                image_cell = field["image file path"]
                image_uid = _series_uid(image_cell)
                image_files = None if image_uid is None else index.files(image_uid)
                if image_uid is None:
                    drop("path_without_series_uid", f"{where}: {image_cell!r}")
                    continue
                if image_files is None:
                    drop("image_series_not_in_index", f"{where}: {image_cell} (series {image_uid})")
                    continue
                if not image_files:
                    drop("image_file_missing", f"{where}: {image_cell} (series {image_uid}, listed at "
                                               f"{index.entries[image_uid][0]}: no image file there)")
                    continue
                if len(image_files) > 1:
                    drop("image_series_of_several_files", f"{where}: series {image_uid}: {len(image_files)} files")
                    continue
                mask_cell, crop_cell = field["ROI mask file path"], field["cropped image file path"]
                mask_files, crop_files = (index.files(uid) if uid else None
                                          for uid in (_series_uid(mask_cell), _series_uid(crop_cell)))
                if mask_files is None and crop_files is None:
                    drop("mask_series_not_in_index", f"{where}: {_relative(mask_cell)}")
                    continue
                candidates = tuple(dict.fromkeys(str(p) for p in (mask_files or ()) + (crop_files or ())))
                if not candidates:
                    drop("mask_file_missing", f"{where}: {_relative(mask_cell)} (its series is listed, "
                                              f"but no image file is on disk)")
                    continue
                patient = field["patient_id"]
                image_id = f"{patient}_{side}_{view}"
                entry = images.setdefault(image_id, {"patient": patient, "side": side, "view": view,
                                                     "path": str(image_files[0]), "abnormalities": []})
                in_mask_series = {str(p) for p in mask_files or ()}
                crop_column = tuple(str(p) for p in crop_files or () if str(p) not in in_mask_series)
                entry["abnormalities"].append(Abnormality(kind, pathology, abnormality_id, candidates, crop_column))
    cases = [MammogramCase(image_id, e["patient"], e["side"], e["view"], e["path"],
                           tuple(sorted(e["abnormalities"], key=lambda a: (a.kind, a.abnormality_id))))
             for image_id, e in sorted(images.items())]
    return Cases(release, index, cases, rows, dict(dropped), first_dropped)


def describe_counts(counts: dict[str, int]) -> str:
    """"mask_not_found 12, image_file_missing 8": reasons by count, most first ("" for none)."""
    return ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def check_kept(kept: int, total: int, dropped: dict[str, int], first_dropped: dict[str, str], min_share: float,
               what: str, expected: str, key: str) -> None:
    """Raises TooFewKept when fewer than `min_share` of `total` rows were kept: a layout not found, not data.

    The message names the first dropped row of the most common reason, every
    count, what layout was expected and the config `key` that sets the share.
    """
    if total and kept >= min_share * total and kept > 0:
        return
    counts = describe_counts(dropped) or "none"
    worst = max(dropped, key=dropped.get) if dropped else None
    first = f" First dropped ({worst}): {first_dropped[worst]}." if worst in first_dropped else ""
    raise TooFewKept(
        f"{what}: kept {kept} of {total} rows, below {key}={min_share:g}. Dropped: {counts}.{first} "
        f"medgan read it as {expected}. Nothing was cached; fix the data or the path and run again "
        f"(or lower {key} to accept a partial copy).")


def _image_shape(path: str) -> tuple[int, int]:
    """(rows, columns) from the file's header, without decoding its pixels."""
    if path.lower().endswith(".dcm"):
        import pydicom

        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            return int(ds.Rows), int(ds.Columns)
        except Exception as err:
            raise UnreadableImage(f"{path}: {type(err).__name__}: {err}") from err
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size[1], image.size[0]
    except Exception as err:
        raise UnreadableImage(f"{path}: {type(err).__name__}: {err}") from err


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


def read_image(path: str | os.PathLike) -> np.ndarray:
    """A DICOM, JPEG or PNG image as float32 [H, W] in [0, 1]; UnreadableImage names a bad file."""
    if str(path).lower().endswith(".dcm"):
        return read_dicom(path)
    from PIL import Image

    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L") if image.mode not in ("L", "I;16") else image)
    except Exception as err:
        raise UnreadableImage(f"{path}: {type(err).__name__}: {err}") from err
    top = 65535.0 if pixels.dtype == np.uint16 else 255.0
    return pixels.astype(np.float32) / top


def is_binary(image: np.ndarray, max_grey_share: float = 0.02) -> bool:
    """A mask: almost every pixel near 0 or 1 (JPEG leaves a rim of greys at edges), some of them 1.

    A cropped mammogram fails this: its tissue is mostly mid-grey.
    """
    grey = np.mean((image > 0.25) & (image < 0.75))
    return bool(grey <= max_grey_share and np.any(image >= 0.75))


def _resized(image: np.ndarray, height: int, width: int, nearest: bool = False) -> np.ndarray:
    from PIL import Image

    method = Image.NEAREST if nearest else Image.BOX if image.shape[0] >= height else Image.BILINEAR
    return np.asarray(Image.fromarray(image.astype(np.float32), mode="F").resize((width, height), method))


@dataclasses.dataclass(frozen=True)
class LoadedCase:
    """A mammogram as loaded: `case` keeps only the abnormalities whose mask was found (in `masks`' order)."""

    case: MammogramCase
    image: np.ndarray  # float32 [H, W] in [0, 1]
    masks: np.ndarray  # bool [A, H, W]
    dropped: dict[str, int]  # abnormalities dropped at load, by reason
    first_dropped: dict[str, str]
    mended: dict[str, int]  # "mask_resized": within the tolerance; "mask_in_crop_column": the row named the crop


def load_case(case: MammogramCase, height: int, tolerance: tuple[int, float] = MASK_SIZE_TOLERANCE) -> LoadedCase:
    """The mammogram at `height` px (the width keeps its aspect) and the binary mask of each abnormality.

    The mask is the candidate file whose size is within `tolerance` (pixels,
    share of the side: the larger) of the mammogram's on each side and whose pixels are binary (`is_binary`);
    nearer sizes first. An abnormality with none is dropped and counted:
    `mask_size_mismatch` when a binary image exists but of another size,
    else `mask_not_found`. UnreadableImage when the mammogram itself cannot
    be read.
    """
    image = read_image(case.image_path)
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    kept, masks = [], []
    dropped: collections.Counter = collections.Counter()
    first_dropped: dict[str, str] = {}
    mended: collections.Counter = collections.Counter()
    for abnormality in case.abnormalities:
        mask, path, reason = _find_mask(abnormality.candidates, image.shape, tolerance)
        if mask is None:
            dropped[reason] += 1
            first_dropped.setdefault(reason, f"{case.image_id} abnormality {abnormality.abnormality_id}: "
                                             f"{', '.join(abnormality.candidates)}")
            continue
        if mask.shape != image.shape:
            mended["mask_resized"] += 1
        if path in abnormality.crop_column:
            mended["mask_in_crop_column"] += 1
        kept.append(abnormality)
        masks.append(_resized(mask.astype(np.float32), height, width, nearest=True) > 0.5)
    stacked = np.stack(masks) if masks else np.zeros((0, height, width), bool)
    return LoadedCase(dataclasses.replace(case, abnormalities=tuple(kept)), _resized(image, height, width),
                      stacked, dict(dropped), first_dropped, dict(mended))


def _find_mask(candidates: Iterable[str], shape: tuple[int, ...], tolerance: tuple[int, float]
               ) -> tuple[np.ndarray | None, str | None, str]:
    """(mask bool [h, w], its file, "") or (None, None, the reason none was found)."""
    def off(size: tuple[int, int]) -> float:
        """How far outside the tolerance a size is: <= 1 inside it."""
        return max(abs(got - want) / max(tolerance[0], tolerance[1] * want) for got, want in zip(size, shape))

    sized = []
    for path in candidates:
        try:
            sized.append((off(_image_shape(path)), path))
        except UnreadableImage:
            continue
    sized.sort()
    reason = "mask_not_found"
    for distance, path in sized:
        try:
            pixels = read_image(path)
        except UnreadableImage:
            continue
        if not is_binary(pixels):
            continue
        if distance > 1:
            reason = "mask_size_mismatch"
            continue
        return pixels >= 0.5, path, ""
    return None, None, reason
