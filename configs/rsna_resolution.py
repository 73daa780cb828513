"""Brain CT resolution sweep: what does image size cost a synthetic cohort?

Points: 32, 64, 128, 256 and 512 px on the study's unbalanced fold: every
RSNA ICH label combination with more than 110 images, all of its training
patients' images, and 4,000 validation and 4,000 test images in all,
stratified by combination; for the progressive and the label-projection GAN:
10 benchmark points. Batch sizes and training lengths per resolution are
those of medgan.study.grid.

  # the whole sweep, one point after another (needs your RSNA ICH copy)
  python launch/sweep.py --config=configs/rsna_resolution.py --workdir=/runs/rsna_resolution \
      -- --config.data.root=/data/rsna-ich --config.data.prepared_dir=/data/prepared
  # one point
  python -m medgan.main --config=configs/rsna_resolution.py:model=pggan,resolution=128 \
      --config.data.root=/data/rsna-ich --config.data.prepared_dir=/data/prepared \
      --workdir=/runs/rsna_resolution/model-pggan_resolution-128

data.root is the folder holding stage_2_train.csv.
Colon arguments: model, classes, per_class, resolution, source (rsna_ich, or
phantom_head_ct to run without the cohort), devices (accelerators; the global
batch is the per-device batch of medgan.study.grid times this), patients
(phantom patients). Sweep argument: models (default pggan+cpd, the study's
two GANs; pggan+cpd+stylegan2 adds medgan's extension).
"""

from medgan.study import grid


def get_config(arg=None):
    return grid.study_config(arg, grid.BRAIN, "resolution", name="rsna_resolution")


def get_sweep(models=grid.DEFAULT_MODELS):
    return grid.study_sweep(grid.BRAIN, "resolution", models)
