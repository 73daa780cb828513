"""Job "train_classifier": the benchmark's judge, trained on real or synthetic images.

Trains the study's classifier (DESIGN.md: DenseNet-121, class-weighted BCE,
Adam 1e-4, LR x0.1 on plateau of the mean validation AUC, early stopping) on
the train split of a fold — the real one, or a synthetic dataset written in
the same format — selects the best checkpoint on the validation split and
scores the REAL test split. Writes `results.json` (per-class AUC with DeLong
CIs, mean AUC, steps, images/s) and `test_scores.npz` (ids, labels, scores),
which the benchmark pairs with another classifier's scores for DeLong's test.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from medgan import fileio, prepare
from medgan.data import builders, folds, pipeline
from medgan.eval import auc
from medgan.models import classifiers
from medgan.train import classifier_step, loop, sharding
from medgan.train import state as state_lib

RESULT_FILE = "results.json"
SCORES_FILE = "test_scores.npz"
PARAMS_DIR = "params"  # the selected (best-validation) network, for features: FD and the privacy audit


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """Where the classifier's train and validation images come from."""

    dataset_dir: str
    train_ids: tuple[str, ...]
    val_ids: tuple[str, ...]
    description: str


class SplitScorer:
    """Scores every image of a split once per call, in sorted-id order, on every process.

    The tf.data pass is built once (its encoded records are cached after the
    first pass); each call streams it through the jitted eval step and gathers
    the per-process rows. Rows carry their index in the sorted id list, so the
    result is aligned across processes, runs and classifiers.
    """

    def __init__(self, dataset_dir: str, ids: Sequence[str], mesh, global_batch_size: int):
        self.ids = tuple(sorted(ids))
        self._position = {image_id: i for i, image_id in enumerate(self.ids)}
        self._mesh = mesh
        self._dataset = pipeline.eval_dataset(
            dataset_dir,
            self.ids,
            batch_size=pipeline.local_batch_size(global_batch_size, mesh),
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )

    def __call__(self, evaluate: Callable, state) -> tuple[np.ndarray, np.ndarray]:
        """(labels [N, K], scores [N, K]) of the split's N images in sorted-id order."""
        rows, labels, scores = [], [], []
        for batch in pipeline.numpy_batches(self._dataset):
            row = np.array([self._position.get(i.decode(), -1) for i in batch["image_id"]], np.int64)
            out = evaluate(state, pipeline.to_global(batch, self._mesh))
            rows.append(multihost_utils.process_allgather(row, tiled=True))
            labels.append(multihost_utils.process_allgather(out["labels"], tiled=True))
            scores.append(multihost_utils.process_allgather(out["scores"], tiled=True))
        rows, labels, scores = np.concatenate(rows), np.concatenate(labels), np.concatenate(scores)
        keep = rows >= 0  # padding rows
        order = np.argsort(rows[keep])
        if not np.array_equal(rows[keep][order], np.arange(len(self.ids))):
            raise RuntimeError("the evaluation pass did not score every image of the split exactly once")
        return labels[keep][order], scores[keep][order]


def fold_of(config: ml_collections.ConfigDict, workdir: str, prepared) -> folds.Fold:
    """The fold of this job: `config.fold.manifest`, else <workdir>/manifest.json if written, else drawn and written."""
    if config.fold.manifest:
        if not os.path.exists(config.fold.manifest):
            raise FileNotFoundError(f"config.fold.manifest={config.fold.manifest!r} does not exist")
        path = config.fold.manifest
    else:
        path = os.path.join(workdir, "manifest.json")
    if os.path.exists(path):
        fold = folds.read_manifest(path)
        if fold.dataset != prepared.name:
            raise ValueError(f"{path} belongs to dataset {fold.dataset}, this job reads {prepared.name}")
        return fold
    fold = folds.make_fold(
        builders.read_index(prepared.dataset_dir),
        class_names=prepared.class_names,
        dataset=prepared.name,
        num_combinations=config.fold.num_combinations,
        per_combination=config.fold.per_combination,
        fractions=tuple(config.fold.fractions),
        seed=config.fold.seed,
    )
    if jax.process_index() == 0:
        folds.write_manifest(fold, path)
    return fold


def training_data(train_data: str, prepared, fold: folds.Fold) -> TrainingData:
    """The real fold's train/val splits, or those of a synthetic dataset directory."""
    if not train_data:
        return TrainingData(prepared.dataset_dir, fold.ids["train"], fold.ids["val"], "real")
    manifest_path = _synthetic_manifest(train_data)
    synthetic = folds.read_manifest(manifest_path)
    if tuple(synthetic.class_names) != tuple(prepared.class_names):
        raise ValueError(
            f"{manifest_path}: classes {synthetic.class_names} differ from the real cohort's {prepared.class_names}"
        )
    dataset_dir = os.path.join(train_data, "dataset")
    return TrainingData(dataset_dir, synthetic.ids["train"], synthetic.ids["val"], f"synthetic:{train_data}")


def _synthetic_manifest(train_data: str) -> str:
    manifest_path = os.path.join(train_data, "manifest.json")
    if not os.path.exists(manifest_path):
        raise FileNotFoundError(
            f"config.classifier.train_data={train_data!r}: no manifest.json there "
            "(expected a dataset written by the synthesize job)"
        )
    return manifest_path


def labels_of(dataset_dir: str, ids: Sequence[str]) -> np.ndarray:
    """Multi-hot labels [N, K] of `ids` from the prepared index (no image decoding)."""
    wanted = set(ids)
    return np.array([r.labels for r in builders.read_index(dataset_dir) if r.image_id in wanted], np.float32)


def label_weights(train_labels: np.ndarray, class_names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Positive-class weights [K], and the labels that are constant in the training split.

    A fold keeps k label combinations, so most findings are never (or always)
    positive in it. `positive_weights` gives those weight 1: their logits learn
    the constant, and their test AUC is undefined and excluded from the mean.
    """
    positives = train_labels.sum(axis=0)
    constant = [name for name, p in zip(class_names, positives) if p in (0, len(train_labels))]
    return classifier_step.positive_weights(train_labels, tuple(class_names)), constant


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    result_path = os.path.join(workdir, RESULT_FILE)
    if os.path.exists(result_path):
        result = fileio.read_json(result_path)
        print(f"{result_path} exists: classifier already trained (mean test AUC {result['test']['mean_auc']:.3f})")
        return result

    cfg = config.classifier
    if cfg.train_data:
        _synthetic_manifest(cfg.train_data)  # fail before preparing anything
    sharding.initialize_distributed(config.distributed)
    mesh = sharding.make_mesh()
    prepared = prepare.prepare_cohort(config.data, workdir)
    fold = fold_of(config, workdir, prepared)
    data = training_data(cfg.train_data, prepared, fold)
    class_names = tuple(prepared.class_names)
    train_labels = labels_of(data.dataset_dir, data.train_ids)
    pos_weight, constant = label_weights(train_labels, class_names)

    model_config = {"name": cfg.model, "num_classes": len(class_names), "dtype": cfg.dtype,
                    "tile_to_rgb": cfg.tile_to_rgb, "stem": cfg.stem}
    model = model_from(model_config)
    key = jax.random.key(config.seed)
    init_key, step_key = jax.random.split(key)
    resolution, channels = prepared.resolution, prepared.channels
    state = state_lib.create_classifier_state(
        model, state_lib.adam(cfg.learning_rate), init_key, (1, resolution, resolution, channels), mesh
    )
    train, evaluate = classifier_step.make_steps(mesh, flip=cfg.flip)
    pos_weight = sharding.replicate(pos_weight, mesh)
    step_key = sharding.replicate(step_key, mesh)

    val_scorer = SplitScorer(data.dataset_dir, data.val_ids, mesh, cfg.global_batch_size)

    def validate(state) -> dict[str, float]:
        labels, scores = val_scorer(evaluate, state)
        return {"val_mean_auc": auc.per_class_auc(labels, scores, class_names)["mean_auc"]}

    start = time.perf_counter()
    outcome = loop.train_loop(
        workdir=os.path.join(workdir, "classifier"),
        state=state,
        step_fn=lambda state, batch: train(state, batch, step_key, pos_weight),
        make_batches=lambda start_step: pipeline.train_batches(
            data.dataset_dir,
            data.train_ids,
            global_batch_size=cfg.global_batch_size,
            mesh=mesh,
            seed=config.seed,
            start_step=start_step,
        ),
        num_steps=cfg.num_steps,
        checkpoint_every=cfg.checkpoint_every,
        log_every=cfg.log_every,
        eval_every=cfg.eval_every,
        evaluate=validate,
        best_metric="val_mean_auc",
        controller=loop.PlateauController(
            metric="val_mean_auc",
            mode="max",
            plateau_patience=cfg.plateau_patience,
            plateau_factor=cfg.plateau_factor,
            early_stop_patience=cfg.early_stop_patience,
            scale_learning_rate=state_lib.scale_learning_rate,
        ),
    )
    wall = time.perf_counter() - start
    if outcome.reason == loop.PREEMPTED:
        print(f"preempted at step {outcome.steps}: checkpoint saved; run the same command again to continue")
        return {"status": loop.PREEMPTED, "steps": outcome.steps}
    best = outcome.best_state if outcome.best_state is not None else outcome.state

    test_scorer = SplitScorer(prepared.dataset_dir, fold.ids["test"], mesh, cfg.global_batch_size)
    labels, scores = test_scorer(evaluate, best)
    report = auc.per_class_auc(labels, scores, class_names)
    # Every process takes part in the (collective) orbax save.
    classifiers.save_params(
        os.path.join(workdir, PARAMS_DIR), {"params": best.params, "batch_stats": best.batch_stats}, overwrite=True
    )
    result = {
        "train_data": data.description,
        "dataset": prepared.name,
        "model": cfg.model,
        "model_config": model_config,
        "input_shape": [resolution, resolution, channels],
        "params": PARAMS_DIR,
        "class_names": list(class_names),
        "train_images": len(data.train_ids),
        "constant_labels_in_training": constant,
        "val_images": len(data.val_ids),
        "test_images": len(fold.ids["test"]),
        "steps": outcome.steps,
        "stopped": outcome.reason,
        "best_step": outcome.best_step,
        "best_val_mean_auc": outcome.best_value,
        "train_images_per_second": outcome.images_per_second(cfg.global_batch_size),
        "wall_seconds": wall,
        "test": report,
        "test_scores": SCORES_FILE,
    }
    if jax.process_index() == 0:
        with fileio.atomic_path(os.path.join(workdir, SCORES_FILE)) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, image_ids=np.array(test_scorer.ids), labels=labels, scores=scores,
                         class_names=np.array(class_names))
        fileio.write_json(result_path, result)
        print_report(result)
        print(f"results: {result_path}")
    logging.info("train_classifier done in %.0f s", wall)
    return result


def model_from(model_config: dict):
    """The classifier module described by a results.json "model_config"."""
    return classifiers.make_classifier(
        model_config["name"],
        model_config["num_classes"],
        dtype=jnp.dtype(model_config["dtype"]),
        tile_to_rgb=model_config["tile_to_rgb"],
        **({"stem": model_config["stem"]} if model_config["stem"] else {}),
    )


def load_feature_extractor(classifier_dir: str) -> tuple[Callable, int]:
    """(features(images [B,R,R,C]) -> [B, D] jitted, D) of the network a finished run selected.

    `classifier_dir` is a train_classifier work directory (its results.json
    and params/). Used for the Fréchet distance of the GAN and the privacy
    audit: the study's feature space is the real-trained classifier's pool.
    """
    result_path = os.path.join(classifier_dir, RESULT_FILE)
    if not os.path.exists(result_path):
        raise FileNotFoundError(f"{result_path} does not exist: train the classifier on the real fold first")
    result = fileio.read_json(result_path)
    model = model_from(result["model_config"])
    shape = (1, *result["input_shape"])
    abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape), train=False))
    variables = classifiers.load_params(os.path.join(classifier_dir, result["params"]), abstract)
    features = jax.jit(lambda variables, images: model.apply(variables, images, method=model.features))
    return functools.partial(features, variables), model.feature_dim


def print_report(result: dict) -> None:
    """Per-class test AUC with 95% DeLong CIs and the mean, as a plain table."""
    test = result["test"]
    print(f"classifier {result['model']} trained on {result['train_data']}: {result['steps']} steps "
          f"({result['stopped']}), best val mean AUC {result['best_val_mean_auc']:.3f}")
    print(f"{'class':32s} {'AUC':>6s}  95% CI          pos/neg")
    for name, entry in test["classes"].items():
        if entry["auc"] is None:
            print(f"{name:32s} {'n/a':>6s}  (undefined: {entry['positives']} positives, {entry['negatives']} negatives)")
            continue
        ci = "" if entry["ci_low"] is None else f"[{entry['ci_low']:.3f}, {entry['ci_high']:.3f}]"
        print(f"{name:32s} {entry['auc']:6.3f}  {ci:15s} {entry['positives']}/{entry['negatives']}")
    print(f"{'mean over ' + str(test['defined_classes']) + ' defined classes':32s} {test['mean_auc']:6.3f}")
