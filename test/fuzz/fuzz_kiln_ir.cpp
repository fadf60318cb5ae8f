//===- fuzz_kiln_ir.cpp - kiln IR parsing and verification on any bytes ---===//
//
// The kiln-opt path: any text is parsed as a module with the kiln and
// kiln_kernel dialects (and the upstream ones kiln IR uses) loaded, and
// verified. It must be accepted or refused with diagnostics, never crash,
// hang or touch memory it does not own; what verifies must print, and the
// printed form must parse and verify again (the round trip lit tests and
// users' IR dumps rely on).
//
//===----------------------------------------------------------------------===//

#include "dialects/kernel/KernelDialect.h"
#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/UpstreamGrads.h"
#include "test/fuzz/AsanWithMlir.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/Extensions/InlinerExtension.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"

#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

mlir::DialectRegistry &registry() {
  static mlir::DialectRegistry *r = [] {
    auto *r = new mlir::DialectRegistry;
    r->insert<kiln::KilnDialect, mlir::func::FuncDialect, mlir::arith::ArithDialect,
              mlir::tensor::TensorDialect, kiln::kernel::KernelDialect,
              mlir::memref::MemRefDialect, mlir::math::MathDialect>();
    mlir::func::registerInlinerExtension(*r);
    kiln::registerUpstreamGradientModels(*r);
    return r;
  }();
  return *r;
}

/// A fresh context per parse: what one input interns never changes how the
/// next parses, so every finding reproduces alone. Refusals are expected;
/// their diagnostics are not the harness's output.
struct QuietContext {
  mlir::MLIRContext context{registry(), mlir::MLIRContext::Threading::DISABLED};
  mlir::ScopedDiagnosticHandler quiet{&context, [](mlir::Diagnostic &) { return mlir::success(); }};
  QuietContext() { context.loadAllAvailableDialects(); }

  /// Parses (which verifies) `text`; null when refused.
  mlir::OwningOpRef<mlir::ModuleOp> parse(llvm::StringRef text) {
    return mlir::parseSourceString<mlir::ModuleOp>(text, &context);
  }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // MLIR's lexer stops at a NUL, not at the end of the StringRef, so it
  // needs NUL-terminated text. Every Kiln tool hands it one (files through
  // llvm::MemoryBuffer, strings as std::string); libFuzzer's buffer is not,
  // and an input ending inside an identifier was read past its end.
  const std::string text(reinterpret_cast<const char *>(data), size);
  QuietContext first;
  mlir::OwningOpRef<mlir::ModuleOp> module = first.parse(text);
  if (!module)
    return 0;
  std::string printed;
  llvm::raw_string_ostream os(printed);
  module->print(os);
  if (!QuietContext().parse(printed))
    std::abort(); // verified IR whose printed form does not parse back
  return 0;
}
