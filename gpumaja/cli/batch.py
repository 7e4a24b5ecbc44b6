"""`gpumaja batch`: L2A of many tile series on a Dask cluster (one task per tile series)."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from gpumaja.cli.common import Device, print_json, progress_bar, state, stdout
from gpumaja.cli.l2a import SeriesMode


def _absolute(path: Path | None) -> Path | None:
    return None if path is None else path.expanduser().absolute()


def batch(
    manifest: Path = typer.Argument(..., help="Tile series to process: a JSON manifest "
                                    '({"tiles": [{"tile": ..., "inputs": [...], "dem": ...}]}) or a text file '
                                    "with one folder of L1C products per line."),
    out: Path = typer.Option(..., "--out", help="Folder for every tile's MUSCATE products and batch_summary.json."),
    cluster: str = typer.Option("local", "--cluster", help="local (worker processes on this machine), "
                                "local-cuda (one worker per GPU, dask-cuda), slurm (dask-jobqueue) or the "
                                "address of a running scheduler (tcp://host:port)."),
    workers: int = typer.Option(None, "--workers", min=1, help="local: number of workers (default one per core); "
                                "local-cuda: number of GPUs to use (default all)."),
    threads_per_worker: int = typer.Option(1, "--threads-per-worker", min=1, help="local/local-cuda: tasks a "
                                           "worker runs at once."),
    processes: bool = typer.Option(True, "--processes/--threads", help="local: workers as processes (default) "
                                   "or as threads of this process."),
    memory_limit: str = typer.Option("auto", "--memory-limit", help="local/local-cuda: host memory per worker "
                                     "(e.g. 16GB; auto = RAM / workers; 0 = no limit)."),
    gpus: str = typer.Option(None, "--gpus", help="local-cuda: the GPUs to use, e.g. 0,1 (default all)."),
    dashboard: str = typer.Option(None, "--dashboard", help="Serve the Dask dashboard at this address, "
                                  "e.g. :8787 (default off)."),
    cluster_config: Path = typer.Option(None, "--cluster-config", help="slurm: TOML/YAML file of SLURMCluster "
                                        "settings (queue, account, walltime, cores, memory, "
                                        "job_extra_directives, ..., and jobs)."),
    queue: str = typer.Option(None, "--queue", help="slurm: partition."),
    account: str = typer.Option(None, "--account", help="slurm: account."),
    walltime: str = typer.Option(None, "--walltime", help="slurm: wall time of a job, e.g. 04:00:00."),
    cores: int = typer.Option(None, "--cores", min=1, help="slurm: cores per job."),
    memory: str = typer.Option(None, "--memory", help="slurm: memory per job, e.g. 64GB."),
    jobs: int = typer.Option(None, "--jobs", min=0, help="slurm: number of jobs (one worker each; default 1)."),
    retries: int = typer.Option(2, "--retries", min=0, help="Times a failed tile, or a tile whose worker died, is "
                                "tried again."),
    lock_timeout: float = typer.Option(None, "--lock-timeout", min=0, help="Seconds a task waits for another "
                                       "attempt of its tile to end (default: no limit)."),
    device: Device = typer.Option(Device.auto, "--device", help="auto: each worker's GPU if CuPy sees one, "
                                  "else the CPU."),
    dem: Path = typer.Option(None, "--dem", help="DEM for the entries that give none."),
    gipp: Path = typer.Option(None, "--gipp", help="MAJA GIPP folder for the entries that give none."),
    lut: Path = typer.Option(None, "--lut", help="LUT file for the entries that give none."),
    params: Path = typer.Option(None, "--params", help="Parameter file for the entries that give none."),
    cache: Path = typer.Option(None, "--cache", help="Decoded-band cache folder (as 'gpumaja l2a --cache'); on a "
                               "cluster, a folder every worker can reach."),
    decode_workers: int = typer.Option(None, "--decode-workers", min=1, help="Decode threads per tile task "
                                       "(default: GPUMAJA_DECODE_WORKERS, else the number of CPUs)."),
    mode: SeriesMode = typer.Option(SeriesMode.auto, "--mode", help="As for 'gpumaja l2a'."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the products and checkpoints already in "
                                   "--out (default: resume; complete products are skipped)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """L2A of every tile series of a manifest on a Dask cluster, one task per tile: resumable
    (complete products are skipped, interrupted series resume), failed tiles retried, a summary in
    OUT/batch_summary.json. Exit 0 when every tile succeeded, 1 when some failed."""
    from gpumaja.cluster import ClusterOptions, cluster_kind, open_client
    from gpumaja.errors import MissingFileError
    from gpumaja.io.manifest import read_manifest
    from gpumaja.pipeline.batch import SUMMARY_FILE, BatchOptions, run_batch

    entries = read_manifest(manifest)  # every check of the manifest before the cluster starts
    cluster_kind(cluster)
    for option, path in (("--dem", dem), ("--gipp", gipp), ("--lut", lut), ("--params", params),
                         ("--cluster-config", cluster_config)):
        if path is not None and not path.exists():
            raise MissingFileError(f"{option}: not found", path)
    limit: str | int | None = 0 if memory_limit.strip() == "0" else memory_limit
    copts = ClusterOptions(
        workers=workers, threads_per_worker=threads_per_worker, processes=processes, memory_limit=limit,
        gpus=gpus, dashboard=dashboard, config=cluster_config,
        slurm={"queue": queue, "account": account, "walltime": walltime, "cores": cores, "memory": memory,
               "jobs": jobs},
        allowed_failures=retries)
    level = logging.DEBUG if state["verbose"] else logging.WARNING if state["quiet"] else logging.INFO
    opts = BatchOptions(out=out.expanduser().absolute(), device=device.value, mode=mode.value, overwrite=overwrite,
                        dem=_absolute(dem), gipp=_absolute(gipp), lut=_absolute(lut), params=_absolute(params),
                        cache=_absolute(cache), decode_workers=decode_workers, lock_timeout=lock_timeout,
                        log_level=level)
    with open_client(cluster, copts) as client, progress_bar("batch", len(entries)) as advance:
        def on_event(msg: dict) -> None:
            if msg.get("event") == "step":
                advance(0, description=f"batch: {msg['tile']} step {msg['step']}/{msg['steps']}")
            elif msg.get("event") == "start" and msg.get("attempt", 1) > 1:
                advance(0, description=f"batch: {msg['tile']} attempt {msg['attempt']}")

        def on_done(record: dict) -> None:
            advance(1, description=f"batch: {record['tile']} {record['status']}")

        summary = run_batch(entries, opts, client, retries=retries, on_event=on_event, on_done=on_done,
                            meta={"manifest": str(manifest.expanduser().absolute()), "cluster": cluster})
    totals = summary["totals"]
    if json_out:
        print_json(summary)
    else:
        for r in summary["tiles"]:
            if r["status"] == "ok":
                stdout.print(f"{r['tile']}  ok  {len(r['products'])} product(s): {r['written']} written, "
                             f"{r['skipped']} skipped  attempts {r['attempts']}  {r['seconds']:.1f} s",
                             highlight=False, markup=False)
            else:
                stdout.print(f"{r['tile']}  FAILED  {r['error']['type']}: {r['error']['message']}",
                             highlight=False, markup=False)
        stdout.print(f"{totals['ok']}/{totals['tiles']} tile(s) ok, {totals['failed']} failed; summary in "
                     f"{Path(summary['out']) / SUMMARY_FILE}", highlight=False)
    if totals["failed"]:
        raise typer.Exit(1)
