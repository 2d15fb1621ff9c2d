// pool.cu: max, average and L2 pooling over 1-D, 2-D and 3-D windows, forward and backward.
//
// Layout. Every input is a C-contiguous (planes, D, H, W) array, planes = N·C; a 2-D
// input is passed with D = 1 and a 1-D input with D = H = 1 (window 1, stride 1, no
// padding on the missing axes). Outputs are (planes, OD, OH, OW). Along each axis an
// output o reads the inputs o·S − P + t, t = 0..K−1, that lie inside [0, size):
// padding is never a value (it is skipped, never read).
//
//   max:  y = max over the window, NaN if it holds one; argmax = the input's index
//         within its plane, (d·H + h)·W + w, of the first tap in row-major window order
//         that equals y (the first NaN when y is NaN), as the NumPy reference routes the
//         gradient. Padding counts as −inf: when the window's first tap is padding and
//         every real value is −inf, argmax = −1 and no input gets the gradient.
//   avg:  y = Σ v / m, m = the number of real values in the window.
//   l2:   y = sqrt(Σ v² / m).
//
// Backward is a gather, one thread per run of four input elements along W: it visits the
// (few) windows that cover each element, in a fixed order, and writes each gradient once.
// No atomics, so overlapping windows are summed deterministically.
//   max:  gx = Σ gy[o] over the covering windows whose argmax is this element
//   avg:  gx = Σ gy[o] / m_o
//   l2:   gx = x · Σ gy[o] / (m_o · y[o]), windows with y[o] > 0 only; 0 where no window covers x
//
// Launch: 1-D grid-stride loops, any grid, blocks of at most 256 threads (the wrapper
// uses 256 and grid_stride_blocks). __launch_bounds__(256, 4) lets each forward thread
// have 64 registers (left to itself ptxas squeezes these kernels into 32 and spills),
// (256, 2) each backward thread 128 for its four elements in double. Elements
// are indexed with 32-bit arithmetic: the caller guarantees planes·D·H·W < 2^31 and
// planes·OD·OH·OW < 2^31.

#include "common.cuh"

enum { POOL_MAX = 0, POOL_AVG = 1, POOL_L2 = 2 };

// The real inputs [lo, hi) of a window starting at `start` (= o·S − P), and their count.
struct Span {
    int lo, hi;
    DEVICE_INLINE Span(int start, int k, int size) : lo(start > 0 ? start : 0), hi(start + k < size ? start + k : size) {}
    DEVICE_INLINE int count() const { return hi > lo ? hi - lo : 0; }
};

#define POOL_GEOMETRY_PARAMS                                                                 \
    int planes, int D, int H, int W, int OD, int OH, int OW, int KD, int KH, int KW, int SD, \
        int SH, int SW, int PD, int PH, int PW

// One thread per output element: y (and argmax for max pooling).
template <typename T, int MODE>
DEVICE_INLINE void pool_forward(const T* __restrict__ x, T* __restrict__ y, int* __restrict__ argmax,
                              POOL_GEOMETRY_PARAMS) {
    __shared__ unsigned muls[3], shifts[3];
    for (int k = threadIdx.x; k < 3; k += blockDim.x) {
        const FastDiv f = make_fast_div(k == 0 ? OW : k == 1 ? OH : OD);
        muls[k] = f.mul;
        shifts[k] = f.shift;
    }
    __syncthreads();
    const FastDiv div_ow{muls[0], shifts[0]}, div_oh{muls[1], shifts[1]}, div_od{muls[2], shifts[2]};
    const long long total = (long long)planes * OD * OH * OW;
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x; index < total; index += stride) {
        unsigned rest = (unsigned)index;
        unsigned q = fast_div(div_ow, rest);
        const int ow = (int)(rest - q * OW);
        rest = q;
        q = fast_div(div_oh, rest);
        const int oh = (int)(rest - q * OH);
        rest = q;
        q = fast_div(div_od, rest);
        const int od = (int)(rest - q * OD);
        const int plane = (int)q;

        const int d0 = od * SD - PD, h0 = oh * SH - PH, w0 = ow * SW - PW;
        const Span sd(d0, KD, D), sh(h0, KH, H), sw(w0, KW, W);
        const T* __restrict__ xp = x + (long long)plane * D * H * W;

        if (MODE == POOL_MAX) {
            // The first tap, real or padding (−inf), seeds the running maximum; a strictly
            // greater value, or the first NaN, replaces it (nothing replaces a NaN).
            bool take = d0 >= 0 && h0 >= 0 && w0 >= 0 && d0 < D && h0 < H && w0 < W;
            T best = -infinity<T>();
            int arg = -1;
            for (int d = sd.lo; d < sd.hi; ++d) {
                for (int h = sh.lo; h < sh.hi; ++h) {
                    const int row = (d * H + h) * W;
                    for (int w = sw.lo; w < sw.hi; ++w) {
                        const T v = xp[row + w];
                        if (take || v > best) {
                            best = v;
                            arg = row + w;
                            take = false;
                        } else if (v != v && best == best) {
                            best = v;
                            arg = row + w;
                        }
                    }
                }
            }
            y[index] = best;
            argmax[index] = arg;
        } else {
            T total_value = T(0);
            for (int d = sd.lo; d < sd.hi; ++d) {
                for (int h = sh.lo; h < sh.hi; ++h) {
                    const int row = (d * H + h) * W;
                    for (int w = sw.lo; w < sw.hi; ++w) {
                        const T v = xp[row + w];
                        total_value += MODE == POOL_L2 ? v * v : v;
                    }
                }
            }
            const T mean = total_value / T(sd.count() * sh.count() * sw.count());
            y[index] = MODE == POOL_L2 ? sqrt_(mean) : mean;
        }
    }
}

// The windows along one axis that cover padded position a = i + P: o = first, first − 1, ...
// while o >= 0 and the tap a − o·S < K. Starts at the last window, o = min(a / S, O − 1).
struct Cover {
    int first, tap;  // the first window and the tap of the element in it
    DEVICE_INLINE Cover(int a, const FastDiv& div_s, int S, int O) {
        first = (int)fast_div(div_s, (unsigned)a);
        tap = a - first * S;
        if (first > O - 1) {
            tap += (first - (O - 1)) * S;
            first = O - 1;
        }
    }
};

// Four consecutive T, stored with 16-byte vector stores.
template <typename T>
struct alignas(16) Quad {
    T v[4];
};

// One thread per run of RUN consecutive input elements of a row (plane, d, h, w0..w0+3):
// the index decomposition and the windows along D and H are worked out once per run.
// Each element's gx is gathered from the windows that cover it, in a fixed order.
// Offsets are 32-bit: every element and output index is below 2^31.
template <typename T, int MODE>
DEVICE_INLINE void pool_backward(const T* __restrict__ gy, const int* __restrict__ argmax, const T* __restrict__ x,
                               const T* __restrict__ y, T* __restrict__ gx, POOL_GEOMETRY_PARAMS) {
    constexpr int RUN = 4;
    const int runs_per_row = (W + RUN - 1) / RUN;
    __shared__ unsigned muls[6], shifts[6];
    for (int k = threadIdx.x; k < 6; k += blockDim.x) {
        const int divisor = k == 0 ? runs_per_row : k == 1 ? H : k == 2 ? D : k == 3 ? SW : k == 4 ? SH : SD;
        const FastDiv f = make_fast_div(divisor);
        muls[k] = f.mul;
        shifts[k] = f.shift;
    }
    __syncthreads();
    const FastDiv div_runs{muls[0], shifts[0]}, div_h{muls[1], shifts[1]}, div_d{muls[2], shifts[2]};
    const FastDiv div_sw{muls[3], shifts[3]}, div_sh{muls[4], shifts[4]}, div_sd{muls[5], shifts[5]};
    // Whole runs start 4 elements apart, so with W % 4 == 0 every run is 16-byte aligned.
    const bool vector = W % RUN == 0 && (reinterpret_cast<unsigned long long>(gx) & 15) == 0 &&
                        (MODE != POOL_L2 || (reinterpret_cast<unsigned long long>(x) & 15) == 0);
    const long long total = (long long)planes * D * H * runs_per_row;
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x; index < total; index += stride) {
        unsigned rest = (unsigned)index;
        unsigned q = fast_div(div_runs, rest);
        const int w0 = (int)(rest - q * runs_per_row) * RUN;
        rest = q;
        q = fast_div(div_h, rest);
        const int h = (int)(rest - q * H);
        rest = q;
        q = fast_div(div_d, rest);
        const int d = (int)(rest - q * D);
        const int plane = (int)q;
        const int position0 = (d * H + h) * W + w0;  // within the plane
        const int element0 = plane * D * H * W + position0;
        const int plane_out = plane * OD * OH * OW;

        const Cover cd(d + PD, div_sd, SD, OD), ch(h + PH, div_sh, SH, OH);
        int first_w[RUN], tap_w[RUN];
#pragma unroll
        for (int k = 0; k < RUN; ++k) {
            const Cover cw(w0 + k + PW, div_sw, SW, OW);
            first_w[k] = w0 + k < W ? cw.first : -1;  // no windows for elements past the row's end
            tap_w[k] = cw.tap;
        }
        T sum[RUN];
        bool covered[RUN];  // L2: an element no window covers gets 0, not x · 0 (NaN for x = ±inf or NaN)
#pragma unroll
        for (int k = 0; k < RUN; ++k) {
            sum[k] = T(0);
            covered[k] = false;
        }
        for (int od = cd.first, td = cd.tap; od >= 0 && td < KD; --od, td += SD) {
            const int count_d = Span(od * SD - PD, KD, D).count();
            for (int oh = ch.first, th = ch.tap; oh >= 0 && th < KH; --oh, th += SH) {
                const int count_dh = count_d * Span(oh * SH - PH, KH, H).count();
                const int row = plane_out + (od * OH + oh) * OW;
#pragma unroll
                for (int k = 0; k < RUN; ++k) {
                    for (int ow = first_w[k], tw = tap_w[k]; ow >= 0 && tw < KW; --ow, tw += SW) {
                        const int o = row + ow;
                        covered[k] = true;
                        if (MODE == POOL_MAX) {
                            if (argmax[o] == position0 + k) sum[k] += gy[o];
                        } else {
                            const T count = T(count_dh * Span(ow * SW - PW, KW, W).count());
                            if (MODE == POOL_AVG) {
                                sum[k] += gy[o] / count;
                            } else if (y[o] > T(0)) {
                                sum[k] += gy[o] / (count * y[o]);
                            }
                        }
                    }
                }
            }
        }
        if (vector) {
            Quad<T> out;
            if (MODE == POOL_L2) {
                const Quad<T> in = *reinterpret_cast<const Quad<T>*>(x + element0);
#pragma unroll
                for (int k = 0; k < RUN; ++k) out.v[k] = covered[k] ? in.v[k] * sum[k] : T(0);
            } else {
#pragma unroll
                for (int k = 0; k < RUN; ++k) out.v[k] = sum[k];
            }
            *reinterpret_cast<Quad<T>*>(gx + element0) = out;
        } else {
#pragma unroll
            for (int k = 0; k < RUN; ++k) {
                if (w0 + k < W) {
                    gx[element0 + k] = MODE != POOL_L2 ? sum[k] : covered[k] ? x[element0 + k] * sum[k] : T(0);
                }
            }
        }
    }
}

// Backward for exactly tiled windows (window = stride on every axis, no padding, each size
// = O·K): the windows partition the input, so one thread per window writes all of its
// elements, with no search: the gradient at the arg-max and 0 elsewhere (max), gy / m
// (avg), x · gy / (m · y) or 0 where y = 0 (l2). Consecutive threads write consecutive
// pieces of each row: coalesced.
template <typename T, int MODE>
DEVICE_INLINE void pool_backward_tiled(const T* __restrict__ gy, const int* __restrict__ argmax,
                                     const T* __restrict__ x, const T* __restrict__ y, T* __restrict__ gx,
                                     POOL_GEOMETRY_PARAMS) {
    __shared__ unsigned muls[3], shifts[3];
    for (int k = threadIdx.x; k < 3; k += blockDim.x) {
        const FastDiv f = make_fast_div(k == 0 ? OW : k == 1 ? OH : OD);
        muls[k] = f.mul;
        shifts[k] = f.shift;
    }
    __syncthreads();
    const FastDiv div_ow{muls[0], shifts[0]}, div_oh{muls[1], shifts[1]}, div_od{muls[2], shifts[2]};
    const T count = T(KD * KH * KW);
    const long long total = (long long)planes * OD * OH * OW;
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x; index < total; index += stride) {
        const int o = (int)index;
        unsigned rest = (unsigned)o;
        unsigned q = fast_div(div_ow, rest);
        const int ow = (int)(rest - q * OW);
        rest = q;
        q = fast_div(div_oh, rest);
        const int oh = (int)(rest - q * OH);
        rest = q;
        q = fast_div(div_od, rest);
        const int od = (int)(rest - q * OD);
        const int plane = (int)q;

        const T g = gy[o];
        const int arg = MODE == POOL_MAX ? argmax[o] : 0;
        T value = g / count;  // avg: every element's share
        if (MODE == POOL_L2) value = y[o] > T(0) ? g / (count * y[o]) : T(0);
        const int base = plane * D * H * W;
        for (int kd = 0; kd < KD; ++kd) {
            for (int kh = 0; kh < KH; ++kh) {
                const int row = ((od * KD + kd) * H + oh * KH + kh) * W + ow * KW;
                for (int kw = 0; kw < KW; ++kw) {
                    const int position = row + kw;
                    T v = value;
                    if (MODE == POOL_MAX) v = position == arg ? g : T(0);
                    if (MODE == POOL_L2) v = x[base + position] * value;
                    gx[base + position] = v;
                }
            }
        }
    }
}

// Entry points. Forward: (x, y[, argmax], geometry). Backward, the gather or the tiled
// kernel: max (gy, argmax, gx), avg (gy, gx), l2 (gy, x, y, gx), then the geometry.
#define POOL_GEOMETRY_ARGS planes, D, H, W, OD, OH, OW, KD, KH, KW, SD, SH, SW, PD, PH, PW

#define POOL_MAX_FORWARD_ENTRY(NAME, T)                                                                          \
    extern "C" __global__ void __launch_bounds__(256, 4)                                                         \
        NAME(const T* __restrict__ x, T* __restrict__ y, int* __restrict__ argmax, POOL_GEOMETRY_PARAMS) {       \
        pool_forward<T, POOL_MAX>(x, y, argmax, POOL_GEOMETRY_ARGS);                                             \
    }
#define POOL_FORWARD_ENTRY(NAME, T, MODE)                                                                        \
    extern "C" __global__ void __launch_bounds__(256, 4)                                                         \
        NAME(const T* __restrict__ x, T* __restrict__ y, POOL_GEOMETRY_PARAMS) {                                 \
        pool_forward<T, MODE>(x, y, nullptr, POOL_GEOMETRY_ARGS);                                                \
    }
#define POOL_MAX_BACKWARD_ENTRY(NAME, T, KERNEL, MIN_BLOCKS)                                                     \
    extern "C" __global__ void __launch_bounds__(256, MIN_BLOCKS) NAME(                                          \
        const T* __restrict__ gy, const int* __restrict__ argmax, T* __restrict__ gx, POOL_GEOMETRY_PARAMS) {    \
        KERNEL<T, POOL_MAX>(gy, argmax, nullptr, nullptr, gx, POOL_GEOMETRY_ARGS);                               \
    }
#define POOL_AVG_BACKWARD_ENTRY(NAME, T, KERNEL, MIN_BLOCKS)                                                     \
    extern "C" __global__ void __launch_bounds__(256, MIN_BLOCKS)                                                \
        NAME(const T* __restrict__ gy, T* __restrict__ gx, POOL_GEOMETRY_PARAMS) {                               \
        KERNEL<T, POOL_AVG>(gy, nullptr, nullptr, nullptr, gx, POOL_GEOMETRY_ARGS);                              \
    }
#define POOL_L2_BACKWARD_ENTRY(NAME, T, KERNEL, MIN_BLOCKS)                                                      \
    extern "C" __global__ void __launch_bounds__(256, MIN_BLOCKS)                                                \
        NAME(const T* __restrict__ gy, const T* __restrict__ x, const T* __restrict__ y, T* __restrict__ gx,     \
             POOL_GEOMETRY_PARAMS) {                                                                             \
        KERNEL<T, POOL_L2>(gy, nullptr, x, y, gx, POOL_GEOMETRY_ARGS);                                           \
    }

POOL_MAX_FORWARD_ENTRY(pool_max_forward_f32, float)
POOL_MAX_FORWARD_ENTRY(pool_max_forward_f64, double)
POOL_FORWARD_ENTRY(pool_avg_forward_f32, float, POOL_AVG)
POOL_FORWARD_ENTRY(pool_avg_forward_f64, double, POOL_AVG)
POOL_FORWARD_ENTRY(pool_l2_forward_f32, float, POOL_L2)
POOL_FORWARD_ENTRY(pool_l2_forward_f64, double, POOL_L2)
POOL_MAX_BACKWARD_ENTRY(pool_max_backward_f32, float, pool_backward, 2)
POOL_MAX_BACKWARD_ENTRY(pool_max_backward_f64, double, pool_backward, 2)
POOL_AVG_BACKWARD_ENTRY(pool_avg_backward_f32, float, pool_backward, 2)
POOL_AVG_BACKWARD_ENTRY(pool_avg_backward_f64, double, pool_backward, 2)
POOL_L2_BACKWARD_ENTRY(pool_l2_backward_f32, float, pool_backward, 2)
POOL_L2_BACKWARD_ENTRY(pool_l2_backward_f64, double, pool_backward, 2)
POOL_MAX_BACKWARD_ENTRY(pool_max_backward_tiled_f32, float, pool_backward_tiled, 4)
POOL_MAX_BACKWARD_ENTRY(pool_max_backward_tiled_f64, double, pool_backward_tiled, 4)
POOL_AVG_BACKWARD_ENTRY(pool_avg_backward_tiled_f32, float, pool_backward_tiled, 4)
POOL_AVG_BACKWARD_ENTRY(pool_avg_backward_tiled_f64, double, pool_backward_tiled, 4)
POOL_L2_BACKWARD_ENTRY(pool_l2_backward_tiled_f32, float, pool_backward_tiled, 4)
POOL_L2_BACKWARD_ENTRY(pool_l2_backward_tiled_f64, double, pool_backward_tiled, 4)
