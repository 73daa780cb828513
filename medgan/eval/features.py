"""The feature space of the study's metrics: the pooled features of the classifier trained on real images.

The Fréchet distance that selects a GAN checkpoint, and the audits of a
synthetic cohort, measure images in the features of the judge the benchmark
trained on the real fold (a finished `train_classifier` work directory: its
results.json describes the network, its params/ holds the weights).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from medgan import fileio
from medgan.models import classifiers
from medgan.train import checkpoints
from medgan.workdir import RESULT_FILE


def load_feature_extractor(classifier_dir: str, mesh: Mesh) -> tuple[Callable, int]:
    """(features(images [B, R, R, C]) -> [B, D] jitted, D) of the network a finished run selected.

    The weights are replicated on `mesh`.
    """
    result_path = os.path.join(classifier_dir, RESULT_FILE)
    if not os.path.exists(result_path):
        raise FileNotFoundError(f"{result_path} does not exist: train the classifier on the real fold first")
    result = fileio.read_json(result_path)
    model = classifiers.classifier_from(result["model_config"])
    shape = (1, *result["input_shape"])
    abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape), train=False))
    variables = checkpoints.load_params(os.path.join(classifier_dir, result["params"]), abstract, mesh)
    features = jax.jit(lambda variables, images: model.apply(variables, images, method=model.features))
    return functools.partial(features, variables), model.feature_dim
