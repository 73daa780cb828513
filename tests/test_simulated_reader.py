"""The simulated reader: its answers from probabilities, and the two-sample test on samples that differ or do not."""

import numpy as np
import pytest

from medgan.eval import auc
from medgan.study import simulated_reader


def test_answers_and_confidences_follow_the_probability_in_five_steps():
    p = np.array([0.0, 0.1, 0.49, 0.5, 0.62, 0.95, 1.0])
    answers, confidences = simulated_reader.answers_of(p)
    assert list(answers) == ["real"] * 3 + ["synthetic"] * 4
    assert list(confidences) == [5, 5, 1, 1, 2, 5, 5]
    with pytest.raises(ValueError, match="probabilities in"):
        simulated_reader.answers_of(np.array([0.5, 1.2]))


def _tissue(rng, n, size=16):
    """Smooth random images [n, size, size, 1] in [-1, 1]."""
    noise = rng.normal(size=(n, size // 4, size // 4))
    return np.tanh(0.5 * np.kron(noise, np.ones((4, 4))))[..., None].astype(np.float32)


def _scores(real, synthetic, queries, tmp_path):
    return simulated_reader.two_sample_scores(real, synthetic, queries, model="resnet_tiny", steps=40,
                                              global_batch_size=16, learning_rate=3e-3, seed=0,
                                              workdir=str(tmp_path))


def test_the_two_sample_test_separates_samples_that_differ_and_not_samples_that_do_not(tmp_path):
    rng = np.random.default_rng(0)

    def marked(n):  # the "GAN" draws a bright square in one corner of every image
        images = _tissue(rng, n)
        images[:, 2:6, 2:6] = 0.9
        return images

    truth = np.r_[np.zeros(100), np.ones(100)]
    (differ,) = _scores(_tissue(rng, 300), marked(300), [np.concatenate([_tissue(rng, 100), marked(100)])],
                        tmp_path / "differ")
    assert auc.roc_auc(truth, differ) > 0.95
    (same,) = _scores(_tissue(rng, 300), _tissue(rng, 300), [_tissue(rng, 200)], tmp_path / "same")
    assert 0.35 < auc.roc_auc(truth, same) < 0.65  # the null: ~0.03 standard error at 100 + 100
    with pytest.raises(ValueError, match="needs both samples"):
        _scores(_tissue(rng, 4), _tissue(rng, 0), [], tmp_path / "empty")
