"""The study's samples sweep at CPU size: what does relative AUC do as the training images per combination fall?

The study's second finding (Figure 1b): relative AUC does not simply fall
with n; at the smallest n it rises, which the study reads as the GAN
overfitting the labels (reproducing its few training images) rather than
drawing better images. Here on phantom head CT at 32 px, k = 2 combinations
(the study's CheXpert k), n in (50, 100, 200, 400, 800) training images per
combination, 50 validation and 100 test images per combination (the same test
images at every n), on the classes sweep's networks and schedules
(medgan.study.grid.cpu_scale, size "demo"). Each point's audit carries the
diagnostics that test the study's reading: nearest-neighbour distances of the
synthetic images to the training images against those of unseen real ones
(memorisation), the occlusion maps' share inside the phantom's true finding
(what each judge looks at), and KID and precision/recall (fidelity).

  python launch/sweep.py --config=configs/cpu_samples.py --workdir=work/cpu_samples \\
      -- --config.data.prepared_dir=work/cpu_prepared
  python launch/aggregate.py work/cpu_samples --out=results/cpu_samples

Colon arguments: per_class (from the sweep), classes, model, patients,
conspicuity (of the phantoms' findings), gan_steps.
"""

from medgan import configuration
from medgan.data.phantoms import DEFAULT_CONSPICUITY
from medgan.study import grid


def get_config(arg=None):
    args = configuration.parse_arg(
        arg, classes=grid.CPU_SAMPLES_CLASSES, per_class=200, model="pggan", patients=grid.CPU_PATIENTS,
        conspicuity=DEFAULT_CONSPICUITY, gan_steps=grid.CPU_GAN_STEPS,
    )
    return grid.cpu_classes_config(
        classes=args.classes, per_class=args.per_class, model=args.model, conspicuity=args.conspicuity,
        gan_steps=args.gan_steps, patients=args.patients, study="cpu_samples",
    )


def get_sweep():
    return [f"per_class={n}" for n in grid.CPU_SAMPLES_POINTS]
