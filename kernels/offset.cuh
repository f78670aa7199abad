// The offset subtracted from a channel's data before correlating a tile of
// it (correlate_stack, correlate_stack_mixed): data on a large offset lose
// accuracy in fp32 sums and range in fp16, while a normalized template
// channel sums to zero, so sum_i wave[i] * (x[j + i] - o) =
// sum_i wave[i] * x[j + i] in real arithmetic.

#pragma once

// Data samples the offset of a channel's tile is chosen from (one per lane
// of the first warp).
#define PROBES 32

static_assert(PROBES == 32, "one probe per lane of a warp");

// The constant subtracted from a channel's data for one tile: the median
// (the lower one for an even count) of the nonzero values among PROBES data
// samples evenly spread over [j0, e), the samples the tile's windows read.
// Why: a single sample could fall in a gap (zeros, which would leave the
// offset in place) or on a large arrival (which would put a new offset on
// the quiet part of the tile); a gap's zeros are left out of the median and
// an arrival shorter than half the tile does not move it. On data already
// centred the median is a sample near zero, and subtracting it changes
// little. Called by the 32 lanes of one warp; every lane gets the value.
__device__ float data_offset(const float *__restrict__ xc, long long j0, long long e)
{
    const int lane = threadIdx.x % 32;
    float v = 0.0f;
    if (j0 < e)
        v = xc[j0 + (2 * lane + 1) * (e - j0) / (2 * PROBES)];
    const bool ok = v != 0.0f;
    const unsigned valid = __ballot_sync(0xffffffffu, ok);
    // Rank of this lane's value among the valid ones (ties by lane).
    int rank = 0;
    for (int l = 0; l < 32; l++) {
        const float u = __shfl_sync(0xffffffffu, v, l);
        rank += ((valid >> l) & 1u) && (u < v || (u == v && l < lane));
    }
    const int count = __popc(valid);
    const unsigned median = __ballot_sync(0xffffffffu, ok && rank == (count - 1) / 2);
    const float o = __shfl_sync(0xffffffffu, v, median ? __ffs(median) - 1 : 0);
    return median ? o : 0.0f;
}

