"""Job "train_contextual": the contextual lesion GAN for one lesion type, on the training patches.

    python -m medgan.main --config=configs/mammo_demo.py:stage=gan,lesion=mass --workdir=work/mammo/gan_mass

Reads the patches of `mammo.patches_dir` (job mammo_patches), picks each
role of the lesion type (`mammo_patches.contextual_roles`: normal tissue in
and malignant lesions to imitate, or the reverse for removal), and trains
`models/contextual` with `train/contextual_step` on `loop.train_loop`
(orbax checkpoints, resume, SIGTERM, clu metrics): half the patch size for
`grow_steps`, then the full size fading in over `fade_steps` (the study:
128 -> 256 px, 3,000 iterations).

Work directory:
  checkpoints/          orbax checkpoints
  samples/step_*.png    fixed validation patches: input, lesion channel, combined, post-processed
  generator/            the final generator's params (what synthesis reads)
  results.json          written last
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
import ml_collections
import numpy as np

from medgan import console, fileio, sharding, visualize
from medgan.data import mammo_cohort, mammo_patches
from medgan.jobs import common
from medgan.models.contextual import COMBINED, INPUT, LESION, ContextualSpec
from medgan.study import mammo
from medgan.train import checkpoints, contextual_step, loop
from medgan.workdir import GENERATOR_DIR, PREEMPTED, RESULT_FILE, SAMPLES_DIR

SAMPLE_ROWS = 8


def spec_of(config: ml_collections.ConfigDict) -> ContextualSpec:
    c = config.contextual
    return ContextualSpec(resolution=config.mammo.patch, base_filters=c.base_filters, max_filters=c.max_filters,
                          centre_filters=c.centre_filters, embedding=c.embedding,
                          attention_resolution=c.attention_resolution, border=c.border,
                          d_filter_factor=c.d_filter_factor, spectral_norm=c.spectral_norm)


def hyperparameters_of(config: ml_collections.ConfigDict) -> contextual_step.ContextualHyperparameters:
    c = config.contextual
    return contextual_step.ContextualHyperparameters(
        g_learning_rate=c.g_learning_rate, d_learning_rate=c.d_learning_rate, beta1=c.beta1, beta2=c.beta2,
        dragan_lambda=c.dragan_lambda, aux_weight=c.aux_weight,
        g_steps=c.g_steps or (2 if c.lesion == "mass" else 1),
        target_class=0)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    previous, mesh = common.begin(config, workdir, lambda r: f"{r['lesion']} GAN already trained ({r['steps']} steps)")
    if previous is not None:
        return previous
    cfg = config.contextual
    patches = mammo_cohort.load_patches(mammo_cohort.patches_dir(config.mammo, workdir))
    train, val = patches["train"], patches["val"]
    roles = mammo_patches.contextual_roles(train, cfg.lesion)
    spec, hp = spec_of(config), hyperparameters_of(config)
    init_key, step_key, sample_key = jax.random.split(jax.random.key(config.seed), 3)
    state = contextual_step.create_state(spec, hp, init_key, mesh)
    steps = contextual_step.PhasedContextualSteps(contextual_step.ContextualStep(spec, hp, mesh), step_key, mesh)
    images = mammo_cohort.to_model(train.images)
    sampler = contextual_step.make_sampler(spec, mesh, cfg.global_batch_size)
    grids = SampleGrid(config, workdir, val, steps, sampler, sample_key)
    start = time.perf_counter()
    outcome = loop.train_loop(
        workdir=workdir, state=state, step_fn=steps,
        make_batches=lambda start_step: contextual_step.batches(
            images, roles, cfg.global_batch_size, mesh, config.seed, spec, cfg.grow_steps, cfg.fade_steps,
            start_step),
        num_steps=cfg.num_steps, checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every,
        hooks=(grids.hook,), progress_desc=f"train {cfg.lesion} GAN", images_per_step=cfg.global_batch_size,
        max_skipped_in_a_row=cfg.max_skipped_in_a_row)
    wall = time.perf_counter() - start
    if outcome.reason == PREEMPTED:
        return common.preempted(outcome.steps)
    steps.stage, steps.alpha = contextual_step.schedule(outcome.steps, spec, cfg.grow_steps, cfg.fade_steps)
    final = grids(outcome.steps, outcome.state.g_params)
    checkpoints.save_params(os.path.join(workdir, GENERATOR_DIR), {"params": outcome.state.g_params},
                            overwrite=True)
    sha = checkpoints.params_sha256(outcome.state.g_params)
    sharding.check_processes_agree(sha, "generator weights")
    result = {
        "lesion": cfg.lesion,
        "spec": dataclasses.asdict(spec),
        "hyperparameters": dataclasses.asdict(hp),
        "config": json.loads(json.dumps(cfg.to_dict())),
        "patches_dir": os.path.abspath(mammo_cohort.patches_dir(config.mammo, workdir)),
        "roles": {role: len(rows) for role, rows in roles.items()},
        "steps": outcome.steps,
        "skipped_steps": outcome.skipped_steps,
        "generator": GENERATOR_DIR,
        "generator_sha256": sha,
        "samples": os.path.relpath(final, workdir),
        "kept_after_post_processing": grids.kept_share,
        "train_images_per_second": outcome.images_per_second(cfg.global_batch_size),
        "wall_seconds": wall,
        "seed": config.seed,
    }
    if jax.process_index() == 0:
        fileio.write_json(os.path.join(workdir, RESULT_FILE), result)
        if not console.in_stage():
            console.summary({"steps": result["steps"], "lesions kept after post-processing":
                             f"{grids.kept_share:.0%} of the sample patches",
                             "samples": os.path.join(workdir, result["samples"]),
                             "generator": os.path.join(workdir, GENERATOR_DIR)},
                            title=f"contextual GAN ({cfg.lesion}):")
    return result


class SampleGrid:
    """`(step, g_params) -> PNG path`: fixed validation patches through G, four rows each.

    Rows: the input patch, the lesion channel (grey = 0), the combined image
    and the post-processed one (what the synthetic dataset holds).
    """

    def __init__(self, config, workdir: str, val: mammo_patches.PatchSet, steps, sampler, key):
        cfg = config.contextual
        rows = mammo_patches.generator_inputs(val, cfg.lesion)
        rows = rows if len(rows) else np.arange(len(val))  # a tiny cohort's validation split may lack them
        chosen = np.random.default_rng(config.seed).choice(rows, cfg.global_batch_size, replace=len(rows) <
                                                            cfg.global_batch_size)
        self.base = mammo_cohort.to_model(val.images[chosen])
        self.lesion, self.patch, self.every = cfg.lesion, config.mammo.patch, cfg.sample_every
        self.steps, self.sampler, self.key = steps, sampler, key
        self.directory = os.path.join(workdir, SAMPLES_DIR)
        self.kept_share = float("nan")

    def __call__(self, step: int, g_params) -> str:
        out = self.sampler(g_params, self.base, self.key, self.steps.alpha, self.steps.stage)
        processed = mammo.post_process(out, self.lesion, self.patch)
        self.kept_share = float(processed.kept.mean())
        path = os.path.join(self.directory, f"step_{step:07d}.png")
        if jax.process_index() == 0:
            n = min(SAMPLE_ROWS, len(out))
            shown = np.concatenate([out[:n, ..., INPUT], np.clip(out[:n, ..., LESION], -1, 1),
                                    out[:n, ..., COMBINED], processed.combined[:n]])[..., None]
            captions = [f"{name} {i + 1}" for name in ("input", "lesion", "combined", "post-processed")
                        for i in range(n)]
            visualize.save_labelled_grid(path, np.clip(shown, -1, 1), captions, columns=n,
                                         title=f"{self.lesion} GAN, step {step} ({self.steps.stage} px, "
                                               f"alpha {self.steps.alpha:.2f}); kept {self.kept_share:.0%}")
        return path

    def hook(self, step: int, state) -> None:
        if step % self.every == 0:
            self(step, state.g_params)

