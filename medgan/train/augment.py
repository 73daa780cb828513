"""GAN-augmented training of the cancer classifier: the decaying synthetic share and its batch stream.

The mammography study (Wu et al. 2020, Sec. 3, "Patch Classifier Training")
trained a ResNet-50 on cancer versus no cancer, positives and negatives drawn
with equal probability, with an initial share p0 of synthetic patches
"decayed by 10% every 5,000 training samples", to mimic fine-tuning on ever
more real data. "By 10%" is read as relative: the share is multiplied by
0.9 (`decay`) after every 5,000 samples (`decay_every`), so p0 = 1 is 0.59
after 25,000 samples and 0.005 after 250,000. The study trained at batch 1;
the share, the decay and validation are counted in samples, so any batch
that fills the devices keeps their meaning: step s covers samples
[s B, (s + 1) B) and draws with the share at s B.

Labels: 1 = cancer (a malignant lesion patch, real or synthetic), 0 = no
cancer (normal tissue and benign lesions, real; removal outputs, synthetic).
"""

from __future__ import annotations

import math

import numpy as np
from jax.sharding import Mesh

from medgan import sharding


def synthetic_share(samples: int, p0: float, decay: float = 0.9, decay_every: int = 5000) -> float:
    """The share of synthetic patches after `samples` samples: p0 * decay ** floor(samples / decay_every)."""
    if not 0.0 <= p0 <= 1.0 or not 0.0 < decay <= 1.0 or decay_every < 1:
        raise ValueError(f"p0 {p0} in [0, 1], decay {decay} in (0, 1], decay_every {decay_every} >= 1")
    return p0 * decay ** (samples // decay_every)


def samples_to_steps(samples: int, global_batch_size: int) -> int:
    """Steps that cover `samples` samples (at least one)."""
    return max(1, math.ceil(samples / global_batch_size))


def batches(real: dict[str, np.ndarray], synthetic: dict[str, np.ndarray], *, p0: float, decay: float,
            decay_every: int, global_batch_size: int, mesh: Mesh, seed: int, start_step: int):
    """The loop's stream from `start_step`: {"image" [B, R, R, 1], "labels" [B, 1]} global batches.

    real / synthetic: {"positive": images [N, R, R, 1], "negative": [M, R, R, 1]}
    float32 in [-1, 1]. Each example is a positive with probability 1/2 and
    synthetic with the step's share; the draws of step s come from a
    generator seeded by (seed, s), so a resumed run reads what an
    uninterrupted one did. Every process draws the same global batch.
    """
    rows = sharding.batch_sharding(mesh)
    for name, pool in (("real", real), ("synthetic", synthetic)):
        for key in ("positive", "negative"):
            if len(pool[key]) == 0 and (name == "real" or p0 > 0):
                raise ValueError(f"no {name} {key} patches to draw from")
    step = start_step
    while True:
        rng = np.random.default_rng([seed, step])
        share = synthetic_share(step * global_batch_size, p0, decay, decay_every)
        positive = rng.random(global_batch_size) < 0.5
        from_synthetic = rng.random(global_batch_size) < share
        images = np.empty((global_batch_size, *real["positive"].shape[1:]), np.float32)
        for is_positive in (True, False):
            for is_synthetic in (True, False):
                chosen = (positive == is_positive) & (from_synthetic == is_synthetic)
                if chosen.any():
                    pool = (synthetic if is_synthetic else real)["positive" if is_positive else "negative"]
                    images[chosen] = pool[rng.integers(len(pool), size=int(chosen.sum()))]
        labels = positive.astype(np.float32)[:, None]
        yield {"image": sharding.global_from_host(images, rows), "labels": sharding.global_from_host(labels, rows)}
        step += 1


def score_arrays(evaluate, state, images: np.ndarray, mesh: Mesh, global_batch_size: int) -> np.ndarray:
    """Scores [N] of images [N, R, R, 1] by `classifier_step.eval_step` (jitted), in their order, on every process."""
    labels = sharding.global_from_host(np.zeros((global_batch_size, 1), np.float32), sharding.batch_sharding(mesh))
    return sharding.host_map(lambda batch: evaluate(state, {"image": batch, "labels": labels})["scores"],
                             images.astype(np.float32), mesh, global_batch_size)[:, 0]
