"""The study's resolution sweep at CPU size: relative AUC at 32, 64 and 128 px, and per class.

The study trained its GANs at 32 to 512 px on the unbalanced fold of every
CheXpert combination with more than 256 images and read the per-class
relative AUC: most classes hold up as resolution rises, Support Devices falls.
Here on phantom chest X-rays (3,000 patients, the combinations with more than
100 images, 300 validation and 900 test images in all) at 32, 64 and 128 px,
with the classes sweep's judge and progressive GAN grown from 16 px to full
size by step 300 of 1,500 at every resolution (medgan.study.grid.
cpu_resolution_config). Each point's results.json holds the per-class AUCs
(real.per_class_auc, synthetic.per_class_auc).

  python launch/sweep.py --config=configs/cpu_resolution.py --workdir=work/cpu_resolution \\
      -- --config.data.prepared_dir=work/cpu_prepared
  python launch/aggregate.py work/cpu_resolution --out=results/cpu_resolution

Colon arguments: resolution (from the sweep), model, patients, gan_steps.
"""

from medgan import configuration
from medgan.study import grid


def get_config(arg=None):
    args = configuration.parse_arg(
        arg, resolution=32, model="pggan", patients=grid.CPU_RESOLUTION_PATIENTS, gan_steps=grid.CPU_GAN_STEPS,
    )
    return grid.cpu_resolution_config(resolution=args.resolution, model=args.model, gan_steps=args.gan_steps,
                                      patients=args.patients)


def get_sweep():
    return [f"resolution={r}" for r in grid.CPU_RESOLUTIONS]
