//===- kiln-opt.cpp - run kiln passes on MLIR files -----------------------===//
//
// The opt tool of every MLIR project: parses a module, runs the pass pipeline
// given on the command line, prints the result. lit tests drive it.
//
//===----------------------------------------------------------------------===//

#include "dialects/kernel/KernelDialect.h"
#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/UpstreamGrads.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/Extensions/InlinerExtension.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  registry.insert<kiln::KilnDialect, mlir::func::FuncDialect,
                  mlir::arith::ArithDialect, mlir::tensor::TensorDialect,
                  kiln::kernel::KernelDialect, mlir::memref::MemRefDialect,
                  mlir::math::MathDialect>();
  mlir::func::registerInlinerExtension(registry);
  kiln::registerUpstreamGradientModels(registry);
  kiln::registerKilnPasses();
  kiln::registerKilnPipelines();
  // Upstream cleanups users combine with Kiln's passes (canonicalize, cse,
  // inline, symbol-dce, ...).
  mlir::registerTransformsPasses();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "Kiln optimizer driver\n", registry));
}
