"""Models: image classifiers (the benchmark's judge and feature extractor)."""

from medgan.models.classifiers import (
    CLASSIFIERS,
    DenseNet,
    ResNet,
    load_params,
    make_classifier,
    save_params,
)

__all__ = ["CLASSIFIERS", "DenseNet", "ResNet", "load_params", "make_classifier", "save_params"]
