"""Chest samples-per-class sweep: how many images per label combination does a GAN need?

The study's second finding: relative AUC falls as the images per combination
fall, and GANs overfit at the smallest counts (StyleGAN2's ADA is our answer
to that). Points: n in (5950, 4500, 3000, 1500, 1000, 500, 400, 200) images
per combination at k = 2 CheXpert label combinations (the only k with 5950
images per combination), 256 px, for each GAN (pggan, cpd, stylegan2):
24 benchmark points.

  # the whole sweep, one point after another (needs your CheXpert copy)
  python launch/sweep.py --config=configs/chexpert_samples.py --workdir=/runs/chexpert_samples \
      -- --config.data.root=/data/CheXpert-v1.0-small --config.data.prepared_dir=/data/prepared
  # one point
  python -m medgan.main --config=configs/chexpert_samples.py:model=pggan,per_class=1500 \
      --config.data.root=/data/CheXpert-v1.0-small --config.data.prepared_dir=/data/prepared \
      --workdir=/runs/chexpert_samples/model-pggan_per_class-1500

Arguments: model, per_class, classes, resolution, source (chexpert, or
phantom_chest to run without the cohort), devices (accelerators; the global
batch is the per-device batch of medgan.study.grid times this), patients
(phantom patients).
"""

from medgan.study import grid


def get_config(arg=None):
    return grid.study_config(arg, grid.CHEST, "samples", name="chexpert_samples")


def get_sweep():
    return grid.study_sweep(grid.CHEST, "samples")
