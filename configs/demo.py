"""The embedded default (`make demo`): phantom chest X-rays and head CTs at 64 px.

Prepares both phantom cohorts, builds a benchmark fold of each (the 6 most
frequent label combinations, 100 images each), streams sharded batches into a
labelled preview grid per cohort, and trains and tests a small DenseNet on the
chest fold, printing its per-class and mean test AUC. Later stages extend this
to a whole benchmark point. About 5 minutes on a 2-core CPU.
"""

from medgan import configuration


def get_config(arg=None):
    args = configuration.parse_arg(arg, resolution=64, patients=3000, steps=600)
    config = configuration.base_config("demo")
    config.data.resolution = args.resolution
    config.data.phantom_patients = args.patients
    config.cohorts = ("phantom_chest", "phantom_head_ct")
    config.fold.num_combinations = 6
    config.fold.per_combination = 100
    config.input.global_batch_size = 16
    config.preview_batches = 2

    config.classifier_cohort = "phantom_chest"
    clf = config.classifier
    # A CPU-sized DenseNet: the tiny preset with the ImageNet stem (64 px -> 16 px
    # after the stem), which trains ~8x faster here than the 3x3/1 stem.
    clf.model = "densenet_tiny"
    clf.stem = "imagenet"
    clf.tile_to_rgb = False
    clf.learning_rate = 1e-3  # the study's 1e-4 is for DenseNet-121 at 224 px; 10x for a short CPU run
    clf.global_batch_size = 48
    clf.num_steps = args.steps
    clf.eval_every = 50
    clf.checkpoint_every = 50
    clf.log_every = 25
    clf.plateau_patience = 3
    clf.early_stop_patience = 5
    return config


def get_sweep():
    return [""]
