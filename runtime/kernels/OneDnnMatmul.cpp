//===- OneDnnMatmul.cpp - bf16 GEMMs through oneDNN on the host -----------===//

#include "runtime/kernels/OneDnnMatmul.h"
#include "runtime/kernels/KernelCheck.h"

#if defined(KILN_HAVE_DNNL)
#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>
#endif

namespace kiln::kernels::onednn {

#if defined(KILN_HAVE_DNNL)

namespace {

using dnnl::memory;
using Dims = memory::dims;

dnnl::engine &engine() {
  static dnnl::engine e{dnnl::engine::kind::cpu, 0};
  return e;
}

/// The calling thread's stream and scratchpad. The grouped GEMMs run their
/// experts on several threads at once, and oneDNN's own scratchpad is one
/// per process (two experts at once raced in it: r1-tiny bf16 differed run
/// to run), so every primitive takes a user scratchpad, this thread's.
struct ThreadContext {
  dnnl::stream stream{engine()};
  std::vector<unsigned char> scratchpad;
};
ThreadContext &threadContext() {
  thread_local ThreadContext context;
  return context;
}

/// A matmul of bf16 operands: its sizes (k possibly DNNL_RUNTIME_DIM_VAL),
/// its operands' strides, and whether it runs inside a parallel region.
/// oneDNN plans a primitive's threads when it creates it: one created
/// inside a parallel region (a grouped GEMM's expert) runs on its one
/// thread, one created outside on the whole team.
struct Key {
  int64_t m, k, n, aRow, aCol, bRow, bCol;
  bool nested;
  bool operator<(const Key &o) const {
    return std::tie(m, k, n, aRow, aCol, bRow, bCol, nested) <
           std::tie(o.m, o.k, o.n, o.aRow, o.aCol, o.bRow, o.bCol, o.nested);
  }
};

struct Primitive {
  dnnl::matmul matmul;
  size_t scratchpadBytes;
};

/// The primitive of one shape, created on first use and kept for the
/// process. Sizes are compile-time sizes of the primitive where they can be:
/// with a runtime dimension oneDNN 2.6 falls back from its AMX brgemm
/// kernels to gemm:jit, measured here at about half the speed (2048x512x512:
/// 815 against 2,269 GFLOP/s on 2 cores).
const Primitive &primitive(const Key &key) {
  static std::mutex lock;
  static std::map<Key, std::unique_ptr<Primitive>> cache;
  std::lock_guard<std::mutex> guard(lock);
  std::unique_ptr<Primitive> &slot = cache[key];
  if (!slot) {
    const auto bf16 = memory::data_type::bf16;
    memory::desc a({key.m, key.k}, bf16, Dims{key.aRow, key.aCol});
    memory::desc b({key.k, key.n}, bf16, Dims{key.bRow, key.bCol});
    memory::desc c({key.m, key.n}, bf16, Dims{key.n, 1});
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), attr, engine());
    slot = std::make_unique<Primitive>(
        Primitive{dnnl::matmul(pd), pd.scratchpad_desc().get_size()});
  }
  return *slot;
}

/// c [m, n] = a [m, k] x b [k, n] through the primitive of this shape, or of
/// any k when `depthVaries`.
void matmulOne(Bf16 *c, const Bf16 *a, const Bf16 *b, int64_t m, int64_t k, int64_t n,
               int64_t aRowStride, int64_t aColStride, int64_t bRowStride, int64_t bColStride,
               bool depthVaries) {
  const int64_t keyK = depthVaries ? DNNL_RUNTIME_DIM_VAL : k;
  const Primitive &p = primitive(
      {m, keyK, n, aRowStride, aColStride, bRowStride, bColStride, omp_in_parallel() != 0});
  ThreadContext &context = threadContext();
  if (context.scratchpad.size() < p.scratchpadBytes)
    context.scratchpad.resize(p.scratchpadBytes);
  const auto bf16 = memory::data_type::bf16;
  dnnl::engine &e = engine();
  memory am({{m, k}, bf16, Dims{aRowStride, aColStride}}, e, const_cast<Bf16 *>(a));
  memory bm({{k, n}, bf16, Dims{bRowStride, bColStride}}, e, const_cast<Bf16 *>(b));
  memory cm({{m, n}, bf16, Dims{n, 1}}, e, c);
  memory sm({{int64_t(p.scratchpadBytes)}, memory::data_type::u8, Dims{1}}, e,
            context.scratchpad.data());
  p.matmul.execute(context.stream, {{DNNL_ARG_SRC, am},
                                    {DNNL_ARG_WEIGHTS, bm},
                                    {DNNL_ARG_DST, cm},
                                    {DNNL_ARG_SCRATCHPAD, sm}});
  context.stream.wait();
}

/// Rows per block of a row count that changes from call to call (see
/// matmulBf16).
constexpr int64_t kRowBlock = 64;

} // namespace

bool available() { return true; }

void matmulBf16(Bf16 *c, const Bf16 *a, const Bf16 *b, int64_t m, int64_t k, int64_t n,
                int64_t aRowStride, int64_t aColStride, int64_t bRowStride,
                int64_t bColStride, bool depthVaries) {
  KILN_KERNEL_CHECK(m >= 0 && k >= 0 && n >= 0, "expects sizes >= 0, got %lld, %lld, %lld",
                    (long long)m, (long long)k, (long long)n);
  if (m == 0 || n == 0)
    return;
  if (k == 0) { // an empty sum: oneDNN would not touch c
    for (int64_t i = 0; i < m * n; ++i)
      c[i] = narrowTo<Bf16>(0.0f);
    return;
  }
  // Shapes are static except the grouped expert GEMMs' rows per expert,
  // which change every step: m (rows of a and c) runs as its multiple of
  // kRowBlock rows and the rest, so the primitives of any row count are
  // among T / kRowBlock + kRowBlock per family (and two calls beat one
  // exact shape: 256 + 44 rows of 256x256 took 22.7 us, 300 rows 29.3). A
  // row's products do not depend on the rows around it: the split is
  // invisible in the results. When the contraction is an expert's rows (its
  // weight gradient) k cannot be split without rounding twice; a runtime k
  // primitive takes every k (at 256x300x256, 34.5 us against 49.1 for the
  // exact shape, and no primitive per k to create).
  const int64_t blocked = m / kRowBlock * kRowBlock, rest = m - blocked;
  if (blocked > 0 && rest > 0) {
    matmulOne(c, a, b, blocked, k, n, aRowStride, aColStride, bRowStride, bColStride,
              depthVaries);
    matmulOne(c + blocked * n, a + blocked * aRowStride, b, rest, k, n, aRowStride, aColStride,
              bRowStride, bColStride, depthVaries);
    return;
  }
  matmulOne(c, a, b, m, k, n, aRowStride, aColStride, bRowStride, bColStride, depthVaries);
}

#else

bool available() { return false; }

void matmulBf16(Bf16 *, const Bf16 *, const Bf16 *, int64_t, int64_t, int64_t, int64_t, int64_t,
                int64_t, int64_t, bool) {
  KILN_KERNEL_CHECK(false, "this build of Kiln has no oneDNN (libdnnl-dev); the caller "
                           "should have widened to f32");
}

#endif

} // namespace kiln::kernels::onednn
