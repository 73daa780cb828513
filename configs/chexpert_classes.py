"""Chest classes sweep: how does relative AUC change with the number of label combinations?

The study's first finding: with fewer label combinations (and more images of
each) the synthetic cohort comes closer to the real one. Points: k in
(20, 15, 10, 6, 4, 2) most frequent CheXpert label combinations with
(1450, 1600, 2000, 2300, 3900, 6300) images each, at 256 px, for each GAN
(pggan, cpd, stylegan2): 18 benchmark points.

  # the whole sweep, one point after another (needs your CheXpert copy)
  python launch/sweep.py --config=configs/chexpert_classes.py --workdir=/runs/chexpert_classes \
      -- --config.data.root=/data/CheXpert-v1.0-small --config.data.prepared_dir=/data/prepared
  # one point
  python -m medgan.main --config=configs/chexpert_classes.py:model=pggan,classes=6,per_class=2300 \
      --config.data.root=/data/CheXpert-v1.0-small --config.data.prepared_dir=/data/prepared \
      --workdir=/runs/chexpert_classes/model-pggan_classes-6_per_class-2300

Arguments: model, classes, per_class, resolution, source (chexpert, or
phantom_chest to run without the cohort), devices (accelerators; the global
batch is the per-device batch of medgan.study.grid times this), patients
(phantom patients).
"""

from medgan.study import grid


def get_config(arg=None):
    return grid.study_config(arg, grid.CHEST, "classes", name="chexpert_classes")


def get_sweep():
    return grid.study_sweep(grid.CHEST, "classes")
