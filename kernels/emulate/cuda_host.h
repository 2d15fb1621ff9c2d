// cuda_host.h: the CUDA vocabulary our kernels use, for compiling kernels/*.cu with the host C++
// compiler (force-included with `g++ -include`). See kernels/README.md, "Emulation".
//
// The threads of a block run as cooperative fibers in one OS thread (runtime.cpp): a thread runs
// until it reaches __syncthreads, a warp collective or its end, so those are real rendezvous
// points. Blocks run one after another, so `__shared__` variables can be ordinary static storage,
// which the runtime poisons (fills with 0xff: NaN) at the start of every block.
// Everything here is the emulator's; the kernels are compiled unchanged, apart from the few
// inline-PTX wrappers that call the host implementations below under CNNKIT_EMULATION.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#define CNNKIT_EMULATION 1
// The kernels take their sm_80+ paths (TF32 tensor cores, cp.async) as on an H100.
#define __CUDA_ARCH__ 900

// ---------------------------------------------------------------- keywords

#define __global__ __attribute__((visibility("default")))
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static
#define DYNAMIC_SHARED(type, name) type* const name = reinterpret_cast<type*>(cnnkit_emulator::dynamic_shared())

// ---------------------------------------------------------------- vector types

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
struct __align__(8) float2 {
    float x, y;
};
struct __align__(16) float4 {
    float x, y, z, w;
};
struct __align__(16) double2 {
    double x, y;
};
struct __align__(16) int4 {
    int x, y, z, w;
};
struct __align__(8) int2 {
    int x, y;
};
inline float2 make_float2(float x, float y) { return float2{x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline double2 make_double2(double x, double y) { return double2{x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }
inline int2 make_int2(int x, int y) { return int2{x, y}; }

// ---------------------------------------------------------------- the runtime (runtime.cpp)

#pragma GCC visibility push(default)
namespace cnnkit_emulator {

struct ThreadState {
    uint3 index;  // threadIdx
    unsigned linear;  // x + y·Dx + z·Dx·Dy
};

extern ThreadState* current;  // the fiber running now
extern uint3 block_index;
extern dim3 block_dim, grid_dim;

void syncthreads(const char* file, int line);
// Exchanges `bytes` (<= 64) of each lane of `mask` within the calling warp: returns when every
// lane of the mask has arrived, with lane l's value at all[l · bytes].
void warp_exchange(unsigned mask, const void* mine, unsigned bytes, void* all, const char* what);
[[noreturn]] void trap(const char* what);
void* dynamic_shared();
unsigned dynamic_shared_size();
void cp_async(void* shared_dst, const void* global_src, unsigned bytes, unsigned src_bytes);
void cp_async_commit();
void cp_async_wait(int pending);
void mma_m16n8k8_tf32(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]);

inline unsigned lane_id() { return current->linear % 32; }

}  // namespace cnnkit_emulator
#pragma GCC visibility pop

#define threadIdx (cnnkit_emulator::current->index)
#define blockIdx (cnnkit_emulator::block_index)
#define blockDim (cnnkit_emulator::block_dim)
#define gridDim (cnnkit_emulator::grid_dim)
#define warpSize 32

// A macro, so that a divergent barrier is reported with the lines each thread waits at.
#define __syncthreads() cnnkit_emulator::syncthreads(__FILE__, __LINE__)
[[noreturn]] inline void __trap() { cnnkit_emulator::trap("__trap()"); }

// ---------------------------------------------------------------- warp collectives

// __shfl_*_sync: every lane of `mask` must take part, and a lane may only read a lane of the mask.
template <typename T>
inline T cnnkit_shuffle(unsigned mask, T value, int source, int width, const char* what) {
    static_assert(sizeof(T) <= 8, "shuffles move 4 or 8 bytes");
    T all[32];
    cnnkit_emulator::warp_exchange(mask, &value, sizeof(T), all, what);
    const int lane = (int)cnnkit_emulator::lane_id();
    const int base = lane & ~(width - 1);
    if (source < base || source >= base + width) return value;  // outside the segment: own value
    if (!(mask >> source & 1u)) {
        char message[160];
        std::snprintf(message, sizeof message, "%s: lane %d reads lane %d, which is not in the mask 0x%08x", what,
                      lane, source, mask);
        cnnkit_emulator::trap(message);
    }
    return all[source];
}

template <typename T>
inline T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = 32) {
    return cnnkit_shuffle(mask, value, (int)cnnkit_emulator::lane_id() ^ lane_mask, width, "__shfl_xor_sync");
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T value, unsigned delta, int width = 32) {
    return cnnkit_shuffle(mask, value, (int)(cnnkit_emulator::lane_id() + delta), width, "__shfl_down_sync");
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T value, unsigned delta, int width = 32) {
    const int lane = (int)cnnkit_emulator::lane_id();
    const int source = (lane & (width - 1)) >= (int)delta ? lane - (int)delta : lane;
    return cnnkit_shuffle(mask, value, source, width, "__shfl_up_sync");
}
template <typename T>
inline T __shfl_sync(unsigned mask, T value, int source, int width = 32) {
    const int lane = (int)cnnkit_emulator::lane_id();
    return cnnkit_shuffle(mask, value, (lane & ~(width - 1)) + (source & (width - 1)), width, "__shfl_sync");
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    char unused[32];
    cnnkit_emulator::warp_exchange(mask, unused, 1, unused, "__syncwarp");
}

// ---------------------------------------------------------------- intrinsics

template <typename T>
inline T __ldg(const T* p) { return *p; }

inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }

template <typename To, typename From>
inline To cnnkit_bit_cast(From from) {
    static_assert(sizeof(To) == sizeof(From), "bit casts keep the size");
    To to;
    std::memcpy(&to, &from, sizeof to);
    return to;
}
inline float __int_as_float(int v) { return cnnkit_bit_cast<float>(v); }
inline float __uint_as_float(unsigned v) { return cnnkit_bit_cast<float>(v); }
inline int __float_as_int(float v) { return cnnkit_bit_cast<int>(v); }
inline unsigned __float_as_uint(float v) { return cnnkit_bit_cast<unsigned>(v); }
inline double __longlong_as_double(long long v) { return cnnkit_bit_cast<double>(v); }
inline long long __double_as_longlong(double v) { return cnnkit_bit_cast<long long>(v); }

// CUDA's min and max overloads for the integer and floating types.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }
inline float rsqrtf(float v) { return 1.0f / std::sqrt(v); }
inline double rsqrt(double v) { return 1.0 / std::sqrt(v); }

// ---------------------------------------------------------------- inline-PTX stand-ins

// The generic address of shared memory is its host address here.
inline unsigned long long __cvta_generic_to_shared(const void* p) { return reinterpret_cast<unsigned long long>(p); }

// cvt.rna.tf32.f32: round to 10 mantissa bits, ties away from zero; the low 13 bits come out zero.
inline unsigned cnnkit_emulated_cvt_rna_tf32(float x) {
    unsigned bits = __float_as_uint(x);
    if ((bits & 0x7f800000u) == 0x7f800000u) return (bits & 0x007fffffu) ? 0x7fffffffu : bits;  // NaN, inf
    return (bits + 0x1000u) & 0xffffe000u;
}
