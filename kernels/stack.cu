// Normalized cross-correlation fused with the moveout stack, in fp32.
//
// One block computes TILE consecutive lags of one template's stacked trace:
// for each of the template's channels it correlates the channel's waveform
// with the data, normalizes and clips the result, and adds it to the lags'
// running sums in registers, so per-channel CC never reaches global memory.
//
//   stack[t][k] = sum_c w_c * clip(inv_c[j] * sum_i wave_c[i] * x_c[j + i], +-1)
//   with j = k + pad_c, for j < n_lags (later lags of a channel add nothing)
//
// Inner product: register blocking. Each thread computes LAGS consecutive
// lags. The data of the tile and CHUNK template samples are staged in shared
// memory; for every 4 template samples a thread loads the 4 samples (one
// float4, the same address for the whole warp: a broadcast) and one float4 of
// data that slides its window of LAGS + 4 data samples (four float4
// registers) on by 4, then does 4 * LAGS FMAs: 48 FMAs per 2 shared loads.
// The window's four registers take turns as the one reloaded, so after
// LAGS + 4 = STEP template samples they are back in place and the loop body
// (STEP samples) needs no register moves.
//
// Each lag's sum is formed in template order, one fmaf per sample, the same
// order as a sequential loop; the template is padded with zeros to a multiple
// of STEP (adding 0 * x, x finite, changes nothing).
//
// Before its data are staged, a channel's tile is shifted by a constant (see
// data_offset): data on a large offset lose accuracy in fp32 sums (each
// product carries the offset; the sum cancels it only to the rounding of the
// terms), while a normalized template channel sums to zero, so
// sum_i wave[i] * (x[j + i] - o) = sum_i wave[i] * x[j + i] exactly in real
// arithmetic.
//
// The inner product is the part a tensor-core formulation (templates x
// Hankel view of the data, as a GEMM) will replace; the normalization,
// clipping and stacking around it stay.
//
// src/correlate/kernel_model.rs executes this kernel's arithmetic on the CPU
// and checks that every #define here equals the Rust constant of the launch.

#include "offset.cuh"

#define THREADS 256
// Consecutive lags per thread. LAGS / 4 is odd, so the float4 data loads of
// 8 consecutive threads (one shared-memory phase of a 128-bit load) start
// LAGS * 4 bytes apart on distinct 16-byte bank groups: no bank conflicts.
#define LAGS 12
#define TILE (THREADS * LAGS)
// Template samples per pass of the inner loop: one turn of the window's
// float4 registers.
#define STEP 16
// Template samples staged in shared memory at a time (a multiple of STEP).
#define CHUNK 256

static_assert(LAGS % 4 == 0 && (LAGS / 4) % 2 == 1, "LAGS: float4 window, no bank conflicts");
static_assert(STEP == LAGS + 4 && STEP == 16,
              "a pass (written out below) is one turn of a window of four float4");
static_assert(CHUNK % STEP == 0, "a chunk is whole passes");

// 4 template samples (w) times the window d = (a, b, c, d) into LAGS sums:
// acc[r] += w[s] * d[r + s], s = 0..3 in order.
__device__ __forceinline__ void fma_group(float acc[LAGS], float4 w, float4 a, float4 b,
                                          float4 c, float4 d)
{
    const float x[16] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w,
                         c.x, c.y, c.z, c.w, d.x, d.y, d.z, d.w};
    const float t[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
    for (int s = 0; s < 4; s++)
#pragma unroll
        for (int r = 0; r < LAGS; r++)
            acc[r] = fmaf(t[s], x[r + s], acc[r]);
}

// x:       channels x n data samples (gaps hold zeros; inv masks them)
// inv:     channels x n_lags moving 1/std of each window, 0 where the window
//          is flat or touches a gap
// waves:   template channels x m normalized waveforms, templates' channels
//          contiguous; first[t] .. first[t + 1] are template t's
// chan, pad, weight: per template channel: data channel, moveout, weight
// max_pad: per template; with zero_tail, lags k >= n_lags - max_pad (where
//          some channel has no window) are written as 0, as the host does
// stacks:  templates x n_lags
//
// At least 3 blocks per SM: ptxas then gives the kernel the 72 registers it
// needs (with the default it takes 64 and spills); 24 warps per SM are
// plenty for an inner loop of independent FMAs.
extern "C" __global__ void __launch_bounds__(THREADS, 3)
correlate_stack(const float *__restrict__ x, const float *__restrict__ inv,
                long long n, long long n_lags, int m,
                const float *__restrict__ waves, const int *__restrict__ chan,
                const int *__restrict__ pad, const float *__restrict__ weight,
                const int *__restrict__ first, const int *__restrict__ max_pad,
                int zero_tail, float *__restrict__ stacks)
{
    // Data for lags j0 .. j0 + TILE - 1 and template samples i0 .. i0 + CHUNK
    // - 1; the last float4 of a window may reach one sample further.
    __shared__ __align__(16) float xs[TILE + CHUNK];
    __shared__ __align__(16) float ts[CHUNK];
    __shared__ float offset;
    const int t = blockIdx.y;
    const long long k0 = (long long)blockIdx.x * TILE;
    // This thread's first lag in the tile.
    const int l0 = threadIdx.x * LAGS;
    float sum[LAGS];
#pragma unroll
    for (int r = 0; r < LAGS; r++)
        sum[r] = 0.0f;

    for (int c = first[t]; c < first[t + 1]; c++) {
        const float *xc = x + (long long)chan[c] * n;
        const float *ic = inv + (long long)chan[c] * n_lags;
        const float *tc = waves + (long long)c * m;
        // The channel's lag for the tile's first stack lag.
        const long long j0 = k0 + pad[c];
        // Nobody reads the previous channel's offset any more (the last
        // chunk's second barrier is behind); the next barrier publishes it.
        if (threadIdx.x < 32) {
            const float o = data_offset(xc, j0, min(j0 + TILE + m - 1, n));
            if (threadIdx.x == 0)
                offset = o;
        }
        float acc[LAGS];
#pragma unroll
        for (int r = 0; r < LAGS; r++)
            acc[r] = 0.0f;
        for (int i0 = 0; i0 < m; i0 += CHUNK) {
            const int len = min(CHUNK, m - i0);
            // Template samples of this chunk, padded with zeros to whole passes.
            const int padded = (len + STEP - 1) / STEP * STEP;
            // Every thread is done with the previous chunk before it is
            // overwritten.
            __syncthreads();
            const float o = offset;
            // Lag j0 + s needs samples j0 + i0 + s .. + padded - 1. Past the
            // data: zeros (those lags are not kept).
            for (int s = threadIdx.x; s < TILE + padded; s += THREADS) {
                const long long g = j0 + i0 + s;
                xs[s] = g < n ? xc[g] - o : 0.0f;
            }
            for (int s = threadIdx.x; s < padded; s += THREADS)
                ts[s] = s < len ? tc[i0 + s] : 0.0f;
            __syncthreads();
            const float4 *xp = reinterpret_cast<const float4 *>(xs + l0);
            const float4 *tp = reinterpret_cast<const float4 *>(ts);
            // The window for template samples 4q .. 4q + 3: data l0 + 4q ..
            // l0 + 4q + LAGS + 3 in (a, b, d, e). Each group of 4 samples
            // first reloads the register whose data no lag needs any more.
            // Two passes per loop test; shared-memory addresses are the
            // pointers plus constant offsets.
            float4 a = xp[0], b = xp[1], d = xp[2], e;
#pragma unroll 2
            for (int q = 0; q < padded / 4; q += STEP / 4) {
                e = xp[q + 3];
                fma_group(acc, tp[q], a, b, d, e);
                a = xp[q + 4];
                fma_group(acc, tp[q + 1], b, d, e, a);
                b = xp[q + 5];
                fma_group(acc, tp[q + 2], d, e, a, b);
                d = xp[q + 6];
                fma_group(acc, tp[q + 3], e, a, b, d);
            }
        }
        const float wc = weight[c];
        // This thread's lags of the channel before n_lags: the first `keep`.
        const long long j = j0 + l0;
        const int keep = (int)max(0LL, min((long long)LAGS, n_lags - j));
#pragma unroll
        for (int r = 0; r < LAGS; r++)
            if (r < keep)
                sum[r] = fmaf(wc, fminf(fmaxf(acc[r] * ic[j + r], -1.0f), 1.0f), sum[r]);
    }

    // Lags k0 + l0 + r: the first `keep` exist, and from `live` on they are
    // zeroed with zero_tail.
    const long long k = k0 + l0;
    const int keep = (int)max(0LL, min((long long)LAGS, n_lags - k));
    const int live = zero_tail ? (int)max(0LL, min((long long)LAGS, n_lags - max_pad[t] - k)) : LAGS;
    float *st = stacks + (long long)t * n_lags + k;
#pragma unroll
    for (int r = 0; r < LAGS; r++)
        if (r < keep)
            st[r] = r < live ? sum[r] : 0.0f;
}
