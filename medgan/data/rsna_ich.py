"""RSNA Intracranial Haemorrhage Detection (Flanders et al., Radiology: AI 2020).

Layout of the Kaggle release::

    root/
      stage_2_train.csv     header "ID,Label"; rows "ID_<hex>_<subtype>,<0|1>"
      stage_2_train/ID_<hex>.dcm

with six rows per image: the five subtypes (medgan.data.labels.ICH_SUBTYPES)
and "any". The study replaces "any" by "no finding" = 1 - any (docs/ARCHITECTURE.md,
"The benchmark definitions"), so every image has exactly one kind of positive:
"no finding" or at least one subtype.

Pixels: Hounsfield units from the DICOM (raw x RescaleSlope +
RescaleIntercept), padded square with the slice's minimum (air or the
scanner's out-of-field value), area-resampled *in HU* to the benchmark
resolution, then windowed to uint8 (brain 40/80 by default, one channel per
window). Resampling before windowing averages physical densities, the
partial-volume value a coarser reconstruction would record, and costs one
resample for any number of windows. Windowing first would cap values at the
window's edge before averaging: a structure thinner than an output pixel and
far outside the window (thin skull, a calcification) would come out as a dim
grey instead of the bright pixel a coarser scan shows (1 px of 1000 HU bone
among 3 px of 40 HU brain: mean 280 HU -> 255 in the brain window, versus
(255 + 3 x 128) / 4 = 160 when windowed first).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom

from medgan.data import csvfile, imaging
from medgan.data.labels import ICH_CLASSES, ICH_SUBTYPES
from medgan.data.records import ImageRecord, UnreadableImage
from medgan.data.windowing import WINDOWS, apply_window

# The per-image rows of stage_2_train.csv, in the order stored while pivoting.
CSV_SUBTYPES = ICH_SUBTYPES + ("any",)
_ROW_ID = re.compile(r"(ID_[0-9a-fA-F]+)_([A-Za-z]+)")
_UNSET = -1


def read_labels(csv_path: imaging.PathLike) -> dict[str, tuple[int, ...]]:
    """Pivots stage_2_train.csv into {image_id: labels (6, ICH_CLASSES order)}.

    image_id is "ID_<hex>" (the DICOM file's stem); images come in the order
    of their first row. labels[0] ("no finding") = 1 - any, labels[1:] are the
    five subtypes.

    The released file repeats some rows verbatim; identical repeats are
    tolerated. Anything else that makes an image's labels uncertain is an
    error rather than a counted drop: it means the file is not the release
    the benchmark assumes (where "any" is by definition the OR of the
    subtypes), and silently dropping images would bias the cohort.

    Raises:
      ValueError: missing ID/Label column; an ID not of the form
        ID_<hex>_<subtype>, an unknown subtype or a label other than 0/1
        (names the row); a repeat of a row with a different label (names both
        rows); an image lacking one of its six rows, or whose "any" is not the
        OR of its subtypes (names the image). Rows are counted as lines of the
        file, header = row 1.
    """
    csv_path = Path(csv_path)
    position = {subtype: i for i, subtype in enumerate(CSV_SUBTYPES)}
    values: dict[str, list[int]] = {}
    with csvfile.open_csv(csv_path, ("ID", "Label")) as (column, rows):
        id_column, label_column = column["ID"], column["Label"]
        for line, row in rows:
            row_id, text = row[id_column].strip(), row[label_column].strip()
            match = _ROW_ID.fullmatch(row_id)
            if match is None:
                raise ValueError(
                    f"{csv_path}, row {line}, column 'ID': {row_id!r} is not ID_<hex>_<subtype>"
                )
            image_id, subtype = match.groups()
            if subtype not in position:
                raise ValueError(
                    f"{csv_path}, row {line}, column 'ID': unknown subtype {subtype!r} "
                    f"in {row_id!r}; expected one of {CSV_SUBTYPES}"
                )
            if text not in ("0", "1"):
                raise ValueError(f"{csv_path}, row {line}, column 'Label': {text!r} is not 0 or 1")
            label = int(text)
            image = values.setdefault(image_id, [_UNSET] * len(CSV_SUBTYPES))
            i = position[subtype]
            if image[i] == _UNSET:
                image[i] = label
            elif image[i] != label:
                raise ValueError(
                    f"{csv_path}, row {line}: {row_id} = {label} conflicts with "
                    f"row {_first_row_of(csv_path, row_id)}, which gives {image[i]}"
                )

    labels: dict[str, tuple[int, ...]] = {}
    for image_id, image in values.items():
        absent = [subtype for subtype, value in zip(CSV_SUBTYPES, image) if value == _UNSET]
        if absent:
            raise ValueError(f"{csv_path}: image {image_id} has no row for {', '.join(absent)}")
        *subtypes, any_ = image
        if any_ != max(subtypes):
            raise ValueError(
                f"{csv_path}: image {image_id} has any = {any_} but subtypes "
                f"{dict(zip(ICH_SUBTYPES, subtypes))}; 'any' must be their OR"
            )
        labels[image_id] = (1 - any_, *subtypes)
    return labels


def _first_row_of(csv_path: Path, row_id: str) -> int:
    """Row number of the first row with ID `row_id`, for an error message.

    Found by a second pass only when there is an error to report, so the
    normal pass need not remember a row number for each of the ~4.5 million
    labels of the release.
    """
    with csvfile.open_csv(csv_path, ("ID",)) as (column, rows):
        for line, row in rows:
            if row[column["ID"]].strip() == row_id:
                return line
    raise AssertionError(f"{row_id} vanished from {csv_path}")


def dicom_to_hu(ds: pydicom.Dataset) -> np.ndarray:
    """Hounsfield units of a single-frame CT slice: float32 [H, W].

    HU = raw x RescaleSlope + RescaleIntercept (the modality LUT, PS3.3
    C.11.1), with slope 1 and intercept 0 when the tags are absent. `raw` is
    pydicom's pixel_array: compressed transfer syntaxes are decoded by
    pydicom's RLE decoder or the pylibjpeg plugins (JPEG, JPEG-LS,
    JPEG 2000), and bits above BitsStored are masked or sign-extended per
    PixelRepresentation.

    RSNA quirk. Some slices of the RSNA ICH release carry BitsStored 12,
    PixelRepresentation 0 (unsigned) and a RescaleIntercept near 0, yet their
    stored values are HU in 12-bit two's complement: air (-1000 HU) is stored
    as 3096 = 4096 - 1000, which the header would read as +3096 HU (bone).
    No unsigned value with an intercept > -100 can encode air, which every
    head CT contains, so this combination of tags is itself the sign of the
    error. The fix published for the Kaggle challenge (J. Howard, "Cleaning
    the data for rapid prototyping", 2019, used throughout the challenge's
    public kernels) is applied when BitsStored == 12, PixelRepresentation == 0
    and RescaleIntercept > -100:

        HU = ((raw + 1000) mod 4096) x RescaleSlope - 1000

    i.e. raw values >= 3096 wrap to [-1000, -1] HU, values below stay
    positive (up to 3095 HU, dense bone), and the header's intercept is
    replaced. (A plain 12-bit sign extension would instead turn 2048-3095,
    i.e. dense bone and metal, into -2048..-1001.)

    The header is checked before any pixel is decoded: a colour or palette
    image, or a multi-frame object, is not a CT slice in HU (a palette image
    would even decode to a plausible-looking 2-D array of palette indices).

    Raises:
      ValueError: no pixel data, or not a single 2-D grayscale frame (names
        the offending tag).
      Errors of pydicom and its decoders for an unsupported transfer syntax
        or corrupt pixel data.
    """
    _check_grayscale_slice(ds)
    raw = ds.pixel_array
    if raw.ndim != 2 or 0 in raw.shape:
        raise ValueError(f"expected one non-empty grayscale frame, got a pixel array of shape {raw.shape}")
    slope = _number(ds, "RescaleSlope", 1.0)
    intercept = _number(ds, "RescaleIntercept", 0.0)
    raw = raw.astype(np.float64)
    if ds.get("BitsStored") == 12 and ds.get("PixelRepresentation") == 0 and intercept > -100:
        raw = np.mod(raw + 1000, 4096)
        intercept = -1000.0
    return (raw * slope + intercept).astype(np.float32)


GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")


def _check_grayscale_slice(ds: pydicom.Dataset) -> None:
    """Refuses, by its header, a dataset that is not one grayscale frame."""
    if "PixelData" not in ds:
        raise ValueError("no (7FE0,0010) PixelData element: the file holds no image")
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip()
    if photometric not in GRAYSCALE:
        raise ValueError(
            f"PhotometricInterpretation {photometric!r} is not grayscale ({' or '.join(GRAYSCALE)}); "
            "a CT slice in HU has one sample per pixel"
        )
    samples = ds.get("SamplesPerPixel", 1)
    if samples not in (None, "", 1):
        raise ValueError(f"SamplesPerPixel {samples}: a CT slice in HU has one sample per pixel")
    frames = ds.get("NumberOfFrames", 1)
    if frames not in (None, ""):
        try:
            count = int(frames)
        except (TypeError, ValueError):
            raise ValueError(f"NumberOfFrames {frames!r} is not a number") from None
        if count != 1:
            raise ValueError(f"NumberOfFrames {count}: expected a single CT slice, not a multi-frame object")


def _number(ds: pydicom.Dataset, keyword: str, default: float) -> float:
    """A numeric tag's value, or `default` when the tag is absent or empty.

    A value that is not a finite number is an error: NaN or infinite HU would
    pass resampling and come out of the window cast as arbitrary grey levels.
    """
    value = ds.get(keyword)
    if value is None or value == "":
        return default
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{keyword} {value!r} is not a finite number")
    return number


def load_dicom(
    path: imaging.PathLike, resolution: int, windows: Sequence[str] = ("brain",)
) -> tuple[np.ndarray, str]:
    """Reads a CT slice, resamples it in HU and windows it.

    Pipeline (see the module docstring for the order): HU via `dicom_to_hu`
    -> pad square with the slice minimum -> area resampling to [R, R] ->
    one `apply_window` per name in `windows` (keys of windowing.WINDOWS).

    Returns:
      (uint8 [resolution, resolution, len(windows)], the PatientID tag or ""
      when the file has none).

    Raises:
      UnreadableImage: the file is missing, not DICOM, truncated, or its
        pixel data cannot be decoded; the message names the path.
      ValueError: an unknown window name.
    """
    _check_windows(windows)
    try:
        ds = pydicom.dcmread(path)
        hu = dicom_to_hu(ds)
    except Exception as err:
        # pydicom and its decoder plugins signal a bad file with unrelated
        # exception types (InvalidDicomError, OSError, ValueError,
        # AttributeError for a missing element, RuntimeError from a codec);
        # the try covers only reading and decoding this one file.
        raise UnreadableImage(f"{path}: {type(err).__name__}: {err}") from err
    hu = imaging.to_square(hu, "pad", fill=float(hu.min()))
    hu = imaging.resize(hu, resolution, method="area")
    image = np.stack([apply_window(hu, *WINDOWS[name]) for name in windows], axis=-1)
    return image, str(ds.get("PatientID", "") or "")


def _check_windows(windows: Sequence[str]) -> None:
    if isinstance(windows, str) or not windows:
        raise ValueError(f"windows must be a non-empty sequence of names, got {windows!r}")
    unknown = [name for name in windows if name not in WINDOWS]
    if unknown:
        raise ValueError(f"unknown CT window(s) {unknown}; known: {sorted(WINDOWS)}")


class RsnaIchSource:
    """RSNA ICH head CT slices as a medgan Source (medgan.data.sources).

    index() reads only the CSV: records carry path "<image_dir>/ID_<hex>.dcm"
    and an empty patient_id, which load() returns from the DICOM's PatientID
    (the CSV does not know patients). Nothing is dropped at index time (the
    label rules raise instead, see read_labels), so the counts are empty.
    """

    name = "rsna_ich"
    class_names = ICH_CLASSES

    def __init__(
        self,
        root: imaging.PathLike,
        windows: Sequence[str] = ("brain",),
        csv_name: str = "stage_2_train.csv",
        image_dir: str = "stage_2_train",
    ):
        _check_windows(windows)
        self.root = Path(os.path.abspath(root))
        self.windows = tuple(windows)
        self.channels = len(self.windows)
        self.csv_name = csv_name
        self.image_dir = image_dir

    def index(self) -> tuple[list[ImageRecord], dict[str, int]]:
        labels = read_labels(self.root / self.csv_name)
        records = [
            ImageRecord(image_id, "", image_labels, f"{self.image_dir}/{image_id}.dcm")
            for image_id, image_labels in labels.items()
        ]
        return records, {}

    def load(self, record: ImageRecord, resolution: int) -> tuple[np.ndarray, str]:
        """uint8 [resolution, resolution, channels] and the slice's PatientID.

        Falls back to record.patient_id when the file has no PatientID.

        Raises:
          UnreadableImage: bad file, or no patient id from either source (the
            slice could not be kept out of the other folds' patients).
        """
        path = self.root / record.path
        image, patient_id = load_dicom(path, resolution, self.windows)
        patient_id = patient_id or record.patient_id
        if not patient_id:
            raise UnreadableImage(
                f"{path}: no PatientID; the slice cannot be assigned to a patient-disjoint fold"
            )
        return image, patient_id
