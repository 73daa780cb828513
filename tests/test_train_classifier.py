"""The train_classifier job end to end on a tiny phantom fold."""

import json

import numpy as np
import pytest

from medgan import configuration, fileio, main
from medgan.eval import auc
from medgan.train import classifier_step
from medgan.workdir import RESULT_FILE, SCORES_FILE

pytestmark = pytest.mark.slow  # whole jobs end to end; make test-fast leaves them out


def tiny_config(**classifier):
    config = configuration.base_config("train_classifier")
    config.data.source = "phantom_mammo"
    config.data.resolution = 32
    config.data.phantom_patients = 400
    config.fold.num_combinations = 2
    config.fold.per_combination = 32
    config.fold.val_per_combination = config.fold.test_per_combination = 4
    clf = config.classifier
    clf.model = "densenet_tiny"
    clf.tile_to_rgb = False
    clf.learning_rate = 1e-3
    clf.global_batch_size = 16
    clf.num_steps = 12
    clf.eval_every = 6
    clf.checkpoint_every = 6
    clf.log_every = 3
    for key, value in classifier.items():
        clf[key] = value
    return config


@pytest.fixture(scope="module")
def trained(tmp_path_factory, phantom_prepared_dir):
    workdir = tmp_path_factory.mktemp("classifier")
    config = tiny_config()
    config.data.prepared_dir = str(phantom_prepared_dir)
    return workdir, main.run_job(config, str(workdir))


def test_results_schema_and_scores_file_agree(trained):
    workdir, result = trained
    assert result == fileio.read_json(workdir / RESULT_FILE)
    json.dumps(result, allow_nan=False)  # strict JSON: undefined values are null, not NaN
    assert result["train_data"] == "real"
    assert result["steps"] == 12 and result["stopped"] in ("finished", "early_stopped")
    assert result["best_step"] in (6, 12)
    assert result["train_images"] == 64 and result["test_images"] == 8
    assert set(result["test"]["classes"]) == {"normal", "mass", "calcification"}
    assert result["train_images_per_second"] > 0

    scores = np.load(workdir / SCORES_FILE)
    assert list(scores["image_ids"]) == sorted(fileio.read_json(workdir / "manifest.json")["ids"]["test"])
    assert scores["scores"].shape == scores["labels"].shape == (8, 3)
    # The reported AUCs are those of the saved scores (the benchmark's DeLong test pairs them).
    recomputed = auc.per_class_auc(scores["labels"], scores["scores"], result["class_names"])
    assert recomputed["mean_auc"] == pytest.approx(result["test"]["mean_auc"])


def test_a_finished_job_is_skipped(trained):
    workdir, result = trained
    mtime = (workdir / RESULT_FILE).stat().st_mtime_ns
    assert main.run_job(tiny_config(), str(workdir)) == result
    assert (workdir / RESULT_FILE).stat().st_mtime_ns == mtime


def test_label_weights_keep_constant_labels_at_one():
    labels = np.array([[1, 0, 1], [1, 0, 0], [1, 0, 0], [1, 0, 1]], np.float32)
    weights = classifier_step.positive_weights(labels, ("always", "never", "half"))
    np.testing.assert_array_equal(weights, [1.0, 1.0, 1.0])
    assert classifier_step.constant_labels(labels, ("always", "never", "half")) == ["always", "never"]
    weights = classifier_step.positive_weights(labels[:3], ("always", "never", "rare"))
    np.testing.assert_array_equal(weights, [1.0, 1.0, 2.0])  # 2 negatives / 1 positive


def test_synthetic_training_data_without_manifest_names_the_key(tmp_path):
    config = tiny_config(train_data=str(tmp_path / "synthetic"))
    with pytest.raises(FileNotFoundError, match="config.classifier.train_data"):
        main.run_job(config, str(tmp_path / "w"))
