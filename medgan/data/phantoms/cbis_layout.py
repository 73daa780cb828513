"""Full-field phantom mammograms written as a CBIS-DDSM download, so the real loader (data/cbis_ddsm) reads them.

The layouts a user has today (`LAYOUTS`):

    descriptive   the NBIA Data Retriever's default (3.6 and later); the CSVs in the download folder
        root/manifest-<digits>/metadata.csv
        root/manifest-<digits>/CBIS-DDSM/Mass-Training_P_00001_LEFT_CC/07-20-2016-DDSM-NA-74994/
            1.000000-full mammogram images-24515/1-1.dcm
        root/manifest-<digits>/CBIS-DDSM/Mass-Training_P_00001_LEFT_CC_1/07-20-2016-DDSM-NA-74994/
            1.000000-ROI mask images-18515/1-1.dcm, 1-2.dcm       (mask and crop, either order)
            1.000000-cropped images-37210/1-1.dcm                 (or the crop in a series of its own)
    classic       the retriever's "classic" folder names, Windows separators in metadata.csv, the
                  CSVs beside it: root/manifest-<digits>/CBIS-DDSM/<subject>/<study UID>/<series UID>/1-1.dcm
    legacy        an older copy: root/CBIS-DDSM/<subject>/<date>-DDSM-<n>/1-<description>-<n>/000000.dcm,
                  no metadata.csv (the loader indexes the DICOM headers), the CSVs beside CBIS-DDSM/
    jpeg          Kaggle's 8-bit JPEG re-release: root/csv/dicom_info.csv, root/csv/<the four CSVs>,
                  root/jpeg/<SeriesInstanceUID>/1-<n>.jpg

In every layout the CSVs carry the 2017 paths, `<subject>/<study UID>/<series
UID>/000000.dcm`, which match no file by name, and the release's quirks: a
share of rows names the crop as the mask (`swapped_fraction`), some masks
are a few pixels larger than their mammogram (`oversized_fraction`,
`oversize_px`), path cells end in a newline, the calc CSVs say `breast
density` where the mass CSVs say `breast_density`, and an image with a mass
and a calcification cluster is stored under both case folders. DICOMs are
Implicit VR Secondary Captures: 16-bit MONOCHROME2 mammograms and crops,
8-bit 0/255 masks.

As in the release: a patient is in the training or the test CSVs; benign
lesions are BENIGN or BENIGN_WITHOUT_CALLBACK; the descriptors (mass shape
and margins, calcification type and distribution) follow the pathology.
Images are written first, the CSVs next and `FINISHED_FILE` (every row
written, as JSON) last.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medgan import fileio
from medgan.data.phantoms.mammo_full import Mammogram, render_full_mammogram
from medgan.data.phantoms.seeds import _rng, _stable_int

LAYOUTS = ("descriptive", "classic", "legacy", "jpeg")
FINISHED_FILE = "phantom_rows.json"
MASS_COLUMNS = ("patient_id", "breast_density", "left or right breast", "image view", "abnormality id",
                "abnormality type", "mass shape", "mass margins", "assessment", "pathology", "subtlety",
                "image file path", "cropped image file path", "ROI mask file path")
CALC_COLUMNS = tuple({"mass shape": "calc type", "mass margins": "calc distribution",
                      "breast_density": "breast density"}.get(c, c) for c in MASS_COLUMNS)
METADATA_COLUMNS = ("Series UID", "Collection", "3rd Party Analysis", "Data Description URI", "Subject ID",
                    "Study UID", "Study Description", "Study Date", "Series Description", "Manufacturer",
                    "Modality", "SOP Class Name", "SOP Class UID", "Number of Images", "File Size",
                    "File Location", "Download Timestamp")
DICOM_INFO_COLUMNS = ("file_path", "image_path", "PatientID", "Rows", "Columns", "StudyInstanceUID",
                      "SeriesInstanceUID", "SeriesNumber", "SeriesDescription")
FULL, MASK, CROP = "full mammogram images", "ROI mask images", "cropped images"
UID_ROOT = "1.3.6.1.4.1.9590.100.1.2"
STUDY_DATE = "07-20-2016"
DESCRIPTORS = {  # (kind, malignant) -> the two descriptor columns' values
    ("mass", False): (("ROUND", "OVAL"), ("CIRCUMSCRIBED",)),
    ("mass", True): (("IRREGULAR", "LOBULATED"), ("SPICULATED", "ILL_DEFINED")),
    ("calcification", False): (("ROUND_AND_REGULAR", "PUNCTATE"), ("SCATTERED", "REGIONAL")),
    ("calcification", True): (("PLEOMORPHIC", "FINE_LINEAR_BRANCHING"), ("CLUSTERED", "LINEAR")),
}


def _uid(*parts: object) -> str:
    return f"{UID_ROOT}.{_stable_int('cbis-uid', *parts) % 10**30}"


def _dicom(pixels: np.ndarray, bits: int, subject: str, study: str, series: str, description: str, number: int):
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ImplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(
        entropy_srcs=[series, str(number)])
    ds.PatientID = subject
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.SeriesDescription, ds.InstanceNumber = description, number
    ds.Modality = "MG"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 16 if bits > 8 else 8
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, 0
    ds.PixelData = pixels.astype(np.uint16 if bits > 8 else np.uint8).tobytes()
    return ds


class _Writer:
    """Writes series in one layout and keeps what metadata.csv / dicom_info.csv list about them."""

    def __init__(self, root: Path, layout: str, metadata: bool, seed: int):
        if layout not in LAYOUTS:
            raise ValueError(f"phantom CBIS-DDSM layout {layout!r}: expected one of {LAYOUTS}")
        self.root, self.layout, self.seed = root, layout, seed
        manifest = f"manifest-{1_600_000_000_000 + _stable_int('cbis-manifest', seed) % 10**11}"
        self.base = {"descriptive": root / manifest, "classic": root / manifest, "legacy": root,
                     "jpeg": root}[layout]
        self.metadata = metadata and layout in ("descriptive", "classic")
        self.listed: list[dict[str, str]] = []

    def csv_dir(self) -> Path:
        return {"descriptive": self.root, "classic": self.base, "legacy": self.root, "jpeg": self.root / "csv"}[
            self.layout]

    def series(self, subject: str, study: str, series: str, description: str,
               files: Sequence[tuple[np.ndarray, int]]) -> list[str]:
        """Writes one series (pixels, bits per file, in file order); returns the files' paths relative to root."""
        if self.layout == "jpeg":
            return self._jpeg_series(subject, study, series, description, files)
        if self.layout == "classic":
            folder = f"{subject}/{study}/{series}"
        else:
            study_folder = f"{STUDY_DATE}-DDSM-{'NA-' if self.layout == 'descriptive' else ''}{study[-5:]}"
            prefix = "1.000000" if self.layout == "descriptive" else "1"
            folder = f"{subject}/{study_folder}/{prefix}-{description}-{series[-5:]}"
        names = ([f"{n:06d}.dcm" for n in range(len(files))] if self.layout == "legacy"
                 else [f"1-{n}.dcm" for n in range(1, len(files) + 1)])
        written = []
        for number, ((pixels, bits), name) in enumerate(zip(files, names), start=1):
            relative = self.base / "CBIS-DDSM" / folder / name
            with fileio.atomic_path(str(relative)) as temp:
                _dicom(pixels, bits, subject, study, series, description, number).save_as(
                    temp, enforce_file_format=True)
            written.append(str(relative.relative_to(self.root)))
        location = f"./CBIS-DDSM/{folder}"
        self.listed.append({
            "Series UID": series, "Collection": "CBIS-DDSM", "3rd Party Analysis": "NO",
            "Data Description URI": "https://doi.org/10.7937/K9/TCIA.2016.7O02S9CY", "Subject ID": subject,
            "Study UID": study, "Study Description": "", "Study Date": STUDY_DATE, "Series Description": description,
            "Manufacturer": "", "Modality": "MG", "SOP Class Name": "Secondary Capture Image Storage",
            "SOP Class UID": "1.2.840.10008.5.1.4.1.1.7", "Number of Images": str(len(files)),
            "File Size": "", "File Location": location.replace("/", "\\") if self.layout == "classic" else location,
            "Download Timestamp": "2026-12-07T10:00:00.000"})
        return written

    def _jpeg_series(self, subject, study, series, description, files) -> list[str]:
        from PIL import Image

        written = []
        for number, (pixels, bits) in enumerate(files, start=1):
            eight = (pixels >> 8 if bits > 8 else pixels).astype(np.uint8)
            name = f"1-{_stable_int('cbis-jpeg', series, number) % 300 + 1}.jpg"
            relative = f"jpeg/{series}/{name}"
            with fileio.atomic_path(str(self.root / relative)) as temp:
                Image.fromarray(eight).save(temp, format="JPEG", quality=90)
            written.append(relative)
            self.listed.append({"file_path": f"CBIS-DDSM/dicom/{series}/{name[:-4]}.dcm",
                                "image_path": f"CBIS-DDSM/{relative}", "PatientID": subject,
                                "Rows": str(pixels.shape[0]), "Columns": str(pixels.shape[1]),
                                "StudyInstanceUID": study, "SeriesInstanceUID": series, "SeriesNumber": "1",
                                "SeriesDescription": description})
        return written

    def finish(self) -> None:
        if self.layout == "jpeg":
            _write_csv(self.root / "csv" / "dicom_info.csv", DICOM_INFO_COLUMNS,
                       [[row[c] for c in DICOM_INFO_COLUMNS] for row in self.listed])
        elif self.metadata:
            _write_csv(self.base / "metadata.csv", METADATA_COLUMNS,
                       [[row[c] for c in METADATA_COLUMNS] for row in self.listed])


def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    with fileio.atomic_path(str(path)) as temp, open(temp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)


def write_cbis_ddsm_layout(root, mammograms: Sequence[Mammogram], height: int, seed: int, *,
                           layout: str = "descriptive", metadata: bool = True, test_fraction: float = 0.2,
                           conspicuity: float = 1.0, swapped_fraction: float = 0.15,
                           crop_series_fraction: float = 0.3, oversized_fraction: float = 0.1, oversize_px: int = 2,
                           on_image=None) -> list[dict]:
    """Writes the mammograms as a CBIS-DDSM download of `layout` under `root`; returns one dict per row written.

    Each dict has the row's image_id ("P_00001_LEFT_CC"), kind, pathology
    ("malignant" / "benign"), abnormality_id, split, csv (the file listing
    it), its quirks (swapped: the mask cell names the crop; crop_series: the
    crop has a series of its own; oversized: the mask is `oversize_px`
    larger than the mammogram) and the files written, relative to `root`
    (image_file, mask_file, crop_file). `metadata=False` leaves out
    metadata.csv (descriptive and classic layouts), so the loader must index
    the DICOM headers. `on_image(n)` is called after the n-th mammogram.
    """
    root = Path(root)
    writer = _Writer(root, layout, metadata, seed)
    rows: dict[str, list[list[str]]] = {}
    written = []
    for done, mammogram in enumerate(mammograms, start=1):
        r = _rng("cbis", seed, mammogram.image_id)
        split_draw = _rng("cbis", seed, "split", mammogram.patient_id).random()
        split, folder_split = ("test", "Test") if split_draw < test_fraction else ("train", "Training")
        image, masks, _ = render_full_mammogram(mammogram, height, conspicuity)
        image16 = image.astype(np.uint16) * 257
        full = {}
        for kind in sorted({lesion.kind for lesion in mammogram.lesions}):
            subject = f"{'Mass' if kind == 'mass' else 'Calc'}-{folder_split}_{mammogram.image_id}"
            study, series = _uid(seed, subject, "study"), _uid(seed, subject, "full")
            files = writer.series(subject, study, series, FULL, [(image16, 16)])
            full[kind] = (f"{subject}/{study}/{series}/000000.dcm", files[0])
        for number, (lesion, mask) in enumerate(zip(mammogram.lesions, masks), start=1):
            subject = f"{'Mass' if lesion.kind == 'mass' else 'Calc'}-{folder_split}_{mammogram.image_id}_{number}"
            study = _uid(seed, subject, "study")
            ys, xs = np.nonzero(mask)
            crop = image16[ys.min():ys.max() + 1, xs.min():xs.max() + 1] if len(ys) else image16[:8, :8]
            oversized = r.random() < oversized_fraction
            mask8 = mask.astype(np.uint8) * 255
            if oversized:
                mask8 = np.pad(mask8, ((0, oversize_px), (0, oversize_px)))
            crop_series = r.random() < crop_series_fraction
            mask_uid = _uid(seed, subject, "roi")
            if crop_series:
                crop_uid = _uid(seed, subject, "crop")
                mask_file = writer.series(subject, study, mask_uid, MASK, [(mask8, 8)])[0]
                crop_file = writer.series(subject, study, crop_uid, CROP, [(crop, 16)])[0]
                mask_cell, crop_cell = (f"{subject}/{study}/{uid}/000000.dcm" for uid in (mask_uid, crop_uid))
            else:
                crop_uid = mask_uid
                mask_first = r.random() < 0.5  # the release stores mask and crop in either order
                pair = [(mask8, 8), (crop, 16)] if mask_first else [(crop, 16), (mask8, 8)]
                files = writer.series(subject, study, mask_uid, MASK, pair)
                mask_file, crop_file = files if mask_first else files[::-1]
                mask_cell, crop_cell = (f"{subject}/{study}/{mask_uid}/{name}.dcm" for name in (
                    ("000000", "000001") if mask_first else ("000001", "000000")))
            swapped = r.random() < swapped_fraction
            if swapped:
                mask_cell, crop_cell = crop_cell, mask_cell
            malignant = lesion.pathology == "MALIGNANT"
            pathology = "MALIGNANT" if malignant else ("BENIGN_WITHOUT_CALLBACK" if r.random() < 0.3 else "BENIGN")
            first, second = DESCRIPTORS[(lesion.kind, malignant)]
            newline = "\n" if r.random() < 0.5 else ""  # the release's path cells sometimes end in one
            row = [mammogram.patient_id, str(int(r.integers(1, 5))), mammogram.side, mammogram.view, str(number),
                   lesion.kind, str(r.choice(first)), str(r.choice(second)), str(4 if malignant else 2), pathology,
                   str(int(r.integers(1, 6))), full[lesion.kind][0], crop_cell + newline, mask_cell + newline]
            name = f"{'mass' if lesion.kind == 'mass' else 'calc'}_case_description_{split}_set.csv"
            rows.setdefault(name, []).append(row)
            written.append({"image_id": mammogram.image_id, "kind": lesion.kind, "abnormality_id": number,
                            "pathology": "malignant" if malignant else "benign", "split": split, "csv": name,
                            "swapped": swapped, "crop_series": crop_series, "oversized": oversized,
                            "image_file": full[lesion.kind][1], "mask_file": mask_file, "crop_file": crop_file})
        if on_image is not None:
            on_image(done)
    writer.finish()
    for name, name_rows in sorted(rows.items()):
        _write_csv(writer.csv_dir() / name, MASS_COLUMNS if name.startswith("mass") else CALC_COLUMNS, name_rows)
    fileio.write_json(str(root / FINISHED_FILE), written)  # last: its presence marks the download complete
    return written
