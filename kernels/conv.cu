// conv.cu: float32 convolution (cross-correlation) for cnnkit: forward, backward-data and
// backward-filter, 1-D to 3-D, with stride, padding, dilation and groups.
//
// Layout. Channels-first and C-contiguous, always in 3-D form: a 2-D problem is passed
// with D = 1 (and KD = 1, stride/dilation 1, no padding on that axis), a 1-D one with
// D = H = 1. With Cg = C / groups, Fg = F / groups and T = KD·KH·KW taps:
//   x  (N, C, D, H, W)        input                 gx: its gradient
//   W  (F, Cg, KD, KH, KW)    weight ("weight")     gW: its gradient
//   y  (N, F, OD, OH, OW)     output                gy: its gradient
//   y[n, f, o] = b[f] + Σ_{c < Cg} Σ_t W[f, c, t] · x[n, g·Cg + c, o·S − P + t·Dl]
// with g = f / Fg the group, S the stride, P the padding before (the padding after only
// shapes the output, which the caller computed) and Dl the dilation; input positions
// outside [0, size) read as zero.
//
// Every entry point takes the problem as CONV_SHAPE_PARAMS (22 ints). All element
// offsets are 32-bit: the caller guarantees that x, y, their padded extents and the
// buffers written here hold fewer than 2^31 elements. Between split-K slices the output
// pointer advances in 64-bit arithmetic.
//
// Two families of kernels:
//
// 1. Implicit GEMM (conv_forward_f32_<tile>, conv_backward_data_f32_<tile>,
//    conv_backward_filter_f32_<tile>).
//    Each pass is one matrix product per group whose operands are gathered from the
//    tensors on the fly (no im2col buffer):
//      forward        rows m = (n, od, oh, ow)   cols f < Fg   k = (c, t)        A: x  B: W
//      backward-data  rows m = (n, d, h, w)      cols c < Cg   k = (f, t)        A: gy B: W
//      backward-filter rows f < Fg               cols (c, t)   k = (n, od, oh, ow) A: gy B: x
//    Backward-data visits the input positions one stride residue class at a time
//    (d + P ≡ ρ mod S along each axis): within a class the same taps land on output
//    positions, so the taps that never do (stride > 1) are skipped instead of multiplied
//    by zero.
//    The main loop is the FP32 SIMT loop of gemm.cu: block tile BM×BN, K steps of 8,
//    warp tiles with 4×4 register chunks, shared memory double-buffered through
//    registers. The decomposition of k into coordinates is the same for every thread,
//    so it is computed once per block and K step (a few lanes, two steps ahead) into a
//    small table in shared memory; each thread keeps the coordinates of its own rows or
//    columns in registers, and a gathered element is valid when the three coordinates
//    (row part + table part) fall inside the tensor — one unsigned compare per axis.
//    Split-K: blockIdx.z also selects a slice [z·k_chunk, (z + 1)·k_chunk) of K; each
//    slice writes a full copy of the output at out + slice·(output size), to be summed
//    in a fixed order by conv_splitk_reduce_f32 (deterministic, no atomics).
//
// 2. Depthwise direct convolution (groups = C, any multiplier M = F / C): one block per
//    (spatial tile, channel c, sample n) keeps the input tile with its halo (or, for
//    backward-data, the tile of gy it needs) in shared memory; each thread holds up to
//    4 positions and reuses each tap's weight, loaded once into a register, across them.
//
// CuPy compiles with -ftz=true: denormals flush to zero.

#include "common.cuh"

// A coordinate that fails every range check; the sum of two of them is still an int (INT_MIN).
#define CONV_INVALID (-(1 << 30))
#define CONV_BK 8

#define CONV_SHAPE_PARAMS                                                                                   \
    int N, int C, int D, int H, int W, int F, int KD, int KH, int KW, int OD, int OH, int OW, int stride_d, \
        int stride_h, int stride_w, int pad_d, int pad_h, int pad_w, int dilation_d, int dilation_h,       \
        int dilation_w, int groups
#define CONV_SHAPE_ARGS                                                                                   \
    N, C, D, H, W, F, KD, KH, KW, OD, OH, OW, stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, dilation_d, \
        dilation_h, dilation_w, groups

struct Shape {
    int N, C, D, H, W, F, KD, KH, KW, OD, OH, OW;
    int sd, sh, sw, pd, ph, pw, dd, dh, dw, groups;
};

DEVICE_INLINE Shape make_shape(CONV_SHAPE_PARAMS) {
    return Shape{CONV_SHAPE_ARGS};
}

DEVICE_INLINE int ceil_div(int a, int b) { return (a + b - 1) / b; }

// floor(a / b) for b > 0 and any a.
DEVICE_INLINE int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

DEVICE_INLINE bool inside(int d, int h, int w, int D, int H, int W) {
    return (unsigned)d < (unsigned)D && (unsigned)h < (unsigned)H && (unsigned)w < (unsigned)W;
}


// ============================================================== implicit GEMM

// One K index's share of the gathers, computed once per block and step.
//   pos: (offset, d, h, w) added to a row's (or column's) base offset and coordinates;
//   aux: a second offset (backward-data: the weight row; backward-filter: gy's offset).
struct __align__(16) TableEntry {
    int4 pos;
    int aux;
};

DEVICE_INLINE TableEntry invalid_entry() {
    TableEntry e;
    e.pos = make_int4(0, CONV_INVALID, 0, 0);
    e.aux = -1;
    return e;
}

// Each pass is a Problem: the block's place in the product (m0, n0, the K slice), an
// entry(k) for the table, load() gathering this thread's share of a K step into
// registers and store() moving it to the shared tiles, and row_offset / col_offset /
// col_bias describing where output (row, column) goes. Only what the gathers need per
// step lives in registers; everything else is recomputed from the shape, whose fields
// are kernel parameters (constant memory).

// Loads i < count of a thread whose rows are r0 + i·stride are the ones with a row < limit.
DEVICE_INLINE int loads_in_range(int limit, int r0, int stride) {
    return r0 < limit ? (limit - r0 - 1) / stride + 1 : 0;
}

// ---------------------------------------------------------------- forward
// Row m = (n, od, oh, ow) of y's group-g slice; k = c·T + t, the weight's own order, so
// B[k, f] = W[g·Fg + f][k]. A[m, k] = x[n, g·Cg + c, od·S − P + kd·Dl, ...].
template <int BM, int BN, int THREADS>
struct ForwardProblem {
    static constexpr bool ROWS_CONTIGUOUS = true;  // y runs along m within a channel plane
    static constexpr int A_LOADS = BM * CONV_BK / THREADS, B_LOADS = BN * CONV_BK / THREADS;
    static constexpr int B_STEP = THREADS / CONV_BK;
    static_assert(THREADS % BM == 0 && A_LOADS * THREADS == BM * CONV_BK, "one A row per thread");
    static_assert(B_LOADS >= 1 && B_LOADS * THREADS == BN * CONV_BK, "B tile must split evenly");

    const float* __restrict__ x;
    const float* __restrict__ weight;
    const float* __restrict__ bias;
    float* __restrict__ y;
    Shape s;
    int group, slice, m0, n0, k_begin, k_end;
    int row_base, row_d, row_h, row_w;  // this thread's A row: x offset and coordinates of its window origin
    int b_off, b_count;                 // this thread's weight offset at k = 0 and its B rows in range
    float a_staged[A_LOADS], b_staged[B_LOADS];

    DEVICE_INLINE int Cg() const { return s.C / s.groups; }
    DEVICE_INLINE int Fg() const { return s.F / s.groups; }
    DEVICE_INLINE int K() const { return Cg() * s.KD * s.KH * s.KW; }
    DEVICE_INLINE int P() const { return s.OD * s.OH * s.OW; }

    DEVICE_INLINE ForwardProblem(const float* x_, const float* weight_, const float* bias_, float* y_, const Shape& s_,
                               int k_chunk)
        : x(x_), weight(weight_), bias(bias_), y(y_), s(s_) {
        m0 = blockIdx.x * BM;
        n0 = blockIdx.y * BN;
        group = blockIdx.z % s.groups;
        slice = blockIdx.z / s.groups;
        k_begin = slice * k_chunk;
        k_end = min(K(), k_begin + k_chunk);

        const int m = m0 + (int)threadIdx.x % BM;
        row_base = 0;
        row_d = CONV_INVALID;
        row_h = row_w = 0;
        if (m < s.N * P()) {
            const int n = m / P(), p = m - n * P();
            const int od = p / (s.OH * s.OW), r = p - od * (s.OH * s.OW);
            const int oh = r / s.OW, ow = r - oh * s.OW;
            row_d = od * s.sd - s.pd;
            row_h = oh * s.sh - s.ph;
            row_w = ow * s.sw - s.pw;
            row_base = (n * s.C + group * Cg()) * s.D * s.H * s.W + (row_d * s.H + row_h) * s.W + row_w;
        }
        const int f = n0 + (int)threadIdx.x / CONV_BK;
        b_off = (group * Fg() + f) * K() + (int)threadIdx.x % CONV_BK;
        b_count = loads_in_range(Fg(), f, B_STEP);
    }

    DEVICE_INLINE TableEntry entry(int k) const {
        if (k >= k_end) return invalid_entry();
        const int T = s.KD * s.KH * s.KW;
        const int c = k / T, t = k - c * T;
        const int kd = t / (s.KH * s.KW), r = t - kd * (s.KH * s.KW);
        const int kh = r / s.KW, kw = r - kh * s.KW;
        TableEntry e;
        e.pos = make_int4((c * s.D + kd * s.dd) * s.H * s.W + kh * s.dh * s.W + kw * s.dw, kd * s.dd, kh * s.dh,
                          kw * s.dw);
        e.aux = 0;
        return e;
    }

    DEVICE_INLINE void load(const TableEntry* table, int k0) {
#pragma unroll
        for (int i = 0; i < A_LOADS; ++i) {
            const int4 e = table[(int)threadIdx.x / BM + i * (THREADS / BM)].pos;
            a_staged[i] = inside(row_d + e.y, row_h + e.z, row_w + e.w, s.D, s.H, s.W) ? __ldg(x + row_base + e.x)
                                                                                         : 0.0f;
        }
        const bool k_ok = k0 + (int)threadIdx.x % CONV_BK < k_end;
#pragma unroll
        for (int i = 0; i < B_LOADS; ++i)
            b_staged[i] = k_ok && i < b_count ? __ldg(weight + b_off + k0 + i * B_STEP * K()) : 0.0f;
    }

    DEVICE_INLINE void store(float* a_tile, float* b_tile) const {
#pragma unroll
        for (int i = 0; i < A_LOADS; ++i)
            a_tile[((int)threadIdx.x / BM + i * (THREADS / BM)) * (BM + 4) + (int)threadIdx.x % BM] = a_staged[i];
#pragma unroll
        for (int i = 0; i < B_LOADS; ++i)
            b_tile[(int)threadIdx.x % CONV_BK * (BN + 4) + (int)threadIdx.x / CONV_BK + i * B_STEP] = b_staged[i];
    }

    DEVICE_INLINE float* out() const { return y + (size_t)slice * s.N * s.F * P(); }
    DEVICE_INLINE int row_offset(int m) const {
        if (m >= s.N * P()) return -1;
        const int n = m / P();
        return n * s.F * P() + (m - n * P());
    }
    DEVICE_INLINE int col_offset(int f) const { return f < Fg() ? (group * Fg() + f) * P() : -1; }
    DEVICE_INLINE float col_bias(int f) const {
        return bias != nullptr && f < Fg() ? __ldg(bias + group * Fg() + f) : 0.0f;
    }
};

// ---------------------------------------------------------------- backward-data
// One stride residue class along one axis (see the file header). Input positions
// first + i·S (i < count) have (d + P) mod S = rho and (d + P − rho) / S = q0 + i; the
// taps that reach an output from them are tap0 + j·tstep (j < ntaps), and tap j lands
// on output q − (u0 + j·du).
struct AxisClass {
    int first, count, q0, tap0, ntaps, tstep, u0, du;
};

DEVICE_INLINE AxisClass axis_class(int rho, int size, int taps, int stride, int pad, int dilation) {
    AxisClass a;
    int g = stride, b = dilation;
    while (b != 0) {
        const int t = g % b;
        g = b;
        b = t;
    }
    a.tstep = stride / g;  // the residues of t·dilation mod stride repeat with this period
    a.first = ((rho - pad) % stride + stride) % stride;
    a.count = a.first < size ? (size - 1 - a.first) / stride + 1 : 0;
    a.q0 = (a.first + pad - rho) / stride;
    a.tap0 = taps;
    for (int t = 0; t < a.tstep && t < taps; ++t) {
        if (t * dilation % stride == rho) {
            a.tap0 = t;
            break;
        }
    }
    a.ntaps = a.tap0 < taps ? (taps - 1 - a.tap0) / a.tstep + 1 : 0;
    a.u0 = (a.tap0 * dilation - rho) / stride;
    a.du = a.tstep * dilation / stride;
    return a;
}

// The block's residue class along d, h, w: block-uniform, so kept in shared memory
// rather than in 24 registers per thread.
__shared__ AxisClass conv_classes[3];

// Row m = (n, i_d, i_h, i_w) of the block's residue class; k = f·TV + (jd, jh, jw) over
// the class's TV valid taps. A[m, k] = gy[n, g·Fg + f, q − u], B[k, c] = W[g·Fg + f, c, t].
template <int BM, int BN, int THREADS>
struct BackwardDataProblem {
    static constexpr bool ROWS_CONTIGUOUS = true;  // gx runs along m within a plane (stride 1)
    static constexpr int A_LOADS = BM * CONV_BK / THREADS, B_LOADS = BN * CONV_BK / THREADS;
    static constexpr int B_STEP = THREADS / CONV_BK;
    static_assert(THREADS % BM == 0 && A_LOADS * THREADS == BM * CONV_BK, "one A row per thread");
    static_assert(B_LOADS >= 1 && B_LOADS * THREADS == BN * CONV_BK, "B tile must split evenly");

    const float* __restrict__ gy;
    const float* __restrict__ weight;
    float* __restrict__ gx;
    Shape s;
    int group, slice, M, m0, n0, k_begin, k_end;
    int row_base, row_d, row_h, row_w;  // this thread's A row: gy offset of output q (channel g·Fg), and q
    int b_off, b_count;                 // this thread's offset c·T within a weight row, its B columns in range
    float a_staged[A_LOADS], b_staged[B_LOADS];

    DEVICE_INLINE int Cg() const { return s.C / s.groups; }
    DEVICE_INLINE int Fg() const { return s.F / s.groups; }
    DEVICE_INLINE int T() const { return s.KD * s.KH * s.KW; }
    DEVICE_INLINE int OP() const { return s.OD * s.OH * s.OW; }
    DEVICE_INLINE int DHW() const { return s.D * s.H * s.W; }
    DEVICE_INLINE int class_rows() const { return conv_classes[0].count * conv_classes[1].count * conv_classes[2].count; }

    // Ends with a barrier (the class in shared memory); has_rows() is then block-uniform.
    DEVICE_INLINE BackwardDataProblem(const float* gy_, const float* weight_, float* gx_, const Shape& s_, int k_chunk)
        : gy(gy_), weight(weight_), gx(gx_), s(s_) {
        const int classes = s.sd * s.sh * s.sw;
        int z = blockIdx.z;
        const int cls = z % classes;
        z /= classes;
        group = z % s.groups;
        slice = z / s.groups;
        if (threadIdx.x == 0) conv_classes[0] = axis_class(cls / (s.sh * s.sw), s.D, s.KD, s.sd, s.pd, s.dd);
        if (threadIdx.x == 1) conv_classes[1] = axis_class(cls / s.sw % s.sh, s.H, s.KH, s.sh, s.ph, s.dh);
        if (threadIdx.x == 2) conv_classes[2] = axis_class(cls % s.sw, s.W, s.KW, s.sw, s.pw, s.dw);
        __syncthreads();
        const int K = Fg() * conv_classes[0].ntaps * conv_classes[1].ntaps * conv_classes[2].ntaps;
        M = s.N * class_rows();
        m0 = blockIdx.x * BM;
        n0 = blockIdx.y * BN;
        k_begin = slice * k_chunk;
        k_end = min(K, k_begin + k_chunk);

        const int m = m0 + (int)threadIdx.x % BM;
        row_base = 0;
        row_d = CONV_INVALID;
        row_h = row_w = 0;
        if (m < M) {
            int n, id, ih, iw;
            decompose(m, n, id, ih, iw);
            row_d = conv_classes[0].q0 + id;
            row_h = conv_classes[1].q0 + ih;
            row_w = conv_classes[2].q0 + iw;
            row_base = (n * s.F + group * Fg()) * OP() + (row_d * s.OH + row_h) * s.OW + row_w;
        }
        const int c = n0 + (int)threadIdx.x / CONV_BK;
        b_off = c * T();
        b_count = loads_in_range(Cg(), c, B_STEP);
    }

    DEVICE_INLINE bool has_rows() const { return m0 < M; }

    DEVICE_INLINE void decompose(int m, int& n, int& id, int& ih, int& iw) const {
        const int rows = conv_classes[1].count * conv_classes[2].count;
        n = m / class_rows();
        int r = m - n * class_rows();
        id = r / rows;
        r -= id * rows;
        ih = r / conv_classes[2].count;
        iw = r - ih * conv_classes[2].count;
    }

    DEVICE_INLINE TableEntry entry(int k) const {
        if (k >= k_end) return invalid_entry();
        const AxisClass ad = conv_classes[0], ah = conv_classes[1], aw = conv_classes[2];
        const int TV = ad.ntaps * ah.ntaps * aw.ntaps;
        const int f = k / TV;
        int j = k - f * TV;
        const int jd = j / (ah.ntaps * aw.ntaps);
        j -= jd * (ah.ntaps * aw.ntaps);
        const int jh = j / aw.ntaps, jw = j - jh * aw.ntaps;
        const int ud = ad.u0 + jd * ad.du, uh = ah.u0 + jh * ah.du, uw = aw.u0 + jw * aw.du;
        const int kd = ad.tap0 + jd * ad.tstep, kh = ah.tap0 + jh * ah.tstep, kw = aw.tap0 + jw * aw.tstep;
        TableEntry e;
        e.pos = make_int4(f * OP() - (ud * s.OH + uh) * s.OW - uw, -ud, -uh, -uw);
        e.aux = (group * Fg() + f) * Cg() * T() + (kd * s.KH + kh) * s.KW + kw;
        return e;
    }

    DEVICE_INLINE void load(const TableEntry* table, int) {
#pragma unroll
        for (int i = 0; i < A_LOADS; ++i) {
            const int4 e = table[(int)threadIdx.x / BM + i * (THREADS / BM)].pos;
            a_staged[i] = inside(row_d + e.y, row_h + e.z, row_w + e.w, s.OD, s.OH, s.OW)
                              ? __ldg(gy + row_base + e.x)
                              : 0.0f;
        }
        const int w_row = table[(int)threadIdx.x % CONV_BK].aux;
#pragma unroll
        for (int i = 0; i < B_LOADS; ++i)
            b_staged[i] = w_row >= 0 && i < b_count ? __ldg(weight + w_row + b_off + i * B_STEP * T()) : 0.0f;
    }

    DEVICE_INLINE void store(float* a_tile, float* b_tile) const {
#pragma unroll
        for (int i = 0; i < A_LOADS; ++i)
            a_tile[((int)threadIdx.x / BM + i * (THREADS / BM)) * (BM + 4) + (int)threadIdx.x % BM] = a_staged[i];
#pragma unroll
        for (int i = 0; i < B_LOADS; ++i)
            b_tile[(int)threadIdx.x % CONV_BK * (BN + 4) + (int)threadIdx.x / CONV_BK + i * B_STEP] = b_staged[i];
    }

    DEVICE_INLINE float* out() const { return gx + (size_t)slice * s.N * s.C * DHW(); }
    DEVICE_INLINE int row_offset(int m) const {
        if (m >= M) return -1;
        int n, id, ih, iw;
        decompose(m, n, id, ih, iw);
        const int d = conv_classes[0].first + id * s.sd;
        const int h = conv_classes[1].first + ih * s.sh;
        const int w = conv_classes[2].first + iw * s.sw;
        return n * s.C * DHW() + (d * s.H + h) * s.W + w;
    }
    DEVICE_INLINE int col_offset(int c) const { return c < Cg() ? (group * Cg() + c) * DHW() : -1; }
    DEVICE_INLINE float col_bias(int) const { return 0.0f; }
};

// ---------------------------------------------------------------- backward-filter
// Row f < Fg, column j = c·T + t (gW's own order), k = n·OP + p over the batch and the
// output positions. A[f, k] = gy[n, g·Fg + f, p], B[k, j] = x[n, g·Cg + c, o·S − P + t·Dl].
// The block's B columns (x offset and displacement of tap t in channel c, or an invalid
// displacement past Cg·T), block-uniform like the residue classes above.
__shared__ int4 conv_columns[128];

template <int BM, int BN, int THREADS>
struct BackwardFilterProblem {
    static constexpr bool ROWS_CONTIGUOUS = false;  // gW runs along the columns
    static constexpr int A_LOADS = BM * CONV_BK / THREADS, B_LOADS = BN * CONV_BK / THREADS;
    static constexpr int STEP = THREADS / CONV_BK;
    static_assert(A_LOADS >= 1 && A_LOADS * THREADS == BM * CONV_BK, "A tile must split evenly");
    static_assert(B_LOADS >= 1 && B_LOADS * THREADS == BN * CONV_BK, "B tile must split evenly");
    static_assert(BN <= 128, "conv_columns holds 128 columns");

    const float* __restrict__ gy;
    const float* __restrict__ x;
    float* __restrict__ gW;
    Shape s;
    int group, slice, m0, n0, k_begin, k_end;
    int a_off, a_count;  // this thread's gy channel offset (g·Fg + f)·OP, its A rows in range
    float a_staged[A_LOADS], b_staged[B_LOADS];

    DEVICE_INLINE int Cg() const { return s.C / s.groups; }
    DEVICE_INLINE int Fg() const { return s.F / s.groups; }
    DEVICE_INLINE int T() const { return s.KD * s.KH * s.KW; }
    DEVICE_INLINE int NJ() const { return Cg() * T(); }
    DEVICE_INLINE int OP() const { return s.OD * s.OH * s.OW; }

    DEVICE_INLINE BackwardFilterProblem(const float* gy_, const float* x_, float* gW_, const Shape& s_, int k_chunk)
        : gy(gy_), x(x_), gW(gW_), s(s_) {
        m0 = blockIdx.x * BM;
        n0 = blockIdx.y * BN;
        group = blockIdx.z % s.groups;
        slice = blockIdx.z / s.groups;
        k_begin = slice * k_chunk;
        k_end = min(s.N * OP(), k_begin + k_chunk);
        const int f = m0 + (int)threadIdx.x / CONV_BK;
        a_off = (group * Fg() + f) * OP();
        a_count = loads_in_range(Fg(), f, STEP);
        for (int q = threadIdx.x; q < BN; q += THREADS) {  // read after the prologue's barrier
            const int j = n0 + q;
            int4 column = make_int4(0, CONV_INVALID, 0, 0);
            if (j < NJ()) {
                const int c = j / T(), t = j - c * T();
                const int kd = t / (s.KH * s.KW), r = t - kd * (s.KH * s.KW);
                const int kh = r / s.KW, kw = r - kh * s.KW;
                column = make_int4(((c * s.D + kd * s.dd) * s.H + kh * s.dh) * s.W + kw * s.dw, kd * s.dd, kh * s.dh,
                                   kw * s.dw);
            }
            conv_columns[q] = column;
        }
    }

    // pos: x offset and coordinates of the window origin of output p in sample n;
    // aux: gy offset of (n, channel 0, p).
    DEVICE_INLINE TableEntry entry(int k) const {
        if (k >= k_end) return invalid_entry();
        const int n = k / OP(), p = k - n * OP();
        const int od = p / (s.OH * s.OW), r = p - od * (s.OH * s.OW);
        const int oh = r / s.OW, ow = r - oh * s.OW;
        const int d0 = od * s.sd - s.pd, h0 = oh * s.sh - s.ph, w0 = ow * s.sw - s.pw;
        TableEntry e;
        e.pos = make_int4((n * s.C + group * Cg()) * s.D * s.H * s.W + (d0 * s.H + h0) * s.W + w0, d0, h0, w0);
        e.aux = n * s.F * OP() + p;
        return e;
    }

    DEVICE_INLINE void load(const TableEntry* table, int) {
        const TableEntry e = table[(int)threadIdx.x % CONV_BK];
#pragma unroll
        for (int i = 0; i < A_LOADS; ++i)
            a_staged[i] = e.aux >= 0 && i < a_count ? __ldg(gy + e.aux + a_off + i * STEP * OP()) : 0.0f;
#pragma unroll
        for (int i = 0; i < B_LOADS; ++i) {
            const int4 column = conv_columns[(int)threadIdx.x / CONV_BK + i * STEP];
            b_staged[i] = inside(e.pos.y + column.y, e.pos.z + column.z, e.pos.w + column.w, s.D, s.H, s.W)
                              ? __ldg(x + e.pos.x + column.x)
                              : 0.0f;
        }
    }

    DEVICE_INLINE void store(float* a_tile, float* b_tile) const {
#pragma unroll
        for (int i = 0; i < A_LOADS; ++i)
            a_tile[(int)threadIdx.x % CONV_BK * (BM + 4) + (int)threadIdx.x / CONV_BK + i * STEP] = a_staged[i];
#pragma unroll
        for (int i = 0; i < B_LOADS; ++i)
            b_tile[(int)threadIdx.x % CONV_BK * (BN + 4) + (int)threadIdx.x / CONV_BK + i * STEP] = b_staged[i];
    }

    DEVICE_INLINE float* out() const { return gW + (size_t)slice * s.F * NJ(); }
    DEVICE_INLINE int row_offset(int f) const { return f < Fg() ? (group * Fg() + f) * NJ() : -1; }
    DEVICE_INLINE int col_offset(int j) const { return j < NJ() ? j : -1; }
    DEVICE_INLINE float col_bias(int) const { return 0.0f; }
};

// ---------------------------------------------------------------- the shared main loop
// Block tile BM×BN, warps of WM×WN arranged (BM/WM)×(BN/WN); within a warp the lanes form
// an 8×4 grid and a lane owns (WM/32)×(WN/16) chunks of 4×4 outputs, its row chunks 32
// apart and its column chunks 16 apart (as in gemm.cu). Shared memory holds tile[k][r]
// with rows padded by 4 floats, double-buffered: step s + 1 is gathered into registers
// before step s is multiplied and stored after, one barrier per step. The k table is
// double-buffered too and filled two steps ahead by 8 lanes of a rotating warp.
template <class Problem, int BM, int BN, int WM, int WN>
DEVICE_INLINE void implicit_gemm(Problem& p) {
    constexpr int BK = CONV_BK;
    constexpr int WARPS_N = BN / WN;
    constexpr int THREADS = 32 * (BM / WM) * WARPS_N;
    constexpr int WARPS = THREADS / 32;
    constexpr int MC = WM / 32, NC = WN / 16;
    constexpr int A_STRIDE = BM + 4, B_STRIDE = BN + 4;

    __shared__ __align__(16) float a_tiles[2][BK * A_STRIDE];
    __shared__ __align__(16) float b_tiles[2][BK * B_STRIDE];
    __shared__ TableEntry table[2][BK];

    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int tm = (warp / WARPS_N) * WM + (lane / 4) * 4;  // first tile row of this thread
    const int tn = (warp % WARPS_N) * WN + (lane % 4) * 4;  // first tile column
    const int steps = k_steps(p.k_end - p.k_begin, CONV_BK);

    float acc[4 * MC][4 * NC];
#pragma unroll
    for (int r = 0; r < 4 * MC; ++r)
#pragma unroll
        for (int c = 0; c < 4 * NC; ++c) acc[r][c] = 0.0f;

    if (tid < 2 * BK) table[tid / BK][tid % BK] = p.entry(p.k_begin + tid);
    __syncthreads();
    p.load(table[0], p.k_begin);
    p.store(a_tiles[0], b_tiles[0]);
    __syncthreads();

    for (int step = 0; step < steps; ++step) {
        const int buf = step & 1;
        const bool more = step + 1 < steps;
        if (more) p.load(table[buf ^ 1], p.k_begin + (step + 1) * BK);
        const float* As = a_tiles[buf];
        const float* Bs = b_tiles[buf];
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            float av[4 * MC], bv[4 * NC];
#pragma unroll
            for (int i = 0; i < MC; ++i) {
                const float4 v = *reinterpret_cast<const float4*>(As + kk * A_STRIDE + tm + i * 32);
                av[4 * i + 0] = v.x;
                av[4 * i + 1] = v.y;
                av[4 * i + 2] = v.z;
                av[4 * i + 3] = v.w;
            }
#pragma unroll
            for (int j = 0; j < NC; ++j) {
                const float4 v = *reinterpret_cast<const float4*>(Bs + kk * B_STRIDE + tn + j * 16);
                bv[4 * j + 0] = v.x;
                bv[4 * j + 1] = v.y;
                bv[4 * j + 2] = v.z;
                bv[4 * j + 3] = v.w;
            }
#pragma unroll
            for (int r = 0; r < 4 * MC; ++r)
#pragma unroll
                for (int c = 0; c < 4 * NC; ++c) acc[r][c] = fmaf(av[r], bv[c], acc[r][c]);
        }
        if (more) p.store(a_tiles[buf ^ 1], b_tiles[buf ^ 1]);
        // table[buf] held step `step`, last read while gathering it, before the previous barrier
        const int slot = tid - (step % WARPS) * 32;
        if (slot >= 0 && slot < BK) table[buf][slot] = p.entry(p.k_begin + (step + 2) * BK + slot);
        __syncthreads();
    }

    // Epilogue: out[row_offset(m) + col_offset(n)] = acc + bias; four consecutive rows (or
    // columns) that are consecutive in memory and 16-byte aligned go out as one float4.
    int row_off[4 * MC], col_off[4 * NC];
    float col_add[4 * NC];
#pragma unroll
    for (int i = 0; i < MC; ++i)
#pragma unroll
        for (int r = 0; r < 4; ++r) row_off[4 * i + r] = p.row_offset(p.m0 + tm + i * 32 + r);
#pragma unroll
    for (int j = 0; j < NC; ++j)
#pragma unroll
        for (int c = 0; c < 4; ++c) {
            col_off[4 * j + c] = p.col_offset(p.n0 + tn + j * 16 + c);
            col_add[4 * j + c] = p.col_bias(p.n0 + tn + j * 16 + c);
        }
    float* out = p.out();
#pragma unroll
    for (int i = 0; i < MC; ++i) {
#pragma unroll
        for (int j = 0; j < NC; ++j) {
            if (Problem::ROWS_CONTIGUOUS) {
                const int r0 = row_off[4 * i];
                const bool rows_run = r0 >= 0 && row_off[4 * i + 3] == r0 + 3;
#pragma unroll
                for (int c = 0; c < 4; ++c) {
                    const int co = col_off[4 * j + c];
                    if (co < 0) continue;
                    const float add = col_add[4 * j + c];
                    float* dst = out + r0 + co;
                    if (rows_run && reinterpret_cast<unsigned long long>(dst) % 16 == 0) {
                        *reinterpret_cast<float4*>(dst) =
                            make_float4(acc[4 * i + 0][4 * j + c] + add, acc[4 * i + 1][4 * j + c] + add,
                                        acc[4 * i + 2][4 * j + c] + add, acc[4 * i + 3][4 * j + c] + add);
                    } else {
#pragma unroll
                        for (int r = 0; r < 4; ++r)
                            if (row_off[4 * i + r] >= 0) out[row_off[4 * i + r] + co] = acc[4 * i + r][4 * j + c] + add;
                    }
                }
            } else {
                const int c0 = col_off[4 * j];
                const bool cols_run = c0 >= 0 && col_off[4 * j + 3] == c0 + 3;
#pragma unroll
                for (int r = 0; r < 4; ++r) {
                    const int ro = row_off[4 * i + r];
                    if (ro < 0) continue;
                    float* dst = out + ro + c0;
                    if (cols_run && reinterpret_cast<unsigned long long>(dst) % 16 == 0) {
                        *reinterpret_cast<float4*>(dst) =
                            make_float4(acc[4 * i + r][4 * j + 0] + col_add[4 * j + 0],
                                        acc[4 * i + r][4 * j + 1] + col_add[4 * j + 1],
                                        acc[4 * i + r][4 * j + 2] + col_add[4 * j + 2],
                                        acc[4 * i + r][4 * j + 3] + col_add[4 * j + 3]);
                    } else {
#pragma unroll
                        for (int c = 0; c < 4; ++c)
                            if (col_off[4 * j + c] >= 0)
                                out[ro + col_off[4 * j + c]] = acc[4 * i + r][4 * j + c] + col_add[4 * j + c];
                    }
                }
            }
        }
    }
}

#define CONV_THREADS(BM, BN, WM, WN) (32 * ((BM) / (WM)) * ((BN) / (WN)))

// Entry points, one per pass and tile. Tiles (BM×BN, warp tile, threads, outputs/thread):
//   128x128: 64×32, 256 threads, 8×8      128x64: 64×32, 128 threads, 8×8
//   64x64:   32×32, 128 threads, 4×8      128x32: 32×32, 128 threads, 4×8
//   128x16:  32×16, 128 threads, 4×4      32x32:  32×16,  64 threads, 4×4
//   32x16:   32×16,  32 threads, 4×4
// __launch_bounds__ gives every tile at most 128 registers per thread (2048 threads per
// SM / 16 warps resident), which the 8×8 tiles need.
//
// conv_forward_f32_<tile>(x, weight, bias, y, shape, k_chunk)
//   y[n, f, o] = Σ over the K slice of blockIdx.z (+ bias[f] when bias != NULL).
//   Launch: grid (ceil(N·OD·OH·OW / BM), ceil(Fg / BN), groups · slices), block THREADS.
//   With slices > 1, y is a (slices, N, F, OD, OH, OW) buffer and bias must be NULL.
// conv_backward_data_f32_<tile>(gy, weight, gx, shape, k_chunk)
//   gx[n, c, i] = Σ over the slice of the class's K = Fg·(valid taps).
//   Launch: grid (ceil(max class rows / BM), ceil(Cg / BN), S_d·S_h·S_w · groups · slices),
//   block THREADS; gx (slices, N, C, D, H, W) with slices > 1. Blocks past their class's
//   rows return at once; every position is written by exactly one block per slice.
// conv_backward_filter_f32_<tile>(gy, x, gW, shape, k_chunk)
//   gW[f, c, t] = Σ over the slice of K = N·OD·OH·OW.
//   Launch: grid (ceil(Fg / BM), ceil(Cg·T / BN), groups · slices), block THREADS; gW
//   (slices, F, Cg, KD, KH, KW) with slices > 1.
#define CONV_FORWARD_ENTRY(NAME, BM, BN, WM, WN, MIN_BLOCKS)                                                   \
    extern "C" __global__ void __launch_bounds__(CONV_THREADS(BM, BN, WM, WN), MIN_BLOCKS)                       \
        NAME(const float* __restrict__ x, const float* __restrict__ weight, const float* __restrict__ bias,      \
             float* __restrict__ y, CONV_SHAPE_PARAMS, int k_chunk) {                                            \
        ForwardProblem<BM, BN, CONV_THREADS(BM, BN, WM, WN)> p(x, weight, bias, y, make_shape(CONV_SHAPE_ARGS),  \
                                                               k_chunk);                                         \
        implicit_gemm<decltype(p), BM, BN, WM, WN>(p);                                                           \
    }
#define CONV_BACKWARD_DATA_ENTRY(NAME, BM, BN, WM, WN, MIN_BLOCKS)                                             \
    extern "C" __global__ void __launch_bounds__(CONV_THREADS(BM, BN, WM, WN), MIN_BLOCKS)                       \
        NAME(const float* __restrict__ gy, const float* __restrict__ weight, float* __restrict__ gx,             \
             CONV_SHAPE_PARAMS, int k_chunk) {                                                                   \
        BackwardDataProblem<BM, BN, CONV_THREADS(BM, BN, WM, WN)> p(gy, weight, gx, make_shape(CONV_SHAPE_ARGS), \
                                                                    k_chunk);                                    \
        if (!p.has_rows()) return;                                                                               \
        implicit_gemm<decltype(p), BM, BN, WM, WN>(p);                                                           \
    }
#define CONV_BACKWARD_FILTER_ENTRY(NAME, BM, BN, WM, WN, MIN_BLOCKS)                                           \
    extern "C" __global__ void __launch_bounds__(CONV_THREADS(BM, BN, WM, WN), MIN_BLOCKS)                       \
        NAME(const float* __restrict__ gy, const float* __restrict__ x, float* __restrict__ gW,                   \
             CONV_SHAPE_PARAMS, int k_chunk) {                                                                   \
        BackwardFilterProblem<BM, BN, CONV_THREADS(BM, BN, WM, WN)> p(gy, x, gW, make_shape(CONV_SHAPE_ARGS),    \
                                                                      k_chunk);                                  \
        implicit_gemm<decltype(p), BM, BN, WM, WN>(p);                                                           \
    }

CONV_FORWARD_ENTRY(conv_forward_f32_128x128, 128, 128, 64, 32, 2)
CONV_FORWARD_ENTRY(conv_forward_f32_128x64, 128, 64, 64, 32, 4)
CONV_FORWARD_ENTRY(conv_forward_f32_64x64, 64, 64, 32, 32, 4)
CONV_FORWARD_ENTRY(conv_forward_f32_128x32, 128, 32, 32, 32, 4)
CONV_FORWARD_ENTRY(conv_forward_f32_128x16, 128, 16, 32, 16, 4)
CONV_FORWARD_ENTRY(conv_forward_f32_32x32, 32, 32, 32, 16, 8)
CONV_FORWARD_ENTRY(conv_forward_f32_32x16, 32, 16, 32, 16, 16)
CONV_BACKWARD_DATA_ENTRY(conv_backward_data_f32_128x128, 128, 128, 64, 32, 2)
CONV_BACKWARD_DATA_ENTRY(conv_backward_data_f32_128x64, 128, 64, 64, 32, 4)
CONV_BACKWARD_DATA_ENTRY(conv_backward_data_f32_64x64, 64, 64, 32, 32, 4)
CONV_BACKWARD_DATA_ENTRY(conv_backward_data_f32_128x32, 128, 32, 32, 32, 4)
CONV_BACKWARD_DATA_ENTRY(conv_backward_data_f32_128x16, 128, 16, 32, 16, 4)
CONV_BACKWARD_DATA_ENTRY(conv_backward_data_f32_32x32, 32, 32, 32, 16, 8)
CONV_BACKWARD_DATA_ENTRY(conv_backward_data_f32_32x16, 32, 16, 32, 16, 16)
CONV_BACKWARD_FILTER_ENTRY(conv_backward_filter_f32_128x128, 128, 128, 64, 32, 2)
CONV_BACKWARD_FILTER_ENTRY(conv_backward_filter_f32_128x64, 128, 64, 64, 32, 4)
CONV_BACKWARD_FILTER_ENTRY(conv_backward_filter_f32_64x64, 64, 64, 32, 32, 4)
CONV_BACKWARD_FILTER_ENTRY(conv_backward_filter_f32_128x32, 128, 32, 32, 32, 4)
CONV_BACKWARD_FILTER_ENTRY(conv_backward_filter_f32_128x16, 128, 16, 32, 16, 4)
CONV_BACKWARD_FILTER_ENTRY(conv_backward_filter_f32_32x32, 32, 32, 32, 16, 8)
CONV_BACKWARD_FILTER_ENTRY(conv_backward_filter_f32_32x16, 32, 16, 32, 16, 16)

// conv_splitk_reduce_f32: out[i] = Σ_{z < slices} partial[z·total + i] (+ bias[(i / inner) % channels])
// for i < total, summing z in order (deterministic).
// Launch: 1-D grid-stride loop, any grid and block.
extern "C" __global__ void conv_splitk_reduce_f32(const float* __restrict__ partial, float* __restrict__ out,
                                                  const float* __restrict__ bias, int total, int slices, int inner,
                                                  int channels) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        float sum = sum_of_slices(partial, slices, total, i);
        if (bias != nullptr) sum += bias[i / inner % channels];
        out[i] = sum;
    }
}

// ============================================================== depthwise (groups = C)
//
// One block per (spatial tile, channel c = blockIdx.y, sample n = blockIdx.z), M = F / C
// filters per channel, T taps. blockIdx.x = (plane · tiles_h + tile row) · tiles_w +
// tile column, where plane is od (forward, backward-filter) or d (backward-data) and the
// tile covers tile_h × tile_w positions of that plane. blockDim.x is a multiple of 32, at
// most 256, and at least tile_h · tile_w / 4 (each thread takes up to 4 positions
// tid + r · blockDim.x). Dynamic shared memory as given per kernel below; a launch with
// less traps.

#define DEPTHWISE_POSITIONS 4

struct PlaneTile {
    int plane, row0, col0;
};

DEVICE_INLINE PlaneTile plane_tile(int rows, int cols, int tile_h, int tile_w) {
    const int tiles_w = ceil_div(cols, tile_w), tiles_h = ceil_div(rows, tile_h);
    int t = blockIdx.x;
    PlaneTile p;
    p.col0 = t % tiles_w * tile_w;
    t /= tiles_w;
    p.row0 = t % tiles_h * tile_h;
    p.plane = t / tiles_h;
    return p;
}

// Input rows and columns a tile of tile_h × tile_w outputs reads (halo included).
DEVICE_INLINE int halo_extent(int tile, int stride, int taps, int dilation) {
    return (tile - 1) * stride + (taps - 1) * dilation + 1;
}

// tile[kd][r][q] = x[n, c, od·S − P + kd·Dl, row0·S − P + r, col0·S − P + q], zero outside.
DEVICE_INLINE void load_input_tile(float* tile, const float* __restrict__ x_nc, const Shape& s, int od, int oh0,
                                 int ow0, int rows, int cols) {
    const int ih0 = oh0 * s.sh - s.ph, iw0 = ow0 * s.sw - s.pw;
    for (int e = threadIdx.x; e < s.KD * rows * cols; e += blockDim.x) {
        const int kd = e / (rows * cols), r = e - kd * (rows * cols);
        const int lr = r / cols, lc = r - lr * cols;
        const int id = od * s.sd - s.pd + kd * s.dd, ih = ih0 + lr, iw = iw0 + lc;
        tile[e] = inside(id, ih, iw, s.D, s.H, s.W) ? __ldg(x_nc + (id * s.H + ih) * s.W + iw) : 0.0f;
    }
}

// conv_depthwise_forward_f32(x, weight, bias, y, shape, tile_h, tile_w)
//   y[n, c·M + j, o] = Σ_t W[c·M + j, 0, t] · x[n, c, o·S − P + t·Dl] (+ bias).
//   Grid (OD · ceil(OH / tile_h) · ceil(OW / tile_w), C, N).
//   Shared memory: (KD · rows · cols + M · T) floats, rows and cols the halo extents.
extern "C" __global__ void __launch_bounds__(256) conv_depthwise_forward_f32(
    const float* __restrict__ x, const float* __restrict__ weight, const float* __restrict__ bias,
    float* __restrict__ y, CONV_SHAPE_PARAMS, int tile_h, int tile_w) {
    const Shape s = make_shape(CONV_SHAPE_ARGS);
    const int mult = s.F / s.C, T = s.KD * s.KH * s.KW;
    const int c = blockIdx.y, n = blockIdx.z;
    const PlaneTile pt = plane_tile(s.OH, s.OW, tile_h, tile_w);
    const int rows = halo_extent(tile_h, s.sh, s.KH, s.dh), cols = halo_extent(tile_w, s.sw, s.KW, s.dw);

    DYNAMIC_SHARED(float4, depthwise_shared);
    float* tile = reinterpret_cast<float*>(depthwise_shared);
    float* taps = tile + s.KD * rows * cols;
    if (dynamic_shared_bytes() < (unsigned)(s.KD * rows * cols + mult * T) * 4u) __trap();

    load_input_tile(tile, x + (size_t)(n * s.C + c) * s.D * s.H * s.W, s, pt.plane, pt.row0, pt.col0, rows, cols);
    for (int e = threadIdx.x; e < mult * T; e += blockDim.x) taps[e] = __ldg(weight + (size_t)c * mult * T + e);
    __syncthreads();

    int in_off[DEPTHWISE_POSITIONS], out_off[DEPTHWISE_POSITIONS];
#pragma unroll
    for (int r = 0; r < DEPTHWISE_POSITIONS; ++r) {
        const int p = threadIdx.x + r * blockDim.x;
        const int lh = p / tile_w, lw = p - lh * tile_w;
        const int oh = pt.row0 + lh, ow = pt.col0 + lw;
        const bool ok = p < tile_h * tile_w && oh < s.OH && ow < s.OW;
        in_off[r] = ok ? lh * s.sh * cols + lw * s.sw : 0;
        out_off[r] = ok ? (pt.plane * s.OH + oh) * s.OW + ow : -1;
    }
    for (int j = 0; j < mult; ++j) {
        const int f = c * mult + j;
        const float* w = taps + j * T;
        float acc[DEPTHWISE_POSITIONS] = {};
        for (int kd = 0; kd < s.KD; ++kd)
            for (int kh = 0; kh < s.KH; ++kh) {
                const int row = (kd * rows + kh * s.dh) * cols;
                for (int kw = 0; kw < s.KW; ++kw) {
                    const float wt = w[(kd * s.KH + kh) * s.KW + kw];
                    const int off = row + kw * s.dw;
#pragma unroll
                    for (int r = 0; r < DEPTHWISE_POSITIONS; ++r) acc[r] = fmaf(wt, tile[in_off[r] + off], acc[r]);
                }
            }
        const float add = bias != nullptr ? __ldg(bias + f) : 0.0f;
        float* y_nf = y + (size_t)(n * s.F + f) * s.OD * s.OH * s.OW;
#pragma unroll
        for (int r = 0; r < DEPTHWISE_POSITIONS; ++r)
            if (out_off[r] >= 0) y_nf[out_off[r]] = acc[r] + add;
    }
}

// conv_depthwise_backward_data_f32(gy, weight, gx, shape, tile_h, tile_w)
//   gx[n, c, i] = Σ_j Σ_t W[c·M + j, 0, t] · gy[n, c·M + j, (i + P − t·Dl) / S] over the taps
//   where the division is exact and lands inside the output.
//   Grid (D · ceil(H / tile_h) · ceil(W / tile_w), C, N); tiles over input positions.
//   Shared memory: (M · ED · EH · EW + M · T) floats with ED = (KD − 1)·Dl_d / S_d + 1,
//   EH = ((tile_h − 1) + (KH − 1)·Dl_h) / S_h + 1, EW likewise: the outputs the tile reaches.
// Writing i + P = S·Q + R and t·Dl = S·q + ρ, tap t reaches output Q − q exactly when ρ = R,
// so the inner loop compares residues instead of dividing.
extern "C" __global__ void __launch_bounds__(256) conv_depthwise_backward_data_f32(
    const float* __restrict__ gy, const float* __restrict__ weight, float* __restrict__ gx, CONV_SHAPE_PARAMS,
    int tile_h, int tile_w) {
    const Shape s = make_shape(CONV_SHAPE_ARGS);
    const int mult = s.F / s.C, T = s.KD * s.KH * s.KW;
    const int c = blockIdx.y, n = blockIdx.z;
    const PlaneTile pt = plane_tile(s.H, s.W, tile_h, tile_w);
    const int id = pt.plane;
    const int ED = (s.KD - 1) * s.dd / s.sd + 1;
    const int EH = ((tile_h - 1) + (s.KH - 1) * s.dh) / s.sh + 1;
    const int EW = ((tile_w - 1) + (s.KW - 1) * s.dw) / s.sw + 1;
    // first output of the tile's reach along each axis: ceil((i0 + P − (K − 1)·Dl) / S)
    const int od0 = -floor_div(-(id + s.pd - (s.KD - 1) * s.dd), s.sd);
    const int oh0 = -floor_div(-(pt.row0 + s.ph - (s.KH - 1) * s.dh), s.sh);
    const int ow0 = -floor_div(-(pt.col0 + s.pw - (s.KW - 1) * s.dw), s.sw);
    const int reach = ED * EH * EW;

    DYNAMIC_SHARED(float4, depthwise_shared);
    float* gy_tile = reinterpret_cast<float*>(depthwise_shared);
    float* taps = gy_tile + mult * reach;
    if (dynamic_shared_bytes() < (unsigned)(mult * reach + mult * T) * 4u) __trap();

    const int OP = s.OD * s.OH * s.OW;
    for (int e = threadIdx.x; e < mult * reach; e += blockDim.x) {
        const int j = e / reach;
        int r = e - j * reach;
        const int ld = r / (EH * EW);
        r -= ld * (EH * EW);
        const int lh = r / EW, lw = r - lh * EW;
        const int od = od0 + ld, oh = oh0 + lh, ow = ow0 + lw;
        gy_tile[e] = inside(od, oh, ow, s.OD, s.OH, s.OW)
                         ? __ldg(gy + (size_t)(n * s.F + c * mult + j) * OP + (od * s.OH + oh) * s.OW + ow)
                         : 0.0f;
    }
    for (int e = threadIdx.x; e < mult * T; e += blockDim.x) taps[e] = __ldg(weight + (size_t)c * mult * T + e);
    __syncthreads();

    // Per position: quotient (relative to the reach's first output) and residue along h and w.
    int qh[DEPTHWISE_POSITIONS], rh[DEPTHWISE_POSITIONS], qw[DEPTHWISE_POSITIONS], rw[DEPTHWISE_POSITIONS];
    int out_off[DEPTHWISE_POSITIONS];
#pragma unroll
    for (int r = 0; r < DEPTHWISE_POSITIONS; ++r) {
        const int p = threadIdx.x + r * blockDim.x;
        const int lh = p / tile_w, lw = p - lh * tile_w;
        const int ih = pt.row0 + lh, iw = pt.col0 + lw;
        const bool ok = p < tile_h * tile_w && ih < s.H && iw < s.W;
        qh[r] = ok ? (ih + s.ph) / s.sh - oh0 : 0;
        rh[r] = ok ? (ih + s.ph) % s.sh : -1;  // -1 matches no tap
        qw[r] = ok ? (iw + s.pw) / s.sw - ow0 : 0;
        rw[r] = ok ? (iw + s.pw) % s.sw : -1;
        out_off[r] = ok ? (id * s.H + ih) * s.W + iw : -1;
    }
    const int qd = (id + s.pd) / s.sd - od0, rd = (id + s.pd) % s.sd;
    const int step_qd = s.dd / s.sd, step_rd = s.dd % s.sd;
    const int step_qh = s.dh / s.sh, step_rh = s.dh % s.sh;
    const int step_qw = s.dw / s.sw, step_rw = s.dw % s.sw;

    float* gx_nc = gx + (size_t)(n * s.C + c) * s.D * s.H * s.W;
    float acc[DEPTHWISE_POSITIONS] = {};
    for (int j = 0; j < mult; ++j) {
        const float* w = taps + j * T;
        const float* gy_j = gy_tile + j * reach;
        int tq_d = 0, tr_d = 0;  // kd·Dl_d = S_d·tq_d + tr_d
        for (int kd = 0; kd < s.KD; ++kd) {
            if (tr_d == rd) {
                const float* plane = gy_j + (qd - tq_d) * EH * EW;
                int tq_h = 0, tr_h = 0;
                for (int kh = 0; kh < s.KH; ++kh) {
                    int tq_w = 0, tr_w = 0;
                    for (int kw = 0; kw < s.KW; ++kw) {
                        const float wt = w[(kd * s.KH + kh) * s.KW + kw];
#pragma unroll
                        for (int r = 0; r < DEPTHWISE_POSITIONS; ++r)
                            if (rh[r] == tr_h && rw[r] == tr_w)
                                acc[r] = fmaf(wt, plane[(qh[r] - tq_h) * EW + qw[r] - tq_w], acc[r]);
                        tq_w += step_qw;
                        tr_w += step_rw;
                        if (tr_w >= s.sw) {
                            tr_w -= s.sw;
                            ++tq_w;
                        }
                    }
                    tq_h += step_qh;
                    tr_h += step_rh;
                    if (tr_h >= s.sh) {
                        tr_h -= s.sh;
                        ++tq_h;
                    }
                }
            }
            tq_d += step_qd;
            tr_d += step_rd;
            if (tr_d >= s.sd) {
                tr_d -= s.sd;
                ++tq_d;
            }
        }
    }
#pragma unroll
    for (int r = 0; r < DEPTHWISE_POSITIONS; ++r)
        if (out_off[r] >= 0) gx_nc[out_off[r]] = acc[r];
}

// conv_depthwise_backward_filter_f32(gy, x, partial, shape, tile_h, tile_w)
//   partial[z, c·M + j, t] = Σ_{o in tile} gy[n, c·M + j, o] · x[n, c, o·S − P + t·Dl] with
//   z = n · gridDim.x + blockIdx.x; conv_splitk_reduce_f32 then sums the N · gridDim.x slices.
//   Grid as forward. Shared memory: (KD · rows · cols + M · V + V + max(M · T, blockDim.x))
//   floats, V = tile_h · tile_w: the input tile, gy at the tile's (valid) positions, their
//   input-tile offsets, and per-thread partial sums.
// Thread u sums one (j, t) pair over every G-th valid position, G = max(1, blockDim.x / (M·T)),
// then the G partial sums of each pair are added in a fixed order.
extern "C" __global__ void __launch_bounds__(256) conv_depthwise_backward_filter_f32(
    const float* __restrict__ gy, const float* __restrict__ x, float* __restrict__ partial, CONV_SHAPE_PARAMS,
    int tile_h, int tile_w) {
    const Shape s = make_shape(CONV_SHAPE_ARGS);
    const int mult = s.F / s.C, T = s.KD * s.KH * s.KW;
    const int c = blockIdx.y, n = blockIdx.z;
    const PlaneTile pt = plane_tile(s.OH, s.OW, tile_h, tile_w);
    const int rows = halo_extent(tile_h, s.sh, s.KH, s.dh), cols = halo_extent(tile_w, s.sw, s.KW, s.dw);
    const int V = tile_h * tile_w;
    const int vh = min(tile_h, s.OH - pt.row0), vw = min(tile_w, s.OW - pt.col0);  // the valid part
    const int pairs = mult * T;
    const int G = max(1, (int)blockDim.x / pairs);

    DYNAMIC_SHARED(float4, depthwise_shared);
    float* tile = reinterpret_cast<float*>(depthwise_shared);
    float* gy_tile = tile + s.KD * rows * cols;
    int* in_off = reinterpret_cast<int*>(gy_tile + mult * V);
    float* sums = reinterpret_cast<float*>(in_off + V);
    if (dynamic_shared_bytes() < (unsigned)(s.KD * rows * cols + mult * V + V + max(pairs, (int)blockDim.x)) * 4u)
        __trap();

    load_input_tile(tile, x + (size_t)(n * s.C + c) * s.D * s.H * s.W, s, pt.plane, pt.row0, pt.col0, rows, cols);
    const int OP = s.OD * s.OH * s.OW;
    for (int e = threadIdx.x; e < mult * vh * vw; e += blockDim.x) {
        const int j = e / (vh * vw), p = e - j * (vh * vw);
        const int lh = p / vw, lw = p - lh * vw;
        gy_tile[j * V + p] = __ldg(gy + (size_t)(n * s.F + c * mult + j) * OP +
                                   (pt.plane * s.OH + pt.row0 + lh) * s.OW + pt.col0 + lw);
    }
    for (int p = threadIdx.x; p < vh * vw; p += blockDim.x) {
        const int lh = p / vw, lw = p - lh * vw;
        in_off[p] = lh * s.sh * cols + lw * s.sw;
    }
    __syncthreads();

    for (int u = threadIdx.x; u < pairs * G; u += blockDim.x) {
        const int q = u % pairs, first = u / pairs;
        const int j = q / T, t = q - j * T;
        const int kd = t / (s.KH * s.KW), r = t - kd * (s.KH * s.KW);
        const int kh = r / s.KW, kw = r - kh * s.KW;
        const int off = (kd * rows + kh * s.dh) * cols + kw * s.dw;
        const float* gy_j = gy_tile + j * V;
        float sum = 0.0f;
        for (int p = first; p < vh * vw; p += G) sum = fmaf(gy_j[p], tile[in_off[p] + off], sum);
        sums[u] = sum;
    }
    __syncthreads();

    float* out = partial + ((size_t)n * gridDim.x + blockIdx.x) * s.F * T + (size_t)c * pairs;
    for (int q = threadIdx.x; q < pairs; q += blockDim.x) {
        float sum = 0.0f;
        for (int g = 0; g < G; ++g) sum += sums[g * pairs + q];
        out[q] = sum;
    }
}
