"""Brain CT samples sweep: how does relative AUC change with the training images per combination?

The study's second finding, on RSNA intracranial haemorrhage CT: at the
smallest n relative AUC *rises*, which the study attributes to the GAN
overfitting the labels rather than to better images. Points: n in (5400,
4500, 3000, 1500, 1000, 500, 300, 100) training images per combination at
k = 6 label combinations, 500 validation and 500 test images per
combination, at 32 px, for the progressive and the label-projection GAN:
16 benchmark points.

  # the whole sweep, one point after another (needs your RSNA ICH copy)
  python launch/sweep.py --config=configs/rsna_samples.py --workdir=/runs/rsna_samples \
      -- --config.data.root=/data/rsna-ich --config.data.prepared_dir=/data/prepared
  # one point
  python -m medgan.main --config=configs/rsna_samples.py:model=pggan,per_class=1500 \
      --config.data.root=/data/rsna-ich --config.data.prepared_dir=/data/prepared \
      --workdir=/runs/rsna_samples/model-pggan_per_class-1500

data.root is the folder holding stage_2_train.csv.
Colon arguments: model, classes, per_class, resolution, source (rsna_ich, or
phantom_head_ct to run without the cohort), devices (accelerators; the global
batch is the per-device batch of medgan.study.grid times this), patients
(phantom patients). Sweep argument: models (default pggan+cpd, the study's
two GANs; pggan+cpd+stylegan2 adds medgan's extension).
"""

from medgan.study import grid


def get_config(arg=None):
    return grid.study_config(arg, grid.BRAIN, "samples", name="rsna_samples")


def get_sweep(models=grid.DEFAULT_MODELS):
    return grid.study_sweep(grid.BRAIN, "samples", models)
