"""Benchmark folds as the study drew them: n training images per label combination, fixed val/test.

docs/ARCHITECTURE.md ("The benchmark definitions"): a *class* is a unique label
combination (a multi-hot row), not a single finding. The study's dataset tool
(build_dataset/dataset_tool.py of the study's repository) splits *patients*
first, then draws per combination: n is the number of **training** images of
each combination, and validation and test hold a **fixed** number per
combination, the same at every point of a sweep, so that points differ only in
what they train on and the test set of a combination is the same at every k
and n (nested). The resolution sweep is unbalanced instead: every combination
with more than `min_images` images, all its training-patient images, and a
fixed total of validation and test images stratified by combination.

Procedure of `make_fold` (deterministic for a seed):
1. Count images per combination; keep the k most frequent (ties: the
   lexicographically smaller multi-hot tuple first), or with k = 0 every
   combination with more than `min_images` images.
2. Assign every patient of the cohort to train/val/test: sort the patient ids,
   permute them with the seed, cut at round(cumulative fraction x #patients).
   Splitting all patients, not only those of the kept combinations, keeps a
   patient's split independent of k and n for a given seed.
3. Quotas per combination and split. Balanced (n > 0): n, val_per_combination,
   test_per_combination. Unbalanced (n = 0): every training image, and
   val_images / test_images apportioned over the combinations in proportion
   to their images among that split's patients (largest remainder).
4. Per combination and split, draw the quota from that split's patients'
   images of that combination: a permutation of the sorted ids seeded by
   (seed, combination, split) and its first `quota` entries. The permutation
   depends on neither k nor n, so a smaller n trains on a prefix of a larger
   n's images and every k tests a combination on the same images.
A combination whose split holds fewer images than its quota, or no training
image at all (possible in an unbalanced fold, whose training quota is "all"),
fails the whole fold before any training, with every shortfall listed: a
class the judge never trains on would still be scored on the test split.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medgan import fileio
from medgan.data.records import ImageRecord

SPLITS = ("train", "val", "test")
MANIFEST_FORMAT = 2  # 2: n counts training images; val/test fixed per combination


@dataclasses.dataclass(frozen=True)
class Fold:
    """One benchmark fold: which images of a prepared dataset each split uses.

    Attributes:
      dataset: name of the prepared dataset the ids refer to
        (`PreparedDataset.name`).
      class_names: names of the K label positions.
      combinations: the k kept label combinations, most frequent first; each a
        multi-hot tuple of length K.
      ids: split name -> image ids (sorted).
      counts: split name -> images per combination (same order as
        `combinations`).
      available: images per combination in the whole cohort.
      num_combinations: k (0: every combination with more than min_images).
      per_combination: n, training images per combination (0: all, unbalanced).
      val_per_combination, test_per_combination: the balanced fold's fixed
        validation and test images per combination.
      val_images, test_images: the unbalanced fold's validation and test
        totals, stratified by combination.
      min_images: with k = 0, a combination is kept if it has more images.
      fractions: of the *patients* in train, val, test.
      seed: the patient split and every draw.
    """

    dataset: str
    class_names: tuple[str, ...]
    combinations: tuple[tuple[int, ...], ...]
    ids: Mapping[str, tuple[str, ...]]
    counts: Mapping[str, tuple[int, ...]]
    available: tuple[int, ...]
    num_combinations: int
    per_combination: int
    val_per_combination: int
    test_per_combination: int
    fractions: tuple[float, ...]
    seed: int
    val_images: int = 0
    test_images: int = 0
    min_images: int = 0

    @property
    def balanced(self) -> bool:
        return self.per_combination > 0

    def combination_names(self, combination: Sequence[int]) -> tuple[str, ...]:
        """The positive findings of a multi-hot row, e.g. ("Cardiomegaly", "Edema")."""
        return tuple(name for name, bit in zip(self.class_names, combination) if bit)


def make_fold(
    records: Sequence[ImageRecord],
    *,
    class_names: Sequence[str],
    dataset: str,
    num_combinations: int,
    per_combination: int,
    val_per_combination: int = 0,
    test_per_combination: int = 0,
    val_images: int = 0,
    test_images: int = 0,
    min_images: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int,
) -> Fold:
    """Draws a fold from the index of a prepared dataset (see the module docstring).

    Long because the four steps of the procedure read best in order, with the
    shortfall check between the quotas and the draw.

    Args:
      records: every image of the prepared dataset (`builders.read_index`);
        labels of length K = len(class_names), non-empty patient ids.
      class_names: names of the label positions.
      dataset: name of the prepared dataset, recorded in the manifest.
      num_combinations: k, how many label combinations to keep; 0 keeps every
        combination with more than `min_images` images.
      per_combination: n, training images per combination; 0 trains on every
        image of the training patients (unbalanced, the resolution sweep).
      val_per_combination, test_per_combination: fixed per combination (n > 0).
      val_images, test_images: totals stratified by combination (n = 0).
      min_images: see num_combinations.
      fractions: of the patients in train, val, test; positive, summing to 1.
      seed: makes the patient split and the image draw reproducible.

    Raises:
      ValueError: impossible request; the message lists every combination and
        split that holds fewer images than requested, with both counts.
    """
    fractions = tuple(float(f) for f in fractions)
    _check_request(records, class_names, num_combinations, per_combination, val_per_combination,
                   test_per_combination, val_images, test_images, fractions)

    by_combination: dict[tuple[int, ...], list[ImageRecord]] = collections.defaultdict(list)
    for record in records:
        by_combination[tuple(record.labels)].append(record)
    ranked = sorted(by_combination, key=lambda c: (-len(by_combination[c]), c))
    if num_combinations > len(ranked):
        raise ValueError(
            f"{dataset}: {num_combinations} label combinations requested but the cohort has only "
            f"{len(ranked)} distinct combinations"
        )
    if num_combinations == 0:
        combinations = tuple(c for c in ranked if len(by_combination[c]) > min_images)
        if not combinations:
            raise ValueError(f"{dataset}: no label combination has more than min_images={min_images} images")
    else:
        combinations = tuple(ranked[:num_combinations])

    split_of_patient = _assign_patients(records, fractions, seed)
    pools = {
        (combination, split): sorted(
            r.image_id for r in by_combination[combination] if split_of_patient[r.patient_id] == split
        )
        for combination in combinations
        for split in SPLITS
    }
    quotas = _quotas(combinations, pools, per_combination, val_per_combination, test_per_combination,
                     val_images, test_images)
    shortfalls = [
        f"{'+'.join(n for n, b in zip(class_names, c) if b) or '(none)'} {list(c)} {split}: "
        f"{len(pools[c, split])} images among the {split} patients, {max(quotas[c, split], 1)} requested"
        for c in combinations
        for split in SPLITS
        if quotas[c, split] > len(pools[c, split]) or (split == "train" and not pools[c, split])
    ]
    if shortfalls:
        raise ValueError(
            f"{dataset}: the cohort is too small for this fold (k={num_combinations}, n={per_combination}, "
            f"val/test per combination {val_per_combination}/{test_per_combination}, patient fractions "
            f"{fractions}); missing:\n  " + "\n  ".join(shortfalls)
        )

    ids: dict[str, list[str]] = {s: [] for s in SPLITS}
    counts: dict[str, list[int]] = {s: [] for s in SPLITS}
    for combination in combinations:
        for split in SPLITS:
            pool, quota = pools[combination, split], quotas[combination, split]
            rng = np.random.default_rng([seed, _stable_hash(combination), SPLITS.index(split)])
            chosen = rng.permutation(len(pool))[:quota]
            ids[split].extend(pool[i] for i in chosen)
            counts[split].append(quota)

    return Fold(
        dataset=dataset,
        class_names=tuple(class_names),
        combinations=combinations,
        ids={s: tuple(sorted(ids[s])) for s in SPLITS},
        counts={s: tuple(counts[s]) for s in SPLITS},
        available=tuple(len(by_combination[c]) for c in combinations),
        num_combinations=num_combinations,
        per_combination=per_combination,
        val_per_combination=val_per_combination,
        test_per_combination=test_per_combination,
        val_images=val_images,
        test_images=test_images,
        min_images=min_images,
        fractions=fractions,
        seed=seed,
    )


def _quotas(
    combinations: Sequence[tuple[int, ...]],
    pools: Mapping[tuple[tuple[int, ...], str], Sequence[str]],
    per_combination: int,
    val_per_combination: int,
    test_per_combination: int,
    val_images: int,
    test_images: int,
) -> dict[tuple[tuple[int, ...], str], int]:
    """(combination, split) -> images to draw (step 3 of the module docstring)."""
    if per_combination > 0:
        per_split = {"train": per_combination, "val": val_per_combination, "test": test_per_combination}
        return {(c, split): per_split[split] for c in combinations for split in SPLITS}
    quotas = {(c, "train"): len(pools[c, "train"]) for c in combinations}
    for split, total in (("val", val_images), ("test", test_images)):
        available = [len(pools[c, split]) for c in combinations]
        if sum(available) == 0:
            shares = [0] * len(combinations) if total == 0 else [total] + [0] * (len(combinations) - 1)
        else:
            shares = largest_remainder(total, tuple(a / sum(available) for a in available))
        quotas.update({(c, split): share for c, share in zip(combinations, shares)})
    return quotas


def write_manifest(fold: Fold, path: str | os.PathLike) -> None:
    """Writes `fold` to `path` (manifest.json) atomically: temp file + rename."""
    path = Path(path)
    payload = {
        "format": MANIFEST_FORMAT,
        "dataset": fold.dataset,
        "class_names": list(fold.class_names),
        "parameters": {
            "num_combinations": fold.num_combinations,
            "per_combination": fold.per_combination,
            "val_per_combination": fold.val_per_combination,
            "test_per_combination": fold.test_per_combination,
            "val_images": fold.val_images,
            "test_images": fold.test_images,
            "min_images": fold.min_images,
            "fractions": list(fold.fractions),
        },
        "seed": fold.seed,
        "combinations": [
            {
                "names": list(fold.combination_names(c)),
                "multi_hot": list(c),
                "available": fold.available[i],
                "counts": {s: fold.counts[s][i] for s in SPLITS},
            }
            for i, c in enumerate(fold.combinations)
        ],
        "ids": {s: list(fold.ids[s]) for s in SPLITS},
    }
    fileio.write_json(path, payload)


def read_manifest(path: str | os.PathLike) -> Fold:
    """The `Fold` written by `write_manifest`.

    Raises:
      FileNotFoundError: no file at `path`.
      ValueError: not a manifest (not JSON, an old format, a missing key);
        the message names the file.
    """
    path = Path(path)
    try:
        payload: dict[str, Any] = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a fold manifest (not JSON: {err})") from err
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: not a fold manifest (a JSON {type(payload).__name__}, not an object)")
    if payload.get("format") != MANIFEST_FORMAT:
        raise ValueError(
            f"{path}: manifest format {payload.get('format')!r}, expected {MANIFEST_FORMAT} (format 1 split n "
            "images 80/10/10; draw the fold again by removing the manifest, or run the point in a new workdir)"
        )
    try:
        return _fold_from(payload)
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a complete fold manifest ({type(err).__name__}: {err})") from err


def _fold_from(payload: dict[str, Any]) -> Fold:
    """A manifest's JSON as a `Fold`; KeyError/TypeError when a part is missing or mistyped."""
    params = payload["parameters"]
    combos = payload["combinations"]
    return Fold(
        dataset=payload["dataset"],
        class_names=tuple(payload["class_names"]),
        combinations=tuple(tuple(c["multi_hot"]) for c in combos),
        ids={s: tuple(payload["ids"][s]) for s in SPLITS},
        counts={s: tuple(c["counts"][s] for c in combos) for s in SPLITS},
        available=tuple(c["available"] for c in combos),
        num_combinations=params["num_combinations"],
        per_combination=params["per_combination"],
        val_per_combination=params["val_per_combination"],
        test_per_combination=params["test_per_combination"],
        val_images=params["val_images"],
        test_images=params["test_images"],
        min_images=params["min_images"],
        fractions=tuple(params["fractions"]),
        seed=payload["seed"],
    )


def _check_request(
    records: Sequence[ImageRecord],
    class_names: Sequence[str],
    num_combinations: int,
    per_combination: int,
    val_per_combination: int,
    test_per_combination: int,
    val_images: int,
    test_images: int,
    fractions: tuple[float, ...],
) -> None:
    sizes = {"num_combinations": num_combinations, "per_combination": per_combination,
             "val_per_combination": val_per_combination, "test_per_combination": test_per_combination,
             "val_images": val_images, "test_images": test_images}
    negative = {name: value for name, value in sizes.items() if value < 0}
    if negative:
        raise ValueError(f"fold sizes must be >= 0, got {negative}")
    if per_combination > 0 and (val_per_combination < 1 or test_per_combination < 1):
        raise ValueError(
            f"a balanced fold (per_combination={per_combination}) needs val_per_combination and "
            f"test_per_combination >= 1, got {val_per_combination} and {test_per_combination}"
        )
    if per_combination == 0 and (val_images < 1 or test_images < 1):
        raise ValueError(
            f"an unbalanced fold (per_combination=0) needs val_images and test_images >= 1, "
            f"got {val_images} and {test_images}"
        )
    if len(fractions) != len(SPLITS) or min(fractions) <= 0 or not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be {len(SPLITS)} positive numbers {SPLITS} summing to 1, got {fractions}")
    if not records:
        raise ValueError("no records to draw a fold from")
    seen: set[str] = set()
    for record in records:
        if len(record.labels) != len(class_names):
            raise ValueError(
                f"image {record.image_id!r} has {len(record.labels)} labels, "
                f"expected {len(class_names)} ({class_names})"
            )
        if not record.patient_id:
            raise ValueError(f"image {record.image_id!r} has no patient id; folds split by patient")
        if record.image_id in seen:
            raise ValueError(f"image id {record.image_id!r} appears twice")
        seen.add(record.image_id)


def _assign_patients(records: Sequence[ImageRecord], fractions: tuple[float, ...], seed: int) -> dict[str, str]:
    return split_patients((r.patient_id for r in records), fractions, seed)


def split_patients(patient_ids: Iterable[str], fractions: tuple[float, ...], seed: int) -> dict[str, str]:
    """patient id -> split ("train", "val", "test"), cutting a seeded permutation of the sorted patient ids."""
    patients = sorted(set(patient_ids))
    order = np.random.default_rng([seed, 0]).permutation(len(patients))
    bounds = [round(c * len(patients)) for c in np.cumsum(fractions)]
    bounds[-1] = len(patients)
    split_of = {}
    start = 0
    for split, stop in zip(SPLITS, bounds):
        for i in order[start:stop]:
            split_of[patients[i]] = split
        start = stop
    return split_of


def largest_remainder(n: int, fractions: tuple[float, ...]) -> list[int]:
    """Integer parts of n × fractions summing to exactly n (Hamilton's method)."""
    exact = [n * f for f in fractions]
    quotas = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: (-(exact[i] - quotas[i]), i))
    for i in by_remainder[: n - sum(quotas)]:
        quotas[i] += 1
    return quotas


def _stable_hash(combination: tuple[int, ...]) -> int:
    """A seed component that identifies a combination across runs and k."""
    return zlib.crc32(bytes(combination))
