//===- EvaluateSource.h - run @f of a kiln IR text on the evaluator -------===//
//
// For the host-kernel tests: each case writes a small module around one op,
// and its kernel's results are compared with the evaluator's.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TEST_EVALUATESOURCE_H
#define KILN_TEST_EVALUATESOURCE_H

#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/reference/Evaluator.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <string>

namespace kiln::test {

/// Runs `@f` of the module `source` on the reference evaluator; a module
/// that does not parse or verify, or an evaluation error, fails the test
/// and gives no results.
inline llvm::SmallVector<reference::RefTensor>
evaluateSource(const std::string &source, llvm::ArrayRef<reference::RefTensor> args,
               reference::Rounding rounding = reference::Rounding::Ideal) {
  mlir::MLIRContext context;
  context.loadDialect<KilnDialect, mlir::func::FuncDialect, mlir::arith::ArithDialect,
                      mlir::tensor::TensorDialect>();
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceString<mlir::ModuleOp>(source, &context);
  EXPECT_TRUE(module && mlir::succeeded(mlir::verify(*module))) << source;
  if (!module)
    return {};
  reference::Evaluator evaluator(*module, rounding);
  mlir::FailureOr<llvm::SmallVector<reference::RefTensor>> r = evaluator.call("f", args);
  EXPECT_TRUE(mlir::succeeded(r)) << source;
  return mlir::succeeded(r) ? *r : llvm::SmallVector<reference::RefTensor>{};
}

} // namespace kiln::test

#endif // KILN_TEST_EVALUATESOURCE_H
