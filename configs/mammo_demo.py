"""The mammography study (contextual lesion GAN, GAN-augmented cancer classification) at CPU size.

  python -m medgan.main --config=configs/mammo_demo.py:stage=patches --workdir=work/mammo/patches
  python -m medgan.main --config=configs/mammo_demo.py:stage=gan,lesion=mass --workdir=work/mammo/gan_mass

Phantom mammograms (512 px tall) written as a CBIS-DDSM release, 64 px
patches (the study: 256 px of OPTIMAM mammograms), and a contextual GAN a
quarter of the study's width that grows from 32 to 64 px. Every stage reads
the patches of <root>/patches (set `patches=` to share another).
"""

import os

from medgan import configuration

STAGES = {"patches": "mammo_patches", "gan": "train_contextual"}


def get_config(arg=None):
    args = configuration.parse_arg(arg, stage="patches", lesion="mass", patches="work/mammo/patches", seed=0,
                                   patients=60, steps=1200)
    if args.stage not in STAGES:
        raise configuration.ConfigError(f"stage={args.stage!r}: one of {sorted(STAGES)}")
    config = configuration.base_config(STAGES[args.stage])
    config.seed = args.seed
    config.mammo.phantom_patients = args.patients
    config.mammo.patches_dir = os.path.abspath(args.patches) if args.stage != "patches" else ""
    if args.stage == "gan":
        c = config.contextual
        c.lesion = args.lesion
        c.base_filters, c.max_filters, c.centre_filters = 4, 128, 128
        c.attention_resolution, c.border, c.d_filter_factor = 16, 3, 4
        c.global_batch_size = 16
        c.num_steps = args.steps
        c.grow_steps, c.fade_steps = args.steps // 4, args.steps // 4
        c.checkpoint_every = c.sample_every = max(1, args.steps // 4)
    return config


def get_sweep():
    return ["stage=patches", "stage=gan,lesion=mass", "stage=gan,lesion=calcification", "stage=gan,lesion=removal"]
