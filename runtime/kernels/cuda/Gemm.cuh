//===- Gemm.cuh - the dense linear GEMMs through cuBLASLt ------------------===//
//
// The CUDA twins of runtime/kernels/Dense.h's linearForward / linearDgrad /
// linearWgrad (f32) and of NarrowGemm.h's overloads of them (bf16 and f16
// operands and results, f32 accumulation), plus the one cuBLASLt runner that
// GemmFp8.cuh's FP8 GEMM uses too. The expert (grouped) GEMMs are in
// GroupedGemm.cuh, the FP8 ones in GemmFp8.cuh.
//
// Row-major onto column-major. cuBLASLt is column-major: it computes
// D [m, n] = op(A) [m, k] op(B) [k, n], each matrix stored by columns with a
// leading dimension. A row-major Kiln matrix X [r, c] (row stride c) is, read
// by columns, the matrix X^T [c, r] with leading dimension c. So a row-major
// product Y = P Q is computed as Y^T = Q^T P^T: cuBLASLt's A is Kiln's
// right operand, its B Kiln's left one, and D = Y^T is Y itself in memory.
// Each launcher spells its mapping out below; LtGemm is the one description
// of a call, and in shim builds ltReferenceGemmKernel evaluates exactly that
// description (one thread per element of D, K in order) instead of calling
// cuBLASLt, so the CPU tests check every launcher's m, n, k, transposes and
// leading dimensions against the host kernels.
//
// Numerics. f32 runs CUBLAS_COMPUTE_32F (never _FAST_TF32, so no TF32: the
// f32 program must track the host's trajectory within 1e-4); bf16 and f16 run
// CUBLAS_COMPUTE_32F with f32 scale type, i.e. f32 accumulation of exact
// products and one rounding of each result, as NarrowGemm.cpp defines them.
// cuBLASLt's summation order is not OpenBLAS's: the results agree within
// f32 accumulation error (|error| <= 2 K 2^-24 sum_l |a_l b_l| for the two
// orders together), then, for bf16/f16, one rounding of each; the shim's
// reference kernel (K in order) is held to that bound in CudaShimGemmTest,
// and bit for bit where every partial sum is exact (integer-valued inputs);
// test/cuda/gemm_check.cu holds cuBLASLt to it on a GPU. Results are the
// same bits run to run: the algorithm is chosen once per shape and cached.
//
// Handles, workspace and the plan cache. Each (device, stream) gets one
// cuBLASLt handle, a 32 MiB workspace (cuBLAS's recommendation for Hopper)
// and a cache of plans keyed by (m, n, k, transposes, leading dimensions,
// element types, scale modes, pointer alignments): the matmul descriptor,
// the three layouts and the heuristic's first algorithm, created on first
// use. Creating any of it (cudaMalloc, the heuristic query) is refused while
// the stream is being captured into a CUDA graph: the program runs its first
// step eagerly, which fills the cache and sizes the scratch buffers (every
// step has the same shapes), and captures later steps, which then only look
// plans up and enqueue cublasLtMatmul (capturable; alpha and beta are read
// from host memory at capture). Buffers the cache hands out are never freed
// while the process runs, so a captured graph never refers to freed memory.
// A stream's cache is not locked: one host thread drives a stream at a time.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_KERNELS_CUDA_GEMM_CUH
#define KILN_RUNTIME_KERNELS_CUDA_GEMM_CUH

#include "runtime/kernels/PrecisionMath.h"
#include "runtime/kernels/cuda/Device.cuh"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#if KILN_CUDA_DEVICE
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#endif

namespace kiln::cuda {

/// Element types of a cuBLASLt operand or result.
enum class GemmType : int32_t { kF32, kBf16, kF16, kE4m3 };
template <typename T> struct GemmTypeOf;
template <> struct GemmTypeOf<float> { static constexpr GemmType value = GemmType::kF32; };
template <> struct GemmTypeOf<kernels::Bf16> { static constexpr GemmType value = GemmType::kBf16; };
template <> struct GemmTypeOf<kernels::F16> { static constexpr GemmType value = GemmType::kF16; };
template <> struct GemmTypeOf<kernels::E4m3> { static constexpr GemmType value = GemmType::kE4m3; };

/// How an FP8 operand's scales apply (cuBLASLt's scale modes, see
/// GemmFp8.cuh for their layouts): none, one per 128 elements along K of
/// each row of op(A) / column of op(B) (VEC128_32F), one per 128x128 block
/// (BLK128x128_32F).
enum class GemmScale : int32_t { kNone, kVec128, kBlock128 };

/// One column-major cuBLASLt matmul, alpha 1 and beta 0:
/// D [m, n] (leading dimension ldd) = op(A) [m, k] op(B) [k, n], where
/// op(A)(i, l) = A[i * lda + l] when transA (A stored [k, m]) else
/// A[l * lda + i], and op(B)(l, j) = B[l * ldb + j] when transB (B stored
/// [n, k]) else B[j * ldb + l]. With block scales, each 128-wide K block's
/// sum is multiplied by the scales of its row of op(A) and column of op(B).
struct LtGemm {
  bool transA, transB;
  int64_t m, n, k;
  const void *a;
  int64_t lda;
  const void *b;
  int64_t ldb;
  void *d;
  int64_t ldd;
  GemmScale scaleModeA = GemmScale::kNone, scaleModeB = GemmScale::kNone;
  const float *scaleA = nullptr, *scaleB = nullptr;
};

/// acc + block * (lhsScale * rhsScale), each operation rounded on its own
/// (no fused multiply-add), as Precision.cpp's scaledMatmul promotes a K
/// block: the GPU kernels then give the shim's bits.
__device__ __forceinline__ float promoteFp8Block(float acc, float block, float lhsScale,
                                                 float rhsScale) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(acc, __fmul_rn(block, __fmul_rn(lhsScale, rhsScale)));
#else
  return acc + block * (lhsScale * rhsScale);
#endif
}

//===----------------------------------------------------------------------===//
// Kernels
//===----------------------------------------------------------------------===//

/// Reference order of an LtGemm (what cuBLASLt is asked to compute): thread
/// t computes D(i, j), i = t % m, j = t / m, its K in order; with scales, a
/// K block's sum is promoted as the host does (Kiln's lhs is op(B), so its
/// scale comes first). The scale indices are cuBLASLt's layouts (GemmFp8.cuh).
template <typename TA, typename TB, typename TD> __global__ void ltReferenceGemmKernel(LtGemm g) {
  const TA *a = static_cast<const TA *>(g.a);
  const TB *b = static_cast<const TB *>(g.b);
  TD *d = static_cast<TD *>(g.d);
  const int64_t blocks = (g.k + 127) / 128, paddedBlocks = (blocks + 3) / 4 * 4;
  for (int64_t t = globalThread(); t < g.m * g.n; t += gridThreads()) {
    const int64_t i = t % g.m, j = t / g.m;
    auto opA = [&](int64_t l) {
      return kernels::widen(g.transA ? a[i * g.lda + l] : a[l * g.lda + i]);
    };
    auto opB = [&](int64_t l) {
      return kernels::widen(g.transB ? b[l * g.ldb + j] : b[j * g.ldb + l]);
    };
    float acc = 0.0f;
    if (g.scaleModeA == GemmScale::kNone) {
      for (int64_t l = 0; l < g.k; ++l)
        acc += opA(l) * opB(l);
    } else {
      for (int64_t kb = 0; kb < blocks; ++kb) {
        const int64_t end = g.k < (kb + 1) * 128 ? g.k : (kb + 1) * 128;
        float block = 0.0f;
        for (int64_t l = kb * 128; l < end; ++l)
          block += opA(l) * opB(l);
        const float sa = g.scaleModeA == GemmScale::kVec128
                             ? g.scaleA[kb * g.m + i]
                             : g.scaleA[(i / 128) * paddedBlocks + kb];
        const float sb = g.scaleModeB == GemmScale::kVec128
                             ? g.scaleB[kb * g.n + j]
                             : g.scaleB[(j / 128) * paddedBlocks + kb];
        acc = promoteFp8Block(acc, block, sb, sa);
      }
    }
    d[j * g.ldd + i] = kernels::narrowTo<TD>(acc);
  }
}

//===----------------------------------------------------------------------===//
// cuBLASLt: per-stream handle, workspace, scratch and plan cache
//===----------------------------------------------------------------------===//

#if KILN_CUDA_DEVICE
constexpr size_t kLtWorkspaceBytes = size_t(32) << 20;

inline cudaDataType_t cudaTypeOf(GemmType t) {
  switch (t) {
  case GemmType::kF32:
    return CUDA_R_32F;
  case GemmType::kBf16:
    return CUDA_R_16BF;
  case GemmType::kF16:
    return CUDA_R_16F;
  case GemmType::kE4m3:
    return CUDA_R_8F_E4M3;
  }
  return CUDA_R_32F;
}

inline int32_t cublasScaleModeOf(GemmScale s) {
  return s == GemmScale::kVec128     ? int32_t(CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F)
         : s == GemmScale::kBlock128 ? int32_t(CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F)
                                     : int32_t(CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F);
}

/// The largest power of two up to 256 that divides the address: the
/// alignment the heuristic may assume (its default is 256).
inline uint32_t pointerAlignment(const void *p) {
  const uintptr_t u = reinterpret_cast<uintptr_t>(p);
  uint32_t alignment = 256;
  while (alignment > 1 && (u % alignment) != 0)
    alignment /= 2;
  return alignment;
}

struct LtPlanKey {
  int64_t v[16];
  bool operator==(const LtPlanKey &o) const { return std::memcmp(v, o.v, sizeof v) == 0; }
};
struct LtPlanKeyHash {
  size_t operator()(const LtPlanKey &key) const {
    uint64_t h = 1469598103934665603ull; // FNV-1a over the fields
    for (int64_t x : key.v) {
      h ^= uint64_t(x);
      h *= 1099511628211ull;
    }
    return size_t(h);
  }
};
struct LtPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool supported = false; ///< the heuristic found an algorithm
};

struct GemmContext {
  cublasLtHandle_t handle = nullptr;
  void *workspace = nullptr;
  std::unordered_map<LtPlanKey, LtPlan, LtPlanKeyHash> plans;
  void *scratch = nullptr;
  size_t scratchBytes = 0;
  std::vector<void *> retiredScratch; ///< kept: captured graphs may refer to them
};

inline bool streamIsCapturing(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  KILN_CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
  return status != cudaStreamCaptureStatusNone;
}

/// The (current device, stream)'s context, created on first use (outside
/// graph capture).
inline GemmContext &gemmContext(cudaStream_t stream) {
  static std::mutex mutex;
  static std::map<std::pair<int, cudaStream_t>, std::unique_ptr<GemmContext>> contexts;
  int device = 0;
  KILN_CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(mutex);
  std::unique_ptr<GemmContext> &context = contexts[{device, stream}];
  if (!context) {
    KILN_LAUNCH_CHECK(!streamIsCapturing(stream),
                      "the first GEMM on a stream runs outside CUDA-graph capture (run the "
                      "step once eagerly before capturing it)");
    context.reset(new GemmContext);
    KILN_CUBLAS_CHECK(cublasLtCreate(&context->handle));
    KILN_CUDA_CHECK(cudaMalloc(&context->workspace, kLtWorkspaceBytes));
  }
  return *context;
}

/// A device buffer of at least `bytes` for the stream's GEMM preparation
/// (kernels on one stream run in order, so one buffer serves them all).
/// Grows only outside capture; the old buffer is kept, never freed.
inline void *gemmScratch(cudaStream_t stream, size_t bytes) {
  GemmContext &context = gemmContext(stream);
  if (bytes > context.scratchBytes) {
    KILN_LAUNCH_CHECK(!streamIsCapturing(stream),
                      "a GEMM needs %zu bytes of scratch, more than the %zu the eager steps "
                      "sized; run every shape once before capturing a CUDA graph",
                      bytes, context.scratchBytes);
    if (context.scratch)
      context.retiredScratch.push_back(context.scratch);
    const size_t grown = bytes > 2 * context.scratchBytes ? bytes : 2 * context.scratchBytes;
    KILN_CUDA_CHECK(cudaMalloc(&context.scratch, grown));
    context.scratchBytes = grown;
  }
  return context.scratch;
}

/// The cached plan of `g` with the given element types, created on a miss.
inline LtPlan &ltPlan(cudaStream_t stream, GemmContext &context, const LtGemm &g, GemmType ta,
                      GemmType tb, GemmType td) {
  const LtPlanKey key{{g.m, g.n, g.k, g.lda, g.ldb, g.ldd, g.transA, g.transB, int64_t(ta),
                       int64_t(tb), int64_t(td), int64_t(g.scaleModeA), int64_t(g.scaleModeB),
                       pointerAlignment(g.a), pointerAlignment(g.b), pointerAlignment(g.d)}};
  auto found = context.plans.find(key);
  if (found != context.plans.end())
    return found->second;
  KILN_LAUNCH_CHECK(!streamIsCapturing(stream),
                    "no cuBLASLt plan for the GEMM m %lld, n %lld, k %lld during CUDA-graph "
                    "capture; run the step once eagerly first so that every shape is cached",
                    (long long)g.m, (long long)g.n, (long long)g.k);
  LtPlan plan;
  KILN_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const int32_t opA = g.transA ? CUBLAS_OP_T : CUBLAS_OP_N,
                opB = g.transB ? CUBLAS_OP_T : CUBLAS_OP_N;
  KILN_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof opA));
  KILN_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof opB));
  if (g.scaleModeA != GemmScale::kNone) {
    const int32_t modeA = cublasScaleModeOf(g.scaleModeA), modeB = cublasScaleModeOf(g.scaleModeB);
    KILN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE,
                                                     &modeA, sizeof modeA));
    KILN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE,
                                                     &modeB, sizeof modeB));
    KILN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
        plan.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &g.scaleA, sizeof g.scaleA));
    KILN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
        plan.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &g.scaleB, sizeof g.scaleB));
  }
  KILN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.a, cudaTypeOf(ta), g.transA ? g.k : g.m,
                                               g.transA ? g.m : g.k, g.lda));
  KILN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.b, cudaTypeOf(tb), g.transB ? g.n : g.k,
                                               g.transB ? g.k : g.n, g.ldb));
  KILN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.d, cudaTypeOf(td), g.m, g.n, g.ldd));
  cublasLtMatmulPreference_t preference = nullptr;
  KILN_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference));
  const uint64_t workspaceBytes = kLtWorkspaceBytes;
  KILN_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference,
                                                         CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                         &workspaceBytes, sizeof workspaceBytes));
  const uint32_t alignA = pointerAlignment(g.a), alignB = pointerAlignment(g.b),
                 alignD = pointerAlignment(g.d);
  KILN_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &alignA, sizeof alignA));
  KILN_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &alignB, sizeof alignB));
  KILN_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &alignD, sizeof alignD));
  KILN_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &alignD, sizeof alignD));
  cublasLtMatmulHeuristicResult_t result{};
  int count = 0;
  // NOT_SUPPORTED is an answer (no algorithm for this combination), not a
  // failure: the FP8 launcher then takes its own kernel.
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(
      context.handle, plan.desc, plan.a, plan.b, plan.d, plan.d, preference, 1, &result, &count);
  if (status != CUBLAS_STATUS_NOT_SUPPORTED)
    KILN_CUBLAS_CHECK(status);
  KILN_CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(preference));
  plan.supported = status == CUBLAS_STATUS_SUCCESS && count > 0;
  if (plan.supported)
    plan.algo = result.algo;
  return context.plans.emplace(key, plan).first->second;
}
#endif

/// Runs `g` with operand types TA, TB and result type TD: cuBLASLt on the
/// GPU, ltReferenceGemmKernel on the CPU shim. False (nothing enqueued) when
/// cuBLASLt has no algorithm for it.
template <typename TA, typename TB, typename TD>
inline bool ltMatmul(cudaStream_t stream, const LtGemm &g) {
  if (g.m == 0 || g.n == 0)
    return true;
#if KILN_CUDA_DEVICE
  GemmContext &context = gemmContext(stream);
  LtPlan &plan = ltPlan(stream, context, g, GemmTypeOf<TA>::value, GemmTypeOf<TB>::value,
                        GemmTypeOf<TD>::value);
  if (!plan.supported)
    return false;
  if (g.scaleModeA != GemmScale::kNone) { // this call's scale tensors
    KILN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
        plan.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &g.scaleA, sizeof g.scaleA));
    KILN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
        plan.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &g.scaleB, sizeof g.scaleB));
  }
  const float alpha = 1.0f, beta = 0.0f;
  KILN_CUBLAS_CHECK(cublasLtMatmul(context.handle, plan.desc, &alpha, g.a, plan.a, g.b, plan.b,
                                   &beta, g.d, plan.d, g.d, plan.d, &plan.algo, context.workspace,
                                   kLtWorkspaceBytes, stream));
#else
  void (*kernel)(LtGemm) = ltReferenceGemmKernel<TA, TB, TD>; // one macro argument
  KILN_LAUNCH(kernel, blocksFor(g.m * g.n), kBlock, 0, stream, g);
#endif
  return true;
}

#if !KILN_CUDA_DEVICE
/// The shim's scratch: host memory, grown, never shrunk (one per thread, as
/// a stream's is driven by one thread).
inline void *gemmScratch(cudaStream_t, size_t bytes) {
  static thread_local std::vector<uint64_t> scratch;
  if (scratch.size() * sizeof(uint64_t) < bytes)
    scratch.resize((bytes + sizeof(uint64_t) - 1) / sizeof(uint64_t));
  return scratch.data();
}
#endif

/// Zeroes `bytes` of device memory in stream order.
inline void gemmZero(cudaStream_t stream, void *p, size_t bytes) {
#if KILN_CUDA_DEVICE
  KILN_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream));
#else
  (void)stream;
  std::memset(p, 0, bytes);
#endif
}

//===----------------------------------------------------------------------===//
// Launchers
//===----------------------------------------------------------------------===//

/// Dense.cpp's checkLinear, and cuBLASLt's int32 dimensions.
inline void checkLinearLaunch(int64_t rows, int64_t in, int64_t out) {
  KILN_LAUNCH_CHECK(rows >= 0 && in > 0 && out > 0,
                    "expects rows >= 0, in > 0, out > 0, got %lld, %lld, %lld", (long long)rows,
                    (long long)in, (long long)out);
  KILN_LAUNCH_CHECK(rows <= 0x7fffffff && in <= 0x7fffffff && out <= 0x7fffffff,
                    "expects GEMM dimensions below 2^31 (cuBLASLt's), got %lld, %lld, %lld",
                    (long long)rows, (long long)in, (long long)out);
}

template <typename T>
inline void runLinear(cudaStream_t stream, const LtGemm &g, const char *name) {
  const bool ran = ltMatmul<T, T, T>(stream, g);
  KILN_LAUNCH_CHECK(ran, "%s: cuBLASLt has no algorithm for m %lld, n %lld, k %lld", name,
                    (long long)g.m, (long long)g.n, (long long)g.k);
}

/// y [rows, out] = x [rows, in] @ w [out, in]^T. Column-major: y^T [out, rows]
/// = w [out, in] x^T, so m = out, n = rows, k = in; A = w, stored by columns
/// as [in, out] (w's rows), transposed, lda = in; B = x, stored by columns as
/// [in, rows] = x^T, not transposed, ldb = in; D = y^T, ldd = out ("TN").
template <typename T>
inline void linearForwardT(cudaStream_t stream, T *y, const T *x, const T *w, int64_t rows,
                           int64_t in, int64_t out) {
  checkLinearLaunch(rows, in, out);
  if (rows == 0)
    return;
  runLinear<T>(stream, LtGemm{true, false, out, rows, in, w, in, x, in, y, out}, "linearForward");
}

/// dx [rows, in] = dy [rows, out] @ w [out, in]. Column-major: dx^T [in, rows]
/// = w^T [in, out] dy^T [out, rows]: m = in, n = rows, k = out; A = w read by
/// columns is w^T [in, out], not transposed, lda = in; B = dy read by columns
/// is dy^T [out, rows], not transposed, ldb = out; D = dx^T, ldd = in ("NN").
template <typename T>
inline void linearDgradT(cudaStream_t stream, T *dx, const T *dy, const T *w, int64_t rows,
                         int64_t in, int64_t out) {
  checkLinearLaunch(rows, in, out);
  if (rows == 0)
    return;
  runLinear<T>(stream, LtGemm{false, false, in, rows, out, w, in, dy, out, dx, in}, "linearDgrad");
}

/// dw [out, in] = dy [rows, out]^T @ x [rows, in]. Column-major: dw^T [in, out]
/// = x^T [in, rows] dy [rows, out]: m = in, n = out, k = rows; A = x read by
/// columns is x^T [in, rows], not transposed, lda = in; B = dy read by columns
/// is dy^T [out, rows], transposed, ldb = out; D = dw^T, ldd = in ("NT").
/// No rows: dw = 0, as the host fills it.
template <typename T>
inline void linearWgradT(cudaStream_t stream, T *dw, const T *dy, const T *x, int64_t rows,
                         int64_t in, int64_t out) {
  checkLinearLaunch(rows, in, out);
  if (rows == 0) {
    gemmZero(stream, dw, size_t(out * in) * sizeof(T));
    return;
  }
  runLinear<T>(stream, LtGemm{false, true, in, out, rows, x, in, dy, out, dw, in}, "linearWgrad");
}

// The host's overloads: f32 (Dense.h), bf16 and f16 (NarrowGemm.h).
#define KILN_CUDA_LINEAR_GEMMS(T)                                                                  \
  inline void linearForward(cudaStream_t stream, T *y, const T *x, const T *w, int64_t rows,       \
                            int64_t in, int64_t out) {                                             \
    linearForwardT(stream, y, x, w, rows, in, out);                                                \
  }                                                                                                \
  inline void linearDgrad(cudaStream_t stream, T *dx, const T *dy, const T *w, int64_t rows,       \
                          int64_t in, int64_t out) {                                               \
    linearDgradT(stream, dx, dy, w, rows, in, out);                                                \
  }                                                                                                \
  inline void linearWgrad(cudaStream_t stream, T *dw, const T *dy, const T *x, int64_t rows,       \
                          int64_t in, int64_t out) {                                               \
    linearWgradT(stream, dw, dy, x, rows, in, out);                                                \
  }
KILN_CUDA_LINEAR_GEMMS(float)
KILN_CUDA_LINEAR_GEMMS(kernels::Bf16)
KILN_CUDA_LINEAR_GEMMS(kernels::F16)
#undef KILN_CUDA_LINEAR_GEMMS

} // namespace kiln::cuda

#endif // KILN_RUNTIME_KERNELS_CUDA_GEMM_CUH
