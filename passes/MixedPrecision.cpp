//===- MixedPrecision.cpp - kiln-mixed-precision: GEMMs in bf16, f16, FP8 -===//
//
// Lowers the GEMMs of the low-precision families (Passes.td has the table)
// to the policy's type with explicit conversions around them, before
// autodiff, so that the backward GEMMs come out in the same type and every
// gradient is widened to f32 before it is accumulated. FP8 linear and expert
// GEMMs are only marked here: their three GEMMs exist after autodiff, and
// kiln-lower-fp8 quantizes each as DeepSeek-V3 does.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/StringExtras.h"

namespace kiln {
#define GEN_PASS_DEF_KILNMIXEDPRECISION
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

/// The GEMM families of the rule table (Passes.td), in its order.
enum class Family { Linear, Expert, Head, Gate };

struct FamilyRule {
  StringRef name;
  Family family;
  bool lowByDefault;
};

constexpr FamilyRule kFamilyRules[] = {
    {"linear", Family::Linear, true},
    {"expert", Family::Expert, true},
    {"head", Family::Head, false},
    {"gate", Family::Gate, false},
};

const FamilyRule *findRule(StringRef name) {
  for (const FamilyRule &rule : kFamilyRules)
    if (rule.name == name)
      return &rule;
  return nullptr;
}

/// Where values flow: through reshapes, and from a function's results to
/// the results of every call of it.
class DataFlow {
public:
  explicit DataFlow(ModuleOp module) {
    module.walk([&](func::CallOp call) {
      callers[call.getCalleeAttr().getAttr()].push_back(call);
    });
  }

  /// Whether `start` becomes operand #0 of an OpTy (the logits of
  /// kiln.cross_entropy and kiln.router).
  template <typename OpTy> bool reachesFirstOperandOf(Value start) const {
    SmallVector<Value> work = {start};
    llvm::DenseSet<Value> seen;
    while (!work.empty()) {
      Value value = work.pop_back_val();
      if (!seen.insert(value).second)
        continue;
      for (OpOperand &use : value.getUses()) {
        Operation *user = use.getOwner();
        if (isa<OpTy>(user) && use.getOperandNumber() == 0)
          return true;
        if (isa<tensor::CollapseShapeOp, tensor::ExpandShapeOp, tensor::CastOp>(user))
          work.push_back(user->getResult(0));
        else if (isa<func::ReturnOp>(user))
          for (func::CallOp call :
               callers.lookup(user->getParentOfType<func::FuncOp>().getSymNameAttr()))
            work.push_back(call.getResult(use.getOperandNumber()));
      }
    }
    return false;
  }

private:
  DenseMap<StringAttr, SmallVector<func::CallOp>> callers;
};

bool isF32Tensor(Type type) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  return tensor && tensor.getElementType().isF32();
}

struct KilnMixedPrecision : impl::KilnMixedPrecisionBase<KilnMixedPrecision> {
  using Base::Base;

  void runOnOperation() override;

private:
  /// The families lowered, from the defaults and the options; fails with an
  /// error naming a bad option.
  FailureOr<DenseSet<unsigned>> lowFamilies();
  /// `op`'s family, or nothing for an op that is not a GEMM of the table.
  std::optional<Family> familyOf(Operation *op, const DataFlow &flow) const;
  /// Rewrites `op` to read and write `low` (the file comment).
  void lower(Operation *op, FloatType low) const;
};

FailureOr<DenseSet<unsigned>> KilnMixedPrecision::lowFamilies() {
  ModuleOp module = getOperation();
  auto known = [&] {
    return llvm::join(llvm::map_range(kFamilyRules, [](const FamilyRule &r) { return r.name; }),
                      ", ");
  };
  DenseSet<unsigned> low;
  for (const FamilyRule &rule : kFamilyRules)
    if (rule.lowByDefault)
      low.insert(unsigned(rule.family));
  for (const std::string &name : highPrecision) {
    const FamilyRule *rule = findRule(name);
    if (!rule)
      return module.emitError() << "kiln-mixed-precision: high-precision names '" << name
                                << "', which is not a GEMM family (" << known() << ")",
             failure();
    if (llvm::is_contained(lowPrecision, name))
      return module.emitError() << "kiln-mixed-precision: family '" << name
                                << "' is in both high-precision and low-precision",
             failure();
    low.erase(unsigned(rule->family));
  }
  for (const std::string &name : lowPrecision) {
    const FamilyRule *rule = findRule(name);
    if (!rule)
      return module.emitError() << "kiln-mixed-precision: low-precision names '" << name
                                << "', which is not a GEMM family (" << known()
                                << "); embedding, normalisation, attention and the losses "
                                   "stay f32",
             failure();
    low.insert(unsigned(rule->family));
  }
  return low;
}

std::optional<Family> KilnMixedPrecision::familyOf(Operation *op, const DataFlow &flow) const {
  if (isa<GroupedMatmulOp>(op))
    return Family::Expert;
  if (!isa<LinearOp>(op))
    return std::nullopt;
  Value result = op->getResult(0);
  if (flow.reachesFirstOperandOf<CrossEntropyOp>(result))
    return Family::Head;
  if (flow.reachesFirstOperandOf<RouterOp>(result))
    return Family::Gate;
  return Family::Linear;
}

void KilnMixedPrecision::lower(Operation *op, FloatType low) const {
  OpBuilder b(op);
  for (OpOperand &operand : op->getOpOperands()) {
    auto type = dyn_cast<RankedTensorType>(operand.get().getType());
    if (!type || !isa<FloatType>(type.getElementType()))
      continue; // expert offsets
    operand.set(arith::TruncFOp::create(b, op->getLoc(), type.clone(low), operand.get()));
  }
  Value result = op->getResult(0);
  auto wideType = cast<RankedTensorType>(result.getType());
  result.setType(wideType.clone(low));
  b.setInsertionPointAfter(op);
  auto wide = arith::ExtFOp::create(b, op->getLoc(), wideType, result);
  result.replaceAllUsesExcept(wide, wide);
}

void KilnMixedPrecision::runOnOperation() {
  ModuleOp module = getOperation();
  MLIRContext *context = &getContext();
  // fp8 marks every GEMM of a lowered family (all are linears or grouped
  // expert GEMMs) for kiln-lower-fp8; the elementwise math around them is
  // f32 here and bf16 in DeepSeek-V3.
  const bool fp8 = policy == "fp8";
  FloatType low;
  if (policy == "bf16" || fp8)
    low = BFloat16Type::get(context);
  else if (policy == "fp16")
    low = Float16Type::get(context);
  else
    return module.emitError() << "kiln-mixed-precision: unknown policy '" << policy
                              << "'; expected bf16, fp16 or fp8",
           signalPassFailure();
  FailureOr<DenseSet<unsigned>> lowSet = lowFamilies();
  if (failed(lowSet))
    return signalPassFailure();

  DataFlow flow(module);
  SmallVector<std::pair<Operation *, Family>> gemms;
  module.walk([&](Operation *op) {
    if (std::optional<Family> family = familyOf(op, flow))
      gemms.push_back({op, *family});
  });
  int64_t lowered[4] = {}, kept[4] = {};
  for (auto [op, family] : gemms) {
    bool allF32 = llvm::all_of(op->getOperands(), [](Value v) {
      auto t = dyn_cast<RankedTensorType>(v.getType());
      return !t || !isa<FloatType>(t.getElementType()) || t.getElementType().isF32();
    }) && isF32Tensor(op->getResult(0).getType());
    if (allF32 && lowSet->contains(unsigned(family))) {
      if (fp8 && isa<LinearOp, GroupedMatmulOp>(op))
        op->setDiscardableAttr(kFp8Attr, UnitAttr::get(context));
      else
        lower(op, low);
      ++lowered[unsigned(family)];
    } else {
      ++kept[unsigned(family)];
    }
  }
  if (report) {
    InFlightDiagnostic remark = emitRemark(module.getLoc()) << "kiln-mixed-precision: " << policy
                                                    << " GEMMs";
    for (const FamilyRule &rule : kFamilyRules)
      remark << "; " << rule.name << " " << lowered[unsigned(rule.family)] << " lowered, "
             << kept[unsigned(rule.family)] << " kept";
  }
}

} // namespace
} // namespace kiln
