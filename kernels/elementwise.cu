// elementwise.cu: activations and their gradients, dropout, softmax and log-softmax, the
// fused losses on logits, and batch normalisation, for cnnkit.
//
// Every entry point exists for float (suffix _f32) and double (_f64) and follows the
// NumPy reference registered under the same op name in cnnkit/ops (activation.py,
// loss.py, dropout.py, norm.py); the formulas are repeated beside each kernel. Arrays are
// C-contiguous. Launch shapes:
//   - element-wise kernels: 1-D grid-stride loops, any grid, blocks of at most 256
//     threads; 16-byte vector loads (float4 / double2) when every pointer is 16-byte
//     aligned, scalar loads otherwise and for the tail;
//   - row kernels (softmax over the last axis, cross-entropy): "_warp" variants give each
//     row one warp (rows of up to ~1024 columns), "_block" variants one block of exactly
//     256 threads; any grid (they loop over rows);
//   - batch-norm reductions: a (C, parts) grid of blocks of exactly 256 threads.
// Every launch uses __launch_bounds__(256, 4): 64 registers per thread, so ptxas does not
// squeeze the kernels into 32 registers and spill.
// Reductions run in a fixed order (no atomics), so every result is reproducible.

#include "common.cuh"

#define EW_THREADS 256
#define EW_KERNEL extern "C" __global__ void __launch_bounds__(EW_THREADS, 4)

// ================================================================ common helpers

DEVICE_INLINE float exp_(float v) { return expf(v); }
DEVICE_INLINE double exp_(double v) { return exp(v); }
DEVICE_INLINE float expm1_(float v) { return expm1f(v); }
DEVICE_INLINE double expm1_(double v) { return expm1(v); }
DEVICE_INLINE float log_(float v) { return logf(v); }
DEVICE_INLINE double log_(double v) { return log(v); }
DEVICE_INLINE float log1p_(float v) { return log1pf(v); }
DEVICE_INLINE double log1p_(double v) { return log1p(v); }
DEVICE_INLINE float tanh_(float v) { return tanhf(v); }
DEVICE_INLINE double tanh_(double v) { return tanh(v); }
DEVICE_INLINE float erf_(float v) { return erff(v); }
DEVICE_INLINE double erf_(double v) { return erf(v); }
DEVICE_INLINE float abs_(float v) { return fabsf(v); }
DEVICE_INLINE double abs_(double v) { return fabs(v); }

DEVICE_INLINE long long thread_start() { return (long long)blockIdx.x * blockDim.x + threadIdx.x; }
DEVICE_INLINE long long grid_stride() { return (long long)gridDim.x * blockDim.x; }

// The two divisors a channel lookup needs, set up once per block: c = (i / inner) % C.
DEVICE_INLINE void setup_channel_divisors(int inner, int C, FastDiv& by_inner, FastDiv& by_channels) {
    __shared__ unsigned muls[2], shifts[2];
    if (threadIdx.x < 2) {
        const FastDiv f = make_fast_div(threadIdx.x == 0 ? inner : C);
        muls[threadIdx.x] = f.mul;
        shifts[threadIdx.x] = f.shift;
    }
    __syncthreads();
    by_inner = FastDiv{muls[0], shifts[0]};
    by_channels = FastDiv{muls[1], shifts[1]};
}

DEVICE_INLINE int channel_of(unsigned index, const FastDiv& by_inner, const FastDiv& by_channels, int C) {
    const unsigned q = fast_div(by_inner, index);
    return (int)(q - fast_div(by_channels, q) * (unsigned)C);
}

// ================================================================ element-wise maps

// out[i] = f(a[i]), f(a[i], b[i]) or f(a[i], b[i], c[i]) over n elements. With INPUTS < 3
// the unused pointers are ignored (pass any input).
template <int INPUTS, typename T, typename F>
DEVICE_INLINE void map(const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ c, T* __restrict__ out,
                   long long n, F f) {
    constexpr int V = Pack<T>::N;
    const long long start = thread_start(), stride = grid_stride();
    long long scalar_from = 0;
    if (aligned16(a) && aligned16(out) && (INPUTS < 2 || aligned16(b)) && (INPUTS < 3 || aligned16(c))) {
        const long long vectors = n / V;
        for (long long i = start; i < vectors; i += stride) {
            const Pack<T> pa = reinterpret_cast<const Pack<T>*>(a)[i];
            Pack<T> pb{}, pc{}, po;
            if (INPUTS >= 2) pb = reinterpret_cast<const Pack<T>*>(b)[i];
            if (INPUTS >= 3) pc = reinterpret_cast<const Pack<T>*>(c)[i];
#pragma unroll
            for (int k = 0; k < V; ++k) po.v[k] = f(pa.v[k], pb.v[k], pc.v[k]);
            reinterpret_cast<Pack<T>*>(out)[i] = po;
        }
        scalar_from = vectors * V;
    }
    for (long long i = scalar_from + start; i < n; i += stride) {
        out[i] = f(a[i], INPUTS >= 2 ? b[i] : T(0), INPUTS >= 3 ? c[i] : T(0));
    }
}

// Each functor maps (a, b, c) to one output; alpha is the activation's parameter (unused
// by most). The comments give the reference's formula.

template <typename T>
DEVICE_INLINE T sigmoid_of(T x) {  // 1 / (1 + e^(−x)) from e^(−|x|) <= 1: no overflow
    const T e = exp_(-abs_(x));
    const T r = T(1) / (T(1) + e);
    return x >= T(0) ? r : e * r;
}

template <typename T> struct Relu {  // max(x, 0), NaN kept
    T alpha;
    DEVICE_INLINE T operator()(T x, T, T) const { return x < T(0) ? T(0) : x; }
};
template <typename T> struct ReluGrad {  // gy · [x > 0], written as a product as the reference
    T alpha;
    DEVICE_INLINE T operator()(T x, T gy, T) const { return gy * (x > T(0) ? T(1) : T(0)); }
};
template <typename T> struct LeakyRelu {  // x for x > 0, α·x otherwise
    T alpha;
    DEVICE_INLINE T operator()(T x, T, T) const { return x > T(0) ? x : x * alpha; }
};
template <typename T> struct LeakyReluGrad {  // gy for x > 0, α·gy otherwise
    T alpha;
    DEVICE_INLINE T operator()(T x, T gy, T) const { return x > T(0) ? gy : gy * alpha; }
};
template <typename T> struct Elu {  // x for x > 0, α·(eˣ − 1) otherwise (NaN lands here)
    T alpha;
    DEVICE_INLINE T operator()(T x, T, T) const { return x > T(0) ? x : alpha * expm1_(x); }
};
template <typename T> struct EluGrad {  // gy for x > 0, gy·(y + α) = gy·α·eˣ otherwise
    T alpha;
    DEVICE_INLINE T operator()(T x, T gy, T) const { return x > T(0) ? gy : gy * (alpha * exp_(x)); }
};
template <typename T> struct Sigmoid {
    T alpha;
    DEVICE_INLINE T operator()(T x, T, T) const { return sigmoid_of(x); }
};
template <typename T> struct SigmoidGrad {  // from y: gy · y · (1 − y)
    T alpha;
    DEVICE_INLINE T operator()(T y, T gy, T) const { return gy * y * (T(1) - y); }
};
template <typename T> struct Tanh {
    T alpha;
    DEVICE_INLINE T operator()(T x, T, T) const { return tanh_(x); }
};
template <typename T> struct TanhGrad {  // from y: gy · (1 − y²)
    T alpha;
    DEVICE_INLINE T operator()(T y, T gy, T) const { return gy * (T(1) - y * y); }
};
template <typename T> struct Silu {  // x · σ(x)
    T alpha;
    DEVICE_INLINE T operator()(T x, T, T) const { return x * sigmoid_of(x); }
};
template <typename T> struct SiluGrad {  // gy · σ(x) · (1 + x · (1 − σ(x)))
    T alpha;
    DEVICE_INLINE T operator()(T x, T gy, T) const {
        const T s = sigmoid_of(x);
        return gy * s * (T(1) + x * (T(1) - s));
    }
};
// GELU constants: √½, 1/√(2π), √(2/π) and the cubic coefficient of the tanh form.
#define GELU_SQRT_HALF 0.70710678118654752440
#define GELU_ONE_OVER_SQRT_2PI 0.39894228040143267794
#define GELU_SQRT_2_OVER_PI 0.79788456080286535588
#define GELU_CUBIC 0.044715
template <typename T> struct Gelu {  // x · Φ(x), Φ(x) = (1 + erf(x/√2)) / 2
    T alpha;
    DEVICE_INLINE T operator()(T x, T, T) const { return T(0.5) * x * (T(1) + erf_(x * T(GELU_SQRT_HALF))); }
};
template <typename T> struct GeluGrad {  // gy · (Φ(x) + x · φ(x)), φ(x) = e^(−x²/2)/√(2π)
    T alpha;
    DEVICE_INLINE T operator()(T x, T gy, T) const {
        const T cdf = T(0.5) * (T(1) + erf_(x * T(GELU_SQRT_HALF)));
        const T pdf = T(GELU_ONE_OVER_SQRT_2PI) * exp_(T(-0.5) * x * x);
        return gy * (cdf + x * pdf);
    }
};
template <typename T> struct GeluTanh {  // x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))
    T alpha;
    DEVICE_INLINE T operator()(T x, T, T) const {
        return T(0.5) * x * (T(1) + tanh_(T(GELU_SQRT_2_OVER_PI) * (x + T(GELU_CUBIC) * x * x * x)));
    }
};
template <typename T> struct GeluTanhGrad {  // gy · ((1 + t)/2 + x/2 · (1 − t²) · u'), t = tanh(u)
    T alpha;
    DEVICE_INLINE T operator()(T x, T gy, T) const {
        const T t = tanh_(T(GELU_SQRT_2_OVER_PI) * (x + T(GELU_CUBIC) * x * x * x));
        const T du = T(GELU_SQRT_2_OVER_PI) * (T(1) + T(3 * GELU_CUBIC) * x * x);
        return gy * (T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * du);
    }
};
template <typename T> struct SigmoidBce {  // max(z, 0) − z·t + log(1 + e^(−|z|))
    T alpha;
    DEVICE_INLINE T operator()(T z, T t, T) const { return (z < T(0) ? T(0) : z) - z * t + log1p_(exp_(-abs_(z))); }
};
template <typename T> struct SigmoidBceGrad {  // (σ(z) − t) · gy
    T alpha;
    DEVICE_INLINE T operator()(T z, T t, T gy) const { return (sigmoid_of(z) - t) * gy; }
};

// Forward activations: (x, y, n, alpha) -> y = f(x).
#define UNARY_ENTRY(NAME, FUNCTOR, T)                                                       \
    EW_KERNEL NAME(const T* __restrict__ x, T* __restrict__ y, long long n, double alpha) { \
        map<1>(x, x, x, y, n, FUNCTOR<T>{(T)alpha});                                        \
    }
// Gradients: (source, gy, gx, n, alpha) -> gx = f'(source) · gy; the source is x or y as
// the functor's comment says (the wrapper passes the right one).
#define BINARY_ENTRY(NAME, FUNCTOR, T)                                                                            \
    EW_KERNEL NAME(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ out, long long n, double alpha) { \
        map<2>(a, b, a, out, n, FUNCTOR<T>{(T)alpha});                                                            \
    }
#define TERNARY_ENTRY(NAME, FUNCTOR, T)                                                                  \
    EW_KERNEL NAME(const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ c,            \
                   T* __restrict__ out, long long n) {                                                   \
        map<3>(a, b, c, out, n, FUNCTOR<T>{T(0)});                                                       \
    }

UNARY_ENTRY(relu_f32, Relu, float)
BINARY_ENTRY(relu_grad_f32, ReluGrad, float)
UNARY_ENTRY(leaky_relu_f32, LeakyRelu, float)
BINARY_ENTRY(leaky_relu_grad_f32, LeakyReluGrad, float)
UNARY_ENTRY(elu_f32, Elu, float)
BINARY_ENTRY(elu_grad_f32, EluGrad, float)
UNARY_ENTRY(sigmoid_f32, Sigmoid, float)
BINARY_ENTRY(sigmoid_grad_f32, SigmoidGrad, float)
UNARY_ENTRY(tanh_f32, Tanh, float)
BINARY_ENTRY(tanh_grad_f32, TanhGrad, float)
UNARY_ENTRY(silu_f32, Silu, float)
BINARY_ENTRY(silu_grad_f32, SiluGrad, float)
UNARY_ENTRY(gelu_f32, Gelu, float)
BINARY_ENTRY(gelu_grad_f32, GeluGrad, float)
UNARY_ENTRY(gelu_tanh_f32, GeluTanh, float)
BINARY_ENTRY(gelu_tanh_grad_f32, GeluTanhGrad, float)
BINARY_ENTRY(sigmoid_bce_f32, SigmoidBce, float)
TERNARY_ENTRY(sigmoid_bce_grad_f32, SigmoidBceGrad, float)
UNARY_ENTRY(relu_f64, Relu, double)
BINARY_ENTRY(relu_grad_f64, ReluGrad, double)
UNARY_ENTRY(leaky_relu_f64, LeakyRelu, double)
BINARY_ENTRY(leaky_relu_grad_f64, LeakyReluGrad, double)
UNARY_ENTRY(elu_f64, Elu, double)
BINARY_ENTRY(elu_grad_f64, EluGrad, double)
UNARY_ENTRY(sigmoid_f64, Sigmoid, double)
BINARY_ENTRY(sigmoid_grad_f64, SigmoidGrad, double)
UNARY_ENTRY(tanh_f64, Tanh, double)
BINARY_ENTRY(tanh_grad_f64, TanhGrad, double)
UNARY_ENTRY(silu_f64, Silu, double)
BINARY_ENTRY(silu_grad_f64, SiluGrad, double)
UNARY_ENTRY(gelu_f64, Gelu, double)
BINARY_ENTRY(gelu_grad_f64, GeluGrad, double)
UNARY_ENTRY(gelu_tanh_f64, GeluTanh, double)
BINARY_ENTRY(gelu_tanh_grad_f64, GeluTanhGrad, double)
BINARY_ENTRY(sigmoid_bce_f64, SigmoidBce, double)
TERNARY_ENTRY(sigmoid_bce_grad_f64, SigmoidBceGrad, double)

// ================================================================ dropout

// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011):
// four independent 32-bit random words from a 128-bit counter and a 64-bit key.
DEVICE_INLINE void philox4x32_10(unsigned (&c)[4], unsigned k0, unsigned k1) {
#pragma unroll
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        const unsigned long long p0 = (unsigned long long)0xD2511F53u * c[0];
        const unsigned long long p1 = (unsigned long long)0xCD9E8D57u * c[2];
        const unsigned hi0 = (unsigned)(p0 >> 32), lo0 = (unsigned)p0;
        const unsigned hi1 = (unsigned)(p1 >> 32), lo1 = (unsigned)p1;
        c[0] = hi1 ^ c[1] ^ k0;
        c[1] = lo1;
        c[2] = hi0 ^ c[3] ^ k1;
        c[3] = lo0;
    }
}

// y = x · mask, mask = [r >= threshold] · scale with r the Philox word of the element:
// element i uses word i % 4 of the block of counter (i / 4 as the low 64 bits, stream as the
// high 64) under key = seed, as cnnkit/philox.py does on the host. With
// threshold = ceil(rate · 2^32) an element is dropped with probability rate (to 2^-32), and
// scale = 1/(1 − rate). The mask depends only on (seed, stream, i): any grid gives the same bits.
template <typename T>
DEVICE_INLINE void dropout(const T* __restrict__ x, T* __restrict__ y, T* __restrict__ mask, long long n,
                           unsigned long long seed, unsigned long long stream, unsigned threshold, double scale) {
    constexpr int V = Pack<T>::N;  // 4 floats or 2 doubles: one or two packs per quad
    const T keep = T(scale);
    const bool vector = aligned16(x) && aligned16(y) && aligned16(mask);
    const long long quads = (n + 3) / 4, stride = grid_stride();
    for (long long q = thread_start(); q < quads; q += stride) {
        unsigned r[4] = {(unsigned)q, (unsigned)(q >> 32), (unsigned)stream, (unsigned)(stream >> 32)};
        philox4x32_10(r, (unsigned)seed, (unsigned)(seed >> 32));
        const long long base = q * 4;
        if (vector && base + 4 <= n) {
#pragma unroll
            for (int p = 0; p < 4 / V; ++p) {
                const Pack<T> px = reinterpret_cast<const Pack<T>*>(x + base)[p];
                Pack<T> py, pm;
#pragma unroll
                for (int k = 0; k < V; ++k) {
                    pm.v[k] = r[p * V + k] >= threshold ? keep : T(0);
                    py.v[k] = px.v[k] * pm.v[k];
                }
                reinterpret_cast<Pack<T>*>(mask + base)[p] = pm;
                reinterpret_cast<Pack<T>*>(y + base)[p] = py;
            }
        } else {
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                if (base + k < n) {
                    const T m = r[k] >= threshold ? keep : T(0);
                    mask[base + k] = m;
                    y[base + k] = x[base + k] * m;
                }
            }
        }
    }
}

#define DROPOUT_ENTRY(NAME, T)                                                                          \
    EW_KERNEL NAME(const T* __restrict__ x, T* __restrict__ y, T* __restrict__ mask, long long n,       \
                   unsigned long long seed, unsigned long long stream, unsigned threshold, double scale) { \
        dropout(x, y, mask, n, seed, stream, threshold, scale);                                         \
    }
DROPOUT_ENTRY(dropout_f32, float)
DROPOUT_ENTRY(dropout_f64, double)

// ================================================================ reductions within a row

// A group of GROUP threads (32: one warp; 256: the whole block) reduces a pair (a, b)
// with `merge`, which must be commutative: the butterfly then leaves the same bits in
// every lane, and the block stage merges the warps in a fixed order, so every thread of
// the group ends with the identical result. `shared` holds 2 · (GROUP / 32) values.
template <int GROUP, typename T, typename Merge>
DEVICE_INLINE void group_reduce(T& a, T& b, Merge merge, T* shared) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        const T a2 = __shfl_xor_sync(0xffffffffu, a, offset);
        const T b2 = __shfl_xor_sync(0xffffffffu, b, offset);
        merge(a, b, a2, b2);
    }
    if (GROUP > 32) {
        const int warp = threadIdx.x / 32;
        __syncthreads();  // the previous row's readers are done with `shared`
        if (threadIdx.x % 32 == 0) {
            shared[2 * warp] = a;
            shared[2 * warp + 1] = b;
        }
        __syncthreads();
        a = shared[0];
        b = shared[1];
        for (int w = 1; w < GROUP / 32; ++w) merge(a, b, shared[2 * w], shared[2 * w + 1]);
    }
}

struct SumMerge {
    template <typename T>
    DEVICE_INLINE void operator()(T& a, T& b, T a2, T b2) const {
        a += a2;
        b += b2;
    }
};

// (m, s): the running maximum of a row and s = Σ e^(x − m). m is never NaN: a NaN value
// adds e^NaN to s instead, which makes the row NaN as the reference's max does. −inf
// values add nothing, so a row of −inf keeps s = 0 and its outputs come out NaN from
// (−inf) − (−inf), as the reference's.
template <typename T>
DEVICE_INLINE void push_max_sum(T& m, T& s, T v) {
    if (v > m) {
        s = s * exp_(m - v) + T(1);
        m = v;
    } else if (!(v == -infinity<T>())) {
        s += exp_(v - m);
    }
}

struct MaxSumMerge {
    template <typename T>
    DEVICE_INLINE void operator()(T& m, T& s, T m2, T s2) const {
        const T top = m2 > m ? m2 : m;
        s = s * (m == top ? T(1) : exp_(m - top)) + s2 * (m2 == top ? T(1) : exp_(m2 - top));
        m = top;
    }
};

// The row's (m, log-sum) after a group reduction. A +inf maximum makes the whole row
// NaN, as the reference's inf − inf does.
template <int GROUP, typename T>
DEVICE_INLINE void row_max_sum(const T* __restrict__ row, int cols, int lane, T* shared, T& m, T& s) {
    m = -infinity<T>();
    s = T(0);
    for (int j = lane; j < cols; j += GROUP) push_max_sum(m, s, row[j]);
    group_reduce<GROUP>(m, s, MaxSumMerge(), shared);
    if (m == infinity<T>()) s = quiet_nan<T>();
}

// Loop over the rows a group owns: GROUP threads per row, blockDim / GROUP rows per block.
#define FOR_EACH_ROW(row, rows)                                                                        \
    const int lane = threadIdx.x % GROUP;                                                              \
    const int groups_per_block = blockDim.x / GROUP;                                                   \
    for (long long row = (long long)blockIdx.x * groups_per_block + threadIdx.x / GROUP; row < (rows); \
         row += (long long)gridDim.x * groups_per_block)

// ================================================================ softmax and log-softmax

// softmax:     y = e^(x − m) / Σ e^(x − m)
// log_softmax: y = (x − m) − log Σ e^(x − m)
// over the last axis, rows of `cols` values.
template <typename T, int GROUP, bool LOG>
DEVICE_INLINE void softmax_rows(const T* __restrict__ x, T* __restrict__ y, long long rows, int cols) {
    __shared__ T shared[2 * EW_THREADS / 32];
    FOR_EACH_ROW(row, rows) {
        const T* __restrict__ xr = x + row * cols;
        T* __restrict__ yr = y + row * cols;
        T m, s;
        row_max_sum<GROUP>(xr, cols, lane, shared, m, s);
        const T log_s = log_(s);
        for (int j = lane; j < cols; j += GROUP) yr[j] = LOG ? (xr[j] - m) - log_s : exp_(xr[j] - m) / s;
    }
}

// The same along a middle axis: x viewed as (outer, C, inner) with inner > 1; one thread per
// (outer, inner) column, reading its C values `inner` apart (adjacent threads, adjacent
// columns: coalesced).
template <typename T, bool LOG>
DEVICE_INLINE void softmax_strided(const T* __restrict__ x, T* __restrict__ y, long long columns, int C, int inner) {
    for (long long col = thread_start(); col < columns; col += grid_stride()) {
        const long long o = col / inner;
        const long long base = o * C * inner + (col - o * inner);
        T m = -infinity<T>(), s = T(0);
        for (int k = 0; k < C; ++k) push_max_sum(m, s, x[base + (long long)k * inner]);
        if (m == infinity<T>()) s = quiet_nan<T>();
        const T log_s = log_(s);
        for (int k = 0; k < C; ++k) {
            const long long i = base + (long long)k * inner;
            y[i] = LOG ? (x[i] - m) - log_s : exp_(x[i] - m) / s;
        }
    }
}

// ================================================================ softmax cross-entropy

// Class-index targets: loss_n = log Σ_j e^(z_nj − m) − (z_n,t − m), probs = softmax(z).
// A target outside [0, cols) gives a NaN loss (the reference would raise or wrap).
template <typename T, int GROUP>
DEVICE_INLINE void xent_index(const T* __restrict__ z, const long long* __restrict__ target, T* __restrict__ loss,
                          T* __restrict__ probs, long long rows, int cols) {
    __shared__ T shared[2 * EW_THREADS / 32];
    FOR_EACH_ROW(row, rows) {
        const T* __restrict__ zr = z + row * cols;
        T* __restrict__ pr = probs + row * cols;
        T m, s;
        row_max_sum<GROUP>(zr, cols, lane, shared, m, s);
        for (int j = lane; j < cols; j += GROUP) pr[j] = exp_(zr[j] - m) / s;
        if (lane == 0) {
            const long long t = target[row];
            loss[row] = t >= 0 && t < cols ? log_(s) - (zr[t] - m) : quiet_nan<T>();
        }
    }
}

// Probability targets: loss_n = log(Σ_j e^(z_nj − m)) · Σ_j t_nj − Σ_j t_nj (z_nj − m).
template <typename T, int GROUP>
DEVICE_INLINE void xent_prob(const T* __restrict__ z, const T* __restrict__ target, T* __restrict__ loss,
                         T* __restrict__ probs, long long rows, int cols) {
    __shared__ T shared[2 * EW_THREADS / 32];
    FOR_EACH_ROW(row, rows) {
        const T* __restrict__ zr = z + row * cols;
        const T* __restrict__ tr = target + row * cols;
        T* __restrict__ pr = probs + row * cols;
        T m, s;
        row_max_sum<GROUP>(zr, cols, lane, shared, m, s);
        T t_sum = T(0), tz_sum = T(0);
        for (int j = lane; j < cols; j += GROUP) {
            const T shifted = zr[j] - m, t = tr[j];
            pr[j] = exp_(shifted) / s;
            t_sum += t;
            tz_sum += t * shifted;
        }
        group_reduce<GROUP>(t_sum, tz_sum, SumMerge(), shared);
        if (lane == 0) loss[row] = log_(s) * t_sum - tz_sum;
    }
}

// Gradient, class indices: g_nj = (p_nj − [j = t_n]) · gy_n, one thread per element
// (rows · cols < 2^31). A target outside [0, cols) makes its row NaN.
template <typename T>
DEVICE_INLINE void xent_grad_index(const T* __restrict__ probs, const long long* __restrict__ target,
                               const T* __restrict__ gy, T* __restrict__ g, long long n, int cols) {
    __shared__ unsigned mul, shift;
    if (threadIdx.x == 0) {
        const FastDiv f = make_fast_div(cols);
        mul = f.mul;
        shift = f.shift;
    }
    __syncthreads();
    const FastDiv by_cols{mul, shift};
    for (long long i = thread_start(); i < n; i += grid_stride()) {
        const unsigned row = fast_div(by_cols, (unsigned)i);
        const int j = (int)((unsigned)i - row * (unsigned)cols);
        const long long t = target[row];
        const T hit = j == t ? T(1) : T(0);
        g[i] = t >= 0 && t < cols ? (probs[i] - hit) * gy[row] : quiet_nan<T>();
    }
}

// Gradient, probability targets: g_nj = (p_nj · Σ_k t_nk − t_nj) · gy_n.
template <typename T, int GROUP>
DEVICE_INLINE void xent_grad_prob(const T* __restrict__ probs, const T* __restrict__ target, const T* __restrict__ gy,
                              T* __restrict__ g, long long rows, int cols) {
    __shared__ T shared[2 * EW_THREADS / 32];
    FOR_EACH_ROW(row, rows) {
        const T* __restrict__ tr = target + row * cols;
        T t_sum = T(0), unused = T(0);
        for (int j = lane; j < cols; j += GROUP) t_sum += tr[j];
        group_reduce<GROUP>(t_sum, unused, SumMerge(), shared);
        const T scale = gy[row];
        for (int j = lane; j < cols; j += GROUP) {
            const long long i = row * cols + j;
            g[i] = (probs[i] * t_sum - tr[j]) * scale;
        }
    }
}

// Row kernels: GROUP = 32 ("_warp": a warp per row) or EW_THREADS ("_block": the block per row).
#define SOFTMAX_ROWS_ENTRY(NAME, T, GROUP, LOG)                                                      \
    EW_KERNEL NAME(const T* __restrict__ x, T* __restrict__ y, long long rows, int cols) {           \
        softmax_rows<T, GROUP, LOG>(x, y, rows, cols);                                              \
    }
#define XENT_INDEX_ENTRY(NAME, T, GROUP)                                                             \
    EW_KERNEL NAME(const T* __restrict__ z, const long long* __restrict__ target, T* __restrict__ loss, \
                   T* __restrict__ probs, long long rows, int cols) {                                \
        xent_index<T, GROUP>(z, target, loss, probs, rows, cols);                                    \
    }
#define XENT_PROB_ENTRY(NAME, T, GROUP)                                                              \
    EW_KERNEL NAME(const T* __restrict__ z, const T* __restrict__ target, T* __restrict__ loss,      \
                   T* __restrict__ probs, long long rows, int cols) {                                \
        xent_prob<T, GROUP>(z, target, loss, probs, rows, cols);                                     \
    }
#define XENT_GRAD_PROB_ENTRY(NAME, T, GROUP)                                                         \
    EW_KERNEL NAME(const T* __restrict__ probs, const T* __restrict__ target, const T* __restrict__ gy, \
                   T* __restrict__ g, long long rows, int cols) {                                    \
        xent_grad_prob<T, GROUP>(probs, target, gy, g, rows, cols);                                  \
    }
#define SOFTMAX_STRIDED_ENTRY(NAME, T, LOG)                                                          \
    EW_KERNEL NAME(const T* __restrict__ x, T* __restrict__ y, long long columns, int C, int inner) { \
        softmax_strided<T, LOG>(x, y, columns, C, inner);                                            \
    }
#define XENT_GRAD_INDEX_ENTRY(NAME, T)                                                               \
    EW_KERNEL NAME(const T* __restrict__ probs, const long long* __restrict__ target,                \
                   const T* __restrict__ gy, T* __restrict__ g, long long n, int cols) {             \
        xent_grad_index(probs, target, gy, g, n, cols);                                              \
    }

SOFTMAX_ROWS_ENTRY(softmax_warp_f32, float, 32, false)
SOFTMAX_ROWS_ENTRY(log_softmax_warp_f32, float, 32, true)
XENT_INDEX_ENTRY(xent_index_warp_f32, float, 32)
XENT_PROB_ENTRY(xent_prob_warp_f32, float, 32)
XENT_GRAD_PROB_ENTRY(xent_grad_prob_warp_f32, float, 32)
SOFTMAX_ROWS_ENTRY(softmax_block_f32, float, EW_THREADS, false)
SOFTMAX_ROWS_ENTRY(log_softmax_block_f32, float, EW_THREADS, true)
XENT_INDEX_ENTRY(xent_index_block_f32, float, EW_THREADS)
XENT_PROB_ENTRY(xent_prob_block_f32, float, EW_THREADS)
XENT_GRAD_PROB_ENTRY(xent_grad_prob_block_f32, float, EW_THREADS)
SOFTMAX_STRIDED_ENTRY(softmax_strided_f32, float, false)
SOFTMAX_STRIDED_ENTRY(log_softmax_strided_f32, float, true)
XENT_GRAD_INDEX_ENTRY(xent_grad_index_f32, float)
SOFTMAX_ROWS_ENTRY(softmax_warp_f64, double, 32, false)
SOFTMAX_ROWS_ENTRY(log_softmax_warp_f64, double, 32, true)
XENT_INDEX_ENTRY(xent_index_warp_f64, double, 32)
XENT_PROB_ENTRY(xent_prob_warp_f64, double, 32)
XENT_GRAD_PROB_ENTRY(xent_grad_prob_warp_f64, double, 32)
SOFTMAX_ROWS_ENTRY(softmax_block_f64, double, EW_THREADS, false)
SOFTMAX_ROWS_ENTRY(log_softmax_block_f64, double, EW_THREADS, true)
XENT_INDEX_ENTRY(xent_index_block_f64, double, EW_THREADS)
XENT_PROB_ENTRY(xent_prob_block_f64, double, EW_THREADS)
XENT_GRAD_PROB_ENTRY(xent_grad_prob_block_f64, double, EW_THREADS)
SOFTMAX_STRIDED_ENTRY(softmax_strided_f64, double, false)
SOFTMAX_STRIDED_ENTRY(log_softmax_strided_f64, double, true)
XENT_GRAD_INDEX_ENTRY(xent_grad_index_f64, double)

// ================================================================ batch normalisation

// x is viewed as (outer, C, inner); channel c holds m = outer · inner values. A reduction
// runs on a (C, parts) grid of 256-thread blocks: block (c, p) covers the channel's
// values j in [p · chunk, min((p + 1) · chunk, m)), value j sitting at
// x[((j / inner) · C + c) · inner + j % inner]. Each thread sums its values in T, the
// block merges them in double in a fixed order and writes one pair to
// partial[(p · C + c) · 2 + {0, 1}]; a finalize kernel, one thread per channel, adds the
// parts in order. Nothing is atomic, so the statistics are bit-for-bit reproducible.

// Walks the values of channel c that this thread owns, calling f(i) with i the index of
// each in x. Advancing j by blockDim moves (j / inner, j % inner) by a precomputed step:
// no division per value.
template <typename F>
DEVICE_INLINE void for_channel_values(int C, int inner, long long chunk, long long m, F f) {
    const int c = blockIdx.x;
    const long long begin = (long long)blockIdx.y * chunk;
    const long long end = begin + chunk < m ? begin + chunk : m;
    long long j = begin + threadIdx.x;
    long long o = j / inner;
    int i = (int)(j - o * inner);
    const int step_o = (int)(blockDim.x / inner), step_i = (int)(blockDim.x % inner);
    for (; j < end; j += blockDim.x) {
        f((o * C + c) * inner + i);
        o += step_o;
        i += step_i;
        if (i >= inner) {
            i -= inner;
            ++o;
        }
    }
}

template <typename T>
DEVICE_INLINE void write_partial(double* __restrict__ partial, int C, T a, T b) {
    __shared__ double shared[2 * EW_THREADS / 32];
    double da = a, db = b;
    group_reduce<EW_THREADS>(da, db, SumMerge(), shared);
    if (threadIdx.x == 0) {
        const long long at = ((long long)blockIdx.y * C + blockIdx.x) * 2;
        partial[at] = da;
        partial[at + 1] = db;
    }
}

// Statistics, pass 1: per part, Σ (x − K) and Σ (x − K)² with K = the channel's first
// value. Shifting by a value of the channel keeps the sums of squares from cancelling
// when |mean| >> std (the "shifted data" algorithm).
template <typename T>
DEVICE_INLINE void bn_stats(const T* __restrict__ x, double* __restrict__ partial, int outer, int C, int inner,
                        long long chunk) {
    const T shift = x[(long long)blockIdx.x * inner];
    T s1 = T(0), s2 = T(0);
    for_channel_values(C, inner, chunk, (long long)outer * inner, [&](long long i) {
        const T v = x[i] - shift;
        s1 += v;
        s2 += v * v;
    });
    write_partial(partial, C, s1, s2);
}

// Statistics, pass 2, one thread per channel: mean μ, biased variance σ², 1/√(σ² + ε)
// and the scale γ/√(σ² + ε), computed in double.
template <typename T>
DEVICE_INLINE void bn_finalize(const double* __restrict__ partial, const T* __restrict__ x, const T* __restrict__ gamma,
                           T* __restrict__ mean, T* __restrict__ var, T* __restrict__ inv_std, T* __restrict__ scale,
                           int parts, int C, int inner, long long m, double eps) {
    for (long long c = thread_start(); c < C; c += grid_stride()) {
        double s1 = 0.0, s2 = 0.0;
        for (int p = 0; p < parts; ++p) {
            s1 += partial[((long long)p * C + c) * 2];
            s2 += partial[((long long)p * C + c) * 2 + 1];
        }
        const double offset = s1 / (double)m;
        double variance = s2 / (double)m - offset * offset;
        if (variance < 0.0) variance = 0.0;  // rounding; a NaN stays NaN
        const double r = 1.0 / sqrt(variance + eps);
        mean[c] = (T)((double)x[c * inner] + offset);
        var[c] = (T)variance;
        inv_std[c] = (T)r;
        scale[c] = (T)((double)gamma[c] * r);
    }
}

// Inference: scale = γ / √(var + ε), computed in T as the reference does.
template <typename T>
DEVICE_INLINE void bn_infer_scale(const T* __restrict__ gamma, const T* __restrict__ var, T* __restrict__ scale, int C,
                              double eps) {
    for (long long c = thread_start(); c < C; c += grid_stride()) scale[c] = gamma[c] / sqrt_(var[c] + T(eps));
}

// out = f(a, b, channel) over the n = outer · C · inner elements (n < 2^31); a vector of
// 16 bytes never straddles two channels when inner is a multiple of its length.
template <bool TWO_INPUTS, typename T, typename F>
DEVICE_INLINE void channel_map(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ out, long long n, int C,
                           int inner, F f) {
    constexpr int V = Pack<T>::N;
    const bool vector = inner % V == 0 && aligned16(a) && aligned16(out) && (!TWO_INPUTS || aligned16(b));
    FastDiv by_inner, by_channels;
    setup_channel_divisors(vector ? inner / V : inner, C, by_inner, by_channels);
    const long long start = thread_start(), stride = grid_stride();
    if (vector) {
        for (long long i = start; i < n / V; i += stride) {
            const int c = channel_of((unsigned)i, by_inner, by_channels, C);
            const Pack<T> pa = reinterpret_cast<const Pack<T>*>(a)[i];
            Pack<T> pb{}, po;
            if (TWO_INPUTS) pb = reinterpret_cast<const Pack<T>*>(b)[i];
#pragma unroll
            for (int k = 0; k < V; ++k) po.v[k] = f(pa.v[k], pb.v[k], c);
            reinterpret_cast<Pack<T>*>(out)[i] = po;
        }
    } else {
        for (long long i = start; i < n; i += stride) {
            out[i] = f(a[i], TWO_INPUTS ? b[i] : T(0), channel_of((unsigned)i, by_inner, by_channels, C));
        }
    }
}

// y = (x − μ_c) · scale_c + β_c (training: the batch μ and γ/√(σ² + ε); inference: the
// moving mean and γ/√(var + ε)).
template <typename T>
DEVICE_INLINE void bn_apply(const T* __restrict__ x, const T* __restrict__ mean, const T* __restrict__ scale,
                        const T* __restrict__ beta, T* __restrict__ y, long long n, int C, int inner) {
    channel_map<false>(x, x, y, n, C, inner,
                       [&](T v, T, int c) { return (v - mean[c]) * scale[c] + beta[c]; });
}

// Backward, pass 1: per part, Σ gy and Σ gy · (x − μ).
template <typename T>
DEVICE_INLINE void bn_backward_reduce(const T* __restrict__ gy, const T* __restrict__ x, const T* __restrict__ mean,
                                  double* __restrict__ partial, int outer, int C, int inner, long long chunk) {
    const T mu = mean[blockIdx.x];
    T s1 = T(0), s2 = T(0);
    for_channel_values(C, inner, chunk, (long long)outer * inner, [&](long long i) {
        const T g = gy[i];
        s1 += g;
        s2 += g * (x[i] - mu);
    });
    write_partial(partial, C, s1, s2);
}

// Backward, pass 2, one thread per channel (in double): gβ = Σ gy, gγ = Σ gy·(x − μ) · r
// with r = 1/√(σ² + ε), and the coefficients of gx = a·gy + b·(x − μ) + c:
// a = γ r, b = −a r gγ / m, c = −a gβ / m.
template <typename T>
DEVICE_INLINE void bn_backward_finalize(const double* __restrict__ partial, const T* __restrict__ gamma,
                                    const T* __restrict__ inv_std, T* __restrict__ ggamma, T* __restrict__ gbeta,
                                    T* __restrict__ coef_a, T* __restrict__ coef_b, T* __restrict__ coef_c, int parts,
                                    int C, long long m) {
    for (long long c = thread_start(); c < C; c += grid_stride()) {
        double sum_gy = 0.0, sum_gy_centred = 0.0;
        for (int p = 0; p < parts; ++p) {
            sum_gy += partial[((long long)p * C + c) * 2];
            sum_gy_centred += partial[((long long)p * C + c) * 2 + 1];
        }
        const double r = inv_std[c];
        const double gg = sum_gy_centred * r;
        const double a = (double)gamma[c] * r;
        ggamma[c] = (T)gg;
        gbeta[c] = (T)sum_gy;
        coef_a[c] = (T)a;
        coef_b[c] = (T)(-a * r * gg / (double)m);
        coef_c[c] = (T)(-a * sum_gy / (double)m);
    }
}

// Backward, pass 3: gx = a_c · gy + b_c · (x − μ_c) + c_c.
template <typename T>
DEVICE_INLINE void bn_backward_apply(const T* __restrict__ gy, const T* __restrict__ x, const T* __restrict__ mean,
                                 const T* __restrict__ coef_a, const T* __restrict__ coef_b,
                                 const T* __restrict__ coef_c, T* __restrict__ gx, long long n, int C, int inner) {
    channel_map<true>(gy, x, gx, n, C, inner,
                      [&](T g, T v, int c) { return coef_a[c] * g + coef_b[c] * (v - mean[c]) + coef_c[c]; });
}

#define BN_STATS_ENTRY(NAME, T)                                                             \
    EW_KERNEL NAME(const T* __restrict__ x, double* __restrict__ partial, int outer, int C, \
                   int inner, long long chunk) {                                            \
        bn_stats(x, partial, outer, C, inner, chunk);                                       \
    }
#define BN_FINALIZE_ENTRY(NAME, T)                                                              \
    EW_KERNEL NAME(const double* __restrict__ partial, const T* __restrict__ x,                 \
                   const T* __restrict__ gamma, T* __restrict__ mean, T* __restrict__ var,      \
                   T* __restrict__ inv_std, T* __restrict__ scale, int parts, int C, int inner, \
                   long long m, double eps) {                                                   \
        bn_finalize(partial, x, gamma, mean, var, inv_std, scale, parts, C, inner, m, eps);     \
    }
#define BN_INFER_SCALE_ENTRY(NAME, T)                                      \
    EW_KERNEL NAME(const T* __restrict__ gamma, const T* __restrict__ var, \
                   T* __restrict__ scale, int C, double eps) {             \
        bn_infer_scale(gamma, var, scale, C, eps);                         \
    }
#define BN_APPLY_ENTRY(NAME, T)                                                                      \
    EW_KERNEL NAME(const T* __restrict__ x, const T* __restrict__ mean, const T* __restrict__ scale, \
                   const T* __restrict__ beta, T* __restrict__ y, long long n, int C, int inner) {   \
        bn_apply(x, mean, scale, beta, y, n, C, inner);                                              \
    }
#define BN_BACKWARD_REDUCE_ENTRY(NAME, T)                                               \
    EW_KERNEL NAME(const T* __restrict__ gy, const T* __restrict__ x,                   \
                   const T* __restrict__ mean, double* __restrict__ partial, int outer, \
                   int C, int inner, long long chunk) {                                 \
        bn_backward_reduce(gy, x, mean, partial, outer, C, inner, chunk);               \
    }
#define BN_BACKWARD_FINALIZE_ENTRY(NAME, T)                                                                \
    EW_KERNEL NAME(const double* __restrict__ partial, const T* __restrict__ gamma,                        \
                   const T* __restrict__ inv_std, T* __restrict__ ggamma,                                  \
                   T* __restrict__ gbeta, T* __restrict__ coef_a, T* __restrict__ coef_b,                  \
                   T* __restrict__ coef_c, int parts, int C, long long m) {                                \
        bn_backward_finalize(partial, gamma, inv_std, ggamma, gbeta, coef_a, coef_b, coef_c, parts, C, m); \
    }
#define BN_BACKWARD_APPLY_ENTRY(NAME, T)                                         \
    EW_KERNEL NAME(const T* __restrict__ gy, const T* __restrict__ x,            \
                   const T* __restrict__ mean, const T* __restrict__ coef_a,     \
                   const T* __restrict__ coef_b, const T* __restrict__ coef_c,   \
                   T* __restrict__ gx, long long n, int C, int inner) {          \
        bn_backward_apply(gy, x, mean, coef_a, coef_b, coef_c, gx, n, C, inner); \
    }

BN_STATS_ENTRY(bn_stats_f32, float)
BN_FINALIZE_ENTRY(bn_finalize_f32, float)
BN_INFER_SCALE_ENTRY(bn_infer_scale_f32, float)
BN_APPLY_ENTRY(bn_apply_f32, float)
BN_BACKWARD_REDUCE_ENTRY(bn_backward_reduce_f32, float)
BN_BACKWARD_FINALIZE_ENTRY(bn_backward_finalize_f32, float)
BN_BACKWARD_APPLY_ENTRY(bn_backward_apply_f32, float)
BN_STATS_ENTRY(bn_stats_f64, double)
BN_FINALIZE_ENTRY(bn_finalize_f64, double)
BN_INFER_SCALE_ENTRY(bn_infer_scale_f64, double)
BN_APPLY_ENTRY(bn_apply_f64, double)
BN_BACKWARD_REDUCE_ENTRY(bn_backward_reduce_f64, double)
BN_BACKWARD_FINALIZE_ENTRY(bn_backward_finalize_f64, double)
BN_BACKWARD_APPLY_ENTRY(bn_backward_apply_f64, double)
