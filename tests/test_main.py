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


def test_the_console_shows_rows_dropped_by_rule_and_nothing_when_none_are(tmp_path, capsys):
    from medgan.data import phantoms

    root = tmp_path / "CheXpert-v1.0-small"
    phantoms.write_chexpert_layout(root, phantoms.sample_cohort("chest", 6, 2), 32, 2, lateral_fraction=0.5)
    config = configuration.base_config("prepare")
    config.data.update(source="chexpert", root=str(root), resolution=32)
    result = main.run_job(config, str(tmp_path / "chexpert"))
    lateral = fileio.read_json(result["report"])["dropped_by_rule"]["lateral"]
    assert lateral > 0
    assert f"dropped by rule: lateral {lateral}" in capsys.readouterr().out
    config = configuration.base_config("prepare")
    config.data.update(source="phantom_head_ct", resolution=32, phantom_patients=4)
    main.run_job(config, str(tmp_path / "phantom"))
    out = capsys.readouterr().out
    assert "none dropped by rule" in out and out.count("dropped by rule") == 1  # the job's line, no warning line


def test_real_cohort_with_a_wrong_root_names_the_path(tmp_path):
    config = configuration.base_config("prepare")
    config.data.source = "chexpert"
    config.data.root = str(tmp_path / "nowhere")
    with pytest.raises(Exception, match="nowhere"):
        main.run_job(config, str(tmp_path / "w"))
