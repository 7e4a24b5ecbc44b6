"""The Dask cluster of `gpumaja batch`, from the value of --cluster.

- `local`: `distributed.LocalCluster`, worker processes (or threads of this process with
  processes=False), one thread per worker by default: one tile series at a time per worker;
- `local-cuda`: `dask_cuda.LocalCUDACluster`, one worker per GPU (dask-cuda gives each worker its
  own CUDA_VISIBLE_DEVICES), device-memory spilling off (gpumaja plans its own device memory);
- `slurm`: `dask_jobqueue.SLURMCluster`, `jobs` batch jobs of one worker each; its options come
  from a TOML/YAML file (any SLURMCluster keyword, plus `jobs`), overridden by the CLI options;
- anything else: the address of a running scheduler (`tcp://host:port`, `tls://...`, `host:port`).

dask-cuda and dask-jobqueue are imported only when asked for; a missing one is an InputError
(exit 2) naming the extra to install. Worker deaths: a tile whose worker dies is re-run on another
worker up to `allowed_failures` times (`distributed.scheduler.allowed-failures`, set here for the
clusters this module starts; a running scheduler keeps its own setting).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from gpumaja.errors import InputError, MissingFileError

log = logging.getLogger(__name__)

KINDS = ("local", "local-cuda", "slurm")
_ADDRESS = re.compile(r"^(?:(?:tcp|tls|ucx|ucxx|inproc|ws|wss)://\S+|[A-Za-z0-9_.\-]+:\d{1,5})$")


@dataclasses.dataclass(frozen=True)
class ClusterOptions:
    """What the --cluster forms accept (None: the library's default)."""

    workers: int | None = None  # local: worker count (default: one per core); local-cuda: GPUs to use
    threads_per_worker: int = 1
    processes: bool = True  # local only: False = worker threads in this process
    memory_limit: str | int | None = "auto"  # host memory per worker (local, local-cuda)
    gpus: str | None = None  # local-cuda: CUDA_VISIBLE_DEVICES, e.g. "0,1"
    dashboard: str | None = None  # dashboard address, e.g. ":8787"; None = off
    config: Path | None = None  # slurm: TOML/YAML file of SLURMCluster keywords (+ jobs)
    slurm: dict[str, Any] = dataclasses.field(default_factory=dict)  # slurm: CLI overrides (+ jobs)
    allowed_failures: int | None = None  # worker deaths a task survives; None: distributed's default
    connect_timeout: float = 30.0  # seconds to reach a running scheduler


def cluster_kind(spec: str) -> str:
    """'local', 'local-cuda', 'slurm' or 'address'; InputError for anything else."""
    if spec in KINDS:
        return spec
    if _ADDRESS.match(spec):
        return "address"
    raise InputError(f"--cluster must be local, local-cuda, slurm or a scheduler address such as "
                     f"tcp://10.0.0.5:8786, got {spec!r}")


def _missing(package: str, extra: str, exc: ImportError) -> InputError:
    return InputError(f"--cluster needs {package}, which is not installed ({exc}); "
                      f"install it with: pip install 'gpumaja[{extra}]'")


def read_cluster_config(path: Path) -> dict[str, Any]:
    """The keywords of a TOML (.toml) or YAML (.yaml/.yml) cluster file; a table/mapping at the top
    (or under a `slurm` key)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError("cluster configuration not found", path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        elif suffix in (".yaml", ".yml"):
            import yaml

            with open(path, encoding="utf-8") as fh:
                doc = yaml.safe_load(fh) or {}
        else:
            raise InputError("cluster configuration must be a .toml, .yaml or .yml file", path)
    except InputError:
        raise
    except Exception as exc:  # tomllib.TOMLDecodeError, yaml.YAMLError, OSError
        raise InputError(f"not a readable cluster configuration ({exc})", path) from None
    if isinstance(doc, dict) and isinstance(doc.get("slurm"), dict) and len(doc) == 1:
        doc = doc["slurm"]
    if not isinstance(doc, dict):
        raise InputError("cluster configuration must be a table of SLURMCluster keywords", path)
    return doc


def slurm_settings(options: ClusterOptions) -> tuple[dict[str, Any], int]:
    """(SLURMCluster keywords, number of jobs): the config file, then the CLI overrides (None ignored)."""
    kwargs = read_cluster_config(options.config) if options.config is not None else {}
    kwargs.update({k: v for k, v in options.slurm.items() if v is not None})
    jobs = kwargs.pop("jobs", 1)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 0:
        raise InputError(f"slurm: 'jobs' must be a non-negative integer, got {jobs!r}", options.config)
    kwargs.setdefault("processes", 1)  # one worker per job: one tile series at a time
    if "cores" not in kwargs or "memory" not in kwargs:
        missing = [k for k in ("cores", "memory") if k not in kwargs]
        if not _jobqueue_default_has(missing):
            raise InputError(f"slurm: {' and '.join(missing)} must be given (--cores/--memory, the cluster "
                             "configuration file, or dask-jobqueue's own jobqueue.slurm configuration)",
                             options.config)
    return kwargs, jobs


def _jobqueue_default_has(keys: list[str]) -> bool:
    import dask

    return all(dask.config.get(f"jobqueue.slurm.{k}", None) is not None for k in keys)


def make_cluster(kind: str, options: ClusterOptions):
    """A started (not scaled) cluster object for kind local / local-cuda / slurm."""
    import dask

    settings = {}
    if options.allowed_failures is not None:
        settings["distributed.scheduler.allowed-failures"] = int(options.allowed_failures)
    # dashboard off: the scheduler still serves /health etc., on a free port rather than 8787
    dash = {"dashboard_address": options.dashboard} if options.dashboard else {"dashboard": False,
                                                                               "dashboard_address": ":0"}
    common = ({"dashboard_address": options.dashboard} if options.dashboard else
              {"dashboard_address": None, "scheduler_kwargs": {"dashboard_address": ":0"}})
    with dask.config.set(settings):
        if kind == "local":
            from distributed import LocalCluster

            return LocalCluster(n_workers=options.workers, threads_per_worker=options.threads_per_worker,
                                processes=options.processes, memory_limit=options.memory_limit, **common)
        if kind == "local-cuda":
            try:
                from dask_cuda import LocalCUDACluster
            except ImportError as exc:
                raise _missing("dask-cuda", "cluster-cuda", exc) from None
            return LocalCUDACluster(n_workers=options.workers, threads_per_worker=options.threads_per_worker,
                                    CUDA_VISIBLE_DEVICES=options.gpus, memory_limit=options.memory_limit,
                                    device_memory_limit=0, **common)
        if kind == "slurm":
            try:
                from dask_jobqueue import SLURMCluster
            except ImportError as exc:
                raise _missing("dask-jobqueue", "cluster", exc) from None
            kwargs, _ = slurm_settings(options)
            kwargs["scheduler_options"] = {**dash, **kwargs.get("scheduler_options", {})}
            try:
                return SLURMCluster(**kwargs)
            except (TypeError, ValueError) as exc:
                raise InputError(f"slurm: bad SLURMCluster settings ({exc})", options.config) from None
    raise ValueError(f"not a cluster kind: {kind!r}")


@contextmanager
def open_client(spec: str, options: ClusterOptions | None = None) -> Iterator[Any]:
    """A `distributed.Client` on the cluster named by `spec` (module docstring); the cluster this
    starts is closed on exit."""
    options = options or ClusterOptions()
    kind = cluster_kind(spec)
    try:
        from distributed import Client
    except ImportError as exc:
        raise _missing("dask.distributed", "cluster", exc) from None
    with ExitStack() as stack:
        if kind == "address":
            try:
                client = Client(spec, timeout=options.connect_timeout)
            except (OSError, TimeoutError) as exc:
                raise InputError(f"--cluster: cannot reach the Dask scheduler at {spec} ({exc})") from None
            stack.callback(client.close)
            log.info("connected to the scheduler at %s (%d workers)", spec,
                     len(client.scheduler_info().get("workers", {})))
        else:
            cluster = make_cluster(kind, options)
            stack.callback(cluster.close)
            if kind == "slurm":
                _, jobs = slurm_settings(options)
                cluster.scale(jobs=jobs)
                log.info("slurm: %d job(s) requested:\n%s", jobs, cluster.job_script())
            client = Client(cluster)
            stack.callback(client.close)
            log.info("%s cluster: %s%s", kind, cluster,
                     f", dashboard {cluster.dashboard_link}" if options.dashboard else "")
        yield client


__all__ = ["ClusterOptions", "cluster_kind", "make_cluster", "open_client", "read_cluster_config",
           "slurm_settings"]
