//===- OneDnnMatmul.cpp - bf16 GEMMs through oneDNN on the host -----------===//

#include "runtime/kernels/OneDnnMatmul.h"
#include "runtime/kernels/KernelCheck.h"

#if defined(KILN_HAVE_DNNL)
#include <oneapi/dnnl/dnnl.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#endif

namespace kiln::kernels::onednn {

#if defined(KILN_HAVE_DNNL)

namespace {

using dnnl::memory;
using Dims = memory::dims;

struct Engine {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
};

Engine &engine() {
  static Engine e;
  return e;
}

/// A matmul of bf16 operands: its sizes (one of m and k the runtime
/// DNNL_RUNTIME_DIM_VAL) and its operands' strides.
struct Key {
  int64_t m, k, n, aRow, aCol, bRow, bCol;
  bool operator<(const Key &o) const {
    return std::tie(m, k, n, aRow, aCol, bRow, bCol) <
           std::tie(o.m, o.k, o.n, o.aRow, o.aCol, o.bRow, o.bCol);
  }
};

const dnnl::matmul &primitive(const Key &key) {
  static std::mutex lock;
  static std::map<Key, std::unique_ptr<dnnl::matmul>> cache;
  std::lock_guard<std::mutex> guard(lock);
  std::unique_ptr<dnnl::matmul> &slot = cache[key];
  if (!slot) {
    const auto bf16 = memory::data_type::bf16;
    memory::desc a({key.m, key.k}, bf16, Dims{key.aRow, key.aCol});
    memory::desc b({key.k, key.n}, bf16, Dims{key.bRow, key.bCol});
    memory::desc c({key.m, key.n}, bf16, Dims{key.n, 1});
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), engine().engine);
    slot = std::make_unique<dnnl::matmul>(pd);
  }
  return *slot;
}

} // namespace

bool available() { return true; }

void matmulBf16(Bf16 *c, const Bf16 *a, const Bf16 *b, int64_t m, int64_t k, int64_t n,
                int64_t aRowStride, int64_t aColStride, int64_t bRowStride,
                int64_t bColStride) {
  KILN_KERNEL_CHECK(m >= 0 && k >= 0 && n >= 0, "expects sizes >= 0, got %lld, %lld, %lld",
                    (long long)m, (long long)k, (long long)n);
  if (m == 0 || n == 0)
    return;
  if (k == 0) { // an empty sum: oneDNN would not touch c
    for (int64_t i = 0; i < m * n; ++i)
      c[i] = narrowTo<Bf16>(0.0f);
    return;
  }
  // One primitive per shape family: the row count m is a runtime
  // dimension, or for a weight gradient (a is a transpose: its column stride
  // is not 1) the contraction k, the rows it sums over. No stride involves
  // the runtime size, so every stride is fixed.
  const int64_t R = DNNL_RUNTIME_DIM_VAL;
  const bool weightGradient = aColStride != 1;
  Key fixed{weightGradient ? m : R, weightGradient ? R : k, n, aRowStride, aColStride,
            bRowStride, bColStride};
  const dnnl::matmul &mm = primitive(fixed);
  const auto bf16 = memory::data_type::bf16;
  Engine &e = engine();
  memory am({{m, k}, bf16, Dims{aRowStride, aColStride}}, e.engine, const_cast<Bf16 *>(a));
  memory bm({{k, n}, bf16, Dims{bRowStride, bColStride}}, e.engine, const_cast<Bf16 *>(b));
  memory cm({{m, n}, bf16, Dims{n, 1}}, e.engine, c);
  mm.execute(e.stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
  e.stream.wait();
}

#else

bool available() { return false; }

void matmulBf16(Bf16 *, const Bf16 *, const Bf16 *, int64_t, int64_t, int64_t, int64_t, int64_t,
                int64_t, int64_t) {
  KILN_KERNEL_CHECK(false, "this build of Kiln has no oneDNN (libdnnl-dev); the caller "
                           "should have widened to f32");
}

#endif

} // namespace kiln::kernels::onednn
