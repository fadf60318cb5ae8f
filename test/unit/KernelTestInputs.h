//===- KernelTestInputs.h - inputs and the check of the host-kernel tests -===//
//
// The host-kernel tests (HostKernelsTest, GrpoKernelsTest) feed one set of
// seeded inputs to a kernel and to the reference evaluator: values rounded
// to f32 first, so both see the same numbers, IR type spellings for the
// modules they evaluate, and checkKernel, which compares the two.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TEST_KERNELTESTINPUTS_H
#define KILN_TEST_KERNELTESTINPUTS_H

#include "dialects/kiln/reference/RefTensor.h"
#include "runtime/init/SeededRng.h"
#include "test/unit/EvaluateSource.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <cstdint>
#include <string>
#include <vector>

namespace kiln::test {

using Floats = std::vector<float>;

/// "tensor<2x3xf32>" for shape {2, 3}; "tensor<f32>" for {}.
inline std::string ty(std::vector<int64_t> shape, const char *element = "f32") {
  std::string s = "tensor<";
  for (int64_t d : shape)
    s += std::to_string(d) + "x";
  return s + element + ">";
}

inline reference::RefTensor tensor(std::vector<int64_t> shape,
                                   std::vector<double> values = {}) {
  reference::RefTensor t{mlir::Type(), llvm::ArrayRef<int64_t>(shape)};
  if (!values.empty())
    t.data = std::move(values);
  return t;
}

/// Normal values rounded to f32, so kernel and reference see the same inputs.
inline reference::RefTensor normal(init::SeededRng &rng, std::vector<int64_t> shape,
                                   double scale = 1.0) {
  reference::RefTensor t = tensor(shape);
  for (double &v : t.data)
    v = double(float(scale * rng.normal()));
  return t;
}

/// Integers in [0, n).
inline reference::RefTensor ids(init::SeededRng &rng, std::vector<int64_t> shape, int64_t n) {
  reference::RefTensor t = tensor(shape);
  for (double &v : t.data)
    v = double(std::min<int64_t>(n - 1, int64_t(rng.uniform() * n)));
  return t;
}

inline Floats f32(const reference::RefTensor &t) { return Floats(t.data.begin(), t.data.end()); }
inline std::vector<int32_t> i32(const reference::RefTensor &t) {
  return std::vector<int32_t>(t.data.begin(), t.data.end());
}

/// A kernel under test: inputs -> outputs, in the order of @f's results.
using Kernel = std::function<std::vector<Floats>(const std::vector<reference::RefTensor> &)>;

/// Compares `kernel` with @f of `source` on the reference evaluator and with
/// a second run of itself (same bits); prints and returns the largest
/// relative error, values below `floorFraction` x max|ref| measured against
/// that floor (an f32 sum that cancels to near zero keeps the absolute error
/// of its terms), and fails the test above `tolerance`.
inline double checkKernel(const std::string &name, const std::string &source,
                          const std::vector<reference::RefTensor> &inputs, const Kernel &kernel,
                          double tolerance = 1e-5, double floorFraction = 1e-2) {
  llvm::SmallVector<reference::RefTensor> want = evaluateSource(source, inputs);
  std::vector<Floats> got = kernel(inputs), again = kernel(inputs);
  EXPECT_EQ(got.size(), want.size()) << name;
  if (got.size() != want.size())
    return INFINITY;
  double worst = 0;
  size_t compared = 0;
  std::string first;
  for (size_t o = 0; o < got.size(); ++o) {
    const reference::RefTensor &r = want[o];
    EXPECT_EQ(int64_t(got[o].size()), r.numElements()) << name << " output " << o;
    EXPECT_EQ(0, std::memcmp(got[o].data(), again[o].data(), got[o].size() * sizeof(float)))
        << name << " output " << o << " differs between two runs";
    if (int64_t(got[o].size()) != r.numElements())
      return INFINITY;
    double maxRef = 0;
    for (double v : r.data)
      maxRef = std::max(maxRef, std::fabs(v));
    double floor = std::max(floorFraction * maxRef, 1e-30);
    for (size_t e = 0; e < got[o].size(); ++e) {
      double err = std::fabs(got[o][e] - r.data[e]) / std::max(std::fabs(r.data[e]), floor);
      worst = std::max(worst, err);
      ++compared;
    }
    for (size_t e = 0, shown = 0; o == 0 && e < got[o].size() && shown < 3; ++e)
      if (std::fabs(r.data[e]) >= floor) { // skip exact zeros (masked rows, causal row 0)
        char buf[80];
        std::snprintf(buf, sizeof(buf), "%s %.7g/%.9g", shown++ ? ";" : "", got[o][e],
                      r.data[e]);
        first += buf;
      }
  }
  std::printf("[%-44s] max relative error %.2e over %zu values; first kernel/ref:%s\n",
              name.c_str(), worst, compared, first.c_str());
  EXPECT_LT(worst, tolerance) << name;
  return worst;
}

} // namespace kiln::test

#endif // KILN_TEST_KERNELTESTINPUTS_H
