"""Keras' published ImageNet weights (a Keras 2 `save_weights` HDF5 file) in medgan's DenseNet and ResNet.

The study's judge is Keras' DenseNet-121 started from
`densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5`; medgan's
`DenseNet(style="keras")` computes the same function layer for layer
(`classifiers`), so the file's arrays go straight into its variables. The
same holds for ResNet-50 and `resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5`
(keras.applications.resnet names; the older `res2a_branch2a` names of the
first Keras ResNet50 are accepted too). medgan downloads nothing: the user
points `classifier.pretrained` at a copy of the file.

The file's layout (Keras 2 `save_weights`, also a full-model file's
`model_weights` group): root attribute `layer_names`; one group per layer,
with attribute `weight_names` ("conv1/conv/kernel:0", ...) naming datasets
inside that group. Long attributes may be split into `layer_names0`,
`layer_names1`, ... (Keras' HDF5 attribute limit). Conv kernels are
[kh, kw, in, out] (flax's layout); BatchNorm holds gamma, beta, moving_mean,
moving_variance (flax: params scale, bias; batch_stats mean, var).

Only the feature extractor is loaded ("notop"): the classification head
(`classifier` / `fc`) keeps the values it is given. Every conv and BN of the
feature extractor must find its Keras layer and shape, and every weighted
Keras layer must find its place (a with-top file's `fc1000` / `predictions`
excepted), or `KerasWeightsError` names the file and the layer.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from typing import Any

import flax.linen as nn
import numpy as np

from medgan.models.classifiers import DenseNet, ResNet

# The ImageNet heads of with-top files; medgan's head is its own.
TOP_LAYERS = ("fc1000", "predictions")
_BN_WEIGHTS = {"gamma": ("params", "scale"), "beta": ("params", "bias"),
               "moving_mean": ("batch_stats", "mean"), "moving_variance": ("batch_stats", "var")}


class KerasWeightsError(ValueError):
    """A Keras weights file does not fit the model; the message names the file and the layer."""


@dataclasses.dataclass(frozen=True)
class _Layer:
    """One conv or BatchNorm: its flax module name and its Keras layer names (Keras 2 spelling first)."""

    module: str
    kind: str  # "conv" | "bn"
    keras_names: tuple[str, ...]


def _densenet_layers(model: DenseNet) -> Iterator[_Layer]:
    """Keras 2 names ("conv1/conv") and Keras 3 names ("conv1_conv") of each DenseNet layer."""
    yield _Layer("conv0", "conv", ("conv1/conv", "conv1_conv"))
    yield _Layer("norm0", "bn", ("conv1/bn", "conv1_bn"))
    for b, layers in enumerate(model.block_layers):
        for i in range(layers):
            ours, theirs = f"block{b + 1}_layer{i + 1}", f"conv{b + 2}_block{i + 1}"
            yield _Layer(f"{ours}_norm1", "bn", (f"{theirs}_0_bn",))
            yield _Layer(f"{ours}_conv1", "conv", (f"{theirs}_1_conv",))
            yield _Layer(f"{ours}_norm2", "bn", (f"{theirs}_1_bn",))
            yield _Layer(f"{ours}_conv2", "conv", (f"{theirs}_2_conv",))
        if b != len(model.block_layers) - 1:
            yield _Layer(f"transition{b + 1}_norm", "bn", (f"pool{b + 2}_bn",))
            yield _Layer(f"transition{b + 1}_conv", "conv", (f"pool{b + 2}_conv",))
    yield _Layer("norm_final", "bn", ("bn",))


def _resnet_layers(model: ResNet, params: Mapping[str, Any]) -> Iterator[_Layer]:
    """keras.applications.resnet names ("conv2_block1_1_conv") and the first ResNet50's ("res2a_branch2a")."""
    yield _Layer("conv1", "conv", ("conv1_conv", "conv1"))
    yield _Layer("bn1", "bn", ("conv1_bn", "bn_conv1"))
    for s, blocks in enumerate(model.stage_sizes):
        for b in range(blocks):
            block, theirs, old = f"layer{s + 1}_block{b + 1}", f"conv{s + 2}_block{b + 1}", f"{s + 2}{chr(97 + b)}"
            for j, branch in ((1, "2a"), (2, "2b"), (3, "2c")):
                yield _Layer(f"{block}/conv{j}", "conv", (f"{theirs}_{j}_conv", f"res{old}_branch{branch}"))
                yield _Layer(f"{block}/bn{j}", "bn", (f"{theirs}_{j}_bn", f"bn{old}_branch{branch}"))
            if "downsample_conv" in params.get(block, {}):
                yield _Layer(f"{block}/downsample_conv", "conv", (f"{theirs}_0_conv", f"res{old}_branch1"))
                yield _Layer(f"{block}/downsample_bn", "bn", (f"{theirs}_0_bn", f"bn{old}_branch1"))


def _strings(group, name: str) -> list[str]:
    """An HDF5 string-list attribute as Keras 2 writes it, whole or split into name0, name1, ..."""
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in group.attrs:
            values.extend(group.attrs[f"{name}{chunk}"])
            chunk += 1
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _read_layers(path: str) -> dict[str, dict[str, np.ndarray]]:
    """{Keras layer name: {short weight name ("kernel", "gamma", ...): array}} of every weighted layer."""
    import h5py  # only the judge's initialisation needs it

    if not os.path.isfile(path):
        raise FileNotFoundError(f"Keras weights file {path} does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise KerasWeightsError(f"{path}: not an HDF5 file ({e})") from e
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        names = _strings(root, "layer_names")
        if not names:
            raise KerasWeightsError(f"{path}: no 'layer_names' attribute: not a Keras 2 save_weights file")
        layers = {}
        for name in names:
            group = root[name]
            weights = {}
            for weight in _strings(group, "weight_names"):
                short = weight.rsplit("/", 1)[-1].split(":", 1)[0]
                weights[short] = np.asarray(group[weight], np.float32)
            if weights:
                layers[name] = weights
    return layers


def _module_variables(variables: Mapping[str, Any], collection: str, module: str) -> Mapping[str, Any]:
    node = variables.get(collection, {})
    for part in module.split("/"):
        node = node.get(part, {}) if isinstance(node, Mapping) else {}
    return node


def _copy(tree: Any) -> Any:
    return {k: _copy(v) for k, v in tree.items()} if isinstance(tree, Mapping) else tree


def _assign_layer(path: str, layer: _Layer, keras_name: str, weights: Mapping[str, np.ndarray], new: dict) -> None:
    """Puts one Keras conv's kernel (and bias) or BatchNorm's four arrays into `new`, checking names and shapes."""
    params = _module_variables(new, "params", layer.module)
    if layer.kind == "conv":
        if set(weights) - {"kernel", "bias"} or "kernel" not in weights:
            raise KerasWeightsError(f"{path}: layer {keras_name!r} holds {sorted(weights)}, not a conv's kernel")
        if "bias" in params and "bias" not in weights:
            raise KerasWeightsError(f"{path}: layer {keras_name!r} has no bias; medgan's {layer.module} has one")
        for key, value in weights.items():
            _assign(path, keras_name, layer.module, params, key, value)
        return
    if set(weights) != set(_BN_WEIGHTS):
        raise KerasWeightsError(
            f"{path}: layer {keras_name!r} holds {sorted(weights)}, not BatchNorm's {sorted(_BN_WEIGHTS)}"
        )
    for short, (collection, key) in _BN_WEIGHTS.items():
        _assign(path, keras_name, layer.module, _module_variables(new, collection, layer.module), key, weights[short])


def _assign(path: str, keras_name: str, module: str, target: dict, key: str, value: np.ndarray) -> None:
    if key not in target:
        raise KerasWeightsError(f"{path}: layer {keras_name!r} has a {key!r} that medgan's {module} lacks")
    expected = tuple(target[key].shape)
    if value.shape != expected:
        raise KerasWeightsError(
            f"{path}: layer {keras_name!r} {key} has shape {value.shape}, medgan's {module} needs {expected}"
        )
    target[key] = value


def load_keras_weights(path: str, model: nn.Module, variables: Mapping[str, Any]) -> dict:
    """`variables` with the feature extractor's params and batch_stats replaced by the file's arrays.

    Args:
      path: a Keras 2 `save_weights` HDF5 file, e.g. Keras'
        densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5.
      model: a DenseNet or ResNet with style="keras" (Keras' BN epsilon; ResNet
        v1 with conv biases), whose layers the file's layers must fit.
      variables: {"params", "batch_stats"} of `model` (arrays or
        ShapeDtypeStructs: only shapes are read).

    Returns:
      A new {"params", "batch_stats"} tree of plain dicts: loaded leaves are
      float32 numpy arrays; the others (the head) are the objects given.

    Raises:
      KerasWeightsError naming the file and the Keras layer when a layer is
      missing, left over, or of another shape; FileNotFoundError.
    """
    if isinstance(model, DenseNet):
        layers = list(_densenet_layers(model))
        head = "classifier"
    elif isinstance(model, ResNet):
        layers = list(_resnet_layers(model, variables["params"]))
        head = "fc"
    else:
        raise TypeError(f"Keras weights load into a DenseNet or ResNet, not {type(model).__name__}")
    if model.style != "keras":
        raise KerasWeightsError(
            f"{path}: Keras weights need {type(model).__name__}(style='keras') (Keras' BN epsilon"
            f"{', v1 strides and conv biases' if isinstance(model, ResNet) else ''}), got style={model.style!r}"
        )
    file_layers = _read_layers(path)
    names = {}
    for layer in layers:
        keras_name = next((n for n in layer.keras_names if n in file_layers), None)
        if keras_name is None:
            raise KerasWeightsError(
                f"{path}: no layer {layer.keras_names[0]!r} (medgan's {layer.module}); the file has "
                f"{len(file_layers)} weighted layers, e.g. {sorted(file_layers)[:3]}"
            )
        names[layer] = keras_name
    left = sorted(set(file_layers) - set(names.values()) - set(TOP_LAYERS))
    if left:
        raise KerasWeightsError(
            f"{path}: layers {left[:5]}{' ...' if len(left) > 5 else ''} ({len(left)}) have no place in "
            f"medgan's {type(model).__name__} (another depth or architecture?)"
        )
    new = _copy(variables)
    for layer, keras_name in names.items():
        _assign_layer(path, layer, keras_name, file_layers[keras_name], new)
    _check_complete(path, new, variables, head)
    return new


def _check_complete(path: str, new: Mapping, old: Mapping, head: str) -> None:
    """Every leaf outside the head was replaced: the layer lists above cover the whole feature extractor."""
    def walk(a, b, prefix):
        for key, value in b.items():
            name = f"{prefix}/{key}"
            if isinstance(value, Mapping):
                yield from walk(a[key], value, name)
            elif a[key] is value:
                yield name

    missed = [name for name in walk(new, old, "") if not name.split("/")[2] == head]
    if missed:
        raise KerasWeightsError(f"{path}: medgan's {missed[0]} has no counterpart in the Keras layer list")
