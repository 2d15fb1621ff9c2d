// Kernels with deliberate faults, and one mma.sync tile, for the emulator's own tests
// (tests/cuda/test_emulator.py): compiled by the emulator only, never part of cnnkit.

// Half of the block waits at a barrier the other half never reaches.
extern "C" __global__ void divergent_barrier(float* out) {
    if (threadIdx.x < blockDim.x / 2) __syncthreads();
    out[threadIdx.x] = 1.0f;
}

// Every thread reaches a barrier, but odd and even threads reach different ones.
extern "C" __global__ void barriers_on_two_lines(float* out) {
    if (threadIdx.x % 2) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    out[threadIdx.x] = 1.0f;
}

// out[i] = in[i] + in[i ^ 1] within each pair of lanes; only the first half of the warp takes
// part, with the mask given.
extern "C" __global__ void half_warp_shuffle(const float* in, float* out, unsigned mask) {
    float v = in[threadIdx.x];
    if (threadIdx.x < 16) v += __shfl_xor_sync(mask, v, 1);
    out[threadIdx.x] = v;
}

// Thread i writes out[i + offset]: with more threads than elements, past the end.
extern "C" __global__ void write_at_offset(float* out, int offset) { out[threadIdx.x + offset] = 2.0f; }

// out[i] = in[i + offset]: reads past the end for offset > 0.
extern "C" __global__ void read_at_offset(const float* in, float* out, int offset) {
    out[threadIdx.x] = in[(int)threadIdx.x + offset];
}

// Writes `floats` floats of dynamic shared memory, then copies them out.
extern "C" __global__ void fill_dynamic_shared(float* out, int floats) {
#ifndef DYNAMIC_SHARED
#define DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif
    DYNAMIC_SHARED(float, shared);
    for (int i = threadIdx.x; i < floats; i += blockDim.x) shared[i] = (float)i;
    __syncthreads();
    for (int i = threadIdx.x; i < floats; i += blockDim.x) out[i] = shared[i];
}

// D = A·B for one 16×8×8 tile with mma.sync: A 16×8 and B 8×8 row-major, D 16×8. Each lane
// loads its fragments by the PTX ISA's tables for m16n8k8 .tf32 (g = lane / 4, t = lane % 4):
// a0 (g, t), a1 (g + 8, t), a2 (g, t + 4), a3 (g + 8, t + 4); b0 (t, g), b1 (t + 4, g);
// d0 (g, 2t), d1 (g, 2t + 1), d2 (g + 8, 2t), d3 (g + 8, 2t + 1).
extern "C" __global__ void mma_tile(const float* A, const float* B, float* D) {
    const int lane = threadIdx.x, g = lane / 4, t = lane % 4;
    const unsigned a[4] = {__float_as_uint(A[g * 8 + t]), __float_as_uint(A[(g + 8) * 8 + t]),
                           __float_as_uint(A[g * 8 + t + 4]), __float_as_uint(A[(g + 8) * 8 + t + 4])};
    const unsigned b[2] = {__float_as_uint(B[t * 8 + g]), __float_as_uint(B[(t + 4) * 8 + g])};
    float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    cnnkit_emulator::mma_m16n8k8_tf32(d, a, b);  // what mma_tf32 in gemm.cu calls in emulation
    D[g * 8 + 2 * t] = d[0];
    D[g * 8 + 2 * t + 1] = d[1];
    D[(g + 8) * 8 + 2 * t] = d[2];
    D[(g + 8) * 8 + 2 * t + 1] = d[3];
}
