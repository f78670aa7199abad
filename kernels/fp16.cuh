// What both mixed-precision kernels (mixed.cu, mixed_sm90.cu) do to bring a
// tile's data into fp16: round, find the tile's largest magnitude, and the
// power of two that scales it (mixed::scale_for on the host); and the
// block-wide maximum, which mixed.cu's error bound takes too.

#pragma once

__device__ __forceinline__ unsigned short to_half(float v)
{
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    return h;
}

// 2^(14 - ceil(log2(max))): max times it lies in (2^13, 2^14]; 1 for 0.
__device__ __forceinline__ float scale_for(float max)
{
    if (!(max > 0.0f) || isinf(max))
        return 1.0f;
    const unsigned bits = __float_as_uint(max);
    const int e = (int)((bits >> 23) & 0xff) - 127;
    const int ceil_log2 = (bits & 0x7fffff) ? e + 1 : e;
    return ldexpf(1.0f, 14 - ceil_log2);
}

// Largest of every thread's v (each at least 0), for the whole block of
// THREADS threads (every thread gets it); scratch holds one float per warp.
template <int THREADS>
__device__ float block_max(float v, float *scratch)
{
    for (int d = 16; d > 0; d /= 2)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, d));
    __syncthreads();
    if (threadIdx.x % 32 == 0)
        scratch[threadIdx.x / 32] = v;
    __syncthreads();
    float m = 0.0f;
    for (int w = 0; w < THREADS / 32; w++)
        m = fmaxf(m, scratch[w]);
    return m;
}

// Largest |x[i] - o| over [a, b), for the whole block of THREADS threads
// (every thread gets it); scratch holds one float per warp.
template <int THREADS>
__device__ float block_max_abs(const float *__restrict__ x, long long a, long long b, float o,
                               float *scratch)
{
    float v = 0.0f;
    for (long long i = a + threadIdx.x; i < b; i += THREADS)
        v = fmaxf(v, fabsf(x[i] - o));
    return block_max<THREADS>(v, scratch);
}
