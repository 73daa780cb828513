"""Phantom cohorts: patients and their images' labels, long-tailed like CheXpert's and RSNA ICH's.

sample_cohort draws the records (image_id, patient_id, labels; path None)
of a cohort; PhantomSource serves such a cohort as a medgan Source,
rendering each image on load as uint8 [R, R, 1].
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from medgan.data.labels import CHEXPERT_FINDINGS, CLASSES_BY_MODALITY
from medgan.data.phantoms.rendering import (
    DEFAULT_CONSPICUITY,
    check_conspicuity,
    check_modality,
    render_chest,
    render_head_ct_hu,
    render_mammo,
)
from medgan.data.phantoms.seeds import _rng, render_seeds
from medgan.data.records import ImageRecord
from medgan.data.windowing import WINDOWS, apply_window

# Part of PhantomSource's identity: bump when a change of this package changes
# pixels or cohorts, so prepared shards of the old phantoms are not reused.
RENDERER_VERSION = 1

# Generative rule (per patient, then per image), chosen to mimic the real
# cohorts' long-tailed label co-occurrence (a few combinations very common,
# a long tail of rare ones):
#   * images per patient: min(Geometric(p=0.42), 8), mean ~2.3;
#   * a patient draws a clinical scenario, and from it a set of findings;
#   * each image shows each of the patient's findings with probability
#     _KEEP (follow-up films, neighbouring slices, other patches), plus rare
#     incidental ones; the exclusive class ("No Finding", "no finding",
#     "normal") is set exactly when nothing else is (for chest, Support
#     Devices does not count: CheXpert reports it beside No Finding).

_MAX_IMAGES = 8
_IMAGES_P = 0.42
_KEEP = 0.85
_INCIDENTAL = 0.01

# (scenario, weight, P(finding | scenario)); image prevalences come out
# CheXpert-like: Support Devices 0.42, Lung Opacity 0.38, Pleural Effusion
# 0.29, No Finding 0.22, Edema and Atelectasis 0.17, Fracture, Lung Lesion
# and Pleural Other 0.05-0.07 (measured on 3000 patients); the top label
# combination is ~200x as frequent as the median one.
_CHEST_SCENARIOS = (
    ("no acute disease", 0.14, {"Support Devices": 0.15}),
    ("lines and tubes (ICU)", 0.30, {"Support Devices": 0.95, "Lung Opacity": 0.55, "Pleural Effusion": 0.45,
                                     "Atelectasis": 0.35, "Edema": 0.2, "Consolidation": 0.1, "Pneumothorax": 0.08,
                                     "Cardiomegaly": 0.08, "Enlarged Cardiomediastinum": 0.06}),
    ("heart failure", 0.18, {"Edema": 0.75, "Pleural Effusion": 0.65, "Cardiomegaly": 0.55, "Lung Opacity": 0.45,
                             "Support Devices": 0.45, "Enlarged Cardiomediastinum": 0.2, "Atelectasis": 0.2}),
    ("infection", 0.16, {"Lung Opacity": 0.9, "Consolidation": 0.35, "Pneumonia": 0.3, "Pleural Effusion": 0.3,
                         "Atelectasis": 0.3, "Support Devices": 0.35}),
    ("pneumothorax", 0.09, {"Pneumothorax": 0.85, "Support Devices": 0.7, "Lung Opacity": 0.3,
                            "Pleural Effusion": 0.2, "Atelectasis": 0.2, "Fracture": 0.2}),
    ("nodule or mass", 0.06, {"Lung Lesion": 0.85, "Lung Opacity": 0.4, "Pleural Effusion": 0.25,
                              "Pleural Other": 0.15}),
    ("pleural disease", 0.04, {"Pleural Other": 0.7, "Pleural Effusion": 0.5, "Lung Opacity": 0.3, "Fracture": 0.1}),
    ("trauma", 0.03, {"Fracture": 0.85, "Support Devices": 0.3, "Pneumothorax": 0.15, "Lung Opacity": 0.2}),
)

# Head CT: 66% of patients bleed; the first subtype is drawn by weight
# (subdural and intraparenchymal most common, epidural rare, as in RSNA ICH)
# and each other subtype joins it with the probability in its row, so
# mixed haemorrhages are common. Comes out at ~37% "no finding" images,
# subdural, intraparenchymal and subarachnoid ~0.27 each, intraventricular
# 0.18, epidural 0.05 (RSNA itself is ~86% negative: too few positives for
# a benchmark).
_HEAD_POSITIVE = 0.66
_HEAD_FIRST = {
    "subdural": 0.32, "intraparenchymal": 0.28, "subarachnoid": 0.2, "intraventricular": 0.14, "epidural": 0.06
}
_HEAD_WITH = {
    "epidural": {"subdural": 0.3, "subarachnoid": 0.25, "intraparenchymal": 0.1},
    "intraparenchymal": {"intraventricular": 0.35, "subarachnoid": 0.3, "subdural": 0.2, "epidural": 0.02},
    "intraventricular": {"intraparenchymal": 0.4, "subarachnoid": 0.35, "subdural": 0.1},
    "subarachnoid": {"subdural": 0.3, "intraparenchymal": 0.25, "intraventricular": 0.25, "epidural": 0.02},
    "subdural": {"subarachnoid": 0.35, "intraparenchymal": 0.2, "intraventricular": 0.08, "epidural": 0.04},
}

# Mammography: the patient's lesions, then per image a healthy patch of the
# same breast with probability _MAMMO_HEALTHY_PATCH (~55% normal patches).
_MAMMO_PATIENT = ((("normal",), 0.35), (("mass",), 0.35), (("calcification",), 0.2), (("mass", "calcification"), 0.1))
_MAMMO_HEALTHY_PATCH = 0.2


def _patient_findings(modality: str, rng: np.random.Generator) -> set[str]:
    if modality == "chest":
        weights = np.array([w for _, w, _ in _CHEST_SCENARIOS])
        _, _, probabilities = _CHEST_SCENARIOS[rng.choice(len(weights), p=weights / weights.sum())]
        return {name for name in CHEXPERT_FINDINGS[1:] if rng.random() < probabilities.get(name, _INCIDENTAL)}
    if modality == "head_ct":
        if rng.random() >= _HEAD_POSITIVE:
            return set()
        names = list(_HEAD_FIRST)
        weights = np.array(list(_HEAD_FIRST.values()))
        first = names[rng.choice(len(names), p=weights / weights.sum())]
        return {first} | {name for name, p in _HEAD_WITH[first].items() if rng.random() < p}
    combos, weights = zip(*_MAMMO_PATIENT)
    weights = np.array(weights)
    return set(combos[rng.choice(len(combos), p=weights / weights.sum())]) - {"normal"}


def _image_labels(modality: str, patient: set[str], rng: np.random.Generator) -> tuple[int, ...]:
    names = CLASSES_BY_MODALITY[modality]
    if modality == "mammo" and rng.random() < _MAMMO_HEALTHY_PATCH:
        present: set[str] = set()
    else:
        present = {name for name in sorted(patient) if rng.random() < _KEEP}
    if modality == "chest":
        present |= {name for name in names[1:] if rng.random() < _INCIDENTAL / 4}
        pathology = present - {"Support Devices"}
    else:
        pathology = present
    exclusive = names[0]  # "No Finding", "no finding", "normal"
    if not pathology:
        present = (present & {"Support Devices"}) | {exclusive}
    return tuple(int(name in present) for name in names)


def sample_cohort(modality: str, num_patients: int, seed: int) -> list[ImageRecord]:
    """A phantom cohort: records (path None) of `num_patients` patients with 1-8 images each.

    image_id "chest-p000123-i2" (patients and images numbered from 1),
    patient_id "chest-p000123". Labels follow the generative rule above; they
    always have a positive, and the modality's first class ("No Finding",
    "no finding", "normal") is exclusive (chest: except Support Devices).
    Patient i depends only on (modality, seed, i): a bigger cohort extends a
    smaller one. Render an image with `render_seeds(seed, record)`.
    """
    check_modality(modality)
    if not isinstance(num_patients, (int, np.integer)) or num_patients < 1:
        raise ValueError(f"num_patients must be a positive int, got {num_patients!r}")
    records = []
    for i in range(1, num_patients + 1):
        rng = _rng("cohort", modality, seed, i)
        patient_id = f"{modality}-p{i:06d}"
        patient = _patient_findings(modality, rng)
        for j in range(1, min(int(rng.geometric(_IMAGES_P)), _MAX_IMAGES) + 1):
            records.append(ImageRecord(f"{patient_id}-i{j}", patient_id, _image_labels(modality, patient, rng)))
    return records


def reported_labels(modality: str, labels: Sequence[int], miss: float, false_positive: float,
                    rng: np.random.Generator) -> tuple[int, ...]:
    """The labels a report labeller would give an image whose true labels are `labels`.

    Each finding (every class but the exclusive first one) that is present is
    missed with probability `miss`, each absent one reported with
    probability `false_positive`, independently; the exclusive class ("No
    Finding" ...) is then set exactly when no finding is reported (chest:
    Support Devices does not count), as labellers derive it.
    """
    names = CLASSES_BY_MODALITY[modality]
    draws = rng.random(len(names))
    reported = {name for name, label, u in zip(names[1:], labels[1:], draws[1:])
                if (u >= miss if label else u < false_positive)}
    pathology = reported - {"Support Devices"} if modality == "chest" else reported
    if not pathology:
        reported = (reported & {"Support Devices"}) | {names[0]}
    return tuple(int(name in reported) for name in names)


def _render_uint8(
    modality: str, labels: Sequence[int], resolution: int, seed: int, acquisition: int, conspicuity: float
) -> np.ndarray:
    """uint8 [R, R] of any modality; head CT through the brain window."""
    if modality == "head_ct":
        hu = render_head_ct_hu(labels, resolution, seed, acquisition, conspicuity)
        return apply_window(hu, *WINDOWS["brain"])
    renderer = render_chest if modality == "chest" else render_mammo
    return renderer(labels, resolution, seed, acquisition, conspicuity)


class PhantomSource:
    """A phantom cohort as a medgan Source (medgan.data.sources): rendered on load, nothing on disk.

    Head CT is loaded through the brain window (40/80), like RSNA ICH's default.
    `conspicuity` scales the findings' contrast (rendering.py); it is part of
    the source's identity, so shards prepared at another value are not reused.

    `label_miss` and `label_false_positive` make the labels noisy as a report
    labeller's are (`reported_labels`, one draw per image): the index holds
    the reported labels, every split's, while each image is rendered from its
    true ones, so a judge is scored against labels that are sometimes wrong,
    as on a real cohort. Both 0 gives the true labels.
    """

    channels = 1
    # Rendering is numpy on small arrays, bound by the GIL: more loader threads than one
    # contend for it with the shard writer (2 threads: 1.5x slower, 4: 2.4x on 2 AMD EPYC cores).
    load_workers = 1

    def __init__(self, modality: str, num_patients: int, seed: int, conspicuity: float = DEFAULT_CONSPICUITY,
                 label_miss: float = 0.0, label_false_positive: float = 0.0):
        check_modality(modality)
        check_conspicuity(conspicuity)
        if not (0 <= label_miss < 1 and 0 <= label_false_positive < 1):
            raise ValueError(f"label noise rates must lie in [0, 1): miss {label_miss!r}, "
                             f"false positive {label_false_positive!r}")
        self.modality = modality
        self.num_patients = num_patients
        self.seed = seed
        self.conspicuity = float(conspicuity)
        self.label_miss, self.label_false_positive = float(label_miss), float(label_false_positive)
        self.version = RENDERER_VERSION  # part of the prepared shards' fingerprint
        self.name = f"phantom_{modality}"
        self.class_names = CLASSES_BY_MODALITY[modality]
        self._records: list[ImageRecord] | None = None
        self._true: dict[str, tuple[int, ...]] = {}  # image_id -> the labels its image is rendered from

    def index(self) -> tuple[list[ImageRecord], dict[str, int]]:
        if self._records is None:
            true = sample_cohort(self.modality, self.num_patients, self.seed)
            self._true = {record.image_id: record.labels for record in true}
            self._records = [dataclasses.replace(record, labels=reported_labels(
                self.modality, record.labels, self.label_miss, self.label_false_positive,
                _rng("labeller", self.modality, self.seed, record.image_id))) for record in true]
        return list(self._records), {}

    def true_labels(self, image_id: str) -> tuple[int, ...]:
        """The labels image `image_id` of the cohort is rendered from (its index labels may be noisy)."""
        if not self._true:
            self.index()
        return self._true[image_id]

    def load(self, record: ImageRecord, resolution: int) -> tuple[np.ndarray, str]:
        """The image of `record`: from its cohort's true labels under label noise, else from `record.labels`."""
        seed, acquisition = render_seeds(self.seed, record)
        noisy = self.label_miss or self.label_false_positive
        labels = self.true_labels(record.image_id) if noisy else record.labels
        image = _render_uint8(self.modality, labels, resolution, seed, acquisition, self.conspicuity)
        return image[..., None], record.patient_id
