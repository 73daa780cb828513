"""The embedded default (`make demo`): phantom chest X-rays and head CTs at 64 px.

Prepares both phantom cohorts, builds a benchmark fold of each, streams a few
sharded batches and writes a labelled preview grid per cohort into the work
directory. Later stages extend this to a whole benchmark point.
"""

from medgan import configuration


def get_config(arg=None):
    args = configuration.parse_arg(arg, resolution=64, patients=1000)
    config = configuration.base_config("demo")
    config.data.resolution = args.resolution
    config.data.phantom_patients = args.patients
    config.cohorts = ("phantom_chest", "phantom_head_ct")
    config.fold.num_combinations = 4
    config.fold.per_combination = 60
    config.input.global_batch_size = 16
    config.preview_batches = 2
    return config


def get_sweep():
    return [""]
