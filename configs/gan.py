"""Train a class-conditional GAN on one fold (job "train_gan").

  python -m medgan.main \
      --config=configs/gan.py:model=stylegan2,source=rsna_ich,resolution=256,classes=6,per_class=4170 \
      --config.data.root=/data/rsna --config.data.prepared_dir=/data/prepared \
      --config.gan.fid_classifier=work/real_classifier --workdir=work/gan

`model` is pggan (the study's progressive GAN: labels concatenated to the
latent, AC-GAN head, WGAN-GP), cpd (the study's non-progressive GAN:
conditional pixel norm in G, label-projection resnet D, WGAN-GP) or stylegan2
(projection conditioning, non-saturating loss with lazy R1, ADA). Point
`gan.fid_classifier` at the train_classifier run on the same real fold (its
`fold.manifest` too, so both use one fold): its features score the EMA
generator by Fréchet distance, and the best checkpoint by FD is exported.
`get_sweep()` lists the three models on the brain classes point with 6
combinations at 256 px.
"""

from medgan import configuration

# Per-device batch that fits a 16 GB accelerator (see BENCHMARKS.md, GAN memory).
BATCH_BY_RESOLUTION = {32: 64, 64: 64, 128: 32, 256: 32, 512: 16}


def get_config(arg=None):
    args = configuration.parse_arg(
        arg, model="stylegan2", source="phantom_head_ct", resolution=256, classes=6, per_class=4170,
        patients=3000, steps=20_000,
    )
    config = configuration.base_config("train_gan")
    config.data.source = args.source
    config.data.resolution = args.resolution
    config.data.phantom_patients = args.patients  # phantom sources only
    config.fold.num_combinations = args.classes
    config.fold.per_combination = args.per_class
    gan = config.gan
    gan.model = args.model
    gan.num_steps = args.steps
    gan.global_batch_size = BATCH_BY_RESOLUTION.get(args.resolution, 16)
    if args.model == "stylegan2":
        gan.g_learning_rate = gan.d_learning_rate = 2.5e-3  # StyleGAN2-ADA's setting
        gan.r1_gamma = 0.0002 * args.resolution**2 / gan.global_batch_size  # ADA's heuristic gamma
    return config


def get_sweep():
    return [f"model={m},source=rsna_ich,resolution=256,classes=6,per_class=4170" for m in
            configuration.GAN_MODELS]
