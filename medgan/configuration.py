"""Config schema, colon-argument parsing and validation.

Config files in `configs/` are data: `get_config(arg)` starts from
`base_config(job)` (every key a job understands, with its default, locked so a
misspelt key fails where it is written), fills in the point that `arg` picks,
and returns it. `validate` runs before any work and names the offending key,
so an impossible value costs a second, not a compilation.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

import ml_collections

from medgan.data import oracle
from medgan.data.phantoms.cbis_layout import LAYOUTS as PHANTOM_CBIS_LAYOUTS
from medgan.data.phantoms.rendering import DEFAULT_CONSPICUITY, DEFAULT_LABEL_NOISE
from medgan.data.sources import SOURCES
from medgan.models.classifiers import CLASSIFIERS
from medgan.models.gans import GAN_MODELS, RESAMPLING

# The sections of each job's config besides job, seed and data (each from its `<section>_config()` below).
_POINT = ("fold", "classifier", "gan", "synthesize", "audit", "benchmark")
JOB_SECTIONS = {
    "prepare": (), "train_classifier": ("fold", "classifier"), "train_gan": ("fold", "gan"),
    "synthesize": ("synthesize",), "audit": ("fold", "audit"), "benchmark": _POINT,
    "instrument": (*_POINT, "instrument"), "reader_study": ("reader_study",), "mammo_patches": ("mammo",),
    "train_contextual": ("mammo", "contextual"), "synthesize_lesions": ("mammo", "lesion_synthesis"),
    "augment": ("mammo", "augment"),
    "mammo_study": ("mammo", "contextual", "lesion_synthesis", "augment", "mammo_study"),
}
# Jobs that run on one process: no config.distributed.
SINGLE_PROCESS_JOBS = ("prepare", "reader_study", "mammo_patches")
# Where a job's code lives (medgan/jobs/); imported lazily so `--help` and validation stay fast.
JOBS = {name: f"medgan.jobs.{name}:run" for name in JOB_SECTIONS}

CHEXPERT_POLICIES = ("ones", "zeros", "ignore")
SQUARE_MODES = ("pad", "crop", "stretch")
RSNA_WINDOWS = ("brain", "subdural", "bone")


class ConfigError(ValueError):
    """A config key is unknown or its value impossible; the message names the key."""


def data_config() -> ml_collections.ConfigDict:
    """Which cohort, at which resolution, prepared where."""
    return ml_collections.ConfigDict(
        {
            "source": "phantom_chest",
            "root": "",  # a real cohort: CheXpert's folder holding train.csv, RSNA's holding stage_2_train.csv
            "prepared_dir": "",  # "" = <workdir>/prepared; points that share one prepare the cohort once
            "min_kept_share": 0.5,  # a preparation that loads fewer of its indexed images fails
            "resolution": 64,
            "phantom_patients": 1000,
            "phantom_seed": 0,
            # The phantoms' findings' contrast (0 ... 4; default visible) and their labels' (miss, false
            # positive) rates as a report labeller's: BENCHMARKS.md, "Phantom conspicuity and label noise".
            "phantom_conspicuity": DEFAULT_CONSPICUITY,
            "phantom_label_noise": DEFAULT_LABEL_NOISE,
            "chexpert_policy": "ones",
            "to_square": "pad",
            "rsna_windows": ("brain",),
        }
    )


def fold_config() -> ml_collections.ConfigDict:
    """A benchmark fold as the study drew it (medgan/data/folds.py).

    Balanced (the classes and samples sweeps): the k most frequent label
    combinations, n training images each, and a fixed number of validation and
    test images per combination. Unbalanced (the resolution sweep,
    per_combination = 0): every combination with more than min_images images
    (num_combinations = 0) or the top k, all their training images, and
    val_images / test_images in all, stratified by combination.
    """
    return ml_collections.ConfigDict(
        {
            "num_combinations": 4,
            "per_combination": 160,  # training images per combination; 0 = all (unbalanced)
            "val_per_combination": 20,
            "test_per_combination": 20,
            "val_images": 0,  # unbalanced folds only
            "test_images": 0,
            "min_images": 0,  # with num_combinations = 0: keep combinations with more images
            "fractions": (0.8, 0.1, 0.1),  # of the patients in train/val/test
            "seed": 0,
            # An existing manifest.json to use instead of <workdir>/manifest.json
            # (the stages of one benchmark point share one fold).
            "manifest": "",
        }
    )


def classifier_config() -> ml_collections.ConfigDict:
    """The study's classifier: DenseNet-121, Adam 1e-4, batch 48, LR x0.1 on plateau."""
    return ml_collections.ConfigDict(
        {
            "model": "densenet121",
            "dtype": "float32",  # compute dtype; parameters stay float32
            "tile_to_rgb": True,  # grayscale tiled to 3 channels, as the study's ImageNet-style net
            # "" keeps the preset's stem; "imagenet" (7x7/2 + max-pool) or "small" (3x3/1).
            "stem": "",
            # The judge's input path, on device inside the network (models/classifiers):
            # resize to input_size px (0 = the image's own size; the study: 224, TF1
            # bilinear), then "imagenet" normalises with the ImageNet mean/std ("none" keeps [-1, 1]).
            "input_size": 0,
            "normalization": "none",
            # A Keras 2 weights file (the study: Keras' densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5)
            # loaded into the feature extractor at initialisation; "" = random initialisation.
            "pretrained": "",
            "learning_rate": 1e-4,
            "global_batch_size": 48,
            "flip": True,  # random horizontal flip, the study's augmentation
            "num_steps": 20_000,  # upper bound; early stopping usually ends sooner
            "eval_every": 500,  # steps between validation passes (mean val AUC)
            "plateau_patience": 3,  # evaluations without improvement before LR x plateau_factor
            "plateau_factor": 0.1,
            "early_stop_patience": 6,  # evaluations without improvement before stopping
            "checkpoint_every": 500,
            "log_every": 50,
            # Updates skipped in a row (non-finite loss or gradient) before the run stops
            # without saving (medgan.train.faults); checked every log_every steps.
            "max_skipped_in_a_row": 20,
            # "" trains on the real fold's train split; a directory written by
            # `synthesize` (prepared dataset + manifest.json) trains on that.
            "train_data": "",
        }
    )


def gan_config() -> ml_collections.ConfigDict:
    """A class-conditional GAN and its training.

    The study's: WGAN-GP lambda 10, drift 0.001, Adam 0/0.99, EMA 0.999.
    """
    return ml_collections.ConfigDict(
        {
            "model": "pggan",
            "dtype": "float32",  # compute dtype; parameters stay float32
            "latent_dim": 512,
            "fmap_base": 8192,  # widths min(fmap_max, fmap_base / (res / 2)) per resolution
            "fmap_max": 512,
            "w_dim": 512,  # stylegan2 only
            "mapping_layers": 8,  # stylegan2 only
            "mbstd_group_size": 4,  # D's minibatch-stddev groups ([PGGAN] sec. 3; ADA's cifar config: the batch)
            "resample": "box",  # cpd: the study's nearest-up / box-down, or "fir" ([SG2]'s [1,3,3,1] filter)
            "global_batch_size": 32,
            "num_steps": 20_000,
            "g_learning_rate": 1e-3,
            "d_learning_rate": 1e-3,
            "ema_decay": 0.999,
            "lambda_gp": 10.0,
            "drift": 0.001,
            "acgan_weight": 1.0,  # pggan's AC-GAN term
            "acgan_d_fakes": True,  # the study's: D's AC head learns fakes too; False: real images only
            "r1_gamma": 1.0,  # stylegan2: R1 weight gamma (lazy, every 16 steps)
            "pl_weight": 0.0,  # stylegan2: path-length regularisation (0 = off)
            # "" = the model's default (on for stylegan2); "ada" or "none".
            "augment": "",
            "ada_target": 0.6,
            "ada_speed_images": 500_000,
            # pggan: growth from start_resolution, each new stage fading in over
            # steps_per_phase steps and then training for steps_per_phase more.
            "start_resolution": 8,
            "steps_per_phase": 2000,
            # A phase in thousands of real images instead (0 = steps_per_phase), so it
            # lasts round(kimg_per_phase * 1000 / batch) steps at its stage's batch.
            "kimg_per_phase": 0.0,
            # ((px, global batch), ...): a stage's own batch, e.g. ((8, 256), (16, 128), (32, 64));
            # stages not listed and () train at global_batch_size.
            "batch_by_resolution": (),
            # Training length in thousands of real images (0 = num_steps steps).
            "total_kimg": 0.0,
            # A train_classifier work directory: its real-trained network gives the
            # features of the Fréchet distance. "" disables FD and early stopping.
            "fid_classifier": "",
            "fid_every": 1000,
            "fid_samples": 1000,  # EMA samples per FD (labels drawn from the validation split)
            "fid_patience": 5,  # evaluations without a better FD before stopping; 0 = never stop early
            # FD evaluations before this many thousand real images neither count for
            # patience nor are kept as the best generator (the study's minimum_fid_kimg).
            "fid_start_kimg": 0.0,
            "sample_every": 1000,  # fixed-latent grid per label combination, PNG + TensorBoard
            "samples_per_combination": 8,
            "checkpoint_every": 1000,
            "log_every": 100,
            "max_skipped_in_a_row": 20,  # as classifier.max_skipped_in_a_row
        }
    )


def synthesize_config() -> ml_collections.ConfigDict:
    """Sampling a trained generator into a shareable dataset."""
    return ml_collections.ConfigDict(
        {
            "generator": "",  # a train_gan work directory (required)
            # 0: as many images per label combination as the real fold's train
            # and validation splits hold; N: N training images per combination beside
            # the real fold's validation counts.
            "per_combination": 0,
            "global_batch_size": 64,
        }
    )


def audit_config() -> ml_collections.ConfigDict:
    """The audit of a synthetic cohort against the real fold (memorisation, fidelity, occlusion, embedding)."""
    return ml_collections.ConfigDict(
        {
            "synthetic": "",  # a synthesize work directory (required for the audit job)
            "real_classifier": "",  # the train_classifier work directory on the real fold: the judge (required)
            # A synthetic image is flagged when nearer a training image than all but this share of real test images.
            "false_flag_rate": 0.01,
            # Pixels by which the memorisation search also moves its crop windows ("" = mirror only).
            "shifts": "1,2",
            "neighbours": 5,  # nearest training images kept per synthetic image
            # The positive control: training images planted as copies (mirrored, moved, noisy) that the audit must
            # flag; 0 = none.
            "planted_copies": 20,
            "planted_noise": 0.02,  # std of the noise on a planted copy, in [-1, 1] units (2.5 grey levels)
            # The control again at these noise stds (comma-separated, "" = none): how perturbed a copy may be and
            # still be flagged, which is what "0 flagged" bounds.
            "planted_noise_levels": "0,0.01,0.02,0.04",
            "copying_cells": 10,  # k-means cells of the data-copying test
            "strips": 8,  # rows of each nearest-neighbour picture
            "kid_subsets": 100,
            "kid_subset_size": 1000,
            "manifold_k": 3,  # k of the precision / recall and density / coverage balls
            "embedding_points": 1000,  # at most this many real and this many synthetic points on the t-SNE map
            # Occlusion maps of the real- and the synthetic-trained classifier ("" = none; a benchmark sets it).
            "synthetic_classifier": "",
            "occlusion_images": 48,  # real test images, spread over the label combinations
            "occlusion_patch": 0,  # px of the grey patch; 0 = an eighth of the resolution
            "global_batch_size": 64,
        }
    )


def reader_study_config() -> ml_collections.ConfigDict:
    """A reader-study page of finished benchmark points (one per resolution) and its answer key."""
    return ml_collections.ConfigDict(
        {
            "points": "",  # comma-separated benchmark work directories, one per resolution (required)
            "pairs": 40,  # real test images per point, each with a synthetic image of its label combination
            "study": "",  # names the answer files and the browser's saved progress ("" = the work directory's name)
            "title": "Real or synthetic?",
            "instructions": "",  # "" = say the cohort and the resolutions
            # The simulated reader (study/simulated_reader.py): a classifier trained on each point's real training
            # split against its unused synthetic images answers the page. 0 steps = no simulated reader.
            "simulated_steps": 400,
            "simulated_model": "resnet_tiny",
            "simulated_batch_size": 32,
            "simulated_learning_rate": 1e-3,
            "simulated_max_per_source": 2000,  # images of each source it trains on, at most
        }
    )


def mammo_config() -> ml_collections.ConfigDict:
    """The mammography study's cohort: full mammograms (CBIS-DDSM or phantoms) cut into patches."""
    return ml_collections.ConfigDict(
        {
            "root": "",  # a CBIS-DDSM download (TCIA or Kaggle; data/cbis_ddsm.py); "" = phantoms as one
            "min_kept_share": 0.5,  # a preparation that keeps fewer of the CSVs' rows fails
            "phantom_layout": "descriptive",  # how phantoms are written: cbis_layout.LAYOUTS
            "phantom_patients": 60,
            "phantom_seed": 0,
            "phantom_conspicuity": 1.0,
            "height": 512,  # px of a full mammogram as loaded (the width keeps its aspect)
            "patch": 64,  # px of a patch (the study: 256)
            "max_offset": 0,  # lesion patches: largest offset of the lesion pixel from the centre; 0 = patch / 2
            "min_tissue": 0.9,
            "per_lesion": 8,  # patches around each abnormality of the training split (val/test: per_lesion_eval)
            "per_lesion_eval": 2,
            "normals_per_image": 16,  # patches of healthy tissue per image (training split; val/test: a quarter)
            "fractions": (0.6, 0.2, 0.2),  # of the patients in train/val/test
            "seed": 0,
            # Prepared patches go here; "" means <workdir>/patches. Share it between the study's jobs.
            "patches_dir": "",
        }
    )


def contextual_config() -> ml_collections.ConfigDict:
    """The contextual lesion GAN (models/contextual.py, train/contextual_step.py) and its schedule."""
    return ml_collections.ConfigDict(
        {
            "lesion": "mass",  # "mass" or "calcification" (added to normal tissue), or "removal"
            "base_filters": 16,
            "max_filters": 2048,
            "centre_filters": 2048,
            "embedding": 4,
            "attention_resolution": 32,
            "border": 10,  # px of the lesion channel cropped to zero, at the patch size
            "d_filter_factor": 8,
            "spectral_norm": True,  # on D's layers ([SN]); the study names it without saying where
            "g_learning_rate": 1e-4,
            "d_learning_rate": 4e-4,
            "beta1": 0.0,
            "beta2": 0.9,
            "dragan_lambda": 10.0,
            "aux_weight": 0.5,  # the benign and normal terms of D's loss
            "g_steps": 0,  # G updates per D update; 0 = the study's: 2 for masses, 1 otherwise
            "global_batch_size": 16,
            "grow_steps": 1000,  # steps at half the patch size before the full size fades in
            "fade_steps": 3000,  # the study: 3,000 iterations
            "num_steps": 8000,
            "checkpoint_every": 500,
            "log_every": 50,
            "sample_every": 500,
            "max_skipped_in_a_row": 20,
        }
    )


def lesion_synthesis_config() -> ml_collections.ConfigDict:
    """Synthetic patches from trained contextual GANs (the study: 5,000 each of mass, calcification, normal)."""
    return ml_collections.ConfigDict(
        {
            "gans": "",  # comma-separated train_contextual work directories (required for the job alone)
            "per_model": 5000,  # kept (post-processed) patches per GAN
            "global_batch_size": 16,
        }
    )


def augment_config() -> ml_collections.ConfigDict:
    """The study's GAN-augmented cancer classifier (train/augment.py): ResNet-50, Adam 1e-5, decaying share."""
    return ml_collections.ConfigDict(
        {
            "p0": 0.0,  # initial share of synthetic patches
            "decay": 0.9,  # the share is multiplied by this ...
            "decay_every": 5000,  # ... after every this many samples
            "validate_every": 5000,  # samples between validations (model selection on real validation patches)
            "total_samples": 500_000,
            "model": "resnet50",
            "pretrained": "",  # a Keras ResNet-50 ImageNet weights file; "" = random initialisation
            "learning_rate": 1e-5,
            "global_batch_size": 32,
            "synthetic": "",  # a synthesize_lesions work directory (required unless p0 = 0)
            "baseline": "",  # a finished augment run at p0 = 0: DeLong's test against it
            "log_every": 50,
            "max_skipped_in_a_row": 20,
        }
    )


def benchmark_config() -> ml_collections.ConfigDict:
    """What the benchmark point reports besides its stages' own settings."""
    return ml_collections.ConfigDict(
        {
            "study": "",  # the study (config file) the point belongs to, recorded in results.json
            "level": 0.95,  # of the DeLong confidence intervals
            # report.md: this many generated images per label combination, beside as many real ones.
            "report_samples": 4,
            # Judges (real- and synthetic-trained classifiers) per point, seeds config.seed + 0, 1, ...: the
            # point's AUCs are their mean, pooled (eval/pooling, study/point.answer). The study trained one.
            "judge_seeds": 1,
        }
    )


def mammo_study_config() -> ml_collections.ConfigDict:
    """The study's table: one augmented classifier per initial share, and the GANs it needs."""
    return ml_collections.ConfigDict({
        "p0s": "0,0.1,0.25,0.5,0.75,1",
        "lesions": "mass,calcification,removal",
        # "removal=4": that lesion model trains 4x as long, its schedule (growth, fade, checkpoints) stretched.
        "longer": "",
    })


def instrument_config() -> ml_collections.ConfigDict:
    """A benchmark point's judges fed synthetic cohorts of known quality (data/oracle.py, jobs/instrument.py)."""
    return ml_collections.ConfigDict({
        "rungs": "perfect,labels=0.25,labels=0.5,labels=1.0,downsample=2,downsample=4",
    })


def base_config(job: str) -> ml_collections.ConfigDict:
    """Every key `job` understands, with its default. Locked: unknown keys fail."""
    if job not in JOBS:
        raise ConfigError(f"config.job={job!r}: unknown job; known jobs: {sorted(JOBS)}")
    config = ml_collections.ConfigDict({"job": job, "seed": 0, "data": data_config()})
    for section in JOB_SECTIONS[job]:
        config[section] = globals()[f"{section}_config"]()
    if job not in SINGLE_PROCESS_JOBS:
        config.distributed = "auto"
    config.lock()
    return config


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
    """Parses a colon argument "key=value,key=value" against typed defaults.

    `get_config("classes=6,model=pggan")` style (big_vision). Values are Python
    literals when they parse as one ("6", "0.5", "True"), strings otherwise, and
    must have the type of their default. An unknown key is an error naming it.
    """
    parsed = ml_collections.ConfigDict(defaults)
    if not arg:
        return parsed
    for item in arg.split(","):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(f"config argument {item!r}: expected key=value")
        if key not in defaults:
            raise ConfigError(
                f"config argument {key!r}: unknown; this config takes {sorted(defaults)}"
            )
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        default = defaults[key]
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, type(default)):
            raise ConfigError(
                f"config argument {key}={raw!r}: expected {type(default).__name__} "
                f"like the default {default!r}"
            )
        parsed[key] = value
    return parsed


def _validate_fold(fold: ml_collections.ConfigDict) -> None:
    """The fold keys that only make sense together (medgan/data/folds.py)."""
    if fold.per_combination > 0:
        for key in ("val_per_combination", "test_per_combination"):
            if fold[key] < 1:
                raise ConfigError(
                    f"config.fold.{key}={fold[key]}: a balanced fold (per_combination={fold.per_combination}) "
                    "needs at least one validation and one test image per combination"
                )
        if fold.num_combinations < 1:
            raise ConfigError("config.fold.num_combinations=0 (every frequent combination) needs per_combination=0")
    else:
        for key in ("val_images", "test_images"):
            if fold[key] < 1:
                raise ConfigError(f"config.fold.{key}={fold[key]}: an unbalanced fold (per_combination=0) needs >= 1")


def _unknown_keys(config: ml_collections.ConfigDict, schema: ml_collections.ConfigDict, prefix=""):
    for key, value in config.items():
        path = f"{prefix}{key}"
        if key not in schema:
            yield path
        elif isinstance(value, ml_collections.ConfigDict):
            if not isinstance(schema[key], ml_collections.ConfigDict):
                yield path
            else:
                yield from _unknown_keys(value, schema[key], prefix=f"{path}.")


def _get(config, path: str):
    node = config
    for part in path.split("."):
        node = node[part]
    return node


# (key, predicate, what a valid value is). Only keys present in the job's schema
# are checked, so one table serves every job.
_RULES: list[tuple[str, Callable[[Any], bool], str]] = [
    ("seed", lambda v: isinstance(v, int) and v >= 0, "a non-negative integer"),
    ("data.source", lambda v: v in SOURCES, f"one of {SOURCES}"),
    ("data.resolution", lambda v: isinstance(v, int) and 16 <= v <= 1024, "an integer pixel size in [16, 1024]"),
    ("data.phantom_patients", lambda v: isinstance(v, int) and v >= 1, "a positive integer"),
    ("data.phantom_seed", lambda v: isinstance(v, int) and v >= 0, "a non-negative integer"),
    ("data.phantom_conspicuity", lambda v: isinstance(v, (int, float)) and 0 <= v <= 4, "a number in [0, 4]"),
    ("data.phantom_label_noise", lambda v: len(v) == 2 and all(0 <= r < 1 for r in v), "(miss, false pos.) in [0, 1)"),
    ("data.chexpert_policy", lambda v: v in CHEXPERT_POLICIES, f"one of {CHEXPERT_POLICIES}"),
    ("data.to_square", lambda v: v in SQUARE_MODES, f"one of {SQUARE_MODES}"),
    (
        "data.rsna_windows",
        lambda v: len(v) >= 1 and len(set(v)) == len(v) and all(w in RSNA_WINDOWS for w in v),
        f"a non-empty tuple of distinct names from {RSNA_WINDOWS}",
    ),
    *[
        (f"fold.{key}", lambda v: isinstance(v, int) and v >= 0, "a non-negative integer")
        for key in ("num_combinations", "per_combination", "val_per_combination", "test_per_combination",
                    "val_images", "test_images", "min_images")
    ],
    (
        "fold.fractions",
        lambda v: len(v) == 3 and all(f > 0 for f in v) and abs(sum(v) - 1) < 1e-6,
        "three positive train/val/test patient fractions summing to 1",
    ),
    ("fold.seed", lambda v: isinstance(v, int) and v >= 0, "a non-negative integer"),
    ("benchmark.judge_seeds", lambda v: isinstance(v, int) and v >= 1, "a positive integer"),
    ("instrument.rungs", oracle.parse_rungs, "comma-separated rungs: perfect, labels=<share>, downsample=<factor>"),
    *[
        (f"classifier.{key}", ok, expected)
        for key, ok, expected in (
            ("model", lambda v: v in CLASSIFIERS, f"one of {tuple(CLASSIFIERS)}"),
            ("stem", lambda v: v in ("", "imagenet", "small"), "'', 'imagenet' or 'small'"),
            ("input_size", lambda v: isinstance(v, int) and 0 <= v <= 1024,
             "an integer pixel size in [0, 1024] (0 = the image's own)"),
            ("normalization", lambda v: v in ("none", "imagenet"), "'none' or 'imagenet'"),
            ("pretrained", lambda v: isinstance(v, str) and (not v or v.endswith((".h5", ".hdf5"))),
             "'' or the path of a Keras weights .h5 file"),
            ("dtype", lambda v: v in ("float32", "bfloat16"), "'float32' or 'bfloat16'"),
            ("learning_rate", lambda v: v > 0, "a positive number"),
            ("plateau_factor", lambda v: 0 < v < 1, "a number in (0, 1)"),
            *[(name, lambda v: isinstance(v, int) and v >= 1, "a positive integer")
              for name in ("global_batch_size", "num_steps", "eval_every", "plateau_patience",
                           "early_stop_patience", "checkpoint_every", "log_every", "max_skipped_in_a_row")],
        )
    ],
    ("gan.model", lambda v: v in GAN_MODELS, f"one of {GAN_MODELS}"),
    ("gan.dtype", lambda v: v in ("float32", "bfloat16"), "'float32' or 'bfloat16'"),
    ("gan.resample", lambda v: v in RESAMPLING, f"one of {RESAMPLING}"),
    *[
        (f"gan.{key}", lambda v: isinstance(v, int) and v >= 1, "a positive integer")
        for key in ("latent_dim", "fmap_base", "fmap_max", "w_dim", "mapping_layers", "global_batch_size",
                    "num_steps", "steps_per_phase", "fid_every", "fid_samples", "sample_every",
                    "samples_per_combination", "checkpoint_every", "log_every", "ada_speed_images",
                    "max_skipped_in_a_row", "mbstd_group_size")
    ],
    *[
        (f"gan.{key}", lambda v: isinstance(v, (int, float)) and v > 0, "a positive number")
        for key in ("g_learning_rate", "d_learning_rate")
    ],
    *[
        (f"gan.{key}", lambda v: isinstance(v, (int, float)) and v >= 0, "a non-negative number")
        for key in ("lambda_gp", "drift", "acgan_weight", "r1_gamma", "pl_weight", "kimg_per_phase", "total_kimg",
                    "fid_start_kimg")
    ],
    (
        "gan.batch_by_resolution",
        lambda v: all(len(p) == 2 and all(isinstance(x, int) and x >= 1 for x in p) for p in v)
        and all(not px & (px - 1) for px, _ in v) and len({px for px, _ in v}) == len(v),
        "a tuple of (power-of-two px, positive global batch) pairs with distinct px",
    ),
    ("gan.ema_decay", lambda v: 0 <= v < 1, "a number in [0, 1)"),
    ("gan.ada_target", lambda v: 0 < v < 1, "a number in (0, 1)"),
    ("gan.augment", lambda v: v in ("", "ada", "none"), "'', 'ada' or 'none'"),
    ("gan.acgan_d_fakes", lambda v: isinstance(v, bool), "True or False"),
    (
        "gan.start_resolution",
        lambda v: isinstance(v, int) and v >= 8 and not v & (v - 1),
        "a power of two >= 8",
    ),
    ("gan.fid_patience", lambda v: isinstance(v, int) and v >= 0, "a non-negative integer"),
    ("synthesize.per_combination", lambda v: isinstance(v, int) and v >= 0, "a non-negative integer"),
    ("synthesize.global_batch_size", lambda v: isinstance(v, int) and v >= 1, "a positive integer"),
    ("audit.false_flag_rate", lambda v: 0 < v < 1, "a number in (0, 1)"),
    ("audit.shifts", lambda v: isinstance(v, str) and all(p.strip().isdigit() and int(p) >= 1
                                                        for p in v.split(",") if p.strip()),
     "comma-separated positive integers (pixels), or ''"),
    ("audit.neighbours", lambda v: isinstance(v, int) and v >= 1, "a positive integer"),
    ("audit.planted_copies", lambda v: isinstance(v, int) and v >= 0, "a non-negative integer"),
    ("audit.planted_noise", lambda v: isinstance(v, (int, float)) and v >= 0, "a non-negative number"),
    ("audit.planted_noise_levels", lambda v: isinstance(v, str) and all(float(p) >= 0
                                                                        for p in v.split(",") if p.strip()),
     "comma-separated non-negative numbers (noise stds), or ''"),
    ("audit.copying_cells", lambda v: isinstance(v, int) and v >= 1, "a positive integer"),
    ("audit.strips", lambda v: isinstance(v, int) and v >= 1, "a positive integer"),
    ("audit.kid_subsets", lambda v: isinstance(v, int) and v >= 1, "a positive integer"),
    ("audit.kid_subset_size", lambda v: isinstance(v, int) and v >= 2, "an integer >= 2"),
    ("audit.manifold_k", lambda v: isinstance(v, int) and v >= 1, "a positive integer"),
    ("audit.embedding_points", lambda v: isinstance(v, int) and v >= 5, "an integer >= 5"),
    ("audit.global_batch_size", lambda v: isinstance(v, int) and v >= 1, "a positive integer"),
    ("audit.occlusion_images", lambda v: isinstance(v, int) and v >= 1, "a positive integer"),
    ("audit.occlusion_patch", lambda v: isinstance(v, int) and v >= 0, "a non-negative integer"),
    ("reader_study.pairs", lambda v: isinstance(v, int) and v >= 1, "a positive integer"),
    ("mammo.height", lambda v: isinstance(v, int) and v >= 64, "an integer >= 64 (px)"),
    *[(f"{block}.min_kept_share", lambda v: isinstance(v, (int, float)) and 0 <= v <= 1, "a share in [0, 1]")
      for block in ("mammo", "data")],
    ("mammo.phantom_layout", lambda v: v in PHANTOM_CBIS_LAYOUTS, f"one of {PHANTOM_CBIS_LAYOUTS}"),
    ("mammo.patch", lambda v: isinstance(v, int) and v >= 16 and not v & (v - 1), "a power of two >= 16 (px)"),
    ("mammo.min_tissue", lambda v: 0 < v <= 1, "a number in (0, 1]"),
    ("mammo.fractions", lambda v: len(v) == 3 and all(f > 0 for f in v) and abs(sum(v) - 1) < 1e-6,
     "three positive train/val/test patient fractions summing to 1"),
    *[(f"mammo.{key}", lambda v: isinstance(v, int) and v >= 0, "a non-negative integer")
      for key in ("max_offset", "per_lesion", "per_lesion_eval", "normals_per_image", "phantom_patients")],
    ("contextual.lesion", lambda v: v in ("mass", "calcification", "removal"),
     "'mass', 'calcification' or 'removal'"),
    *[(f"contextual.{key}", lambda v: isinstance(v, int) and v >= 1, "a positive integer")
      for key in ("base_filters", "max_filters", "centre_filters", "embedding", "attention_resolution",
                  "d_filter_factor", "global_batch_size", "num_steps", "checkpoint_every", "log_every",
                  "sample_every", "max_skipped_in_a_row")],
    *[(f"contextual.{key}", lambda v: isinstance(v, int) and v >= 0, "a non-negative integer")
      for key in ("border", "g_steps", "grow_steps", "fade_steps")],
    *[(f"lesion_synthesis.{key}", lambda v: isinstance(v, int) and v >= 1, "a positive integer")
      for key in ("per_model", "global_batch_size")],
    ("augment.p0", lambda v: 0 <= v <= 1, "a share in [0, 1]"),
    ("augment.decay", lambda v: 0 < v <= 1, "a factor in (0, 1]"),
    ("augment.model", lambda v: v in CLASSIFIERS, f"one of {tuple(CLASSIFIERS)}"),
    ("augment.learning_rate", lambda v: v > 0, "a positive number"),
    *[(f"augment.{key}", lambda v: isinstance(v, int) and v >= 1, "a positive integer")
      for key in ("decay_every", "validate_every", "total_samples", "global_batch_size", "log_every",
                  "max_skipped_in_a_row")],
    ("mammo_study.p0s", lambda v: bool(v) and all(0 <= float(p) <= 1 for p in v.split(",")),
     "comma-separated shares in [0, 1]"),
    ("mammo_study.lesions", lambda v: bool(v) and set(v.split(",")) <= {"mass", "calcification", "removal"},
     "comma-separated lesion models: mass, calcification, removal"),
    ("mammo_study.longer", lambda v: v == "" or all(
        len(p.split("=")) == 2 and p.split("=")[0].strip() in ("mass", "calcification", "removal")
        and p.split("=")[1].strip().isdigit() and int(p.split("=")[1]) >= 1 for p in v.split(",")),
     "comma-separated lesion=factor, e.g. removal=4 (factor a positive integer)"),
    ("benchmark.level", lambda v: 0 < v < 1, "a number in (0, 1)"),
    ("benchmark.report_samples", lambda v: isinstance(v, int) and v >= 1, "a positive integer"),
    ("distributed", lambda v: v in ("auto", "force", "off"), "one of ('auto', 'force', 'off')"),
]


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError naming the first unknown key or impossible value."""
    if "job" not in config:
        raise ConfigError("config.job is missing; known jobs: " + ", ".join(sorted(JOBS)))
    schema = base_config(config.job)
    unknown = list(_unknown_keys(config, schema))
    if unknown:
        raise ConfigError(f"config.{unknown[0]}: unknown key for job {config.job!r}")
    for path, ok, expected in _RULES:
        try:
            value = _get(config, path)
        except KeyError:
            continue
        try:
            valid = ok(value)
        except (TypeError, ValueError):  # a number that is not one: "0.1x" in a comma-separated list
            valid = False
        if not valid:
            raise ConfigError(f"config.{path}={value!r}: expected {expected}")
    if "fold" in config:
        _validate_fold(config.fold)
    if config.job in ("train_gan", "benchmark"):
        resolution = config.data.resolution
        if resolution & (resolution - 1) or resolution < 8:
            raise ConfigError(f"config.data.resolution={resolution}: a GAN needs a power of two >= 8")
        if config.gan.model == "pggan" and config.gan.start_resolution > resolution:
            raise ConfigError(
                f"config.gan.start_resolution={config.gan.start_resolution}: above data.resolution={resolution}"
            )
    if config.job == "synthesize" and not config.synthesize.generator:
        raise ConfigError("config.synthesize.generator is empty: give the work directory of a train_gan run")
    if config.job == "audit":
        for key, what in (("synthetic", "a synthesize run"), ("real_classifier", "train_classifier on the real fold")):
            if not config.audit[key]:
                raise ConfigError(f"config.audit.{key} is empty: give the work directory of {what}")
    if config.job == "reader_study" and not config.reader_study.points.strip():
        raise ConfigError("config.reader_study.points is empty: give the work directories of finished benchmark "
                          "points, comma-separated")
    source = config.data.source
    if source.startswith("phantom_") and config.data.resolution < 32:
        raise ConfigError(f"config.data.resolution={config.data.resolution}: phantoms render at 32 px or more")
    if source in ("chexpert", "rsna_ich") and not config.data.root:
        raise ConfigError(
            f"config.data.root is empty: data.source={source!r} needs the folder of your copy"
        )


# Every global batch a job's config may set; each is sharded over the mesh's `data` axis.
_BATCH_KEYS = ("classifier.global_batch_size", "gan.global_batch_size", "synthesize.global_batch_size",
               "audit.global_batch_size", "contextual.global_batch_size", "lesion_synthesis.global_batch_size",
               "augment.global_batch_size")


def check_devices(config: ml_collections.ConfigDict, device_count: int) -> None:
    """Raises ConfigError naming the first global batch that does not split over `device_count` devices.

    Separate from `validate` because the device count is only known once the
    distributed run is joined, which `validate` must not do (it runs before
    any work, also where no accelerator is attached). Call it right after
    making the mesh: the input pipeline would otherwise find the same problem
    only after the train state's initialisation was compiled.
    """
    if device_count < 1:
        raise ValueError(f"device_count must be positive, got {device_count}")
    for path in _BATCH_KEYS:
        try:
            batch = _get(config, path)
        except KeyError:
            continue
        if batch % device_count:
            raise ConfigError(
                f"config.{path}={batch}: not divisible by the {device_count} devices; "
                f"use a multiple of {device_count}"
            )
    if "gan" in config:
        for px, batch in config.gan.batch_by_resolution:
            if batch % device_count:
                raise ConfigError(
                    f"config.gan.batch_by_resolution: the global batch {batch} of stage {px} px is not "
                    f"divisible by the {device_count} devices"
                )
