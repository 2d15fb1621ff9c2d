// common.cuh: the helpers every kernel file may use, in one place.
//
// Kernel files include it with `#include "common.cuh"`. cnnkit/cuda/launcher.py replaces that
// line with this file's text before handing a source to NVRTC, so CuPy's cache key (a hash of
// the source) covers the header and editing it recompiles every kernel; nvcc
// (.ci/compile_kernels.sh) and the host emulator (kernels/emulate) see the same text.
#pragma once

// The one spelling of an inlined device function.
#define DEVICE_INLINE __device__ __forceinline__

// Dynamic shared memory: `DYNAMIC_SHARED(float4, tile);` declares `tile`. A macro because
// kernels/emulate/cuda_host.h supplies its own for the host.
#ifndef DYNAMIC_SHARED
#define DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

// The size of the launch's dynamic shared memory (%dynamic_smem_size); under
// CNNKIT_EMULATION (kernels/emulate) the host implementation.
DEVICE_INLINE unsigned dynamic_shared_bytes() {
#ifdef CNNKIT_EMULATION
    return cnnkit_emulator::dynamic_shared_size();
#else
    unsigned bytes;
    asm("mov.u32 %0, %%dynamic_smem_size;" : "=r"(bytes));
    return bytes;
#endif
}

// ================================================================ arithmetic

// Number of `step`-deep steps in a range of `length` elements, zero when it is empty; written
// so that nothing overflows.
DEVICE_INLINE int k_steps(int length, int step) { return length > 0 ? (length - 1) / step + 1 : 0; }

// Division by a run-time constant d >= 1 with a multiply, an add and a shift (Granlund
// and Montgomery's round-up method): with l = ceil(log2 d) and
// mul = floor(2^32 · (2^l − d) / d) + 1, n / d = (umulhi(n, mul) + n) >> l for every
// n < 2^31 (the sum then cannot overflow). d = 1 and powers of two need no special case
// (mul = 1). A block sets its divisors up once in shared memory (make_fast_div costs
// about a hundred instructions); a division then costs three instead of about twenty.
struct FastDiv {
    unsigned mul, shift;
};

DEVICE_INLINE FastDiv make_fast_div(int divisor) {
    const unsigned d = (unsigned)divisor;
    const unsigned l = 32 - __clz((int)(d - 1));  // __clz(0) = 32, so l = 0 for d = 1
    // 2^32 · (2^l − d) / d by shift-and-subtract long division over the dividend's low 32
    // bits (all zero); its high word 2^l − d is below d, so the quotient fits 32 bits, and
    // rem < d <= 2^31 never overflows when doubled.
    unsigned rem = (unsigned)((1ull << l) - d), quotient = 0;
#pragma unroll 1
    for (int bit = 0; bit < 32; ++bit) {
        rem <<= 1;
        quotient <<= 1;
        if (rem >= d) {
            rem -= d;
            quotient |= 1u;
        }
    }
    return FastDiv{quotient + 1, l};
}

DEVICE_INLINE unsigned fast_div(const FastDiv& f, unsigned n) {
    return ((unsigned)(((unsigned long long)n * f.mul) >> 32) + n) >> f.shift;
}

// ================================================================ float and double alike

DEVICE_INLINE float sqrt_(float v) { return sqrtf(v); }
DEVICE_INLINE double sqrt_(double v) { return sqrt(v); }

template <typename T> DEVICE_INLINE T infinity();
template <> DEVICE_INLINE float infinity<float>() { return __int_as_float(0x7f800000); }
template <> DEVICE_INLINE double infinity<double>() { return __longlong_as_double(0x7ff0000000000000ll); }
template <typename T> DEVICE_INLINE T quiet_nan();
template <> DEVICE_INLINE float quiet_nan<float>() { return __int_as_float(0x7fc00000); }
template <> DEVICE_INLINE double quiet_nan<double>() { return __longlong_as_double(0x7ff8000000000000ll); }

// ================================================================ memory

// 16 bytes of T, loaded and stored with one vector instruction.
template <typename T>
struct alignas(16) Pack {
    static constexpr int N = 16 / sizeof(T);
    T v[N];
};

DEVICE_INLINE bool aligned16(const void* p) { return (reinterpret_cast<unsigned long long>(p) & 15ull) == 0; }

// Σ_{z < slices} partial[z · total + i], in order: the split-K reductions add their slices
// deterministically.
DEVICE_INLINE float sum_of_slices(const float* __restrict__ partial, int slices, size_t total, size_t i) {
    float sum = 0.0f;
    for (int z = 0; z < slices; ++z) sum += partial[z * total + i];
    return sum;
}
