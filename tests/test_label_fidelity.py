"""GAN-test: a fixed judge's AUC on generated images against their labels, exact on hand-made cases."""

import jax.numpy as jnp
import numpy as np
import pytest

from medgan.eval import label_fidelity


def test_gan_test_of_a_hand_case():
    labels = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
    scores = np.array([[0.9, 0.2], [0.4, 0.8], [0.6, 0.1], [0.1, 0.7]])
    report = label_fidelity.gan_test(labels, scores, ["a", "b"])
    # a: positives 0.9, 0.4 against negatives 0.6, 0.1: 3 of 4 pairs ordered; b: both positives above both negatives.
    assert report["classes"]["a"]["auc"] == pytest.approx(0.75)
    assert report["classes"]["b"]["auc"] == pytest.approx(1.0)
    summary = label_fidelity.summary(report)
    assert summary["mean_auc"] == pytest.approx(0.875) and summary["per_class_auc"] == pytest.approx(
        {"a": 0.75, "b": 1.0})


def test_judge_scores_keep_the_order_and_drop_padding_rows():
    def logits(images):  # class 0: the image's mean; class 1: its negative
        mean = images.mean(axis=(1, 2, 3))
        return jnp.stack([mean, -mean], axis=1)

    images = np.linspace(-1, 1, 6, dtype=np.float32)[:, None, None, None] * np.ones((6, 2, 2, 1), np.float32)
    batches = [(jnp.asarray(images[:4]), np.array([True, True, True, True])),
               (jnp.asarray(np.concatenate([images[4:], np.zeros((2, 2, 2, 1), np.float32)])),
                np.array([True, True, False, False]))]
    scores = label_fidelity.judge_scores(logits, batches)
    means = images.mean(axis=(1, 2, 3))
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-np.stack([means, -means], 1))), rtol=1e-6)
    labels = (means > 0).astype(int)[:, None] * np.array([[1, 0]]) + (means <= 0).astype(int)[:, None] * np.array(
        [[0, 1]])
    assert label_fidelity.gan_test(labels, scores, ["bright", "dark"])["mean_auc"] == pytest.approx(1.0)
