//===- PlanArenaTest.cpp - kiln-plan-arena on random straight-line steps --===//
//
// A property test of the arena planner. On random programs (buffers of
// random sizes and element types, each written by one kernel and read by
// random later ones, some through reshapes), every plan must:
//  * give disjoint bytes to any two buffers whose lifetimes meet;
//  * keep offsets 64-byte aligned and inside the arena;
//  * need at least the peak of live bytes and at most the sum of all bytes.
// Lifetimes are recomputed here from the generated program, independently
// of the pass.
//
//===----------------------------------------------------------------------===//

#include "dialects/kernel/KernelDialect.h"
#include "passes/Passes.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

#include <random>
#include <sstream>

using namespace mlir;

namespace {

int64_t aligned(int64_t bytes) { return (bytes + 63) / 64 * 64; }

struct Program {
  std::string text;
  /// Per buffer, in creation order: bytes, and the first and last kernel
  /// (by index) that touches it.
  std::vector<int64_t> bytes, first, last;
};

/// `numBuffers` temporaries, each written by a fill or by a kernel reading
/// two earlier buffers; after each, up to three readers (global_norm of random earlier f32 buffers into an output
/// argument). A quarter of the buffers are read through a reshape, a fifth
/// are i32 (written, never read).
Program randomProgram(std::mt19937_64 &rng, int numBuffers) {
  std::ostringstream os;
  Program p;
  os << "func.func @step(%norm: memref<f32>) {\n";
  std::vector<std::string> views;
  std::vector<int> floats;
  int kernel = 0;
  auto touch = [&](int buffer) {
    p.first[buffer] = std::min(p.first[buffer], int64_t(kernel));
    p.last[buffer] = std::max(p.last[buffer], int64_t(kernel));
  };
  for (int i = 0; i < numBuffers; ++i) {
    const int64_t n = 16 * (1 + int64_t(rng() % 256));
    const bool isFloat = rng() % 5 != 0;
    const std::string elem = isFloat ? "f32" : "i32";
    p.bytes.push_back(n * 4);
    p.first.push_back(INT64_MAX);
    p.last.push_back(INT64_MIN);
    os << "  %b" << i << " = kiln_kernel.alloc : memref<" << n << "x" << elem << ">\n";
    std::string view = "%b" + std::to_string(i) + " : memref<" + std::to_string(n) + "x" + elem + ">";
    if (rng() % 4 == 0) {
      os << "  %r" << i << " = kiln_kernel.reshape %b" << i << " : memref<" << n << "x" << elem
         << "> to memref<16x" << n / 16 << "x" << elem << ">\n";
      view = "%r" + std::to_string(i) + " : memref<16x" + std::to_string(n / 16) + "x" + elem + ">";
    }
    views.push_back(view);
    // Its writer: a fill, or (like most kernels) one that reads two earlier
    // buffers in the same op, whose bytes the new one must then not share.
    auto name = [&](int b) { return views[b].substr(0, views[b].find(' ')); };
    auto type = [&](int b) { return views[b].substr(views[b].find(':') + 2); };
    if (floats.empty() || rng() % 2 == 0) {
      os << "  kiln_kernel.launch \"fill\"() -> (" << view << ") {value = 1.0 : f64}\n";
    } else {
      int a = floats[rng() % floats.size()], b = floats[rng() % floats.size()];
      os << "  kiln_kernel.launch \"linear\"(" << name(a) << ", " << name(b) << " : " << type(a)
         << ", " << type(b) << ") -> (" << view << ") {}\n";
      touch(a);
      touch(b);
    }
    touch(i);
    ++kernel;
    if (isFloat)
      floats.push_back(i);
    for (int r = int(rng() % 4); r > 0 && !floats.empty(); --r) {
      int a = floats[rng() % floats.size()], b = floats[rng() % floats.size()];
      os << "  kiln_kernel.launch \"global_norm\"(" << name(a) << ", " << name(b) << " : "
         << type(a) << ", " << type(b) << ") -> (%norm : memref<f32>) {}\n";
      touch(a);
      touch(b);
      ++kernel;
    }
  }
  os << "  return\n}\n";
  p.text = os.str();
  return p;
}

} // namespace

TEST(PlanArena, RandomProgramsGetOverlapFreePlans) {
  MLIRContext context;
  context.loadDialect<kiln::kernel::KernelDialect, func::FuncDialect>();
  std::mt19937_64 rng(2026);
  int64_t worstRatioTimes1000 = 0;
  for (int trial = 0; trial < 200; ++trial) {
    SCOPED_TRACE("trial " + std::to_string(trial));
    Program p = randomProgram(rng, 2 + int(rng() % 60));
    OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(p.text, &context);
    ASSERT_TRUE(module) << p.text;
    PassManager pm(&context);
    pm.addNestedPass<func::FuncOp>(kiln::createKilnPlanArena());
    ASSERT_TRUE(succeeded(pm.run(*module))) << p.text;

    auto step = module->lookupSymbol<func::FuncOp>("step");
    auto arena = step->getAttrOfType<IntegerAttr>(kiln::kernel::kArenaBytesAttr);
    ASSERT_TRUE(arena);
    std::vector<int64_t> offsets;
    step.walk([&](kiln::kernel::BufferOp b) { offsets.push_back(int64_t(b.getOffset())); });
    ASSERT_EQ(offsets.size(), p.bytes.size());

    int64_t total = 0;
    for (size_t i = 0; i < offsets.size(); ++i) {
      EXPECT_EQ(offsets[i] % 64, 0) << "buffer " << i;
      EXPECT_LE(offsets[i] + p.bytes[i], arena.getInt()) << "buffer " << i;
      total += aligned(p.bytes[i]);
      for (size_t j = 0; j < i; ++j) {
        bool meetInTime = p.first[i] <= p.last[j] && p.first[j] <= p.last[i];
        bool shareBytes = offsets[i] < offsets[j] + p.bytes[j] &&
                          offsets[j] < offsets[i] + p.bytes[i];
        EXPECT_FALSE(meetInTime && shareBytes)
            << "buffers " << j << " and " << i << " are live together but overlap: ["
            << offsets[j] << ", +" << p.bytes[j] << ") and [" << offsets[i] << ", +"
            << p.bytes[i] << ")";
      }
    }
    int64_t peak = 0;
    for (int64_t k = 0; k <= *std::max_element(p.last.begin(), p.last.end()); ++k) {
      int64_t live = 0;
      for (size_t i = 0; i < p.bytes.size(); ++i)
        if (p.first[i] <= k && k <= p.last[i])
          live += aligned(p.bytes[i]);
      peak = std::max(peak, live);
    }
    EXPECT_GE(arena.getInt(), peak);
    EXPECT_LE(arena.getInt(), total);
    worstRatioTimes1000 = std::max(worstRatioTimes1000, arena.getInt() * 1000 / peak);
  }
  std::printf("200 random programs: every plan overlap-free; worst arena / peak live = %.3f\n",
              double(worstRatioTimes1000) / 1000);
}
