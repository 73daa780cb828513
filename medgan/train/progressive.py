"""Progressive growing on the shared training loop: which stage and fade-in each step trains.

A progressive GAN (`pggan`, the study's first GAN; Karras et al. 2018, sec. 3)
trains at 4 px first and doubles its resolution every `steps_per_phase`
steps, fading each new block in with weight alpha. The schedule is a host
function of the step, so the loop stays model-agnostic: `scheduled_batches`
tags each batch with its (stage, alpha) and `PhasedSteps` hands it to the
jitted step of that stage. Non-progressive models see one constant stage.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import jax
import ml_collections
import numpy as np
from absl import logging

from medgan import sharding
from medgan.models import gans
from medgan.train import gan_step, loop

# The selection metric while a progressive model is still growing: never the best.
GROWING_FD = 1e9


def growth_schedule(spec: gans.GanSpec, cfg: ml_collections.ConfigDict):
    """step -> (stage px, fade-in alpha) of the step's update; constant (R, 1) for non-progressive models."""
    if not spec.progressive:
        return lambda step: (spec.resolution, 1.0)
    from medgan.models import pggan

    return lambda step: pggan.phase_schedule(
        step, start=cfg.start_resolution, resolution=spec.resolution, steps_per_phase=cfg.steps_per_phase
    )


class PhasedSteps:
    """The loop's `step_fn`: each item {"batch", "stage", "alpha"} goes to the jitted step of its stage.

    A stage compiles once (alpha is a traced argument); growing to the next
    stage compiles that stage's step and keeps every weight (the state holds
    the full-size networks from the start). `stage` / `alpha` of the last
    step are kept for evaluation and sample grids; they are host values from
    the schedule, never read back from the device.
    """

    def __init__(self, spec: gans.GanSpec, hp: gan_step.GanHyperparameters, mesh, rng: jax.Array):
        self.spec, self.hp, self.mesh = spec, hp, mesh
        self.rng = sharding.replicate(rng, mesh)
        self.stage, self.alpha = spec.resolution, 1.0
        self._steps: dict[int, object] = {}

    def __call__(self, state, item):
        self.stage, self.alpha = item["stage"], item["alpha"]
        if self.stage not in self._steps:
            logging.info("compiling the train step of stage %d px", self.stage)
            self._steps[self.stage] = gan_step.make_train_step(self.spec.at_stage(self.stage), self.hp, self.mesh)
        return self._steps[self.stage](state, item["batch"], self.rng, np.float32(self.alpha))

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
    (GROWING_FD), the last state is kept and its FD is None.
    """
    if outcome.best_state is not None and outcome.best_value is not None and outcome.best_value < GROWING_FD:
        return outcome.best_state, outcome.best_step, outcome.best_value
    return outcome.state, outcome.steps, None


def scheduled_batches(batches: Iterator, schedule, start_step: int) -> Iterator[dict]:
    """Tags the batch of step s (s = start_step + 1, ...) with its (stage, alpha); schedule takes updates done."""
    for step, batch in enumerate(batches, start=start_step):
        stage, alpha = schedule(step)
        yield {"batch": batch, "stage": stage, "alpha": alpha}


@dataclasses.dataclass
class AfterGrowth:
    """Early stopping on FD that only counts evaluations of the fully grown generator."""

    inner: loop.PlateauController

    def __call__(self, state, metrics, step):
        if metrics.get("growing", 0.0):
            return state, False
        return self.inner(state, metrics, step)

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state):
        self.inner.load_state_dict(state)
