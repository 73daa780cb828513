"""Test environment and shared fixtures.

The environment variables must be set before jax or TensorFlow is imported
anywhere: 8 fake CPU devices for jax (DESIGN.md: the same code runs on 1 CPU,
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

import threading  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from medgan.data.records import ImageRecord, UnreadableImage  # noqa: E402

# Long-tailed label combinations of the coded test cohort (K = 4), cycled over
# images: (1,0,0,0) x5, (0,1,0,0) x3, (0,1,1,0) x2, (0,0,0,1) x1.
CODED_CYCLE = [(1, 0, 0, 0)] * 5 + [(0, 1, 0, 0)] * 3 + [(0, 1, 1, 0)] * 2 + [(0, 0, 0, 1)]


class CodedSource:
    """A Source whose image i encodes i, so image/label pairing and flips are checkable exactly.

    Image i (i < 255): every pixel of the left half is i + 1, the right half is
    0, in every channel. `decode_index` inverts it from a uint8 or a [-1, 1]
    image and tells whether it was mirrored. Image ids "img-0007", patients of
    `images_per_patient` consecutive images, labels cycling through CODED_CYCLE.
    """

    name = "coded"
    class_names = ("a", "b", "c", "d")

    def __init__(self, num_images=60, images_per_patient=3, channels=1, unreadable=(), dropped_lateral=0):
        assert num_images <= 255
        self.num_images = num_images
        self.images_per_patient = images_per_patient
        self.channels = channels
        self.unreadable = tuple(unreadable)
        self.dropped_lateral = dropped_lateral
        self._lock = threading.Lock()
        self._loads = 0

    @property
    def load_calls(self):
        return self._loads

    def index(self):
        records = [
            ImageRecord(
                image_id=f"img-{i:04d}",
                patient_id=f"pat-{i // self.images_per_patient:03d}",
                labels=CODED_CYCLE[i % len(CODED_CYCLE)],
                path=f"images/{i:04d}.png",
            )
            for i in range(self.num_images)
        ]
        return records, {"lateral": self.dropped_lateral}

    def load(self, record, resolution):
        with self._lock:
            self._loads += 1
        i = int(record.image_id.split("-")[1])
        if i in self.unreadable:
            raise UnreadableImage(f"truncated file {record.path}")
        image = np.zeros((resolution, resolution, self.channels), np.uint8)
        image[:, : resolution // 2] = i + 1
        return image, record.patient_id


def decode_index(image):
    """(index, mirrored) of a CodedSource image, uint8 or float in [-1, 1], shape [R, R, C]."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.rint((image + 1.0) * 127.5).astype(np.int64)
    index = int(image.max()) - 1
    mirrored = bool(image[0, 0, 0] == 0)
    return index, mirrored


def coded_labels(index):
    return CODED_CYCLE[index % len(CODED_CYCLE)]


@pytest.fixture(scope="session", autouse=True)
def _tensorflow_on_cpu_quietly():
    import tensorflow as tf
    import tensorflow_datasets as tfds

    tf.config.set_visible_devices([], "GPU")  # a full TF build must not take GPU memory from jax
    tfds.display_progress_bar(False)


@pytest.fixture(scope="session")
def coded_dataset(tmp_path_factory):
    """CodedSource(200 images, 3 per patient) prepared at 16 px, and a fold of it.

    Fold: top 3 combinations, 10 images each (8/1/1 per split), seed 0.
    """
    from medgan.data import builders, folds

    prepared = builders.prepare(CodedSource(num_images=200), 16, tmp_path_factory.mktemp("prepared"))
    fold = folds.make_fold(
        builders.read_index(prepared.dataset_dir),
        class_names=prepared.class_names,
        dataset=prepared.name,
        num_combinations=3,
        per_combination=10,
        seed=0,
    )
    return prepared, fold
