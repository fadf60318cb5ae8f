//===- Evaluator.h - the reference evaluator of kiln IR -------------------===//
//
// Executes a function of kiln + func/arith/tensor ops in f64 on the CPU, one
// op at a time, in program order. It is the numerical ground truth every pass
// and every generated kernel is checked against, so it favours the plainest
// loops over speed. Each op family's execution rule lives in its own file
// (DenseRules.cpp, AttentionRules.cpp, MoERules.cpp, LossRules.cpp,
// GradRules.cpp, TrainRules.cpp, PrecisionRules.cpp, UpstreamRules.cpp); an
// op without a rule is an error naming the op.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_REFERENCE_EVALUATOR_H
#define KILN_REFERENCE_EVALUATOR_H

#include "dialects/kiln/reference/RefTensor.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Operation.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringRef.h"

#include <functional>

namespace kiln::reference {

/// An execution rule: computes `op`'s results from its operand values. On bad
/// values (an out-of-range index, ...) it emits an error at the op and fails.
using Rule = std::function<mlir::LogicalResult(
    mlir::Operation *op, llvm::ArrayRef<const RefTensor *> operands,
    llvm::SmallVectorImpl<RefTensor> &results)>;

/// Rules by op name ("kiln.linear", "arith.addf", ...).
class RuleTable {
public:
  void add(llvm::StringRef opName, Rule rule) { rules[opName] = std::move(rule); }
  const Rule *lookup(llvm::StringRef opName) const {
    auto it = rules.find(opName);
    return it == rules.end() ? nullptr : &it->second;
  }

private:
  llvm::StringMap<Rule> rules;
};

/// A value for a message: integers (ids, indices, offsets, all stored as
/// exact doubles) print as integers, other values with 17 digits.
std::string formatNumber(double value);

void addDenseRules(RuleTable &table);
void addAttentionRules(RuleTable &table);
void addDecodeRules(RuleTable &table);
void addGrpoRules(RuleTable &table);
void addMoERules(RuleTable &table);
void addLossRules(RuleTable &table);
void addUpstreamRules(RuleTable &table);
void addGradRules(RuleTable &table);
void addTrainRules(RuleTable &table);
void addPrecisionRules(RuleTable &table);

/// How the evaluator treats element types (../shared/DESIGN.md).
enum class Rounding {
  /// f64 throughout, whatever the declared types: the math's ground truth.
  Ideal,
  /// Every argument and every op's result rounded to its declared element
  /// type as Kiln's kernels store it (AsTyped.h): the bits a precision
  /// policy's program computes, so a pass is checked against its emulation.
  AsTyped,
};

class Evaluator {
public:
  explicit Evaluator(mlir::ModuleOp module, Rounding rounding = Rounding::Ideal);

  /// Runs function `name` on `args` (one per function argument, with the
  /// argument's shape). Errors are emitted as diagnostics at the failing op;
  /// calls through func.call are followed.
  mlir::FailureOr<llvm::SmallVector<RefTensor>> call(llvm::StringRef name,
                                                     llvm::ArrayRef<RefTensor> args);

  /// Adds or replaces the rule of `opName`: the multi-rank evaluator gives
  /// each rank's evaluator collective rules bound to that rank's
  /// communicators (MultiRank.h).
  void setRule(llvm::StringRef opName, Rule rule) { rules.add(opName, std::move(rule)); }

private:
  mlir::FailureOr<llvm::SmallVector<RefTensor>>
  run(mlir::Operation *func, llvm::ArrayRef<RefTensor> args, int depth);

  /// Rounds `t` to `type`'s element type in AsTyped mode.
  void roundToDeclaredType(RefTensor &t, mlir::Type type) const;

  mlir::ModuleOp module;
  Rounding rounding;
  RuleTable rules;
};

} // namespace kiln::reference

#endif // KILN_REFERENCE_EVALUATOR_H
