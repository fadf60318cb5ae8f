//===- HostKernelsCopyTest.cpp - data-movement kernels vs plain loops -----===//
//
// Every kernel of runtime/kernels/Copy.cpp runs on seeded random data and is
// compared, bit for bit, with a straightforward loop over multi-indices (the
// unbroadcast reference sums in the same row-major order the kernel
// promises). Shapes include rank 0, rank 6, strided and empty slices, and
// sizes large enough to take the kernels' parallel paths.
//
//===----------------------------------------------------------------------===//

#include "runtime/kernels/Copy.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <random>
#include <vector>

namespace kk = kiln::kernels;

namespace {

using Shape = std::vector<int64_t>;

int64_t count(const Shape &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

kk::Dims dims(const Shape &shape) {
  kk::Dims d;
  d.rank = int64_t(shape.size());
  for (size_t k = 0; k < shape.size(); ++k)
    d.d[k] = shape[k];
  return d;
}

/// Row-major linear index of `index` in `shape`.
int64_t linearIndex(const Shape &shape, const Shape &index) {
  int64_t at = 0;
  for (size_t k = 0; k < shape.size(); ++k)
    at = at * shape[k] + index[k];
  return at;
}

/// Calls fn(index) for every multi-index of `shape`, in row-major order.
void forEachIndex(const Shape &shape, const std::function<void(const Shape &)> &fn) {
  if (count(shape) == 0)
    return;
  Shape index(shape.size(), 0);
  while (true) {
    fn(index);
    int64_t k = int64_t(shape.size()) - 1;
    for (; k >= 0; --k) {
      if (++index[k] < shape[k])
        break;
      index[k] = 0;
    }
    if (k < 0)
      return;
  }
}

template <typename T> std::vector<T> random(int64_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::vector<T> v(n);
  if constexpr (std::is_same_v<T, float>) {
    std::normal_distribution<float> dist;
    for (T &x : v)
      x = dist(gen);
  } else {
    std::uniform_int_distribution<int32_t> dist(-1000, 1000);
    for (T &x : v)
      x = dist(gen);
  }
  return v;
}

struct Slice {
  Shape full, offsets, sizes, strides;
};

/// Full-tensor index of slice element `index`.
Shape fullIndex(const Slice &s, const Shape &index) {
  Shape at(index.size());
  for (size_t k = 0; k < index.size(); ++k)
    at[k] = s.offsets[k] + index[k] * s.strides[k];
  return at;
}

const std::vector<Slice> &slices() {
  static const std::vector<Slice> cases = {
      {{}, {}, {}, {}},                                         // rank 0
      {{10}, {3}, {4}, {2}},                                    // strided 1-D
      {{4, 33}, {0, 1}, {4, 32}, {1, 1}},                       // MTP-style shift
      {{5, 7, 9}, {1, 0, 2}, {3, 7, 3}, {1, 1, 3}},
      {{5, 7, 9}, {1, 0, 2}, {0, 7, 3}, {1, 1, 3}},             // empty
      {{2, 3, 4, 5, 6, 7}, {1, 0, 1, 2, 0, 3}, {1, 3, 2, 2, 3, 2}, {1, 1, 2, 1, 2, 2}},
      {{64, 64, 40}, {0, 8, 0}, {64, 48, 20}, {1, 1, 2}},       // parallel path
  };
  return cases;
}

template <typename T> void checkExtract() {
  unsigned seed = 1;
  for (const Slice &s : slices()) {
    std::vector<T> source = random<T>(count(s.full), seed++);
    std::vector<T> got(std::max<int64_t>(count(s.sizes), 1), T(-7)), want = got;
    forEachIndex(s.sizes, [&](const Shape &i) {
      want[linearIndex(s.sizes, i)] = source[linearIndex(s.full, fullIndex(s, i))];
    });
    kk::extractSlice(got.data(), source.data(), dims(s.full), dims(s.offsets), dims(s.sizes),
                     dims(s.strides));
    EXPECT_EQ(got, want) << "slice of rank " << s.full.size();
  }
}

template <typename T> void checkInsert(bool inPlace) {
  unsigned seed = 100;
  for (const Slice &s : slices()) {
    std::vector<T> dest = random<T>(count(s.full), seed++);
    std::vector<T> source = random<T>(count(s.sizes), seed++);
    std::vector<T> want = dest;
    forEachIndex(s.sizes, [&](const Shape &i) {
      want[linearIndex(s.full, fullIndex(s, i))] = source[linearIndex(s.sizes, i)];
    });
    std::vector<T> got = inPlace ? dest : std::vector<T>(dest.size(), T(-7));
    kk::insertSlice(got.data(), inPlace ? got.data() : dest.data(), source.data(),
                    dims(s.full), dims(s.offsets), dims(s.sizes), dims(s.strides));
    EXPECT_EQ(got, want) << "slice of rank " << s.full.size() << (inPlace ? " in place" : "");
  }
}

template <typename T> void checkConcat() {
  struct Case {
    std::vector<Shape> parts;
    int64_t dim;
  };
  std::vector<Case> cases = {
      {{{3}, {5}, {1}}, 0},
      {{{2, 3, 4}, {2, 1, 4}, {2, 5, 4}}, 1},
      {{{2, 3, 4}, {2, 3, 2}}, 2},
      {{{2, 3, 4}, {6, 3, 4}}, 0},
      {{{2, 0, 4}, {2, 3, 4}}, 1},
      {{{64, 32, 16}, {64, 48, 16}}, 1}, // parallel path
  };
  unsigned seed = 200;
  for (const Case &c : cases) {
    Shape outShape = c.parts[0];
    outShape[c.dim] = 0;
    std::vector<std::vector<T>> data;
    std::vector<const T *> ptrs;
    std::vector<int64_t> partDims;
    for (const Shape &p : c.parts) {
      outShape[c.dim] += p[c.dim];
      data.push_back(random<T>(count(p), seed++));
      partDims.push_back(p[c.dim]);
    }
    for (const auto &d : data)
      ptrs.push_back(d.data());
    std::vector<T> want(count(outShape), T(-7));
    int64_t base = 0;
    for (size_t p = 0; p < c.parts.size(); ++p) {
      forEachIndex(c.parts[p], [&](const Shape &i) {
        Shape o = i;
        o[c.dim] += base;
        want[linearIndex(outShape, o)] = data[p][linearIndex(c.parts[p], i)];
      });
      base += c.parts[p][c.dim];
    }
    int64_t outer = 1, inner = 1;
    for (int64_t k = 0; k < c.dim; ++k)
      outer *= outShape[k];
    for (size_t k = c.dim + 1; k < outShape.size(); ++k)
      inner *= outShape[k];
    std::vector<T> got(want.size(), T(-7));
    kk::concat(got.data(), ptrs.data(), partDims.data(), int64_t(ptrs.size()), outer, inner);
    EXPECT_EQ(got, want) << "concat along " << c.dim;
  }
}

/// (small, large) shape pairs where small broadcasts to large.
const std::vector<std::pair<Shape, Shape>> &broadcasts() {
  static const std::vector<std::pair<Shape, Shape>> cases = {
      {{}, {}},
      {{1}, {7}},
      {{5}, {5}},
      {{4, 1, 3, 1}, {4, 5, 3, 2}},
      {{2, 3, 1, 8}, {2, 3, 16, 8}},      // MLA's shared rotary key head
      {{1, 3, 1, 2, 1, 2}, {2, 3, 4, 2, 3, 2}},
      {{1, 1}, {0, 3}},                   // empty result
      {{8, 64, 1, 64}, {8, 64, 16, 64}},  // parallel path
  };
  return cases;
}

} // namespace

TEST(HostKernelsCopy, Dims) {
  kk::Dims empty;
  EXPECT_EQ(empty.rank, 0);
  EXPECT_EQ(empty.product(), 1);
  kk::Dims d = {4, 32, 64};
  EXPECT_EQ(d.rank, 3);
  EXPECT_EQ(d[1], 32);
  EXPECT_EQ(d.product(), 4 * 32 * 64);
  EXPECT_EQ(kk::Dims({1, 2, 3, 4, 5, 6}).rank, 6);
}

TEST(HostKernelsCopyDeathTest, RejectsBadShapes) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::vector<float> x(64), y(64);
  EXPECT_DEATH(kk::Dims({1, 2, 3, 4, 5, 6, 7}), "at most 6 dimensions");
  EXPECT_DEATH(kk::extractSlice(y.data(), x.data(), {8, 8}, {0, 4}, {8, 5}, {1, 1}),
               "exceeds the size");
  EXPECT_DEATH(kk::broadcast(y.data(), x.data(), {2, 4}, {4, 4}), "does not broadcast");
  EXPECT_DEATH(kk::unbroadcast(y.data(), x.data(), {4, 4}, {2, 4}), "does not broadcast");
}

TEST(HostKernelsCopy, Fill) {
  for (int64_t n : {0, 1, 13, 100000}) {
    std::vector<float> f(n + 1, -1.0f);
    kk::fill(f.data(), n, 0.25f);
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(f[i], 0.25f);
    EXPECT_EQ(f[n], -1.0f) << "wrote past n";
    std::vector<int32_t> v(n + 1, -1);
    kk::fill(v.data(), n, 42);
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(v[i], 42);
    EXPECT_EQ(v[n], -1) << "wrote past n";
  }
}

TEST(HostKernelsCopy, Copy) {
  std::vector<float> a = random<float>(1000, 7), b(1000);
  kk::copy(b.data(), a.data(), 1000);
  EXPECT_EQ(a, b);
  kk::copy(a.data(), a.data(), 1000); // same buffer: nothing to do
  EXPECT_EQ(a, b);
  std::vector<int32_t> i = random<int32_t>(10, 8), j(10);
  kk::copy(j.data(), i.data(), 10);
  EXPECT_EQ(i, j);
}

TEST(HostKernelsCopy, ExtractSliceF32) { checkExtract<float>(); }
TEST(HostKernelsCopy, ExtractSliceI32) { checkExtract<int32_t>(); }
TEST(HostKernelsCopy, InsertSliceF32) { checkInsert<float>(false); }
TEST(HostKernelsCopy, InsertSliceI32) { checkInsert<int32_t>(false); }
TEST(HostKernelsCopy, InsertSliceInPlace) {
  checkInsert<float>(true);
  checkInsert<int32_t>(true);
}
TEST(HostKernelsCopy, ConcatF32) { checkConcat<float>(); }
TEST(HostKernelsCopy, ConcatI32) { checkConcat<int32_t>(); }

TEST(HostKernelsCopy, Broadcast) {
  unsigned seed = 300;
  for (const auto &[small, large] : broadcasts()) {
    std::vector<float> x = random<float>(count(small), seed++);
    std::vector<float> want(std::max<int64_t>(count(large), 1), -7.0f), got = want;
    forEachIndex(large, [&](const Shape &i) {
      Shape from = i;
      for (size_t k = 0; k < i.size(); ++k)
        if (small[k] == 1)
          from[k] = 0;
      want[linearIndex(large, i)] = x[linearIndex(small, from)];
    });
    kk::broadcast(got.data(), x.data(), dims(small), dims(large));
    EXPECT_EQ(got, want) << "broadcast of rank " << small.size();
  }
}

TEST(HostKernelsCopy, Unbroadcast) {
  unsigned seed = 400;
  for (const auto &[small, large] : broadcasts()) {
    std::vector<float> x = random<float>(count(large), seed++);
    // Row-major over x: each output's terms arrive in row-major order of the
    // summed indices, the order the kernel promises.
    std::vector<float> want(count(small), 0.0f);
    forEachIndex(large, [&](const Shape &i) {
      Shape to = i;
      for (size_t k = 0; k < i.size(); ++k)
        if (small[k] == 1)
          to[k] = 0;
      want[linearIndex(small, to)] += x[linearIndex(large, i)];
    });
    std::vector<float> got(count(small), -7.0f);
    kk::unbroadcast(got.data(), x.data(), dims(large), dims(small));
    EXPECT_EQ(got, want) << "unbroadcast of rank " << small.size();
  }
}

TEST(HostKernelsCopy, UnbroadcastIsDeterministic) {
  Shape small = {4, 1, 3, 1}, large = {4, 4096, 3, 5};
  std::vector<float> x = random<float>(count(large), 500);
  std::vector<float> a(count(small)), b(count(small));
  kk::unbroadcast(a.data(), x.data(), dims(large), dims(small));
  kk::unbroadcast(b.data(), x.data(), dims(large), dims(small));
  EXPECT_EQ(a, b);
}
