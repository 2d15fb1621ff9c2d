// gemm.cu: float32 matrix products C = act(op(A) · op(B) + bias) for cnnkit.
//
// Layouts. Every matrix is row-major with a leading dimension (elements between
// consecutive rows), which covers C-ordered arrays and row slices of them.
// op(A) is M×K, op(B) is K×N, and the layout letters name op(A) and op(B):
//   A "n": A stored M×K, op(A)[m, k] = A[m * lda + k]
//   A "t": A stored K×M, op(A)[m, k] = A[k * lda + m]
//   B "n": B stored K×N, op(B)[k, n] = B[k * ldb + n]
//   B "t": B stored N×K, op(B)[k, n] = B[n * ldb + k]
// C is M×N with leading dimension ldc.
//
// Every GEMM entry point takes the same parameters (GEMM_PARAMS below) and computes,
// for the K slice of its blockIdx.z,
//   C_z[m, n] = act(sum_{k in slice} op(A)[m, k] op(B)[k, n] + bias[n])
// with slice z = [z * k_chunk, min(K, (z + 1) * k_chunk)) and C_z = C + z * M * ldc.
// With one slice (grid z = 1, k_chunk >= K) that is the whole product. With several
// (split-K, for problems too small to fill the GPU) the caller passes bias = NULL and
// activation = 0, gives C room for the partial sums, and reduces them with
// gemm_splitk_reduce_f32, which applies bias and activation.
//   bias: NULL or N floats; activation: 0 = none, 1 = relu (NaN stays NaN, as with
//   NumPy's maximum(x, 0)).
//   k_chunk must be a multiple of 32 so every slice starts 16-byte aligned.
// Edges are predicated: any M, N, K >= 1 works and the inputs are never padded.
// Every index below is int except memory offsets (size_t): M, N, K must stay below
// 2**31 - 1024 so that tile origins plus a tile still fit in an int.

#include "common.cuh"

#define GEMM_PARAMS                                                                     \
    const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,    \
        const float* __restrict__ bias, int M, int N, int K, int lda, int ldb, int ldc, \
        int k_chunk, int activation
#define GEMM_ARGS A, B, C, bias, M, N, K, lda, ldb, ldc, k_chunk, activation

enum { ACT_NONE = 0, ACT_RELU = 1 };

DEVICE_INLINE float epilogue(float v, const float* __restrict__ bias, int col, int activation) {
    if (bias != nullptr) v += __ldg(bias + col);
    if (activation == ACT_RELU) v = v < 0.0f ? 0.0f : v;  // a NaN fails the test and is kept
    return v;
}

// ============================================================== FP32 SIMT kernels

// Four consecutive floats p[0..3] of which only the first `valid` exist (valid may be
// <= 0 or >= 4); the others read as zero.
template <bool VEC>
DEVICE_INLINE float4 load_quad(const float* p, int valid) {
    if (VEC && valid >= 4) return __ldg(reinterpret_cast<const float4*>(p));
    float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (valid > 0) v.x = __ldg(p);
    if (valid > 1) v.y = __ldg(p + 1);
    if (valid > 2) v.z = __ldg(p + 2);
    if (valid > 3) v.w = __ldg(p + 3);
    return v;
}

// One operand's BK-deep slice of a block tile, staged global -> registers -> shared
// memory. "r" is the operand's M (for A) or N (for B) index within the tile. Shared
// memory always holds tile[k][r] (rows of R + 4 floats) so that the inner product reads
// four consecutive r with one float4.
// K_CONTIGUOUS: element (r, k) at X[r * ld + k] ("n" A, "t" B): a float4 runs along k
// and is transposed into four shared stores; the +4 padding puts the two k-quads of a
// warp's 16 rows in distinct banks.
// Otherwise: element (r, k) at X[k * ld + r] ("t" A, "n" B): a float4 runs along r and
// is stored as it is.
template <int R, int BK, int THREADS, bool K_CONTIGUOUS, bool VEC>
struct SimtOperand {
    static constexpr int STRIDE = R + 4;
    static constexpr int QUADS = R * BK / 4 / THREADS;
    static_assert(QUADS >= 1 && QUADS * 4 * THREADS == R * BK, "tile must split into float4 per thread");

    float4 staged[QUADS];

    DEVICE_INLINE void load(const float* __restrict__ X, int ld, int extent, int r0, int k0, int k_end,
                          int tid) {
#pragma unroll
        for (int i = 0; i < QUADS; ++i) {
            const int q = tid + i * THREADS;
            if (K_CONTIGUOUS) {
                const int r = r0 + q / (BK / 4), k = k0 + (q % (BK / 4)) * 4;
                staged[i] = load_quad<VEC>(X + (size_t)r * ld + k, r < extent ? k_end - k : 0);
            } else {
                const int k = k0 + q / (R / 4), r = r0 + (q % (R / 4)) * 4;
                staged[i] = load_quad<VEC>(X + (size_t)k * ld + r, k < k_end ? extent - r : 0);
            }
        }
    }

    DEVICE_INLINE void store(float* tile, int tid) const {
#pragma unroll
        for (int i = 0; i < QUADS; ++i) {
            const int q = tid + i * THREADS;
            if (K_CONTIGUOUS) {
                const int r = q / (BK / 4), k = (q % (BK / 4)) * 4;
                tile[(k + 0) * STRIDE + r] = staged[i].x;
                tile[(k + 1) * STRIDE + r] = staged[i].y;
                tile[(k + 2) * STRIDE + r] = staged[i].z;
                tile[(k + 3) * STRIDE + r] = staged[i].w;
            } else {
                const int k = q / (R / 4), r = (q % (R / 4)) * 4;
                *reinterpret_cast<float4*>(tile + k * STRIDE + r) = staged[i];
            }
        }
    }
};

// Block tile BM×BN, K step 8, warps of WM×WN arranged (BM/WM)×(BN/WN). Within a warp the
// lanes form an 8×4 grid; a lane owns (WM/32)×(WN/16) chunks of 4×4 outputs, its row
// chunks 32 apart and its column chunks 16 apart, so each k step reads them from shared
// memory with float4 loads. Shared memory is double-buffered: the next slice is loaded
// into registers before the current one is multiplied and stored to the other buffer
// after, leaving one barrier per step.
template <int BM, int BN, int WM, int WN, bool TRANS_A, bool TRANS_B, bool VEC>
DEVICE_INLINE void gemm_simt(GEMM_PARAMS) {
    constexpr int BK = 8;
    constexpr int WARPS_N = BN / WN;
    constexpr int THREADS = 32 * (BM / WM) * WARPS_N;
    constexpr int MC = WM / 32;  // row chunks per thread
    constexpr int NC = WN / 16;  // column chunks per thread
    using OperandA = SimtOperand<BM, BK, THREADS, !TRANS_A, VEC>;
    using OperandB = SimtOperand<BN, BK, THREADS, TRANS_B, VEC>;

    __shared__ __align__(16) float a_tiles[2][BK * OperandA::STRIDE];
    __shared__ __align__(16) float b_tiles[2][BK * OperandB::STRIDE];

    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int tm = (warp / WARPS_N) * WM + (lane / 4) * 4;  // first tile row of this thread
    const int tn = (warp % WARPS_N) * WN + (lane % 4) * 4;  // first tile column
    const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
    const int k_begin = blockIdx.z * k_chunk;
    const int k_end = k_begin + min(k_chunk, K - k_begin);
    const int steps = k_steps(k_end - k_begin, BK);
    C += (size_t)blockIdx.z * M * ldc;

    OperandA a;
    OperandB b;
    float acc[4 * MC][4 * NC];
#pragma unroll
    for (int r = 0; r < 4 * MC; ++r)
#pragma unroll
        for (int c = 0; c < 4 * NC; ++c) acc[r][c] = 0.0f;

    a.load(A, lda, M, m0, k_begin, k_end, tid);
    b.load(B, ldb, N, n0, k_begin, k_end, tid);
    a.store(a_tiles[0], tid);
    b.store(b_tiles[0], tid);
    __syncthreads();

    for (int step = 0; step < steps; ++step) {
        const int buf = step % 2;
        const bool more = step + 1 < steps;
        if (more) {
            const int k_next = k_begin + (step + 1) * BK;
            a.load(A, lda, M, m0, k_next, k_end, tid);
            b.load(B, ldb, N, n0, k_next, k_end, tid);
        }
        const float* As = a_tiles[buf];
        const float* Bs = b_tiles[buf];
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            float av[4 * MC], bv[4 * NC];
#pragma unroll
            for (int i = 0; i < MC; ++i) {
                const float4 v = *reinterpret_cast<const float4*>(As + kk * OperandA::STRIDE + tm + i * 32);
                av[4 * i + 0] = v.x;
                av[4 * i + 1] = v.y;
                av[4 * i + 2] = v.z;
                av[4 * i + 3] = v.w;
            }
#pragma unroll
            for (int j = 0; j < NC; ++j) {
                const float4 v = *reinterpret_cast<const float4*>(Bs + kk * OperandB::STRIDE + tn + j * 16);
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
        if (more) {
            a.store(a_tiles[buf ^ 1], tid);
            b.store(b_tiles[buf ^ 1], tid);
        }
        __syncthreads();
    }

    const bool vec_store = ldc % 4 == 0 && reinterpret_cast<unsigned long long>(C) % 16 == 0;
#pragma unroll
    for (int i = 0; i < MC; ++i) {
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            const int row = m0 + tm + i * 32 + r;
            if (row >= M) continue;
            float* c_row = C + (size_t)row * ldc;
#pragma unroll
            for (int j = 0; j < NC; ++j) {
                const int col = n0 + tn + j * 16;
                const float* v = acc[4 * i + r] + 4 * j;
                if (vec_store && col + 3 < N) {
                    *reinterpret_cast<float4*>(c_row + col) = make_float4(
                        epilogue(v[0], bias, col + 0, activation), epilogue(v[1], bias, col + 1, activation),
                        epilogue(v[2], bias, col + 2, activation), epilogue(v[3], bias, col + 3, activation));
                } else {
#pragma unroll
                    for (int c = 0; c < 4; ++c)
                        if (col + c < N) c_row[col + c] = epilogue(v[c], bias, col + c, activation);
                }
            }
        }
    }
}

#define GEMM_SIMT_ENTRY(NAME, BM, BN, WM, WN, TRANS_A, TRANS_B, VEC)            \
    extern "C" __global__ void __launch_bounds__(32 * (BM / WM) * (BN / WN), 2) \
        NAME(GEMM_PARAMS) {                                                     \
        gemm_simt<BM, BN, WM, WN, TRANS_A, TRANS_B, VEC>(GEMM_ARGS);            \
    }

// gemm_f32_<layout>_<tile>_<access>: the FP32 SIMT kernels (FFMA on CUDA cores).
// Computes: the GEMM_PARAMS contract at the top of this file, in float32.
// Layout: <layout> is op(A) op(B) as above (nn, nt, tn, tt).
// Launch: grid (ceil(M / BM), ceil(N / BN), number of K slices), 1-D block, no dynamic
// shared memory.
//   128x128: BM = BN = 128, 256 threads (8 warps of 64×32), 8×8 outputs per thread,
//            16.9 KB static shared memory. For problems with at least one tile per SM.
//   64x64:   BM = BN = 64, 128 threads (4 warps of 32×32), 4×8 outputs per thread,
//            8.7 KB static shared memory. For small and skinny problems.
// <access> vec4:   A and B 16-byte aligned, lda and ldb multiples of 4 (128-bit loads).
//          scalar: any alignment (32-bit loads).
GEMM_SIMT_ENTRY(gemm_f32_nn_128x128_vec4, 128, 128, 64, 32, false, false, true)
GEMM_SIMT_ENTRY(gemm_f32_nt_128x128_vec4, 128, 128, 64, 32, false, true, true)
GEMM_SIMT_ENTRY(gemm_f32_tn_128x128_vec4, 128, 128, 64, 32, true, false, true)
GEMM_SIMT_ENTRY(gemm_f32_tt_128x128_vec4, 128, 128, 64, 32, true, true, true)
GEMM_SIMT_ENTRY(gemm_f32_nn_128x128_scalar, 128, 128, 64, 32, false, false, false)
GEMM_SIMT_ENTRY(gemm_f32_nt_128x128_scalar, 128, 128, 64, 32, false, true, false)
GEMM_SIMT_ENTRY(gemm_f32_tn_128x128_scalar, 128, 128, 64, 32, true, false, false)
GEMM_SIMT_ENTRY(gemm_f32_tt_128x128_scalar, 128, 128, 64, 32, true, true, false)
GEMM_SIMT_ENTRY(gemm_f32_nn_64x64_vec4, 64, 64, 32, 32, false, false, true)
GEMM_SIMT_ENTRY(gemm_f32_nt_64x64_vec4, 64, 64, 32, 32, false, true, true)
GEMM_SIMT_ENTRY(gemm_f32_tn_64x64_vec4, 64, 64, 32, 32, true, false, true)
GEMM_SIMT_ENTRY(gemm_f32_tt_64x64_vec4, 64, 64, 32, 32, true, true, true)
GEMM_SIMT_ENTRY(gemm_f32_nn_64x64_scalar, 64, 64, 32, 32, false, false, false)
GEMM_SIMT_ENTRY(gemm_f32_nt_64x64_scalar, 64, 64, 32, 32, false, true, false)
GEMM_SIMT_ENTRY(gemm_f32_tn_64x64_scalar, 64, 64, 32, 32, true, false, false)
GEMM_SIMT_ENTRY(gemm_f32_tt_64x64_scalar, 64, 64, 32, 32, true, true, false)

// ============================================================== TF32 tensor-core kernels
//
// mma.sync m16n8k8 with TF32 inputs (rounded to nearest with cvt.rna.tf32.f32, 10-bit
// mantissa) and FP32 accumulation: about 1e-3 relative error against an FP32 product.
// Tensor-core instructions and cp.async exist from sm_80 on; below that the entry points
// compile to a trap and the wrapper never launches them.

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define GEMM_HAS_TF32 1
#endif

constexpr int TF32_THREADS = 256;

#ifdef GEMM_HAS_TF32
constexpr int TF32_BM = 128, TF32_BN = 128, TF32_BK = 32, TF32_STAGES = 3;
// Each operand's shared tile gets the larger of its two layouts' sizes, so that every
// layout needs the same dynamic shared memory: 3 stages × 2 operands × 4608 floats.
constexpr int TF32_OPERAND_FLOATS = 4608;
constexpr int TF32_SHARED_BYTES = TF32_STAGES * 2 * TF32_OPERAND_FLOATS * 4;  // 110592

// The inline PTX lives in these small wrappers; under CNNKIT_EMULATION (kernels/emulate) each
// calls its host implementation instead.
DEVICE_INLINE void cp_async_16(float* shared_dst, const float* global_src, int src_bytes) {
    // Copies src_bytes (0..16) and zero-fills the rest of the 16 bytes.
#ifdef CNNKIT_EMULATION
    cnnkit_emulator::cp_async(shared_dst, global_src, 16, (unsigned)src_bytes);
#else
    const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(shared_dst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(global_src), "r"(src_bytes)
                 : "memory");
#endif
}

DEVICE_INLINE void cp_async_commit() {
#ifdef CNNKIT_EMULATION
    cnnkit_emulator::cp_async_commit();
#else
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

template <int PENDING>
DEVICE_INLINE void cp_async_wait() {
#ifdef CNNKIT_EMULATION
    cnnkit_emulator::cp_async_wait(PENDING);
#else
    asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING) : "memory");
#endif
}

DEVICE_INLINE unsigned to_tf32(float x) {
#ifdef CNNKIT_EMULATION
    return cnnkit_emulated_cvt_rna_tf32(x);
#else
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
    return r;
#endif
}

// d += a · b for one 16×8×8 tile. Fragments (g = lane / 4, t = lane % 4):
//   a0 (g, t), a1 (g + 8, t), a2 (g, t + 4), a3 (g + 8, t + 4)       [row, k]
//   b0 (t, g), b1 (t + 4, g)                                          [k, col]
//   d0 (g, 2t), d1 (g, 2t + 1), d2 (g + 8, 2t), d3 (g + 8, 2t + 1)    [row, col]
DEVICE_INLINE void mma_tf32(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
#ifdef CNNKIT_EMULATION
    cnnkit_emulator::mma_m16n8k8_tf32(d, a, b);
#else
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}


// One operand's shared tile, kept in its global layout so that cp.async copies 16-byte
// pieces unchanged. "r" is the M (for A) or N (for B) index within the tile.
// K_CONTIGUOUS: tile[r][k], rows of BK + 4 floats; otherwise tile[k][r], rows of R + 8.
// The paddings put the 32 lanes of each fragment load (8 values of g times 4 of t) in
// 32 distinct banks: (g * 36 + t) % 32 and (t * 136 + g) % 32 are all different.
template <int R, int BK, int THREADS, bool K_CONTIGUOUS>
struct Tf32Operand {
    static constexpr int FLOATS = K_CONTIGUOUS ? R * (BK + 4) : BK * (R + 8);
    static constexpr int QUADS = R * BK / 4 / THREADS;
    static_assert(FLOATS <= TF32_OPERAND_FLOATS, "operand tile larger than its shared region");
    static_assert(QUADS * 4 * THREADS == R * BK, "tile must split into 16-byte copies per thread");

    static DEVICE_INLINE float at(const float* tile, int r, int k) {
        return K_CONTIGUOUS ? tile[r * (BK + 4) + k] : tile[k * (R + 8) + r];
    }

    // Out-of-range elements are zero-filled; a copy with nothing in range reads no bytes
    // and points at X itself so its address stays valid.
    static DEVICE_INLINE void copy_async(float* tile, const float* __restrict__ X, int ld, int extent, int r0,
                                       int k0, int k_end, int tid) {
#pragma unroll
        for (int i = 0; i < QUADS; ++i) {
            const int q = tid + i * THREADS;
            float* dst;
            const float* src;
            int floats;
            if (K_CONTIGUOUS) {
                const int r = q / (BK / 4), k = (q % (BK / 4)) * 4;
                dst = tile + r * (BK + 4) + k;
                src = X + (size_t)(r0 + r) * ld + (k0 + k);
                floats = r0 + r < extent ? min(max(k_end - (k0 + k), 0), 4) : 0;
            } else {
                const int k = q / (R / 4), r = (q % (R / 4)) * 4;
                dst = tile + k * (R + 8) + r;
                src = X + (size_t)(k0 + k) * ld + (r0 + r);
                floats = k0 + k < k_end ? min(max(extent - (r0 + r), 0), 4) : 0;
            }
            cp_async_16(dst, floats > 0 ? src : X, floats * 4);
        }
    }
};
#endif  // GEMM_HAS_TF32

// Block tile 128×128, K step 32, 8 warps of 64×32 (2×4), each warp 4×4 mma tiles of
// 16×8. A TF32_STAGES-deep cp.async pipeline keeps two slices in flight while the third
// is multiplied.
template <bool TRANS_A, bool TRANS_B>
DEVICE_INLINE void gemm_tf32(GEMM_PARAMS) {
#ifdef GEMM_HAS_TF32
    constexpr int BM = TF32_BM, BN = TF32_BN, BK = TF32_BK, STAGES = TF32_STAGES, THREADS = TF32_THREADS;
    constexpr int WM = 64, WN = 32, WARPS_N = BN / WN;
    constexpr int MI = WM / 16, NI = WN / 8;
    constexpr int STAGE_FLOATS = 2 * TF32_OPERAND_FLOATS;
    using OperandA = Tf32Operand<BM, BK, THREADS, !TRANS_A>;
    using OperandB = Tf32Operand<BN, BK, THREADS, TRANS_B>;

    DYNAMIC_SHARED(float4, dynamic_shared);  // float4: 16-byte alignment for cp.async
    float* shared = reinterpret_cast<float*>(dynamic_shared);
    if (dynamic_shared_bytes() < TF32_SHARED_BYTES) __trap();  // launched without its shared memory

    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int g = lane / 4, t = lane % 4;
    const int wm = (warp / WARPS_N) * WM, wn = (warp % WARPS_N) * WN;
    const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
    const int k_begin = blockIdx.z * k_chunk;
    const int k_end = k_begin + min(k_chunk, K - k_begin);
    const int steps = k_steps(k_end - k_begin, BK);
    C += (size_t)blockIdx.z * M * ldc;

    float acc[MI][NI][4];
#pragma unroll
    for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NI; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

    // Every thread commits one group per stage, empty or not, so that the group count
    // tells wait_group which slice has landed.
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < steps) {
            float* stage = shared + s * STAGE_FLOATS;
            OperandA::copy_async(stage, A, lda, M, m0, k_begin + s * BK, k_end, tid);
            OperandB::copy_async(stage + TF32_OPERAND_FLOATS, B, ldb, N, n0, k_begin + s * BK, k_end, tid);
        }
        cp_async_commit();
    }

    for (int step = 0; step < steps; ++step) {
        cp_async_wait<STAGES - 2>();  // this thread's copies of slice `step` are done
        __syncthreads();              // everyone's are, and slice step - 1 is no longer read
        const int next = step + STAGES - 1;
        if (next < steps) {
            float* stage = shared + (next % STAGES) * STAGE_FLOATS;
            OperandA::copy_async(stage, A, lda, M, m0, k_begin + next * BK, k_end, tid);
            OperandB::copy_async(stage + TF32_OPERAND_FLOATS, B, ldb, N, n0, k_begin + next * BK, k_end, tid);
        }
        cp_async_commit();

        const float* As = shared + (step % STAGES) * STAGE_FLOATS;
        const float* Bs = As + TF32_OPERAND_FLOATS;
#pragma unroll
        for (int ks = 0; ks < BK; ks += 8) {
            unsigned a[MI][4], b[NI][2];
#pragma unroll
            for (int i = 0; i < MI; ++i) {
                const int r = wm + i * 16 + g;
                a[i][0] = to_tf32(OperandA::at(As, r, ks + t));
                a[i][1] = to_tf32(OperandA::at(As, r + 8, ks + t));
                a[i][2] = to_tf32(OperandA::at(As, r, ks + t + 4));
                a[i][3] = to_tf32(OperandA::at(As, r + 8, ks + t + 4));
            }
#pragma unroll
            for (int j = 0; j < NI; ++j) {
                const int c = wn + j * 8 + g;
                b[j][0] = to_tf32(OperandB::at(Bs, c, ks + t));
                b[j][1] = to_tf32(OperandB::at(Bs, c, ks + t + 4));
            }
#pragma unroll
            for (int i = 0; i < MI; ++i)
#pragma unroll
                for (int j = 0; j < NI; ++j) mma_tf32(acc[i][j], a[i], b[j]);
        }
    }

    const bool pair_store = ldc % 2 == 0 && reinterpret_cast<unsigned long long>(C) % 8 == 0;
#pragma unroll
    for (int i = 0; i < MI; ++i) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int row = m0 + wm + i * 16 + g + 8 * h;
            if (row >= M) continue;
            float* c_row = C + (size_t)row * ldc;
#pragma unroll
            for (int j = 0; j < NI; ++j) {
                const int col = n0 + wn + j * 8 + 2 * t;
                const float v0 = acc[i][j][2 * h], v1 = acc[i][j][2 * h + 1];
                if (pair_store && col + 1 < N) {
                    *reinterpret_cast<float2*>(c_row + col) =
                        make_float2(epilogue(v0, bias, col, activation), epilogue(v1, bias, col + 1, activation));
                } else {
                    if (col < N) c_row[col] = epilogue(v0, bias, col, activation);
                    if (col + 1 < N) c_row[col + 1] = epilogue(v1, bias, col + 1, activation);
                }
            }
        }
    }
#else
    __trap();
#endif
}

#define GEMM_TF32_ENTRY(NAME, TRANS_A, TRANS_B)                                    \
    extern "C" __global__ void __launch_bounds__(TF32_THREADS) NAME(GEMM_PARAMS) { \
        gemm_tf32<TRANS_A, TRANS_B>(GEMM_ARGS);                                    \
    }

// gemm_f32_tf32_<layout>: the TF32 tensor-core kernels (opt-in, sm_80 and newer).
// Computes: the GEMM_PARAMS contract at the top of this file, with inputs rounded to TF32.
// Layout: <layout> is op(A) op(B) as above; A and B 16-byte aligned, lda and ldb
// multiples of 4 (16-byte cp.async).
// Launch: grid (ceil(M / 128), ceil(N / 128), number of K slices), block 256 threads,
// dynamic shared memory TF32_SHARED_BYTES = 110592 bytes (so the caller must raise the
// kernel's dynamic shared-memory limit above the default 48 KB first).
GEMM_TF32_ENTRY(gemm_f32_tf32_nn, false, false)
GEMM_TF32_ENTRY(gemm_f32_tf32_nt, false, true)
GEMM_TF32_ENTRY(gemm_f32_tf32_tn, true, false)
GEMM_TF32_ENTRY(gemm_f32_tf32_tt, true, true)

// gemm_splitk_reduce_f32: sums the split-K partial products and applies the epilogue.
// Computes: C[i] = act(sum_{z < splits} partial[z * M * N + i] + bias[i % N]) for
// i < M * N, summing z in order (deterministic).
// Layout: partial is (splits, M, N) C-contiguous; C is M×N C-contiguous; bias NULL or N.
// Launch: 1-D grid-stride loop, any grid and block.
extern "C" __global__ void gemm_splitk_reduce_f32(const float* __restrict__ partial, float* __restrict__ C,
                                                  const float* __restrict__ bias, int M, int N, int splits,
                                                  int activation) {
    const size_t total = (size_t)M * N;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        C[i] = epilogue(sum_of_slices(partial, splits, total, i), bias, (int)(i % N), activation);
    }
}
