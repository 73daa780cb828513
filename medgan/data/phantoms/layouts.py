"""Writers of phantom cohorts in real cohorts' on-disk layouts, so the real loaders run on them.

write_chexpert_layout writes chest records as a CheXpert-v1.0-small
release (JPEG images and train.csv); write_rsna_layout writes head CT
records as the RSNA ICH stage 2 layout (one DICOM file of [R, R] stored
values per record, and stage_2_train.csv).
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Union

import numpy as np

from medgan import fileio
from medgan.data.labels import CHEXPERT_FINDINGS, CLASSES_BY_MODALITY, ICH_SUBTYPES
from medgan.data.phantoms.rendering import render_chest, render_head_ct_hu
from medgan.data.phantoms.seeds import _rng, _stable_int, render_seeds
from medgan.data.records import ImageRecord

PathLike = Union[str, "os.PathLike[str]"]


def _check_records(records: Sequence[ImageRecord], modality: str) -> None:
    """The writers' input: records of `modality` with a positive label, as sample_cohort makes them."""
    width = len(CLASSES_BY_MODALITY[modality])
    for record in records:
        if len(record.labels) != width or any(label not in (0, 1) for label in record.labels):
            raise ValueError(
                f"record {record.image_id!r} has labels {record.labels}; {modality} needs {width} values in {{0, 1}}"
            )
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
        ds = _ct_dataset(record, patient_id, number, resolution, seed, compressed_fraction)
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


def _ct_dataset(
    record: ImageRecord, patient_id: str, number: int, resolution: int, seed: int, compressed_fraction: float
):
    """The pydicom Dataset of one record's slice (slice `number` of `patient_id`), as write_rsna_layout describes it."""
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

    r = _rng("rsna", seed, record.image_id)
    pixel_representation, bits, slope, intercept = _CT_STORAGE[int(r.integers(len(_CT_STORAGE)))]
    hu = render_head_ct_hu(record.labels, resolution, *render_seeds(seed, record))
    raw = np.round((hu.astype(np.float64) - intercept) / slope)
    raw = raw.astype(np.int16 if pixel_representation else np.uint16)

    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(
        entropy_srcs=["sop", str(seed), record.image_id]
    )
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
        # Keep the seeded instance UID: pydicom draws a random one on compression by default.
        ds.compress(RLELossless if r.random() < 0.5 else JPEG2000Lossless, generate_instance_uid=False)
    else:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian if r.random() < 0.5 else ImplicitVRLittleEndian
    return ds
