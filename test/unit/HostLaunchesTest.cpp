//===- HostLaunchesTest.cpp - C++ emitted for kiln_kernel.launch ----------===//
//
// One small kernel-level function per case of HostLaunchesCases.cpp, one
// launch each. Every kernel of the catalog must have a case. The emitted text of
// representative kernels is checked against the expected call; then every
// case's snippet (emitted twice, to catch clashing locals) is compiled with
// `c++ -fsyntax-only` against the real runtime/kernels headers. Error cases:
// a bf16 buffer where the kernel reads f32, FP8 values stored as bf16, a
// missing attribute, a bad attribute, decoding operands that do not fit.
//
//===----------------------------------------------------------------------===//

#include "codegen/HostLaunches.h"
#include "test/unit/HostLaunchesCases.h"

#include "dialects/kernel/KernelCatalog.h"
#include "dialects/kernel/KernelDialect.h"
#include "dialects/kiln/KilnDialect.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include "llvm/ADT/StringExtras.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace mlir;

namespace {

using namespace kiln::test;

class HostLaunchesTest : public ::testing::Test {
protected:
  HostLaunchesTest() {
    context.loadDialect<kiln::kernel::KernelDialect, func::FuncDialect, arith::ArithDialect,
                        math::MathDialect, memref::MemRefDialect, kiln::KilnDialect>();
  }

  /// `func.func @f(%b0: T0, ...) { kiln_kernel.launch ...; return }`.
  static std::string moduleText(const Case &c) {
    std::string args, ins, inTypes, outs, outTypes;
    for (size_t i = 0; i < c.types.size(); ++i)
      args += (i ? ", %b" : "%b") + std::to_string(i) + ": " + c.types[i];
    for (size_t i = 0; i < c.ins.size(); ++i) {
      ins += (i ? ", %b" : "%b") + std::to_string(c.ins[i]);
      inTypes += (i ? ", " : "") + c.types[c.ins[i]];
    }
    for (size_t i = 0; i < c.outs.size(); ++i) {
      outs += (i ? ", %b" : "%b") + std::to_string(c.outs[i]);
      outTypes += (i ? ", " : "") + c.types[c.outs[i]];
    }
    return "func.func @f(" + args + ") {\n  kiln_kernel.launch \"" + c.kernel + "\"(" +
           (ins.empty() ? "" : ins + " : " + inTypes) + ") -> (" +
           (outs.empty() ? "" : outs + " : " + outTypes) + ") " + c.params +
           "\n  return\n}\n";
  }

  /// Parses the case and emits its launch; `diagnostics` collects errors.
  LogicalResult emit(const Case &c, std::string &text, std::string &diagnostics) {
    ScopedDiagnosticHandler handler(&context, [&](Diagnostic &d) {
      diagnostics += d.str() + "\n";
      return success();
    });
    std::string source = moduleText(c);
    module = parseSourceString<ModuleOp>(source, &context);
    if (!module) {
      ADD_FAILURE() << "cannot parse:\n" << source << diagnostics;
      return failure();
    }
    kiln::kernel::LaunchOp launch;
    module->walk([&](kiln::kernel::LaunchOp op) { launch = op; });
    kiln::codegen::LaunchArgs args;
    for (Value v : launch.getIns())
      args.ins.push_back("b" + std::to_string(cast<BlockArgument>(v).getArgNumber()));
    for (Value v : launch.getOuts())
      args.outs.push_back("b" + std::to_string(cast<BlockArgument>(v).getArgNumber()));
    llvm::raw_string_ostream os(text);
    return kiln::codegen::emitHostLaunch(launch, args, "  ", os);
  }

  /// The C++ pointer type of a memref's element.
  static std::string cppElement(const std::string &memref) {
    if (memref.find("bf16>") != std::string::npos)
      return "kiln::kernels::Bf16";
    if (memref.find("xf16>") != std::string::npos)
      return "kiln::kernels::F16";
    if (memref.find("f8E4M3FN>") != std::string::npos)
      return "kiln::kernels::E4m3";
    if (memref.find("f32>") != std::string::npos)
      return "float";
    if (memref.find("i32>") != std::string::npos)
      return "int32_t";
    if (memref.find("xi8>") != std::string::npos)
      return "int8_t";
    if (memref.find("i1>") != std::string::npos)
      return "bool";
    return "int64_t";
  }

  MLIRContext context;
  OwningOpRef<ModuleOp> module;
};

TEST_F(HostLaunchesTest, EveryCatalogKernelHasACase) {
  std::set<std::string> covered;
  for (const Case &c : launchCases())
    covered.insert(c.kernel);
  for (const kiln::kernel::KernelInfo &k : kiln::kernel::kernelCatalog())
    EXPECT_TRUE(covered.count(k.name.str())) << "no test case for kernel '" << k.name.str()
                                             << "'";
}

TEST_F(HostLaunchesTest, EmitsExpectedCalls) {
  for (const Case &c : launchCases()) {
    std::string text, diagnostics;
    ASSERT_TRUE(succeeded(emit(c, text, diagnostics)))
        << c.kernel << ": " << diagnostics << "\n" << moduleText(c);
    for (const std::string &e : c.expect) {
      if (e[0] == '!')
        EXPECT_EQ(text.find(e.substr(1)), std::string::npos)
            << c.kernel << " emitted '" << e.substr(1) << "':\n" << text;
      else
        EXPECT_NE(text.find(e), std::string::npos)
            << c.kernel << " lacks '" << e << "':\n" << text;
    }
    // Every line starts with the indent.
    for (llvm::StringRef line : llvm::split(llvm::StringRef(text).rtrim('\n'), '\n'))
      EXPECT_TRUE(line.starts_with("  ")) << c.kernel << ": '" << line.str() << "'";
  }
}

TEST_F(HostLaunchesTest, EmittedCodeCompiles) {
  std::string file = ::testing::TempDir() + "/kiln_host_launches_check.cpp";
  std::ofstream out(file);
  out << "#include \"runtime/kernels/Attention.h\"\n"
         "#include \"runtime/kernels/Copy.h\"\n"
         "#include \"runtime/kernels/Decode.h\"\n"
         "#include \"runtime/kernels/Dense.h\"\n"
         "#include \"runtime/kernels/ExpertParallel.h\"\n"
         "#include \"runtime/kernels/GradCompress.h\"\n"
         "#include \"runtime/kernels/Grpo.h\"\n"
         "#include \"runtime/kernels/Loss.h\"\n"
         "#include \"runtime/kernels/MoE.h\"\n"
         "#include \"runtime/kernels/NarrowGemm.h\"\n"
         "#include \"runtime/kernels/Optimizer.h\"\n"
         "#include \"runtime/kernels/Precision.h\"\n"
         "#include \"runtime/kernels/Sparsity24.h\"\n"
         "#include \"runtime/driver/StepComm.h\"\n"
         "#include \"runtime/driver/TrainStep.h\"\n"
         "#include <cstdint>\n#include <string>\n\n";
  int n = 0;
  for (const Case &c : launchCases()) {
    std::string text, diagnostics;
    ASSERT_TRUE(succeeded(emit(c, text, diagnostics))) << c.kernel << ": " << diagnostics;
    out << "// " << c.kernel << "\nbool case" << n++
        << "(const kiln::driver::StepBuffers &io, std::string &error) {\n";
    // Buffers that are only read are const: the code must not write them.
    for (size_t i = 0; i < c.types.size(); ++i) {
      bool written = std::find(c.outs.begin(), c.outs.end(), int(i)) != c.outs.end();
      out << "  " << (written ? "" : "const ") << cppElement(c.types[i]) << " *b" << i
          << " = nullptr;\n";
    }
    // Twice: two launches of one kernel in one function must not clash.
    out << text << text << "  (void)io;\n  (void)error;\n  return true;\n}\n\n";
  }
  out.close();
  std::string log = file + ".log";
  std::string command = "c++ -std=c++17 -fsyntax-only -Wall -Wextra -Werror -I" +
                        std::string(KILN_SOURCE_DIR) + " " + file + " > " + log + " 2>&1";
  int status = std::system(command.c_str());
  std::ifstream in(log);
  std::stringstream messages;
  messages << in.rdbuf();
  EXPECT_EQ(status, 0) << command << "\n" << messages.str();
}

TEST_F(HostLaunchesTest, RejectsOtherElementTypes) {
  Case c{"linear",
         {"memref<128x64xbf16>", "memref<32x64xf32>", "memref<128x32xf32>"},
         {0, 1},
         {2},
         "{}",
         {}};
  std::string text, diagnostics;
  EXPECT_TRUE(failed(emit(c, text, diagnostics)));
  EXPECT_EQ(text, "");
  EXPECT_NE(diagnostics.find("bf16"), std::string::npos) << diagnostics;
  EXPECT_NE(diagnostics.find("host target"), std::string::npos) << diagnostics;

  Case fp8{"quantize_fp8",
           {"memref<4x256xf32>", "memref<4x256xbf16>", "memref<4x2xf32>"},
           {0},
           {1, 2},
           "{block = array<i64: 1, 128>}",
           {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(fp8, text, diagnostics)));
  EXPECT_NE(diagnostics.find("expects f8E4M3FN"), std::string::npos) << diagnostics;

  Case ids{"embedding",
           {"memref<256x64xf32>", "memref<4x32xi64>", "memref<4x32x64xf32>"},
           {0, 1},
           {2},
           "{}",
           {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(ids, text, diagnostics)));
  EXPECT_NE(diagnostics.find("i32"), std::string::npos) << diagnostics;

  Case step{"lr_schedule", {"memref<i32>", "memref<f32>"}, {0}, {1},
            "{lr = 1.0 : f64, min_lr = 0.1 : f64, warmup_steps = 1 : i64, "
            "total_steps = 2 : i64}",
            {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(step, text, diagnostics)));
  EXPECT_NE(diagnostics.find("i64"), std::string::npos) << diagnostics;

  // AdamW moments: all f32 or all bf16, bf16 ones in place.
  const std::string p = "memref<64xf32>", m16 = "memref<64xf16>", b16 = "memref<64xbf16>";
  const std::string adamParams =
      "{beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.0 : f64}";
  Case f16Moments{"adamw", {p, p, m16, m16, "memref<f32>", "memref<i64>", "memref<f32>"},
                  {0, 1, 2, 3, 4, 5, 6}, {0, 2, 3}, adamParams, {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(f16Moments, text, diagnostics)));
  EXPECT_NE(diagnostics.find("must all be f32 or all bf16"), std::string::npos) << diagnostics;
  Case copiedBf16{"adamw",
                  {p, p, b16, b16, "memref<f32>", "memref<i64>", "memref<f32>", p, b16, b16},
                  {0, 1, 2, 3, 4, 5, 6}, {7, 8, 9}, adamParams, {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(copiedBf16, text, diagnostics)));
  EXPECT_NE(diagnostics.find("bf16 moments must be updated in place"), std::string::npos)
      << diagnostics;
}

TEST_F(HostLaunchesTest, RejectsBadDecodeOperands) {
  // rope's `start` holds i32 positions, one per row of the batch.
  Case rope{"rope",
            {"memref<4x1x4x8xf32>", "memref<4xi64>", "memref<4x1x4x8xf32>"},
            {0, 1},
            {2},
            "{theta = 10000.0 : f64, interleaved = false}",
            {}};
  std::string text, diagnostics;
  EXPECT_TRUE(failed(emit(rope, text, diagnostics)));
  EXPECT_EQ(text, "");
  EXPECT_NE(diagnostics.find("in #1 has element type 'i64'"), std::string::npos) << diagnostics;
  rope.types[1] = "memref<3xi32>";
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(rope, text, diagnostics)));
  EXPECT_NE(diagnostics.find("start's size and x's batch to agree, got 3 and 4"),
            std::string::npos)
      << diagnostics;

  Case write{"cache_write",
             {"memref<4x64x16xf32>", "memref<4x1x8xf32>", "memref<4xi32>"},
             {0, 1, 2},
             {0},
             "{}",
             {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(write, text, diagnostics)));
  EXPECT_NE(diagnostics.find("row widths to agree, got 8 and 16"), std::string::npos)
      << diagnostics;

  Case attention{"cached_attention",
                 {"memref<4x1x4x24xf32>", "memref<4x64x1x24xf32>", "memref<4x64x1x16xf32>",
                  "memref<4xi32>", "memref<4x1x4x16xf32>"},
                 {0, 1, 2, 3},
                 {4},
                 "{}",
                 {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(attention, text, diagnostics)));
  EXPECT_NE(diagnostics.find("'scale'"), std::string::npos) << diagnostics;

  Case matmul{"head_matmul",
              {"memref<4x1x4x16xf32>", "memref<4x16x32xf32>", "memref<4x1x4x32xf32>"},
              {0, 1},
              {2},
              "{transpose_weight = 1 : i64}",
              {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(matmul, text, diagnostics)));
  EXPECT_NE(diagnostics.find("bool attribute"), std::string::npos) << diagnostics;
  matmul.params = "{}"; // weight [heads, n, k] = [4, 16, 32], but x's k is 16
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(matmul, text, diagnostics)));
  EXPECT_NE(diagnostics.find("inner sizes to agree, got 32 and 16"), std::string::npos)
      << diagnostics;
}

TEST_F(HostLaunchesTest, RejectsMissingOrBadAttributes) {
  Case c{"rms_norm",
         {"memref<4x64xf32>", "memref<64xf32>", "memref<4x64xf32>"},
         {0, 1},
         {2},
         "{}",
         {}};
  std::string text, diagnostics;
  EXPECT_TRUE(failed(emit(c, text, diagnostics)));
  EXPECT_EQ(text, "");
  EXPECT_NE(diagnostics.find("'epsilon'"), std::string::npos) << diagnostics;

  c.params = "{epsilon = 1 : i64}";
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(c, text, diagnostics)));
  EXPECT_NE(diagnostics.find("float attribute"), std::string::npos) << diagnostics;

  Case router{"router_grad",
              {"memref<128x8xf32>", "memref<128x2xi32>", "memref<128x2xf32>",
               "memref<128x8xf32>"},
              {0, 1, 2},
              {3},
              "{scoring = \"relu\", norm_topk_prob = true, routed_scaling_factor = 1.0 : f64}",
              {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(router, text, diagnostics)));
  EXPECT_NE(diagnostics.find("relu"), std::string::npos) << diagnostics;

  Case grpo{"grpo_loss",
            {"memref<4x32x256xf32>", "memref<4x32xi32>", "memref<4x32xf32>", "memref<4xf32>",
             "memref<4x32xf32>", "memref<4x32xf32>", "memref<f32>"},
            {0, 1, 2, 3, 4, 5},
            {6},
            "{aggregation = \"seq-mean\"}",
            {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(grpo, text, diagnostics)));
  EXPECT_EQ(text, "");
  EXPECT_NE(diagnostics.find("got \"seq-mean\""), std::string::npos) << diagnostics;
  grpo.params = "{max_tokens = 1.0 : f64}";
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(grpo, text, diagnostics)));
  EXPECT_NE(diagnostics.find("'max_tokens' to be an integer attribute"), std::string::npos)
      << diagnostics;
  grpo.params = "{}";
  grpo.types[3] = "memref<8xf32>"; // one advantage per row
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(grpo, text, diagnostics)));
  EXPECT_NE(diagnostics.find("advantages' size and rows to agree, got 8 and 4"),
            std::string::npos)
      << diagnostics;

  Case slice{"extract_slice",
             {"memref<4x33xf32>", "memref<4x32xf32>"},
             {0},
             {1},
             "{static_offsets = array<i64: 0, 1>, static_sizes = array<i64: 4, 32>}",
             {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(slice, text, diagnostics)));
  EXPECT_NE(diagnostics.find("'static_strides'"), std::string::npos) << diagnostics;

  // FP8 expert forms whose scales do not fit their tilings.
  Case batched{"quantize_fp8",
               {"memref<8x136x200xf32>", "memref<8x136x200xf8E4M3FN>", "memref<2x2xf32>"},
               {0},
               {1, 2},
               "{block = array<i64: 1, 128, 128>}",
               {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(batched, text, diagnostics)));
  EXPECT_NE(diagnostics.find("expects 16 x 2 scales for block"), std::string::npos)
      << diagnostics;
  Case weights{"scaled_grouped_matmul",
               {"memref<300x200xf8E4M3FN>", "memref<300x2xf32>", "memref<8x136x200xf8E4M3FN>",
                "memref<2x2xf32>", "memref<9xi32>", "memref<300x136xf32>"},
               {0, 1, 2, 3, 4},
               {5},
               "{transpose_rhs = true}",
               {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(weights, text, diagnostics)));
  EXPECT_NE(diagnostics.find("rhs_scales' count and rhs's per-expert [128, 128] blocks"),
            std::string::npos)
      << diagnostics;
  Case grouped{"scaled_grouped_matmul_wgrad",
               {"memref<300x136xf8E4M3FN>", "memref<3x136xf32>", "memref<300x200xf8E4M3FN>",
                "memref<10x200xf32>", "memref<9xi32>", "memref<8x136x200xf32>"},
               {0, 1, 2, 3, 4},
               {5},
               "{}",
               {}};
  diagnostics.clear();
  EXPECT_TRUE(failed(emit(grouped, text, diagnostics)));
  EXPECT_NE(diagnostics.find("dy_scales' count and dy's grouped [128, 1] tiles"),
            std::string::npos)
      << diagnostics;
}

} // namespace
