"""Seeds of the phantoms: every random quantity from its own generator, named by a path.

Each random quantity comes from its own np.random.Generator, seeded by a
BLAKE2 hash of a name path (never Python's per-process salted hash()), so
images and cohorts are identical in every process of a multi-host job:
    anatomy       (seed)                 the patient
    finding f     (seed, f)              where and how f is drawn
    acquisition   (seed, acquisition)    pose, exposure
    noise         (seed, acquisition, R) detector noise at resolution R
"""

from __future__ import annotations

import hashlib

import numpy as np

from medgan.data.records import ImageRecord


def _stable_int(*parts: object) -> int:
    """63-bit hash of `parts`, identical in every process and on every platform."""
    text = "\x1f".join(str(part) for part in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def _rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(_stable_int(*parts))


def render_seeds(cohort_seed: int, record: ImageRecord) -> tuple[int, int]:
    """(seed, acquisition) with which an image of a cohort sampled with `cohort_seed` is rendered.

    seed comes from (cohort_seed, patient_id), so all images of a patient show
    the same anatomy and the same placement of each finding; acquisition comes
    from (cohort_seed, image_id) and varies positioning, exposure and noise.
    """
    return (
        _stable_int("patient", cohort_seed, record.patient_id),
        _stable_int("acquisition", cohort_seed, record.image_id),
    )
