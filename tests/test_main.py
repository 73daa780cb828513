"""The entry point: config errors stop before any work; the demo job end to end."""

import os
import pathlib
import subprocess
import sys

import pytest

from medgan import configuration, fileio, main

REPO = pathlib.Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=REPO):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", "medgan.main", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )


def test_cli_misspelt_override_fails_naming_the_key(tmp_path):
    proc = run_cli("--config=configs/demo.py", f"--workdir={tmp_path}/w",
                   "--config.data.resolutoin=32")
    assert proc.returncode != 0
    assert "resolutoin" in proc.stderr
    assert not (tmp_path / "w").exists(), "no work may start before the config is valid"


def test_cli_impossible_value_fails_naming_the_key(tmp_path):
    proc = run_cli("--config=configs/demo.py", f"--workdir={tmp_path}/w",
                   "--config.data.resolution=8")
    assert proc.returncode != 0
    assert "config.data.resolution=8" in proc.stderr
    assert not (tmp_path / "w").exists()


def test_cli_unknown_colon_argument_fails_naming_it(tmp_path):
    proc = run_cli("--config=configs/demo.py:patinets=5", f"--workdir={tmp_path}/w")
    assert proc.returncode != 0
    assert "patinets" in proc.stderr


def tiny_demo_config():
    config = configuration.base_config("demo")
    config.data.resolution = 32
    config.data.phantom_patients = 600
    config.fold.num_combinations = 2
    config.fold.per_combination = 20
    config.input.global_batch_size = 8
    config.preview_batches = 1
    clf = config.classifier
    clf.model, clf.tile_to_rgb, clf.global_batch_size = "densenet_tiny", False, 8
    clf.num_steps = clf.eval_every = clf.checkpoint_every = clf.log_every = 4
    config.gan_classifier = clf
    gan = config.gan
    gan.model, gan.latent_dim, gan.fmap_base, gan.fmap_max, gan.global_batch_size = "cpd", 16, 128, 16, 8
    gan.num_steps = gan.fid_every = gan.sample_every = gan.checkpoint_every = gan.log_every = 2
    gan.fid_samples, gan.samples_per_combination = 16, 2
    return config


def test_demo_job_writes_previews_manifests_and_result_and_reruns_without_rebuilding(tmp_path):
    result = main.run_job(tiny_demo_config(), str(tmp_path))
    assert result["devices"] == 8
    assert set(result["cohorts"]) == {"phantom_chest", "phantom_head_ct"}
    for cohort in result["cohorts"].values():
        assert os.path.getsize(cohort["preview"]) > 10_000  # a rendered PNG, not an empty file
        manifest = fileio.read_json(cohort["manifest"])
        assert sum(len(ids) for ids in manifest["ids"].values()) == 2 * 20
        assert cohort["batch_shape"][:2] == [32, 32]
    assert fileio.read_json(tmp_path / "result.json") == result
    # The classifier trained on the chest cohort's fold and scored its test split.
    classifier = fileio.read_json(result["classifier"]["results"])
    assert classifier["test_images"] == 2 * 2  # 10% of 20 per combination, 2 combinations
    assert classifier["test"]["mean_auc"] == result["classifier"]["mean_test_auc"]
    assert classifier["steps"] == 4
    # Train on synthetic, test on real: both classifiers scored the same real test split.
    svr = result["synthetic_versus_real"]
    assert svr["cohort"] == "phantom_head_ct" and svr["gan_steps"] == 2
    real = fileio.read_json(os.path.join(svr["directory"], "real_classifier", "results.json"))
    synthetic = fileio.read_json(os.path.join(svr["directory"], "synthetic_classifier", "results.json"))
    assert synthetic["train_data"].startswith("synthetic:") and real["train_data"] == "real"
    assert synthetic["test_images"] == real["test_images"] == 4
    assert svr["relative_auc"] == pytest.approx(svr["synthetic_mean_auc"] / svr["real_mean_auc"])
    for picture in ("samples", "synthetic_preview", "data_card"):
        assert os.path.exists(svr[picture])

    shards = sorted(pathlib.Path(tmp_path, "prepared").rglob("*.tfrecord*"))
    mtimes = [p.stat().st_mtime_ns for p in shards]
    main.run_job(tiny_demo_config(), str(tmp_path))
    assert [p.stat().st_mtime_ns for p in shards] == mtimes


def test_prepare_job_result_points_at_the_report(tmp_path):
    config = configuration.base_config("prepare")
    config.data.source = "phantom_mammo"
    config.data.resolution = 32
    config.data.phantom_patients = 10
    result = main.run_job(config, str(tmp_path))
    report = fileio.read_json(result["report"])
    assert report["counts"]["written"] == result["images_written"] > 0
    assert result["class_names"] == ["normal", "mass", "calcification"]


def test_real_cohort_with_a_wrong_root_names_the_path(tmp_path):
    config = configuration.base_config("prepare")
    config.data.source = "chexpert"
    config.data.root = str(tmp_path / "nowhere")
    with pytest.raises(Exception, match="nowhere"):
        main.run_job(config, str(tmp_path / "w"))
