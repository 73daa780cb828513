"""Classifiers: exact sizes of the reference nets, BatchNorm modes, dtypes, sharding, checkpoints.

Full-size nets are only traced (jax.eval_shape); everything that runs uses the
tiny presets at 32 px on the CPU.
"""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medgan.models.classifiers import CLASSIFIERS, DenseNet, ResNet, _Bottleneck, make_classifier
from medgan.sharding import batch_sharding, make_mesh, replicated
from medgan.train.checkpoints import load_params, save_params

KEY = jax.random.key(0)


def n_elements(tree):
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def abstract_variables(model, shape):
    return jax.eval_shape(lambda k: model.init(k, jnp.zeros(shape), train=False), KEY)


def abstract_output(model, shape, variables=None, **kwargs):
    """Output shapes of model.apply(train=False) on zeros(shape); traces init too unless `variables` given."""
    if variables is None:
        variables = abstract_variables(model, shape)
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    return jax.eval_shape(lambda v, x: model.apply(v, x, train=False, **kwargs), variables, x)


def init(model, x):
    """Jitted init with an "rbg" key: on CPU, XLA compiles the threefry draws of He-normal kernels
    ~3x slower than the net itself (seconds per model); the values do not matter here."""
    return jax.jit(lambda k, x: model.init(k, x, train=False))(jax.random.key(0, impl="rbg"), x)


def apply(model, variables, x, *, train, method=None):
    """Eager apply (its per-op executables are cached across tests); train=True -> (logits, {"batch_stats"})."""
    kwargs = dict(mutable=["batch_stats"]) if train else {}
    if method is not None:
        kwargs["method"] = method
    return model.apply(variables, x, train=train, **kwargs)


def images(n, size=32, channels=1, seed=1):
    return jax.random.uniform(jax.random.key(seed), (n, size, size, channels), minval=-1.0, maxval=1.0)


# ---------------------------------------------------------------- sizes


def densenet_counts(num_classes, growth=32, blocks=(6, 12, 24, 16), init=64, bn_size=4, in_ch=3):
    """(params, batch_stats, features) of DenseNet-BC derived layer by layer (Huang et al. Table 1).

    Convs have no bias; every BN has scale+bias (params) and mean+var
    (batch_stats), so the two BN parts are equal; torchvision counts BN
    scale/bias as parameters and running stats as buffers, like flax.
    """
    conv = 7 * 7 * in_ch * init
    bn_channels = init  # norm0
    c = init
    for b, layers in enumerate(blocks):
        for _ in range(layers):
            conv += c * bn_size * growth + 9 * bn_size * growth * growth
            bn_channels += c + bn_size * growth
            c += growth
        if b != len(blocks) - 1:
            conv += c * (c // 2)
            bn_channels += c
            c //= 2
    bn_channels += c  # final norm
    head = c * num_classes + num_classes
    return conv + 2 * bn_channels + head, 2 * bn_channels, c


def resnet_counts(num_classes, stages=(3, 4, 6, 3), width=64, in_ch=3):
    """(params, batch_stats, features) of bottleneck ResNet-50 derived layer by layer (He et al. Table 1)."""
    conv, bn = 7 * 7 * in_ch * width, width
    c = width
    for s, blocks in enumerate(stages):
        w = width * 2**s
        for b in range(blocks):
            conv += c * w + 9 * w * w + w * 4 * w
            bn += w + w + 4 * w
            if b == 0:  # projection shortcut (stride or width change)
                conv += c * 4 * w
                bn += 4 * w
            c = 4 * w
    return conv + 2 * bn + c * num_classes + num_classes, 2 * bn, c


def test_reference_counts_match_torchvision():
    # The derivations above reproduce torchvision's published totals.
    assert densenet_counts(1000)[0] == 7_978_856
    assert resnet_counts(1000)[0] == 25_557_032


@pytest.mark.parametrize(
    "name, num_classes, params, stats, features",
    [
        ("densenet121", 1000, 7_978_856, 83_648, 1024),
        ("densenet121", 14, 6_968_206, 83_648, 1024),
        ("resnet50", 1000, 25_557_032, 53_120, 2048),
        ("resnet50", 14, 23_536_718, 53_120, 2048),
    ],
)
def test_full_size_parameter_counts(name, num_classes, params, stats, features):
    derive = densenet_counts if name.startswith("densenet") else resnet_counts
    assert derive(num_classes) == (params, stats, features)
    model = make_classifier(name, num_classes)
    variables = abstract_variables(model, (1, 224, 224, 3))
    assert set(variables) == {"params", "batch_stats"}
    assert n_elements(variables["params"]) == params
    assert n_elements(variables["batch_stats"]) == stats
    assert model.feature_dim == features
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(variables))


_FULL_SIZE_VARIABLES = {}


@pytest.mark.parametrize("name, features", [("densenet121", 1024), ("resnet50", 2048)])
@pytest.mark.parametrize("size", [32, 64, 224])
@pytest.mark.parametrize("channels", [1, 3])
def test_full_size_output_shapes(name, features, size, channels):
    model = make_classifier(name, 14, tile_to_rgb=True)
    if name not in _FULL_SIZE_VARIABLES:  # with tile_to_rgb the variables fit every input: trace init once
        _FULL_SIZE_VARIABLES[name] = abstract_variables(model, (1, 32, 32, 1))
    variables = _FULL_SIZE_VARIABLES[name]
    logits, feats = abstract_output(model, (2, size, size, channels), variables, return_features=True)
    assert logits.shape == (2, 14) and logits.dtype == jnp.float32
    assert feats.shape == (2, features) and feats.dtype == jnp.float32


def test_first_conv_sees_input_channels_without_tiling():
    model = make_classifier("densenet121", 14)
    assert abstract_variables(model, (1, 64, 64, 1))["params"]["conv0"]["kernel"].shape == (7, 7, 1, 64)
    tiled = make_classifier("densenet121", 14, tile_to_rgb=True)
    assert abstract_variables(tiled, (1, 64, 64, 1))["params"]["conv0"]["kernel"].shape == (7, 7, 3, 64)


def test_resnet_block_is_v15_and_zero_init():
    params = abstract_variables(make_classifier("resnet50", 14), (1, 64, 64, 3))["params"]
    assert params["layer2_block1"]["conv2"]["kernel"].shape == (3, 3, 128, 128)  # stride in the 3x3
    assert params["layer2_block1"]["conv1"]["kernel"].shape == (1, 1, 256, 128)
    # One block (with projection) initialised for each setting; ResNet passes its field through.
    on, off = jax.jit(
        lambda k, x: [_Bottleneck(4, 2, z, jnp.float32, jnp.float32).init(k, x, False) for z in (True, False)]
    )(KEY, jnp.zeros((1, 4, 4, 8)))
    np.testing.assert_array_equal(on["params"]["bn3"]["scale"], 0.0)
    np.testing.assert_array_equal(on["params"]["bn2"]["scale"], 1.0)
    np.testing.assert_array_equal(off["params"]["bn3"]["scale"], 1.0)
    assert on["params"]["downsample_conv"]["kernel"].shape == (1, 1, 8, 16)
    assert make_classifier("resnet50", 3).zero_init_residual
    assert not make_classifier("resnet50", 3, zero_init_residual=False).zero_init_residual


def final_map_shape(model, shape):
    """Shape [B, h, w, F] of the last feature map (output of the final BN-ReLU / last block)."""
    if isinstance(model, DenseNet):
        last = "norm_final"
    else:
        last = f"layer{len(model.stage_sizes)}_block{model.stage_sizes[-1]}"

    def run(k):
        x = jnp.zeros(shape)
        _, state = model.apply(
            model.init(k, x, train=False), x, train=False, capture_intermediates=True, mutable=["intermediates"]
        )
        return state["intermediates"][last]["__call__"][0]

    return jax.eval_shape(run, KEY).shape


@pytest.mark.parametrize("cls, fields, small, imagenet", [
    (DenseNet, dict(growth_rate=4, block_layers=(1, 1), init_features=8), (1, 16, 16, 10), (1, 4, 4, 10)),
    (ResNet, dict(stage_sizes=(1, 1), width=4), (1, 16, 16, 32), (1, 4, 4, 32)),
])
def test_small_stem_keeps_resolution(cls, fields, small, imagenet):
    # "small": 3x3/1 conv, no max pool -> a 32 px input is downsampled only
    # between blocks (32 -> 16 with two blocks); "imagenet" divides by 4 first.
    model = cls(num_classes=2, stem="small", **fields)
    first = "conv0" if cls is DenseNet else "conv1"
    width = fields.get("init_features", fields.get("width"))
    assert abstract_variables(model, (1, 32, 32, 1))["params"][first]["kernel"].shape == (3, 3, 1, width)
    assert final_map_shape(model, (1, 32, 32, 1)) == small
    assert final_map_shape(model.clone(stem="imagenet"), (1, 32, 32, 1)) == imagenet
    assert model.feature_dim == small[-1]
    assert abstract_output(model, (1, 32, 32, 1), method=model.features).shape == (1, small[-1])


# ---------------------------------------------------------------- factory


def test_make_classifier_rejects_unknown_names_and_options():
    with pytest.raises(ValueError, match="allowed.*densenet121.*densenet_tiny.*resnet50.*resnet_tiny"):
        make_classifier("vgg16", 3)
    with pytest.raises(ValueError, match="unknown option.*'growth'.*allowed.*growth_rate"):
        make_classifier("densenet_tiny", 3, growth=4)
    assert make_classifier("densenet_tiny", 3, growth_rate=4).growth_rate == 4
    assert isinstance(make_classifier("resnet_tiny", 3), ResNet)
    assert set(CLASSIFIERS) == {"densenet121", "densenet_tiny", "resnet50", "resnet_tiny"}


def test_bad_inputs_and_fields_are_named():
    model = make_classifier("densenet_tiny", 3)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        model.init(KEY, jnp.zeros((1, 32, 32, 2)), train=False)
    with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
        model.init(KEY, jnp.zeros((32, 32, 1)), train=False)
    with pytest.raises(ValueError, match="DenseNet.stem"):
        make_classifier("densenet_tiny", 3, stem="cifar").init(KEY, images(1), train=False)


# ---------------------------------------------------------------- running


@pytest.fixture(scope="module", params=["densenet_tiny", "resnet_tiny"])
def tiny(request):
    """(model, variables, x): a tiny net (tile_to_rgb, as the study runs it) initialised once, x [8, 32, 32, 1]."""
    model = make_classifier(request.param, 4, tile_to_rgb=True)
    x = images(8)
    return model, init(model, x), x


def test_tiny_forward_and_batch_stats(tiny):
    model, variables, x = tiny
    logits = apply(model, variables, x, train=False)
    assert logits.shape == (8, 4) and logits.dtype == jnp.float32
    assert np.isfinite(np.asarray(logits)).all()
    feats = apply(model, variables, x, train=False, method=model.features)
    assert feats.shape == (8, model.feature_dim)
    head = variables["params"]["classifier" if isinstance(model, DenseNet) else "fc"]
    np.testing.assert_allclose(logits, feats @ head["kernel"] + head["bias"], rtol=1e-5, atol=1e-5)

    # train=True: batch statistics normalise, every running stat moves 0.1 of the way (momentum 0.9).
    train_logits, updates = apply(model, variables, x, train=True)
    assert not np.allclose(train_logits, logits)
    old, new = jax.tree.leaves(variables["batch_stats"]), jax.tree.leaves(updates["batch_stats"])
    assert [o.shape for o in old] == [n.shape for n in new]
    assert all(not np.allclose(o, n) for o, n in zip(old, new))
    first = updates["batch_stats"]["norm0"] if isinstance(model, DenseNet) else updates["batch_stats"]["bn1"]
    kernel = variables["params"]["conv0" if isinstance(model, DenseNet) else "conv1"]["kernel"]
    y = jax.lax.conv_general_dilated(
        jnp.tile(x, (1, 1, 1, 3)), kernel, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    np.testing.assert_allclose(first["mean"], 0.1 * y.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(first["var"], 0.9 + 0.1 * y.var(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)

    # train=False: batch_stats unchanged even when mutable, output from the running stats.
    out, same = model.apply(variables, x, train=False, mutable=["batch_stats"])
    jax.tree.map(np.testing.assert_array_equal, same["batch_stats"], variables["batch_stats"])
    np.testing.assert_array_equal(out, logits)


def test_bf16_compute_gives_f32_outputs_close_to_f32(tiny):
    model, variables, x = tiny
    bf16 = model.clone(dtype=jnp.bfloat16)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(abstract_variables(bf16, x.shape)))
    ref, _ = apply(model, variables, x, train=True)
    (out, feats), upd = jax.jit(
        lambda v, x: bf16.apply(v, x, train=True, return_features=True, mutable=["batch_stats"])
    )(variables, x)
    assert out.dtype == jnp.float32 and feats.dtype == jnp.float32
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(upd))
    np.testing.assert_allclose(out, ref, atol=0.05 * float(jnp.abs(ref).max()) + 1e-3)
    assert not np.array_equal(out, ref)  # bf16 really was used


def test_sharded_batch_gives_unsharded_logits_and_batch_stats(tiny):
    model, variables, _ = tiny
    x = images(16, seed=3)
    mesh = make_mesh()
    assert mesh.devices.size == 8

    def step(v, x):
        return model.apply(v, x, train=True, mutable=["batch_stats"])

    ref_logits, ref_stats = jax.jit(step)(variables, x)
    sharded = jax.jit(
        step,
        in_shardings=(replicated(mesh), batch_sharding(mesh)),
        out_shardings=(batch_sharding(mesh), replicated(mesh)),
    )
    xs = jax.device_put(x, batch_sharding(mesh))
    assert len(xs.addressable_shards) == 8 and xs.addressable_shards[0].data.shape[0] == 2
    logits, stats = sharded(jax.device_put(variables, replicated(mesh)), xs)
    assert logits.sharding.is_equivalent_to(batch_sharding(mesh), 2)
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-5, atol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), stats, ref_stats)
    # Per-shard statistics (what a per-device BN would keep) differ: the check above can fail.
    shard0 = jax.jit(step)(variables, x[:2])[1]
    assert not all(np.allclose(a, b, rtol=1e-3) for a, b in zip(jax.tree.leaves(shard0), jax.tree.leaves(ref_stats)))


def test_tile_to_rgb_equals_feeding_the_tiled_image(tiny):
    tiled, variables, gray = tiny
    rgb = tiled.clone(tile_to_rgb=False)
    colour = images(8, channels=3)

    def run(v):
        return (
            tiled.apply(v, gray, train=True, mutable=["batch_stats"]),
            rgb.apply(v, jnp.tile(gray, (1, 1, 1, 3)), train=True, mutable=["batch_stats"]),
            tiled.apply(v, colour, train=False),  # 3 channels pass through unchanged
            rgb.apply(v, colour, train=False),
        )

    a, b, c, d = jax.jit(run)(variables)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    np.testing.assert_array_equal(c, d)
    assert not np.allclose(a[0], c)


# ---------------------------------------------------------------- checkpoints


def test_save_load_round_trip_and_mismatch(tmp_path):
    model = make_classifier("densenet_tiny", 4)
    x = images(4)
    rng = np.random.default_rng(0)  # random values everywhere (no init compile): any mix-up shows
    variables = jax.tree.map(
        lambda a: jnp.asarray(rng.normal(size=a.shape), jnp.float32), abstract_variables(model, x.shape)
    )
    path = tmp_path / "judge"
    save_params(path, variables)
    with pytest.raises(FileExistsError, match="judge"):
        save_params(path, variables)

    restored = load_params(path, jax.eval_shape(lambda: variables), make_mesh())
    jax.tree.map(np.testing.assert_array_equal, restored, variables)
    assert jax.tree.structure(restored) == jax.tree.structure(variables)
    leaf = restored["params"]["conv0"]["kernel"]
    assert isinstance(leaf, jax.Array) and leaf.dtype == jnp.float32
    assert leaf.sharding.is_equivalent_to(replicated(make_mesh()), leaf.ndim)

    other = abstract_variables(make_classifier("densenet_tiny", 5), x.shape)
    with pytest.raises(ValueError, match=r"params/classifier/bias: checkpoint \(4,\), model \(5,\)"):
        load_params(path, other, make_mesh())
    wider = abstract_variables(make_classifier("densenet_tiny", 4, block_layers=(2, 2, 3)), x.shape)
    with pytest.raises(ValueError, match="batch_stats/block3_layer3_norm1/mean: missing from the checkpoint"):
        load_params(path, wider, make_mesh())
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_params(tmp_path / "nowhere", other, make_mesh())
