"""Models: the benchmark's classifiers (judge and feature extractor) and the three GANs.

`classifiers` (DenseNet / ResNet, CLASSIFIERS registry), `gans` (GanSpec and
the GAN_MODELS registry over `pggan`, `cpd`, `stylegan2`), built from the
blocks of `layers`. Models know nothing of devices or training.
"""
