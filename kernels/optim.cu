// optim.cu: fused multi-tensor optimizer updates (SGD with momentum, Adam/AMSGrad/AdamW)
// for cnnkit: ONE launch updates every parameter of a model, in place.
//
// Inputs, built on the host (cnnkit/cuda/optim.py):
//   pointers     uint64 (tensors, lists): row t holds the device addresses of tensor t's
//                arrays, in the order of the op's lists (SGD: p, g[, v]; Adam: p, g, m,
//                v[, v̂]); all of one dtype, C-contiguous, of sizes[t] elements.
//   sizes        int64 (tensors,).
//   block_tensor int32 (blocks,) and block_start int64 (blocks,): block b updates elements
//                [block_start[b], min(block_start[b] + chunk, sizes[t])) of tensor
//                t = block_tensor[b]; chunk is a multiple of 4.
// Launch: a 1-D grid of exactly `blocks` blocks, at most 256 threads each
// (__launch_bounds__(256, 2): up to 128 registers, which AMSGrad in double needs to hold
// five 16-byte vectors without spilling). Every element
// belongs to exactly one block, so no two threads touch the same element.
// Each block uses 16-byte vector loads when all of its tensor's arrays are 16-byte
// aligned (chunk starts keep that alignment), scalar loads otherwise and for the tail.
// The learning rate, the step's bias correction and the other hyperparameters arrive as
// by-value scalars (double, rounded to the parameters' dtype as NumPy does): a CUDA graph
// capturing this launch would freeze them, so graph replay would need them in device
// memory instead.
// The gradients are only read. The arithmetic follows the NumPy references
// (cnnkit/optimizers/sgd.py, adam.py) operation by operation.

#include "common.cuh"

// Runs update(e[0..LISTS-1]) on every element of this block's chunk, where e[k] is a
// reference to the element of list k (so the update writes in place).
template <typename T, int LISTS, typename Update>
DEVICE_INLINE void for_chunk(const unsigned long long* __restrict__ pointers, const long long* __restrict__ sizes,
                          const int* __restrict__ block_tensor, const long long* __restrict__ block_start,
                          long long chunk, Update update) {
    constexpr int V = Pack<T>::N;
    const int t = block_tensor[blockIdx.x];
    const long long start = block_start[blockIdx.x];
    const long long size = sizes[t];
    const long long end = start + chunk < size ? start + chunk : size;
    T* arrays[LISTS];
    unsigned long long any_address = 0;
#pragma unroll
    for (int k = 0; k < LISTS; ++k) {
        arrays[k] = reinterpret_cast<T*>(pointers[(long long)t * LISTS + k]);
        any_address |= pointers[(long long)t * LISTS + k];
    }
    long long scalar_from = start;
    if ((any_address & 15ull) == 0) {
        const long long vector_end = start + (end - start) / V * V;
        for (long long e = start + (long long)threadIdx.x * V; e < vector_end; e += (long long)blockDim.x * V) {
            Pack<T> packs[LISTS];
#pragma unroll
            for (int k = 0; k < LISTS; ++k) packs[k] = *reinterpret_cast<const Pack<T>*>(arrays[k] + e);
#pragma unroll
            for (int lane = 0; lane < V; ++lane) {
                T values[LISTS];
#pragma unroll
                for (int k = 0; k < LISTS; ++k) values[k] = packs[k].v[lane];
                update(values);
#pragma unroll
                for (int k = 0; k < LISTS; ++k) packs[k].v[lane] = values[k];
            }
#pragma unroll
            for (int k = 0; k < LISTS; ++k) {
                if (k != 1) *reinterpret_cast<Pack<T>*>(arrays[k] + e) = packs[k];  // list 1: the gradient
            }
        }
        scalar_from = vector_end;
    }
    for (long long e = scalar_from + threadIdx.x; e < end; e += blockDim.x) {
        T values[LISTS];
#pragma unroll
        for (int k = 0; k < LISTS; ++k) values[k] = arrays[k][e];
        update(values);
#pragma unroll
        for (int k = 0; k < LISTS; ++k) {
            if (k != 1) arrays[k][e] = values[k];
        }
    }
}

// SGD, per element (values = p, g[, v]):
//   p ← p · decay                     (decay = 1 − lr · weight_decay)
//   no momentum:  p ← p − lr · g
//   momentum:     v ← momentum · v − lr · g
//                 p ← p + v                          (plain)
//                 p ← p − lr · g + momentum · v      (Nesterov, with the new v)
template <typename T, int LISTS>
DEVICE_INLINE void sgd(const unsigned long long* __restrict__ pointers, const long long* __restrict__ sizes,
                    const int* __restrict__ block_tensor, const long long* __restrict__ block_start, long long chunk,
                    double lr, double decay, double momentum, int nesterov) {
    const T lr_ = (T)lr, decay_ = (T)decay, momentum_ = (T)momentum;
    for_chunk<T, LISTS>(pointers, sizes, block_tensor, block_start, chunk, [&](T (&e)[LISTS]) {
        T p = e[0] * decay_;
        const T scaled = e[1] * lr_;
        if (LISTS == 2) {
            p = p - scaled;
        } else {
            const T v = e[LISTS - 1] * momentum_ - scaled;
            e[LISTS - 1] = v;
            p = nesterov ? (p - scaled) + momentum_ * v : p + v;
        }
        e[0] = p;
    });
}

// Adam / AMSGrad / AdamW, per element (values = p, g, m, v[, v̂]):
//   p ← p · decay                     (decay = 1 − lr · weight_decay)
//   m ← β₁ m + (1 − β₁) g
//   v ← β₂ v + (1 − β₂) g²
//   AMSGrad: v̂ ← max(v̂, v) (NaN kept) and v̂ replaces v below
//   p ← p − (m / (√v + ε)) · lr_t,   lr_t = lr · √(1 − β₂ᵗ) / (1 − β₁ᵗ) (from the host)
template <typename T, int LISTS>
DEVICE_INLINE void adam(const unsigned long long* __restrict__ pointers, const long long* __restrict__ sizes,
                     const int* __restrict__ block_tensor, const long long* __restrict__ block_start, long long chunk,
                     double lr_t, double decay, double beta1, double one_minus_beta1, double beta2,
                     double one_minus_beta2, double eps) {
    const T lr_t_ = (T)lr_t, decay_ = (T)decay, b1 = (T)beta1, c1 = (T)one_minus_beta1;
    const T b2 = (T)beta2, c2 = (T)one_minus_beta2, eps_ = (T)eps;
    for_chunk<T, LISTS>(pointers, sizes, block_tensor, block_start, chunk, [&](T (&e)[LISTS]) {
        const T g = e[1];
        const T m = e[2] * b1 + g * c1;
        const T v = e[3] * b2 + (g * g) * c2;
        T second = v;
        if (LISTS == 5) {
            const T vhat = e[4];
            second = (vhat > v || vhat != vhat) ? vhat : v;
            e[4] = second;
        }
        e[0] = e[0] * decay_ - (m / (sqrt_(second) + eps_)) * lr_t_;
        e[2] = m;
        e[3] = v;
    });
}

#define OPT_TABLE_PARAMS                                                                  \
    const unsigned long long* __restrict__ pointers, const long long* __restrict__ sizes, \
        const int* __restrict__ block_tensor, const long long* __restrict__ block_start, long long chunk
#define OPT_TABLE_ARGS pointers, sizes, block_tensor, block_start, chunk

#define SGD_ENTRY(NAME, T, LISTS)                                                                       \
    extern "C" __global__ void __launch_bounds__(256, 2)                                                \
        NAME(OPT_TABLE_PARAMS, double lr, double decay, double momentum, int nesterov) {                \
        sgd<T, LISTS>(OPT_TABLE_ARGS, lr, decay, momentum, nesterov);                                   \
    }
#define ADAM_ENTRY(NAME, T, LISTS)                                                                      \
    extern "C" __global__ void __launch_bounds__(256, 2)                                                \
        NAME(OPT_TABLE_PARAMS, double lr_t, double decay, double beta1, double one_minus_beta1, double beta2, \
             double one_minus_beta2, double eps) {                                                      \
        adam<T, LISTS>(OPT_TABLE_ARGS, lr_t, decay, beta1, one_minus_beta1, beta2, one_minus_beta2, eps); \
    }

// Lists: SGD p, g (2) or p, g, v (3); Adam p, g, m, v (4), AMSGrad p, g, m, v, v̂ (5).
SGD_ENTRY(sgd_update_f32, float, 2)
SGD_ENTRY(sgd_update_f64, double, 2)
SGD_ENTRY(sgd_momentum_update_f32, float, 3)
SGD_ENTRY(sgd_momentum_update_f64, double, 3)
ADAM_ENTRY(adam_update_f32, float, 4)
ADAM_ENTRY(adam_update_f64, double, 4)
ADAM_ENTRY(amsgrad_update_f32, float, 5)
ADAM_ENTRY(amsgrad_update_f64, double, 5)
