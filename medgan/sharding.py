"""Devices, mesh and shardings: one data-parallel layout for every platform.

docs/ARCHITECTURE.md ("Devices and sharding"): a mesh with a single `data` axis over every device of
every process; batches are sharded over `data`, parameters replicated. The same
code runs on 1 CPU, 8 fake CPU devices, several local processes, a GPU node and
a TPU pod; only `initialize_distributed` differs, and it decides from the
environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"

_MODES = ("auto", "force", "off")


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-d mesh named `data` over `devices` (default: all devices of all processes).

    The axis is `AxisType.Auto`: jitted steps get explicit in/out shardings and
    the compiler propagates the rest. (jax 0.10's `jax.make_mesh` defaults to
    `Explicit` axes, which put shardings into array types and require explicit
    resharding inside model code.)
    """
    devices = jax.devices() if devices is None else list(devices)
    return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(AxisType.Auto,), devices=devices)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over `data`; other dimensions whole."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device (parameters, optimiser state, RNG keys)."""
    return NamedSharding(mesh, P())


def global_from_host(value: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global array from a host value that EVERY process holds in full (e.g. seeded latents).

    Each process fills only its addressable shards, so this works on one
    device, many devices and many processes alike (unlike `make_array_from_
    process_local_data`, whose input is each process's own slice).
    """
    value = np.asarray(value)
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def host_map(fn, rows: np.ndarray, mesh: Mesh, global_batch_size: int) -> np.ndarray:
    """fn over `rows` [N, ...] (a host array every process holds) in global batches; the outputs on every process.

    fn maps a global batch [B, ...] sharded over `data` (B = global_batch_size,
    a multiple of the device count) to an array whose leading axis is the
    batch. The last batch is padded with zeros and its padding dropped, so
    the result is [N, ...] in the order of `rows`.
    """
    from jax.experimental import multihost_utils

    rows = np.asarray(rows)
    outputs = []
    for start in range(0, len(rows), global_batch_size):
        chunk = rows[start:start + global_batch_size]
        padded = np.zeros((global_batch_size, *rows.shape[1:]), rows.dtype)
        padded[:len(chunk)] = chunk
        out = fn(global_from_host(padded, batch_sharding(mesh)))
        outputs.append(np.asarray(multihost_utils.process_allgather(out, tiled=True))[:len(chunk)])
    if not outputs:
        raise ValueError("host_map: no rows")
    return np.concatenate(outputs)


def replicate(value, mesh: Mesh) -> jax.Array:
    """A full copy on every device of every process, from a value each process holds in full.

    For small per-run constants (RNG keys, class weights): `jax.device_put`
    only reaches this process's devices, so in a multi-process job it cannot
    build a replicated array from a local one. Typed PRNG keys travel as their
    key data.
    """
    if isinstance(value, jax.Array) and jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
        data = replicate(jax.random.key_data(value), mesh)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(value))
    return global_from_host(np.asarray(value), replicated(mesh))


def multiprocess_environment(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment describes more than one cooperating process.

    Recognised: a Slurm step with several tasks (the variables jax's own Slurm
    detection reads, so an `sbatch` script outside `srun` does not count), Open
    MPI, GKE TPU slices (TPU_WORKER_HOSTNAMES / TPU_PROCESS_ADDRESSES with more
    than one host), multislice TPU (MEGASCALE_COORDINATOR_ADDRESS), and an
    explicit JAX_COORDINATOR_ADDRESS or JAX_NUM_PROCESSES > 1. A Cloud TPU VM
    pod launched by `gcloud ... ssh --worker=all` sets none of these in the
    environment (jax reads them from the metadata server): use mode="force".
    """

    def count(key: str) -> int:
        return int(environ.get(key, "1") or "1")

    slurm_step = "SLURM_STEP_NODELIST" in environ and "SLURM_PROCID" in environ
    tpu_hosts = environ.get("TPU_PROCESS_ADDRESSES") or environ.get("TPU_WORKER_HOSTNAMES") or ""
    return (
        (slurm_step and count("SLURM_NTASKS") > 1)
        or count("OMPI_COMM_WORLD_SIZE") > 1
        or len([h for h in tpu_hosts.split(",") if h]) > 1
        or bool(environ.get("MEGASCALE_COORDINATOR_ADDRESS"))
        or bool(environ.get("JAX_COORDINATOR_ADDRESS"))
        or count("JAX_NUM_PROCESSES") > 1
    )


def local_device_ids(environ: Mapping[str, str] = os.environ) -> list[int] | None:
    """The local GPUs this process drives, where the scheduler bound one to it; None: jax decides.

    jax's Slurm detection takes `[SLURM_LOCALID]` as the process's GPU, which
    is right when every task sees all GPUs of the node, and wrong when Slurm
    binds one GPU per task (`--gpus-per-task=1`, `--gpu-bind=single:1`): then
    CUDA_VISIBLE_DEVICES names one GPU, which CUDA numbers 0, and task 1's
    `[1]` does not exist. A CUDA_VISIBLE_DEVICES of one GPU in a Slurm step
    therefore gives `[0]`.
    """
    visible = [d for d in environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if "SLURM_PROCID" in environ and len(visible) == 1:
        return [0]
    return None


def initialize_distributed(mode: str = "auto") -> bool:
    """Starts jax's multi-process runtime when the job has several processes.

    Must run before anything touches a device (jax.devices(), a computation).
    Idempotent: a second call returns True without re-initialising.

    Args:
      mode: "auto" initialises when `multiprocess_environment()` says so;
        "force" always does (e.g. Cloud TPU VM pods, where jax's auto-detection
        finds coordinator and process ids itself); "off" never does.

    Returns:
      Whether the distributed runtime is active.

    jax itself reads JAX_COORDINATOR_ADDRESS from the environment; medgan also
    passes JAX_NUM_PROCESSES and JAX_PROCESS_ID when they are set, so a plain
    multi-process launch only needs these three variables; and the GPU a
    Slurm task was bound to (`local_device_ids`).
    """
    if mode not in _MODES:
        raise ValueError(f"initialize_distributed: mode must be one of {_MODES}, got {mode!r}")
    if jax.distributed.is_initialized():
        return True
    if mode == "off" or (mode == "auto" and not multiprocess_environment()):
        return False
    kwargs = {}
    if "JAX_NUM_PROCESSES" in os.environ:
        kwargs["num_processes"] = int(os.environ["JAX_NUM_PROCESSES"])
    if "JAX_PROCESS_ID" in os.environ:
        kwargs["process_id"] = int(os.environ["JAX_PROCESS_ID"])
    if (devices := local_device_ids()) is not None:
        kwargs["local_device_ids"] = devices
    jax.distributed.initialize(**kwargs)
    return True


_BARRIER_USES: dict[str, int] = {}
PROCESS_BARRIER_TIMEOUT_S = 24 * 3600  # preparing a real cohort on process 0 can take hours


def wait_for_processes(name: str, timeout_s: float = PROCESS_BARRIER_TIMEOUT_S) -> None:
    """Blocks until every process reaches the barrier `name`; a no-op in a single process.

    For waits where process 0 works alone (preparing a cohort) and the others
    wait: a barrier of jax's coordination service, which waits `timeout_s`.
    A device collective (multihost_utils.sync_global_devices) would be the
    first collective of the run, and on CPU its gloo context initialisation
    gives up after 30 s. The coordination-service client is reached through
    `jax._src.distributed` (jax has no public barrier API); each name may be
    used many times, every process in the same order.
    """
    if jax.process_count() == 1:
        return
    from jax._src import distributed

    client = distributed.global_state.client
    if client is None:
        raise RuntimeError(f"barrier {name!r}: {jax.process_count()} processes but no distributed client")
    uses = _BARRIER_USES[name] = _BARRIER_USES.get(name, 0) + 1
    client.wait_at_barrier(f"medgan:{name}:{uses}", int(timeout_s * 1000))


class ProcessesDisagree(RuntimeError):
    """Processes that must hold the same value (replicated weights) do not."""


def check_processes_agree(digest: str, what: str) -> None:
    """Raises ProcessesDisagree unless every process passes the same hex `digest`; a no-op in one process.

    Replicated parameters are computed by every process from the same global
    batches, so their hashes must match. A mismatch means the replicas drifted
    apart (a process read other data, or a non-deterministic collective), and
    whatever process 0 saves would not be what the others trained.
    """
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    mine = np.frombuffer(bytes.fromhex(digest), np.uint8)
    everyone = np.asarray(multihost_utils.process_allgather(mine))
    differing = [p for p in range(everyone.shape[0]) if not np.array_equal(everyone[p], everyone[0])]
    if differing:
        raise ProcessesDisagree(f"{what}: processes {differing} hold other values than process 0 "
                                f"(sha256 {digest[:12]}… on process {jax.process_index()})")
