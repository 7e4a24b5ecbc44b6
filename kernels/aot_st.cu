// Spectro-temporal AOT inversion (MAJA NOMINAL mode), one thread per AOT-grid node (maja-l2a.md §3.5).
//
// gpumaja-instantiate: aot_st_lm
//
// NumPy twin: gpumaja.atmosphere.aot_st.aot_spectrotemporal_numpy (same steps, same formulas, float64).
// Compile with --fmad=false (the wrapper does). The node grid, sample windows (7x7, clamped into the
// image), LUT reading (altitude and AOT clamped, TOA* extrapolated, exact slope of the AOT cell), the
// dark and bound residuals and the LM damping rule are those of kernels/aot.cu (aot_ms_lm); read it
// first. Here, per node:
//
// Sampling intervals I = interval_min, + interval_inc, ... up to interval_last (the largest one):
// - MS valid at the first I with >= n_pix_min `ms_sel` samples (its I is then kept);
// - MT at I (while not valid): among the `mt_sel` samples, LPD = the most frequent pxd (ties: the
//   smallest |day - pxd|, then the larger pxd); its samples are those with pxd == LPD; valid when
//   there are >= n_pix_min (and >= 2) and the sample std (n - 1) of toa_sd over them is > stdev_min;
//   then W1 = min(|mean(toa_mt - rta_mt)| / std_noise, mt_weight_max) * f, W2 = w_eq2 * f,
//   f = st_a / (dt^2 + st_b), dt = day - LPD; the LTC table is the one dated LPD, else the nearest
//   stored date (first on ties);
// - run when MT and MS are valid, or at I == interval_last when either is.
// Residuals (T_mt, T_blue, T_red the date's tables, L the LTC table; tau0 = tau_D, tau1 = tau_D-1):
//     MT (per MT sample)  e1 = W1 u (T_mt(h, tau0, toa_mt) - L(h, tau1, rta_mt)),  e2 = W2 u (T_mt(h, tau0, toa_mt) - rtc)
//     MS (per MS sample)  as aot_ms_lm (tau0 only)
//     dark on tau0, bounds on tau0 and (MT used) tau1.
// Every table of sample p is read at its own AOTs s_p tau0 and s_p tau1, s_p = aot_scale[p] (the height
// factor exp(-h_p / H), 1 for MAJA's method; gpumaja.atmosphere.aot "AOT over relief"): the AOT cells
// are per sample and each tau derivative carries s_p.
// u: toa_units = 0 (MAJA, surface units, the default): 1. toa_units = 1 (TOA units, opt-in): the date's total
// transmission d(toa*)/d(rho_s) = 1 / q, q = dT_mt/d(toa*) the slope of the TOA* cell holding toa_mt
// (st_toa_slope_at), bilinear in (h, AOT) like T_mt, so linear in tau0 on the AOT cell; u = 0 where q <= 0.
// Its derivative du/dtau0 = -u^2 dq/dtau0 enters the tau0 Jacobians (de/dtau0 = W (u dT/dtau0 + du/dtau0 (T - ...))).
// LM on (tau0, tau1) from (aot_initial, aot_initial_dm1): g = J^T r, H = J^T J (2x2, double);
// step solves (H + lambda diag H) delta = -g in closed form when H11 > 0, else the scalar step
// delta0 = -g0 / (H00 (1 + lambda)), delta1 = 0 (exactly aot_ms_lm for a node without MT).
// Outputs: aot (tau0 clamped to [aot_min, aot_max], NaN = none), n_used (MS + MT samples), method
// (0 none, 1 MS, 2 MT (+ MS)).

#include "aot_device.cuh"

struct StEval {
    double cost, g0, g1, h00, h01, h11;
};

// Slope dTOC/dTOA* of table[n_alt][n_aot][n_toa] at AOT node k: the slope of TOA* cell it, bilinear in
// altitude (cell ia, weight wa). NumPy twin: gpumaja.atmosphere.aot_st._toa_slope_profile.
__device__ __forceinline__ double st_toa_slope_at(const float* __restrict__ table, int n_aot, int n_toa,
                                                  const float* __restrict__ toa_axis, int ia, double wa, int it,
                                                  int k)
{
    const size_t r0 = ((size_t)ia * n_aot + k) * n_toa + it;
    const size_t r1 = ((size_t)(ia + 1) * n_aot + k) * n_toa + it;
    const double d0 = (double)table[r0 + 1] - (double)table[r0];
    const double d1 = (double)table[r1 + 1] - (double)table[r1];
    return ((1.0 - wa) * d0 + wa * d1) / ((double)toa_axis[it + 1] - (double)toa_axis[it]);
}

extern "C" __global__ void aot_st_lm(const float* __restrict__ toa_mt,
                                     const float* __restrict__ rta_mt,
                                     const float* __restrict__ rtc_mt,
                                     const float* __restrict__ toa_sd,
                                     const float* __restrict__ toa_blue,
                                     const float* __restrict__ toa_red,
                                     const float* __restrict__ ndvi,
                                     const float* __restrict__ altitude,
                                     const double* __restrict__ aot_scale,
                                     const int* __restrict__ pxd,
                                     const unsigned char* __restrict__ mt_sel,
                                     const unsigned char* __restrict__ ms_sel,
                                     const int cy,
                                     const int cx,
                                     const int gy,
                                     const int gx,
                                     const int step,
                                     const int half_window,
                                     const int interval_min,
                                     const int interval_last,
                                     const int interval_inc,
                                     const int n_pix_min,
                                     const float* __restrict__ alt_axis,
                                     const int n_alt,
                                     const float* __restrict__ aot_axis,
                                     const int n_aot,
                                     const float* __restrict__ toa_axis,
                                     const int n_toa,
                                     const float* __restrict__ toc_mt,
                                     const float* __restrict__ toc_blue,
                                     const float* __restrict__ toc_red,
                                     const float* __restrict__ ltc,
                                     const int* __restrict__ ltc_days,
                                     const int n_ltc,
                                     const int day,
                                     const double ms_slope,
                                     const double ms_intercept,
                                     const double ndvi_slope,
                                     const double ndvi_intercept,
                                     const double w_ms,
                                     const double std_noise,
                                     const double stdev_min,
                                     const double mt_weight_max,
                                     const double w_eq2,
                                     const double st_a,
                                     const double st_b,
                                     const double sqrt_w_dark,
                                     const double aot_dark,
                                     const double sqrt_w_bounds,
                                     const double aot_min,
                                     const double aot_max,
                                     const double aot_initial,
                                     const double aot_initial_dm1,
                                     const int max_iter,
                                     const double tol,
                                     const int toa_units,
                                     float* __restrict__ aot_out,
                                     int* __restrict__ n_used,
                                     signed char* __restrict__ method)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const int j = blockIdx.y * blockDim.y + threadIdx.y;
    if (i >= gx || j >= gy) return;
    const int node = j * gx + i;
    const int ny = min(j * step + step / 2, cy - 1);
    const int nx = min(i * step + step / 2, cx - 1);

    // --- sampling intervals: MS and MT validity ---------------------------------------------------
    bool ms_valid = false, mt_valid = false, run = false;
    int ms_I = 0, mt_I = 0, ms_count = 0, mt_count = 0, lpd = 0;
    double w1 = 0.0, w2 = 0.0;
    for (int I = interval_min; I <= interval_last; I += interval_inc) {
        if (!ms_valid) {
            int c = 0;
            for (int a = -half_window; a <= half_window; ++a) {
                const int y = min(max(ny + a * I, 0), cy - 1);
                for (int b = -half_window; b <= half_window; ++b) {
                    const int x = min(max(nx + b * I, 0), cx - 1);
                    if (ms_sel[(size_t)y * cx + x]) ++c;
                }
            }
            if (c >= n_pix_min) {
                ms_valid = true;
                ms_I = I;
                ms_count = c;
            }
        }
        if (!mt_valid && n_ltc > 0) {
            // local previous date: the most frequent pxd among the MT samples
            int best_c = 0, best_d = 0, best_dist = 0;
            for (int a = -half_window; a <= half_window; ++a) {
                const int y = min(max(ny + a * I, 0), cy - 1);
                for (int b = -half_window; b <= half_window; ++b) {
                    const int x = min(max(nx + b * I, 0), cx - 1);
                    const size_t p = (size_t)y * cx + x;
                    if (!mt_sel[p]) continue;
                    const int d = pxd[p];
                    int c = 0;
                    for (int a2 = -half_window; a2 <= half_window; ++a2) {
                        const int y2 = min(max(ny + a2 * I, 0), cy - 1);
                        for (int b2 = -half_window; b2 <= half_window; ++b2) {
                            const int x2 = min(max(nx + b2 * I, 0), cx - 1);
                            const size_t p2 = (size_t)y2 * cx + x2;
                            if (mt_sel[p2] && pxd[p2] == d) ++c;
                        }
                    }
                    const int dist = abs(day - d);
                    if (c > best_c || (c == best_c && (dist < best_dist || (dist == best_dist && d > best_d)))) {
                        best_c = c;
                        best_d = d;
                        best_dist = dist;
                    }
                }
            }
            if (best_c >= n_pix_min && best_c >= 2) {
                double s_diff = 0.0, s_sd = 0.0;
                for (int a = -half_window; a <= half_window; ++a) {
                    const int y = min(max(ny + a * I, 0), cy - 1);
                    for (int b = -half_window; b <= half_window; ++b) {
                        const int x = min(max(nx + b * I, 0), cx - 1);
                        const size_t p = (size_t)y * cx + x;
                        if (!mt_sel[p] || pxd[p] != best_d) continue;
                        s_diff += (double)toa_mt[p] - (double)rta_mt[p];
                        s_sd += (double)toa_sd[p];
                    }
                }
                const double mean_diff = s_diff / (double)best_c;
                const double mean_sd = s_sd / (double)best_c;
                double s_dev = 0.0;
                for (int a = -half_window; a <= half_window; ++a) {
                    const int y = min(max(ny + a * I, 0), cy - 1);
                    for (int b = -half_window; b <= half_window; ++b) {
                        const int x = min(max(nx + b * I, 0), cx - 1);
                        const size_t p = (size_t)y * cx + x;
                        if (!mt_sel[p] || pxd[p] != best_d) continue;
                        const double dev = (double)toa_sd[p] - mean_sd;
                        s_dev += dev * dev;
                    }
                }
                const double stdev = sqrt(s_dev / (double)(best_c - 1));
                if (stdev > stdev_min) {
                    double w = fabs(mean_diff) / std_noise;
                    if (w > mt_weight_max) w = mt_weight_max;
                    const double dt = (double)day - (double)best_d;
                    const double f = st_a / (dt * dt + st_b);
                    w1 = w * f;
                    w2 = w_eq2 * f;
                    mt_valid = true;
                    mt_I = I;
                    mt_count = best_c;
                    lpd = best_d;
                }
            }
        }
        if ((mt_valid && ms_valid) || (I == interval_last && (mt_valid || ms_valid))) {
            run = true;
            break;
        }
    }
    if (!run) {
        aot_out[node] = __int_as_float(0x7fc00000);
        n_used[node] = 0;
        method[node] = 0;
        return;
    }

    // LTC table of the LPD (the nearest stored date, first on ties)
    const float* table_l = ltc;
    if (mt_valid) {
        int best_k = 0;
        int best = abs(ltc_days[0] - lpd);
        for (int k = 1; k < n_ltc; ++k) {
            const int dist = abs(ltc_days[k] - lpd);
            if (dist < best) {
                best = dist;
                best_k = k;
            }
        }
        table_l = ltc + (size_t)best_k * n_alt * n_aot * n_toa;
    }

    const double alt_lo = (double)alt_axis[0];
    const double alt_hi = (double)alt_axis[n_alt - 1];
    const double lut_lo = fmax(aot_min, (double)aot_axis[0]);
    const double lut_hi = fmin(aot_max, (double)aot_axis[n_aot - 1]);

    auto evaluate = [&](double tau0, double tau1) -> StEval {
        StEval e = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
        if (ms_valid) {
            for (int a = -half_window; a <= half_window; ++a) {
                const int y = min(max(ny + a * ms_I, 0), cy - 1);
                for (int b = -half_window; b <= half_window; ++b) {
                    const int x = min(max(nx + b * ms_I, 0), cx - 1);
                    const size_t p = (size_t)y * cx + x;
                    if (!ms_sel[p]) continue;
                    const double s = aot_scale[p];
                    int k0;
                    double wk0;
                    gpumaja_locate(aot_axis, n_aot, fmin(fmax(s * tau0, lut_lo), lut_hi), &k0, &wk0);
                    const double dtau0 = (double)aot_axis[k0 + 1] - (double)aot_axis[k0];
                    const double h = fmin(fmax((double)altitude[p], alt_lo), alt_hi);
                    int ia, ib, ir;
                    double wa, wb, wr;
                    gpumaja_locate(alt_axis, n_alt, h, &ia, &wa);
                    gpumaja_locate(toa_axis, n_toa, (double)toa_blue[p], &ib, &wb);
                    gpumaja_locate(toa_axis, n_toa, (double)toa_red[p], &ir, &wr);
                    const double d0 = gpumaja_toc_at(toc_blue, n_aot, n_toa, ia, wa, ib, wb, k0)
                        - (ms_slope * gpumaja_toc_at(toc_red, n_aot, n_toa, ia, wa, ir, wr, k0) + ms_intercept);
                    const double d1 = gpumaja_toc_at(toc_blue, n_aot, n_toa, ia, wa, ib, wb, k0 + 1)
                        - (ms_slope * gpumaja_toc_at(toc_red, n_aot, n_toa, ia, wa, ir, wr, k0 + 1) + ms_intercept);
                    const double wp = w_ms * (ndvi_slope * fmax((double)ndvi[p], 0.0) + ndvi_intercept);
                    const double r = wp * ((1.0 - wk0) * d0 + wk0 * d1);
                    const double jac = wp * (d1 - d0) / dtau0 * s;
                    e.cost += r * r;
                    e.g0 += jac * r;
                    e.h00 += jac * jac;
                }
            }
        }
        if (mt_valid) {
            for (int a = -half_window; a <= half_window; ++a) {
                const int y = min(max(ny + a * mt_I, 0), cy - 1);
                for (int b = -half_window; b <= half_window; ++b) {
                    const int x = min(max(nx + b * mt_I, 0), cx - 1);
                    const size_t p = (size_t)y * cx + x;
                    if (!mt_sel[p] || pxd[p] != lpd) continue;
                    const double s = aot_scale[p];
                    int k0, k1;
                    double wk0, wk1;
                    gpumaja_locate(aot_axis, n_aot, fmin(fmax(s * tau0, lut_lo), lut_hi), &k0, &wk0);
                    gpumaja_locate(aot_axis, n_aot, fmin(fmax(s * tau1, lut_lo), lut_hi), &k1, &wk1);
                    const double dtau0 = (double)aot_axis[k0 + 1] - (double)aot_axis[k0];
                    const double dtau1 = (double)aot_axis[k1 + 1] - (double)aot_axis[k1];
                    const double h = fmin(fmax((double)altitude[p], alt_lo), alt_hi);
                    int ia, it, il;
                    double wa, wt, wl;
                    gpumaja_locate(alt_axis, n_alt, h, &ia, &wa);
                    gpumaja_locate(toa_axis, n_toa, (double)toa_mt[p], &it, &wt);
                    gpumaja_locate(toa_axis, n_toa, (double)rta_mt[p], &il, &wl);
                    const double a0 = gpumaja_toc_at(toc_mt, n_aot, n_toa, ia, wa, it, wt, k0);
                    const double a1 = gpumaja_toc_at(toc_mt, n_aot, n_toa, ia, wa, it, wt, k0 + 1);
                    const double b0 = gpumaja_toc_at(table_l, n_aot, n_toa, ia, wa, il, wl, k1);
                    const double b1 = gpumaja_toc_at(table_l, n_aot, n_toa, ia, wa, il, wl, k1 + 1);
                    const double t_d = (1.0 - wk0) * a0 + wk0 * a1;
                    const double t_l = (1.0 - wk1) * b0 + wk1 * b1;
                    const double s_d = (a1 - a0) / dtau0 * s;
                    const double s_l = (b1 - b0) / dtau1 * s;
                    double u = 1.0, du = 0.0;
                    if (toa_units) {
                        const double q0 = st_toa_slope_at(toc_mt, n_aot, n_toa, toa_axis, ia, wa, it, k0);
                        const double q1 = st_toa_slope_at(toc_mt, n_aot, n_toa, toa_axis, ia, wa, it, k0 + 1);
                        const double q = (1.0 - wk0) * q0 + wk0 * q1;
                        if (q > 0.0) {
                            u = 1.0 / q;
                            du = -(u * u) * ((q1 - q0) / dtau0 * s);
                        } else {
                            u = 0.0;
                        }
                    }
                    const double r1 = t_d - t_l;
                    const double r2 = t_d - (double)rtc_mt[p];
                    const double e1 = w1 * (u * r1);
                    const double e2 = w2 * (u * r2);
                    const double j1d = w1 * (u * s_d + du * r1);
                    const double j1m = -(w1 * (u * s_l));
                    const double j2d = w2 * (u * s_d + du * r2);
                    e.cost += e1 * e1 + e2 * e2;
                    e.g0 += j1d * e1 + j2d * e2;
                    e.h00 += j1d * j1d + j2d * j2d;
                    e.g1 += j1m * e1;
                    e.h01 += j1d * j1m;
                    e.h11 += j1m * j1m;
                }
            }
        }
        if (tau0 > aot_dark) {
            const double r = sqrt_w_dark * (tau0 - aot_dark);
            e.cost += r * r;
            e.g0 += sqrt_w_dark * r;
            e.h00 += sqrt_w_dark * sqrt_w_dark;
        }
        if (tau0 < aot_min) {
            const double r = sqrt_w_bounds * (aot_min - tau0);
            e.cost += r * r;
            e.g0 -= sqrt_w_bounds * r;
            e.h00 += sqrt_w_bounds * sqrt_w_bounds;
        } else if (tau0 > aot_max) {
            const double r = sqrt_w_bounds * (tau0 - aot_max);
            e.cost += r * r;
            e.g0 += sqrt_w_bounds * r;
            e.h00 += sqrt_w_bounds * sqrt_w_bounds;
        }
        if (mt_valid) {
            if (tau1 < aot_min) {
                const double r = sqrt_w_bounds * (aot_min - tau1);
                e.cost += r * r;
                e.g1 -= sqrt_w_bounds * r;
                e.h11 += sqrt_w_bounds * sqrt_w_bounds;
            } else if (tau1 > aot_max) {
                const double r = sqrt_w_bounds * (tau1 - aot_max);
                e.cost += r * r;
                e.g1 += sqrt_w_bounds * r;
                e.h11 += sqrt_w_bounds * sqrt_w_bounds;
            }
        }
        return e;
    };

    // --- Levenberg-Marquardt on (tau0, tau1) ---------------------------------------------------------
    double tau0 = aot_initial;
    double tau1 = aot_initial_dm1;
    StEval cur = evaluate(tau0, tau1);
    double lambda = LM_LAMBDA0;
    for (int it = 0; it < max_iter; ++it) {
        if (!(cur.h00 > 0.0) || !isfinite(cur.h00) || !isfinite(cur.g0)) break;
        const bool two = cur.h11 > 0.0;
        double delta0, delta1;
        if (two) {
            const double a = cur.h00 * (1.0 + lambda);
            const double c = cur.h11 * (1.0 + lambda);
            const double det = a * c - cur.h01 * cur.h01;
            if (!(det > 0.0) || !isfinite(det) || !isfinite(cur.g1)) break;
            delta0 = -(c * cur.g0 - cur.h01 * cur.g1) / det;
            delta1 = -(a * cur.g1 - cur.h01 * cur.g0) / det;
        } else {
            delta0 = -cur.g0 / (cur.h00 * (1.0 + lambda));
            delta1 = 0.0;
        }
        const double t0 = tau0 + delta0;
        const double t1 = tau1 + delta1;
        const StEval trial = evaluate(t0, t1);
        const bool small = fmax(fabs(delta0), fabs(delta1)) < tol;
        if (trial.cost < cur.cost) {
            const double decrease = cur.cost - trial.cost;
            const double old_cost = cur.cost;
            tau0 = t0;
            tau1 = t1;
            cur = trial;
            lambda = lambda / LM_LAMBDA_FACTOR;
            if (small || decrease < tol * old_cost) break;
        } else {
            lambda = lambda * LM_LAMBDA_FACTOR;
            if (small) break;
        }
    }
    aot_out[node] = (float)fmin(fmax(tau0, aot_min), aot_max);
    n_used[node] = (ms_valid ? ms_count : 0) + (mt_valid ? mt_count : 0);
    method[node] = mt_valid ? 2 : 1;
}
