"""Chest samples sweep: how does relative AUC change with the training images per combination?

The study's second finding: relative AUC does not simply fall as n falls; at
the smallest n it *rises*, which the study attributes to the GAN overfitting
the labels (reproducing its few training images) rather than to better
images. Points: n in (5950, 4500, 3000, 1500, 1000, 500, 400, 200) training
images per combination at k = 2 (the CheXpert combinations with >= 7,400
images), 750 validation and 750 test images per combination, at 32 px, for
the progressive and the label-projection GAN: 16 benchmark points.

  # the whole sweep, one point after another (needs your CheXpert copy)
  python launch/sweep.py --config=configs/chexpert_samples.py --workdir=/runs/chexpert_samples \
      -- --config.data.root=/data/CheXpert-v1.0-small --config.data.prepared_dir=/data/prepared
  # one point
  python -m medgan.main --config=configs/chexpert_samples.py:model=pggan,per_class=1500 \
      --config.data.root=/data/CheXpert-v1.0-small --config.data.prepared_dir=/data/prepared \
      --workdir=/runs/chexpert_samples/model-pggan_per_class-1500

Colon arguments: model, classes, per_class, resolution, source (chexpert, or
phantom_chest to run without the cohort), devices (accelerators; the global
batch is the per-device batch of medgan.study.grid times this), patients
(phantom patients). Sweep argument: models (default pggan+cpd, the study's
two GANs; pggan+cpd+stylegan2 adds medgan's extension).
"""

from medgan.study import grid


def get_config(arg=None):
    return grid.study_config(arg, grid.CHEST, "samples", name="chexpert_samples")


def get_sweep(models=grid.DEFAULT_MODELS):
    return grid.study_sweep(grid.CHEST, "samples", models)
