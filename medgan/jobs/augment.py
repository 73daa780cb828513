"""Job "augment": the study's cancer classifier, trained on real patches with a decaying share of synthetic ones.

    python -m medgan.main --config=configs/mammo_demo.py:stage=augment,p0=0.5 --workdir=work/mammo/augment_p50

ResNet-50 (`augment.model`; ImageNet-initialised from a Keras weights file
where `augment.pretrained` names one), cancer versus no cancer, positives and
negatives drawn with equal probability, Adam 1e-5, a share p0 of synthetic
patches decayed by 10% every 5,000 samples (train/augment.py); validation
AUC on the real validation patches every 5,000 samples selects the
checkpoint; the real test patches are scored once with it. With
`augment.baseline` (a finished run at p0 = 0) the result holds DeLong's
paired test against it.

Work directory: classifier/checkpoints/, params/ (the selected network, as
train_classifier writes it, so eval/features loads it), test_scores.npz
(labels, scores of the real test patches in their stored order), results.json
(last).
"""

from __future__ import annotations

import os
import time

import jax
import ml_collections
import numpy as np

from medgan import console, fileio, report_format as fmt, sharding
from medgan.data import mammo_cohort
from medgan.eval import auc
from medgan.jobs import common, synthesize_lesions
from medgan.study import mammo
from medgan.train import augment, checkpoints, classifier_step, loop
from medgan.workdir import PARAMS_DIR, PREEMPTED, RESULT_FILE, SCORES_FILE

CHECKPOINT_DIR = "classifier"


def pools(patches) -> dict[str, np.ndarray]:
    """{"positive", "negative"} images [N, R, R, 1] in [-1, 1] of a PatchSet, by `mammo.cancer_labels`."""
    labels = mammo.cancer_labels(patches)
    images = mammo_cohort.to_model(patches.images)
    return {"positive": images[labels == 1], "negative": images[labels == 0]}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    cfg = config.augment
    if cfg.p0 > 0 and not cfg.synthetic:
        raise ValueError(f"config.augment.p0={cfg.p0} needs config.augment.synthetic (a synthesize_lesions run)")
    previous, mesh = common.begin(config, workdir, lambda r: f"p0 = {r['p0']:.0%} already trained "
                                                             f"(test AUC {r['test_auc']:.3f})")
    if previous is not None:
        return previous
    patches = mammo_cohort.load_patches(mammo_cohort.patches_dir(config.mammo, workdir))
    real = pools(patches["train"])
    synthetic = pools(synthesize_lesions.load(cfg.synthetic)) if cfg.synthetic else {
        "positive": real["positive"][:0], "negative": real["negative"][:0]}
    val_images, val_labels = mammo_cohort.to_model(patches["val"].images), mammo.cancer_labels(patches["val"])
    test_images, test_labels = mammo_cohort.to_model(patches["test"].images), mammo.cancer_labels(patches["test"])

    size = config.mammo.patch
    description, state, step_key = classifier_step.binary_classifier(cfg.model, size, cfg.learning_rate, mesh,
                                                                     config.seed, pretrained=cfg.pretrained)
    train, evaluate = classifier_step.make_steps(mesh, flip=False)  # flips and quarter turns are in the patches
    pos_weight, step_key = sharding.replicate(np.ones(1, np.float32), mesh), sharding.replicate(step_key, mesh)
    batch = cfg.global_batch_size

    def validate(state) -> dict[str, float]:
        return {"val_auc": auc.roc_auc(val_labels, augment.score_arrays(evaluate, state, val_images, mesh, batch))}

    every = augment.samples_to_steps(cfg.validate_every, batch)
    num_steps = -(-augment.samples_to_steps(cfg.total_samples, batch) // every) * every  # ends on a validation
    start = time.perf_counter()
    outcome = loop.train_loop(
        workdir=os.path.join(workdir, CHECKPOINT_DIR), state=state,
        step_fn=lambda state, b: train(state, b, step_key, pos_weight),
        make_batches=lambda start_step: augment.batches(
            real, synthetic, p0=cfg.p0, decay=cfg.decay, decay_every=cfg.decay_every, global_batch_size=batch,
            mesh=mesh, seed=config.seed, start_step=start_step),
        num_steps=num_steps,
        checkpoint_every=every, log_every=cfg.log_every, eval_every=every,
        evaluate=validate, best_metric="val_auc", max_skipped_in_a_row=cfg.max_skipped_in_a_row,
        progress_desc=f"train cancer classifier, p0 = {cfg.p0:.0%}")
    wall = time.perf_counter() - start
    if outcome.reason == PREEMPTED:
        return common.preempted(outcome.steps)
    best = outcome.best_state if outcome.best_state is not None else outcome.state
    scores = augment.score_arrays(evaluate, best, test_images, mesh, batch)
    checkpoints.save_params(os.path.join(workdir, PARAMS_DIR), {"params": best.params, "batch_stats": best.batch_stats},
                            overwrite=True)
    value, low, high = auc.auc_confidence_interval(test_labels, scores)
    result = {
        "p0": cfg.p0, "decay": cfg.decay, "decay_every": cfg.decay_every,
        # model_config, input_shape and params as train_classifier writes them: eval/features loads either.
        "model_config": description, "input_shape": [size, size, 1], "params": PARAMS_DIR,
        "pretrained": cfg.pretrained,
        "train": {key: len(pool) for key, pool in real.items()},
        "synthetic": {key: len(pool) for key, pool in synthetic.items()},
        "steps": outcome.steps, "samples": outcome.steps * batch,
        "best_step": outcome.best_step,
        "best_samples": None if outcome.best_step is None else outcome.best_step * batch,
        "best_val_auc": outcome.best_value,
        "test_auc": value, "test_ci": [low, high],
        "test_patches": {"positive": int(test_labels.sum()), "negative": int((1 - test_labels).sum())},
        "test_scores": SCORES_FILE,
        "train_images_per_second": outcome.images_per_second(batch),
        "wall_seconds": wall,
        "seed": config.seed,
    }
    if cfg.baseline:
        with np.load(os.path.join(cfg.baseline, SCORES_FILE)) as npz:
            if not np.array_equal(npz["labels"], test_labels):
                raise ValueError(f"{cfg.baseline}: its test patches differ from this run's; same patches_dir?")
            result["delong_vs_baseline"] = auc.delong_paired_test(test_labels, scores, npz["scores"])
    if jax.process_index() == 0:
        _write(workdir, result, test_labels, scores)
    return result


def _write(workdir: str, result: dict, labels: np.ndarray, scores: np.ndarray) -> None:
    """test_scores.npz, results.json (last), and the answer on the console when run alone."""
    with fileio.atomic_path(os.path.join(workdir, SCORES_FILE)) as tmp, open(tmp, "wb") as f:
        np.savez(f, labels=labels, scores=scores)
    fileio.write_json(os.path.join(workdir, RESULT_FILE), result)
    if not console.in_stage():
        low, high = result["test_ci"]
        lines = {"test AUC": f"{result['test_auc']:.3f} {fmt.interval(low, high)}",
                 "selected at": f"{result['best_samples']} samples (val AUC {fmt.number(result['best_val_auc'])})"}
        if "delong_vs_baseline" in result:
            test = result["delong_vs_baseline"]
            lines["vs p0 = 0"] = f"{test['difference']:+.3f}, {fmt.p_clause(test['p_value'])}"
        console.summary(lines, title=f"cancer classifier, p0 = {result['p0']:.0%}:")
