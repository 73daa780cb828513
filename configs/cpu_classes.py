"""The study's classes sweep at CPU size: does relative AUC rise as the label combinations k fall?

The study's first finding (relative AUC rises as k falls), on phantom head CT
at 32 px with the study's fold semantics: n *training* images per
combination, falling as k rises like the study's (k, n) pairs scaled down
(2: 320, 4: 200, 6: 120, 10: 100), and 50 validation and 100 test images per
combination, the same test images of a combination at every k. The judge is
the demo's small DenseNet (the study's DenseNet-121 at 224 px trains at a few
images per second on 2 CPU cores), the GAN the progressive one, 1,500 steps
growing 16 -> 32 px, at full size from step 300 (medgan.study.grid.cpu_scale). `make demo` draws the
k = 6 fold from half the patients and trains it on shorter schedules. About
20 minutes a point on 2 cores of the slower processor (AMD EPYC, AVX2).

  python launch/sweep.py --config=configs/cpu_classes.py --workdir=work/cpu_classes \\
      -- --config.data.prepared_dir=work/cpu_classes/prepared
  python launch/aggregate.py work/cpu_classes --out=results/cpu_study

Colon arguments: classes, per_class (both from the sweep), model, patients,
conspicuity (of the phantoms' findings; default the calibrated
phantoms.DEFAULT_CONSPICUITY), gan_steps.
"""

from medgan import configuration
from medgan.data.phantoms import DEFAULT_CONSPICUITY
from medgan.study import grid


def get_config(arg=None):
    args = configuration.parse_arg(
        arg, classes=6, per_class=120, model="pggan", patients=grid.CPU_PATIENTS,
        conspicuity=DEFAULT_CONSPICUITY, gan_steps=grid.CPU_GAN_STEPS,
    )
    return grid.cpu_classes_config(
        classes=args.classes, per_class=args.per_class, model=args.model, conspicuity=args.conspicuity,
        gan_steps=args.gan_steps, patients=args.patients,
    )


def get_sweep():
    return [f"classes={k},per_class={n}" for k, n in grid.CPU_CLASSES_POINTS]
