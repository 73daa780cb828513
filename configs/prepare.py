"""Prepare one cohort at one resolution as tfds shards (job "prepare").

  python -m medgan.main --config=configs/prepare.py:source=phantom_chest,resolution=256 \
      --workdir=work/prepare
  python -m medgan.main --config=configs/prepare.py:source=chexpert,resolution=512 \
      --config.data.root=/data/CheXpert-v1.0-small --config.data.prepared_dir=/data/prepared \
      --workdir=work/prepare

`get_sweep()` lists every cohort at every resolution of the study's resolution
sweep, so a cluster can prepare them all once before the benchmarks run.
"""

from medgan import configuration

RESOLUTIONS = (32, 64, 128, 256, 512)


def get_config(arg=None):
    args = configuration.parse_arg(arg, source="phantom_chest", resolution=64)
    config = configuration.base_config("prepare")
    config.data.source = args.source
    config.data.resolution = args.resolution
    return config


def get_sweep():
    return [
        f"source={source},resolution={resolution}"
        for source in configuration.SOURCES
        for resolution in RESOLUTIONS
    ]
