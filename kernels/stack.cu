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
// The inner product (the loop over template samples, staged through shared
// memory CHUNK samples at a time) is the part a tensor-core formulation
// (templates x Hankel view of the data, as a GEMM) will replace; the
// normalization, clipping and stacking around it stay.

#define THREADS 256
// Lags per thread. A thread's lags are THREADS apart, so that at every step
// the threads of a warp read consecutive shared-memory words (no bank
// conflicts) while all of them read the same template sample (a broadcast).
#define PER_THREAD 4
#define TILE (THREADS * PER_THREAD)
#define CHUNK 128

// x:       channels x n data samples (gaps hold zeros; inv masks them)
// inv:     channels x n_lags moving 1/std of each window, 0 where the window
//          is flat or touches a gap
// waves:   template channels x m normalized waveforms, templates' channels
//          contiguous; first[t] .. first[t + 1] are template t's
// chan, pad, weight: per template channel: data channel, moveout, weight
// max_pad: per template; with zero_tail, lags k >= n_lags - max_pad (where
//          some channel has no window) are written as 0, as the host does
// stacks:  templates x n_lags
extern "C" __global__ void __launch_bounds__(THREADS)
correlate_stack(const float *__restrict__ x, const float *__restrict__ inv,
                long long n, long long n_lags, int m,
                const float *__restrict__ waves, const int *__restrict__ chan,
                const int *__restrict__ pad, const float *__restrict__ weight,
                const int *__restrict__ first, const int *__restrict__ max_pad,
                int zero_tail, float *__restrict__ stacks)
{
    __shared__ float xs[TILE + CHUNK - 1];
    __shared__ float ts[CHUNK];
    const int t = blockIdx.y;
    const long long k0 = (long long)blockIdx.x * TILE;
    float sum[PER_THREAD];
#pragma unroll
    for (int r = 0; r < PER_THREAD; r++)
        sum[r] = 0.0f;

    for (int c = first[t]; c < first[t + 1]; c++) {
        const float *xc = x + (long long)chan[c] * n;
        const float *ic = inv + (long long)chan[c] * n_lags;
        const float *tc = waves + (long long)c * m;
        // The channel's lag for the tile's first stack lag.
        const long long j0 = k0 + pad[c];
        float acc[PER_THREAD];
#pragma unroll
        for (int r = 0; r < PER_THREAD; r++)
            acc[r] = 0.0f;
        for (int i0 = 0; i0 < m; i0 += CHUNK) {
            const int len = min(CHUNK, m - i0);
            // Every thread is done with the previous chunk before it is
            // overwritten.
            __syncthreads();
            // Lag j0 + s needs samples j0 + i0 + s .. + len - 1; the tile
            // needs TILE + len - 1 of them. Past the data: zeros (those lags
            // are not kept).
            for (int s = threadIdx.x; s < TILE + len - 1; s += THREADS) {
                const long long g = j0 + i0 + s;
                xs[s] = g < n ? xc[g] : 0.0f;
            }
            for (int s = threadIdx.x; s < len; s += THREADS)
                ts[s] = tc[i0 + s];
            __syncthreads();
            for (int i = 0; i < len; i++) {
                const float w = ts[i];
#pragma unroll
                for (int r = 0; r < PER_THREAD; r++)
                    acc[r] = fmaf(w, xs[threadIdx.x + r * THREADS + i], acc[r]);
            }
        }
        const float wc = weight[c];
#pragma unroll
        for (int r = 0; r < PER_THREAD; r++) {
            const long long j = j0 + threadIdx.x + r * THREADS;
            if (j < n_lags)
                sum[r] += wc * fminf(fmaxf(acc[r] * ic[j], -1.0f), 1.0f);
        }
    }

    float *st = stacks + (long long)t * n_lags;
#pragma unroll
    for (int r = 0; r < PER_THREAD; r++) {
        const long long k = k0 + threadIdx.x + r * THREADS;
        if (k < n_lags)
            st[k] = (zero_tail && k + max_pad[t] >= n_lags) ? 0.0f : sum[r];
    }
}
