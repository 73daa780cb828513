"""Progressive growing on the shared training loop: which stage, fade-in and batch each step trains.

A progressive GAN (`pggan`, the study's first GAN; Karras et al. 2018, sec. 3)
trains at `start_resolution` first and doubles its resolution phase by phase,
fading each new block in with weight alpha and then stabilising it. The
schedule is a host function of the step, so the loop stays model-agnostic:
`scheduled_batches` tags each batch with its (stage, alpha) and `PhasedSteps`
hands it to the jitted step of that stage. Non-progressive models see one
constant stage.

Each stage may train at its own global batch (`gan.batch_by_resolution`, the
study's `sched.minibatch_dict` in GAN_prog/config.py: 256 images at 8 px, 128
at 16, 64 at 32) and a phase may last a number of images rather than of steps
(`gan.kimg_per_phase`, the study's `lod_training_kimg` / `lod_transition_kimg`),
so `GrowthSchedule` converts between steps and images shown: the loop counts
steps, the study counts thousands of real images (kimg).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Iterator

import jax
import ml_collections
import numpy as np
from absl import logging

from medgan import sharding
from medgan.models import gans
from medgan.train import gan_step, loop

# The selection metric while a progressive model is still growing (or before
# `gan.fid_start_kimg`): never the best.
GROWING_FD = 1e9


@dataclasses.dataclass(frozen=True)
class Phase:
    """One phase of growth: `steps` updates at `stage` px and global batch `batch`, fading in or stable."""

    stage: int
    fade: bool
    steps: int
    batch: int


@dataclasses.dataclass(frozen=True)
class GrowthSchedule:
    """Steps -> (stage, alpha, batch), and steps <-> images shown, of one training run.

    `phases` in order ([PGGAN] sec. 2, GAN_prog/train.py `TrainingSchedule`):
    the first stage stable, then for each further stage a fade-in (alpha
    0 -> 1 linearly in steps, hence in images: the batch is constant within a
    phase) and a stabilisation. The last phase (the full resolution, stable)
    never ends: its `steps` are ignored. A fade-in trains at the batch of the
    stage it fades in, as in the study (its `TrainingSchedule.resolution` is
    that of floor(lod)).
    """

    phases: tuple[Phase, ...]

    @classmethod
    def from_config(cls, spec: gans.GanSpec, cfg: ml_collections.ConfigDict) -> GrowthSchedule:
        """The schedule of `spec` trained with the `config.gan` block `cfg` (see `of`)."""
        return cls.of(cfg, resolution=spec.resolution, progressive=spec.progressive)

    @classmethod
    def of(cls, cfg: ml_collections.ConfigDict, *, resolution: int, progressive: bool) -> GrowthSchedule:
        """From a `config.gan` block: `start_resolution`, `steps_per_phase` or `kimg_per_phase`, the batches.

        A stage's batch is `batch_by_resolution[stage]`, else `global_batch_size`.
        With `kimg_per_phase` > 0 a phase at a stage of batch b lasts
        max(1, round(kimg_per_phase * 1000 / b)) steps; else `steps_per_phase`.
        A non-progressive model has one phase at `resolution`.
        """
        by_px = {int(px): int(b) for px, b in cfg.get("batch_by_resolution", ())}
        kimg = float(cfg.get("kimg_per_phase", 0.0) or 0.0)

        def batch(stage: int) -> int:
            return by_px.get(stage, cfg.global_batch_size)

        def steps(stage: int) -> int:
            return max(1, round(kimg * 1000 / batch(stage))) if kimg > 0 else int(cfg.steps_per_phase)

        if not progressive:
            return cls((Phase(resolution, False, 1, batch(resolution)),))
        from medgan.models import pggan

        stages = pggan.phase_stages(cfg.start_resolution, resolution)
        phases = [Phase(stages[0], False, steps(stages[0]), batch(stages[0]))]
        for stage in stages[1:]:
            phases += [Phase(stage, True, steps(stage), batch(stage)), Phase(stage, False, steps(stage), batch(stage))]
        return cls(tuple(phases))

    @property
    def starts(self) -> tuple[int, ...]:
        """The first step (updates done before it) of every phase."""
        return tuple(int(s) for s in np.cumsum([0] + [p.steps for p in self.phases[:-1]]))

    def phase_at(self, step: int) -> tuple[Phase, int]:
        """(phase, steps into it) of the update that follows `step` updates."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        for phase, start in zip(reversed(self.phases), reversed(self.starts)):
            if step >= start:
                return phase, step - start
        raise AssertionError("unreachable: the first phase starts at step 0")

    def __call__(self, step: int) -> tuple[int, float]:
        """(stage px, fade-in alpha) of the update that follows `step` updates."""
        phase, t = self.phase_at(step)
        return phase.stage, (t / phase.steps if phase.fade else 1.0)

    def batch_at(self, step: int) -> int:
        """Global batch of the update that follows `step` updates."""
        return self.phase_at(step)[0].batch

    def images_at(self, step: int) -> int:
        """Real images shown to D by the first `step` updates (the study's cur_nimg)."""
        images = 0
        for phase, start in zip(self.phases, self.starts):
            if step <= start:
                break
            last = phase is self.phases[-1]
            images += phase.batch * (step - start if last else min(step - start, phase.steps))
        return images

    def step_at_images(self, images: float) -> int:
        """The fewest updates that show at least `images` real images."""
        for phase, start in zip(self.phases, self.starts):
            shown = self.images_at(start)
            last = phase is self.phases[-1]
            if last or images <= shown + phase.batch * phase.steps:
                return start + max(0, math.ceil((images - shown) / phase.batch))
        raise AssertionError("unreachable: the last phase is open-ended")

    def batch_segments(self) -> list[tuple[int, int]]:
        """(first step, global batch) of each run of steps at one batch, in order."""
        segments: list[tuple[int, int]] = []
        for phase, start in zip(self.phases, self.starts):
            if not segments or segments[-1][1] != phase.batch:
                segments.append((start, phase.batch))
        return segments


def growth_schedule(spec: gans.GanSpec, cfg: ml_collections.ConfigDict) -> GrowthSchedule:
    """step -> (stage px, fade-in alpha) of the step's update; constant (R, 1) for non-progressive models."""
    return GrowthSchedule.from_config(spec, cfg)


def num_steps(schedule: GrowthSchedule, cfg: ml_collections.ConfigDict) -> int:
    """Steps of the run: enough to show `gan.total_kimg` thousand images when it is set, else `gan.num_steps`."""
    total = float(cfg.get("total_kimg", 0.0) or 0.0)
    return max(1, schedule.step_at_images(total * 1000)) if total > 0 else int(cfg.num_steps)


class PhasedSteps:
    """The loop's `step_fn`: each item {"batch", "stage", "alpha"[, "step"]} goes to the jitted step of its stage.

    "step" is the number of updates before the item's (`state.step`); without
    it the updates are counted from 0 here. It picks the lazy regularisers.

    A stage compiles once (alpha is a traced argument; a stage trains at one
    global batch, `GrowthSchedule`); growing to the next stage compiles that
    stage's step and keeps every weight (the state holds the full-size
    networks from the start). The hyperparameters of a stage's step see the
    batch it trains on (ADA's rate of change is per image). `stage` / `alpha` of the last step, and `updates`
    (steps done, from the item's "step"), are kept for evaluation and sample
    grids; they are host values from the schedule, never read back from the
    device.
    """

    def __init__(self, spec: gans.GanSpec, hp: gan_step.GanHyperparameters, mesh, rng: jax.Array):
        self.spec, self.hp, self.mesh = spec, hp, mesh
        self.rng = sharding.replicate(rng, mesh)
        self.stage, self.alpha, self.updates = spec.resolution, 1.0, 0
        self._steps: dict[int, object] = {}

    def __call__(self, state, item):
        self.stage, self.alpha = item["stage"], item["alpha"]
        step = item.get("step", self.updates)
        self.updates = step + 1
        if self.stage not in self._steps:
            batch = int(item["batch"]["image"].shape[0])
            logging.info("compiling the train step of stage %d px at global batch %d", self.stage, batch)
            hp = dataclasses.replace(self.hp, global_batch_size=batch)
            self._steps[self.stage] = gan_step.make_train_step(self.spec.at_stage(self.stage), hp, self.mesh)
        return self._steps[self.stage](state, item["batch"], self.rng, np.float32(self.alpha), step)

    @property
    def current_spec(self) -> gans.GanSpec:
        return self.spec.at_stage(self.stage)

    @property
    def growing(self) -> bool:
        """Whether the last step trained below the final resolution or during a fade-in."""
        return self.stage != self.spec.resolution or self.alpha < 1.0


def select(outcome: loop.LoopResult) -> tuple[object, int, float | None]:
    """(state, step, FD) of the generator to keep: the lowest-FD grown checkpoint, else the last state.

    Without FD evaluations, or when every evaluation was of a growing model
    or came before `gan.fid_start_kimg` (GROWING_FD), the last state is kept
    and its FD is None.
    """
    if outcome.best_state is not None and outcome.best_value is not None and outcome.best_value < GROWING_FD:
        return outcome.best_state, outcome.best_step, outcome.best_value
    return outcome.state, outcome.steps, None


def scheduled_batches(batches: Iterator, schedule, start_step: int) -> Iterator[dict]:
    """Tags the batch of step s (s = start_step + 1, ...) with its (stage, alpha) and the updates done before it."""
    for step, batch in enumerate(batches, start=start_step):
        stage, alpha = schedule(step)
        yield {"batch": batch, "stage": stage, "alpha": alpha, "step": step}


def rebatched(make_stream: Callable[[int, int, int], Iterator], schedule: GrowthSchedule,
              start_step: int) -> Iterator:
    """The batches of steps start_step + 1, ...: each run of steps at one global batch from its own stream.

    `make_stream(batch, seed_offset, start)` is an infinite stream of global
    batches of `batch` images beginning at its `start`-th batch (e.g.
    `pipeline.train_batches`). The i-th run of one batch size (i = 0, 1, ...)
    reads the stream of seed offset i from its beginning, so a run resumed
    at any step sees the batches an uninterrupted one did; with a single
    batch size this is `make_stream(batch, 0, start_step)` itself.
    """
    segments = schedule.batch_segments()
    for index, (first, batch) in enumerate(segments):
        end = segments[index + 1][0] if index + 1 < len(segments) else None
        if end is not None and start_step >= end:
            continue
        stream = make_stream(batch, index, max(0, start_step - first))
        yield from itertools.islice(stream, None if end is None else end - max(start_step, first))


@dataclasses.dataclass
class AfterGrowth:
    """Early stopping on FD that only counts evaluations of the fully grown generator from step `start_step` on.

    `start_step` is the study's `minimum_fid_kimg` in steps (GAN_prog/train.py
    computes FID only from there, and only at lod 0).
    """

    inner: loop.PlateauController
    start_step: int = 0

    def __call__(self, state, metrics, step):
        if metrics.get("growing", 0.0) or step < self.start_step:
            return state, False
        return self.inner(state, metrics, step)

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state):
        self.inner.load_state_dict(state)
