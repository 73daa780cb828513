"""Train the benchmark's classifier on one fold (job "train_classifier").

  python -m medgan.main --config=configs/classifier.py:source=chexpert,classes=6,per_class=2300,resolution=256 \
      --config.data.root=/data/CheXpert-v1.0-small --config.data.prepared_dir=/data/prepared --workdir=work/clf

The defaults are the study's: DenseNet-121 on grayscale tiled to
3 channels, class-weighted BCE, Adam 1e-4, batch 48, LR x0.1 on a plateau of
the mean validation AUC, early stopping. `train_data=DIR` trains on a
synthetic dataset written by `synthesize` instead of the real train split.
`get_sweep()` lists the study's chest classes sweep at 256 px.
"""

from medgan import configuration

# The study's chest classes sweep: combinations and images per combination.
CHEST_CLASSES = ((20, 1450), (15, 1600), (10, 2000), (6, 2300), (4, 3900), (2, 6300))


def get_config(arg=None):
    args = configuration.parse_arg(
        arg, source="phantom_chest", resolution=256, classes=6, per_class=2300, model="densenet121",
        patients=3000,
    )
    config = configuration.base_config("train_classifier")
    config.data.source = args.source
    config.data.resolution = args.resolution
    config.data.phantom_patients = args.patients  # phantom sources only
    config.fold.num_combinations = args.classes
    config.fold.per_combination = args.per_class
    config.classifier.model = args.model
    return config


def get_sweep():
    return [f"source=chexpert,classes={k},per_class={n}" for k, n in CHEST_CLASSES]
