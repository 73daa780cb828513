"""Entry point: `python -m medgan.main --config=configs/<file>.py[:args] --workdir=DIR`.

Thin on purpose (as the flax examples): parse flags, validate the config before
any work, hand it to the job named by `config.job`. Everything testable lives
in the job modules.

The console shows the job's own display (medgan.console: stages, progress
bars, the answer) and warnings; every log line below WARNING goes to
`<workdir>/log.txt`. `--verbose` (or MEDGAN_LOG=info) keeps INFO on the
console too.
"""

import importlib
import logging as pylogging
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from medgan import configuration, console, sharding
from medgan.data.records import TooFewKept

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, optionally with a colon argument.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for every output of the job.")
_VERBOSE = flags.DEFINE_bool(
    "verbose", False, "Also print INFO logs on the console (they always go to <workdir>/log.txt)."
)
flags.mark_flags_as_required(["config", "workdir"])


def run_job(config, workdir: str):
    """Validates `config` and runs `config.job`; returns what the job returns."""
    configuration.validate(config)
    module_name, _, function_name = configuration.JOBS[config.job].partition(":")
    job = getattr(importlib.import_module(module_name), function_name)
    os.makedirs(workdir, exist_ok=True)
    return job(config, workdir)


def _quiet_library_info(record) -> bool:
    """Console filter: drops INFO chatter of orbax and tfds (one line per checkpoint thread) and tfds's
    warning that medgan's builder configs are "custom" (they all are); keeps other warnings.

    It only matters with --verbose (otherwise the console shows warnings only); log.txt gets everything.
    """
    noisy = ("/orbax/", "/tensorflow_datasets/")
    if record.levelno == pylogging.WARNING and record.pathname.endswith("dataset_builder.py"):
        return not str(record.msg).startswith("Using custom data configuration")
    return record.levelno >= pylogging.WARNING or not any(part in record.pathname for part in noisy)


def _quiet_tfds(tfds, verbose: bool) -> None:
    """tfds prints "Downloading and preparing dataset Unknown size ..." and "... Subsequent calls will
    reuse this data." to stdout (on purpose, for real downloads; medgan only builds local shards):
    they go to the log instead. Without --verbose its tqdm bars are off too."""
    if not verbose:
        tfds.disable_progress_bar()
    builder = getattr(getattr(tfds, "core", None), "DatasetBuilder", None)
    if builder is None:
        return
    if hasattr(builder, "_log_download_bytes"):
        builder._log_download_bytes = lambda self: logging.info("tfds: preparing %s in %s", self.name, self.data_dir)
    if hasattr(builder, "_log_download_done"):
        builder._log_download_done = lambda self: logging.info("tfds: %s prepared in %s", self.name, self.data_dir)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        configuration.validate(_CONFIG.value)  # before setup creates the workdir: no work on a bad config
    except configuration.ConfigError as error:
        raise app.UsageError(str(error)) from error
    verbose = _VERBOSE.value or console.verbose_from_env()
    # Before tensorflow is imported: its C++ INFO banner is only silenced through the environment.
    console.setup(_WORKDIR.value, verbose)
    logging.get_absl_handler().addFilter(_quiet_library_info)
    # tf.data feeds the accelerators; TensorFlow itself must not claim them.
    import tensorflow as tf
    import tensorflow_datasets as tfds

    tf.config.set_visible_devices([], "GPU")
    _quiet_tfds(tfds, verbose)
    logging.info("medgan job %r, workdir %s", _CONFIG.value.job, _WORKDIR.value)
    console.header(_CONFIG.value.job, _WORKDIR.value, _devices(_CONFIG.value))
    try:
        run_job(_CONFIG.value, _WORKDIR.value)
    except configuration.ConfigError as error:
        raise app.UsageError(str(error)) from error
    except TooFewKept as error:  # a layout not found: the message says what to fix, a traceback would bury it
        logging.info("the preparation kept too few rows", exc_info=True)
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


def _devices(config) -> str:
    """"8 cpu devices, 1 process" after joining the distributed run the config asks for (jobs join it too)."""
    import jax

    sharding.initialize_distributed(config.get("distributed", "off"))
    devices = jax.devices()
    kinds = sorted({d.device_kind for d in devices})
    return (f"{len(devices)} {devices[0].platform} device{'s' * (len(devices) > 1)} ({', '.join(kinds)}), "
            f"{jax.process_count()} process{'es' * (jax.process_count() > 1)}")


def run():
    """Console script `medgan`."""
    # Before flag parsing loads the config file, which may import tensorflow: its native banner
    # (oneDNN, CPU features) can only be held back around the import itself.
    if "--verbose" not in sys.argv and not console.verbose_from_env():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
        console.import_tensorflow_quietly()
    app.run(main)


if __name__ == "__main__":
    run()
