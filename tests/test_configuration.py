"""Config files, colon arguments and validation fail early and name the key."""

import importlib.util
import pathlib

import pytest

from medgan import configuration

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / "configs"


def load_config_module(name):
    spec = importlib.util.spec_from_file_location(name, CONFIG_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.py")), ids=lambda p: p.stem)
def test_every_sweep_point_of_every_config_file_validates(path):
    module = load_config_module(path.stem)
    points = module.get_sweep()
    assert points, f"{path.name}: get_sweep() is empty"
    for arg in points:
        config = module.get_config(arg or None)
        if config.data.source in ("chexpert", "rsna_ich"):
            config.data.root = "/data/cohort"
        configuration.validate(config)


def test_colon_argument_is_parsed_with_the_types_of_the_defaults():
    args = configuration.parse_arg("resolution=256,source=rsna_ich,rate=1", resolution=64,
                                   source="x", rate=0.5)
    assert args.resolution == 256 and args.source == "rsna_ich"
    assert args.rate == 1.0 and isinstance(args.rate, float)


def test_colon_argument_unknown_key_names_it():
    with pytest.raises(configuration.ConfigError, match="'resolutoin'.*unknown"):
        configuration.parse_arg("resolutoin=256", resolution=64)


def test_colon_argument_wrong_type_names_key_and_value():
    with pytest.raises(configuration.ConfigError, match="resolution='big'"):
        configuration.parse_arg("resolution=big", resolution=64)


def test_base_config_is_locked_so_a_misspelt_key_fails_where_written():
    config = configuration.base_config("prepare")
    with pytest.raises(AttributeError, match="resolutoin"):
        config.data.resolutoin = 64


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("data.resolution", 8, r"config\.data\.resolution=8: expected an integer"),
        ("data.source", "mnist", r"config\.data\.source='mnist'"),
        ("data.chexpert_policy", "maybe", r"config\.data\.chexpert_policy='maybe'"),
        ("data.rsna_windows", ("brain", "lung"), r"config\.data\.rsna_windows="),
        ("fold.fractions", (0.8, 0.1, 0.2), r"config\.fold\.fractions="),
        ("fold.val_per_combination", 0, r"config\.fold\.val_per_combination=0: a balanced fold"),
        ("fold.per_combination", -1, r"config\.fold\.per_combination=-1: expected a non-negative integer"),
        ("fold.per_combination", 0, r"config\.fold\.val_images=0: an unbalanced fold"),
        ("data.phantom_conspicuity", 5.0, r"config\.data\.phantom_conspicuity=5\.0: expected a number in \[0, 4\]"),
        ("classifier.global_batch_size", 0, r"config\.classifier\.global_batch_size=0"),
        ("gan.model", "biggan", r"config\.gan\.model='biggan'"),
        ("benchmark.level", 1.5, r"config\.benchmark\.level=1\.5"),
        ("data.resolution", 48, r"config\.data\.resolution=48: a GAN needs a power of two"),
        ("audit.planted_noise_levels", "0,0.0x", r"config\.audit\.planted_noise_levels='0,0\.0x': expected comma"),
        ("audit.planted_noise_levels", "0,-0.01", r"config\.audit\.planted_noise_levels='0,-0\.01'"),
    ],
)
def test_impossible_values_name_the_key(key, value, message):
    config = configuration.base_config("benchmark")
    node = config
    *parents, leaf = key.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = value
    with pytest.raises(configuration.ConfigError, match=message):
        configuration.validate(config)


def test_unknown_key_added_to_an_unlocked_config_is_named():
    config = configuration.base_config("prepare")
    config.unlock()
    config.data.resolutoin = 64
    with pytest.raises(configuration.ConfigError, match=r"config\.data\.resolutoin: unknown key"):
        configuration.validate(config)


def test_real_cohort_without_root_is_an_error():
    config = configuration.base_config("prepare")
    config.data.source = "chexpert"
    with pytest.raises(configuration.ConfigError, match=r"config\.data\.root"):
        configuration.validate(config)


def test_unknown_job_is_named():
    with pytest.raises(configuration.ConfigError, match="'train_everything'"):
        configuration.base_config("train_everything")


@pytest.mark.parametrize("value", ["removal", "removal=0", "tumour=2", "removal=2,mass=x"])
def test_a_lesion_schedule_factor_that_cannot_be_read_names_its_key(value):
    config = configuration.base_config("mammo_study")
    config.mammo_study.longer = value
    with pytest.raises(configuration.ConfigError, match=r"config\.mammo_study\.longer="):
        configuration.validate(config)
    config.mammo_study.longer = "removal=4,mass=2"
    configuration.validate(config)
