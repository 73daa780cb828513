"""The study's benchmark grids and how one grid point becomes a `benchmark` config.

docs/ARCHITECTURE.md, "The benchmark definitions": a class is a label combination; the
classes sweep varies the number of combinations k with the images per
combination n it fixes; the samples sweep varies n at one k; the resolution
sweep varies the pixel size at one (k, n). The config files in `configs/` are
thin: they pick a study and its axis, and `point_config` fills in everything
else, so every study file builds its points the same way.

Batches and schedules are for accelerators: `PER_DEVICE_BATCH` is the
per-device batch that fits one 16 GB device at the default (study) widths in
float32 (`launch/bench.py gan --memory`, BENCHMARKS.md), and the global batch
is that times `devices`. `cpu_scale` shrinks a point to a CPU-sized run
(`configs/demo.py`, `configs/demo_sweep.py`, the tests).
"""

from __future__ import annotations

import dataclasses

import ml_collections

from medgan import configuration


@dataclasses.dataclass(frozen=True)
class Study:
    """One cohort's three sweeps: label combinations, samples per combination, resolution."""

    source: str  # the real cohort
    phantom: str  # its phantom stand-in
    classes: tuple[tuple[int, int], ...]  # classes sweep: (combinations k, images per combination n)
    samples: tuple[int, ...]  # samples sweep: n at k = samples_classes
    samples_classes: int
    resolution_point: tuple[int, int]  # (k, n) of the resolution sweep
    resolution: int = 256  # px of the classes and samples sweeps


CHEST = Study(
    source="chexpert",
    phantom="phantom_chest",
    classes=((20, 1450), (15, 1600), (10, 2000), (6, 2300), (4, 3900), (2, 6300)),
    samples=(5950, 4500, 3000, 1500, 1000, 500, 400, 200),
    # The largest n, 5950, exists only at k = 2 (6300 images per combination there).
    samples_classes=2,
    resolution_point=(6, 2300),
)
BRAIN = Study(
    source="rsna_ich",
    phantom="phantom_head_ct",
    classes=((10, 2500), (8, 3120), (6, 4170), (4, 6250), (2, 12500)),
    samples=(5400, 4500, 3000, 1500, 1000, 500, 300, 100),
    samples_classes=4,  # 5400 <= 6250, the n of k = 4
    resolution_point=(6, 4170),
)
STUDIES = {"chest": CHEST, "brain": BRAIN}
RESOLUTIONS = (32, 64, 128, 256, 512)

# Per-device batch that fits a 16 GB (14.9 GiB) accelerator at the default widths,
# from the peak of memory_analysis() (`launch/bench.py gan --memory`, BENCHMARKS.md
# "GAN memory"), with >= 2 GiB to spare; measured at 256 and 512 px, scaled by the
# pixel count below. The double backward of the gradient
# penalty / R1 dominates. From 256 px up G and D compute in bfloat16 (parameters
# and optimiser stay float32): in float32 not even pggan holds 8 images at 512 px
# (15.0 GiB), in bfloat16 pggan and stylegan2 do (12.1, 11.8 GiB); cpd holds 4 (7.9 GiB).
PER_DEVICE_BATCH = {
    "pggan": {32: 64, 64: 64, 128: 32, 256: 16, 512: 8},
    "cpd": {32: 64, 64: 32, 128: 16, 256: 8, 512: 4},
    "stylegan2": {32: 64, 64: 32, 128: 16, 256: 16, 512: 8},
}
BFLOAT16_FROM_RESOLUTION = 256
# Training length in thousands of real images shown to D (kimg), as the
# PGGAN/StyleGAN papers count it: pggan spends `PGGAN_KIMG_PER_PHASE` on each
# fade-in and each stabilisation, then trains on at full size until TOTAL_KIMG.
TOTAL_KIMG = {32: 3000, 64: 4000, 128: 5000, 256: 6000, 512: 8000}
PGGAN_KIMG_PER_PHASE = 300
FID_EVERY_KIMG = 200


def point_config(
    *, source: str, resolution: int, classes: int, per_class: int, model: str,
    devices: int = 8, patients: int = 3000, study: str = "",
) -> ml_collections.ConfigDict:
    """The `benchmark` config of one point at study scale (accelerator sizes).

    source: a real cohort or a phantom (then `patients` phantom patients are
    rendered); devices: accelerators the point runs on (the global batch is
    `PER_DEVICE_BATCH * devices`); study: recorded in results.json.
    """
    if model not in PER_DEVICE_BATCH:
        raise configuration.ConfigError(f"config argument model={model!r}: expected one of {sorted(PER_DEVICE_BATCH)}")
    if resolution not in PER_DEVICE_BATCH[model]:
        raise configuration.ConfigError(
            f"config argument resolution={resolution}: the study's resolutions are {RESOLUTIONS}")
    config = configuration.base_config("benchmark")
    config.benchmark.study = study
    config.data.source = source
    config.data.resolution = resolution
    config.data.phantom_patients = patients
    config.fold.num_combinations = classes
    config.fold.per_combination = per_class

    gan = config.gan
    gan.model = model
    gan.dtype = "bfloat16" if resolution >= BFLOAT16_FROM_RESOLUTION else "float32"
    batch = PER_DEVICE_BATCH[model][resolution] * devices
    gan.global_batch_size = batch
    gan.num_steps = _steps(TOTAL_KIMG[resolution], batch)
    gan.steps_per_phase = _steps(PGGAN_KIMG_PER_PHASE, batch)
    gan.fid_every = gan.sample_every = gan.checkpoint_every = _steps(FID_EVERY_KIMG, batch)
    gan.fid_samples = 5000
    gan.fid_patience = 10
    if model == "stylegan2":
        gan.g_learning_rate = gan.d_learning_rate = 2.5e-3  # StyleGAN2-ADA's setting
        gan.r1_gamma = 0.0002 * resolution**2 / batch  # ADA's heuristic gamma
    config.classifier.global_batch_size = 48  # the study's; data parallel over every device
    return config


AXES = ("classes", "samples", "resolution")


def study_config(arg: str | None, study: Study, axis: str, name: str) -> ml_collections.ConfigDict:
    """`get_config(arg)` of a study file: the point `arg` picks on `axis` of `study`.

    Colon arguments: model, classes, per_class, resolution, source (the real
    cohort, or its phantom to run without it), devices, patients. Defaults
    are the axis's fixed point: (k, n) of the resolution point for the classes
    and resolution sweeps, the largest n at `samples_classes` for the samples sweep.
    """
    if axis not in AXES:
        raise ValueError(f"axis {axis!r}: expected one of {AXES}")
    k, n = (study.samples_classes, study.samples[0]) if axis == "samples" else study.resolution_point
    args = configuration.parse_arg(
        arg, model="pggan", classes=k, per_class=n, resolution=study.resolution, source=study.source,
        devices=8, patients=3000,
    )
    return point_config(
        source=args.source, resolution=args.resolution, classes=args.classes, per_class=args.per_class,
        model=args.model, devices=args.devices, patients=args.patients, study=name,
    )


def study_sweep(study: Study, axis: str) -> list[str]:
    """`get_sweep()` of a study file: every value of `axis` for every GAN model."""
    if axis == "classes":
        values = [f"classes={k},per_class={n}" for k, n in study.classes]
    elif axis == "samples":
        values = [f"per_class={n}" for n in study.samples]
    elif axis == "resolution":
        values = [f"resolution={px}" for px in RESOLUTIONS]
    else:
        raise ValueError(f"axis {axis!r}: expected one of {AXES}")
    return [f"model={model},{value}" for model in configuration.GAN_MODELS for value in values]


def _steps(kimg: int, global_batch_size: int) -> int:
    return max(1, round(kimg * 1000 / global_batch_size))


def cpu_scale(config: ml_collections.ConfigDict, size: str) -> ml_collections.ConfigDict:
    """Shrinks a point to run on a CPU: "demo" (minutes per point) or "tiny" (seconds, for tests).

    "tiny" also renders at most 600 phantom patients.

    "demo" is the point `make demo` runs: small DenseNet with the 3x3/1 stem
    (keeps 32 px findings; the ImageNet stem's 4x reduction loses them) and a
    progressive GAN 32 channels wide, 3000 steps growing 8 -> 16 -> 32 px.
    """
    if size not in ("demo", "tiny"):
        raise configuration.ConfigError(f"config argument size={size!r}: expected 'demo' or 'tiny'")
    clf, gan = config.classifier, config.gan
    clf.model, clf.stem, clf.tile_to_rgb = "densenet_tiny", "small", False
    gan.latent_dim, gan.w_dim, gan.mapping_layers = 64, 64, 2
    if size == "demo":
        clf.learning_rate = 1e-3  # the study's 1e-4 is for DenseNet-121 at 224 px; 10x for a short CPU run
        clf.global_batch_size = 48
        clf.num_steps = 300
        clf.eval_every = clf.checkpoint_every = 50
        clf.log_every = 25
        clf.plateau_patience, clf.early_stop_patience = 3, 5
        # 32 channels up to 16 px, 16 at 32 px (the study's widths are 512 -> 256).
        gan.fmap_base, gan.fmap_max = 256, 32
        gan.global_batch_size = 32
        gan.g_learning_rate = gan.d_learning_rate = 2e-3
        gan.ema_decay = 0.99  # 0.999 averages over more steps than this short run has
        gan.num_steps = 3000
        gan.start_resolution, gan.steps_per_phase = 8, 300
        gan.fid_every = gan.sample_every = gan.checkpoint_every = 500
        gan.fid_samples = 480
        gan.fid_patience = 0  # six evaluations are too few to stop on: keep the best-FD checkpoint
        gan.log_every = 100
    else:
        config.data.phantom_patients = min(config.data.phantom_patients, 600)
        clf.global_batch_size = 8
        clf.num_steps = clf.eval_every = clf.checkpoint_every = clf.log_every = 4
        gan.latent_dim, gan.w_dim = 16, 16
        gan.fmap_base, gan.fmap_max = 128, 16
        gan.global_batch_size = 8
        gan.num_steps = 4
        gan.start_resolution, gan.steps_per_phase = 16, 1
        gan.fid_every = gan.sample_every = gan.checkpoint_every = gan.log_every = 2
        gan.fid_samples, gan.samples_per_combination = 16, 2
        gan.fid_patience = 0
        config.synthesize.global_batch_size = 16
        config.benchmark.report_samples = 2
    return config
