// Multispectral AOT inversion (MAJA INIT mode), one thread per AOT-grid node (maja-l2a.md §3.5).
//
// gpumaja-instantiate: aot_ms_lm
//
// NumPy twin: gpumaja.atmosphere.aot.aot_multispectral_numpy (same steps, same formulas, float64).
// Compile with --fmad=false (the wrapper does) so that no multiply-add is contracted and the twin's
// separate float64 operations are reproduced as closely as possible.
//
// Node (j, i) sits at coarse pixel (ny, nx) = (min(j*step + step/2, cy-1), min(i*step + step/2, cx-1)).
// Sampling interval I = interval_min, interval_min + interval_inc, ... <= interval_max: the samples
// are the coarse pixels (ny + a*I, nx + b*I), a, b in [-half_window, half_window], each coordinate
// clamped into the image (MAJA's zero-flux Neumann boundary: an edge pixel may count several times),
// that are `selected`; the first I giving >= n_pix_min selected samples is used; if none does,
// aot = NaN and n_used = 0.
//
// Per selected sample p, with T_b(h, tau, r) the mini-LUT TOC table of band b (trilinear: altitude
// clamped, AOT clamped, TOA* linearly extrapolated) and s_p = aot_scale[p] the sample's height factor
// (exp(-h_p / H), 1 for MAJA's method; gpumaja.atmosphere.aot "AOT over relief"):
//     D_p(tau) = T_blue(h_p, s_p tau, toa_blue_p) - (ms_slope * T_red(h_p, s_p tau, toa_red_p) + ms_intercept)
//     r_p      = w_p * D_p(tau),   w_p = w_ms * (ndvi_slope * max(ndvi_p, 0) + ndvi_intercept)
// D_p is evaluated as the linear interpolation along AOT of its values at the two AOT nodes around
// s_p tau (exactly the trilinear interpolation), and dD_p/dtau as s_p times the slope of that cell.
// The LUT is read at s_p tau clamped to [max(aot_min, aot[0]), aot_max]. Extra residuals:
//     dark:   sqrt(w_dark) * (tau - aot_dark)            if tau > aot_dark
//     bounds: sqrt(w_bounds) * (aot_min - tau)           if tau < aot_min
//             sqrt(w_bounds) * (tau - aot_max)           if tau > aot_max
// Levenberg-Marquardt on the scalar tau from aot_initial: step -g / (H (1 + lambda)), g = sum J r,
// H = sum J^2, lambda from LM_LAMBDA0, divided by 10 on success, multiplied by 10 on failure; stop
// when |step| < tol, or an accepted step lowers the cost by less than tol * cost, or after max_iter
// trial steps, or when H is not > 0. The result is clamped to [aot_min, aot_max].

#include "aot_device.cuh"

struct AotEval {
    double cost, grad, hess;
};

extern "C" __global__ void aot_ms_lm(const float* __restrict__ toa_blue,
                                     const float* __restrict__ toa_red,
                                     const float* __restrict__ ndvi,
                                     const float* __restrict__ altitude,
                                     const double* __restrict__ aot_scale,
                                     const unsigned char* __restrict__ selected,
                                     const int cy,
                                     const int cx,
                                     const int gy,
                                     const int gx,
                                     const int step,
                                     const int half_window,
                                     const int interval_min,
                                     const int interval_max,
                                     const int interval_inc,
                                     const int n_pix_min,
                                     const float* __restrict__ alt_axis,
                                     const int n_alt,
                                     const float* __restrict__ aot_axis,
                                     const int n_aot,
                                     const float* __restrict__ toa_axis,
                                     const int n_toa,
                                     const float* __restrict__ toc_blue,
                                     const float* __restrict__ toc_red,
                                     const double ms_slope,
                                     const double ms_intercept,
                                     const double ndvi_slope,
                                     const double ndvi_intercept,
                                     const double w_ms,
                                     const double sqrt_w_dark,
                                     const double aot_dark,
                                     const double sqrt_w_bounds,
                                     const double aot_min,
                                     const double aot_max,
                                     const double aot_initial,
                                     const int max_iter,
                                     const double tol,
                                     float* __restrict__ aot_out,
                                     int* __restrict__ n_used)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const int j = blockIdx.y * blockDim.y + threadIdx.y;
    if (i >= gx || j >= gy) return;
    const int node = j * gx + i;
    const int ny = min(j * step + step / 2, cy - 1);
    const int nx = min(i * step + step / 2, cx - 1);

    // --- sampling interval: the first one with enough selected samples -------------------------
    int interval = -1;
    int count = 0;
    for (int I = interval_min; I <= interval_max; I += interval_inc) {
        int c = 0;
        for (int a = -half_window; a <= half_window; ++a) {
            const int y = min(max(ny + a * I, 0), cy - 1);
            for (int b = -half_window; b <= half_window; ++b) {
                const int x = min(max(nx + b * I, 0), cx - 1);
                if (selected[(size_t)y * cx + x]) ++c;
            }
        }
        if (c >= n_pix_min) {
            interval = I;
            count = c;
            break;
        }
    }
    if (interval < 0) {
        aot_out[node] = __int_as_float(0x7fc00000);
        n_used[node] = 0;
        return;
    }

    const double alt_lo = (double)alt_axis[0];
    const double alt_hi = (double)alt_axis[n_alt - 1];
    const double lut_lo = fmax(aot_min, (double)aot_axis[0]);
    const double lut_hi = fmin(aot_max, (double)aot_axis[n_aot - 1]);

    // cost, gradient and Gauss-Newton Hessian at tau
    auto evaluate = [&](double tau) -> AotEval {
        AotEval e = {0.0, 0.0, 0.0};
        for (int a = -half_window; a <= half_window; ++a) {
            const int y = min(max(ny + a * interval, 0), cy - 1);
            for (int b = -half_window; b <= half_window; ++b) {
                const int x = min(max(nx + b * interval, 0), cx - 1);
                const size_t p = (size_t)y * cx + x;
                if (!selected[p]) continue;
                const double s = aot_scale[p];
                const double tc = fmin(fmax(s * tau, lut_lo), lut_hi);
                int k;
                double wk;
                gpumaja_locate(aot_axis, n_aot, tc, &k, &wk);
                const double dtau = (double)aot_axis[k + 1] - (double)aot_axis[k];
                const double h = fmin(fmax((double)altitude[p], alt_lo), alt_hi);
                int ia, ib, ir;
                double wa, wb, wr;
                gpumaja_locate(alt_axis, n_alt, h, &ia, &wa);
                gpumaja_locate(toa_axis, n_toa, (double)toa_blue[p], &ib, &wb);
                gpumaja_locate(toa_axis, n_toa, (double)toa_red[p], &ir, &wr);
                const double d0 = gpumaja_toc_at(toc_blue, n_aot, n_toa, ia, wa, ib, wb, k)
                    - (ms_slope * gpumaja_toc_at(toc_red, n_aot, n_toa, ia, wa, ir, wr, k) + ms_intercept);
                const double d1 = gpumaja_toc_at(toc_blue, n_aot, n_toa, ia, wa, ib, wb, k + 1)
                    - (ms_slope * gpumaja_toc_at(toc_red, n_aot, n_toa, ia, wa, ir, wr, k + 1) + ms_intercept);
                const double wp = w_ms * (ndvi_slope * fmax((double)ndvi[p], 0.0) + ndvi_intercept);
                const double r = wp * ((1.0 - wk) * d0 + wk * d1);
                const double jac = wp * (d1 - d0) / dtau * s;
                e.cost += r * r;
                e.grad += jac * r;
                e.hess += jac * jac;
            }
        }
        if (tau > aot_dark) {
            const double r = sqrt_w_dark * (tau - aot_dark);
            e.cost += r * r;
            e.grad += sqrt_w_dark * r;
            e.hess += sqrt_w_dark * sqrt_w_dark;
        }
        if (tau < aot_min) {
            const double r = sqrt_w_bounds * (aot_min - tau);
            e.cost += r * r;
            e.grad -= sqrt_w_bounds * r;
            e.hess += sqrt_w_bounds * sqrt_w_bounds;
        } else if (tau > aot_max) {
            const double r = sqrt_w_bounds * (tau - aot_max);
            e.cost += r * r;
            e.grad += sqrt_w_bounds * r;
            e.hess += sqrt_w_bounds * sqrt_w_bounds;
        }
        return e;
    };

    // --- Levenberg-Marquardt on the scalar tau ---------------------------------------------------
    double tau = aot_initial;
    AotEval cur = evaluate(tau);
    double lambda = LM_LAMBDA0;
    for (int it = 0; it < max_iter; ++it) {
        if (!(cur.hess > 0.0) || !isfinite(cur.hess) || !isfinite(cur.grad)) break;
        const double delta = -cur.grad / (cur.hess * (1.0 + lambda));
        const double trial_tau = tau + delta;
        const AotEval trial = evaluate(trial_tau);
        if (trial.cost < cur.cost) {
            const double decrease = cur.cost - trial.cost;
            const double old_cost = cur.cost;
            tau = trial_tau;
            cur = trial;
            lambda = lambda / LM_LAMBDA_FACTOR;
            if (fabs(delta) < tol || decrease < tol * old_cost) break;
        } else {
            lambda = lambda * LM_LAMBDA_FACTOR;
            if (fabs(delta) < tol) break;
        }
    }
    aot_out[node] = (float)fmin(fmax(tau, aot_min), aot_max);
    n_used[node] = count;
}
