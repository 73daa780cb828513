"""The record every data source yields before pixels are read."""

from __future__ import annotations

import dataclasses


class UnreadableImage(Exception):
    """An image file that cannot be decoded (missing, truncated, corrupt).

    Loaders raise it with the offending path in the message; the prepare stage
    catches it, counts the image as skipped and lists it in its report instead
    of aborting a build of thousands of images.
    """


@dataclasses.dataclass(frozen=True)
class ImageRecord:
    """One image of a cohort, indexed but not yet decoded.

    Attributes:
      image_id: unique within its source (e.g. "patient00001/study1/view1_frontal"
        for CheXpert, "ID_0a1b2c3d4" for RSNA, "chest-p000123-i2" for phantoms).
      patient_id: the patient the image belongs to; folds never split a patient.
        Empty string when only the image file knows it (RSNA: DICOM PatientID),
        in which case the loader returns it.
      labels: multi-hot tuple of 0/1 ints in the order of the source's class names
        (medgan.data.labels).
      path: the source file relative to the cohort root, or None for images
        rendered on the fly (phantoms).
    """

    image_id: str
    patient_id: str
    labels: tuple[int, ...]
    path: str | None = None


class TooFewKept(RuntimeError):
    """A preparation kept fewer of its rows than its config asks (`min_kept_share`).

    Almost always a layout medgan did not find (a release downloaded another
    way, a wrong folder), not data to train on, so it is an error and nothing
    is marked finished; the message names the first dropped row, the counts
    by reason and the config key that sets the share.
    """
