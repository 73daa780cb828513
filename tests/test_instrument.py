"""The instrument: oracle cohorts (data/oracle.py), seed pooling (eval/pooling.py), the ladder and its job."""

import math
import pathlib

import jax
import numpy as np
import pytest
from scipy import stats

from medgan import fileio
from medgan.data import builders, folds, oracle, synthetic
from medgan.eval import auc, pooling
from medgan.study import instrument

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_parse_rungs_names_each_rung_and_refuses_what_is_not_one():
    rungs = oracle.parse_rungs("perfect, labels=0.25,labels=1.0,downsample=4")
    assert [r.name for r in rungs] == ["perfect", "labels_0.25", "labels_1.0", "downsample_4"]
    assert [r.label for r in rungs] == ["perfect generator", "25% of labels permuted", "100% of labels permuted",
                                        "downsampled x4"]
    for bad in ("", "perfect=1", "labels", "labels=0", "labels=1.5", "downsample=1", "downsample=2.5", "blur=2",
                "perfect,perfect"):
        with pytest.raises(ValueError, match="config.instrument.rungs"):
            oracle.parse_rungs(bad)


def test_the_oracle_draws_the_folds_counts_from_patients_the_fold_never_uses(coded_dataset):
    prepared, fold = coded_dataset
    records = builders.read_index(prepared.dataset_dir)
    counts = {"train": [2, 1, 1], "val": [1, 1, 0]}
    drawn = oracle.draw(records, fold, counts, seed=3)
    assert drawn == oracle.draw(records, fold, counts, seed=3)  # deterministic
    split_of = folds.split_patients((r.patient_id for r in records), tuple(fold.fractions), fold.seed)
    fold_patients = {r.patient_id for r in records if r.image_id in set(fold.ids["train"]) | set(fold.ids["val"])}
    for split in ("train", "val"):
        assert [sum(tuple(r.labels) == tuple(c) for r in drawn[split]) for c in fold.combinations] == counts[split]
        for record in drawn[split]:
            assert split_of[record.patient_id] != "test"
            assert record.patient_id not in fold_patients
    assert not {r.image_id for r in drawn["train"]} & {r.image_id for r in drawn["val"]}


def test_the_oracle_names_every_combination_it_cannot_fill(coded_dataset):
    prepared, fold = coded_dataset
    counts = {"train": [1000, 1, 1000], "val": [0, 0, 0]}
    with pytest.raises(oracle.NotEnoughPatients) as error:
        oracle.draw(builders.read_index(prepared.dataset_dir), fold, counts, seed=0)
    message = str(error.value)
    assert message.count("of 1000") == 2 and "config.data.phantom_patients" in message


def test_permuting_labels_keeps_every_combination_count_and_touches_only_the_share():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=(40, 3))
    for share in (0.25, 0.5, 1.0):
        permuted = oracle.permute_labels(labels, share, np.random.default_rng(1))
        assert sorted(map(tuple, permuted)) == sorted(map(tuple, labels))
        assert (permuted != labels).any(axis=1).sum() <= round(share * 40)
    shuffled = oracle.permute_labels(labels, 1.0, np.random.default_rng(1))
    assert (shuffled != labels).any(axis=1).sum() > 10


def test_degrading_averages_blocks_and_interpolates_between_their_centres():
    row = np.array([0, 40, 100, 140], np.uint8)  # blocks of 2: means 20 and 120
    image = np.tile(row[None, :, None], (4, 1, 1))[None]  # [1, 4, 4, 1], constant down the columns
    degraded = oracle.degrade(image, 2)[0, 0, :, 0]
    np.testing.assert_array_equal(degraded, [20, 45, 95, 120])  # a, .75a + .25b, .25a + .75b, b
    images = np.random.default_rng(0).integers(0, 256, size=(3, 16, 16, 1)).astype(np.uint8)
    coarse = images.astype(np.float32).reshape(3, 4, 4, 4, 4, 1).mean(axis=(2, 4))
    expected = np.clip(np.round(np.asarray(jax.image.resize(coarse, images.shape, "linear"))), 0, 255)
    assert np.abs(oracle.degrade(images, 4).astype(int) - expected).max() <= 1
    with pytest.raises(ValueError, match="multiple"):
        oracle.degrade(images, 3)


def test_pooling_over_seeds_on_a_hand_computed_case():
    pooled = pooling.pool([0.8, 0.9], [0.01, 0.03])
    within, between = 0.02, 0.005
    total = within + between / 2  # W + B / m = 0.0225
    df = 1 * (total / (between / 2)) ** 2  # (m - 1)(T / (B / m))^2 = 81
    half = stats.t.ppf(0.975, df) * math.sqrt(total)  # 1.990 * 0.15
    assert pooled["mean"] == pytest.approx(0.85) and pooled["variance"] == pytest.approx(total)
    assert pooled["df"] == pytest.approx(df) and pooled["spread"] == pytest.approx(math.sqrt(between))
    assert (pooled["ci_low"], pooled["ci_high"]) == pytest.approx((0.85 - half, 0.85 + half))
    one = pooling.pool([0.7], [0.0004])  # one seed: its Wald interval
    assert one["df"] is None and (one["ci_low"], one["ci_high"]) == pytest.approx((0.7 - 1.959964 * 0.02,
                                                                                   0.7 + 1.959964 * 0.02))
    with pytest.raises(ValueError):
        pooling.pool([0.7, 0.8], [0.01])


def test_the_seed_means_delong_variance_is_delongs_for_one_seed_and_smaller_for_independent_ones():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, size=(200, 3))
    a, b, c = (labels + rng.normal(size=labels.shape) for _ in range(3))
    names = ["x", "y", "z"]
    per_class, mean = auc.seed_mean_variances(labels, [a])
    report = auc.per_class_auc(labels, a, names)
    assert mean == pytest.approx(report["mean_auc_variance"])
    assert per_class == pytest.approx([report["classes"][n]["variance"] for n in names])
    assert auc.seed_mean_variances(labels, [a, a])[1] == pytest.approx(mean)  # the same judge twice: no gain
    paired = auc.paired_report(labels, a, b, names)
    per_class, mean = auc.seed_mean_variances(labels, [a], [b])
    assert mean == pytest.approx(paired["mean"]["variance"])
    assert per_class == pytest.approx([paired["classes"][n]["variance"] for n in names])
    two = auc.seed_mean_variances(labels, [a, c])[1]
    own = np.mean([auc.per_class_auc(labels, s, names)["mean_auc_variance"] for s in (a, c)])
    assert two < own  # judges that err on different images average part of their errors out
    one_class = np.zeros_like(labels)
    one_class[:1, 0] = 1  # class 0 has one positive: no variance, so none for the mean either
    assert auc.seed_mean_variances(one_class, [a])[1] is None


def _evaluation(labels, real, synthetic_scores, names):
    return {"class_names": names, "labels": labels, "scores": {"real": real, "synthetic": synthetic_scores},
            "real": auc.per_class_auc(labels, real, names),
            "synthetic": auc.per_class_auc(labels, synthetic_scores, names),
            "paired": auc.paired_report(labels, real, synthetic_scores, names)}


def test_a_ladder_of_known_quality_passes_every_check_and_a_flat_one_fails():
    rng = np.random.default_rng(0)
    names = ["a", "b"]
    labels = rng.integers(0, 2, size=(600, 2))
    rungs = oracle.parse_rungs("perfect,labels=0.25,labels=0.5,labels=1.0,downsample=2")

    def scores(signal, seed):
        return labels * signal + np.random.default_rng(seed).normal(size=labels.shape)

    signal = {"perfect": 3.0, "labels_0.25": 1.5, "labels_0.5": 0.4, "labels_1.0": 0.0, "downsample_2": 1.5}
    evaluations = {r.name: [_evaluation(labels, scores(3.0, 10 + s), scores(signal[r.name], 20 + s), names)
                            for s in range(3)] for r in rungs}
    gan_tests = {r.name: {"mean_auc": 0.5 + signal[r.name] / 10, "mean_auc_ci": [0.4, 0.9], "images": 10,
                          "test": {"classes": {}}} for r in rungs}
    result = instrument.ladder(rungs, evaluations, 0.95, gan_tests)
    assert [row["gan_test"] for row in result["rungs"]] == [  # kept without its per-class report
        {"mean_auc": 0.5 + signal[r.name] / 10, "mean_auc_ci": [0.4, 0.9], "images": 10} for r in rungs]
    assert instrument.markdown_table(result)[2].endswith("| 0.800 | [0.400, 0.900] |")  # the perfect rung
    assert [c["passed"] for c in result["checks"]] == [True] * 8, result["checks"]
    assert [(c["a"], c["b"]) for c in result["comparisons"]] == [
        ("perfect", "labels_0.25"), ("labels_0.25", "labels_0.5"), ("labels_0.5", "labels_1.0"),
        ("perfect", "downsample_2")]
    assert all(c["mean"] > 0 and c["p_value"] < 0.05 for c in result["comparisons"])

    flat = {name: evaluations["perfect"] for name in evaluations}
    failed = [c["check"] for c in instrument.ladder(rungs, flat, 0.95, gan_tests)["checks"] if not c["passed"]]
    assert any("contains 0.5" in c for c in failed) and any("disjoint" in c for c in failed)
    assert any("paired test" in c for c in failed)


@pytest.mark.slow
def test_the_instrument_job_judges_each_rung_on_disjoint_patients(tmp_path, phantom_prepared_dir):
    from medgan.jobs import instrument as job
    from medgan.study import sweeps

    config = sweeps.load_config_module(str(REPO / "configs" / "instrument.py")).get_config(
        "size=tiny,seeds=1,rungs=perfect+labels=1.0")
    config.data.prepared_dir = str(phantom_prepared_dir)
    result = job.run(config, str(tmp_path))
    assert [row["rung"] for row in result["rungs"]] == ["perfect", "labels_1.0"]
    assert len(result["checks"]) == 3 and result["seeds"] == [0]
    fold_images = sum(len(ids) for split, ids in folds.read_manifest(tmp_path / "manifest.json").ids.items()
                      if split != "test")
    for row in result["rungs"]:
        assert row["real"]["seeds"] == 1 and 0.0 < row["relative_auc"]["mean"] < 2.0
        assert row["gan_test"]["images"] == fold_images  # the real judge scored every train and val image
    for name in ("ladder", "rungs"):
        assert (tmp_path / result["figures"][name]).stat().st_size > 0
    fold = folds.read_manifest(tmp_path / "manifest.json")
    prepared_records = {r.image_id: r for r in builders.read_index(
        pathlib.Path(phantom_prepared_dir) / result["point"]["dataset"])}
    fold_patients = {prepared_records[i].patient_id for ids in fold.ids.values() for i in ids}
    rows = list(csv_rows(tmp_path / "rungs" / "labels_1.0" / job.SOURCES_CSV))
    assert rows and not {row["real_patient_id"] for row in rows} & fold_patients
    cohort = folds.read_manifest(tmp_path / "rungs" / "labels_1.0" / "manifest.json")
    assert cohort.counts["train"] == fold.counts["train"] and cohort.counts["val"] == fold.counts["val"]
    assert fileio.read_json(tmp_path / "rungs" / "labels_1.0" / job.ORACLE_CARD)["labels_changed"] > 0
    assert set(synthetic.SPLITS) == {row["split"] for row in rows}
    assert job.run(config, str(tmp_path)) == result  # finished: returned, nothing redone


def csv_rows(path):
    import csv

    with open(path, newline="") as f:
        yield from csv.DictReader(f)


def test_a_points_answer_pools_its_judge_seeds():
    from medgan.study import point

    rng = np.random.default_rng(1)
    names = ["a", "b"]
    labels = rng.integers(0, 2, size=(300, 2))

    def scores(signal, seed):
        return labels * signal + np.random.default_rng(seed).normal(size=labels.shape)

    evaluations = [_evaluation(labels, scores(2.0, s), scores(1.0, 10 + s), names) for s in range(3)]
    single = point.answer(evaluations[:1], 0.95)
    assert single["real"]["mean_auc"] == evaluations[0]["real"]["mean_auc"]
    assert single["delong"]["mean"] == evaluations[0]["paired"]["mean"]
    pooled = point.answer(evaluations, 0.95)
    reals = [e["scores"]["real"] for e in evaluations]
    synthetics = [e["scores"]["synthetic"] for e in evaluations]
    real = pooling.pool([e["real"]["mean_auc"] for e in evaluations],
                        [e["real"]["mean_auc_variance"] for e in evaluations], 0.95,
                        auc.seed_mean_variances(labels, reals)[1])
    assert pooled["real"]["mean_auc"] == pytest.approx(real["mean"])
    assert pooled["real"]["mean_auc_ci"] == pytest.approx([real["ci_low"], real["ci_high"]])
    difference = pooling.pool([e["paired"]["mean"]["difference"] for e in evaluations],
                              [e["paired"]["mean"]["variance"] for e in evaluations], 0.95,
                              auc.seed_mean_variances(labels, reals, synthetics)[1])
    mean = pooled["delong"]["mean"]
    assert (mean["difference"], mean["ci_low"], mean["ci_high"]) == pytest.approx(
        (difference["mean"], difference["ci_low"], difference["ci_high"]))
    z = difference["mean"] / math.sqrt(difference["variance"])
    assert mean["p_value"] == pytest.approx(2 * stats.t.sf(z, difference["df"]))
    r = pooled["real"]["mean_auc"]
    assert pooled["relative_auc"]["ci_low"] == pytest.approx(1 - difference["ci_high"] / r)
    assert pooled["relative_auc"]["per_class"]["a"] == pytest.approx(
        np.mean([e["synthetic"]["classes"]["a"]["auc"] for e in evaluations])
        / np.mean([e["real"]["classes"]["a"]["auc"] for e in evaluations]))
    assert pooled["delong"]["classes"]["b"]["p_value"] < 0.05 and pooled["delong"]["pooled_over_judge_seeds"] == 3
