// Detection on the stacked traces in device memory: the median of |stack|
// over the day's lags by radix selection, and the peak candidates above the
// threshold. Only medians and candidates go back to the host.

// Radix selection of order statistics of |stack[a..b)|. For x >= 0 the IEEE
// bit patterns order like the values, so the k-th smallest value is found
// digit by digit from the top: each pass histograms one digit of the values
// that match the digits found so far, and picks the bin holding rank k.
// Three passes of 11, 11 and 10 bits give the exact value.
#define RADIX_BINS 2048

// One selection per (template, rank): blockIdx.y is the template, blockIdx.z
// the selection of that template (n_sel of them); sel = t * n_sel + z.
// prefix, mask: the bits found so far; hist: (templates * n_sel) x RADIX_BINS,
// zero on entry.
extern "C" __global__ void __launch_bounds__(256)
radix_histogram(const float *__restrict__ stacks, long long n_lags, long long a,
                long long b, int n_sel, const unsigned *__restrict__ prefix,
                const unsigned *__restrict__ mask, int shift, int bits,
                unsigned *__restrict__ hist)
{
    __shared__ unsigned h[RADIX_BINS];
    for (int i = threadIdx.x; i < RADIX_BINS; i += blockDim.x)
        h[i] = 0;
    __syncthreads();
    const int t = blockIdx.y;
    const int sel = t * n_sel + blockIdx.z;
    const unsigned p = prefix[sel], mk = mask[sel];
    const unsigned digit = (1u << bits) - 1;
    const float *s = stacks + (long long)t * n_lags;
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long k = a + (long long)blockIdx.x * blockDim.x + threadIdx.x; k < b; k += step) {
        const unsigned v = __float_as_uint(fabsf(s[k]));
        if ((v & mk) == p)
            atomicAdd(&h[(v >> shift) & digit], 1u);
    }
    __syncthreads();
    unsigned *g = hist + (long long)sel * RADIX_BINS;
    for (int i = threadIdx.x; i < RADIX_BINS; i += blockDim.x)
        if (h[i])
            atomicAdd(&g[i], h[i]);
}

// One thread per selection: find the bin holding the remaining rank and add
// its digit to the prefix (the host clears the histograms for the next
// pass, with one memset).
// rank: on entry the rank among the values matching the prefix (0-based).
extern "C" __global__ void radix_select(unsigned *__restrict__ hist, unsigned *__restrict__ prefix,
                                        unsigned *__restrict__ mask, unsigned *__restrict__ rank,
                                        int shift, int bits, int count)
{
    const int sel = blockIdx.x * blockDim.x + threadIdx.x;
    if (sel >= count)
        return;
    unsigned *h = hist + (long long)sel * RADIX_BINS;
    unsigned r = rank[sel];
    unsigned d = 0;
    // The counts add up to more than r, so the loop stops inside the digit
    // range; the bound only guards against a broken histogram.
    while (d + 1 < (1u << bits) && r >= h[d]) {
        r -= h[d];
        d++;
    }
    rank[sel] = r;
    prefix[sel] |= d << shift;
    mask[sel] |= ((1u << bits) - 1) << shift;
}

// Peak candidates of templates' stacks, with the host's rule: strict local
// extrema of the signed trace (outside the trace counts as 0) whose absolute
// value exceeds the template's threshold. Grid row r scans template rows[r]
// and writes its candidates, in any order, to lag/value from offset[r], at
// most cap[r] of them; count[r] is the true number, so the host can tell
// when cap[r] was too small and scan that template again with room for all
// (offsets are prefix sums of the caps, so every row has exactly its room).
// With `all`, every lag above the threshold is a candidate, extremum or not:
// the screen of a mixed-precision stack, whose threshold is lowered by the
// error margin (src/correlate/screen.rs).
extern "C" __global__ void __launch_bounds__(256)
candidates(const float *__restrict__ stacks, long long n_lags, const float *__restrict__ thr,
           int all, const unsigned *__restrict__ rows, const unsigned long long *__restrict__ offset,
           const unsigned *__restrict__ cap, unsigned *__restrict__ count,
           unsigned *__restrict__ lag, float *__restrict__ value)
{
    const int r = blockIdx.y;
    const unsigned t = rows[r];
    const float *s = stacks + (long long)t * n_lags;
    const float th = thr[t];
    const unsigned room = cap[r];
    unsigned *lr = lag + offset[r];
    float *vr = value + offset[r];
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x; k < n_lags; k += step) {
        const float v = s[k];
        if (!(fabsf(v) > th))
            continue;
        const float prev = k > 0 ? s[k - 1] : 0.0f;
        const float next = k + 1 < n_lags ? s[k + 1] : 0.0f;
        if (all || (next - v) * (prev - v) > 0.0f) {
            const unsigned i = atomicAdd(&count[r], 1u);
            if (i < room) {
                lr[i] = (unsigned)k;
                vr[i] = v;
            }
        }
    }
}
