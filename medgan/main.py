"""Entry point: `python -m medgan.main --config=configs/<file>.py[:args] --workdir=DIR`.

Thin on purpose (as the flax examples): parse flags, validate the config before
any work, hand it to the job named by `config.job`. Everything testable lives
in the job modules.
"""

import importlib
import logging as pylogging
import os

from absl import app, flags, logging
from ml_collections import config_flags

from medgan import configuration

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, optionally with a colon argument.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for every output of the job.")
flags.mark_flags_as_required(["config", "workdir"])


def run_job(config, workdir: str):
    """Validates `config` and runs `config.job`; returns what the job returns."""
    configuration.validate(config)
    module_name, _, function_name = configuration.JOBS[config.job].partition(":")
    job = getattr(importlib.import_module(module_name), function_name)
    os.makedirs(workdir, exist_ok=True)
    return job(config, workdir)


def _quiet_library_info(record) -> bool:
    """Drops INFO chatter of orbax and tfds (one line per checkpoint thread); keeps warnings."""
    noisy = ("/orbax/", "/tensorflow_datasets/")
    return record.levelno >= pylogging.WARNING or not any(part in record.pathname for part in noisy)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.get_absl_handler().addFilter(_quiet_library_info)
    # tf.data feeds the accelerators; TensorFlow itself must not claim them.
    import tensorflow as tf

    tf.config.set_visible_devices([], "GPU")
    logging.info("medgan job %r, workdir %s", _CONFIG.value.job, _WORKDIR.value)
    try:
        run_job(_CONFIG.value, _WORKDIR.value)
    except configuration.ConfigError as error:
        raise app.UsageError(str(error)) from error


def run():
    """Console script `medgan`."""
    app.run(main)


if __name__ == "__main__":
    run()
