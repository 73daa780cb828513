"""The study's GAN training schedules as data, and how a benchmark point takes them.

DuMont Schütte et al. trained each GAN with one preset of its config file,
chosen by resolution:

* pggan: GAN_prog/config.py, "Config presets" ('-preset-v2-*gpus'): growth
  from 8 px, a global minibatch per resolution (`sched.minibatch_dict`),
  `lod_training_kimg` = `lod_transition_kimg` thousand real images per
  stabilisation and per fade-in, `total_kimg` in all, learning rate 0.001
  (`TrainingSchedule.G_lrate_base` / `D_lrate_base` in GAN_prog/train.py).
* cpd: GAN_cpd/config.py, the same section: no growth (`lod_initial_resolution`
  = the resolution), minibatch 256, learning rate 0.005 for G and D.
* both: FID of 10,000 generated images every `fid_snapshot_ticks` = 4 ticks,
  a tick lasting `tick_kimg_dict[resolution]` thousand images (GAN_prog/train.py:
  100 at 32 px, 80 at 64, 60 at 128, 40 at 256, 20 at 512), only once fully
  grown and from `minimum_fid_kimg` on; training stops after `fid_patience` = 2
  evaluations without a better FID (GAN_prog/train.py `train_progressive_gan`).

The number of GPUs of a preset only set `minibatch_base`, which
`minibatch_dict` overrides at every resolution trained, so the global batches
do not depend on it; `apply_study_gan` splits them over the point's devices.

The study's configs stop at 128 px. At 256 and 512 px the presets here are
extrapolated (`StudyGanPreset.source` says so), by the rules its three presets
follow: pggan's minibatch halves per doubling (8 at 256 px, 4 at 512), a phase
lasts 1,000 kimg as at 64 and 128 px, cpd keeps 256; `total_kimg` grows by
2,000 per doubling (12,000 / 14,000 / 16,000 -> 18,000 / 20,000), and FID
starts where pggan's stabilisation at the full resolution ends
(`minimum_fid_kimg` = 7,000 / 7,000 / 9,000 at 32 / 64 / 128 px is exactly
that at all three; 11,000 / 13,000 at 256 / 512 px), for cpd as for pggan.
The study's fp32 `max_minibatch_per_gpu = {256: 16}` would cap cpd at 256 px
to 16 images per GPU; with 256 on 16 or more devices it never binds, and on
fewer it is the memory question below.

Memory: the global batch is the study's. It is split evenly over the devices
(rounded down to a multiple of their number, as the study's `TrainingSchedule`
did with its GPUs, and at least one image per device). Whether that fits is
the caller's `per_device_batch` (grid.PER_DEVICE_BATCH, measured on 16 GB
devices at the final resolution): `apply_study_gan` reports the devices the
study's batch needs; with `cap=True` it lowers the batch of every stage that
does not fit to what does (the schedule stays in images, so a phase still
lasts its kimg, in more steps of fewer images), else it keeps the study's
batch and the run needs that many devices (or devices with more memory).
medgan does not accumulate gradients over micro-batches, so a capped run
trains with a smaller batch than the study did.

StyleGAN2 is medgan's extension, not the study's: `apply_study_gan` leaves
its settings alone.
"""

from __future__ import annotations

import dataclasses
import math

import ml_collections
from absl import logging

from medgan.train import progressive

__all__ = ["StudyGanPreset", "StudyGan", "PRESETS", "preset", "apply_study_gan", "use_step_schedule"]

FID_SNAPSHOT_TICKS = 4  # GAN_prog/config.py and GAN_cpd/config.py presets
TICK_KIMG = {4: 160, 8: 140, 16: 120, 32: 100, 64: 80, 128: 60, 256: 40, 512: 20, 1024: 10}  # train.py
FID_PATIENCE = 2
FID_IMAGES = 10_000  # fid_metric.compute_fid(num_images=10000)


@dataclasses.dataclass(frozen=True)
class StudyGanPreset:
    """One preset: how the study trained `model` at `resolution` px.

    batch_by_resolution: ((px, global batch), ...) for every stage trained;
    kimg_per_phase: thousand real images per fade-in and per stabilisation
    (0 for cpd, which does not grow); total_kimg: the training length;
    fid_start_kimg: `minimum_fid_kimg`; fid_every_kimg: FID interval at the
    final resolution; source: the preset of the study's code, or the rule
    it was extrapolated by.
    """

    model: str
    resolution: int
    start_resolution: int
    batch_by_resolution: tuple[tuple[int, int], ...]
    kimg_per_phase: float
    total_kimg: float
    fid_start_kimg: float
    learning_rate: float
    source: str
    fid_patience: int = FID_PATIENCE

    @property
    def fid_every_kimg(self) -> float:
        return float(FID_SNAPSHOT_TICKS * TICK_KIMG[self.resolution])

    @property
    def final_batch(self) -> int:
        return dict(self.batch_by_resolution)[self.resolution]

    @property
    def grows(self) -> bool:
        """Progressive growing (pggan): phases of `kimg_per_phase` from `start_resolution`."""
        return self.kimg_per_phase > 0


def _pggan(resolution: int, total: float, fid_start: float, phase: float, source: str) -> StudyGanPreset:
    stages = [2**i for i in range(3, int(math.log2(resolution)) + 1)]  # 8 ... resolution
    return StudyGanPreset(
        model="pggan", resolution=resolution, start_resolution=8,
        batch_by_resolution=tuple((px, 256 * 8 // px) for px in stages),  # 8: 256, 16: 128, ... (minibatch_dict)
        kimg_per_phase=phase, total_kimg=total, fid_start_kimg=fid_start, learning_rate=0.001, source=source,
    )


def _cpd(resolution: int, total: float, fid_start: float, source: str) -> StudyGanPreset:
    return StudyGanPreset(
        model="cpd", resolution=resolution, start_resolution=resolution, batch_by_resolution=((resolution, 256),),
        kimg_per_phase=0.0, total_kimg=total, fid_start_kimg=fid_start, learning_rate=0.005, source=source,
    )


_EXTRAPOLATED = "extrapolated from the 32/64/128 px presets (module docstring)"
PRESETS: dict[tuple[str, int], StudyGanPreset] = {
    ("pggan", 32): _pggan(32, 12_000, 7_000, 1_400, "GAN_prog/config.py 32x32 '-preset-v2-1gpu'"),
    ("pggan", 64): _pggan(64, 14_000, 7_000, 1_000, "GAN_prog/config.py 64x64 '-preset-v2-2gpus'"),
    ("pggan", 128): _pggan(128, 16_000, 9_000, 1_000, "GAN_prog/config.py 128x128 '-preset-v2-2gpus'"),
    ("pggan", 256): _pggan(256, 18_000, 11_000, 1_000, _EXTRAPOLATED),
    ("pggan", 512): _pggan(512, 20_000, 13_000, 1_000, _EXTRAPOLATED),
    ("cpd", 32): _cpd(32, 12_000, 7_000, "GAN_cpd/config.py 32x32 '-preset-v2-1gpu'"),
    ("cpd", 64): _cpd(64, 14_000, 7_000, "GAN_cpd/config.py 64x64 '-preset-v2-4gpus'"),
    ("cpd", 128): _cpd(128, 16_000, 9_000, "GAN_cpd/config.py 128x128 '-preset-v2-8gpus'"),
    ("cpd", 256): _cpd(256, 18_000, 11_000, _EXTRAPOLATED),
    ("cpd", 512): _cpd(512, 20_000, 13_000, _EXTRAPOLATED),
}


def preset(model: str, resolution: int) -> StudyGanPreset | None:
    """The study's preset of `model` at `resolution` px; None for models the study did not train (stylegan2)."""
    if model not in {m for m, _ in PRESETS}:
        return None
    if (model, resolution) not in PRESETS:
        known = sorted(r for m, r in PRESETS if m == model)
        raise ValueError(f"no study preset of {model} at {resolution} px; the presets are at {known} px")
    return PRESETS[(model, resolution)]


@dataclasses.dataclass(frozen=True)
class StudyGan:
    """What `apply_study_gan` set: the preset, the global batch per stage, and whether it fits.

    min_devices: devices of `per_device_batch` images at the final resolution
    that the study's final batch needs (None without a limit); capped: the
    batches were lowered to fit (`cap=True`).
    """

    preset: StudyGanPreset
    batch_by_resolution: tuple[tuple[int, int], ...]
    num_steps: int
    devices: int
    min_devices: int | None
    capped: bool

    @property
    def fits(self) -> bool:
        """Whether every stage's batch fits the devices (unknown without a limit: assumed to)."""
        return self.capped or self.min_devices is None or self.min_devices <= self.devices


def apply_study_gan(
    gan: ml_collections.ConfigDict, model: str, resolution: int, devices: int,
    per_device_batch: int | None = None, cap: bool = False,
) -> StudyGan | None:
    """Sets the `gan` block of a benchmark point to the study's preset of `model` at `resolution` px.

    Sets model-independent schedule keys only (batches, phases, length, FD
    cadence and stopping, learning rates), never widths, dtype or losses.
    `devices`: the accelerators the point runs on; every stage's global batch
    becomes a multiple of it. `per_device_batch`: the most images one device
    holds at the final resolution (grid.PER_DEVICE_BATCH); a stage at s px is
    taken to hold (resolution / s)^2 times more. With `cap`, stages over that
    limit train at the limit x devices; without, the study's batch is kept
    and a warning says how many devices it needs. Returns None (and changes
    nothing) for stylegan2, which keeps medgan's settings.
    """
    chosen = preset(model, resolution)
    if chosen is None:
        return None
    if devices < 1:
        raise ValueError(f"devices must be >= 1, got {devices}")
    batches, capped = [], False
    for px, batch in chosen.batch_by_resolution:
        if cap and per_device_batch is not None:
            limit = per_device_batch * (resolution // px) ** 2 * devices
            capped |= batch > limit
            batch = min(batch, limit)
        batches.append((px, max(devices, batch - batch % devices)))
    final = dict(batches)[resolution]
    min_devices = None if per_device_batch is None else math.ceil(chosen.final_batch / per_device_batch)
    if min_devices is not None and min_devices > devices and not cap:
        logging.warning("%s at %d px: the study's global batch %d needs %d devices of %d images, not %d",
                        model, resolution, chosen.final_batch, min_devices, per_device_batch, devices)

    gan.model = model
    gan.global_batch_size = final
    gan.batch_by_resolution = tuple(batches)
    gan.start_resolution = chosen.start_resolution
    gan.kimg_per_phase = float(chosen.kimg_per_phase)
    gan.total_kimg = float(chosen.total_kimg)
    gan.g_learning_rate = gan.d_learning_rate = chosen.learning_rate
    gan.fid_start_kimg = float(chosen.fid_start_kimg)
    gan.fid_patience = chosen.fid_patience
    gan.fid_samples = FID_IMAGES
    gan.fid_every = gan.sample_every = gan.checkpoint_every = max(1, round(chosen.fid_every_kimg * 1000 / final))
    schedule = progressive.GrowthSchedule.of(gan, resolution=resolution, progressive=chosen.grows)
    gan.num_steps = progressive.num_steps(schedule, gan)
    return StudyGan(chosen, tuple(batches), gan.num_steps, devices, min_devices, capped)


def use_step_schedule(gan: ml_collections.ConfigDict) -> None:
    """Back to a schedule in steps at one batch (`num_steps`, `steps_per_phase`, `global_batch_size`).

    For a point shrunk to a CPU run after `apply_study_gan` (grid.cpu_scale):
    the kimg keys would otherwise override the shrunk step counts.
    """
    gan.batch_by_resolution = ()
    gan.kimg_per_phase = gan.total_kimg = gan.fid_start_kimg = 0.0
