"""The three class-conditional GANs behind one description: which G, which D, which loss.

* "pggan": the study's progressive GAN — labels concatenated to the latent,
  AC-GAN head on D, WGAN-GP; grows from `start_resolution`.
* "cpd": the study's non-progressive GAN — conditional pixel norm in G, resnet
  D with one output per label scored as sum(out * labels), WGAN-GP.
* "stylegan2": StyleGAN2 with projection conditioning, non-saturating loss,
  lazy R1 and (by default) adaptive discriminator augmentation.

Every generator maps (z [B, Z], labels [B, K]) -> images [B, R, R, C] and every
discriminator (images, labels) -> (logits [B], class_logits [B, K] | None), so
the training steps, the Fréchet distance and the synthesis job never branch on
the model, only on the fields of `GanSpec`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

GAN_MODELS = ("pggan", "cpd", "stylegan2")
LOSSES = ("wgan_gp", "nonsaturating")
# cpd's 2x resampling: "box" is the study's (nearest-neighbour up, 2x2 box down, GAN_cpd as [PGGAN]), "fir"
# the [1,3,3,1] filter of [SG2]'s code, which low-passes every path to a 32 px output (models/cpd.py).
RESAMPLING = ("box", "fir")


@dataclasses.dataclass(frozen=True)
class GanSpec:
    """A GAN model: its two networks and how they are trained.

    Attributes:
      name: one of GAN_MODELS.
      generator / discriminator: flax modules (see the module docstring).
      latent_dim: Z.
      loss: "wgan_gp" (critic with gradient penalty and drift) or
        "nonsaturating" (logistic, with lazy R1 on reals).
      acgan: D has an auxiliary classifier head trained with `losses.acgan_loss`.
      progressive: the networks have a `stage` field (current phase resolution)
        and take `alpha` (fade-in weight).
      default_augment: whether ADA is on unless the config says otherwise.
    """

    name: str
    generator: nn.Module
    discriminator: nn.Module
    latent_dim: int
    loss: str
    acgan: bool
    progressive: bool
    default_augment: bool

    @property
    def resolution(self) -> int:
        return self.generator.resolution

    def at_stage(self, stage: int) -> GanSpec:
        """The spec of growth phase `stage` (px); the identity for non-progressive models."""
        if not self.progressive:
            return self
        return dataclasses.replace(
            self, generator=self.generator.clone(stage=stage), discriminator=self.discriminator.clone(stage=stage)
        )

    def generator_kwargs(self, alpha: Any) -> dict[str, Any]:
        """Call kwargs of G and D for a fade-in weight (empty for non-progressive models)."""
        return {"alpha": alpha} if self.progressive else {}


def make_gan(
    name: str,
    *,
    resolution: int,
    num_labels: int,
    channels: int = 1,
    latent_dim: int = 512,
    fmap_base: int = 8192,
    fmap_max: int = 512,
    dtype: Any = jnp.float32,
    w_dim: int = 512,
    mapping_layers: int = 8,
    mbstd_group_size: int = 4,
    resample: str = "box",
) -> GanSpec:
    """Builds model `name` at `resolution` px for K=`num_labels` labels and C=`channels`.

    Widths follow `layers.feature_maps(res, fmap_base, fmap_max)`; `w_dim` and
    `mapping_layers` only concern stylegan2, `resample` (one of RESAMPLING)
    only cpd; `mbstd_group_size` is D's minibatch-stddev group. Progressive models are returned
    at their final stage; use `spec.at_stage(s)` for a growth phase.
    """
    if name not in GAN_MODELS:
        raise ValueError(f"unknown GAN model {name!r}; known: {GAN_MODELS}")
    if resample not in RESAMPLING:
        raise ValueError(f"unknown resampling {resample!r}; known: {RESAMPLING}")
    common = dict(
        resolution=resolution, num_labels=num_labels, channels=channels,
        fmap_base=fmap_base, fmap_max=fmap_max, dtype=dtype,
    )
    if name == "pggan":
        from medgan.models import pggan

        return GanSpec(
            name, pggan.Generator(latent_dim=latent_dim, **common),
            pggan.Discriminator(mbstd_group_size=mbstd_group_size, **common),
            latent_dim, loss="wgan_gp", acgan=True, progressive=True, default_augment=False,
        )
    if name == "cpd":
        from medgan.models import cpd

        return GanSpec(
            name, cpd.Generator(latent_dim=latent_dim, resample=resample, **common),
            cpd.Discriminator(mbstd_group_size=mbstd_group_size, resample=resample, **common),
            latent_dim, loss="wgan_gp", acgan=False, progressive=False, default_augment=False,
        )
    from medgan.models import stylegan2

    return GanSpec(
        name,
        stylegan2.Generator(latent_dim=latent_dim, w_dim=w_dim, mapping_layers=mapping_layers, **common),
        stylegan2.Discriminator(mbstd_group_size=mbstd_group_size, **common),
        latent_dim, loss="nonsaturating", acgan=False, progressive=False, default_augment=True,
    )


# What a description written before a key existed was trained with: cpd resampled with the FIR filter.
DESCRIPTION_DEFAULTS = {"mbstd_group_size": 4, "resample": "fir"}


def describe(config: Any, resolution: int, num_labels: int, channels: int) -> dict:
    """The JSON description of a GAN (kept in results.json; `spec_from` rebuilds it).

    `config` is a `config.gan` block: model name, widths, latent and mapping sizes, dtype.
    """
    return {
        "name": config.model, "resolution": resolution, "num_labels": num_labels, "channels": channels,
        "latent_dim": config.latent_dim, "fmap_base": config.fmap_base, "fmap_max": config.fmap_max,
        "w_dim": config.w_dim, "mapping_layers": config.mapping_layers,
        "mbstd_group_size": config.mbstd_group_size, "resample": config.resample, "dtype": config.dtype,
    }


def spec_from(description: dict) -> GanSpec:
    """The `GanSpec` a `describe` dict names (keys it lacks: `DESCRIPTION_DEFAULTS`)."""
    kwargs = {**DESCRIPTION_DEFAULTS, **{k: v for k, v in description.items() if k not in ("name", "dtype")}}
    return make_gan(description["name"], dtype=jnp.dtype(description["dtype"]), **kwargs)
