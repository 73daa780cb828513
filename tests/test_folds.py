"""Benchmark folds as the study drew them: n training images, fixed val/test, nested, patient-disjoint."""

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
    params = dict(class_names=NAMES, dataset="ds/cfg/1.0.0", num_combinations=3, per_combination=24,
                  val_per_combination=3, test_per_combination=4, seed=0)
    params.update(kwargs)
    return folds.make_fold(_records() if records is None else records, **params)


def test_top_k_combinations_by_frequency_with_deterministic_ties():
    assert _fold(num_combinations=3).combinations == ((1, 0, 0), (0, 1, 0), (1, 1, 0))
    assert _fold(num_combinations=2, per_combination=20).combinations == ((1, 0, 0), (0, 1, 0))
    assert _fold().available == (480, 360, 360)


def test_n_counts_training_images_and_val_test_are_fixed_per_combination():
    records = {r.image_id: r for r in _records()}
    fold = _fold(per_combination=24, val_per_combination=3, test_per_combination=4)

    assert fold.counts == {"train": (24, 24, 24), "val": (3, 3, 3), "test": (4, 4, 4)}
    for split in folds.SPLITS:
        got = collections.Counter(records[i].labels for i in fold.ids[split])
        assert got == {c: n for c, n in zip(fold.combinations, fold.counts[split])}
        assert list(fold.ids[split]) == sorted(fold.ids[split])


def test_held_out_sets_are_the_same_at_every_k_and_n_and_training_sets_grow_by_prefix():
    records = {r.image_id: r for r in _records()}
    small, large = _fold(num_combinations=2, per_combination=10), _fold(num_combinations=3, per_combination=40)
    for split in ("val", "test"):
        shared = {i for i in large.ids[split] if records[i].labels in small.combinations}
        assert shared == set(small.ids[split])
    shared_train = {i for i in large.ids["train"] if records[i].labels in small.combinations}
    assert set(small.ids["train"]) < shared_train  # n = 10 trains on a subset of n = 40's images


def test_unbalanced_fold_keeps_frequent_combinations_trains_on_all_and_stratifies_val_test():
    records = _records(images_per_patient=1)
    fractions = (0.5, 0.25, 0.25)
    fold = _fold(records=records, num_combinations=0, min_images=100, per_combination=0, val_per_combination=0,
                 test_per_combination=0, val_images=50, test_images=60, fractions=fractions)
    assert fold.combinations == ((1, 0, 0), (0, 1, 0), (1, 1, 0), (0, 0, 1))  # (1,0,1) has 28 <= 100

    split_of_patient = folds._assign_patients(records, fractions, 0)
    kept = [r for r in records if r.labels in fold.combinations]
    pools = {s: collections.Counter(r.labels for r in kept if split_of_patient[r.patient_id] == s)
             for s in folds.SPLITS}
    assert fold.counts["train"] == tuple(pools["train"][c] for c in fold.combinations)  # every training image
    for split, total in (("val", 50), ("test", 60)):
        assert sum(fold.counts[split]) == total
        for combination, count in zip(fold.combinations, fold.counts[split]):
            share = total * pools[split][combination] / sum(pools[split].values())
            assert abs(count - share) < 1  # largest remainder of the combination's share


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
    sizes = dict(records=records, num_combinations=1, val_per_combination=10, test_per_combination=10)
    fold = _fold(per_combination=80, **sizes)
    assert {s: len(fold.ids[s]) for s in folds.SPLITS} == {"train": 80, "val": 10, "test": 10}
    with pytest.raises(ValueError, match="train: 80 images among the train patients, 81 requested"):
        _fold(per_combination=81, **sizes)


def test_same_seed_same_fold_other_seed_other_fold():
    assert _fold(seed=3) == _fold(seed=3)
    assert _fold(seed=3).ids != _fold(seed=4).ids


def test_too_many_combinations_says_how_many_exist():
    with pytest.raises(ValueError, match="6 label combinations requested but the cohort has only 5 distinct"):
        _fold(num_combinations=6)


def test_too_small_cohort_fails_with_every_missing_count():
    with pytest.raises(ValueError) as info:
        _fold(num_combinations=4, per_combination=150, val_per_combination=20, test_per_combination=20)
    message = str(info.value)
    assert "too small for this fold" in message
    # (0,0,1) has 160 images in all, about 128 among the train patients; every shortfall is listed.
    shortfalls = [line.strip() for line in message.splitlines()[1:]]
    assert any(line.startswith("z [0, 0, 1] train:") and "150 requested" in line for line in shortfalls)
    assert any(line.startswith("z [0, 0, 1] val:") and "20 requested" in line for line in shortfalls)


def test_invalid_requests_are_rejected():
    with pytest.raises(ValueError, match="summing to 1"):
        _fold(fractions=(0.8, 0.1, 0.2))
    with pytest.raises(ValueError, match="balanced fold .* needs val_per_combination"):
        _fold(val_per_combination=0)
    with pytest.raises(ValueError, match="unbalanced fold .* needs val_images"):
        _fold(per_combination=0)
    with pytest.raises(ValueError, match=">= 0"):
        _fold(test_per_combination=-1)
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
    assert payload["parameters"] == {
        "num_combinations": 3, "per_combination": 24, "val_per_combination": 3, "test_per_combination": 4,
        "val_images": 0, "test_images": 0, "min_images": 0, "fractions": [0.8, 0.1, 0.1],
    }
    assert payload["combinations"][2] == {
        "names": ["x", "y"],
        "multi_hot": [1, 1, 0],
        "available": 360,
        "counts": {"train": 24, "val": 3, "test": 4},
    }


def test_a_manifest_of_the_old_format_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "manifest.json"
    folds.write_manifest(_fold(), path)
    payload = json.loads(path.read_text())
    payload["format"] = 1
    path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="format 1 split n images 80/10/10; draw the fold again"):
        folds.read_manifest(path)
