"""Memory planning of the L2A series driver: how many dates to read ahead, whether the 10/20 m group
work runs on the whole image or in row strips, whether the coarse composite stays on the device and
whether the cloud-shadow stage runs on it.

MAJA streams its images in strips of 500 lines to stay within a RAM budget (maja-l2a.md §6,
`MAJAUserConfig_SENTINEL2_MUSCATE.xml`); gpumaja keeps the coarse chain (a ~458 x 458 grid for a full
S2 tile) whole and streams only the fine per-pixel stage (`pipeline/l2a_group.py`, §3.6, §3.7, §1.11)
when the whole image does not fit.

Byte model (per pixel; float32 = 4 bytes), read from the code of the stages it describes:

- Input resident for a date, per band-pixel of every group (`pipeline/l2a_inputs.read_group`): TOA
  float32 + saturated bool = 5 bytes; while a date is being read: the DN uint16 and the flag byte,
  3 bytes more.
- Group stage (`l2a_group.group_products`), per fine pixel of the strip being computed: at most three
  (nb, rows, w) float32 cubes are alive at once (toa|toas -> unif, env, sre -> fre: inside
  environment_correction unif + env + sre, inside slope_correction sre + env + fre) = 12 bytes per
  band; plus altitude, water vapour, AOT, slope, aspect (5 float32), two deg2rad temporaries, the
  bilinear resampling temporaries (`morphology.resample_float`: row and column products, numerator,
  denominator: 6 float32) and edge / MG2 / SAT bytes = 55 bytes. `group_masks` alone needs less (about a
  dozen bool masks, three uint8 outputs and the same resampling temporaries: MASKS_FIXED_BYTES = 39);
  with the 10/20 m cloud evidence (`fine_cloud_masks`, `pipeline/fine_evidence.py`) it also computes
  today's TOCR of two bands on the finest group, k x k source pixels per pixel of a group k times
  coarser (S2 R1: k = 1, R2: k = 2): EVIDENCE_SOURCE_BYTES = 48 per source pixel (the two bands' TOA
  copy, TOA*, TOCR, altitude, water vapour, AOT, and HOT and red stacked for the block mean) and
  EVIDENCE_FIXED_BYTES = 49 per pixel (composite HOT, age and red with their resampling temporaries,
  the block-mean HOT and red, cloud and shadow support, cirrus and shadow-zone bytes): 136 bytes per R1
  pixel, 280 per R2 pixel, more than `group_products` of 4 and 6 bands (103 and 127). A group's bytes
  per pixel are the larger of the two stages.
- Coarse chain (`l2a_date.process_date`), per coarse pixel: about 8 float32 per band (TOA, TOA*,
  TOCR, TOC, environment, saturation, block-mean temporaries) and 64 float32 of single-band maps
  (masks, AOT, water vapour, altitude, slope, cloud tests).
- Composite (`gpumaja.composite`), per coarse pixel: RTA/RCR/RTC (3 float32 per band), STO
  (number_of_stack_images float32), PWA/TWA (water_mask_number bytes each), PXD int32, NDT, CLD.
- On the CPU the outputs also live in the same memory: SRE + FRE float32 per band, W and AOT float32,
  5 mask bytes per fine pixel of every group, and the terrain (altitude, slope, aspect float32) per
  group grid. On the GPU those are host arrays and do not count against the device.
- Cloud-shadow stage (`masks/shadow.cloud_shadows`, §1.9; it runs in the coarse chain, before the
  group stage, so its temporaries take the group stage's place, not more), with n_alt =
  len(candidate_heights(params)) rays (33) per cloudy coarse pixel, every coarse pixel assumed cloudy:
  - SHADOW_BYTES_PER_PIXEL = 109 per coarse pixel: the DTM and the four angle fields as float64 host
    copies (40), the cloud pixels' flat indices (int64, on the device and on the host) and labels
    (int64) (24), `select_shadows`' float64 darkening and shadow mask (9) and its per-label counts and
    flags (36, at most one label per pixel).
  - one chunk of `shadow_zone_pairs` (SHADOW_RAYS_PER_CHUNK rays rounded down to whole cloud pixels,
    fewer when the grid has fewer rays): SHADOW_BYTES_PER_RAY = 29 per ray (the landing int32 4, the
    keys label * n + landing int64 8, the landed mask 1, the landed keys 8, CuPy's boolean-indexing
    scan 8; the sort and the distinct step that follow need less: 16 and 25) and
    SHADOW_BYTES_PER_CHUNK_PIXEL = 136 per cloud pixel of the chunk (its ray fields: at most 16 float64
    in `_ray_fields` and the pixel's row, column and DTM; its int64 label).
  - CPU only, the NumPy twin's march (`shadow_landing_numpy`, sub-chunks of at most 2^18 rays):
    SHADOW_TWIN_BYTES_PER_RAY = 256 per ray of a sub-chunk (15 float64 of ray state, about 17 of step
    temporaries in the bilinear DTM sample; 244 measured with tracemalloc).
  - per distinct (label, pixel) pair: merging a chunk's distinct keys into the ones found so far costs
    25 (concatenation 8, mask 1, scan 8, result 8) and the split into labels and pixels 20, but
    `select_shadows` holds more when every pair stays a candidate up to pass 3: the caller's int32
    labels and int64 pixels (12), the int64 label copy (8), the candidate pairs (16), the pass-2 pairs
    (16) and three masks (3), then on the CPU the pass-3 labels, pixels and darkening (24) and their
    sorted copies (24): SHADOW_BYTES_PER_PAIR_CPU = 104 (95-106 measured); on the GPU the pass-3
    arrays go to the host and a boolean index with its scan (16) and a gather (8) are the most alive
    at once: SHADOW_BYTES_PER_PAIR_GPU = 72.
  The distinct pairs are bounded by the rays, one landing pixel each: n_alt per cloudy coarse pixel,
  n_alt * cy * cx. The bound is not loose: parallel cloud stripes 4 rows apart (one label each) give
  28 distinct pairs per cloud pixel with the 33 altitudes; a single solid cloud gives about 1. The
  stage's peak is bounded by the sum of these terms (`shadow_bytes`); for a full S2 tile at 120 m
  (915 x 915 coarse pixels) it is 2.07 GiB on the GPU, 2.95 GiB on the CPU, most of it the pairs.

The whole need is multiplied by SAFETY_FACTOR (allocator rounding, CuPy pool fragmentation, the
kernels' small scratch arrays). For one placement of the composite and the shadow stage (`_fit`): read
ahead as many dates (<= MAX_READ_AHEAD) as fit with every group whole (and the shadow stage when it is
on the device); else no read-ahead and each group in the largest strip (a multiple of the group's rows
per coarse row) that fits.

Order of preference on the GPU (`plan_memory`): four placements, the first that fits wins, and inside
each the most read-ahead with whole groups, then no read-ahead and strips:
1. composite and shadow stage on the device;
2. the composite on the host between dates (resident_coarse False);
3. the shadow stage on the host (shadow_on_device False), the composite on the device;
4. both on the host.
Why: strips cost only kernel launches and lost read-ahead only overlap (no extra work), the composite
on the host costs two copies per date (222 bytes per coarse pixel for 13 bands: 186 MB each way for a
full tile at 120 m, tens of ms), while the shadow stage on the host costs CPU time on every cloudy
date, growing with the cloud cover: `cloud_shadows` runs with the NumPy backend (its twin marches every
ray) on host copies of its coarse inputs (about 33 bytes per coarse pixel) and its mask comes back, so
its bytes count against no device memory; measured on one core of the dev machine: 57 s for an
all-cloud full tile at 120 m (915 x 915), 13 s at 240 m (458 x 458), 3 s at 240 m with every fourth
row cloudy. So it comes last. Read-ahead is kept before
moving the composite (as before the shadow stage was modelled): the composite is about 5 % of one
read-ahead date (186 MB vs 3.4 GB for a full S2 tile), so moving it rarely buys a read-ahead date.
If even one coarse row of each group does not fit with both on the host: InsufficientMemoryError. On
the CPU everything shares one memory: one placement, the shadow stage's bytes count, and
shadow_on_device stays True.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from gpumaja.backend import Backend
from gpumaja.errors import DeviceError
from gpumaja.masks.shadow import SHADOW_RAYS_PER_CHUNK, TWIN_RAYS_PER_CHUNK, candidate_heights
from gpumaja.model.params import L2Params

F32 = 4
SAFETY_FACTOR = 1.25
MAX_READ_AHEAD = 2

INPUT_BYTES_PER_BAND = F32 + 1  # TOA float32 + saturated bool, resident for the whole date
READ_TEMP_BYTES_PER_BAND = 2 + 1  # DN uint16 + TOA flags uint8 while a date is read
GROUP_BYTES_PER_BAND = 3 * F32  # three float32 cubes alive at once in group_products
GROUP_FIXED_BYTES = 5 * F32 + 2 * F32 + 6 * F32 + 3  # maps, deg2rad temporaries, resampling, edge/mg2/sat
MASKS_FIXED_BYTES = 12 + 3 + 6 * F32  # group_masks: bool masks, CLM/MG2/IAB, resampling temporaries
# group_masks with the 10/20 m cloud evidence (fine_evidence.FineCloudEvidence; fine_cloud_masks): per pixel of
# the source group of the two fine bands (k x k of them per pixel of a group k times coarser): their TOA copy,
# TOA*, TOCR (2 float32 each), altitude, water vapour, AOT, and HOT and red stacked for the block mean. The
# "surface" shadow darkening frees TOCR and the default AOT before it makes the estimated AOT, its sea-level
# rows and the red TOC (3 float32 and a bool mask): its peak, 11 float32, stays within the same 12
EVIDENCE_SOURCE_BYTES = 12 * F32
# per pixel of the group: composite HOT, age and red, their resampling temporaries, the block-mean HOT and
# red, the cloud and shadow support bytes, the repeated cirrus mask (2) and the shadow zone
EVIDENCE_FIXED_BYTES = 3 * F32 + 6 * F32 + 2 * F32 + 5
COARSE_BYTES_PER_BAND = 8 * F32
COARSE_FIXED_BYTES = 64 * F32
HOST_OUTPUT_BYTES_PER_BAND = 2 * F32  # SRE + FRE (CPU only)
HOST_OUTPUT_FIXED_BYTES = 2 * F32 + 5 + 3 * F32  # W, AOT, 5 masks, terrain (CPU only)
SHADOW_BYTES_PER_PIXEL = 5 * 8 + 3 * 8 + 8 + 1 + 36  # DTM + angles f64, cloud indices/labels, select_shadows
SHADOW_BYTES_PER_RAY = 4 + 8 + 1 + 8 + 8  # landing, keys, landed mask, landed keys, boolean-index scan
SHADOW_BYTES_PER_CHUNK_PIXEL = 16 * 8 + 8  # ray fields, label
SHADOW_TWIN_BYTES_PER_RAY = 32 * 8  # NumPy twin's march temporaries (CPU only)
SHADOW_BYTES_PER_PAIR_GPU = 72  # select_shadows on the GPU (the merge of the chunks needs 25)
SHADOW_BYTES_PER_PAIR_CPU = 104  # select_shadows on the CPU


class InsufficientMemoryError(DeviceError):
    """Even the smallest plan (no read-ahead, strips of one coarse row; on the GPU the composite and the
    cloud-shadow stage on the host) does not fit in memory."""


@dataclass(frozen=True)
class MemoryPlan:
    read_ahead: int  # dates read while the current one computes
    strip_rows: dict[str, int | None] = field(default_factory=dict)  # group -> fine rows per strip, None = whole
    resident_coarse: bool = True  # the composite stays on the device between dates
    need_bytes: int = 0  # modelled peak (before SAFETY_FACTOR)
    free_bytes: int = 0
    shadow_on_device: bool = True  # False: the cloud-shadow stage runs on the host (NumPy) on a GPU backend


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def group_bytes_per_pixel(nb: int, evidence_k: int = 0) -> int:
    """Device bytes per fine pixel of the group stage for a group of `nb` bands (module docstring);
    `evidence_k` > 0: with the 10/20 m cloud evidence computed on a source group `evidence_k` times
    finer (0: without it)."""
    masks = MASKS_FIXED_BYTES
    if evidence_k > 0:
        masks += EVIDENCE_FIXED_BYTES + EVIDENCE_SOURCE_BYTES * evidence_k * evidence_k
    return max(nb * GROUP_BYTES_PER_BAND + GROUP_FIXED_BYTES, masks)


def composite_bytes(nb: int, coarse_shape: tuple[int, int], params: L2Params) -> int:
    cy, cx = coarse_shape
    per_px = 3 * nb * F32 + params.number_of_stack_images * F32 + 2 * params.water_mask_number + F32 + 2
    return per_px * cy * cx


def shadow_bytes(coarse_shape: tuple[int, int], params: L2Params, is_gpu: bool) -> int:
    """Bytes of the cloud-shadow stage at its peak on a coarse grid whose every pixel is cloudy: the
    pairs bounded by the rays, one chunk of rays and, on the CPU, the NumPy twin (module docstring)."""
    cy, cx = coarse_shape
    n_alt = int(candidate_heights(params).size)
    n_px = cy * cx
    chunk_px = min(max(1, SHADOW_RAYS_PER_CHUNK // n_alt), n_px)
    chunk_rays = chunk_px * n_alt
    per_pair = SHADOW_BYTES_PER_PAIR_GPU if is_gpu else SHADOW_BYTES_PER_PAIR_CPU
    twin = 0 if is_gpu else SHADOW_TWIN_BYTES_PER_RAY * min(TWIN_RAYS_PER_CHUNK, chunk_rays)
    return (SHADOW_BYTES_PER_PIXEL * n_px + per_pair * n_alt * n_px + SHADOW_BYTES_PER_RAY * chunk_rays
            + SHADOW_BYTES_PER_CHUNK_PIXEL * chunk_px + twin)


def _fit(base: int, date_input: int, read_temp: int, max_ra: int, shadow: int, budget: float,
         group_shapes: dict[str, tuple[int, int, int]], f: dict[str, int],
         px: dict[str, int]) -> tuple[int, dict, int] | None:
    """(read_ahead, strip_rows, need) of the best plan over `base` bytes with a shadow stage of `shadow`
    bytes on the same memory: the most read-ahead with every group whole, else no read-ahead and each
    group whole or in the largest strip of whole coarse rows that fits; None if nothing fits."""
    whole = {g: px[g] * h * w for g, (nb, h, w) in group_shapes.items()}
    for r in range(max_ra, -1, -1):
        need = base + r * date_input + (read_temp if r else 0) + max(max(whole.values()), shadow)
        if need <= budget:
            return r, dict.fromkeys(group_shapes), need
    avail = budget - base
    if shadow > avail:
        return None
    rows: dict[str, int | None] = {}
    for g, (nb, h, w) in group_shapes.items():
        if whole[g] <= avail:
            rows[g] = None
            continue
        n = int(avail // (px[g] * w)) // f[g] * f[g] if avail > 0 else 0
        if n < f[g]:
            return None
        rows[g] = n
    need = base + max(max(px[g] * w * (rows[g] or h) for g, (nb, h, w) in group_shapes.items()), shadow)
    return 0, rows, need


def plan_memory(
    n_dates: int, group_shapes: dict[str, tuple[int, int, int]], coarse_shape: tuple[int, int],
    free_bytes: int, is_gpu: bool, factors: dict[str, int] | None = None, params: L2Params | None = None,
) -> MemoryPlan:
    """The memory plan of a series of `n_dates` dates whose groups have shapes (nb, h, w).

    `factors[g]`: fine rows per coarse row of group g (coarse resolution / group resolution); by
    default ceil(h / cy). Placements tried in this order (`_fit` each: read-ahead, then strips), the
    first that fits wins (module docstring, "Order of preference"): on the GPU the composite on the
    device and the shadow stage on the device; the composite on the host; the shadow stage on the
    host with the composite on the device; both on the host. On the CPU there is one placement.
    Raises InsufficientMemoryError when nothing fits."""
    params = params or L2Params()
    cy, cx = coarse_shape
    if not group_shapes:
        raise ValueError("plan_memory: no group")
    f = {g: (factors or {}).get(g) or max(1, math.ceil(h / max(cy, 1))) for g, (_, h, _) in group_shapes.items()}
    # the 10/20 m cloud evidence is computed on the finest group (the fine blue/red bands' group)
    f_max = max(f.values())
    px = {g: group_bytes_per_pixel(nb, max(1, round(f_max / f[g])) if params.fine_cloud_masks else 0)
          for g, (nb, _, _) in group_shapes.items()}
    nb_all = sum(nb for nb, _, _ in group_shapes.values())
    date_input = sum(nb * h * w * INPUT_BYTES_PER_BAND for nb, h, w in group_shapes.values())
    read_temp = max(nb * h * w * READ_TEMP_BYTES_PER_BAND for nb, h, w in group_shapes.values())
    coarse = (nb_all * COARSE_BYTES_PER_BAND + COARSE_FIXED_BYTES) * cy * cx
    comp = composite_bytes(nb_all, coarse_shape, params)
    host = 0
    if not is_gpu:
        host = sum((nb * HOST_OUTPUT_BYTES_PER_BAND + HOST_OUTPUT_FIXED_BYTES) * h * w
                   for nb, h, w in group_shapes.values())
    shadow = shadow_bytes(coarse_shape, params, is_gpu)  # before the group stage: one or the other
    budget = free_bytes / SAFETY_FACTOR
    max_ra = max(0, min(MAX_READ_AHEAD, n_dates - 1))

    # (composite on the device, shadow stage on the device)
    placements = ((True, True), (False, True), (True, False), (False, False)) if is_gpu else ((True, True),)
    for resident, shadow_dev in placements:
        base = date_input + coarse + host + (comp if resident else 0)
        fit = _fit(base, date_input, read_temp, max_ra, shadow if shadow_dev else 0, budget, group_shapes, f, px)
        if fit is not None:
            r, rows, need = fit
            return MemoryPlan(r, rows, resident, int(need), int(free_bytes), shadow_dev)
    row = max(px[g] * w * f[g] for g, (nb, _, w) in group_shapes.items())
    base = date_input + coarse + host
    if is_gpu:
        what = (f"one date's input ({_gib(date_input)}), the coarse chain ({_gib(coarse)}) and a strip of one "
                f"coarse row ({_gib(row)}), with the composite and the cloud-shadow stage on the host, need "
                f"{_gib((base + row) * SAFETY_FACTOR)}")
    else:
        what = (f"one date's input ({_gib(date_input)}), the outputs ({_gib(host)}), the coarse chain "
                f"({_gib(coarse)}) and the larger of a strip of one coarse row ({_gib(row)}) and the cloud-shadow "
                f"stage ({_gib(shadow)}) need {_gib((base + comp + max(row, shadow)) * SAFETY_FACTOR)}")
    raise InsufficientMemoryError(
        f"not enough {'GPU' if is_gpu else 'host'} memory for this tile: {_gib(free_bytes)} free, but {what} with "
        f"the {SAFETY_FACTOR:g} safety factor; free memory (close other processes) or use --device cpu")


def free_bytes_for(backend: Backend) -> int:
    """Memory available to the backend now: CUDA free memory plus the CuPy pool's cached free blocks
    on the GPU; MemAvailable of /proc/meminfo (else the available physical pages) on the CPU."""
    if backend.is_gpu:
        import cupy

        free, _total = cupy.cuda.runtime.memGetInfo()
        return int(free) + int(cupy.get_default_memory_pool().free_bytes())
    return host_available_bytes()


def host_available_bytes(meminfo: Path = Path("/proc/meminfo")) -> int:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return 8 * 2**30  # unknown platform: MAJA's default RAM budget (maja-l2a.md §6, 8192 MB)
