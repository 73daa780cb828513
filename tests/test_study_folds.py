"""The study's fold sizes (build_dataset/dataset_tool.py of the study) on fabricated cohorts.

Each study file's points, drawn by `folds.make_fold` from the config a sweep
point gets, must hold exactly the study's images per combination: n training
images, the fixed validation and test images, the same held-out images at
every point of a sweep; the resolution sweep's unbalanced fold keeps every
combination above the study's limit and 4,000 + 4,000 held-out images.
"""

import functools
import itertools

import pytest

from medgan.data import folds
from medgan.data.labels import CHEXPERT_FINDINGS, ICH_CLASSES
from medgan.data.records import ImageRecord
from medgan.study import grid

# Images per label combination, most frequent first; sized so that the patient
# split (80/10/10) leaves every point of the study's sweeps enough images.
CHEST_COUNTS = (9000, 9000, 5200, 5200, 3200, 3200, *[2700] * 4, *[2400] * 10, 200)
BRAIN_COUNTS = (16500, 16500, 8200, 8200, 7000, 7000, 4300, 4300, 3500, 3500, 100)


@functools.cache
def _cohort(num_classes: int, counts: tuple[int, ...]) -> tuple[ImageRecord, ...]:
    """Two images per patient; combination i is the multi-hot row of the i-th pair/single of classes."""
    rows = [tuple(int(j in chosen) for j in range(num_classes))
            for size in (1, 2) for chosen in itertools.combinations(range(num_classes), size)]
    records, i = [], 0
    for row, count in zip(rows, counts):
        for _ in range(count):
            records.append(ImageRecord(f"im{i:06d}", f"pt{i // 2:06d}", row))
            i += 1
    return tuple(records)


STUDIES = {"chest": (grid.CHEST, CHEXPERT_FINDINGS, CHEST_COUNTS), "brain": (grid.BRAIN, ICH_CLASSES, BRAIN_COUNTS)}


def _fold_of(config, records, class_names) -> folds.Fold:
    keys = ("num_combinations", "per_combination", "val_per_combination", "test_per_combination", "val_images",
            "test_images", "min_images", "seed")
    return folds.make_fold(records, class_names=class_names, dataset="fabricated",
                           fractions=tuple(config.fold.fractions), **{k: config.fold[k] for k in keys})


def _held_out(fold: folds.Fold, records) -> dict[tuple[str, tuple[int, ...]], set[str]]:
    labels = {r.image_id: r.labels for r in records}
    return {(split, c): {i for i in fold.ids[split] if labels[i] == c}
            for split in ("val", "test") for c in fold.combinations}


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_classes_sweep_sizes_and_the_same_held_out_images_at_every_k(name):
    study, class_names, counts = STUDIES[name]
    records = _cohort(len(class_names), counts)
    val, test = study.classes_holdout
    held_out = {}
    for k, n in study.classes:
        fold = _fold_of(grid.study_config(f"classes={k},per_class={n}", study, "classes", "t"), records, class_names)
        assert fold.counts == {"train": (n,) * k, "val": (val,) * k, "test": (test,) * k}
        for key, ids in _held_out(fold, records).items():
            assert held_out.setdefault(key, ids) == ids  # nested: a combination tests on the same images
    assert len(held_out) == 2 * study.classes[0][0]


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_samples_sweep_sizes_nested_training_sets_and_fixed_held_out_sets(name):
    study, class_names, counts = STUDIES[name]
    records = _cohort(len(class_names), counts)
    k, (val, test) = study.samples_classes, study.samples_holdout
    drawn = [_fold_of(grid.study_config(f"per_class={n}", study, "samples", "t"), records, class_names)
             for n in study.samples]
    for n, fold in zip(study.samples, drawn):
        assert fold.counts == {"train": (n,) * k, "val": (val,) * k, "test": (test,) * k}
        assert fold.ids["val"] == drawn[0].ids["val"] and fold.ids["test"] == drawn[0].ids["test"]
    for larger, smaller in zip(drawn, drawn[1:]):
        assert set(smaller.ids["train"]) < set(larger.ids["train"])


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_resolution_sweep_keeps_combinations_above_the_limit_unbalanced_with_4000_held_out(name):
    study, class_names, counts = STUDIES[name]
    records = _cohort(len(class_names), counts)
    for px in grid.RESOLUTIONS:
        config = grid.study_config(f"resolution={px}", study, "resolution", "t")
        fold = _fold_of(config, records, class_names)
        assert config.data.resolution == px
        kept = [c for c in counts if c > study.resolution_min_images]
        assert len(fold.combinations) == len(kept) < len(counts)
        assert sum(fold.counts["val"]) == sum(fold.counts["test"]) == 4000
        assert len(set(fold.counts["train"])) > 1  # as the combinations occur, not balanced
        assert sum(fold.counts["train"]) > 0.75 * sum(kept)  # every training patient's image


def test_a_cohort_too_small_for_a_point_fails_before_training_with_the_missing_counts():
    study, class_names, counts = STUDIES["chest"]
    records = _cohort(len(class_names), counts[:19] + (900,))  # the 20th combination: 900 images
    config = grid.study_config("classes=20,per_class=1450", study, "classes", "t")
    with pytest.raises(ValueError, match="too small for this fold") as info:
        _fold_of(config, records, class_names)
    missing = [line.strip() for line in str(info.value).splitlines()[1:]]
    # Only the 20th combination is short, in each of its splits, and each line says by how much.
    assert [line.split(" [")[0] for line in missing] == ["No Finding+Consolidation"] * 3
    for line, split, requested in zip(missing, folds.SPLITS, (1450, 190, 170)):
        assert f"] {split}: " in line and line.endswith(f"among the {split} patients, {requested} requested")
