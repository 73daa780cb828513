"""The mammography study (contextual lesion GAN, GAN-augmented cancer classification) at CPU size.

  python -m medgan.main --config=configs/mammo_demo.py --workdir=work/mammo

runs the whole study (job mammo_study): phantom mammograms 512 px tall
written as a CBIS-DDSM release, 64 px patches (the study: 256 px of OPTIMAM
mammograms), contextual GANs for mass, calcification and removal at a
quarter of the study's width growing from 32 to 64 px (600 steps each, the
removal model 2,400: `longer=removal=4`; D without spectral normalisation,
DRAGAN its only constraint: at this width and length SN with DRAGAN held D
near chance and every GAN drew input-independent patterns, see RESULTS.md),
and a small ResNet
(resnet_tiny) trained on 16,000 samples per initial synthetic share p0 in
{0, 50%, 100%}. Sample counts scale down with the run (the share decays
every 800 samples, validation every 1,600), and the learning rate is 1e-3
rather than the study's 1e-5: a randomly initialised network does not learn
in 16,000 samples at 1e-5. Lesions are drawn at conspicuity 0.5, where the
baseline classifier's test AUC is about 0.80 (the paper's: 0.829). `stage=` runs one stage alone, e.g.

  python -m medgan.main --config=configs/mammo_demo.py:stage=gan,lesion=mass,patches=work/mammo/patches/patches \
      --workdir=work/mammo_mass
"""

import os

from medgan import configuration

STAGES = {"study": "mammo_study", "patches": "mammo_patches", "gan": "train_contextual",
          "synthesize": "synthesize_lesions", "augment": "augment"}


def get_config(arg=None):
    args = configuration.parse_arg(arg, stage="study", lesion="mass", patches="", seed=0, patients=100,
                                   conspicuity=0.5, gan_steps=600, samples=16000, p0s="0,0.5,1", p0=0.0,
                                   gans="", synthetic="", baseline="", longer="removal=4")
    if args.stage not in STAGES:
        raise configuration.ConfigError(f"stage={args.stage!r}: one of {sorted(STAGES)}")
    config = configuration.base_config(STAGES[args.stage])
    config.seed = args.seed
    m = config.mammo
    m.phantom_patients, m.phantom_conspicuity = args.patients, args.conspicuity
    m.height, m.patch, m.per_lesion, m.per_lesion_eval, m.normals_per_image = 512, 64, 8, 8, 16
    m.patches_dir = os.path.abspath(args.patches) if args.patches else ""
    if "contextual" in config:
        c = config.contextual
        c.lesion = args.lesion
        c.base_filters, c.max_filters, c.centre_filters = 4, 128, 128
        c.attention_resolution, c.border, c.d_filter_factor = 16, 3, 4
        c.global_batch_size = 16
        c.spectral_norm = False
        c.num_steps = args.gan_steps
        c.grow_steps, c.fade_steps = args.gan_steps // 4, args.gan_steps // 4
        c.checkpoint_every = c.sample_every = max(1, args.gan_steps // 4)
    if "lesion_synthesis" in config:
        config.lesion_synthesis.gans = args.gans.replace("+", ",")
        config.lesion_synthesis.per_model = 400
    if "augment" in config:
        a = config.augment
        a.p0, a.synthetic, a.baseline = args.p0, args.synthetic, args.baseline
        a.model, a.learning_rate, a.global_batch_size = "resnet_tiny", 1e-3, 32
        a.total_samples, a.decay_every, a.validate_every = args.samples, args.samples // 20, args.samples // 10
    if "mammo_study" in config:
        config.mammo_study.p0s = args.p0s
        config.mammo_study.longer = args.longer.replace("+", ",")
    return config


def get_sweep():
    return ["", "stage=patches", "stage=gan,lesion=removal,patches=work/mammo/patches/patches"]
