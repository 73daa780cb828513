"""Job "train_gan": a class-conditional GAN on the train split of a fold, on the shared training loop.

Streams the fold's real training images (global batches sharded over the
mesh) through `gan_step.make_train_step` — one D and one G update per step —
on `loop.train_loop` (orbax checkpoints, resume, SIGTERM, clu metrics).
Every `fid_every` steps the EMA generator is scored by the Fréchet distance
between its samples and the real validation images in the features of the
classifier trained on the real fold (`gan.fid_classifier`); the checkpoint
with the lowest FD is kept and training stops after `fid_patience`
evaluations without improvement, as the study stopped its GANs.

Work directory:
  checkpoints/            orbax checkpoints (latest + best FD)
  samples/step_*.png      fixed-latent grids, one row per label combination
                          (also to TensorBoard under samples/)
  generator/              the selected EMA generator's params (what `synthesize` reads)
  results.json            model, config, steps, FD, speed; written last
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from clu import metric_writers
from jax.experimental import multihost_utils

from medgan import fileio, prepare, train_classifier, visualize
from medgan.data import builders, folds, pipeline
from medgan.eval import fidelity
from medgan.models import gans
from medgan.train import gan_step, loop, sharding

RESULT_FILE = "results.json"
GENERATOR_DIR = "generator"
SAMPLES_DIR = "samples"


# ----------------------------------------------------------------------------- model


def model_config(cfg: ml_collections.ConfigDict, resolution: int, num_labels: int, channels: int) -> dict:
    """The JSON description of a GAN (stored in results.json; `spec_from` rebuilds it)."""
    return {
        "name": cfg.model, "resolution": resolution, "num_labels": num_labels, "channels": channels,
        "latent_dim": cfg.latent_dim, "fmap_base": cfg.fmap_base, "fmap_max": cfg.fmap_max,
        "w_dim": cfg.w_dim, "mapping_layers": cfg.mapping_layers, "dtype": cfg.dtype,
    }


def spec_from(model: dict) -> gans.GanSpec:
    """The `GanSpec` a `model_config` describes."""
    kwargs = {k: v for k, v in model.items() if k not in ("name", "dtype")}
    return gans.make_gan(model["name"], dtype=jnp.dtype(model["dtype"]), **kwargs)


def hyperparameters(cfg: ml_collections.ConfigDict, spec: gans.GanSpec) -> gan_step.GanHyperparameters:
    augment = spec.default_augment if cfg.augment == "" else cfg.augment == "ada"
    return gan_step.GanHyperparameters(
        g_learning_rate=cfg.g_learning_rate, d_learning_rate=cfg.d_learning_rate, ema_decay=cfg.ema_decay,
        lambda_gp=cfg.lambda_gp, drift=cfg.drift, acgan_weight=cfg.acgan_weight, r1_gamma=cfg.r1_gamma,
        pl_weight=cfg.pl_weight, augment=augment, ada_target=cfg.ada_target,
        ada_speed_images=cfg.ada_speed_images, global_batch_size=cfg.global_batch_size,
    )


def growth_schedule(spec: gans.GanSpec, cfg: ml_collections.ConfigDict):
    """step -> (stage px, fade-in alpha) of the step's update; constant (R, 1) for non-progressive models."""
    if not spec.progressive:
        return lambda step: (spec.resolution, 1.0)
    from medgan.models import pggan

    return lambda step: pggan.phase_schedule(
        step, start=cfg.start_resolution, resolution=spec.resolution, steps_per_phase=cfg.steps_per_phase
    )


class PhasedSteps:
    """The loop's `step_fn`: each item {"batch", "stage", "alpha"} goes to the jitted step of its stage.

    A stage compiles once (alpha is a traced argument); growing to the next
    stage compiles that stage's step and keeps every weight (the state holds
    the full-size networks from the start). `stage` / `alpha` of the last
    step are kept for evaluation and sample grids; they are host values from
    the schedule, never read back from the device.
    """

    def __init__(self, spec: gans.GanSpec, hp: gan_step.GanHyperparameters, mesh, rng: jax.Array):
        self.spec, self.hp, self.mesh = spec, hp, mesh
        self.rng = sharding.replicate(rng, mesh)
        self.stage, self.alpha = spec.resolution, 1.0
        self._steps: dict[int, object] = {}

    def __call__(self, state, item):
        self.stage, self.alpha = item["stage"], item["alpha"]
        if self.stage not in self._steps:
            logging.info("compiling the train step of stage %d px", self.stage)
            self._steps[self.stage] = gan_step.make_train_step(self.spec.at_stage(self.stage), self.hp, self.mesh)
        return self._steps[self.stage](state, item["batch"], self.rng, np.float32(self.alpha))

    @property
    def current_spec(self) -> gans.GanSpec:
        return self.spec.at_stage(self.stage)


def scheduled_batches(batches: Iterator, schedule, start_step: int) -> Iterator[dict]:
    """Tags the batch of step s (s = start_step + 1, ...) with its (stage, alpha); schedule takes updates done."""
    for step, batch in enumerate(batches, start=start_step):
        stage, alpha = schedule(step)
        yield {"batch": batch, "stage": stage, "alpha": alpha}


# ----------------------------------------------------------------------------- sampling


class Sampler:
    """Generates images for host-side (z, labels) on the mesh, in padded global batches.

    The same inputs give the same images whatever the batch size or device
    count: z is part of the input, and the noise key of a batch is derived
    from the index of its first row.
    """

    def __init__(self, mesh, global_batch_size: int):
        self.mesh, self.batch = mesh, global_batch_size
        self._samplers: dict[gans.GanSpec, object] = {}

    def __call__(self, spec: gans.GanSpec, params, z: np.ndarray, labels: np.ndarray, rng: jax.Array,
                 alpha: float = 1.0) -> Iterator[tuple[jax.Array, np.ndarray]]:
        """Yields (images [G, R, R, C] global array, mask [G] host bool) per batch of at most G rows."""
        if spec not in self._samplers:
            self._samplers[spec] = gan_step.make_sampler(spec, self.mesh)
        sample = self._samplers[spec]
        data = sharding.batch_sharding(self.mesh)
        for start in range(0, len(z), self.batch):
            n = min(self.batch, len(z) - start)
            pad = self.batch - n
            zb = np.concatenate([z[start:start + n], np.zeros((pad, z.shape[1]), np.float32)])
            lb = np.concatenate([labels[start:start + n], np.zeros((pad, labels.shape[1]), np.float32)])
            images = sample(params, sharding.global_from_host(zb, data), sharding.global_from_host(lb, data),
                            jax.random.fold_in(rng, start), np.float32(alpha))
            yield images, np.arange(self.batch) < n


def latents(seed: int, count: int, latent_dim: int) -> np.ndarray:
    """z [count, Z] float32, row i from its own key (fold_in(seed key, i)): independent of batching."""
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(jnp.arange(count))
    return np.asarray(jax.vmap(lambda k: jax.random.normal(k, (latent_dim,), jnp.float32))(keys))


# ----------------------------------------------------------------------------- the job


@dataclasses.dataclass
class _AfterGrowth:
    """Early stopping on FD that only counts evaluations of the fully grown generator."""

    inner: loop.PlateauController

    def __call__(self, state, metrics, step):
        if metrics.get("growing", 0.0):
            return state, False
        return self.inner(state, metrics, step)

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state):
        self.inner.load_state_dict(state)


GROWING_FD = 1e9  # the selection metric while a progressive model is still growing (never the best)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    result_path = os.path.join(workdir, RESULT_FILE)
    if os.path.exists(result_path):
        result = fileio.read_json(result_path)
        print(f"{result_path} exists: GAN already trained ({result['steps']} steps)")
        return result
    cfg = config.gan
    sharding.initialize_distributed(config.distributed)
    mesh = sharding.make_mesh()
    if cfg.global_batch_size % jax.device_count():
        raise ValueError(f"config.gan.global_batch_size={cfg.global_batch_size} is not divisible by the "
                         f"{jax.device_count()} devices")
    prepared = prepare.prepare_cohort(config.data, workdir)
    fold = train_classifier.fold_of(config, workdir, prepared)
    class_names = tuple(prepared.class_names)
    model = model_config(cfg, prepared.resolution, len(class_names), prepared.channels)
    spec = spec_from(model)
    hp = hyperparameters(cfg, spec)
    key = jax.random.key(config.seed)
    init_key, step_key, sample_key = jax.random.split(key, 3)
    state = gan_step.create_gan_state(spec, hp, init_key, mesh)
    steps = PhasedSteps(spec, hp, mesh, step_key)
    schedule = growth_schedule(spec, cfg)
    sampler = Sampler(mesh, cfg.global_batch_size)

    # Fixed latents: one row of the grid per label combination of the fold.
    grid_labels = np.repeat(np.array(fold.combinations, np.float32), cfg.samples_per_combination, axis=0)
    grid_z = latents(config.seed + 1, len(grid_labels), spec.latent_dim)
    samples_dir = os.path.join(workdir, SAMPLES_DIR)
    sample_writer = metric_writers.create_default_writer(samples_dir, just_logging=jax.process_index() > 0)

    def write_samples(step: int, params) -> str:
        images = np.concatenate([
            multihost_utils.process_allgather(batch, tiled=True)[mask]
            for batch, mask in sampler(steps.current_spec, params, grid_z, grid_labels, sample_key, steps.alpha)
        ])
        path = os.path.join(samples_dir, f"step_{step:07d}.png")
        if jax.process_index() == 0:
            captions = [visualize.caption(row, class_names) for row in grid_labels]
            visualize.save_labelled_grid(path, images, captions, columns=cfg.samples_per_combination,
                                         title=f"{cfg.model} EMA generator, step {step} "
                                               f"({steps.stage} px, alpha {steps.alpha:.2f})")
            grid = _tile(visualize.to_uint8(images), cfg.samples_per_combination)
            sample_writer.write_images(step, {"samples": grid[None]})
        return path

    def sample_hook(step: int, state) -> None:
        if step % cfg.sample_every == 0:
            write_samples(step, state.ema_params)

    evaluate, real_stats = None, {}
    if cfg.fid_classifier:
        features_fn, feature_dim = train_classifier.load_feature_extractor(cfg.fid_classifier)
        val_labels = train_classifier.labels_of(prepared.dataset_dir, fold.ids["val"])
        fid_labels = val_labels[np.arange(cfg.fid_samples) % len(val_labels)]
        fid_z = latents(config.seed + 2, cfg.fid_samples, spec.latent_dim)

        def evaluate(state) -> dict[str, float]:
            if "val" not in real_stats:
                real_stats["val"] = fidelity.accumulate(
                    pipeline.EvalBatches(prepared.dataset_dir, fold.ids["val"], mesh=mesh,
                                         global_batch_size=cfg.global_batch_size),
                    features_fn, feature_dim,
                )
            synthetic = fidelity.accumulate(
                ({"image": jnp.clip(images, -1.0, 1.0), "mask": jnp.asarray(mask)} for images, mask in
                 sampler(steps.current_spec, state.ema_params, fid_z, fid_labels, sample_key, steps.alpha)),
                features_fn, feature_dim,
            )
            fd = fidelity.frechet_distance_of(real_stats["val"], synthetic)
            growing = steps.stage != spec.resolution or steps.alpha < 1.0
            return {"fd": fd, "fd_final": GROWING_FD if growing else fd, "growing": float(growing)}

    controller = None
    if evaluate is not None and cfg.fid_patience:
        controller = _AfterGrowth(loop.PlateauController(metric="fd_final", mode="min",
                                                         early_stop_patience=cfg.fid_patience))
    start = time.perf_counter()
    outcome = loop.train_loop(
        workdir=workdir,
        state=state,
        step_fn=steps,
        make_batches=lambda start_step: scheduled_batches(
            pipeline.train_batches(prepared.dataset_dir, fold.ids["train"], global_batch_size=cfg.global_batch_size,
                                   mesh=mesh, seed=config.seed, start_step=start_step),
            schedule, start_step,
        ),
        num_steps=cfg.num_steps,
        checkpoint_every=cfg.checkpoint_every,
        log_every=cfg.log_every,
        eval_every=cfg.fid_every if evaluate is not None else None,
        evaluate=evaluate,
        controller=controller,
        best_metric="fd_final" if evaluate is not None else None,
        best_mode="min",
        hooks=(sample_hook,),
    )
    wall = time.perf_counter() - start
    sample_writer.flush()
    if outcome.reason == loop.PREEMPTED:
        print(f"preempted at step {outcome.steps}: checkpoint saved; run the same command again to continue")
        return {"status": loop.PREEMPTED, "steps": outcome.steps}
    selected = outcome.state
    if outcome.best_state is not None and outcome.best_value is not None and outcome.best_value < GROWING_FD:
        selected = outcome.best_state
    steps.stage, steps.alpha = schedule(outcome.steps)
    final_grid = write_samples(outcome.steps, selected.ema_params)
    generator_dir = os.path.join(workdir, GENERATOR_DIR)
    save_generator(generator_dir, selected.ema_params)
    result = {
        "model": model,
        "config": cfg.to_dict(),
        "hyperparameters": dataclasses.asdict(hp),
        "dataset": prepared.name,
        "class_names": list(class_names),
        "fold_manifest": config.fold.manifest or os.path.join(workdir, "manifest.json"),
        "train_images": len(fold.ids["train"]),
        "steps": outcome.steps,
        "stopped": outcome.reason,
        "selected_step": outcome.best_step if selected is outcome.best_state else outcome.steps,
        "best_fd": outcome.best_value if selected is outcome.best_state else None,
        "ada_p": float(jax.device_get(selected.ada_p)),
        "generator": GENERATOR_DIR,
        "generator_sha256": params_sha256(selected.ema_params),
        "samples": os.path.relpath(final_grid, workdir),
        "train_images_per_second": outcome.images_per_second(cfg.global_batch_size),
        "wall_seconds": wall,
        "seed": config.seed,
    }
    if jax.process_index() == 0:
        fileio.write_json(result_path, result)
        fd = "n/a" if result["best_fd"] is None else f"{result['best_fd']:.2f}"
        print(f"{cfg.model}: {outcome.steps} steps ({outcome.reason}), FD {fd} at step {result['selected_step']}, "
              f"{result['train_images_per_second'] or 0:.0f} img/s")
        print(f"  samples: {final_grid}")
        print(f"  results: {result_path}")
    return result


# ----------------------------------------------------------------------------- export


def save_generator(path: str, ema_params) -> None:
    """Writes the EMA generator params to `path` (orbax, atomic; every process takes part)."""
    import orbax.checkpoint as ocp

    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(os.path.abspath(path), {"params": ema_params}, force=True)
        checkpointer.wait_until_finished()


def load_generator(gan_dir: str, mesh) -> tuple[gans.GanSpec, dict, dict]:
    """(spec, EMA params replicated on `mesh`, results.json) of a finished train_gan run."""
    import orbax.checkpoint as ocp

    result_path = os.path.join(gan_dir, RESULT_FILE)
    if not os.path.exists(result_path):
        raise FileNotFoundError(f"{result_path} does not exist: {gan_dir} is not a finished train_gan run")
    result = fileio.read_json(result_path)
    spec = spec_from(result["model"])
    abstract = jax.eval_shape(lambda: gan_step.init_params(spec, jax.random.key(0))[0])
    repl = sharding.replicated(mesh)
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=repl), abstract)
    with ocp.StandardCheckpointer() as checkpointer:
        params = checkpointer.restore(os.path.abspath(os.path.join(gan_dir, result["generator"])),
                                      {"params": target})["params"]
    return spec, params, result


def params_sha256(params) -> str:
    """SHA-256 over every parameter's path, dtype, shape and bytes: the weights' identity.

    Independent of when and how they were saved (orbax's files carry
    timestamps), so a resumed run that reaches the same weights as an
    uninterrupted one has the same hash. Parameters are replicated: each leaf's
    first local copy is the whole array.
    """
    import hashlib

    digest = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        if isinstance(leaf, jax.Array):
            if not leaf.is_fully_replicated:
                raise ValueError(f"parameter {jax.tree_util.keystr(path)} is sharded; expected replicated parameters")
            leaf = leaf.addressable_data(0)
        value = np.ascontiguousarray(np.asarray(leaf))
        digest.update(f"{jax.tree_util.keystr(path)}|{value.dtype}|{value.shape}|".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _tile(images: np.ndarray, columns: int) -> np.ndarray:
    """[N, H, W, C] uint8 -> one [rows*H, columns*W, C] mosaic (missing cells black)."""
    n, h, w, c = images.shape
    rows = -(-n // columns)
    canvas = np.zeros((rows * h, columns * w, c), np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        canvas[r * h:(r + 1) * h, col * w:(col + 1) * w] = image
    return canvas
