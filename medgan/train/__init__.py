"""Training machinery shared by GANs and classifiers."""
