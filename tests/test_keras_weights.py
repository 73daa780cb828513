"""Keras' ImageNet weights in medgan's judge: same features as Keras itself, the study's input path once.

The reference is keras.applications' own DenseNet121 / ResNet50 (weights=None,
every weight and BN statistic random, so a mix-up cannot hide), its weights
written to an HDF5 file in the layout of Keras' published *_notop.h5 files
(Keras 2 `save_weights`: root `layer_names`, a group per layer with
`weight_names`). The installed Keras may be Keras 3, which writes another
layout, so the file is written here with h5py. Inputs are 64 px: the full
nets run in seconds on a CPU.
"""

import importlib

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medgan.models import classifiers
from medgan.models.classifiers import IMAGENET_MEAN, IMAGENET_STD, make_classifier, resize_bilinear
from medgan.models.keras_weights import KerasWeightsError, load_keras_weights

tf = pytest.importorskip("tensorflow")

SIZE = 64
# Keras 3 spells DenseNet's stem "conv1_conv"; Keras 2 (and the published file) "conv1/conv".
_KERAS2_NAMES = {"conv1_conv": "conv1/conv", "conv1_bn": "conv1/bn", "conv1_relu": "conv1/relu"}


def write_keras2_h5(keras_model, path, rename=None):
    """Writes keras_model's weights as Keras 2 `save_weights` does (the layout of Keras' published files)."""
    rename = {**_KERAS2_NAMES, **(rename or {})} if keras_model.name.startswith("densenet") else rename or {}
    with h5py.File(path, "w") as f:
        names = [rename.get(layer.name, layer.name) for layer in keras_model.layers]
        f.attrs["layer_names"] = np.array([n.encode("utf8") for n in names])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for layer, name in zip(keras_model.layers, names):
            group = f.create_group(name)
            weight_names = [f"{name}/{w.name}:0" for w in layer.weights]
            group.attrs["weight_names"] = np.array([n.encode("utf8") for n in weight_names])
            for weight_name, weight in zip(weight_names, layer.weights):
                group.create_dataset(weight_name, data=np.asarray(weight.numpy()))


def randomise(keras_model, seed=0):
    """Random BN gamma/beta/moving statistics (Keras initialises them to 1/0/0/1) and conv biases."""
    rng = np.random.default_rng(seed)
    for layer in keras_model.layers:
        for w in layer.weights:
            short = w.name.split("/")[-1].split(":")[0]
            shape = tuple(w.shape)
            if short in ("gamma", "moving_variance"):
                w.assign(rng.uniform(0.5, 1.5, shape).astype(np.float32))
            elif short in ("beta", "moving_mean", "bias"):
                w.assign(rng.normal(0.0, 0.1, shape).astype(np.float32))


def medgan_variables(model, path, shape):
    """The file loaded into model's variables; the head (not in a notop file) zeros."""
    abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape), train=False))
    loaded = load_keras_weights(str(path), model, abstract)
    return jax.tree.map(lambda a: np.zeros(a.shape, a.dtype) if isinstance(a, jax.ShapeDtypeStruct) else a, loaded)


def study_preprocess(gray):
    """The study's TFGenerator on a [-1, 1] grayscale batch: /255, tile, TF1 bilinear resize, ImageNet mean/std."""
    x = np.tile((gray + 1.0) / 2.0, (1, 1, 1, 3))
    x = tf.compat.v1.image.resize_bilinear(x, (SIZE, SIZE), align_corners=False, half_pixel_centers=False).numpy()
    return (x - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)


def max_relative_error(ours, theirs):
    """max |ours - theirs| / max |theirs|: the feature scale depends on the random weights."""
    return float(np.abs(np.asarray(ours) - theirs).max() / np.abs(theirs).max())


@pytest.fixture(scope="module")
def densenet_file(tmp_path_factory):
    keras_model = tf.keras.applications.DenseNet121(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    randomise(keras_model)
    path = tmp_path_factory.mktemp("keras") / "densenet121_notop.h5"
    write_keras2_h5(keras_model, path)
    return keras_model, path


def test_densenet121_judge_path_and_features_equal_keras(densenet_file):
    """32 px grayscale in [-1, 1] through medgan's whole judge = the study's preprocessing + Keras' DenseNet-121."""
    keras_model, path = densenet_file
    model = make_classifier("densenet121", 3, tile_to_rgb=True, input_size=SIZE, normalization="imagenet",
                            style="keras")
    gray = np.random.default_rng(1).uniform(-1, 1, (4, 32, 32, 1)).astype(np.float32)
    variables = medgan_variables(model, path, gray.shape)
    ours = jax.jit(lambda v, x: model.apply(v, x, method=model.features))(variables, gray)
    pooled = tf.keras.layers.GlobalAveragePooling2D()
    theirs = pooled(keras_model(study_preprocess(gray).astype(np.float32), training=False)).numpy()
    assert ours.shape == theirs.shape == (4, 1024)
    assert np.abs(theirs).max() > 1e-2 and theirs.std(axis=0).mean() > 1e-3  # not a degenerate network
    assert max_relative_error(ours, theirs) < 1e-4


def test_resnet50_features_equal_keras(tmp_path):
    keras_model = tf.keras.applications.ResNet50(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    randomise(keras_model)
    path = tmp_path / "resnet50_notop.h5"
    write_keras2_h5(keras_model, path)
    model = make_classifier("resnet50", 3, style="keras")
    x = np.random.default_rng(2).normal(size=(4, SIZE, SIZE, 3)).astype(np.float32)
    variables = medgan_variables(model, path, x.shape)
    ours = jax.jit(lambda v, x: model.apply(v, x, method=model.features))(variables, x)
    theirs = tf.keras.layers.GlobalAveragePooling2D()(keras_model(x, training=False)).numpy()
    assert ours.shape == theirs.shape == (4, 2048)
    assert np.abs(theirs).max() > 1e-2
    assert max_relative_error(ours, theirs) < 1e-4


@pytest.mark.parametrize("size_in, size_out", [(32, 64), (37, 64), (100, 64), (64, 64)])
def test_resize_is_tf1_bilinear(size_in, size_out):
    x = np.random.default_rng(3).uniform(-1, 1, (2, size_in, size_in, 3)).astype(np.float32)
    theirs = tf.compat.v1.image.resize_bilinear(x, (size_out, size_out), align_corners=False,
                                                half_pixel_centers=False).numpy()
    np.testing.assert_allclose(resize_bilinear(jnp.asarray(x), size_out), theirs, atol=1e-5)


def test_input_path_runs_once():
    """input_size + normalization inside the net = the same done outside and a plain net: applied exactly once."""
    inside = make_classifier("densenet_tiny", 3, tile_to_rgb=True, input_size=48, normalization="imagenet")
    outside = inside.clone(input_size=0, normalization="none")
    gray = np.random.default_rng(4).uniform(-1, 1, (2, 32, 32, 1)).astype(np.float32)
    prepared = classifiers.normalize_imagenet(jnp.tile(resize_bilinear(jnp.asarray(gray), 48), (1, 1, 1, 3)))
    variables = jax.jit(lambda k: inside.init(k, gray, train=False))(jax.random.key(0))

    a = jax.jit(lambda v: inside.apply(v, gray, method=inside.features))(variables)
    b = jax.jit(lambda v: outside.apply(v, prepared, method=outside.features))(variables)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    twice = classifiers.normalize_imagenet(prepared)
    c = jax.jit(lambda v: inside.apply(v, twice, method=inside.features))(variables)
    assert not np.allclose(a, c, rtol=1e-3)  # the check can fail
    with pytest.raises(ValueError, match="needs RGB input"):
        inside.clone(tile_to_rgb=False).init(jax.random.key(0), gray, train=False)


def test_mismatched_files_are_named(densenet_file, tmp_path):
    keras_model, path = densenet_file
    model = make_classifier("densenet121", 3, style="keras")
    shape = (1, SIZE, SIZE, 3)
    abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape), train=False))

    with pytest.raises(KerasWeightsError, match="style='keras'"):
        load_keras_weights(str(path), model.clone(style="torchvision"), abstract)
    small = model.clone(stem="small")
    small_vars = jax.eval_shape(lambda: small.init(jax.random.key(0), jnp.zeros(shape), train=False))
    with pytest.raises(KerasWeightsError, match=r"densenet121_notop.h5: layer 'conv1/conv' kernel has shape "
                                                r"\(7, 7, 3, 64\), medgan's conv0 needs \(3, 3, 3, 64\)"):
        load_keras_weights(str(path), small, small_vars)
    shallow = model.clone(block_layers=(6, 12, 24, 15))
    shallow_vars = jax.eval_shape(lambda: shallow.init(jax.random.key(0), jnp.zeros(shape), train=False))
    with pytest.raises(KerasWeightsError, match=r"layers \['conv5_block16_0_bn'.*no place"):
        load_keras_weights(str(path), shallow, shallow_vars)

    broken = tmp_path / "broken.h5"
    write_keras2_h5(keras_model, broken, rename={"conv3_block2_1_bn": "conv3_block2_1_norm"})
    with pytest.raises(KerasWeightsError, match=r"broken.h5: no layer 'conv3_block2_1_bn' \(medgan's "
                                                r"block2_layer2_norm2\)"):
        load_keras_weights(str(broken), model, abstract)
    with pytest.raises(FileNotFoundError, match="nowhere.h5"):
        load_keras_weights(str(tmp_path / "nowhere.h5"), model, abstract)


def test_train_classifier_loads_the_feature_extractor_or_warns(tmp_path, caplog):
    """The job's initialisation: file arrays replicated into the state, head and optimiser fresh; no file -> warning."""
    import ml_collections

    from medgan.configuration import classifier_config
    from medgan.jobs import train_classifier
    from medgan.sharding import make_mesh, replicated
    from medgan.train import state as state_lib

    # Keras' DenseNet builder with one layer per block (public in Keras 2, under keras.src in Keras 3).
    builder = getattr(tf.keras.applications.densenet, "DenseNet", None)
    if builder is None:
        builder = importlib.import_module("keras.src.applications.densenet").DenseNet
    keras_model = builder([1, 1, 1, 1], include_top=False, weights=None, input_shape=(32, 32, 3))
    randomise(keras_model)
    path = tmp_path / "densenet_1111.h5"
    write_keras2_h5(keras_model, path)
    model = classifiers.DenseNet(num_classes=3, block_layers=(1, 1, 1, 1), tile_to_rgb=True, style="keras")
    mesh = make_mesh()
    fresh = state_lib.create_classifier_state(model, state_lib.adam(), jax.random.key(0), (1, 32, 32, 1), mesh)
    cfg: ml_collections.ConfigDict = classifier_config()
    cfg.pretrained = str(path)

    state = train_classifier._pretrained(cfg, model, fresh, mesh)
    kernel = state.params["block3_layer1_conv2"]["kernel"]
    np.testing.assert_array_equal(kernel, keras_model.get_layer("conv4_block1_2_conv").kernel.numpy())
    np.testing.assert_array_equal(state.batch_stats["norm_final"]["var"],
                                  keras_model.get_layer("bn").moving_variance.numpy())
    assert kernel.sharding.is_equivalent_to(replicated(mesh), kernel.ndim)
    np.testing.assert_array_equal(state.params["classifier"]["kernel"], fresh.params["classifier"]["kernel"])

    cfg.pretrained, cfg.normalization = "", "imagenet"
    with caplog.at_level("WARNING"):
        assert train_classifier._pretrained(cfg, model, fresh, mesh) is fresh
    assert sum("random weights" in r.getMessage() for r in caplog.records) == 1
