"""Image classifiers: the benchmark's judge (DenseNet-BC) and a ResNet baseline.

The study judges synthetic images by training a classifier on real or
synthetic images and testing on real ones; its classifier is an
ImageNet-style DenseNet-121 on grayscale images tiled to 3 channels
(docs/ARCHITECTURE.md, "The benchmark definitions"). The same network, trained on real images, also supplies the
1024-d pooled features used for Frechet distances and nearest-neighbour
privacy audits (`DenseNet.features`).

Conventions:

* Input `x` is [B, H, W, C] float in [-1, 1], C = 1 or 3. With
  `tile_to_rgb=True` a 1-channel input is repeated to 3 channels inside the
  model, so the data pipeline stays 1-channel while the network has the
  ImageNet layout (and can take ImageNet-shaped checkpoints).
* `__call__(x, *, train) -> logits [B, K]` float32; `features(x, *, train)`
  -> pooled features [B, F] float32 (F = `feature_dim`).
* `dtype` is the compute dtype (e.g. jnp.bfloat16); parameters are created in
  `param_dtype` (float32). The global average pool and the final Dense layer
  always run in float32, so logits and features are float32 whatever `dtype`.
* Variables are {"params", "batch_stats"}. BatchNorm (momentum 0.9, eps 1e-5,
  as in torch's 0.1 update rate; eps 1.001e-5 with style="keras") has NO
  axis_name: under jit with the batch sharded over the "data" mesh axis, XLA's
  SPMD partitioner computes the batch statistics over the global batch, so
  sharded == unsharded (tested).
  `train=True` must be applied with `mutable=["batch_stats"]`.
* Paddings are explicit and equal to torchvision's (7x7/2 pad 3, 3x3 pad 1,
  max pool 3x3/2 pad 1), not "SAME" (which pads stride-2 convs asymmetrically),
  so the layers compute the same function as the reference implementations.
  Keras' DenseNet/ResNet zero-pad the same way (ZeroPadding2D 3 before the
  stem conv, 1 before the max pool, which follows a ReLU, so zeros and flax's
  -inf padding give the same maxima).
* `style` picks the reference layout: "torchvision" (default) or "keras", the
  layout of keras.applications, whose ImageNet weights `keras_weights` loads:
  BN epsilon 1.001e-5 in both nets, and for ResNet-50 v1 (stride in the
  first 1x1 conv of a block, not the 3x3) with a bias in every conv.
* The judge's input path, once, first thing in `__call__` (on device, so the
  host pipeline stays at native size): resize to `input_size` (0 = keep the
  size), tile grayscale to RGB, then `normalization="imagenet"`. This is the
  study's preprocessing (its TFGenerator: x/255, tile to 3 channels,
  `tf.image.resize_images` to 224, ImageNet mean/std), see `resize_bilinear`.

Models are built by name with `make_classifier`; weights move through orbax
with `save_params` / `load_params`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Dtype = Any

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5
KERAS_BN_EPSILON = 1.001e-5  # keras.applications' DenseNet and ResNet
STEMS = ("imagenet", "small")
STYLES = ("torchvision", "keras")
NORMALIZATIONS = ("none", "imagenet")
# keras.applications' preprocess_input, "torch" mode: (x / 255 - mean) / std per RGB channel.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# He et al. 2015 ("Delving deep into rectifiers"), the initialisation of both
# reference implementations (torchvision: kaiming_normal_; fan_in for
# DenseNet, fan_out for ResNet).
_he_fan_in = nn.initializers.variance_scaling(2.0, "fan_in", "normal")
_he_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def _legacy_bilinear_weights(in_size: int, out_size: int) -> np.ndarray:
    """[out_size, in_size] float32 interpolation matrix of TF1's bilinear resize (align_corners=False).

    Source coordinate of output pixel i is i * in_size / out_size (no
    half-pixel centres), lerp between its floor and the next pixel (clamped to
    the edge); no antialiasing when shrinking. Each row sums to 1.
    """
    src = np.arange(out_size, dtype=np.float64) * (in_size / out_size)
    low = np.floor(src).astype(np.int64)
    high = np.minimum(low + 1, in_size - 1)
    frac = src - low
    weights = np.zeros((out_size, in_size), np.float64)
    rows = np.arange(out_size)
    np.add.at(weights, (rows, low), 1.0 - frac)
    np.add.at(weights, (rows, high), frac)
    return weights.astype(np.float32)


def resize_bilinear(x: jax.Array, size: int) -> jax.Array:
    """[B, H, W, C] -> [B, size, size, C] float32, TF1 `tf.image.resize_images` bilinear (the study's resize).

    The study's TFGenerator resizes with TF 1's default (bilinear,
    align_corners=False, half_pixel_centers=False), not cv2's or
    `jax.image.resize`'s half-pixel bilinear nor Keras' ImageDataGenerator
    (nearest by default); this is that function. As two small matrix products
    (rows, then columns) at full float32 precision it is exact, jit-friendly
    and cheap next to the network. It is linear with rows summing to 1, so it
    commutes with tiling channels and with a per-channel affine normalisation.
    """
    x = x.astype(jnp.float32)
    h, w = x.shape[1], x.shape[2]
    if (h, w) == (size, size):
        return x
    highest = jax.lax.Precision.HIGHEST
    x = jnp.einsum("oh,bhwc->bowc", _legacy_bilinear_weights(h, size), x, precision=highest)
    return jnp.einsum("pw,bowc->bopc", _legacy_bilinear_weights(w, size), x, precision=highest)


def normalize_imagenet(x: jax.Array) -> jax.Array:
    """[B, H, W, 3] in [-1, 1] -> Keras' "torch" preprocess_input of the uint8 image it came from.

    medgan's pixels are uint8 / 127.5 - 1, so uint8 / 255 = (x + 1) / 2; then
    (. - IMAGENET_MEAN) / IMAGENET_STD per RGB channel.
    """
    mean, std = jnp.asarray(IMAGENET_MEAN, jnp.float32), jnp.asarray(IMAGENET_STD, jnp.float32)
    return ((x.astype(jnp.float32) + 1.0) * 0.5 - mean) / std


def _prepare_input(x: jax.Array, module: nn.Module) -> jax.Array:
    """The judge's input path: checks [B, H, W, C], C in {1, 3}; resize; tile; normalise; cast to dtype.

    Resizing comes first so a grayscale image is resized once, not three
    times (equal either way: see `resize_bilinear`).
    """
    name = type(module).__name__
    if x.ndim != 4:
        raise ValueError(f"{name}: input must be [B, H, W, C], got shape {tuple(x.shape)}")
    channels = x.shape[-1]
    if channels not in (1, 3):
        raise ValueError(f"{name}: input must have 1 or 3 channels, got shape {tuple(x.shape)}")
    if module.input_size:
        x = resize_bilinear(x, module.input_size)
    if module.tile_to_rgb and channels == 1:
        # Grayscale repeated into R, G and B, as the study feeds its ImageNet-style
        # net; a 3-channel input passes unchanged.
        x = jnp.broadcast_to(x, (*x.shape[:-1], 3))
    if module.normalization == "imagenet":
        if x.shape[-1] != 3:
            raise ValueError(f"{name}: normalization='imagenet' needs RGB input; set tile_to_rgb=True for grayscale")
        x = normalize_imagenet(x)
    return x.astype(module.dtype)


def _check_common(module: nn.Module) -> None:
    """Validates the fields DenseNet and ResNet share (stem, style, input path)."""
    name = type(module).__name__
    if module.stem not in STEMS:
        raise ValueError(f"{name}.stem must be one of {STEMS}, got {module.stem!r}")
    if module.style not in STYLES:
        raise ValueError(f"{name}.style must be one of {STYLES}, got {module.style!r}")
    if module.normalization not in NORMALIZATIONS:
        raise ValueError(f"{name}.normalization must be one of {NORMALIZATIONS}, got {module.normalization!r}")
    if module.input_size < 0:
        raise ValueError(f"{name}.input_size must be >= 0 (0 = the image's own size), got {module.input_size}")


def _bn_epsilon(style: str) -> float:
    return KERAS_BN_EPSILON if style == "keras" else BN_EPSILON


def _global_pool(x: jax.Array) -> jax.Array:
    """[B, H, W, F] -> [B, F], averaged in float32 (bf16 sums over 49+ positions lose bits)."""
    return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


def _batch_norm(train: bool, dtype: Dtype, param_dtype: Dtype, name: str, scale_init=nn.initializers.ones,
                epsilon: float = BN_EPSILON):
    """BatchNorm over [B, H, W] per channel; batch statistics when train, running ones otherwise.

    No axis_name: under jit with the batch sharded over "data", XLA reduces
    over the global batch (contract). Variance as E[(x - mean)^2] (not
    E[x^2] - mean^2), reduced in float32 even for bf16 inputs.
    """
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=BN_MOMENTUM,
        epsilon=epsilon,
        use_fast_variance=False,
        scale_init=scale_init,
        dtype=dtype,
        param_dtype=param_dtype,
        name=name,
    )


# --------------------------------------------------------------------------
# DenseNet-BC (Huang et al. 2017, "Densely Connected Convolutional Networks").
# --------------------------------------------------------------------------


class DenseNet(nn.Module):
    """DenseNet-BC (Huang et al. 2017, Table 1; defaults = DenseNet-121).

    Stem ("imagenet"): conv 7x7/2 (init_features) - BN - ReLU - max pool 3x3/2.
    Stem ("small", for 32-64 px inputs): conv 3x3/1 (init_features) - BN - ReLU.
    Dense block i: block_layers[i] layers, each BN-ReLU-Conv1x1(bn_size *
    growth_rate) - BN-ReLU-Conv3x3(growth_rate), output concatenated to its
    input (Eq. 2). Transition between blocks: BN-ReLU-Conv1x1(floor(c *
    compression)) - avg pool 2x2/2 ("-BC": bottleneck + compression 0.5).
    Head: BN-ReLU, global average pool -> [B, feature_dim], Dense(num_classes).

    DenseNet-121 has feature_dim 1024 and, with num_classes=1000, 7,978,856
    parameters (torchvision's count, BN scale and bias included).
    """

    num_classes: int
    growth_rate: int = 32
    block_layers: Sequence[int] = (6, 12, 24, 16)
    init_features: int = 64
    bn_size: int = 4
    compression: float = 0.5
    stem: str = "imagenet"
    tile_to_rgb: bool = False
    input_size: int = 0
    normalization: str = "none"
    style: str = "torchvision"
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @property
    def feature_dim(self) -> int:
        """Width F of the pooled features (1024 for DenseNet-121)."""
        channels = self.init_features
        for i, layers in enumerate(self.block_layers):
            channels += layers * self.growth_rate
            if i != len(self.block_layers) - 1:
                channels = int(math.floor(channels * self.compression))
        return channels

    def _validate(self) -> None:
        name = type(self).__name__
        _check_common(self)
        if not self.block_layers or any(n < 1 for n in self.block_layers):
            raise ValueError(f"{name}.block_layers must be non-empty positive ints, got {self.block_layers}")
        if not 0.0 < self.compression <= 1.0:
            raise ValueError(f"{name}.compression must be in (0, 1], got {self.compression}")
        if self.num_classes < 1:
            raise ValueError(f"{name}.num_classes must be >= 1, got {self.num_classes}")

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool, return_features: bool = False):
        """[B, H, W, C] in [-1, 1] -> logits [B, K] f32 (and features [B, F] f32 if return_features).

        Layer names map one to one onto Keras' DenseNet (`keras_weights`):
        conv0/norm0 = conv1/conv, conv1/bn; block{b}_layer{i}_norm1, _conv1,
        _norm2, _conv2 = conv{b+1}_block{i}_0_bn, _1_conv, _1_bn, _2_conv;
        transition{b}_norm, _conv = pool{b+1}_bn, _conv; norm_final = bn.
        """
        self._validate()
        dt, pdt = self.dtype, self.param_dtype
        conv = lambda f, k, s, p, name: nn.Conv(  # noqa: E731
            f, (k, k), strides=(s, s), padding=((p, p), (p, p)), use_bias=False,
            kernel_init=_he_fan_in, dtype=dt, param_dtype=pdt, name=name,
        )
        eps = _bn_epsilon(self.style)
        bn_relu = lambda x, name: nn.relu(_batch_norm(train, dt, pdt, name, epsilon=eps)(x))  # noqa: E731
        x = _prepare_input(x, self)

        if self.stem == "imagenet":
            x = conv(self.init_features, 7, 2, 3, "conv0")(x)
            x = bn_relu(x, "norm0")
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        else:
            x = conv(self.init_features, 3, 1, 1, "conv0")(x)
            x = bn_relu(x, "norm0")

        channels = self.init_features
        for b, layers in enumerate(self.block_layers):
            for i in range(layers):
                y = bn_relu(x, f"block{b + 1}_layer{i + 1}_norm1")
                y = conv(self.bn_size * self.growth_rate, 1, 1, 0, f"block{b + 1}_layer{i + 1}_conv1")(y)
                y = bn_relu(y, f"block{b + 1}_layer{i + 1}_norm2")
                y = conv(self.growth_rate, 3, 1, 1, f"block{b + 1}_layer{i + 1}_conv2")(y)
                x = jnp.concatenate([x, y], axis=-1)
                channels += self.growth_rate
            if b != len(self.block_layers) - 1:
                channels = int(math.floor(channels * self.compression))
                x = bn_relu(x, f"transition{b + 1}_norm")
                x = conv(channels, 1, 1, 0, f"transition{b + 1}_conv")(x)
                x = nn.avg_pool(x, (2, 2), strides=(2, 2))

        x = bn_relu(x, "norm_final")
        features = _global_pool(x)
        logits = nn.Dense(self.num_classes, dtype=jnp.float32, param_dtype=pdt, name="classifier")(features)
        return (logits, features) if return_features else logits

    def features(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        """Pooled features [B, feature_dim] f32 (the input of the final Dense layer).

        Use as `model.apply(variables, x, method=model.features)`; with
        train=True also pass mutable=["batch_stats"].
        """
        return self(x, train=train, return_features=True)[1]


# --------------------------------------------------------------------------
# ResNet (He et al. 2016, "Deep Residual Learning"), bottleneck, v1.5.
# --------------------------------------------------------------------------


class _Bottleneck(nn.Module):
    """1x1 (width) - 3x3 (width, stride: "v1.5") - 1x1 (4 width), BN after each conv, ReLU after the sum.

    style="keras": v1 (the stride in the first 1x1), convs with bias, BN eps 1.001e-5.

    The last BN's scale starts at 0 when zero_init_residual (Goyal et al. 2017,
    Sec. 5.1), so each block starts as the identity. A projection (1x1 conv +
    BN, stride) maps the shortcut when stride or width changes (option B).
    """

    width: int
    stride: int
    zero_init_residual: bool
    dtype: Dtype
    param_dtype: Dtype
    style: str = "torchvision"

    @nn.compact
    def __call__(self, x, train: bool):
        dt, pdt = self.dtype, self.param_dtype
        keras = self.style == "keras"
        conv = lambda f, k, s, p, name: nn.Conv(  # noqa: E731
            f, (k, k), strides=(s, s), padding=((p, p), (p, p)), use_bias=keras,
            kernel_init=_he_fan_out, dtype=dt, param_dtype=pdt, name=name,
        )
        bn = functools.partial(_batch_norm, train, dt, pdt, epsilon=_bn_epsilon(self.style))
        out_width = 4 * self.width
        # v1.5 (torchvision) strides in the 3x3 conv, v1 (Keras) in the first 1x1.
        stride1, stride3 = (self.stride, 1) if keras else (1, self.stride)
        y = conv(self.width, 1, stride1, 0, "conv1")(x)
        y = nn.relu(bn("bn1")(y))
        y = conv(self.width, 3, stride3, 1, "conv2")(y)
        y = nn.relu(bn("bn2")(y))
        y = conv(out_width, 1, 1, 0, "conv3")(y)
        last_scale = nn.initializers.zeros if self.zero_init_residual else nn.initializers.ones
        y = bn("bn3", scale_init=last_scale)(y)
        if self.stride != 1 or x.shape[-1] != out_width:
            x = conv(out_width, 1, self.stride, 0, "downsample_conv")(x)
            x = bn("downsample_bn")(x)
        return nn.relu(x + y)


class ResNet(nn.Module):
    """Bottleneck ResNet v1.5 (He et al. 2016, Table 1; defaults = ResNet-50).

    Stem ("imagenet"): conv 7x7/2 (width) - BN - ReLU - max pool 3x3/2;
    ("small"): conv 3x3/1 (width) - BN - ReLU. Stage s has stage_sizes[s]
    bottleneck blocks of width width * 2**s (output 4x that), the first with
    stride 2 for s > 0, in its 3x3 conv (v1.5). Head: global average pool ->
    [B, feature_dim], Dense(num_classes).

    ResNet-50 has feature_dim 2048 and, with num_classes=1000, 25,557,032
    parameters (torchvision's count; style="keras" adds the conv biases).
    """

    num_classes: int
    stage_sizes: Sequence[int] = (3, 4, 6, 3)
    width: int = 64
    stem: str = "imagenet"
    zero_init_residual: bool = True
    tile_to_rgb: bool = False
    input_size: int = 0
    normalization: str = "none"
    style: str = "torchvision"
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @property
    def feature_dim(self) -> int:
        """Width F of the pooled features (2048 for ResNet-50)."""
        return 4 * self.width * 2 ** (len(self.stage_sizes) - 1)

    def _validate(self) -> None:
        name = type(self).__name__
        _check_common(self)
        if not self.stage_sizes or any(n < 1 for n in self.stage_sizes):
            raise ValueError(f"{name}.stage_sizes must be non-empty positive ints, got {self.stage_sizes}")
        if self.num_classes < 1:
            raise ValueError(f"{name}.num_classes must be >= 1, got {self.num_classes}")

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool, return_features: bool = False):
        """[B, H, W, C] in [-1, 1] -> logits [B, K] f32 (and features [B, F] f32 if return_features)."""
        self._validate()
        dt, pdt = self.dtype, self.param_dtype
        x = _prepare_input(x, self)
        k, s, p = (7, 2, 3) if self.stem == "imagenet" else (3, 1, 1)
        x = nn.Conv(
            self.width, (k, k), strides=(s, s), padding=((p, p), (p, p)), use_bias=self.style == "keras",
            kernel_init=_he_fan_out, dtype=dt, param_dtype=pdt, name="conv1",
        )(x)
        x = nn.relu(_batch_norm(train, dt, pdt, "bn1", epsilon=_bn_epsilon(self.style))(x))
        if self.stem == "imagenet":
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        for stage, blocks in enumerate(self.stage_sizes):
            for block in range(blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                x = _Bottleneck(
                    self.width * 2**stage, stride, self.zero_init_residual, dt, pdt, self.style,
                    name=f"layer{stage + 1}_block{block + 1}",
                )(x, train)
        features = _global_pool(x)
        logits = nn.Dense(self.num_classes, dtype=jnp.float32, param_dtype=pdt, name="fc")(features)
        return (logits, features) if return_features else logits

    def features(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        """Pooled features [B, feature_dim] f32; `model.apply(variables, x, method=model.features)`."""
        return self(x, train=train, return_features=True)[1]


# --------------------------------------------------------------------------
# Factory.
# --------------------------------------------------------------------------

# name -> (class, preset fields). Tiny presets: "small" stem, a few layers,
# for tests and the CPU demo at 32-64 px.
CLASSIFIERS: Mapping[str, tuple[type[nn.Module], Mapping[str, Any]]] = {
    "densenet121": (DenseNet, {}),
    "densenet_tiny": (DenseNet, dict(growth_rate=8, block_layers=(2, 2, 2), init_features=16, stem="small")),
    "resnet50": (ResNet, {}),
    "resnet_tiny": (ResNet, dict(stage_sizes=(1, 1, 1), width=8, stem="small")),
}


def make_classifier(name: str, num_classes: int, *, dtype: Dtype = jnp.float32, **overrides) -> nn.Module:
    """Builds a classifier by preset name; `overrides` replace any field of the preset.

    Args:
      name: one of CLASSIFIERS ("densenet121", "densenet_tiny", "resnet50",
        "resnet_tiny").
      num_classes: K, the width of the logits.
      dtype: compute dtype (jnp.float32 or jnp.bfloat16); params stay float32.
      **overrides: module fields, e.g. tile_to_rgb=True, stem="small",
        growth_rate=12, block_layers=(6, 12), width=32, zero_init_residual=False,
        input_size=224, normalization="imagenet", style="keras".

    Raises:
      ValueError naming the allowed names, or the unknown override and the
      fields the model has.

    Example:
      model = make_classifier("densenet121", 14, dtype=jnp.bfloat16, tile_to_rgb=True)
      variables = model.init(key, x, train=False)      # {"params", "batch_stats"}
      logits, upd = model.apply(variables, x, train=True, mutable=["batch_stats"])
      feats = model.apply(variables, x, method=model.features)  # [B, 1024]
    """
    if name not in CLASSIFIERS:
        raise ValueError(f"unknown classifier {name!r}; allowed: {sorted(CLASSIFIERS)}")
    cls, preset = CLASSIFIERS[name]
    allowed = {f.name for f in dataclasses.fields(cls)} - {"parent", "name", "num_classes", "dtype"}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ValueError(f"classifier {name!r}: unknown option(s) {unknown}; allowed: {sorted(allowed)}")
    return cls(num_classes=num_classes, dtype=dtype, **{**preset, **overrides})


def describe(name: str, num_classes: int, *, dtype: str, tile_to_rgb: bool, stem: str, input_size: int = 0,
             normalization: str = "none", style: str = "torchvision") -> dict:
    """The JSON description of a classifier (kept in results.json); `classifier_from` rebuilds it."""
    return {"name": name, "num_classes": num_classes, "dtype": dtype, "tile_to_rgb": tile_to_rgb, "stem": stem,
            "input_size": input_size, "normalization": normalization, "style": style}


def classifier_from(description: Mapping[str, Any]) -> nn.Module:
    """The classifier module a `describe` dict names ("" stem: the preset's).

    Descriptions written before the input path and style existed rebuild with
    their defaults (native size, no normalisation, torchvision layout).
    """
    return make_classifier(
        description["name"],
        description["num_classes"],
        dtype=jnp.dtype(description["dtype"]),
        tile_to_rgb=description["tile_to_rgb"],
        input_size=description.get("input_size", 0),
        normalization=description.get("normalization", "none"),
        style=description.get("style", "torchvision"),
        **({"stem": description["stem"]} if description["stem"] else {}),
    )
