"""Memory planning of the L2A series driver: how many dates to read ahead, whether the 10/20 m group
work runs on the whole image or in row strips, whether the coarse composite stays on the device.

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
  denominator: 6 float32) and edge / MG2 / SAT bytes = 55 bytes. `group_masks` needs less (about a
  dozen bool masks, three uint8 outputs and the same resampling temporaries).
- Coarse chain (`l2a_date.process_date`), per coarse pixel: about 8 float32 per band (TOA, TOA*,
  TOCR, TOC, environment, saturation, block-mean temporaries) and 64 float32 of single-band maps
  (masks, AOT, water vapour, altitude, slope, cloud tests).
- Composite (`gpumaja.composite`), per coarse pixel: RTA/RCR/RTC (3 float32 per band), STO
  (number_of_stack_images float32), PWA/TWA (water_mask_number bytes each), PXD int32, NDT, CLD.
- On the CPU the outputs also live in the same memory: SRE + FRE float32 per band, W and AOT float32,
  5 mask bytes per fine pixel of every group, and the terrain (altitude, slope, aspect float32) per
  group grid. On the GPU those are host arrays and do not count against the device.

The whole need is multiplied by SAFETY_FACTOR (allocator rounding, CuPy pool fragmentation, the
kernels' small scratch arrays). Rules: read ahead as many dates (<= MAX_READ_AHEAD) as fit with every
group whole; else no read-ahead and each group in the largest strip (a multiple of the group's rows
per coarse row) that fits; if even one coarse row of a group does not fit, InsufficientMemoryError.
On the GPU the composite is moved to the host between dates (resident_coarse False) only when that
is what makes the plan fit.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from gpumaja.backend import Backend
from gpumaja.errors import DeviceError
from gpumaja.model.params import L2Params

F32 = 4
SAFETY_FACTOR = 1.25
MAX_READ_AHEAD = 2

INPUT_BYTES_PER_BAND = F32 + 1  # TOA float32 + saturated bool, resident for the whole date
READ_TEMP_BYTES_PER_BAND = 2 + 1  # DN uint16 + TOA flags uint8 while a date is read
GROUP_BYTES_PER_BAND = 3 * F32  # three float32 cubes alive at once in group_products
GROUP_FIXED_BYTES = 5 * F32 + 2 * F32 + 6 * F32 + 3  # maps, deg2rad temporaries, resampling, edge/mg2/sat
MASKS_FIXED_BYTES = 12 + 3 + 6 * F32  # group_masks: bool masks, CLM/MG2/IAB, resampling temporaries
COARSE_BYTES_PER_BAND = 8 * F32
COARSE_FIXED_BYTES = 64 * F32
HOST_OUTPUT_BYTES_PER_BAND = 2 * F32  # SRE + FRE (CPU only)
HOST_OUTPUT_FIXED_BYTES = 2 * F32 + 5 + 3 * F32  # W, AOT, 5 masks, terrain (CPU only)


class InsufficientMemoryError(DeviceError):
    """Even the smallest plan (no read-ahead, strips of one coarse row) does not fit in memory."""


@dataclass(frozen=True)
class MemoryPlan:
    read_ahead: int  # dates read while the current one computes
    strip_rows: dict[str, int | None] = field(default_factory=dict)  # group -> fine rows per strip, None = whole
    resident_coarse: bool = True  # the composite stays on the device between dates
    need_bytes: int = 0  # modelled peak (before SAFETY_FACTOR)
    free_bytes: int = 0


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def group_bytes_per_pixel(nb: int) -> int:
    """Device bytes per fine pixel of the group stage for a group of `nb` bands (module docstring)."""
    return max(nb * GROUP_BYTES_PER_BAND + GROUP_FIXED_BYTES, MASKS_FIXED_BYTES)


def composite_bytes(nb: int, coarse_shape: tuple[int, int], params: L2Params) -> int:
    cy, cx = coarse_shape
    per_px = 3 * nb * F32 + params.number_of_stack_images * F32 + 2 * params.water_mask_number + F32 + 2
    return per_px * cy * cx


def plan_memory(
    n_dates: int, group_shapes: dict[str, tuple[int, int, int]], coarse_shape: tuple[int, int],
    free_bytes: int, is_gpu: bool, factors: dict[str, int] | None = None, params: L2Params | None = None,
) -> MemoryPlan:
    """The memory plan of a series of `n_dates` dates whose groups have shapes (nb, h, w).

    `factors[g]`: fine rows per coarse row of group g (coarse resolution / group resolution); by
    default ceil(h / cy). Raises InsufficientMemoryError when nothing fits."""
    params = params or L2Params()
    cy, cx = coarse_shape
    if not group_shapes:
        raise ValueError("plan_memory: no group")
    f = {g: (factors or {}).get(g) or max(1, math.ceil(h / max(cy, 1))) for g, (_, h, _) in group_shapes.items()}
    nb_all = sum(nb for nb, _, _ in group_shapes.values())
    date_input = sum(nb * h * w * INPUT_BYTES_PER_BAND for nb, h, w in group_shapes.values())
    read_temp = max(nb * h * w * READ_TEMP_BYTES_PER_BAND for nb, h, w in group_shapes.values())
    coarse = (nb_all * COARSE_BYTES_PER_BAND + COARSE_FIXED_BYTES) * cy * cx
    comp = composite_bytes(nb_all, coarse_shape, params)
    host = 0
    if not is_gpu:
        host = sum((nb * HOST_OUTPUT_BYTES_PER_BAND + HOST_OUTPUT_FIXED_BYTES) * h * w
                   for nb, h, w in group_shapes.values())
    whole = {g: group_bytes_per_pixel(nb) * h * w for g, (nb, h, w) in group_shapes.items()}
    budget = free_bytes / SAFETY_FACTOR
    max_ra = max(0, min(MAX_READ_AHEAD, n_dates - 1))

    residencies = (True, False) if is_gpu else (True,)
    for resident in residencies:
        base = date_input + coarse + host + (comp if resident or not is_gpu else 0)
        for r in range(max_ra, -1, -1):
            need = base + r * date_input + (read_temp if r else 0) + max(whole.values())
            if need <= budget:
                return MemoryPlan(r, dict.fromkeys(group_shapes), resident, int(need), int(free_bytes))
        rows: dict[str, int | None] = {}
        avail = budget - base
        for g, (nb, h, w) in group_shapes.items():
            if whole[g] <= avail:
                rows[g] = None
                continue
            per_row = group_bytes_per_pixel(nb) * w
            n = int(avail // per_row) // f[g] * f[g] if avail > 0 else 0
            if n < f[g]:
                break
            rows[g] = n
        else:
            need = base + max(group_bytes_per_pixel(nb) * w * (rows[g] or h)
                              for g, (nb, h, w) in group_shapes.items())
            return MemoryPlan(0, rows, resident, int(need), int(free_bytes))
    smallest = min(group_bytes_per_pixel(nb) * w * f[g] for g, (nb, _, w) in group_shapes.items())
    base = date_input + coarse + host
    raise InsufficientMemoryError(
        f"not enough {'GPU' if is_gpu else 'host'} memory for this tile: {_gib(free_bytes)} free, but one date's "
        f"input ({_gib(date_input)}), the coarse chain ({_gib(coarse)}) and a strip of one coarse row "
        f"({_gib(smallest)}) need {_gib((base + smallest) * SAFETY_FACTOR)} with the {SAFETY_FACTOR:g} safety "
        "factor; free memory (close other processes) or use --device cpu")


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
