"""Sample a trained generator into a shareable dataset (job "synthesize").

  python -m medgan.main --config=configs/synthesize.py:generator=work/gan --workdir=work/synthetic

By default as many images per label combination as the real fold's train and
validation splits hold (`per_combination=N`: N training images per combination,
validation as the real fold). The work directory
then holds `dataset/`, `manifest.json`, `labels.csv`, `preview.png`,
`DATA_CARD.md` and `data_card.json`; train a classifier on it with
`--config.classifier.train_data=work/synthetic`.
"""

from medgan import configuration


def get_config(arg=None):
    args = configuration.parse_arg(arg, generator="", per_combination=0, seed=0)
    config = configuration.base_config("synthesize")
    config.seed = args.seed
    config.synthesize.generator = args.generator
    config.synthesize.per_combination = args.per_combination
    return config


def get_sweep():
    return ["generator=work/gan"]
