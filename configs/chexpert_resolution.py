"""Chest resolution sweep: what does image size cost a synthetic cohort?

Points: 32, 64, 128, 256 and 512 px at k = 6 CheXpert label combinations with
2300 images each, for each GAN (pggan, cpd, stylegan2): 15 benchmark points.
Batch sizes and training lengths per resolution are those of medgan.study.grid
(one 16 GB accelerator per 8 images at 512 px).

  # the whole sweep, one point after another (needs your CheXpert copy)
  python launch/sweep.py --config=configs/chexpert_resolution.py --workdir=/runs/chexpert_resolution \
      -- --config.data.root=/data/CheXpert-v1.0-small --config.data.prepared_dir=/data/prepared
  # one point
  python -m medgan.main --config=configs/chexpert_resolution.py:model=pggan,resolution=128 \
      --config.data.root=/data/CheXpert-v1.0-small --config.data.prepared_dir=/data/prepared \
      --workdir=/runs/chexpert_resolution/model-pggan_resolution-128

Arguments: model, resolution, classes, per_class, source (chexpert, or
phantom_chest to run without the cohort), devices (accelerators; the global
batch is the per-device batch of medgan.study.grid times this), patients
(phantom patients).
"""

from medgan.study import grid


def get_config(arg=None):
    return grid.study_config(arg, grid.CHEST, "resolution", name="chexpert_resolution")


def get_sweep():
    return grid.study_sweep(grid.CHEST, "resolution")
