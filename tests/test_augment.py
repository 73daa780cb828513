"""GAN-augmented classifier training: the decaying synthetic share and the balanced, resumable batch stream."""

import jax
import numpy as np
import pytest

from medgan import sharding
from medgan.train import augment


def test_the_share_decays_by_ten_percent_every_5000_samples():
    assert augment.synthetic_share(0, 0.5) == 0.5
    assert augment.synthetic_share(4999, 0.5) == 0.5
    assert augment.synthetic_share(5000, 0.5) == pytest.approx(0.45)
    assert augment.synthetic_share(25_000, 1.0) == pytest.approx(0.9**5)  # 0.59
    assert augment.synthetic_share(250_000, 1.0) == pytest.approx(0.9**50)  # 0.005
    assert augment.synthetic_share(10**6, 0.0) == 0.0
    assert augment.samples_to_steps(5000, 32) == 157 and augment.samples_to_steps(1, 32) == 1
    with pytest.raises(ValueError, match="p0 1.5"):
        augment.synthetic_share(0, 1.5)


def _pools(value, n=50):
    return {"positive": np.full((n, 4, 4, 1), value + 0.5, np.float32), "negative": np.full((n, 4, 4, 1), value,
                                                                                        np.float32)}


def test_batches_are_balanced_follow_the_share_and_resume_exactly():
    real, synthetic = _pools(-0.5), _pools(0.25)  # real pixels -0.5 / 0.0, synthetic 0.25 / 0.75
    mesh = sharding.make_mesh(jax.devices()[:1])
    stream = augment.batches(real, synthetic, p0=0.8, decay=0.5, decay_every=2560, global_batch_size=256, mesh=mesh,
                             seed=3, start_step=0)
    drawn = [next(stream) for _ in range(12)]
    for step, batch in enumerate(drawn):
        image, labels = np.asarray(batch["image"])[:, 0, 0, 0], np.asarray(batch["labels"])[:, 0]
        assert np.all((image >= 0.25) == np.isin(image, (0.25, 0.75)))  # each pixel value says real or synthetic
        is_synthetic, positive = image >= 0.25, np.isin(image, (0.0, 0.75))
        np.testing.assert_array_equal(labels, positive.astype(np.float32))
        share = 0.8 * 0.5 ** (step * 256 // 2560)  # 0.8 for steps 0-9, 0.4 from step 10
        assert abs(is_synthetic.mean() - share) < 0.1 and abs(positive.mean() - 0.5) < 0.1
    resumed = next(augment.batches(real, synthetic, p0=0.8, decay=0.5, decay_every=2560, global_batch_size=256,
                                   mesh=mesh, seed=3, start_step=7))
    np.testing.assert_array_equal(np.asarray(resumed["image"]), np.asarray(drawn[7]["image"]))
    baseline = next(augment.batches(real, {k: v[:0] for k, v in synthetic.items()}, p0=0.0, decay=0.9,
                                    decay_every=5000, global_batch_size=64, mesh=mesh, seed=0, start_step=0))
    assert np.all(np.asarray(baseline["image"]) <= 0.0)  # p0 = 0: real patches only, no synthetic pool needed
    with pytest.raises(ValueError, match="no synthetic positive patches"):
        next(augment.batches(real, {k: v[:0] for k, v in synthetic.items()}, p0=0.5, decay=0.9, decay_every=5000,
                             global_batch_size=64, mesh=mesh, seed=0, start_step=0))
