"""Synthetic cohorts of known quality, drawn from real patients: the rungs of the instrument's ladder.

A benchmark that cannot tell a perfect generator from a useless one measures
nothing. The instrument (jobs/instrument.py) feeds the benchmark's judge
cohorts whose quality is known by construction, no GAN involved:

* `perfect`: real images of patients the fold never uses (neither its
  training and validation images' patients nor any test-split patient), with
  the fold's label counts per combination and split: what an ideal generator
  would sample. Its judge should match the real-trained one (relative AUC 1).
* `labels=r`: the same images, a share r of each split's labels permuted
  among themselves. Counts per combination stay exact; with r = 1 the labels
  are independent of the pixels and the judge must sit at chance (AUC 0.5).
  A permuted label can land on its own combination, so the share of wrong
  labels is r (1 - sum_c p_c^2) for combination frequencies p_c.
* `downsample=f`: the same images box-averaged to 1/f of the resolution and
  bilinearly resized back: a generator that draws the anatomy but no detail
  finer than f pixels.

`draw` picks the images, `degrade` and `permute_labels` make the rungs; the
job writes each rung as a synthetic cohort (data/synthetic.py's format), so
the judge reads it exactly as it reads a GAN's.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Sequence

import numpy as np

from medgan.data import folds
from medgan.data.records import ImageRecord

KINDS = ("perfect", "labels", "downsample")


@dataclasses.dataclass(frozen=True)
class Rung:
    """One synthetic cohort of known quality: `kind` with its `value` (share r, or factor f; 0 for perfect)."""

    kind: str
    value: float = 0.0

    @property
    def name(self) -> str:
        """Directory and table name: "perfect", "labels_0.25", "downsample_2"."""
        if self.kind == "perfect":
            return "perfect"
        value = int(self.value) if self.kind == "downsample" else self.value
        return f"{self.kind}_{value}"

    @property
    def label(self) -> str:
        """For people: "perfect generator", "25% of labels permuted", "downsampled x2"."""
        if self.kind == "perfect":
            return "perfect generator"
        if self.kind == "labels":
            return f"{self.value:.0%} of labels permuted"
        return f"downsampled x{int(self.value)}"


def parse_rungs(text: str, key: str = "config.instrument.rungs") -> tuple[Rung, ...]:
    """"perfect,labels=0.25,downsample=2" -> Rungs; a clear error naming `key` and the item otherwise."""
    rungs = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        kind, _, raw = item.partition("=")
        if kind not in KINDS or (kind == "perfect") != (raw == ""):
            raise ValueError(f"{key}: {item!r} is not a rung; expected 'perfect', 'labels=<share in (0, 1]>' "
                             "or 'downsample=<factor>'")
        value = float(raw) if raw else 0.0
        if kind == "labels" and not 0.0 < value <= 1.0:
            raise ValueError(f"{key}: {item!r}: the share of permuted labels must be in (0, 1]")
        if kind == "downsample" and (value != int(value) or value < 2):
            raise ValueError(f"{key}: {item!r}: the downsampling factor must be an integer >= 2")
        rungs.append(Rung(kind, value))
    if not rungs or len({r.name for r in rungs}) != len(rungs):
        raise ValueError(f"{key}: {text!r}: expected at least one rung, each once")
    return tuple(rungs)


class NotEnoughPatients(ValueError):
    """The cohort holds too few unused patients' images of some combination for a disjoint oracle."""


def draw(records: Sequence[ImageRecord], fold: folds.Fold, counts: dict[str, list[int]],
         seed: int) -> dict[str, list[ImageRecord]]:
    """Images of patients the fold never touches, `counts[split][c]` of each combination c per split.

    records: the prepared cohort's index. A patient is unused when the fold's
    patient split puts them outside "test" and none of their images is in the
    fold's train or validation ids. Per combination the draw is a seeded
    permutation of the sorted candidate ids, its first entries to "train",
    the next to "val".

    Raises:
      NotEnoughPatients: with every combination's shortfall.
    """
    split_of = folds.split_patients((r.patient_id for r in records), tuple(fold.fractions), fold.seed)
    used_ids = set(fold.ids["train"]) | set(fold.ids["val"])
    used_patients = {r.patient_id for r in records if r.image_id in used_ids}
    by_combination: dict[tuple[int, ...], list[ImageRecord]] = {}
    for record in records:
        if split_of[record.patient_id] != "test" and record.patient_id not in used_patients:
            by_combination.setdefault(tuple(record.labels), []).append(record)
    drawn: dict[str, list[ImageRecord]] = {"train": [], "val": []}
    shortfalls = []
    for c, combination in enumerate(fold.combinations):
        candidates = sorted(by_combination.get(tuple(combination), []), key=lambda r: r.image_id)
        wanted = counts["train"][c] + counts["val"][c]
        if len(candidates) < wanted:
            shortfalls.append(f"{'+'.join(fold.combination_names(combination)) or 'no finding'}: "
                              f"{len(candidates)} of {wanted}")
            continue
        order = np.random.default_rng([seed, zlib.crc32(repr(tuple(combination)).encode())]).permutation(
            len(candidates))
        chosen = [candidates[i] for i in order[:wanted]]
        drawn["train"] += chosen[:counts["train"][c]]
        drawn["val"] += chosen[counts["train"][c]:]
    if shortfalls:
        raise NotEnoughPatients(
            "too few images of patients the fold does not use for a disjoint oracle cohort (have of wanted): "
            + "; ".join(shortfalls) + "; render more patients (config.data.phantom_patients) or draw a smaller fold")
    return drawn


def permute_labels(labels: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """labels [N, K] with round(share N) rows, chosen at random, permuted among themselves.

    Counts per label combination are unchanged; with share 1 the labels are
    independent of the images they are attached to.
    """
    labels = np.array(labels, copy=True)
    chosen = np.sort(rng.choice(len(labels), size=round(share * len(labels)), replace=False))
    labels[chosen] = labels[rng.permutation(chosen)]
    return labels


def degrade(images: np.ndarray, factor: int) -> np.ndarray:
    """uint8 [N, R, R, C] box-averaged to R / factor and bilinearly resized back to R (uint8, same shape).

    The bilinear resize is separable: each axis interpolates between the
    centres of the coarse pixels, with the edge pixels held (half-pixel
    centres, as jax.image.resize and TF's resize with half_pixel_centers).
    """
    n, size, _, channels = images.shape
    if size % factor:
        raise ValueError(f"downsample={factor}: the images' {size} px are not a multiple of it")
    coarse = images.astype(np.float64).reshape(n, size // factor, factor, size // factor, factor, channels)
    coarse = coarse.mean(axis=(2, 4))
    centres = (np.arange(size) + 0.5) / factor - 0.5
    low = np.clip(np.floor(centres).astype(int), 0, size // factor - 1)
    high = np.clip(low + 1, 0, size // factor - 1)
    weight = np.clip(centres - low, 0.0, 1.0)
    rows = coarse[:, low] * (1 - weight)[None, :, None, None] + coarse[:, high] * weight[None, :, None, None]
    fine = rows[:, :, low] * (1 - weight)[None, None, :, None] + rows[:, :, high] * weight[None, None, :, None]
    return np.clip(np.round(fine), 0, 255).astype(np.uint8)
