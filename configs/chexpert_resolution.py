"""Chest resolution sweep: what does image size cost a synthetic cohort?

Points: 32, 64, 128, 256 and 512 px on the study's unbalanced fold: every
CheXpert label combination with more than 256 images, all of its training
patients' images, and 4,000 validation and 4,000 test images in all,
stratified by combination; for the progressive and the label-projection GAN:
10 benchmark points. Batch sizes and training lengths per resolution are
those of medgan.study.grid.

  # the whole sweep, one point after another (needs your CheXpert copy)
  python launch/sweep.py --config=configs/chexpert_resolution.py --workdir=/runs/chexpert_resolution \
      -- --config.data.root=/data/CheXpert-v1.0-small --config.data.prepared_dir=/data/prepared
  # one point
  python -m medgan.main --config=configs/chexpert_resolution.py:model=pggan,resolution=128 \
      --config.data.root=/data/CheXpert-v1.0-small --config.data.prepared_dir=/data/prepared \
      --workdir=/runs/chexpert_resolution/model-pggan_resolution-128

Colon arguments: model, classes, per_class, resolution, source (chexpert, or
phantom_chest to run without the cohort), devices (accelerators; the global
batch is the per-device batch of medgan.study.grid times this), patients
(phantom patients). Sweep argument: models (default pggan+cpd, the study's
two GANs; pggan+cpd+stylegan2 adds medgan's extension).
"""

from medgan.study import grid


def get_config(arg=None):
    return grid.study_config(arg, grid.CHEST, "resolution", name="chexpert_resolution")


def get_sweep(models=grid.DEFAULT_MODELS):
    return grid.study_sweep(grid.CHEST, "resolution", models)
