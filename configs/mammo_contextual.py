"""The mammography study at its own scale: contextual lesion GANs and GAN-augmented cancer classification.

  python -m medgan.main --config=configs/mammo_contextual.py:root=/data/cbis-ddsm --workdir=/runs/mammo
  python launch/sweep.py --config=configs/mammo_contextual.py --workdir=/runs/mammo_sweep \
      -- --config.mammo.root=/data/cbis-ddsm

Wu et al. 2020 on OPTIMAM; medgan reads CBIS-DDSM as users download it
(`root`: the NBIA Data Retriever's download folder, a manifest folder, or
Kaggle's JPEG re-release; README "Downloading CBIS-DDSM"; "" writes phantom
mammograms as a download instead). Mammograms are loaded 2,048 px tall (about 125 um per
pixel for CBIS-DDSM's 3,000 x 5,000 scans, a choice: the paper does not say
at what resolution it cut its 256 px patches), 256 px patches, the paper's
GANs (16 filters doubling, 4 x 4 x 2,048 centre, attention at 32 px, 8x
filters in D, 128 -> 256 px with a 3,000-iteration fade, two G updates per D
update for masses), 5,000 synthetic patches per GAN, and ResNet-50 trained
for 500,000 samples with Adam 1e-5 at each initial share of Table 1. The
paper trained at batch 1; here 32 samples per step, with the share's decay
and validation still counted in samples. `pretrained=` names Keras'
resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 for the ImageNet start.

Sweep: the lesion models the synthetic set comes from (the paper's: mass,
calcification and removal); each point runs every share of Table 1.
"""

from medgan import configuration

P0S = "0,0.1,0.25,0.5,0.75,1"  # Table 1


def get_config(arg=None):
    args = configuration.parse_arg(arg, root="", lesions="mass+calcification+removal", p0s=P0S, seed=0,
                                   pretrained="", gan_steps=50_000)
    config = configuration.base_config("mammo_study")
    config.seed = args.seed
    m = config.mammo
    m.root, m.height, m.patch = args.root, 2048, 256
    m.per_lesion, m.per_lesion_eval, m.normals_per_image = 20, 4, 100
    m.phantom_patients = 1500
    c = config.contextual
    c.num_steps, c.grow_steps, c.fade_steps = args.gan_steps, args.gan_steps // 5, 3000
    c.checkpoint_every, c.sample_every = 2000, 2000
    config.augment.pretrained = args.pretrained
    config.mammo_study.p0s = args.p0s
    config.mammo_study.lesions = args.lesions.replace("+", ",")
    return config


def get_sweep():
    return ["lesions=mass+calcification+removal", "lesions=mass+removal", "lesions=calcification+removal"]
