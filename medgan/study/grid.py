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
import numpy as np

from medgan import configuration
from medgan.study import presets
from medgan.study.study_gans import DEFAULT_MODELS


@dataclasses.dataclass(frozen=True)
class Study:
    """One cohort's three sweeps, with the fold sizes of the study's dataset tool.

    n is always the number of *training* images per label combination;
    validation and test images are fixed per combination (`*_holdout`, the same
    at every point of a sweep), or fixed totals stratified by combination for
    the unbalanced resolution sweep (medgan/data/folds.py).
    """

    source: str  # the real cohort
    phantom: str  # its phantom stand-in
    classes: tuple[tuple[int, int], ...]  # classes sweep: (combinations k, training images per combination n)
    classes_holdout: tuple[int, int]  # (val, test) images per combination
    samples: tuple[int, ...]  # samples sweep: n at k = samples_classes
    samples_classes: int
    samples_holdout: tuple[int, int]
    resolution_min_images: int  # the resolution sweep keeps every combination with more images
    resolution_holdout: tuple[int, int]  # (val, test) images in all, stratified by combination
    resolution: int = 32  # px of the classes and samples sweeps (the study's README: "at 32x32")


# build_dataset/dataset_tool.py of the study: create_class_from_xray, create_samples_from_xray
# (the combinations with >= 7,400 images: 2), create_from_xray (> 256 images, 4,000/4,000).
CHEST = Study(
    source="chexpert",
    phantom="phantom_chest",
    classes=((20, 1450), (15, 1600), (10, 2000), (6, 2300), (4, 3900), (2, 6300)),
    classes_holdout=(190, 170),
    samples=(5950, 4500, 3000, 1500, 1000, 500, 400, 200),
    samples_classes=2,
    samples_holdout=(750, 750),
    resolution_min_images=256,
    resolution_holdout=(4000, 4000),
)
# create_class_from_brain, create_samples_from_brain (6 combinations), create_from_brain (> 110 images).
BRAIN = Study(
    source="rsna_ich",
    phantom="phantom_head_ct",
    classes=((10, 2500), (8, 3120), (6, 4170), (4, 6250), (2, 12500)),
    classes_holdout=(300, 200),
    samples=(5400, 4500, 3000, 1500, 1000, 500, 300, 100),
    samples_classes=6,
    samples_holdout=(500, 500),
    resolution_min_images=110,
    resolution_holdout=(4000, 4000),
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


def ada_r1_gamma(resolution: int, global_batch_size: int) -> float:
    """StyleGAN2-ADA's heuristic R1 weight for a resolution and batch (its train.py, "auto" config)."""
    return 0.0002 * resolution**2 / global_batch_size


def point_config(
    *, source: str, resolution: int, classes: int, per_class: int, model: str,
    holdout: tuple[int, int], devices: int = 8, patients: int = 3000, study: str = "", min_images: int = 0,
) -> ml_collections.ConfigDict:
    """The `benchmark` config of one point at study scale (accelerator sizes).

    source: a real cohort or a phantom (then `patients` phantom patients are
    rendered); classes, per_class: k and n (training images per combination;
    per_class 0 = the unbalanced fold of the resolution sweep, classes 0 =
    every combination with more than `min_images`); holdout: (val, test) per
    combination, or in all for per_class 0; devices: accelerators the point
    runs on (the global batch is `PER_DEVICE_BATCH * devices`); study:
    recorded in results.json.
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
    config.fold.min_images = min_images
    if per_class:
        config.fold.val_per_combination, config.fold.test_per_combination = holdout
        config.fold.val_images = config.fold.test_images = 0
    else:
        config.fold.val_images, config.fold.test_images = holdout
        config.fold.val_per_combination = config.fold.test_per_combination = 0

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
        gan.r1_gamma = ada_r1_gamma(resolution, batch)
    # The study's own schedules for its two GANs (GAN_prog/config.py, GAN_cpd/config.py);
    # StyleGAN2, medgan's extension, keeps the settings above.
    presets.apply_study_gan(gan, model, resolution, devices, per_device_batch=PER_DEVICE_BATCH[model][resolution])
    study_judge(config.classifier)
    return config


# The study's judge (classifier_real/config.ini and train.py of the study): DenseNet-121
# from ImageNet weights at 224 px, batch 48, Adam 1e-4; an "epoch" is
# min(5000, training images) / 48 steps (every study point trains on more than
# 5000), validated after each, LR x0.1 after 2 epochs without a better
# validation AUC, stopped after 3, at most 100 epochs.
JUDGE_BATCH = 48
JUDGE_STEPS_PER_EPOCH = 5000 // JUDGE_BATCH
JUDGE_MAX_EPOCHS = 100


def study_judge(classifier: ml_collections.ConfigDict) -> None:
    """Sets a `classifier` block to the study's judge (the weights file is the user's: `classifier.pretrained`)."""
    classifier.model = "densenet121"
    classifier.input_size = 224
    classifier.normalization = "imagenet"
    classifier.tile_to_rgb = True
    classifier.global_batch_size = JUDGE_BATCH  # data parallel over every device
    classifier.learning_rate = 1e-4
    classifier.eval_every = classifier.checkpoint_every = JUDGE_STEPS_PER_EPOCH
    classifier.num_steps = JUDGE_MAX_EPOCHS * JUDGE_STEPS_PER_EPOCH
    classifier.plateau_patience, classifier.plateau_factor = 2, 0.1
    classifier.early_stop_patience = 3


AXES = ("classes", "samples", "resolution")


def study_config(arg: str | None, study: Study, axis: str, name: str) -> ml_collections.ConfigDict:
    """`get_config(arg)` of a study file: the point `arg` picks on `axis` of `study`.

    Colon arguments: model, classes, per_class, resolution, source (the real
    cohort, or its phantom to run without it), devices, patients. Defaults are
    the axis's first point: the largest k of the classes sweep, the largest n
    of the samples sweep, and the unbalanced fold (classes=0, per_class=0) of
    the resolution sweep at 256 px.
    """
    if axis not in AXES:
        raise ValueError(f"axis {axis!r}: expected one of {AXES}")
    if axis == "classes":
        (k, n), holdout, px, min_images = study.classes[0], study.classes_holdout, study.resolution, 0
    elif axis == "samples":
        k, n, holdout, px, min_images = (study.samples_classes, study.samples[0], study.samples_holdout,
                                         study.resolution, 0)
    else:
        k, n, holdout, px, min_images = 0, 0, study.resolution_holdout, 256, study.resolution_min_images
    args = configuration.parse_arg(
        arg, model="pggan", classes=k, per_class=n, resolution=px, source=study.source, devices=8, patients=3000,
    )
    return point_config(
        source=args.source, resolution=args.resolution, classes=args.classes, per_class=args.per_class,
        model=args.model, holdout=holdout, devices=args.devices, patients=args.patients, study=name,
        min_images=min_images,
    )


def parse_models(models: str) -> tuple[str, ...]:
    """"pggan+cpd+stylegan2" -> the GAN models of a sweep, each checked against GAN_MODELS."""
    names = tuple(m for m in models.split("+") if m)
    unknown = [m for m in names if m not in configuration.GAN_MODELS]
    if not names or unknown:
        raise configuration.ConfigError(
            f"sweep argument models={models!r}: expected '+'-separated names from {configuration.GAN_MODELS}"
        )
    return names


def study_sweep(study: Study, axis: str, models: str = DEFAULT_MODELS) -> list[str]:
    """`get_sweep(models)` of a study file: every value of `axis` for each GAN of `models`.

    The study's two GANs by default; `models=pggan+cpd+stylegan2` adds medgan's extension.
    """
    if axis == "classes":
        values = [f"classes={k},per_class={n}" for k, n in study.classes]
    elif axis == "samples":
        values = [f"per_class={n}" for n in study.samples]
    elif axis == "resolution":
        values = [f"resolution={px}" for px in RESOLUTIONS]
    else:
        raise ValueError(f"axis {axis!r}: expected one of {AXES}")
    return [f"model={model},{value}" for model in parse_models(models) for value in values]


def _steps(kimg: int, global_batch_size: int) -> int:
    return max(1, round(kimg * 1000 / global_batch_size))


# Phantom cohorts on a CPU are small: the patients are split 50/20/30 (the
# study: 80/10/10 of a cohort of 65,000 patients) so that the fixed test sets
# hold enough images of the rarer combinations for DeLong intervals that can
# separate points.
CPU_PATIENT_FRACTIONS = (0.5, 0.2, 0.3)
# (val, test) images per combination of the CPU sizes: at least 100 test images
# per combination, so that DeLong intervals can separate points.
CPU_HOLDOUT = {"demo": (50, 100), "quick": (50, 100), "tiny": (4, 8)}
# Phantom head CT patients of a CPU point: >= 100 test images of the 10th combination.
CPU_PATIENTS = 8000
CPU_GAN_STEPS = 1500
# `make demo` (size "quick"): half the patients (>= 100 test images of the 6th
# combination), the classifier and GAN schedules cut to fit 10 minutes on 2 AVX2 cores.
QUICK_PATIENTS = 4000
QUICK_GAN_STEPS = 600
# The progressive GAN at CPU size starts at 16 px (at 32 px an 8 px stage is one skull-sized blob) and is
# at full size from this step on, whatever the resolution: 80% of the 1,500-step run ("quick": 67% of 600),
# close to the study's 32 px preset (GAN_prog: 82% of its images at 32 px, fade-in included).
CPU_START_RESOLUTION = 16
CPU_FULL_SIZE_STEP = {"demo": 300, "quick": 200}


def progressive_phase_steps(resolution: int, full_size_step: int, start_resolution: int = CPU_START_RESOLUTION) -> int:
    """Steps per growth phase that reach `resolution` at `full_size_step`.

    From `start_resolution` a progressive GAN runs one stable phase, then a
    fade-in and a stable phase per doubling, the last fade-in ending at full
    size: 2 x doublings phases before it (train/progressive.GrowthSchedule).
    """
    doublings = int(np.log2(max(resolution // start_resolution, 1)))
    if start_resolution << doublings != resolution:
        raise configuration.ConfigError(
            f"gan.start_resolution={start_resolution} must be a power-of-two fraction of the resolution {resolution}")
    return max(1, full_size_step // max(2 * doublings, 1))


def cpu_scale(config: ml_collections.ConfigDict, size: str) -> ml_collections.ConfigDict:
    """Shrinks a point to run on a CPU: "demo" (a CPU sweep point, ~15 minutes), "quick" (`make demo`,
    under 10 minutes) or "tiny" (seconds, for tests). The audit searches windows moved by 1 px at size
    "demo", none at "quick" (the image and its mirror), 1 and 2 px at "tiny" (so the tests run every view).

    "tiny" also renders at most 1,200 phantom patients: enough for 2
    combinations x 100 training images among the half of the patients that
    train (the SLURM cluster test's largest point).

    "demo" is a point of the CPU sweeps: small DenseNet with the 3x3/1 stem
    (keeps 32 px findings; the ImageNet stem's 4x reduction loses them)
    trained to its validation optimum (`steady_judge`), three judge seeds
    pooled, and a progressive GAN 32 channels wide, 1,500 steps growing 16 ->
    32 px in 150-step phases (full size from step 300, `CPU_FULL_SIZE_STEP`),
    scored every 250 steps. "quick" is the same networks on shorter
    schedules: 200 classifier steps (three seeds), 600 GAN steps in 100-step
    phases (full size from step 200), scored every 200.
    """
    if size not in ("demo", "quick", "tiny"):
        raise configuration.ConfigError(f"config argument size={size!r}: expected 'demo', 'quick' or 'tiny'")
    clf, gan = config.classifier, config.gan
    presets.use_step_schedule(gan)  # CPU runs count steps at one batch, set below
    config.fold.fractions = CPU_PATIENT_FRACTIONS
    clf.model, clf.stem, clf.tile_to_rgb = "densenet_tiny", "small", False
    clf.input_size, clf.normalization = 0, "none"  # native 32 px: no 224 px resize on a CPU
    gan.latent_dim, gan.w_dim, gan.mapping_layers = 64, 64, 2
    if size in ("demo", "quick"):
        clf.learning_rate = 1e-3  # the study's 1e-4 is for DenseNet-121 at 224 px; 10x for a short CPU run
        clf.global_batch_size = 48
        clf.log_every = 25
        # 32 channels up to 16 px, 16 at 32 px (the study's widths are 512 -> 256).
        gan.fmap_base, gan.fmap_max = 256, 32
        gan.global_batch_size = 32
        gan.g_learning_rate = gan.d_learning_rate = 2e-3
        gan.ema_decay = 0.99  # 0.999 averages over more steps than this short run has
        gan.num_steps = CPU_GAN_STEPS
        gan.start_resolution = CPU_START_RESOLUTION
        gan.steps_per_phase = progressive_phase_steps(config.data.resolution, CPU_FULL_SIZE_STEP[size])
        gan.fid_every = gan.sample_every = gan.checkpoint_every = 250
        gan.fid_samples = 480
        gan.fid_patience = 0  # six evaluations are too few to stop on: keep the best-FD checkpoint
        gan.log_every = 100
        # The judge: trained to its validation optimum, three seeds pooled (`make demo`: its 200 steps, three seeds).
        steady_judge(clf)
        config.benchmark.judge_seeds = 3
        if size == "quick":
            clf.num_steps = 200
            gan.num_steps = QUICK_GAN_STEPS
            gan.fid_every = gan.sample_every = gan.checkpoint_every = 200
        # At 32 px a 1 px move is 3% of the image: 10 search views instead of 18 ("quick": the image and
        # its mirror only, 2 views, to keep `make demo` within 10 minutes); a smaller t-SNE map.
        config.audit.shifts = "" if size == "quick" else "1"
        config.audit.embedding_points = 500
        config.audit.kid_subsets = 50
        config.audit.occlusion_images, config.audit.occlusion_patch = 24, 6
    else:
        config.data.phantom_patients = min(config.data.phantom_patients, 1200)
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
        config.audit.global_batch_size = 16
        config.audit.kid_subsets, config.audit.embedding_points = 10, 50
        config.audit.occlusion_images = 4
        config.benchmark.report_samples = 2
    _cpu_gan_rules(gan, config.data.resolution)
    return config


def _cpu_gan_rules(gan: ml_collections.ConfigDict, resolution: int) -> None:
    """What the GANs follow at CPU size besides their schedules (RESULTS.md, "The three GANs at CPU size").

    pggan's AC-GAN head learns from real images only: with the study's term
    on fakes too, D's head and G agreed on a code the real judge reads
    inversely (GAN-test 0.417 at the k = 2 point, 0.623 with this).
    StyleGAN2 follows stylegan2-ada-pytorch's rules for small images at the
    batch `cpu_scale` set: R1 gamma 0.0002 res^2 / batch (not for
    point_config's accelerator batch) and the minibatch-stddev group of its
    cifar config, the batch up to 32 (one device at CPU size), so that D
    sees a collapse across the batch, not in groups of 4.
    """
    gan.acgan_d_fakes = False
    if gan.model == "stylegan2":
        gan.r1_gamma = ada_r1_gamma(resolution, gan.global_batch_size)
        gan.mbstd_group_size = min(32, gan.global_batch_size)


# A steady judge at CPU size: trained to its validation optimum, not stopped on a rising curve. On the
# k = 6 point the mean validation AUC of the demo's judge still rises at step 300 and peaks near step 500;
# LR x0.1 after 3 evaluations without a gain and early stopping after 5 end it there (about 750 steps).
STEADY_JUDGE_MAX_STEPS = 1500


def steady_judge(classifier: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The CPU judge's schedule run to its validation optimum: early stopping decides, not a step count."""
    classifier.num_steps = STEADY_JUDGE_MAX_STEPS
    classifier.eval_every = classifier.checkpoint_every = 50
    classifier.plateau_patience, classifier.early_stop_patience = 3, 5
    return classifier


# The classes sweep at CPU size (configs/cpu_classes.py): (k, n) like the study's
# pairs scaled down, the ends of the sweep first. `make demo` runs its k = 6 fold at size "quick".
CPU_CLASSES_POINTS = ((2, 320), (10, 100), (6, 120), (4, 200))
# The samples sweep at CPU size (configs/cpu_samples.py): n training images per combination at
# k = 2, the study's CheXpert k. The second combination holds ~970 images in the training half
# of CPU_PATIENTS, so 800 is the largest n; the ends of the sweep first.
CPU_SAMPLES_CLASSES = 2
CPU_SAMPLES_POINTS = (50, 800, 100, 400, 200)


# The resolution sweep at CPU size (configs/cpu_resolution.py): phantom chest X-rays (the study's
# Support Devices finding is a chest class), the study's unbalanced fold of every combination with
# more than CPU_RESOLUTION_MIN_IMAGES images, (val, test) images in all.
CPU_RESOLUTIONS = (32, 64, 128)
CPU_RESOLUTION_PATIENTS = 3000
CPU_RESOLUTION_MIN_IMAGES = 100
CPU_RESOLUTION_HOLDOUT = (300, 900)


def cpu_resolution_config(*, resolution: int, model: str = "pggan", gan_steps: int = CPU_GAN_STEPS,
                          patients: int = CPU_RESOLUTION_PATIENTS) -> ml_collections.ConfigDict:
    """One point of the CPU resolution sweep: the classes sweep's networks, the GAN grown to `resolution`.

    The progressive GAN's phases shrink with the number of doublings from
    16 px so that every resolution reaches full size at the same step (step
    300 of 1,500) and trains the same number of steps there. The audit's occlusion
    patch scales with the image (6 px at 32 px).
    """
    config = point_config(
        source="phantom_chest", resolution=resolution, classes=0, per_class=0, model=model,
        holdout=CPU_RESOLUTION_HOLDOUT, devices=1, patients=patients, study="cpu_resolution",
        min_images=CPU_RESOLUTION_MIN_IMAGES,
    )
    config = cpu_scale(config, "demo")
    config.gan.num_steps = gan_steps
    config.audit.occlusion_patch = 6 * resolution // 32
    return config


def cpu_classes_config(
    *, classes: int, per_class: int, model: str = "pggan", conspicuity: float, gan_steps: int = CPU_GAN_STEPS,
    patients: int = CPU_PATIENTS, source: str = "phantom_head_ct", resolution: int = 32, study: str = "cpu_classes",
) -> ml_collections.ConfigDict:
    """One point of the CPU classes sweep (the demo's sizes): phantom head CT at 32 px by default."""
    config = point_config(
        source=source, resolution=resolution, classes=classes, per_class=per_class, model=model,
        holdout=CPU_HOLDOUT["demo"], devices=1, patients=patients, study=study,
    )
    config = cpu_scale(config, "demo")
    config.data.phantom_conspicuity = float(conspicuity)
    config.gan.num_steps = gan_steps
    return config
