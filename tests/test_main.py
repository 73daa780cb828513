"""The entry point: config errors stop before any work; the prepare job; a real cohort's wrong root."""

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
