"""Test environment and shared fixtures (shared helper code is in helpers.py).

The environment variables must be set before jax or TensorFlow is imported
anywhere: 8 fake CPU devices for jax (docs/ARCHITECTURE.md: the same code runs on 1 CPU,
8 fake devices, several processes, ...), and a quiet TensorFlow that stays
on the CPU.
"""

import os

os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""), "--xla_force_host_platform_device_count=8"]
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF C++: errors only
# jax's persistent compilation cache, shared by the tests and their subprocesses: the
# end-to-end tests compile the same step functions again (a resumed run, a second
# process), and on this CPU compiling costs more than running the tiny steps.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "work", "test", "jax_cache"),
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import pytest  # noqa: E402
from helpers import CodedSource  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _tensorflow_on_cpu_quietly():
    import tensorflow as tf
    import tensorflow_datasets as tfds

    tf.config.set_visible_devices([], "GPU")  # a full TF build must not take GPU memory from jax
    tfds.display_progress_bar(False)


@pytest.fixture(scope="session")
def coded_dataset(tmp_path_factory):
    """CodedSource(200 images, 3 per patient) prepared at 16 px, and a fold of it.

    Fold: top 3 combinations, 8 training, 1 validation and 1 test image each, seed 0.
    """
    from medgan.data import builders, folds

    prepared = builders.prepare(CodedSource(num_images=200), 16, tmp_path_factory.mktemp("prepared"))
    fold = folds.make_fold(
        builders.read_index(prepared.dataset_dir),
        class_names=prepared.class_names,
        dataset=prepared.name,
        num_combinations=3,
        per_combination=8,
        val_per_combination=1,
        test_per_combination=1,
        seed=0,
    )
    return prepared, fold


@pytest.fixture(scope="session")
def phantom_prepared_dir(tmp_path_factory):
    """One `config.data.prepared_dir` for every test that prepares a phantom cohort.

    Prepared datasets are keyed by source, resolution and fingerprint, so tests
    that ask for the same cohort prepare it once per session.
    """
    return tmp_path_factory.mktemp("prepared_phantoms")
