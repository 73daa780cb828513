"""Brain CT resolution sweep: what does image size cost a synthetic cohort?

Points: 32, 64, 128, 256 and 512 px at k = 6 RSNA intracranial haemorrhage
label combinations with 4170 images each, for each GAN (pggan, cpd,
stylegan2): 15 benchmark points. Batch sizes and training lengths per
resolution are those of medgan.study.grid (one 16 GB accelerator per 8 images at
512 px).

  # the whole sweep, one point after another (needs your RSNA ICH copy)
  python launch/sweep.py --config=configs/rsna_resolution.py --workdir=/runs/rsna_resolution \
      -- --config.data.root=/data/rsna-ich --config.data.prepared_dir=/data/prepared
  # one point
  python -m medgan.main --config=configs/rsna_resolution.py:model=pggan,resolution=128 \
      --config.data.root=/data/rsna-ich --config.data.prepared_dir=/data/prepared \
      --workdir=/runs/rsna_resolution/model-pggan_resolution-128

data.root is the folder holding stage_2_train.csv. Arguments: model,
resolution, classes, per_class, source (rsna_ich, or phantom_head_ct to run
without the cohort), devices (accelerators; the global batch is the per-device
batch of medgan.study.grid times this), patients (phantom patients).
"""

from medgan.study import grid


def get_config(arg=None):
    return grid.study_config(arg, grid.BRAIN, "resolution", name="rsna_resolution")


def get_sweep():
    return grid.study_sweep(grid.BRAIN, "resolution")
