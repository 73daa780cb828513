"""Jobs train_gan and synthesize end to end on a tiny phantom fold: outputs, skipping, determinism, no real metadata."""

import json
import os

import jax
import numpy as np
import pytest

from medgan import configuration, fileio, main, sharding
from medgan.data import builders, folds, pipeline
from medgan.models import gans
from medgan.train.checkpoints import params_sha256
from medgan.train.sampling import load_generator
from medgan.workdir import DATA_CARD_MD, DATASET_DIR, GENERATOR_DIR, LABELS_CSV, PREVIEW, RESULT_FILE

pytestmark = pytest.mark.slow  # whole jobs end to end; make test-fast leaves them out

RES = 32


def data(config, prepared_dir):
    config.data.source = "phantom_head_ct"
    config.data.resolution = RES
    config.data.phantom_patients = 500
    config.data.prepared_dir = str(prepared_dir)
    config.fold.num_combinations = 2
    config.fold.per_combination = 32
    config.fold.val_per_combination = config.fold.test_per_combination = 4
    return config


@pytest.fixture(scope="module")
def pipeline_dirs(tmp_path_factory, phantom_prepared_dir):
    """A real classifier (features for FD), a GAN on the same fold, and its synthetic dataset."""
    root = tmp_path_factory.mktemp("gan_job")
    clf = data(configuration.base_config("train_classifier"), phantom_prepared_dir)
    clf.classifier.update(dict(model="densenet_tiny", stem="small", tile_to_rgb=False, learning_rate=1e-3,
                               global_batch_size=16, num_steps=4, eval_every=2, checkpoint_every=2, log_every=2))
    main.run_job(clf, str(root / "real"))
    gan = data(configuration.base_config("train_gan"), phantom_prepared_dir)
    gan.fold.manifest = str(root / "real" / "manifest.json")
    gan.gan.update(dict(model="pggan", latent_dim=16, fmap_base=128, fmap_max=16, global_batch_size=8, num_steps=6,
                        start_resolution=8, steps_per_phase=1, fid_classifier=str(root / "real"), fid_every=3,
                        fid_samples=16, sample_every=3, samples_per_combination=4, checkpoint_every=3, log_every=3))
    result = main.run_job(gan, str(root / "gan"))
    syn = configuration.base_config("synthesize")
    syn.synthesize.generator = str(root / "gan")
    syn.synthesize.global_batch_size = 16
    card = main.run_job(syn, str(root / "synthetic"))
    return root, gan, result, syn, card


def test_train_gan_writes_results_samples_and_generator(pipeline_dirs):
    root, _, result, _, _ = pipeline_dirs
    gan_dir = root / "gan"
    assert result == fileio.read_json(gan_dir / RESULT_FILE)
    json.dumps(result, allow_nan=False)
    assert result["steps"] == 6 and result["stopped"] == "finished"
    assert result["model"]["name"] == "pggan" and result["model"]["resolution"] == RES
    # 8 px (step 1), fade-in of 16 (2), 16 px (3), fade-in of 32 (4), 32 px (5, 6): only the FD of
    # step 6 is of the grown model, so it is the one selected
    assert result["selected_step"] == 6 and result["best_fd"] > 0
    assert (gan_dir / result["samples"]).exists() and (gan_dir / GENERATOR_DIR).is_dir()
    assert sorted(n for n in os.listdir(gan_dir / "samples") if n.endswith(".png")) == [
        "step_0000003.png", "step_0000006.png"
    ]
    # The recorded hash is of the weights: the exported generator read back has it.
    params = load_generator(str(gan_dir / GENERATOR_DIR), gans.spec_from(result["model"]), sharding.make_mesh())
    assert result["generator_sha256"] == params_sha256(params)
    assert params_sha256(jax.tree.map(lambda x: x + 1e-6, params)) != result["generator_sha256"]


def test_finished_jobs_are_skipped(pipeline_dirs):
    root, gan, result, syn, card = pipeline_dirs
    mtime = (root / "gan" / RESULT_FILE).stat().st_mtime_ns
    assert main.run_job(gan, str(root / "gan")) == result
    assert (root / "gan" / RESULT_FILE).stat().st_mtime_ns == mtime
    assert main.run_job(syn, str(root / "synthetic")) == card


def test_synthetic_dataset_mirrors_the_real_label_counts_and_is_readable(pipeline_dirs):
    root, _, _, _, card = pipeline_dirs
    real = folds.read_manifest(root / "real" / "manifest.json")
    synthetic = folds.read_manifest(root / "synthetic" / "manifest.json")
    assert synthetic.combinations == real.combinations
    assert synthetic.counts["train"] == real.counts["train"] and synthetic.counts["val"] == real.counts["val"]
    assert synthetic.ids["test"] == ()  # the test split is always real
    assert card["counts"]["total"] == sum(real.counts["train"]) + sum(real.counts["val"])
    dataset_dir = str(root / "synthetic" / DATASET_DIR)
    index = builders.read_index(dataset_dir)
    assert sorted(r.image_id for r in index) == sorted(synthetic.ids["train"] + synthetic.ids["val"])
    by_id = {r.image_id: r.labels for r in index}
    rows = list(open(root / "synthetic" / LABELS_CSV))
    assert rows[0].strip().split(",")[:2] == ["image_id", "split"] and len(rows) == 1 + len(index)
    for row in rows[1:]:
        image_id, split, *labels = row.strip().split(",")
        assert tuple(int(x) for x in labels) == by_id[image_id]
    # the classifier's input pipeline reads it like a real fold
    ds = pipeline.eval_dataset(dataset_dir, synthetic.ids["val"], batch_size=8)
    batch = next(pipeline.numpy_batches(ds))
    assert batch["image"].shape[1:] == (RES, RES, 1) and -1 <= batch["image"].min() <= batch["image"].max() <= 1
    for name in (PREVIEW, DATA_CARD_MD):
        assert (root / "synthetic" / name).exists()
    assert card["generator"]["checkpoint_sha256"] and card["audits"] == [] and not card["real_metadata_copied"]


def test_synthesis_is_deterministic_for_a_seed(pipeline_dirs, tmp_path):
    root, _, _, syn, _ = pipeline_dirs
    syn.synthesize.global_batch_size = 8  # another batching must not change a single pixel
    main.run_job(syn, str(tmp_path / "again"))
    syn.seed = 1
    main.run_job(syn, str(tmp_path / "other_seed"))
    syn.seed, syn.synthesize.global_batch_size = 0, 16

    def images(directory):
        ds = pipeline.eval_dataset(str(directory / DATASET_DIR),
                                   folds.read_manifest(directory / "manifest.json").ids["train"], batch_size=64)
        return np.concatenate([b["image"][b["mask"]] for b in pipeline.numpy_batches(ds)])

    first = images(root / "synthetic")
    np.testing.assert_array_equal(first, images(tmp_path / "again"))
    assert not np.array_equal(first, images(tmp_path / "other_seed"))


def test_no_real_metadata_reaches_the_synthetic_dataset(pipeline_dirs):
    root, gan, result, _, _ = pipeline_dirs
    real_index = builders.read_index(_real_dataset_dir(gan, result))
    secrets = {r.image_id for r in real_index} | {r.patient_id for r in real_index}
    synthetic_dir = root / "synthetic"
    for directory, _, files in os.walk(synthetic_dir):
        for name in files:
            content = open(os.path.join(directory, name), "rb").read()
            for secret in secrets:
                assert secret.encode() not in content, (name, secret)
    for record in builders.read_index(str(synthetic_dir / DATASET_DIR)):
        assert record.image_id.startswith("synthetic-") and record.patient_id == record.image_id


def _real_dataset_dir(gan_config, gan_result):
    """The prepared real cohort the GAN trained on: <data.prepared_dir>/<dataset name>."""
    return os.path.join(gan_config.data.prepared_dir, gan_result["dataset"])


def test_missing_generator_names_the_key(tmp_path):
    syn = configuration.base_config("synthesize")
    with pytest.raises(configuration.ConfigError, match="config.synthesize.generator"):
        main.run_job(syn, str(tmp_path / "out"))
    syn.synthesize.generator = str(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="config.synthesize.generator"):
        main.run_job(syn, str(tmp_path / "out"))
