"""Full-field phantom mammograms written as a CBIS-DDSM release, so the real loader (data/cbis_ddsm) reads them.

    root/{mass,calc}_case_description_{train,test}_set.csv
    root/CBIS-DDSM/Mass-Training_P_00001_LEFT_CC/<uid>/<uid>/000000.dcm       full mammogram, 16 bit
    root/CBIS-DDSM/Mass-Training_P_00001_LEFT_CC_1/<uid>/<uid>/000000.dcm     ROI mask (0 / 255, 8 bit)
    root/CBIS-DDSM/Mass-Training_P_00001_LEFT_CC_1/<uid>/<uid>/000001.dcm     the cropped lesion

As in the release: a patient is in the training or the test CSVs; an image
with a mass and a calcification cluster is stored under both case folders;
benign lesions are BENIGN or BENIGN_WITHOUT_CALLBACK; the descriptors
(mass shape and margins, calcification type and distribution) follow the
pathology; and a share of rows names the cropped image as the ROI mask,
which the loader must notice. Images are written first, the CSVs last.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medgan import fileio
from medgan.data.phantoms.mammo_full import Mammogram, render_full_mammogram
from medgan.data.phantoms.seeds import _rng, _stable_int

MASS_COLUMNS = ("patient_id", "breast_density", "left or right breast", "image view", "abnormality id",
                "abnormality type", "mass shape", "mass margins", "assessment", "pathology", "subtlety",
                "image file path", "cropped image file path", "ROI mask file path")
CALC_COLUMNS = tuple({"mass shape": "calc type", "mass margins": "calc distribution"}.get(c, c) for c in MASS_COLUMNS)
DESCRIPTORS = {  # (kind, malignant) -> the two descriptor columns' values
    ("mass", False): (("ROUND", "OVAL"), ("CIRCUMSCRIBED",)),
    ("mass", True): (("IRREGULAR", "LOBULATED"), ("SPICULATED", "ILL_DEFINED")),
    ("calcification", False): (("ROUND_AND_REGULAR", "PUNCTATE"), ("SCATTERED", "REGIONAL")),
    ("calcification", True): (("PLEOMORPHIC", "FINE_LINEAR_BRANCHING"), ("CLUSTERED", "LINEAR")),
}


def _dicom(pixels: np.ndarray, bits: int, patient_id: str, entropy: Sequence[str]):
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=list(entropy))
    ds.PatientID = patient_id
    ds.Modality = "MG"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 16 if bits > 8 else 8
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, 0
    ds.PixelData = pixels.astype(np.uint16 if bits > 8 else np.uint8).tobytes()
    return ds


def _save(root: Path, relative: str, ds) -> None:
    with fileio.atomic_path(root / relative) as temp:
        ds.save_as(temp, enforce_file_format=True)


def write_cbis_ddsm_layout(root, mammograms: Sequence[Mammogram], height: int, seed: int, *,
                           test_fraction: float = 0.2, conspicuity: float = 1.0,
                           misfiled_mask_fraction: float = 0.1, on_image=None) -> list[dict]:
    """Writes the mammograms as a CBIS-DDSM release under `root`; returns one dict per abnormality row written.

    Each dict has the row's image_id ("P_00001_LEFT_CC"), kind, pathology
    ("malignant" / "benign"), abnormality_id, split and whether its mask
    path was misfiled (names the cropped image). `on_image(n)` is called
    after the n-th mammogram is written (a progress bar).
    """
    root = Path(root)
    rows: dict[str, list[list[str]]] = {}
    written = []
    for done, mammogram in enumerate(mammograms, start=1):
        r = _rng("cbis", seed, mammogram.image_id)
        split_draw = _rng("cbis", seed, "split", mammogram.patient_id).random()
        split, folder_split = ("test", "Test") if split_draw < test_fraction else ("train", "Training")
        image, masks, _ = render_full_mammogram(mammogram, height, conspicuity)
        image16 = image.astype(np.uint16) * 257
        uid = f"1.3.6.1.4.1.9590.100.1.2.{_stable_int('cbis', seed, mammogram.image_id) % 10**12}"
        full_paths = {}
        for kind in sorted({lesion.kind for lesion in mammogram.lesions}):
            prefix = "Mass" if kind == "mass" else "Calc"
            relative = f"{prefix}-{folder_split}_{mammogram.image_id}/{uid}.1/{uid}.2/000000.dcm"
            _save(root / "CBIS-DDSM", relative, _dicom(image16, 16, mammogram.patient_id, ["full", relative]))
            full_paths[kind] = relative
        for number, (lesion, mask) in enumerate(zip(mammogram.lesions, masks), start=1):
            prefix = "Mass" if lesion.kind == "mass" else "Calc"
            folder = f"{prefix}-{folder_split}_{mammogram.image_id}_{number}/{uid}.3/{uid}.{3 + number}"
            ys, xs = np.nonzero(mask)
            crop = image16[ys.min():ys.max() + 1, xs.min():xs.max() + 1] if len(ys) else image16[:8, :8]
            mask_first = r.random() < 0.5  # the release stores mask and crop in either order
            mask_file, crop_file = ("000000.dcm", "000001.dcm") if mask_first else ("000001.dcm", "000000.dcm")
            _save(root / "CBIS-DDSM", f"{folder}/{mask_file}",
                  _dicom(mask.astype(np.uint8) * 255, 8, mammogram.patient_id, ["mask", folder]))
            _save(root / "CBIS-DDSM", f"{folder}/{crop_file}",
                  _dicom(crop, 16, mammogram.patient_id, ["crop", folder]))
            misfiled = r.random() < misfiled_mask_fraction
            malignant = lesion.pathology == "MALIGNANT"
            pathology = "MALIGNANT" if malignant else ("BENIGN_WITHOUT_CALLBACK" if r.random() < 0.3 else "BENIGN")
            first, second = DESCRIPTORS[(lesion.kind, malignant)]
            row = [mammogram.patient_id, str(int(r.integers(1, 5))), mammogram.side, mammogram.view, str(number),
                   lesion.kind, str(r.choice(first)), str(r.choice(second)), str(4 if malignant else 2), pathology,
                   str(int(r.integers(1, 6))), full_paths[lesion.kind], f"{folder}/{crop_file}",
                   f"{folder}/{crop_file if misfiled else mask_file}"]
            rows.setdefault(f"{'mass' if lesion.kind == 'mass' else 'calc'}_case_description_{split}_set.csv",
                            []).append(row)
            written.append({"image_id": mammogram.image_id, "kind": lesion.kind, "abnormality_id": number,
                            "pathology": "malignant" if malignant else "benign", "split": split,
                            "misfiled_mask": misfiled})
        if on_image is not None:
            on_image(done)
    for name, name_rows in sorted(rows.items()):
        columns = MASS_COLUMNS if name.startswith("mass") else CALC_COLUMNS
        with fileio.atomic_path(root / name) as temp, open(temp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows(name_rows)
    return written
