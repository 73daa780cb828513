"""Benchmark folds: top-k label combinations, n images each, patient-disjoint splits.

docs/ARCHITECTURE.md ("The benchmark definitions"): a *class* is a unique label
combination (a multi-hot row), not a single finding. A benchmark point keeps
the k most frequent combinations and exactly n images of each, split 80/10/10
at the *patient* level, so that no patient contributes to two of train, val and
test and the real test fold measures generalisation to unseen patients.

Procedure of `make_fold` (deterministic for a seed):
1. Count images per combination; keep the k most frequent (ties: the
   lexicographically smaller multi-hot tuple first).
2. Assign every patient of the cohort to train/val/test: sort the patient ids,
   permute them with the seed, cut at round(cumulative fraction × #patients).
   Splitting all patients, not only those of the kept combinations, keeps a
   patient's split independent of k and n for a given seed.
3. Per combination, quotas are n × fraction rounded by largest remainder, so
   they sum to exactly n (ties: the earlier split gets the extra image).
4. Per combination and split, draw the quota from that split's patients'
   images of that combination (sorted ids, permuted with a seed derived from
   the seed, the combination and the split).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medgan import fileio
from medgan.data.records import ImageRecord

SPLITS = ("train", "val", "test")
MANIFEST_FORMAT = 1


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
      num_combinations, per_combination, fractions, seed: the request.
    """

    dataset: str
    class_names: tuple[str, ...]
    combinations: tuple[tuple[int, ...], ...]
    ids: Mapping[str, tuple[str, ...]]
    counts: Mapping[str, tuple[int, ...]]
    available: tuple[int, ...]
    num_combinations: int
    per_combination: int
    fractions: tuple[float, ...]
    seed: int

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
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int,
) -> Fold:
    """Draws a fold from the index of a prepared dataset (see the module docstring).

    Args:
      records: every image of the prepared dataset (`builders.read_index`);
        labels of length K = len(class_names), non-empty patient ids.
      class_names: names of the label positions.
      dataset: name of the prepared dataset, recorded in the manifest.
      num_combinations: k, how many label combinations to keep.
      per_combination: n, images per combination over all splits.
      fractions: of train, val, test; non-negative, summing to 1.
      seed: makes the patient split and the image draw reproducible.

    Raises:
      ValueError: impossible request; the message says what exists (how many
        distinct combinations; for a combination and split, how many images
        are available versus requested).
    """
    fractions = tuple(float(f) for f in fractions)
    _check_request(records, class_names, num_combinations, per_combination, fractions)

    by_combination: dict[tuple[int, ...], list[ImageRecord]] = collections.defaultdict(list)
    for record in records:
        by_combination[tuple(record.labels)].append(record)
    ranked = sorted(by_combination, key=lambda c: (-len(by_combination[c]), c))
    if num_combinations > len(ranked):
        raise ValueError(
            f"{dataset}: {num_combinations} label combinations requested but the cohort has only "
            f"{len(ranked)} distinct combinations"
        )
    combinations = tuple(ranked[:num_combinations])

    split_of_patient = _assign_patients(records, fractions, seed)
    quotas = largest_remainder(per_combination, fractions)
    ids: dict[str, list[str]] = {s: [] for s in SPLITS}
    counts: dict[str, list[int]] = {s: [] for s in SPLITS}
    for combination in combinations:
        names = "+".join(n for n, b in zip(class_names, combination) if b) or "(none)"
        for split, quota in zip(SPLITS, quotas):
            pool = sorted(r.image_id for r in by_combination[combination] if split_of_patient[r.patient_id] == split)
            if quota > len(pool):
                raise ValueError(
                    f"{dataset}: combination {names} {list(combination)} has {len(pool)} images among the "
                    f"{split} patients but {quota} are requested (per_combination={per_combination}, "
                    f"{split} fraction {fractions[SPLITS.index(split)]}); it has "
                    f"{len(by_combination[combination])} images overall"
                )
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
        fractions=fractions,
        seed=seed,
    )


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
    """The `Fold` written by `write_manifest`."""
    path = Path(path)
    payload: dict[str, Any] = json.loads(path.read_text())
    if payload.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path}: manifest format {payload.get('format')!r}, expected {MANIFEST_FORMAT}")
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
        fractions=tuple(params["fractions"]),
        seed=payload["seed"],
    )


def _check_request(
    records: Sequence[ImageRecord],
    class_names: Sequence[str],
    num_combinations: int,
    per_combination: int,
    fractions: tuple[float, ...],
) -> None:
    if num_combinations < 1 or per_combination < 1:
        raise ValueError(
            f"num_combinations and per_combination must be >= 1, got {num_combinations} and {per_combination}"
        )
    if len(fractions) != len(SPLITS) or min(fractions) < 0 or not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be {len(SPLITS)} non-negative numbers {SPLITS} summing to 1, got {fractions}")
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
    """patient id -> split, cutting a seeded permutation of the sorted patient ids."""
    patients = sorted({r.patient_id for r in records})
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
