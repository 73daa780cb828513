"""The study's GAN presets: medgan's schedule objects against the study's TrainingSchedule, and per-stage batches.

The oracle is the study's schedule rule (GAN_prog/train.py `TrainingSchedule`),
restated here as a function of kimg: phase index and lod from
`lod_training_kimg` / `lod_transition_kimg`, the resolution of floor(lod) and
its minibatch from `minibatch_dict`. medgan's `GrowthSchedule` counts steps,
so every comparison goes through its images-shown conversion.
"""

import math

import jax
import numpy as np
import pytest

from medgan import configuration, sharding
from medgan.models import gans
from medgan.study import presets
from medgan.train import gan_step, progressive

# GAN_prog/config.py, 32x32 '-preset-v2-1gpu' and GAN_cpd/config.py, 32x32 '-preset-v2-1gpu'.
PROG_32 = dict(initial=8, minibatch={8: 256, 16: 128, 32: 64}, training_kimg=1400, transition_kimg=1400,
               total_kimg=12000, minimum_fid_kimg=7000)
CPD_32 = dict(minibatch=256, lrate=0.005, total_kimg=12000, minimum_fid_kimg=7000)


def study_schedule(kimg: float, resolution: int, initial: int, minibatch: dict, training_kimg: float,
                   transition_kimg: float, **_) -> tuple[int, float, int]:
    """(resolution, alpha of the new block, minibatch) at `kimg` by the study's TrainingSchedule rule."""
    phase_dur = training_kimg + transition_kimg
    phase_idx = math.floor(kimg / phase_dur)
    phase_kimg = kimg - phase_idx * phase_dur
    lod = math.log2(resolution) - math.floor(math.log2(initial)) - phase_idx
    lod -= max(phase_kimg - training_kimg, 0.0) / transition_kimg
    lod = max(lod, 0.0)
    res = 2 ** (int(math.log2(resolution)) - math.floor(lod))
    return res, 1.0 - (lod - math.floor(lod)), minibatch[res]


def study_gan(model: str, resolution: int, devices: int = 1, **kw):
    cfg = configuration.base_config("benchmark")
    cfg.data.resolution = resolution
    applied = presets.apply_study_gan(cfg.gan, model, resolution, devices, **kw)
    configuration.validate(cfg)
    schedule = progressive.GrowthSchedule.of(cfg.gan, resolution=resolution, progressive=model == "pggan")
    return cfg.gan, schedule, applied


def test_pggan_32_matches_the_study_schedule():
    gan, schedule, applied = study_gan("pggan", 32)
    kimg_of = lambda step: schedule.images_at(step) / 1000  # noqa: E731
    # the phases: 8 px, fade-in and stabilisation of 16 px, then of 32 px; each stage at its own batch
    assert [(p.stage, p.fade) for p in schedule.phases] == [(8, False), (16, True), (16, False), (32, True),
                                                            (32, False)]
    assert {p.stage: p.batch for p in schedule.phases} == PROG_32["minibatch"]
    # each phase lasts 1,400 kimg to within half a batch of its stage (a whole number of steps), so the
    # boundaries fall every 1,400 kimg to within the half batches of the phases before them
    slack = 0.0
    for i, (phase, start) in enumerate(zip(schedule.phases, schedule.starts)):
        assert abs(kimg_of(start) - i * PROG_32["training_kimg"]) <= slack + 1e-9
        assert abs(phase.steps * phase.batch - PROG_32["training_kimg"] * 1000) <= phase.batch / 2
        slack += phase.batch / 2000
    # inside each phase (a quarter, half and three quarters in), stage, alpha and batch are the study's
    for phase, start in zip(schedule.phases[:-1], schedule.starts):
        for frac in (0.25, 0.5, 0.75):
            step = start + int(frac * phase.steps)
            stage, alpha = schedule(step)
            res, study_alpha, minibatch = study_schedule(kimg_of(step), 32, **PROG_32)
            assert (stage, schedule.batch_at(step)) == (res, minibatch)
            assert alpha == pytest.approx(study_alpha, abs=2e-4)
    # the whole run: 12,000 kimg, the last step crossing it
    assert gan.num_steps == applied.num_steps
    assert kimg_of(gan.num_steps) >= PROG_32["total_kimg"] > kimg_of(gan.num_steps - 1)
    # FD patience counts from 7,000 kimg, when the 32 px stage has stabilised
    fid_start = schedule.step_at_images(gan.fid_start_kimg * 1000)
    assert kimg_of(fid_start) >= PROG_32["minimum_fid_kimg"] > kimg_of(fid_start - 1)
    assert schedule(fid_start) == (32, 1.0) and study_schedule(kimg_of(fid_start), 32, **PROG_32)[:2] == (32, 1.0)
    assert gan.fid_patience == 2 and gan.g_learning_rate == gan.d_learning_rate == 0.001
    assert gan.fid_every * 64 == pytest.approx(400_000, abs=64)  # 4 ticks of 100 kimg at 32 px


@pytest.mark.parametrize("resolution", [32, 64, 128])
def test_pggan_fid_starts_after_the_last_stabilisation(resolution):
    """The rule the 256/512 px presets extrapolate holds at the study's three resolutions."""
    gan, schedule, _ = study_gan("pggan", resolution)
    grown = schedule.starts[-1] + schedule.phases[-2].steps  # the last stabilisation lasts a phase too
    assert schedule.images_at(grown) / 1000 == pytest.approx(gan.fid_start_kimg, abs=0.5)


def test_cpd_32_matches_the_study():
    gan, schedule, applied = study_gan("cpd", 32)
    assert [(p.stage, p.fade, p.batch) for p in schedule.phases] == [(32, False, CPD_32["minibatch"])]
    assert gan.global_batch_size == CPD_32["minibatch"]
    assert gan.g_learning_rate == gan.d_learning_rate == CPD_32["lrate"]
    assert schedule.images_at(gan.num_steps) == CPD_32["total_kimg"] * 1000  # 46,875 steps of 256
    fid_start = schedule.step_at_images(gan.fid_start_kimg * 1000)  # the first step past 7,000 kimg
    assert schedule.images_at(fid_start) >= CPD_32["minimum_fid_kimg"] * 1000 > schedule.images_at(fid_start - 1)
    assert gan.fid_patience == 2 and applied.fits


def test_presets_cover_the_study_resolutions_and_extrapolate_above():
    for model in ("pggan", "cpd"):
        for px in (32, 64, 128):
            assert presets.preset(model, px).source.startswith("GAN_")
        for px in (256, 512):
            assert presets.preset(model, px).source.startswith("extrapolated")
    assert presets.preset("pggan", 128).batch_by_resolution[-1] == (128, 16)
    assert presets.preset("stylegan2", 32) is None
    with pytest.raises(ValueError, match="presets are at"):
        presets.preset("cpd", 1024)


def test_stylegan2_keeps_medgans_settings():
    cfg = configuration.base_config("benchmark")
    before = cfg.gan.to_dict()
    assert presets.apply_study_gan(cfg.gan, "stylegan2", 64, 8) is None
    assert cfg.gan.to_dict() == before


def test_batches_split_over_devices_and_report_fit():
    gan, _, applied = study_gan("cpd", 128, devices=8, per_device_batch=16)
    assert gan.global_batch_size == 256 and applied.min_devices == 16 and not applied.fits
    gan, schedule, applied = study_gan("cpd", 128, devices=8, per_device_batch=16, cap=True)
    assert gan.global_batch_size == 128 and applied.capped and applied.fits
    assert schedule.images_at(gan.num_steps) == 16_000_000  # a capped run still shows the study's kimg
    gan, schedule, _ = study_gan("pggan", 32, devices=3)
    assert all(p.batch % 3 == 0 for p in schedule.phases)


def test_defaults_keep_the_constant_batch_step_schedule():
    from medgan.models import pggan

    cfg = configuration.gan_config()
    cfg.steps_per_phase, cfg.global_batch_size = 5, 8
    schedule = progressive.GrowthSchedule.of(cfg, resolution=32, progressive=True)
    for step in range(40):
        assert schedule(step) == pggan.phase_schedule(step, start=8, resolution=32, steps_per_phase=5)
        assert schedule.batch_at(step) == 8 and schedule.images_at(step) == 8 * step
    assert progressive.num_steps(schedule, cfg) == cfg.num_steps
    assert schedule.batch_segments() == [(0, 8)]


def test_rebatched_resumes_where_an_uninterrupted_run_was():
    cfg = configuration.gan_config()
    cfg.update(steps_per_phase=2, global_batch_size=4, batch_by_resolution=((8, 16), (16, 8)))
    schedule = progressive.GrowthSchedule.of(cfg, resolution=32, progressive=True)
    assert schedule.batch_segments() == [(0, 16), (2, 8), (6, 4)]

    def stream(batch, offset, start):
        return ((batch, offset, i) for i in range(start, 10**6))

    whole = list(zip(range(12), progressive.rebatched(stream, schedule, 0)))
    assert [b for _, (b, _, _) in whole] == [schedule.batch_at(s) for s in range(12)]
    for start in range(12):
        resumed = list(zip(range(12 - start), progressive.rebatched(stream, schedule, start)))
        assert [x for _, x in resumed] == [x for _, x in whole[start:]]


def test_each_stage_trains_at_its_own_batch(monkeypatch):
    """A tiny pggan growing 8 -> 16 px with batches 8 then 4: the jitted step receives each."""
    seen = []
    make = gan_step.make_train_step

    def recording(spec, hp, mesh):
        step = make(spec, hp, mesh)

        def run(state, batch, rng, alpha, updates):
            seen.append((spec.generator.stage, hp.global_batch_size, batch["image"].shape[0]))
            return step(state, batch, rng, alpha, updates)

        return run

    monkeypatch.setattr(gan_step, "make_train_step", recording)
    mesh = sharding.make_mesh(jax.devices()[:1])
    spec = gans.make_gan("pggan", resolution=16, num_labels=3, latent_dim=16, fmap_base=64, fmap_max=8)
    cfg = configuration.gan_config()
    cfg.update(start_resolution=8, steps_per_phase=1, global_batch_size=4, batch_by_resolution=((8, 8),))
    schedule = progressive.GrowthSchedule.from_config(spec, cfg)
    hp = gan_step.GanHyperparameters.from_config(cfg, spec)
    state = gan_step.create_gan_state(spec, hp, jax.random.key(0), mesh)
    steps = progressive.PhasedSteps(spec, hp, mesh, jax.random.key(1))

    def stream(batch, offset, start):
        rng = np.random.default_rng(offset)
        while True:
            yield jax.device_put({
                "image": np.tanh(rng.normal(size=(batch, 16, 16, 1))).astype(np.float32),
                "labels": np.eye(3, dtype=np.float32)[rng.integers(0, 3, batch)],
            }, sharding.batch_sharding(mesh))

    items = progressive.scheduled_batches(progressive.rebatched(stream, schedule, 0), schedule, 0)
    for _, item in zip(range(4), items):
        state, metrics = steps(state, item)
    assert seen == [(8, 8, 8), (16, 4, 4), (16, 4, 4), (16, 4, 4)]
    assert np.isfinite(float(metrics["d_loss"])) and steps.updates == 4
    assert sorted(steps._steps) == [8, 16]


def test_use_step_schedule_hands_the_length_back_to_steps():
    gan, _, _ = study_gan("pggan", 32)
    presets.use_step_schedule(gan)
    gan.num_steps, gan.steps_per_phase, gan.global_batch_size = 4, 1, 8
    schedule = progressive.GrowthSchedule.of(gan, resolution=32, progressive=True)
    assert progressive.num_steps(schedule, gan) == 4 and schedule.batch_segments() == [(0, 8)]
