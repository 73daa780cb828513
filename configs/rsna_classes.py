"""Brain CT classes sweep: how does relative AUC change with the number of label combinations?

The study's first finding, on RSNA intracranial haemorrhage CT: relative AUC
rises as the number of label combinations k falls. Points: k in (10, 8, 6, 4,
2) most frequent label combinations with (2500, 3120, 4170, 6250, 12500)
*training* images each, 300 validation and 200 test images per combination
(the same test images at every k), at 32 px as in the study, for the
progressive and the label-projection GAN: 10 benchmark points.

  # the whole sweep, one point after another (needs your RSNA ICH copy)
  python launch/sweep.py --config=configs/rsna_classes.py --workdir=/runs/rsna_classes \
      -- --config.data.root=/data/rsna-ich --config.data.prepared_dir=/data/prepared
  # one point
  python -m medgan.main --config=configs/rsna_classes.py:model=pggan,classes=6,per_class=4170 \
      --config.data.root=/data/rsna-ich --config.data.prepared_dir=/data/prepared \
      --workdir=/runs/rsna_classes/model-pggan_classes-6_per_class-4170

data.root is the folder holding stage_2_train.csv.
Colon arguments: model, classes, per_class, resolution, source (rsna_ich, or
phantom_head_ct to run without the cohort), devices (accelerators; the global
batch is the per-device batch of medgan.study.grid times this), patients
(phantom patients). Sweep argument: models (default pggan+cpd, the study's
two GANs; pggan+cpd+stylegan2 adds medgan's extension).
"""

from medgan.study import grid


def get_config(arg=None):
    return grid.study_config(arg, grid.BRAIN, "classes", name="rsna_classes")


def get_sweep(models=grid.DEFAULT_MODELS):
    return grid.study_sweep(grid.BRAIN, "classes", models)
