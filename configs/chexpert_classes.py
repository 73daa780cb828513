"""Chest classes sweep: how does relative AUC change with the number of label combinations?

The study's first finding: relative AUC rises as the number of label
combinations k falls (fewer combinations, more training images of each).
Points: k in (20, 15, 10, 6, 4, 2) most frequent CheXpert label combinations
with (1450, 1600, 2000, 2300, 3900, 6300) *training* images each, 190
validation and 170 test images per combination (the same test images at every
k), at 32 px as in the study, for the progressive and the label-projection
GAN: 12 benchmark points (18 with StyleGAN2-ADA).

  # the whole sweep, one point after another (needs your CheXpert copy)
  python launch/sweep.py --config=configs/chexpert_classes.py --workdir=/runs/chexpert_classes \
      -- --config.data.root=/data/CheXpert-v1.0-small --config.data.prepared_dir=/data/prepared
  # one point
  python -m medgan.main --config=configs/chexpert_classes.py:model=pggan,classes=6,per_class=2300 \
      --config.data.root=/data/CheXpert-v1.0-small --config.data.prepared_dir=/data/prepared \
      --workdir=/runs/chexpert_classes/model-pggan_classes-6_per_class-2300

Colon arguments: model, classes, per_class, resolution, source (chexpert, or
phantom_chest to run without the cohort), devices (accelerators; the global
batch is the per-device batch of medgan.study.grid times this), patients
(phantom patients). Sweep argument: models (default pggan+cpd, the study's
two GANs; pggan+cpd+stylegan2 adds medgan's extension).
"""

from medgan.study import grid


def get_config(arg=None):
    return grid.study_config(arg, grid.CHEST, "classes", name="chexpert_classes")


def get_sweep(models=grid.DEFAULT_MODELS):
    return grid.study_sweep(grid.CHEST, "classes", models)
