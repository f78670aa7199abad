// A probe, run by the GPU tests only (tests/integration/wgmma.rs), of the
// assumption the sm_90 tensor-core kernel (mixed_sm90.cu) rests on
// (kernels/README.md, "The sm_90 kernel"): that wgmma reads the Hankel view of the
// data straight from shared memory through a matrix descriptor whose 8 x 16 B
// core matrices overlap (leading byte offset 16), so that no Hankel matrix is
// ever written out.
//
// One warpgroup copies two shared-memory images that the host laid out (A:
// 64 rows x 16 samples; B: the data shifted by q, read as 16 samples x 64
// lags), issues one wgmma.m64n64k16 with the descriptors' byte offsets the
// host gives, and writes its 32 accumulators per thread as they are, in
// register order: the host maps them to (row, column) and says which layout,
// if any, the hardware used. wgmma_probe_registers does the same with A
// from registers, loaded by the fragment layout mixed_sm90.cu assumes.
//
// arch: compute_90a

// The images' sizes, and room enough for every descriptor the host tries
// to read only inside the block's shared memory.
// (64 rows x 16 samples; 8 x 63 + 16 samples: a test checks them against
// tests/integration/wgmma.rs.)
constexpr int A_BYTES = 2048;
constexpr int B_BYTES = 1040;
constexpr int A_ROOM = 8192;

// A shared-memory matrix descriptor without swizzling: start address, leading
// and stride byte offsets, each in units of 16 bytes.
__device__ __forceinline__ unsigned long long descriptor(const void *p, unsigned leading,
                                                         unsigned stride)
{
    const unsigned long long a = (unsigned)__cvta_generic_to_shared(p);
    return ((a >> 4) & 0x3fff) | ((unsigned long long)((leading >> 4) & 0x3fff) << 16) |
           ((unsigned long long)((stride >> 4) & 0x3fff) << 32);
}

// Keeps the compiler from moving accesses to the accumulators across the
// asynchronous wgmma: they belong to the tensor cores until wait_group.
__device__ __forceinline__ void fence_accumulators(float d[32])
{
#pragma unroll
    for (int r = 0; r < 32; r++)
        asm volatile("" : "+f"(d[r])::"memory");
}

// The host's images into shared memory, A followed by zeros up to a_room
// bytes, made visible to the tensor cores' reads.
__device__ __forceinline__ void load_images(uint4 *a, int a_room, uint4 *b,
                                            const uint4 *__restrict__ a_image,
                                            const uint4 *__restrict__ b_image)
{
    for (int i = threadIdx.x; i < a_room / 16; i += blockDim.x)
        a[i] = i < A_BYTES / 16 ? a_image[i] : make_uint4(0, 0, 0, 0);
    for (int i = threadIdx.x; i < B_BYTES / 16; i += blockDim.x)
        b[i] = b_image[i];
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    __syncthreads();
}

// Each thread's 32 accumulators, in register order.
__device__ __forceinline__ void store(const float (&d)[32], float *__restrict__ out)
{
#pragma unroll
    for (int r = 0; r < 32; r++)
        out[threadIdx.x * 32 + r] = d[r];
}

extern "C" __global__ void wgmma_probe(const uint4 *__restrict__ a_image,
                                       const uint4 *__restrict__ b_image, unsigned a_leading,
                                       unsigned a_stride, unsigned b_leading, unsigned b_stride,
                                       float *__restrict__ out)
{
    __shared__ __align__(128) uint4 a[A_ROOM / 16];
    __shared__ __align__(128) uint4 b[B_BYTES / 16];
    load_images(a, A_ROOM, b, a_image, b_image);
    const unsigned long long da = descriptor(a, a_leading, a_stride);
    const unsigned long long db = descriptor(b, b_leading, b_stride);
    float d[32];
#pragma unroll
    for (int r = 0; r < 32; r++)
        d[r] = 0.0f;
    fence_accumulators(d);
    asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
    asm volatile("{\n"
                 ".reg .pred p;\n"
                 "setp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
                 "%32, %33, p, 1, 1, 0, 0;\n"
                 "}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),
                   "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),
                   "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]),
                   "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),
                   "+f"(d[30]), "+f"(d[31])
                 : "l"(da), "l"(db), "r"(0));
    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
    fence_accumulators(d);
    store(d, out);
}

// The A image's byte offsets (the host's A_OFFSETS: leading 1024, stride 128).
__device__ __forceinline__ unsigned a_byte(int row, int k)
{
    return (row / 8) * 128 + (k / 8) * 1024 + (row % 8) * 16 + (k % 8) * 2;
}

extern "C" __global__ void wgmma_probe_registers(const uint4 *__restrict__ a_image,
                                                 const uint4 *__restrict__ b_image,
                                                 unsigned b_leading, unsigned b_stride,
                                                 float *__restrict__ out)
{
    __shared__ __align__(128) uint4 a[A_BYTES / 16];
    __shared__ __align__(128) uint4 b[B_BYTES / 16];
    load_images(a, A_BYTES, b, a_image, b_image);
    // Register i: row 16 warp + g + 8 (i % 2), samples 2c + 8 (i / 2) and + 1.
    const int warp = threadIdx.x / 32, g = (threadIdx.x % 32) / 4, c = threadIdx.x % 4;
    const unsigned char *ab = reinterpret_cast<const unsigned char *>(a);
    unsigned f[4];
#pragma unroll
    for (int i = 0; i < 4; i++)
        f[i] = *reinterpret_cast<const unsigned *>(ab + a_byte(16 * warp + g + 8 * (i % 2),
                                                               2 * c + 8 * (i / 2)));
    const unsigned long long db = descriptor(b, b_leading, b_stride);
    float d[32];
#pragma unroll
    for (int r = 0; r < 32; r++)
        d[r] = 0.0f;
    fence_accumulators(d);
    asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
    asm volatile("{\n"
                 ".reg .pred p;\n"
                 "setp.ne.b32 p, 0, 0;\n"
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
                 : "r"(f[0]), "r"(f[1]), "r"(f[2]), "r"(f[3]), "l"(db));
    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
    fence_accumulators(d);
#pragma unroll
    for (int i = 0; i < 4; i++)
        asm volatile("" : "+r"(f[i])::"memory");
    store(d, out);
}
