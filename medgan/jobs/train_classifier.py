"""Job "train_classifier": the benchmark's judge, trained on real or synthetic images.

Trains the study's classifier (DenseNet-121, class-weighted BCE, Adam 1e-4,
LR x0.1 on a plateau of the mean validation AUC, early stopping) on the train
split of a fold — the real one, or a synthetic dataset written in the same
format — selects the best checkpoint on the validation split and scores the
REAL test split. Writes `results.json` (per-class AUC with DeLong CIs, mean
AUC, steps, images/s), `test_scores.npz` (ids, labels, scores), which the
benchmark pairs with another classifier's scores for DeLong's test, and
`params/`, the selected network (features for the Fréchet distance).
"""

from __future__ import annotations

import os
import time

import jax
import ml_collections
import numpy as np
from absl import logging

from medgan import console, fileio, report_format as fmt, sharding
from medgan.data import builders, cohorts, pipeline
from medgan.eval import auc
from medgan.eval.scoring import SplitScorer
from medgan.jobs import common
from medgan.models import classifiers
from medgan.train import checkpoints, classifier_step, loop, state as state_lib
from medgan.workdir import PARAMS_DIR, PREEMPTED, RESULT_FILE, SCORES_FILE

CHECKPOINT_DIR = "classifier"  # the loop's checkpoints live in <workdir>/classifier/checkpoints


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    cfg = config.classifier
    if cfg.train_data:
        cohorts.synthetic_manifest(cfg.train_data)  # fail before preparing anything
    if cfg.pretrained and not os.path.isfile(cfg.pretrained):
        raise FileNotFoundError(f"config.classifier.pretrained={cfg.pretrained!r}: no such file")
    previous, mesh = common.begin(
        config, workdir, lambda r: f"classifier already trained (mean test AUC {r['test']['mean_auc']:.3f})")
    if previous is not None:
        return previous
    prepared = cohorts.prepare_cohort(config.data, workdir)
    fold = cohorts.fold_of(config.fold, workdir, prepared)
    data = cohorts.training_data(cfg.train_data, prepared, fold)
    class_names = tuple(prepared.class_names)
    train_labels = builders.labels_of(data.dataset_dir, data.train_ids)

    # Keras' weights fit Keras' layout (BN epsilon; ResNet v1 with conv biases).
    model_config = classifiers.describe(cfg.model, len(class_names), dtype=cfg.dtype, tile_to_rgb=cfg.tile_to_rgb,
                                        stem=cfg.stem, input_size=cfg.input_size, normalization=cfg.normalization,
                                        style="keras" if cfg.pretrained else "torchvision")
    model = classifiers.classifier_from(model_config)
    init_key, step_key = jax.random.split(jax.random.key(config.seed))
    resolution, channels = prepared.resolution, prepared.channels
    state = state_lib.create_classifier_state(
        model, state_lib.adam(cfg.learning_rate), init_key, (1, resolution, resolution, channels), mesh
    )
    state = _pretrained(cfg, model, state, mesh)
    train, evaluate = classifier_step.make_steps(mesh, flip=cfg.flip)
    start = time.perf_counter()
    outcome = _fit(config, workdir, mesh, data, class_names, state, train, evaluate,
                   classifier_step.positive_weights(train_labels, class_names), step_key)
    wall = time.perf_counter() - start
    if outcome.reason == PREEMPTED:
        return common.preempted(outcome.steps)
    best = outcome.best_state if outcome.best_state is not None else outcome.state

    test_scorer = SplitScorer(prepared.dataset_dir, fold.ids["test"], mesh, cfg.global_batch_size)
    labels, scores = test_scorer(evaluate, best)
    checkpoints.save_params(os.path.join(workdir, PARAMS_DIR), {"params": best.params, "batch_stats": best.batch_stats},
                            overwrite=True)
    result = {
        "train_data": data.description,
        "dataset": prepared.name,
        "model": cfg.model,
        "model_config": model_config,
        "input_shape": [resolution, resolution, channels],
        "params": PARAMS_DIR,
        "class_names": list(class_names),
        "train_images": len(data.train_ids),
        "constant_labels_in_training": classifier_step.constant_labels(train_labels, class_names),
        "val_images": len(data.val_ids),
        "test_images": len(fold.ids["test"]),
        "steps": outcome.steps,
        "stopped": outcome.reason,
        "skipped_steps": outcome.skipped_steps,
        "best_step": outcome.best_step,
        "best_val_mean_auc": outcome.best_value,
        "train_images_per_second": outcome.images_per_second(cfg.global_batch_size),
        "wall_seconds": wall,
        "test": auc.per_class_auc(labels, scores, class_names),
        "test_scores": SCORES_FILE,
    }
    if jax.process_index() == 0:
        _write_results(workdir, result, test_scorer.ids, labels, scores)
    logging.info("train_classifier done in %.0f s", wall)
    return result


def _pretrained(cfg: ml_collections.ConfigDict, model, state: state_lib.ClassifierState, mesh):
    """state with the Keras feature extractor of cfg.pretrained (head and optimiser untouched), or as it is.

    Adam's moments are zeros whatever the parameters, so replacing the
    parameters after initialisation equals initialising with them. A resumed
    run restores its checkpoint over this. Without a file, a judge set up like
    the study's (ImageNet normalisation) starts from random weights: warned.
    """
    if not cfg.pretrained:
        if cfg.normalization == "imagenet":
            logging.warning(
                "classifier.pretrained is empty: the judge (%s, input_size=%d, ImageNet normalisation) starts from "
                "random weights, so it is not the study's ImageNet-pretrained Keras DenseNet-121; set "
                "classifier.pretrained to Keras' densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5 "
                "(README.md)", cfg.model, cfg.input_size)
        return state
    state = state_lib.with_keras_weights(state, model, cfg.pretrained, mesh)
    logging.info("classifier feature extractor loaded from %s", cfg.pretrained)
    return state


def _fit(config, workdir: str, mesh, data: cohorts.TrainingData, class_names, state, train, evaluate,
         pos_weight: np.ndarray, step_key: jax.Array) -> loop.LoopResult:
    """The study's schedule on the shared loop: validation AUC every eval_every steps, LR x0.1 on a plateau."""
    cfg = config.classifier
    pos_weight, step_key = sharding.replicate(pos_weight, mesh), sharding.replicate(step_key, mesh)
    val_scorer = SplitScorer(data.dataset_dir, data.val_ids, mesh, cfg.global_batch_size)

    def validate(state) -> dict[str, float]:
        labels, scores = val_scorer(evaluate, state)
        return {"val_mean_auc": auc.per_class_auc(labels, scores, class_names)["mean_auc"]}

    return loop.train_loop(
        workdir=os.path.join(workdir, CHECKPOINT_DIR),
        state=state,
        step_fn=lambda state, batch: train(state, batch, step_key, pos_weight),
        make_batches=lambda start_step: pipeline.train_batches(
            data.dataset_dir, data.train_ids, global_batch_size=cfg.global_batch_size, mesh=mesh, seed=config.seed,
            start_step=start_step),
        num_steps=cfg.num_steps,
        checkpoint_every=cfg.checkpoint_every,
        log_every=cfg.log_every,
        eval_every=cfg.eval_every,
        evaluate=validate,
        best_metric="val_mean_auc",
        max_skipped_in_a_row=cfg.max_skipped_in_a_row,
        controller=loop.PlateauController(
            metric="val_mean_auc", mode="max", plateau_patience=cfg.plateau_patience,
            plateau_factor=cfg.plateau_factor, early_stop_patience=cfg.early_stop_patience,
            scale_learning_rate=state_lib.scale_learning_rate,
        ),
    )


def _write_results(workdir: str, result: dict, ids, labels: np.ndarray, scores: np.ndarray) -> None:
    """test_scores.npz, then results.json (last), then the table on the console (run on its own)."""
    with fileio.atomic_path(os.path.join(workdir, SCORES_FILE)) as tmp, open(tmp, "wb") as f:
        np.savez(f, image_ids=np.array(ids), labels=labels, scores=scores, class_names=np.array(result["class_names"]))
    fileio.write_json(os.path.join(workdir, RESULT_FILE), result)
    if not console.in_stage():  # as a benchmark stage, the stage line says the mean AUC
        print_report(result)
        print(f"results: {os.path.join(workdir, RESULT_FILE)}")


def print_report(result: dict) -> None:
    """Per-class test AUC with 95% DeLong CIs and the mean, as a plain table."""
    test = result["test"]
    print(f"classifier {result['model']} trained on {result['train_data']}: {result['steps']} steps "
          f"({result['stopped']}), best val mean AUC {fmt.number(result['best_val_mean_auc'])}")
    print(f"{'class':32s} {'AUC':>6s}  95% CI          pos/neg")
    for name, entry in test["classes"].items():
        if entry["auc"] is None:
            print(f"{name:32s} {fmt.MISSING:>6s}  (undefined: {entry['positives']} positives, "
                  f"{entry['negatives']} negatives)")
            continue
        print(f"{name:32s} {entry['auc']:6.3f}  {fmt.interval(entry['ci_low'], entry['ci_high']):15s} "
              f"{entry['positives']}/{entry['negatives']}")
    print(f"{'mean over ' + str(test['defined_classes']) + ' defined classes':32s} {test['mean_auc']:6.3f}")
