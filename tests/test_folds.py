"""Benchmark folds: top-k combinations, exact counts, patient-disjoint splits, manifests."""

import collections
import json

import pytest

from medgan.data import folds
from medgan.data.records import ImageRecord

NAMES = ("x", "y", "z")
# Hand-built cohort: combination -> number of images. Ranked by count, the tie
# between (0,1,0) and (1,1,0) goes to the lexicographically smaller (0,1,0).
COHORT = {(1, 0, 0): 480, (1, 1, 0): 360, (0, 1, 0): 360, (0, 0, 1): 160, (1, 0, 1): 28}


def _records(images_per_patient=2):
    """Images of each combination in turn; patients own `images_per_patient` consecutive images."""
    records, i = [], 0
    for combination, count in COHORT.items():
        for _ in range(count):
            records.append(ImageRecord(f"im{i:04d}", f"pt{i // images_per_patient:04d}", combination))
            i += 1
    return records


def _fold(records=None, **kwargs):
    params = dict(class_names=NAMES, dataset="ds/cfg/1.0.0", num_combinations=3, per_combination=30, seed=0)
    params.update(kwargs)
    return folds.make_fold(_records() if records is None else records, **params)


def test_top_k_combinations_by_frequency_with_deterministic_ties():
    assert _fold(num_combinations=3).combinations == ((1, 0, 0), (0, 1, 0), (1, 1, 0))
    assert _fold(num_combinations=2, per_combination=20).combinations == ((1, 0, 0), (0, 1, 0))
    assert _fold().available == (480, 360, 360)


def test_exact_counts_per_combination_and_split():
    records = {r.image_id: r for r in _records()}
    fold = _fold(per_combination=30)  # 30 × (0.8, 0.1, 0.1) = 24 / 3 / 3

    assert fold.counts == {"train": (24, 24, 24), "val": (3, 3, 3), "test": (3, 3, 3)}
    for split in folds.SPLITS:
        got = collections.Counter(records[i].labels for i in fold.ids[split])
        assert got == {c: n for c, n in zip(fold.combinations, fold.counts[split])}
        assert list(fold.ids[split]) == sorted(fold.ids[split])


@pytest.mark.parametrize(
    "n, expected",
    [(5, (4, 1, 0)), (7, (5, 1, 1)), (10, (8, 1, 1)), (13, (11, 1, 1)), (1, (1, 0, 0))],
)
def test_quotas_round_by_largest_remainder_and_sum_to_n(n, expected):
    fold = _fold(num_combinations=1, per_combination=n)
    assert tuple(fold.counts[s][0] for s in folds.SPLITS) == expected


def test_patients_are_disjoint_across_splits():
    records = {r.image_id: r for r in _records(images_per_patient=3)}
    fold = _fold(records=list(records.values()))
    patients = {s: {records[i].patient_id for i in fold.ids[s]} for s in folds.SPLITS}
    assert not patients["train"] & patients["val"]
    assert not patients["train"] & patients["test"]
    assert not patients["val"] & patients["test"]


def test_patients_are_split_by_the_fractions():
    # One image per patient: then every image of a kept combination is drawn
    # from its patient's split, and the splits' patient counts are exact.
    records = [ImageRecord(f"im{i:03d}", f"pt{i:03d}", (1, 0, 0)) for i in range(100)]
    fold = _fold(records=records, num_combinations=1, per_combination=100)
    assert {s: len(fold.ids[s]) for s in folds.SPLITS} == {"train": 80, "val": 10, "test": 10}


def test_same_seed_same_fold_other_seed_other_fold():
    assert _fold(seed=3) == _fold(seed=3)
    assert _fold(seed=3).ids != _fold(seed=4).ids


def test_selection_of_a_combination_does_not_depend_on_k():
    k2, k3 = _fold(num_combinations=2), _fold(num_combinations=3)
    records = {r.image_id: r for r in _records()}
    for split in folds.SPLITS:
        first_two = {i for i in k3.ids[split] if records[i].labels in k2.combinations}
        assert first_two == set(k2.ids[split])


def test_too_many_combinations_says_how_many_exist():
    with pytest.raises(ValueError, match="6 label combinations requested but the cohort has only 5 distinct"):
        _fold(num_combinations=6)


def test_too_many_images_says_which_combination_split_and_how_many():
    with pytest.raises(ValueError) as info:
        _fold(num_combinations=4, per_combination=200)
    message = str(info.value)
    # (0,0,1) has 160 images in all, so fewer than 160 among the train patients.
    assert "combination z [0, 0, 1] has 1" in message
    assert "images among the train patients but 160 are requested" in message
    assert "160 images overall" in message


def test_invalid_requests_are_rejected():
    with pytest.raises(ValueError, match="summing to 1"):
        _fold(fractions=(0.8, 0.1, 0.2))
    with pytest.raises(ValueError, match=">= 1"):
        _fold(per_combination=0)
    bad = _records()[:3] + [ImageRecord("im9999", "", (1, 0, 0))]
    with pytest.raises(ValueError, match="im9999.*no patient id"):
        _fold(records=bad)


def test_manifest_round_trip(tmp_path):
    fold = _fold()
    path = tmp_path / "fold" / "manifest.json"
    folds.write_manifest(fold, path)

    assert folds.read_manifest(path) == fold
    assert [p.name for p in path.parent.iterdir()] == ["manifest.json"]  # no temp file left
    payload = json.loads(path.read_text())
    assert payload["dataset"] == "ds/cfg/1.0.0" and payload["seed"] == 0
    assert payload["parameters"] == {"num_combinations": 3, "per_combination": 30, "fractions": [0.8, 0.1, 0.1]}
    assert payload["combinations"][2] == {
        "names": ["x", "y"],
        "multi_hot": [1, 1, 0],
        "available": 360,
        "counts": {"train": 24, "val": 3, "test": 3},
    }
