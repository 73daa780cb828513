"""Brain CT classes sweep: how does relative AUC change with the number of label combinations?

The study's first finding, on RSNA intracranial haemorrhage CT: with fewer
label combinations (and more images of each) the synthetic cohort comes closer
to the real one. Points: k in (10, 8, 6, 4, 2) most frequent label
combinations with (2500, 3120, 4170, 6250, 12500) images each, at 256 px, for
each GAN (pggan, cpd, stylegan2): 15 benchmark points.

  # the whole sweep, one point after another (needs your RSNA ICH copy)
  python launch/sweep.py --config=configs/rsna_classes.py --workdir=/runs/rsna_classes \
      -- --config.data.root=/data/rsna-ich --config.data.prepared_dir=/data/prepared
  # one point
  python -m medgan.main --config=configs/rsna_classes.py:model=pggan,classes=6,per_class=4170 \
      --config.data.root=/data/rsna-ich --config.data.prepared_dir=/data/prepared \
      --workdir=/runs/rsna_classes/model-pggan_classes-6_per_class-4170

data.root is the folder holding stage_2_train.csv. Arguments: model, classes,
per_class, resolution, source (rsna_ich, or phantom_head_ct to run without the
cohort), devices (accelerators; the global batch is the per-device batch of
medgan.study.grid times this), patients (phantom patients).
"""

from medgan.study import grid


def get_config(arg=None):
    return grid.study_config(arg, grid.BRAIN, "classes", name="rsna_classes")


def get_sweep():
    return grid.study_sweep(grid.BRAIN, "classes")
