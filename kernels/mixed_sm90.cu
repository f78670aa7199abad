// The mixed-precision correlation and moveout stack for Hopper (sm_90a):
// the same screen as mixed.cu (fp16 inputs, fp32 accumulation, the host
// recomputes in fp32 every lag within the error bound of the threshold), on
// the warpgroup's asynchronous wgmma, which alone issues at Hopper's full
// tensor rate. kernels/README.md ("The sm_90 kernel") gives the geometry,
// its traffic and its expected speed; src/correlate/mixed_model.rs executes
// this arithmetic on the CPU.
//
// One block computes WG_TILE consecutive stack lags k0 .. k0 + 511 of a group
// of up to WG_GROUP templates. For each of the group's channel entries, with
// j0 = k0 + the entry's smallest pad, the products are
//
//   C[t][j] = sum_i x[j0 + j + i] * A_t[i],   i < K = M + spread, rounded to 16,
//
// where the host placed member t's window at offset pad_t - smallest pad of
// A_t (zeros around it): C[t][j] is member t's correlation at its data lag
// k0 + j + pad_t, i.e. at stack lag k0 + j for every member, so the
// accumulators need no shift; only 1/sigma is read at each member's lag.
//
// The templates are wgmma's A (64 rows = members; from registers), the data
// its B (columns = lags, from shared memory through a matrix descriptor).
// An operand without swizzling is read in core matrices of 8 columns x 16
// bytes, 16-byte rows; in the copy of the data shifted by q,
// B(k, n) = x[q + 8n + k] lies at byte 16n + 2k: core matrices along K 16
// bytes apart (leading byte offset) and along N 128 bytes apart (stride
// byte offset), overlapping, so the Hankel view is never written out. Eight
// shifted copies give lags q + 8n; warpgroup w holds shifts 4w .. 4w + 3,
// each an m64n64 accumulator (128 registers per thread). The probe
// (wgmma_probe.cu) checks these layouts on the GPU.
//
// Chunks of WG_CHUNK template samples are staged in two buffers: while the
// tensor cores work on one, the threads fill the other.
//
// arch: compute_90a

#include "fp16.cuh"
#include "offset.cuh"

#define WG_THREADS 256
#define WG_GROUP 64
#define WG_SHIFTS 8
#define WG_COLUMNS 64
#define WG_TILE (WG_SHIFTS * WG_COLUMNS)
#define WG_SPREAD 256
#define WG_CHUNK 64
#define WG_A_STRIDE 72

constexpr int WARPGROUPS = WG_THREADS / 128;
constexpr int WARPS = WG_THREADS / 32;
constexpr int SHIFTS_PER_WARPGROUP = WG_SHIFTS / WARPGROUPS;
// Accumulators of an m64n64 product per thread, and of all its shifts.
constexpr int PER_SHIFT = WG_GROUP * WG_COLUMNS / 128;
constexpr int VALUES = SHIFTS_PER_WARPGROUP * PER_SHIFT;
// k16 steps per chunk.
constexpr int STEPS = WG_CHUNK / 16;
// fp16 samples of a shifted copy that a chunk's products read.
constexpr int COPY = 8 * (WG_COLUMNS - 1) + WG_CHUNK;

// Dynamic shared memory: the stack sums, each thread's VALUES in a column
// ([value][thread]: no bank conflicts), then two staging buffers of the
// shifted copies and the templates' chunk (rows WG_A_STRIDE apart, so that
// the A fragments' 32-bit loads hit 32 different banks).
constexpr int SUMS_BYTES = VALUES * WG_THREADS * 4;
constexpr int COPIES_BYTES = WG_SHIFTS * COPY * 2;
constexpr int BUFFER_BYTES = COPIES_BYTES + WG_GROUP * WG_A_STRIDE * 2;
constexpr int WG_SHARED_BYTES = SUMS_BYTES + 2 * BUFFER_BYTES;

static_assert(WG_TILE == 512 && VALUES == 128, "two warpgroups of four m64n64 accumulators");
static_assert((COPY * 2) % 16 == 0 && BUFFER_BYTES % 128 == 0, "16-byte aligned operands");
static_assert(WG_CHUNK % 16 == 0 && WG_A_STRIDE >= WG_CHUNK, "whole k16 steps");
static_assert(WG_SHARED_BYTES <= 227 * 1024, "fits an sm_90 block");
static_assert(WG_SHARED_BYTES == 167680, "mixed::sm90::SHARED_BYTES, as the launch asks");

// A shared-memory matrix descriptor without swizzling: the start address,
// the leading (along K) and stride (along N) byte offsets, in 16-byte units.
__device__ __forceinline__ unsigned long long descriptor(const void *p)
{
    const unsigned long long a = (unsigned)__cvta_generic_to_shared(p);
    return ((a >> 4) & 0x3fff) | ((unsigned long long)(16 >> 4) << 16) |
           ((unsigned long long)(128 >> 4) << 32);
}

// The accumulators belong to the tensor cores between a wgmma and its
// wait: this keeps the compiler from moving accesses across either.
__device__ __forceinline__ void fence_values(float (&d)[VALUES])
{
#pragma unroll
    for (int r = 0; r < VALUES; r++)
        asm volatile("" : "+f"(d[r])::"memory");
}

// As for the A fragments, read by the tensor cores until the wait: their
// registers stay allocated, unchanged, until then.
__device__ __forceinline__ void fence_fragments(unsigned (&a)[STEPS][4])
{
#pragma unroll
    for (int s = 0; s < STEPS; s++)
#pragma unroll
        for (int i = 0; i < 4; i++)
            asm volatile("" : "+r"(a[s][i])::"memory");
}

// d (32 accumulators, m64n64, f32) += A (64 x 16 fp16 from registers) x B
// (16 x 64 fp16 through descriptor b).
__device__ __forceinline__ void wgmma(float *d, const unsigned (&a)[4], unsigned long long b)
{
    asm volatile("{\n"
                 ".reg .pred p;\n"
                 "setp.ne.b32 p, 1, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
                 "{%32, %33, %34, %35}, %36, p, 1, 1, 0;\n"
                 "}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),
                   "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),
                   "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]),
                   "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),
                   "+f"(d[30]), "+f"(d[31])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
}

// One entry's view of the data and templates while its chunks are staged.
struct Entry {
    const float *xc;
    long long n, j0;
    float o, sd;
    const unsigned short *waves;
    int k;
};

// Chunk i0 of the entry into a staging buffer: copies[q][s] = x[j0 + i0 + q +
// s] - o, scaled, in fp16 (0 past the data); ts[t][i] = sample i0 + i of
// member t's template row (0 past K).
__device__ void stage(const Entry &e, int i0, unsigned char *buffer)
{
    unsigned short *copies = reinterpret_cast<unsigned short *>(buffer);
    unsigned *ts = reinterpret_cast<unsigned *>(buffer + COPIES_BYTES);
    for (int v = threadIdx.x; v < WG_SHIFTS * COPY; v += WG_THREADS) {
        const int q = v / COPY, s = v % COPY;
        const long long g = e.j0 + i0 + q + s;
        copies[v] = to_half(g < e.n ? (e.xc[g] - e.o) * e.sd : 0.0f);
    }
    // Pairs of samples (K and i0 are even).
    const unsigned *w = reinterpret_cast<const unsigned *>(e.waves);
    for (int v = threadIdx.x; v < WG_GROUP * WG_CHUNK / 2; v += WG_THREADS) {
        const int t = v / (WG_CHUNK / 2), i = 2 * (v % (WG_CHUNK / 2));
        ts[(t * WG_A_STRIDE + i) / 2] = i0 + i < e.k ? w[((long long)t * e.k + i0 + i) / 2] : 0u;
    }
}

// The entry's products into acc: chunk by chunk, double-buffered.
__device__ __forceinline__ void entry_products(const Entry &e, unsigned char *buffers, float (&acc)[VALUES])
{
    const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
    const int g = lane / 4, c = lane % 4;
#pragma unroll
    for (int r = 0; r < VALUES; r++)
        acc[r] = 0.0f;
    stage(e, 0, buffers);
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    __syncthreads();
    for (int i0 = 0, turn = 0; i0 < e.k; i0 += WG_CHUNK, turn ^= 1) {
        unsigned char *buffer = buffers + turn * BUFFER_BYTES;
        const unsigned short *copies = reinterpret_cast<const unsigned short *>(buffer);
        const unsigned *ts = reinterpret_cast<const unsigned *>(buffer + COPIES_BYTES);
        const int steps = min(STEPS, (e.k - i0) / 16);
        // A fragments: rows 16 warp + g and + 8, samples 16 s + 2c, + 1 and + 8, + 9.
        unsigned a[STEPS][4];
        const int row = 16 * warp + g;
#pragma unroll
        for (int s = 0; s < STEPS; s++) {
            const int col = 16 * s + 2 * c;
            a[s][0] = ts[(row * WG_A_STRIDE + col) / 2];
            a[s][1] = ts[((row + 8) * WG_A_STRIDE + col) / 2];
            a[s][2] = ts[(row * WG_A_STRIDE + col + 8) / 2];
            a[s][3] = ts[((row + 8) * WG_A_STRIDE + col + 8) / 2];
        }
        fence_values(acc);
        asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
#pragma unroll
        for (int s = 0; s < STEPS; s++) {
            if (s < steps) {
#pragma unroll
                for (int h = 0; h < SHIFTS_PER_WARPGROUP; h++) {
                    const int q = SHIFTS_PER_WARPGROUP * wg + h;
                    wgmma(acc + PER_SHIFT * h, a[s], descriptor(copies + q * COPY + 16 * s));
                }
            }
        }
        asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
        if (i0 + WG_CHUNK < e.k)
            stage(e, i0 + WG_CHUNK, buffers + (turn ^ 1) * BUFFER_BYTES);
        asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
        fence_values(acc);
        fence_fragments(a);
        // The staged chunk becomes visible to the tensor cores' reads, and
        // no thread stages into a buffer before every warpgroup is done with it.
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
        __syncthreads();
    }
}

// x, inv, mean:  as correlate_stack_mixed's (mixed.cu)
// waves:         per entry, WG_GROUP rows of entry_k[e] fp16 samples from
//                entry_wave[e]: member t's window, scaled by the entry's power
//                of two (tscale) and rounded, at offset slot_pad - min pad,
//                zeros elsewhere (and for empty slots)
// entry_first, entry_chan, entry_min_pad, entry_tscale, slot_pad (-1: no
// window), slot_weight, member_row (-1: empty slot), member_max_pad,
// coefficient, zero_tail, stacks, margin: as correlate_stack_mixed's, with
//                WG_GROUP slots per entry and group
extern "C" __global__ void __launch_bounds__(WG_THREADS, 1)
correlate_stack_wgmma(const float *__restrict__ x, const float *__restrict__ inv,
                      const float *__restrict__ mean, long long n, long long n_lags,
                      const unsigned short *__restrict__ waves,
                      const long long *__restrict__ entry_wave, const int *__restrict__ entry_k,
                      const int *__restrict__ entry_first, const int *__restrict__ entry_chan,
                      const int *__restrict__ entry_min_pad, const float *__restrict__ entry_tscale,
                      const int *__restrict__ slot_pad, const float *__restrict__ slot_weight,
                      const int *__restrict__ member_row, const int *__restrict__ member_max_pad,
                      float coefficient, int zero_tail, float *__restrict__ stacks,
                      unsigned *__restrict__ margin)
{
    extern __shared__ __align__(128) unsigned char shared[];
    float *sums = reinterpret_cast<float *>(shared);
    unsigned char *buffers = shared + SUMS_BYTES;
    __shared__ float scratch[WARPS];
    __shared__ float offset;
    __shared__ int pads[WG_GROUP];
    __shared__ float weights[WG_GROUP];
    __shared__ unsigned ratio[WG_GROUP];
    __shared__ float bound[WG_GROUP];
    const int grp = blockIdx.y;
    const long long k0 = (long long)blockIdx.x * WG_TILE;
    const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
    const int g = lane / 4, c = lane % 4;
    for (int v = 0; v < VALUES; v++)
        sums[v * WG_THREADS + threadIdx.x] = 0.0f;
    if (threadIdx.x < WG_GROUP) {
        bound[threadIdx.x] = 0.0f;
        ratio[threadIdx.x] = 0u;
    }
    float acc[VALUES];
    for (int e = entry_first[grp]; e < entry_first[grp + 1]; e++) {
        const int ch = entry_chan[e];
        const float *xc = x + (long long)ch * n;
        const long long j0 = k0 + entry_min_pad[e];
        const int k = entry_k[e];
        const long long end = min(j0 + WG_TILE + k - 1, n);
        __syncthreads();
        if (threadIdx.x < 32) {
            const float o = data_offset(xc, j0, end);
            if (threadIdx.x == 0)
                offset = o;
        }
        if (threadIdx.x < WG_GROUP) {
            pads[threadIdx.x] = slot_pad[e * WG_GROUP + threadIdx.x];
            weights[threadIdx.x] = slot_weight[e * WG_GROUP + threadIdx.x];
        }
        __syncthreads();
        const float o = offset;
        const float sd = scale_for(block_max_abs<WG_THREADS>(xc, j0, end, o, scratch));
        const Entry en = {xc, n, j0, o, sd, waves + entry_wave[e], k};
        entry_products(en, buffers, acc);
        const float unscale = 1.0f / (sd * entry_tscale[e]);
        const float *ic = inv + (long long)ch * n_lags;
        const float *mc = mean + (long long)ch * n_lags;
        // Accumulator r of shift h: row (member) 16 warp + g + 8 (r / 2 % 2),
        // column 8 (r / 4) + 2c + r % 2, i.e. lag q + 8 column.
        float rmax[2] = {0.0f, 0.0f};
#pragma unroll
        for (int v = 0; v < VALUES; v++) {
            const int h = v / PER_SHIFT, r = v % PER_SHIFT;
            const int t = 16 * warp + g + 8 * ((r / 2) % 2);
            const int col = 8 * (r / 4) + 2 * c + r % 2;
            const int q = SHIFTS_PER_WARPGROUP * wg + h;
            const long long kk = k0 + q + 8 * col, jj = kk + pads[t];
            if (pads[t] < 0 || kk >= n_lags || jj >= n_lags)
                continue;
            const float is = ic[jj];
            const float cc = fminf(fmaxf(acc[v] * unscale * is, -1.0f), 1.0f);
            float *s = sums + v * WG_THREADS + threadIdx.x;
            *s = fmaf(weights[t], cc, *s);
            if (is > 0.0f) {
                const float d = (mc[jj] - o) * is;
                rmax[(r / 2) % 2] = fmaxf(rmax[(r / 2) % 2], sqrtf(1.0f + d * d));
            }
        }
        // Each member's largest ratio: over the 4 lanes of a row, then the
        // two warpgroups.
#pragma unroll
        for (int i = 0; i < 2; i++) {
            for (int d = 1; d < 4; d *= 2)
                rmax[i] = fmaxf(rmax[i], __shfl_xor_sync(0xffffffffu, rmax[i], d));
            if (c == 0)
                atomicMax(ratio + 16 * warp + g + 8 * i, __float_as_uint(rmax[i]));
        }
        __syncthreads();
        if (threadIdx.x < WG_GROUP) {
            const int t = threadIdx.x;
            bound[t] += fabsf(weights[t]) * coefficient * __uint_as_float(ratio[t]);
            ratio[t] = 0u;
        }
    }
    __syncthreads();
    if (threadIdx.x < WG_GROUP) {
        const int row = member_row[grp * WG_GROUP + threadIdx.x];
        if (row >= 0)
            atomicMax(margin + row, __float_as_uint(bound[threadIdx.x]));
    }
    for (int v = 0; v < VALUES; v++) {
        const int h = v / PER_SHIFT, r = v % PER_SHIFT;
        const int t = 16 * warp + g + 8 * ((r / 2) % 2);
        const int row = member_row[grp * WG_GROUP + t];
        const long long kk = k0 + SHIFTS_PER_WARPGROUP * wg + h + 8 * (8 * (r / 4) + 2 * c + r % 2);
        if (row < 0 || kk >= n_lags)
            continue;
        const long long max_pad = member_max_pad[grp * WG_GROUP + t];
        stacks[(long long)row * n_lags + kk] =
            zero_tail && kk + max_pad >= n_lags ? 0.0f : sums[v * WG_THREADS + threadIdx.x];
    }
}
