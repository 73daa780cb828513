"""What every job does first and how it reports a preemption, written once.

A job (`medgan/jobs/*.py`, run by `medgan.main`) reads its config, calls the
library, and writes its result last. `begin` returns the result of a finished
earlier run in the same work directory (the job then returns it unchanged), or
joins the distributed run, builds the device mesh and checks that every
global batch of the config splits over its devices.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import ml_collections
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from medgan import configuration, sharding, workdir as workdir_lib
from medgan.workdir import PREEMPTED, RESULT_FILE


def begin(config: ml_collections.ConfigDict, workdir: str, describe: Callable[[dict], str],
          result_file: str = RESULT_FILE) -> tuple[dict | None, Mesh | None]:
    """(result of a finished earlier run, None), or (None, the mesh over every device) to start work."""
    previous = workdir_lib.finished_result(workdir, describe, result_file)
    if previous is not None:
        return previous, None
    sharding.initialize_distributed(config.distributed)
    mesh = sharding.make_mesh()
    configuration.check_devices(config, mesh.size)  # before anything compiles or reads the cohort
    return None, mesh


def preempted(steps: int) -> dict:
    """The result of a job stopped by SIGTERM after saving its checkpoint at `steps`."""
    print(f"preempted at step {steps}: checkpoint saved; run the same command again to continue")
    return {"status": PREEMPTED, "steps": steps}


def barrier(name: str) -> None:
    """Other processes read what process 0 wrote (results.json, manifests) only after it wrote them."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)
