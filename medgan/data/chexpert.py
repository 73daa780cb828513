"""CheXpert (Irvin et al., AAAI 2019): train.csv + JPEG folders -> ImageRecords.

Layout of a release (CheXpert-v1.0 or CheXpert-v1.0-small)::

    CheXpert-v1.0-small/            <- `root`: the folder holding train.csv
      train.csv  valid.csv
      train/patient00001/study1/view1_frontal.jpg
      ...

train.csv has the columns Path, Sex, Age, Frontal/Lateral, AP/PA and the 14
observations (medgan.data.labels.CHEXPERT_FINDINGS), each 1.0 (positive),
0.0 (negative), -1.0 (uncertain) or blank (not mentioned in the report).

Path is relative to the folder that *contains* the dataset folder
("CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg"). Since the
user names the dataset folder itself, a Path's first component is resolved
once per distinct value, in this order:
  1. it equals root's name: stripped (the release as downloaded);
  2. root has a folder of that name: the Path is relative to root
     (e.g. "train/patient00001/..." as in later redistributions);
  3. root's parent has a folder of that name: the Path is relative to the
     parent (the release convention with root a sibling of the image folder);
  4. root has a folder named like the Path's second component ("train"):
     stripped (the dataset folder was renamed after download);
  5. otherwise relative to root (no images on disk to decide by; a load then
     reports the missing file by its full path).
ImageRecord.path is the result relative to root ("train/patient00001/...",
"../CheXpert-v1.0-small/train/..." in case 3).

The benchmark rules (docs/ARCHITECTURE.md, "The benchmark definitions"): frontal views only;
uncertain -> positive ("ones", U-Ones of the CheXpert paper; "zeros" and
"ignore" as options); blank -> 0; rows without a positive finding dropped,
since medgan's classes are label combinations and an all-zero row has none.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from medgan.data import csvfile, imaging
from medgan.data.labels import CHEXPERT_FINDINGS
from medgan.data.records import ImageRecord

POLICIES = ("ones", "zeros", "ignore")

PATH_COLUMN = "Path"
VIEW_COLUMN = "Frontal/Lateral"
_PATIENT = re.compile(r"patient\d+")
_UNCERTAIN = -1

def read_index(
    root: imaging.PathLike, csv_name: str = "train.csv", policy: str = "ones"
) -> tuple[list[ImageRecord], dict[str, int]]:
    """Parses root/csv_name into frontal-view records; reads no pixels.

    Every row is validated, including those a rule then drops, so a broken
    file fails whatever the policy. A row is dropped by the first rule that
    applies, and counted under that rule's key:
      "lateral": Frontal/Lateral is "Lateral";
      "uncertain": policy "ignore" and some observation is -1.0 (the row-level
        version of the paper's U-Ignore: a label combination with an unknown
        member is not a class);
      "no_positive": no observation is positive after the policy.
    Policy "ones" maps -1.0 to 1, "zeros" to 0; blank is always 0.

    Args:
      root: the dataset folder (holds csv_name); see the module docstring for
        how Path values are resolved against it.
      csv_name: "train.csv" or "valid.csv".
      policy: "ones", "zeros" or "ignore".

    Returns:
      (records in file order, {"lateral": n, "uncertain": n, "no_positive": n}).
      A record has image_id "patient00001/study1/view1_frontal" (the Path from
      the patient folder on, without extension; CheXpert patient numbers are
      unique across train and valid), patient_id "patient00001", labels (14,
      CHEXPERT_FINDINGS order) and path relative to root.

    Raises:
      ValueError: unknown policy; the file lacks a required column; a row has
        the wrong number of fields, a value other than 1.0/0.0/-1.0/blank, a
        view other than Frontal/Lateral, a Path not ending in
        patientNNNNN/study/view file, or repeats an earlier row's image. The
        message names the file, the row (counted as lines of the file, header
        = row 1, so an editor's line number finds it) and the column.
    """
    if policy not in POLICIES:
        raise ValueError(f"CheXpert label policy {policy!r} is not one of {POLICIES}")
    root = Path(os.path.abspath(root))
    csv_path = root / csv_name
    records: list[ImageRecord] = []
    dropped = {"lateral": 0, "uncertain": 0, "no_positive": 0}
    first_row_of: dict[str, int] = {}
    first_component_rules: dict[str, str] = {}
    required = (PATH_COLUMN, VIEW_COLUMN) + CHEXPERT_FINDINGS
    with csvfile.open_csv(csv_path, required) as (column, rows):
        for line, row in rows:
            where = functools.partial(_where, csv_path, line)  # formatted only for an error
            view = row[column[VIEW_COLUMN]].strip()
            if view not in ("Frontal", "Lateral"):
                raise ValueError(f"{where(VIEW_COLUMN)}: {view!r} is neither 'Frontal' nor 'Lateral'")
            raw = tuple(_parse_observation(row[column[name]], name, where) for name in CHEXPERT_FINDINGS)
            path, image_id, patient_id = _locate(
                row[column[PATH_COLUMN]], root, first_component_rules, where
            )
            if image_id in first_row_of:
                raise ValueError(
                    f"{where(PATH_COLUMN)}: image {image_id} already listed in row {first_row_of[image_id]}"
                )
            first_row_of[image_id] = line

            if view == "Lateral":
                dropped["lateral"] += 1
                continue
            if policy == "ignore" and _UNCERTAIN in raw:
                dropped["uncertain"] += 1
                continue
            uncertain_as = 1 if policy == "ones" else 0
            labels = tuple(uncertain_as if value == _UNCERTAIN else value for value in raw)
            if not any(labels):
                dropped["no_positive"] += 1
                continue
            records.append(ImageRecord(image_id, patient_id, labels, path))
    return records, dropped


def _where(csv_path: Path, line: int, column: str) -> str:
    return f"{csv_path}, row {line}, column {column!r}"


# The release's spellings; other spellings of the same numbers ("1", "-1.00")
# take the slower float() path.
_OBSERVATIONS = {"1.0": 1, "0.0": 0, "-1.0": -1, "": 0}


def _parse_observation(text: str, column: str, where: Callable[[str], str]) -> int:
    """'1.0' -> 1, '0.0' or blank -> 0, '-1.0' -> -1."""
    text = text.strip()
    value = _OBSERVATIONS.get(text)
    if value is not None:
        return value
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if number not in (1.0, 0.0, -1.0):
        raise ValueError(f"{where(column)}: {text!r} is not one of 1.0, 0.0, -1.0 or blank")
    return int(number)


def _locate(
    value: str, root: Path, rules: dict[str, str], where: Callable[[str], str]
) -> tuple[str, str, str]:
    """CSV Path -> (path relative to root, image_id, patient_id).

    `rules` caches, per first component, which case of the module docstring
    applies, so the file system is probed once per distinct value, not per row.
    """
    value = value.strip()
    parts = [part for part in value.split("/") if part not in ("", ".")]
    if value.startswith("/") or len(parts) < 4 or not _PATIENT.fullmatch(parts[-3]):
        raise ValueError(
            f"{where(PATH_COLUMN)}: {value!r} is not a relative path ending in "
            "<split>/patientNNNNN/<study>/<view file>"
        )
    first = parts[0]
    if first not in rules:
        rules[first] = _first_component_rule(first, parts[1], root)
    rule = rules[first]
    if rule == "strip":
        relative = parts[1:]
    elif rule == "parent":
        relative = ["..", *parts]
    else:
        relative = parts
    image_id = "/".join(parts[-3:-1] + [os.path.splitext(parts[-1])[0]])
    return "/".join(relative), image_id, parts[-3]


def _first_component_rule(first: str, second: str, root: Path) -> str:
    """Cases 1-5 of the module docstring: "strip", "root" or "parent"."""
    if first == root.name:
        return "strip"
    if (root / first).is_dir():
        return "root"
    if (root.parent / first).is_dir():
        return "parent"
    if (root / second).is_dir():
        return "strip"
    return "root"


class CheXpertSource:
    """CheXpert frontal radiographs as a medgan Source (medgan.data.sources).

    Images are decoded to 8-bit grayscale, made square (`to_square`, "pad" by
    default so no border finding is cut off) and Lanczos-resampled to the
    requested resolution.
    """

    name = "chexpert"
    class_names = CHEXPERT_FINDINGS
    channels = 1

    def __init__(
        self,
        root: imaging.PathLike,
        policy: str = "ones",
        to_square: str = "pad",
        csv_name: str = "train.csv",
    ):
        if policy not in POLICIES:
            raise ValueError(f"CheXpert label policy {policy!r} is not one of {POLICIES}")
        if to_square not in imaging.SQUARE_MODES:
            raise ValueError(f"to_square mode {to_square!r} is not one of {imaging.SQUARE_MODES}")
        self.root = Path(os.path.abspath(root))
        self.policy = policy
        self.to_square = to_square
        self.csv_name = csv_name

    def index(self) -> tuple[list[ImageRecord], dict[str, int]]:
        """Frontal records under the label policy + drop counts (see read_index)."""
        return read_index(self.root, self.csv_name, self.policy)

    def load(self, record: ImageRecord, resolution: int) -> tuple[np.ndarray, str]:
        """uint8 [resolution, resolution, 1] and the record's patient id.

        Raises UnreadableImage for a missing, truncated or corrupt file.
        """
        image = imaging.read_grayscale(self.root / record.path)
        image = imaging.resize(imaging.to_square(image, self.to_square), resolution)
        return image[..., None], record.patient_id
