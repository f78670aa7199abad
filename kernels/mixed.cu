// Normalized cross-correlation fused with the moveout stack on tensor cores:
// fp16 inputs, fp32 accumulation (wmma, m16n16k16, from sm_70). It screens:
// the host recomputes in fp32 every lag within the error bound of the
// threshold (src/correlate/screen.rs), so detections are the fp32 path's.
//
// One block computes MIXED_TILE consecutive stack lags of a group of up to
// MIXED_GROUP templates (src/correlate/mixed.rs forms the groups). For each
// of the group's channel entries (one data channel; each member's window
// there or none), the correlations of the members at the entry's data lags
// j0 .. j0 + DATA_LAGS - 1 (j0 = k0 + the smallest pad) are the product of
// the Hankel view of the data (lags x template samples) and the templates
// (template samples x members):
//
//   C[t][j] = sum_i x[j0 + j + i] * wave_t[i]
//
// A 16 x 16 fragment of a Hankel matrix cannot be loaded with wmma (its rows
// are one sample apart; the leading dimension must be a multiple of 8), but
// rows 16 lags apart can: in the copy of the data shifted by q, x[q + 16 r +
// i] is row-major with leading dimension 16. So the block stages SHIFTS = 16
// shifted fp16 copies of its data and fragment (q, row block b) holds lags
// q + 16 (16 b + r), r < 16: over q = 0..15 every lag once. Data are staged
// less a per-tile offset (offset.cuh) and times a power of two that puts
// their largest magnitude in (2^13, 2^14], so fp16 keeps 11 bits; the host
// scales each entry's templates likewise.
//
// The epilogue shifts each member by its pad (k = j - pad + smallest pad),
// multiplies by the moving 1/std of the window, clips to +-1, weights and
// adds to the member's stack lags in registers; per-channel correlations
// never reach global memory. It also adds up, per member, the bound on the
// error of its stack: sum over its channels of |weight| * coefficient * the
// largest ||x - o|| / ||x - mean|| over the tile's windows (the bound of
// src/correlate/mixed.rs), and raises the member's margin to it.
//
// src/correlate/mixed_model.rs executes this arithmetic on the CPU, and a
// test checks that every #define here equals the Rust constant.

#include "fp16.cuh"
#include "offset.cuh"

#define MIXED_THREADS 256
#define MIXED_GROUP 16
#define MIXED_TILE 1024
#define MIXED_SPREAD 256
#define MIXED_DATA_LAGS 1280
#define MIXED_SHIFTS 16
#define MIXED_CHUNK 128
#define FRAG 16

constexpr int WARPS = MIXED_THREADS / 32;
// Rows of a shifted copy's fragments, and their blocks of 16.
constexpr int ROWS = MIXED_DATA_LAGS / MIXED_SHIFTS;
constexpr int ROW_BLOCKS = ROWS / FRAG;
// Fragments (q, b) of the block, and of each warp.
constexpr int FRAGS = MIXED_SHIFTS * ROW_BLOCKS;
constexpr int FRAGS_PER_WARP = FRAGS / WARPS;
// fp16 samples of a shifted copy that a chunk's fragments read.
constexpr int COPY = MIXED_DATA_LAGS - FRAG + MIXED_CHUNK;
// Stack lags of each thread in the epilogue.
constexpr int LAGS_PER_THREAD = MIXED_TILE / MIXED_THREADS;

static_assert(MIXED_DATA_LAGS == MIXED_TILE + MIXED_SPREAD, "a tile and the spread of pads");
static_assert(ROWS % FRAG == 0 && FRAGS % WARPS == 0, "whole fragments per warp");
static_assert(MIXED_CHUNK % FRAG == 0 && MIXED_GROUP == FRAG, "one fragment of members");
static_assert((COPY * 2) % 32 == 0, "every shifted copy 256-bit aligned");
static_assert(MIXED_TILE % MIXED_THREADS == 0, "whole lags per thread");

// Dynamic shared memory: the shifted copies, reused for the products once
// the chunks are done, then the templates' chunk.
constexpr int COPIES_BYTES = MIXED_SHIFTS * COPY * 2;
constexpr int PRODUCTS_BYTES = MIXED_SHIFTS * MIXED_GROUP * ROWS * 4;
constexpr int UNION_BYTES = COPIES_BYTES > PRODUCTS_BYTES ? COPIES_BYTES : PRODUCTS_BYTES;
constexpr int TEMPLATES_BYTES = MIXED_GROUP * MIXED_CHUNK * 2;
// What the launch asks for (the kernel's opt-in maximum on sm_70 is 96 KiB).
constexpr int MIXED_SHARED_BYTES = UNION_BYTES + TEMPLATES_BYTES;
static_assert(MIXED_SHARED_BYTES <= 96 * 1024, "fits an sm_70 block");
static_assert(MIXED_SHARED_BYTES == 86016, "mixed::SHARED_BYTES, as the launch asks");

__device__ __forceinline__ unsigned shared_address(const void *p)
{
    return (unsigned)__cvta_generic_to_shared(p);
}

// acc += a (row-major, 16 lags 16 apart) x b (col-major, members), in fp32.
__device__ __forceinline__ void mma(float acc[8], const unsigned a[8], const unsigned b[8])
{
    asm volatile("wmma.mma.sync.aligned.row.col.m16n16k16.f32.f32 "
                 "{%0,%1,%2,%3,%4,%5,%6,%7}, {%8,%9,%10,%11,%12,%13,%14,%15}, "
                 "{%16,%17,%18,%19,%20,%21,%22,%23}, {%0,%1,%2,%3,%4,%5,%6,%7};"
                 : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3]), "+f"(acc[4]),
                   "+f"(acc[5]), "+f"(acc[6]), "+f"(acc[7])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(a[4]), "r"(a[5]), "r"(a[6]),
                   "r"(a[7]), "r"(b[0]), "r"(b[1]), "r"(b[2]), "r"(b[3]), "r"(b[4]), "r"(b[5]),
                   "r"(b[6]), "r"(b[7]));
}

__device__ __forceinline__ void load_a(unsigned a[8], const unsigned short *p)
{
    asm volatile("wmma.load.a.sync.aligned.row.m16n16k16.shared.f16 "
                 "{%0,%1,%2,%3,%4,%5,%6,%7}, [%8], %9;"
                 : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3]), "=r"(a[4]), "=r"(a[5]),
                   "=r"(a[6]), "=r"(a[7])
                 : "r"(shared_address(p)), "r"(FRAG));
}

__device__ __forceinline__ void load_b(unsigned b[8], const unsigned short *p)
{
    asm volatile("wmma.load.b.sync.aligned.col.m16n16k16.shared.f16 "
                 "{%0,%1,%2,%3,%4,%5,%6,%7}, [%8], %9;"
                 : "=r"(b[0]), "=r"(b[1]), "=r"(b[2]), "=r"(b[3]), "=r"(b[4]), "=r"(b[5]),
                   "=r"(b[6]), "=r"(b[7])
                 : "r"(shared_address(p)), "r"(MIXED_CHUNK));
}

// Element (r, t) of the fragment to p[t * ROWS + r].
__device__ __forceinline__ void store_c(float *p, const float acc[8])
{
    asm volatile("wmma.store.d.sync.aligned.col.m16n16k16.shared.f32 "
                 "[%0], {%1,%2,%3,%4,%5,%6,%7,%8}, %9;" ::"r"(shared_address(p)),
                 "f"(acc[0]), "f"(acc[1]), "f"(acc[2]), "f"(acc[3]), "f"(acc[4]), "f"(acc[5]),
                 "f"(acc[6]), "f"(acc[7]), "r"(ROWS)
                 : "memory");
}

// The products of one channel entry: staged chunk by chunk, each warp's
// fragments accumulated over the template, then stored to products[q][t][row]
// (the shifted copies' room; the caller reads them after a barrier).
__device__ void entry_products(const float *__restrict__ xc, long long n, long long j0, int mp,
                               float o, float sd, const unsigned short *__restrict__ waves,
                               unsigned short *copies, unsigned short *ts, float *products)
{
    const int warp = threadIdx.x / 32;
    float acc[FRAGS_PER_WARP][8];
#pragma unroll
    for (int f = 0; f < FRAGS_PER_WARP; f++)
#pragma unroll
        for (int v = 0; v < 8; v++)
            acc[f][v] = 0.0f;
    for (int i0 = 0; i0 < mp; i0 += MIXED_CHUNK) {
        __syncthreads();
        // copies[q][s] = x[j0 + i0 + q + s] - o, scaled, in fp16; 0 past the data.
        for (int e = threadIdx.x; e < MIXED_SHIFTS * COPY; e += MIXED_THREADS) {
            const int q = e / COPY, s = e % COPY;
            const long long g = j0 + i0 + q + s;
            copies[e] = to_half(g < n ? (xc[g] - o) * sd : 0.0f);
        }
        // ts[t][i]: the chunk of each member's window (the host scaled and
        // rounded them, with zeros past M and for members without one).
        for (int e = threadIdx.x; e < MIXED_GROUP * MIXED_CHUNK; e += MIXED_THREADS) {
            const int t = e / MIXED_CHUNK, i = e % MIXED_CHUNK;
            ts[e] = i0 + i < mp ? waves[(long long)t * mp + i0 + i] : 0;
        }
        __syncthreads();
        // The last chunk stops at mp (M rounded up to 16), not at a whole chunk.
        const int steps = min(MIXED_CHUNK, mp - i0) / FRAG;
        for (int kk = 0; kk < steps; kk++) {
            unsigned b[8];
            load_b(b, ts + FRAG * kk);
#pragma unroll
            for (int f = 0; f < FRAGS_PER_WARP; f++) {
                const int frag = warp + WARPS * f;
                const int q = frag % MIXED_SHIFTS, rb = frag / MIXED_SHIFTS;
                unsigned a[8];
                load_a(a, copies + q * COPY + FRAG * FRAG * rb + FRAG * kk);
                mma(acc[f], a, b);
            }
        }
    }
    __syncthreads();
#pragma unroll
    for (int f = 0; f < FRAGS_PER_WARP; f++) {
        const int frag = warp + WARPS * f;
        const int q = frag % MIXED_SHIFTS, rb = frag / MIXED_SHIFTS;
        store_c(products + (q * MIXED_GROUP) * ROWS + FRAG * rb, acc[f]);
    }
    __syncthreads();
}

// x, inv:       as correlate_stack's; mean: channels x n_lags moving mean of
//               each window (for the error bound)
// waves:        per channel entry, MIXED_GROUP x mp fp16 templates, scaled
//               by the entry's power of two (tscale) and rounded by the host;
//               mp = M rounded up to 16, zeros past M
// entry_first:  group g's entries are entry_first[g] .. entry_first[g + 1]
// entry_chan, entry_min_pad, entry_tscale: per entry
// slot_pad, slot_weight: per entry and member slot (pad -1: no window)
// member_row:   per group and slot, the stack row (-1: empty slot)
// member_max_pad: per group and slot; with zero_tail, lags k >= n_lags -
//               max_pad are written as 0, as the host does
// coefficient:  the error bound's, for M (mixed::channel_error_coefficient)
// stacks:       rows x n_lags; margin: per row, raised to the bound (as
//               bits of a non-negative float; the host zeroes it)
extern "C" __global__ void __launch_bounds__(MIXED_THREADS, 1)
correlate_stack_mixed(const float *__restrict__ x, const float *__restrict__ inv,
                      const float *__restrict__ mean, long long n, long long n_lags, int m,
                      int mp, const unsigned short *__restrict__ waves,
                      const int *__restrict__ entry_first, const int *__restrict__ entry_chan,
                      const int *__restrict__ entry_min_pad, const float *__restrict__ entry_tscale,
                      const int *__restrict__ slot_pad, const float *__restrict__ slot_weight,
                      const int *__restrict__ member_row, const int *__restrict__ member_max_pad,
                      float coefficient, int zero_tail, float *__restrict__ stacks,
                      unsigned *__restrict__ margin)
{
    extern __shared__ __align__(128) unsigned char shared[];
    unsigned short *copies = reinterpret_cast<unsigned short *>(shared);
    float *products = reinterpret_cast<float *>(shared);
    unsigned short *ts = reinterpret_cast<unsigned short *>(shared + UNION_BYTES);
    __shared__ float scratch[WARPS];
    __shared__ float offset;
    __shared__ float bound[MIXED_GROUP];
    const int g = blockIdx.y;
    const long long k0 = (long long)blockIdx.x * MIXED_TILE;
    const int l0 = threadIdx.x * LAGS_PER_THREAD;
    float sum[MIXED_GROUP][LAGS_PER_THREAD];
#pragma unroll
    for (int t = 0; t < MIXED_GROUP; t++)
#pragma unroll
        for (int r = 0; r < LAGS_PER_THREAD; r++)
            sum[t][r] = 0.0f;
    if (threadIdx.x < MIXED_GROUP)
        bound[threadIdx.x] = 0.0f;

    for (int e = entry_first[g]; e < entry_first[g + 1]; e++) {
        const int ch = entry_chan[e];
        const float *xc = x + (long long)ch * n;
        const long long j0 = k0 + entry_min_pad[e];
        const long long end = min(j0 + MIXED_DATA_LAGS + m - 1, n);
        __syncthreads();
        if (threadIdx.x < 32) {
            const float o = data_offset(xc, j0, end);
            if (threadIdx.x == 0)
                offset = o;
        }
        __syncthreads();
        const float o = offset;
        const float sd = scale_for(block_max_abs<MIXED_THREADS>(xc, j0, end, o, scratch));
        entry_products(xc, n, j0, mp, o, sd,
                       waves + (long long)e * MIXED_GROUP * mp, copies, ts, products);
        const float unscale = 1.0f / (sd * entry_tscale[e]);
        const float *ic = inv + (long long)ch * n_lags;
        const float *mc = mean + (long long)ch * n_lags;
        // Unrolled: sum[t][r] stays in registers.
#pragma unroll
        for (int t = 0; t < MIXED_GROUP; t++) {
            const int pad = slot_pad[e * MIXED_GROUP + t];
            const float w = slot_weight[e * MIXED_GROUP + t];
            // The largest ||x - o|| / ||x - mean|| among this thread's windows.
            float ratio = 0.0f;
#pragma unroll
            for (int r = 0; r < LAGS_PER_THREAD; r++) {
                const long long k = k0 + l0 + r, jj = k + pad;
                if (pad < 0 || k >= n_lags || jj >= n_lags)
                    continue;
                const int j = l0 + r + pad - entry_min_pad[e];
                const float c = products[((j % MIXED_SHIFTS) * MIXED_GROUP + t) * ROWS + j / MIXED_SHIFTS];
                const float v = c * unscale * ic[jj];
                sum[t][r] = fmaf(w, fminf(fmaxf(v, -1.0f), 1.0f), sum[t][r]);
                if (ic[jj] > 0.0f) {
                    const float d = (mc[jj] - o) * ic[jj];
                    ratio = fmaxf(ratio, sqrtf(1.0f + d * d));
                }
            }
            ratio = block_max<MIXED_THREADS>(ratio, scratch);
            if (threadIdx.x == 0)
                bound[t] += fabsf(w) * coefficient * ratio;
        }
    }
    __syncthreads();
#pragma unroll
    for (int t = 0; t < MIXED_GROUP; t++) {
        const int row = member_row[g * MIXED_GROUP + t];
        if (row < 0)
            continue;
        if (threadIdx.x == 0)
            atomicMax(margin + row, __float_as_uint(bound[t]));
        const long long max_pad = member_max_pad[g * MIXED_GROUP + t];
        float *st = stacks + (long long)row * n_lags;
#pragma unroll
        for (int r = 0; r < LAGS_PER_THREAD; r++) {
            const long long k = k0 + l0 + r;
            if (k < n_lags)
                st[k] = zero_tail && k + max_pad >= n_lags ? 0.0f : sum[t][r];
        }
    }
}
