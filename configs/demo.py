"""The embedded default (`make demo`): phantom chest X-rays and head CTs.

Prepares both phantom cohorts at 64 px, builds a benchmark fold of each (the 6
most frequent label combinations, 100 images each), streams sharded batches
into a labelled preview grid per cohort, and trains and tests a small DenseNet
on the chest fold. Then the study's question on head CT at 32 px: a small
DenseNet trained on the real fold, a progressive GAN trained on the same fold
(scored by Fréchet distance in that DenseNet's features), a synthetic cohort
with the fold's label counts, and the DenseNet trained on it — both tested on
the real test split, with their ratio (relative AUC). About 16 minutes on a
2-core CPU.
"""

import copy

from medgan import configuration


def get_config(arg=None):
    args = configuration.parse_arg(arg, resolution=64, patients=3000, steps=600, gan_model="pggan", gan_steps=3000)
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

    # The judge of the train-on-synthetic point: the same small DenseNet with the
    # 3x3/1 stem, which keeps the 32 px head CTs' small findings (the ImageNet
    # stem's 4x reduction leaves 8 px and loses them: real test AUC 0.75 vs 1.0).
    config.gan_classifier = copy.deepcopy(clf)
    config.gan_classifier.stem = "small"
    config.gan_classifier.num_steps = 300

    config.gan_cohort = "phantom_head_ct"
    config.gan_resolution = 32
    gan = config.gan
    gan.model = args.gan_model
    # CPU-sized networks: 32 channels up to 16 px, 16 at 32 px (the study's are 512 -> 256).
    gan.latent_dim, gan.w_dim, gan.mapping_layers = 64, 64, 2
    gan.fmap_base, gan.fmap_max = 256, 32
    gan.global_batch_size = 32
    gan.g_learning_rate = gan.d_learning_rate = 2e-3
    gan.ema_decay = 0.99  # 0.999 averages over more steps than this short run has
    gan.num_steps = args.gan_steps
    gan.start_resolution, gan.steps_per_phase = 8, 300
    gan.fid_every = gan.sample_every = gan.checkpoint_every = 500
    gan.fid_samples = 480
    gan.fid_patience = 0  # short run: keep the best-FD checkpoint, never stop early
    gan.log_every = 100
    return config


def get_sweep():
    return [""]
