"""A synthetic cohort as data: what to generate per label combination, and the images as a `Source`.

The synthesize job samples a generator into memory; `GeneratedSource` hands
those images to `builders.prepare`, so the synthetic cohort is written in the
same prepared format every medgan job reads, with its own fold manifest (train
and val splits, never a test split: the test split is always real).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medgan.data import folds
from medgan.data.records import ImageRecord

SPLITS = ("train", "val")


class GeneratedSource:
    """A `Source` (medgan.data.sources) over images already in memory: uint8 [N, R, R, C]."""

    name = "synthetic"

    def __init__(self, class_names: Sequence[str], records: Sequence[ImageRecord], images: np.ndarray,
                 generator_sha256: str, seed: int):
        if len(records) != len(images):
            raise ValueError(f"{len(records)} records but {len(images)} images")
        self.class_names = tuple(class_names)
        self.channels = int(images.shape[-1])
        self.generator_sha256 = generator_sha256  # with the seed: the shards' fingerprint
        self.seed = seed
        self._records = list(records)
        self._row = {r.image_id: i for i, r in enumerate(records)}
        self._images = images

    def index(self) -> tuple[list[ImageRecord], dict[str, int]]:
        return list(self._records), {}

    def load(self, record: ImageRecord, resolution: int) -> tuple[np.ndarray, str]:
        image = self._images[self._row[record.image_id]]
        if image.shape[0] != resolution:
            raise ValueError(f"{record.image_id}: generated at {image.shape[0]} px, asked for {resolution} px")
        return image, record.patient_id


def counts_per_combination(fold: folds.Fold, per_combination: int) -> dict[str, list[int]]:
    """Images to generate per split and combination: the real fold's train/val counts (0), or
    N training images per combination beside the real fold's validation counts."""
    counts = {split: list(fold.counts[split]) for split in ("train", "val")}
    if per_combination:
        counts["train"] = [per_combination] * len(fold.combinations)
    return counts


def plan(fold: folds.Fold, counts: dict[str, list[int]]) -> tuple[list[ImageRecord], list[str]]:
    """The records to generate (ids "synthetic-cXX-NNNNNN", labels) and each one's split."""
    records, splits = [], []
    for c, combination in enumerate(fold.combinations):
        serial = 0
        for split in SPLITS:
            for _ in range(counts[split][c]):
                image_id = f"synthetic-c{c:02d}-{serial:06d}"
                records.append(ImageRecord(image_id, image_id, tuple(int(x) for x in combination)))
                splits.append(split)
                serial += 1
    return records, splits


def synthetic_fold(fold: folds.Fold, dataset: str, records: Sequence[ImageRecord], splits: Sequence[str],
                   counts: dict[str, list[int]], seed: int) -> folds.Fold:
    """The synthetic cohort's manifest: the real fold's combinations, the generated train/val ids, no test."""
    ids = {split: tuple(sorted(r.image_id for r, s in zip(records, splits) if s == split)) for split in SPLITS}
    totals = [counts["train"][c] + counts["val"][c] for c in range(len(fold.combinations))]
    return folds.Fold(
        dataset=dataset, class_names=fold.class_names, combinations=fold.combinations,
        ids={**ids, "test": ()}, counts={**counts, "test": [0] * len(totals)}, available=tuple(totals),
        num_combinations=len(fold.combinations), per_combination=max(counts["train"]),
        val_per_combination=max(counts["val"]), test_per_combination=0, fractions=fold.fractions, seed=seed,
    )
