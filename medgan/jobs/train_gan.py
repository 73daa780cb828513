"""Job "train_gan": a class-conditional GAN on the train split of a fold, on the shared training loop.

Streams the fold's real training images (global batches sharded over the
mesh) through `gan_step.make_train_step` — one D and one G update per step —
on `loop.train_loop` (orbax checkpoints, resume, SIGTERM, clu metrics).
Every `fid_every` steps the EMA generator is scored by the Fréchet distance
between its samples and the real validation images in the features of the
classifier trained on the real fold (`gan.fid_classifier`); the checkpoint
with the lowest FD is kept and training stops after `fid_patience`
evaluations without improvement, as the study stopped its GANs. Evaluations
of a growing model or before `gan.fid_start_kimg` neither count nor are kept
(the study's `minimum_fid_kimg`). Each growth stage may train at its own
global batch (`gan.batch_by_resolution`) and the run may be measured in real
images (`gan.kimg_per_phase`, `gan.total_kimg`): `progressive.GrowthSchedule`
turns both into steps, and results.json records the kimg shown.

Work directory:
  checkpoints/            orbax checkpoints (latest + best FD)
  samples/step_*.png      fixed-latent grids, one row per label combination
                          (also to TensorBoard under samples/)
  generator/              the selected EMA generator's params (what `synthesize` reads)
  eval_history.json       every evaluation: step, FD, GAN-test mean AUC (also in results.json)
  results.json            model, config, steps, FD, speed; written last
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from clu import metric_writers

from medgan import console, fileio, report_format as fmt, sharding, visualize
from medgan.data import builders, cohorts, pipeline
from medgan.eval import fidelity, label_fidelity
from medgan.eval.features import load_feature_extractor, load_logits
from medgan.jobs import common
from medgan.models import gans
from medgan.train import checkpoints, gan_step, loop, progressive
from medgan.train.sampling import Sampler, latents
from medgan.workdir import GENERATOR_DIR, MANIFEST_FILE, PREEMPTED, RESULT_FILE, SAMPLES_DIR

EVAL_HISTORY_FILE = "eval_history.json"


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    previous, mesh = common.begin(config, workdir, lambda r: f"GAN already trained ({r['steps']} steps)")
    if previous is not None:
        return previous
    cfg = config.gan
    prepared = cohorts.prepare_cohort(config.data, workdir)
    fold = cohorts.fold_of(config.fold, workdir, prepared)
    class_names = tuple(prepared.class_names)
    model = gans.describe(cfg, prepared.resolution, len(class_names), prepared.channels)
    spec = gans.spec_from(model)
    schedule = progressive.growth_schedule(spec, cfg)
    num_steps = progressive.num_steps(schedule, cfg)
    fid_start = schedule.step_at_images(cfg.fid_start_kimg * 1000)
    hp = gan_step.GanHyperparameters.from_config(cfg, spec)
    init_key, step_key, sample_key = jax.random.split(jax.random.key(config.seed), 3)
    state = gan_step.create_gan_state(spec, hp, init_key, mesh)
    steps = progressive.PhasedSteps(spec, hp, mesh, step_key)
    sampler = Sampler(mesh, cfg.global_batch_size)

    write_samples = SampleGrids(config, workdir, fold, class_names, spec, steps, sampler, sample_key)
    evaluate = fid_evaluation(config, fold, prepared, mesh, spec, steps, sampler, sample_key, fid_start,
                              os.path.join(workdir, EVAL_HISTORY_FILE)) if cfg.fid_classifier else None
    controller = progressive.AfterGrowth(loop.PlateauController(
        metric="fd_final", mode="min", early_stop_patience=cfg.fid_patience), start_step=fid_start) \
        if evaluate and cfg.fid_patience else None
    start = time.perf_counter()
    outcome = loop.train_loop(
        workdir=workdir, state=state, step_fn=steps,
        make_batches=training_batches(prepared, fold, schedule, mesh, config.seed),
        num_steps=num_steps,
        checkpoint_every=cfg.checkpoint_every,
        log_every=cfg.log_every,
        eval_every=cfg.fid_every if evaluate is not None else None,
        evaluate=evaluate,
        controller=controller,
        best_metric="fd_final" if evaluate is not None else None,
        best_mode="min",
        hooks=(write_samples.hook,),
        max_skipped_in_a_row=cfg.max_skipped_in_a_row,
    )
    wall = time.perf_counter() - start
    write_samples.writer.flush()
    if outcome.reason == PREEMPTED:
        return common.preempted(outcome.steps)
    selected, selected_step, best_fd = progressive.select(outcome)
    steps.stage, steps.alpha = schedule(outcome.steps)
    final_grid = write_samples(outcome.steps, selected.ema_params)
    checkpoints.save_params(os.path.join(workdir, GENERATOR_DIR), {"params": selected.ema_params}, overwrite=True)
    generator_sha256 = checkpoints.params_sha256(selected.ema_params)
    sharding.check_processes_agree(generator_sha256, "generator weights")
    result = {
        "model": model,
        "config": json.loads(json.dumps(cfg.to_dict())),  # as results.json holds it: tuples become lists
        "hyperparameters": dataclasses.asdict(hp),
        "dataset": prepared.name,
        "real_cohort": cohorts.source_card(prepared),
        "class_names": list(class_names),
        "fold_manifest": config.fold.manifest or os.path.join(workdir, MANIFEST_FILE),
        "train_images": len(fold.ids["train"]),
        "steps": outcome.steps,
        "kimg": schedule.images_at(outcome.steps) / 1000,
        "stopped": outcome.reason,
        "skipped_steps": outcome.skipped_steps,
        "selected_step": selected_step,
        "selected_kimg": schedule.images_at(selected_step) / 1000,
        "best_fd": best_fd,
        "eval_history": eval_history(workdir),
        "ada_p": float(jax.device_get(selected.ada_p)),
        "generator": GENERATOR_DIR,
        "generator_sha256": generator_sha256,
        "samples": os.path.relpath(final_grid, workdir),
        "train_images_per_second": images_per_second(outcome, schedule),
        "wall_seconds": wall,
        "seed": config.seed,
    }
    if jax.process_index() == 0:
        fileio.write_json(os.path.join(workdir, RESULT_FILE), result)
        if not console.in_stage():
            print_summary(result, workdir)
    return result


def training_batches(prepared, fold, schedule: progressive.GrowthSchedule, mesh, seed: int):
    """The loop's `make_batches`: from `start_step` on, the fold's training batches tagged with their stage.

    Each run of steps at one global batch (`gan.batch_by_resolution`) reads
    its own stream of that batch (`progressive.rebatched`).
    """

    def stream(batch: int, offset: int, skip: int):
        return pipeline.train_batches(prepared.dataset_dir, fold.ids["train"], global_batch_size=batch, mesh=mesh,
                                      seed=segment_seed(seed, offset), start_step=skip)

    return lambda start_step: progressive.scheduled_batches(
        progressive.rebatched(stream, schedule, start_step), schedule, start_step)


def segment_seed(seed: int, offset: int) -> int:
    """Data seed of the `offset`-th run of steps at one batch size (`progressive.rebatched`).

    `seed` itself for the first, so a constant-batch run reads the stream it
    always did; a hash of (seed, offset) for the others, so they repeat
    neither each other nor the first stream of another seed.
    """
    return seed if offset == 0 else int(np.random.SeedSequence([seed, offset]).generate_state(1)[0] >> 1)


def images_per_second(outcome: loop.LoopResult, schedule: progressive.GrowthSchedule) -> float | None:
    """Training throughput of the loop call, in real images (each phase at its own batch), without the first step."""
    if not outcome.timed_steps or outcome.train_seconds <= 0:
        return None
    images = schedule.images_at(outcome.steps) - schedule.images_at(outcome.steps - outcome.timed_steps)
    return images / outcome.train_seconds


def print_summary(result: dict, workdir: str) -> None:
    """Steps, the selected checkpoint's FD, speed, and where the samples and results are."""
    print(f"{result['model']['name']}: {result['steps']} steps ({result['stopped']}), "
          f"FD {fmt.number(result['best_fd'], 2)} at step {result['selected_step']}, "
          f"{result['train_images_per_second'] or 0:.0f} img/s")
    print(f"  samples: {os.path.join(workdir, result['samples'])}")
    print(f"  results: {os.path.join(workdir, RESULT_FILE)}")


class SampleGrids:
    """`(step, EMA params) -> PNG path`: the fixed-latent grid, one row per label combination of the fold.

    Also written to TensorBoard under samples/. The latents are fixed for the
    run, so grids of successive steps show the same patients' images evolve.
    """

    def __init__(self, config, workdir: str, fold, class_names, spec, steps, sampler, sample_key):
        cfg = config.gan
        self.columns, self.model, self.class_names = cfg.samples_per_combination, cfg.model, class_names
        self.every = cfg.sample_every
        self.steps, self.sampler, self.key = steps, sampler, sample_key
        self.labels = np.repeat(np.array(fold.combinations, np.float32), self.columns, axis=0)
        self.z = latents(config.seed + 1, len(self.labels), spec.latent_dim)
        self.directory = os.path.join(workdir, SAMPLES_DIR)
        self.writer = metric_writers.create_default_writer(self.directory, just_logging=jax.process_index() > 0)

    def __call__(self, step: int, params) -> str:
        steps = self.steps
        images = self.sampler.gather(steps.current_spec, params, self.z, self.labels, self.key, steps.alpha)
        path = os.path.join(self.directory, f"step_{step:07d}.png")
        if jax.process_index() == 0:
            captions = [visualize.caption(row, self.class_names) for row in self.labels]
            visualize.save_labelled_grid(path, images, captions, columns=self.columns,
                                         title=f"{self.model} EMA generator, step {step} "
                                               f"({steps.stage} px, alpha {steps.alpha:.2f})")
            grid = visualize.tile(visualize.to_uint8(images), self.columns)
            self.writer.write_images(step, {"samples": grid[None]})
        return path

    def hook(self, step: int, state) -> None:
        """The loop's hook: a grid of the EMA generator every `gan.sample_every` steps."""
        if step % self.every == 0:
            self(step, state.ema_params)


def fid_evaluation(config, fold, prepared, mesh, spec, steps, sampler, sample_key, start_step: int = 0,
                   history_path: str | None = None):
    """evaluate(state) -> {"fd", "fd_final", "growing", "gan_test"}: the EMA generator scored by the real judge.

    FD: the Fréchet distance of its samples to the real validation images in
    the judge's features. GAN-test (eval/label_fidelity): the judge's mean
    AUC on the same samples against the labels they were drawn with, so the
    history shows whether labels reach the pixels, which FD cannot. The real
    statistics are computed once, at the first evaluation. While a
    progressive model grows, and before step `start_step` (`gan.fid_start_kimg`;
    the study computed no FID before `minimum_fid_kimg`), "fd_final" is
    GROWING_FD so no such checkpoint is selected. Each evaluation is appended
    to `history_path` (JSON, process 0; a resumed run replaces the entries
    from its step on).
    """
    cfg = config.gan
    features_fn, feature_dim = load_feature_extractor(cfg.fid_classifier, mesh)
    logits_fn = load_logits(cfg.fid_classifier, mesh)
    val_labels = builders.labels_of(prepared.dataset_dir, fold.ids["val"])
    fid_labels = val_labels[np.arange(cfg.fid_samples) % len(val_labels)]
    fid_z = latents(config.seed + 2, cfg.fid_samples, spec.latent_dim)
    real_stats = {}

    def evaluate(state) -> dict[str, float]:
        if "val" not in real_stats:
            real_stats["val"] = fidelity.accumulate(
                pipeline.EvalBatches(prepared.dataset_dir, fold.ids["val"], mesh=mesh,
                                     global_batch_size=cfg.global_batch_size),
                features_fn, feature_dim,
            )
        scores = []

        def scored(batches):
            for images, mask in batches:
                images = jnp.clip(images, -1.0, 1.0)
                scores.append(label_fidelity.judge_scores(logits_fn, [(images, mask)]))
                yield {"image": images, "mask": jnp.asarray(mask)}

        synthetic = fidelity.accumulate(
            scored(sampler(steps.current_spec, state.ema_params, fid_z, fid_labels, sample_key, steps.alpha)),
            features_fn, feature_dim,
        )
        fd = fidelity.frechet_distance_of(real_stats["val"], synthetic)
        gan_test = label_fidelity.gan_test(fid_labels, np.concatenate(scores), fold.class_names)["mean_auc"]
        early = steps.growing or steps.updates < start_step
        metrics = {"fd": fd, "fd_final": progressive.GROWING_FD if early else fd, "growing": float(steps.growing),
                   "gan_test": float("nan") if gan_test is None else gan_test}
        if history_path is not None and jax.process_index() == 0:
            _append_history(history_path, {"step": int(steps.updates), "fd": fd, "gan_test": gan_test,
                                           "growing": bool(steps.growing), "resolution": int(steps.stage)})
        return metrics

    return evaluate


def eval_history(workdir: str) -> list[dict]:
    """The evaluations of a train_gan run so far ([] without FD evaluations)."""
    path = os.path.join(workdir, EVAL_HISTORY_FILE)
    return fileio.read_json(path) if os.path.exists(path) else []


def _append_history(path: str, entry: dict) -> None:
    history = fileio.read_json(path) if os.path.exists(path) else []
    fileio.write_json(path, [e for e in history if e["step"] < entry["step"]] + [entry])
