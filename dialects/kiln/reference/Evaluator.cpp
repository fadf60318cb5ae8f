//===- Evaluator.cpp - interpreter loop of the reference evaluator --------===//

#include "dialects/kiln/reference/Evaluator.h"
#include "dialects/kiln/ShapeCheck.h"
#include "dialects/kiln/reference/AsTyped.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/SymbolTable.h"

#include <cstdio>

using namespace mlir;

namespace kiln::reference {

std::string formatNumber(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.17g", value);
  return buffer;
}

// Deep enough for any model (forward -> block -> sub-block), shallow enough
// that a recursive function fails with a message instead of a stack overflow.
static constexpr int kMaxCallDepth = 64;

Evaluator::Evaluator(ModuleOp module, Rounding rounding) : module(module), rounding(rounding) {
  addDenseRules(rules);
  addAttentionRules(rules);
  addDecodeRules(rules);
  addGrpoRules(rules);
  addMoERules(rules);
  addLossRules(rules);
  addUpstreamRules(rules);
  addGradRules(rules);
  addTrainRules(rules);
  addPrecisionRules(rules);
}

void Evaluator::roundToDeclaredType(RefTensor &t, Type type) const {
  if (rounding != Rounding::AsTyped)
    return;
  Type elementType = getElementTypeOrSelf(type);
  if (!isa<FloatType>(elementType))
    return;
  for (double &x : t.data)
    x = roundAsTyped(x, elementType);
}

FailureOr<SmallVector<RefTensor>> Evaluator::call(StringRef name,
                                                  ArrayRef<RefTensor> args) {
  auto func = module.lookupSymbol<func::FuncOp>(name);
  if (!func || func.isExternal())
    return module.emitError() << "reference evaluator: no function @" << name
                              << " with a body in this module",
           failure();
  return run(func, args, 0);
}

/// Checks that `value` can stand for a value of type `type`.
static LogicalResult checkValueType(Operation *at, StringRef what, Type type,
                                    const RefTensor &value) {
  ArrayRef<int64_t> shape;
  if (auto shaped = dyn_cast<RankedTensorType>(type))
    shape = shaped.getShape();
  if (ArrayRef<int64_t>(value.shape) == shape)
    return success();
  return at->emitError() << "reference evaluator: " << what << " has shape "
                         << formatShape(value.shape) << ", expected "
                         << formatShape(shape) << " (" << type << ")";
}

FailureOr<SmallVector<RefTensor>>
Evaluator::run(Operation *funcOp, ArrayRef<RefTensor> args, int depth) {
  auto func = cast<func::FuncOp>(funcOp);
  if (depth > kMaxCallDepth)
    return func.emitError() << "reference evaluator: call depth exceeds "
                            << kMaxCallDepth << " (recursive calls?)",
           failure();
  Block &body = func.getBody().front();
  if (args.size() != body.getNumArguments())
    return func.emitError() << "reference evaluator: @" << func.getSymName()
                            << " takes " << body.getNumArguments()
                            << " arguments, got " << args.size(),
           failure();

  DenseMap<Value, RefTensor> env;
  for (auto [i, arg] : llvm::enumerate(body.getArguments())) {
    if (failed(checkValueType(func, "argument #" + std::to_string(i) + " of @" +
                                        func.getSymName().str(),
                              arg.getType(), args[i])))
      return failure();
    env[arg] = args[i];
    env[arg].elementType = getElementTypeOrSelf(arg.getType());
    roundToDeclaredType(env[arg], arg.getType());
  }

  auto operandsOf = [&](Operation &op) {
    SmallVector<const RefTensor *> operands;
    for (Value v : op.getOperands())
      operands.push_back(&env.find(v)->second);
    return operands;
  };

  for (Operation &op : body) {
    if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      SmallVector<RefTensor> results;
      for (Value v : ret.getOperands())
        results.push_back(env.find(v)->second);
      return results;
    }
    SmallVector<RefTensor> results;
    if (auto callOp = dyn_cast<func::CallOp>(op)) {
      auto callee = module.lookupSymbol<func::FuncOp>(callOp.getCallee());
      if (!callee || callee.isExternal())
        return op.emitError() << "reference evaluator: callee @"
                              << callOp.getCallee() << " has no body",
               failure();
      SmallVector<RefTensor> callArgs;
      for (const RefTensor *t : operandsOf(op))
        callArgs.push_back(*t);
      FailureOr<SmallVector<RefTensor>> out = run(callee, callArgs, depth + 1);
      if (failed(out)) {
        op.emitRemark() << "called from here";
        return failure();
      }
      results = std::move(*out);
    } else {
      const Rule *rule = rules.lookup(op.getName().getStringRef());
      if (!rule)
        return op.emitError() << "reference evaluator: no execution rule for '"
                              << op.getName() << "'",
               failure();
      if (failed((*rule)(&op, operandsOf(op), results)))
        return failure();
    }
    if (results.size() != op.getNumResults())
      return op.emitError() << "reference evaluator: rule produced "
                            << results.size() << " results, op has "
                            << op.getNumResults(),
             failure();
    for (auto [value, result] : llvm::zip(op.getResults(), results)) {
      if (failed(checkValueType(&op, "a result", value.getType(), result)))
        return failure();
      result.elementType = getElementTypeOrSelf(value.getType());
      // A call's results were rounded by the callee's own ops.
      if (!isa<func::CallOp>(op))
        roundToDeclaredType(result, value.getType());
      env[value] = std::move(result);
    }
  }
  return func.emitError() << "reference evaluator: @" << func.getSymName()
                          << " has no func.return",
         failure();
}

} // namespace kiln::reference
