"""Brain CT samples-per-class sweep: how many images per label combination does a GAN need?

The study's second finding, on RSNA intracranial haemorrhage CT: relative AUC
falls as the images per combination fall, and GANs overfit at the smallest
counts (StyleGAN2's ADA is our answer to that). Points: n in (5400, 4500,
3000, 1500, 1000, 500, 300, 100) images per combination at k = 4 label
combinations (6250 images each in the classes sweep), 256 px, for each GAN
(pggan, cpd, stylegan2): 24 benchmark points.

  # the whole sweep, one point after another (needs your RSNA ICH copy)
  python launch/sweep.py --config=configs/rsna_samples.py --workdir=/runs/rsna_samples \
      -- --config.data.root=/data/rsna-ich --config.data.prepared_dir=/data/prepared
  # one point
  python -m medgan.main --config=configs/rsna_samples.py:model=pggan,per_class=1500 \
      --config.data.root=/data/rsna-ich --config.data.prepared_dir=/data/prepared \
      --workdir=/runs/rsna_samples/model-pggan_per_class-1500

data.root is the folder holding stage_2_train.csv. Arguments: model,
per_class, classes, resolution, source (rsna_ich, or phantom_head_ct to run
without the cohort), devices (accelerators; the global batch is the per-device
batch of medgan.study.grid times this), patients (phantom patients).
"""

from medgan.study import grid


def get_config(arg=None):
    return grid.study_config(arg, grid.BRAIN, "samples", name="rsna_samples")


def get_sweep():
    return grid.study_sweep(grid.BRAIN, "samples")
