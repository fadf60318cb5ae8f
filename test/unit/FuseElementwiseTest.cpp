//===- FuseElementwiseTest.cpp - kiln-fuse-elementwise keeps every number -===//
//
// The design's rule for a pass: the IR before and after computes the same
// numbers on random inputs. Random kernel-level programs of elementwise
// loops (random scalar bodies over earlier buffers, some through reshapes),
// splat fills, in-place overwrites of inputs, and opaque readers
// (global_norm) that force intermediates to exist are run by a small
// interpreter before and after kiln-fuse-elementwise. Every output must be
// bit-identical, and the pass must have fused something overall.
//
//===----------------------------------------------------------------------===//

#include "dialects/kernel/KernelDialect.h"
#include "passes/Passes.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/TypeSwitch.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <sstream>

using namespace mlir;
using namespace kiln::kernel;

namespace {

constexpr int64_t kElements = 64;

/// Interprets a kernel-level function whose buffers all hold kElements
/// f32 values. Arguments start with seeded values; returns the final
/// contents of every argument.
std::vector<std::vector<float>> interpret(func::FuncOp func, uint64_t seed) {
  std::vector<std::vector<float>> storage;
  llvm::DenseMap<Value, size_t> slot;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  for (BlockArgument arg : func.getArguments()) {
    storage.emplace_back(kElements);
    for (float &v : storage.back())
      v = dist(rng);
    slot[arg] = storage.size() - 1;
  }
  auto data = [&](Value v) -> std::vector<float> & { return storage[slot.lookup(v)]; };
  for (Operation &op : func.getBody().front()) {
    if (auto alloc = dyn_cast<AllocOp>(op)) {
      storage.emplace_back(kElements, NAN); // Undefined until written.
      slot[alloc] = storage.size() - 1;
    } else if (auto reshape = dyn_cast<ReshapeOp>(op)) {
      slot[reshape.getResult()] = slot.lookup(reshape.getSource());
    } else if (auto launch = dyn_cast<LaunchOp>(op)) {
      if (launch.getKernel() == "fill") {
        float value = float(launch.getParams().getAs<FloatAttr>("value").getValueAsDouble());
        std::fill(data(launch.getOuts()[0]).begin(), data(launch.getOuts()[0]).end(), value);
      } else { // global_norm: an opaque reader.
        double sum = 0;
        for (Value in : launch.getIns())
          for (float v : data(in))
            sum += double(v) * v;
        data(launch.getOuts()[0])[0] = float(std::sqrt(sum));
      }
    } else if (auto loop = dyn_cast<ElementwiseOp>(op)) {
      Block &body = loop.getBody().front();
      // Per element, in order: read every in first, then write the outs.
      for (int64_t i = 0; i < kElements; ++i) {
        llvm::DenseMap<Value, float> scalar;
        for (auto [arg, in] : llvm::zip(body.getArguments(), loop.getIns()))
          scalar[arg] = data(in)[i];
        for (Operation &s : body.without_terminator()) {
          auto x = [&](unsigned k) { return scalar.lookup(s.getOperand(k)); };
          float r = TypeSwitch<Operation *, float>(&s)
                        .Case([&](arith::AddFOp) { return x(0) + x(1); })
                        .Case([&](arith::SubFOp) { return x(0) - x(1); })
                        .Case([&](arith::MulFOp) { return x(0) * x(1); })
                        .Case([&](arith::NegFOp) { return -x(0); })
                        .Case([&](math::ExpOp) { return std::exp(x(0)); })
                        .Case([&](arith::ConstantOp c) {
                          return float(cast<FloatAttr>(c.getValue()).getValueAsDouble());
                        })
                        .Default([](Operation *) { return NAN; });
          scalar[s.getResult(0)] = r;
        }
        auto yield = cast<YieldOp>(body.getTerminator());
        for (auto [v, out] : llvm::zip(yield.getValues(), loop.getOuts()))
          data(out)[i] = scalar.lookup(v);
      }
    }
  }
  std::vector<std::vector<float>> result;
  for (BlockArgument arg : func.getArguments())
    result.push_back(data(arg));
  return result;
}

/// A random program over 3 inputs and 3 outputs (all arguments, so all
/// observable). Each loop reads 1-2 earlier values and computes a random
/// chain of 1-4 scalar ops; some results go through reshapes, some are also
/// read by global_norm into the norm output, and some loops overwrite an
/// input in place after it was read.
std::string randomProgram(std::mt19937_64 &rng, int numLoops) {
  std::ostringstream os;
  os << "func.func @step(%in0: memref<64xf32>, %in1: memref<64xf32>, %in2: memref<8x8xf32>, "
        "%out0: memref<64xf32>, %out1: memref<8x8xf32>, %norm: memref<64xf32>) {\n";
  // Values loops may read: name and type.
  std::vector<std::pair<std::string, std::string>> values = {
      {"%in0", "memref<64xf32>"}, {"%in1", "memref<64xf32>"}, {"%in2", "memref<8x8xf32>"}};
  auto pick = [&] { return values[rng() % values.size()]; };
  for (int i = 0; i < numLoops; ++i) {
    std::string out = "%t" + std::to_string(i), outType = "memref<64xf32>";
    bool last = i == numLoops - 1, second = i == numLoops - 2;
    if (last) {
      out = "%out0";
    } else if (second) {
      out = "%out1";
      outType = "memref<8x8xf32>";
    } else if (rng() % 6 == 0) {
      // Overwrite an input in place (after earlier loops read it).
      out = rng() % 2 ? "%in0" : "%in1";
    } else if (rng() % 5 == 0) {
      os << "  " << out << " = kiln_kernel.alloc : memref<64xf32>\n";
      os << "  kiln_kernel.launch \"fill\"() -> (" << out
         << " : memref<64xf32>) {value = " << std::to_string((rng() % 7) * 0.25) << " : f64}\n";
      values.push_back({out, outType});
      continue;
    } else {
      os << "  " << out << " = kiln_kernel.alloc : memref<64xf32>\n";
    }
    auto a = pick(), b = pick();
    // A quarter of the loops have a second out (as swiglu_grad has), so a
    // fused producer can have an out that others read meanwhile.
    std::string second2 = rng() % 4 == 0 && out.rfind("%t", 0) == 0 ? "%u" + std::to_string(i) : "";
    if (!second2.empty())
      os << "  " << second2 << " = kiln_kernel.alloc : memref<64xf32>\n";
    os << "  kiln_kernel.elementwise(" << a.first << ", " << b.first << " : " << a.second << ", "
       << b.second << ") -> (" << out << (second2.empty() ? "" : ", " + second2) << " : "
       << outType << (second2.empty() ? "" : ", memref<64xf32>") << ") origin [\"op" << i
       << "\"] {\n"
       << "  ^bb0(%x: f32, %y: f32):\n";
    std::string acc = "%x";
    int ops = 1 + int(rng() % 4);
    for (int k = 0; k < ops; ++k) {
      std::string v = "%v" + std::to_string(k);
      switch (rng() % 5) {
      case 0: os << "    " << v << " = arith.addf " << acc << ", %y : f32\n"; break;
      case 1: os << "    " << v << " = arith.mulf " << acc << ", %y : f32\n"; break;
      case 2: os << "    " << v << " = arith.subf %y, " << acc << " : f32\n"; break;
      case 3: os << "    " << v << " = arith.negf " << acc << " : f32\n"; break;
      default:
        os << "    %c" << k << " = arith.constant 0.5 : f32\n"
           << "    " << v << " = arith.mulf " << acc << ", %c" << k << " : f32\n";
      }
      acc = v;
    }
    if (second2.empty()) {
      os << "    kiln_kernel.yield " << acc << " : f32\n  }\n";
    } else {
      os << "    %w = arith.subf %x, %y : f32\n"
         << "    kiln_kernel.yield " << acc << ", %w : f32, f32\n  }\n";
      values.push_back({second2, "memref<64xf32>"});
      if (rng() % 2 == 0)
        os << "  kiln_kernel.launch \"global_norm\"(" << second2 << " : memref<64xf32>) -> (%norm : "
           << "memref<64xf32>) {}\n";
    }
    if (out.rfind("%t", 0) == 0) {
      values.push_back({out, outType});
      if (rng() % 3 == 0) {
        os << "  " << out << "r = kiln_kernel.reshape " << out
           << " : memref<64xf32> to memref<8x8xf32>\n";
        values.push_back({out + "r", "memref<8x8xf32>"});
      }
      if (rng() % 6 == 0)
        os << "  kiln_kernel.launch \"global_norm\"(" << out << " : memref<64xf32>) -> (%norm : "
           << "memref<64xf32>) {}\n";
    }
  }
  os << "  return\n}\n";
  return os.str();
}

} // namespace

TEST(FuseElementwise, RandomProgramsComputeTheSameBits) {
  MLIRContext context;
  context.loadDialect<KernelDialect, func::FuncDialect, arith::ArithDialect, math::MathDialect>();
  std::mt19937_64 rng(7);
  int64_t loopsBefore = 0, loopsAfter = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::string text = randomProgram(rng, 3 + int(rng() % 12));
    SCOPED_TRACE("trial " + std::to_string(trial) + ":\n" + text);
    OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(text, &context);
    ASSERT_TRUE(module);
    auto before = interpret(module->lookupSymbol<func::FuncOp>("step"), trial);
    module->walk([&](ElementwiseOp) { ++loopsBefore; });
    PassManager pm(&context);
    pm.addNestedPass<func::FuncOp>(kiln::createKilnFuseElementwise());
    ASSERT_TRUE(succeeded(pm.run(*module)));
    module->walk([&](ElementwiseOp) { ++loopsAfter; });
    auto after = interpret(module->lookupSymbol<func::FuncOp>("step"), trial);
    ASSERT_EQ(before.size(), after.size());
    for (size_t a = 0; a < before.size(); ++a)
      for (int64_t i = 0; i < kElements; ++i)
        ASSERT_EQ(std::memcmp(&before[a][i], &after[a][i], sizeof(float)), 0)
            << "argument " << a << " element " << i << ": " << before[a][i] << " before, "
            << after[a][i] << " after fusion";
  }
  std::printf("300 random programs: outputs bit-identical; %lld loops before fusion, %lld after\n",
              (long long)loopsBefore, (long long)loopsAfter);
  EXPECT_LT(loopsAfter, loopsBefore) << "the programs should give the pass something to fuse";
}
