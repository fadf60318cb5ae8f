//===- BackwardSplit.cpp - a block backward cut into dgrad and wgrad halves ===//

#include "passes/BackwardSplit.h"

#include "mlir/IR/IRMapping.h"

#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SetVector.h"

using namespace mlir;

namespace kiln {

llvm::BitVector sliceOfResults(func::FuncOp f, const llvm::BitVector &results,
                               llvm::DenseSet<Operation *> &slice) {
  Block &body = f.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  llvm::BitVector args(body.getNumArguments());
  SmallVector<Value> work;
  for (unsigned i : results.set_bits())
    work.push_back(ret.getOperand(i));
  while (!work.empty()) {
    Value v = work.pop_back_val();
    if (auto arg = dyn_cast<BlockArgument>(v)) {
      if (arg.getOwner() == &body)
        args.set(arg.getArgNumber());
      continue;
    }
    if (Operation *def = v.getDefiningOp())
      if (slice.insert(def).second)
        work.append(def->operand_begin(), def->operand_end());
  }
  return args;
}

FailureOr<BackwardSplit> splitBackward(func::FuncOp backward, const llvm::BitVector &needed,
                                       SymbolTable &symbols) {
  if (!backward.getBody().hasOneBlock())
    return backward.emitError() << "kiln-pipeline: cannot split @" << backward.getSymName()
                                << " into input and weight gradients: expected one block";
  Block &body = backward.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  for (Operation &op : body.without_terminator())
    if (op.getNumRegions() != 0)
      return op.emitError() << "kiln-pipeline: cannot split @" << backward.getSymName()
                            << " into input and weight gradients: ops with regions are not "
                               "supported";

  // The input half: every op the needed results depend on.
  llvm::DenseSet<Operation *> slice;
  sliceOfResults(backward, needed, slice);
  // What the weight half reads from the input half.
  llvm::SetVector<Value> bridges;
  auto fromSlice = [&](Value v) {
    Operation *def = v.getDefiningOp();
    return def && slice.contains(def);
  };
  for (Operation &op : body.without_terminator())
    if (!slice.contains(&op))
      for (Value operand : op.getOperands())
        if (fromSlice(operand))
          bridges.insert(operand);
  for (unsigned i = 0; i < ret.getNumOperands(); ++i)
    if (!needed.test(i) && fromSlice(ret.getOperand(i)))
      bridges.insert(ret.getOperand(i));

  MLIRContext *ctx = backward.getContext();
  OpBuilder b(ctx);
  SmallVector<Type> argTypes(backward.getArgumentTypes());
  // A private function next to `backward` with its argument attributes,
  // `b` at the end of its body.
  auto makeHalf = [&](StringRef suffix, TypeRange args, TypeRange results) {
    b.clearInsertionPoint();
    auto half = func::FuncOp::create(b, backward.getLoc(), (backward.getSymName() + suffix).str(),
                                     FunctionType::get(ctx, args, results));
    half.setPrivate();
    for (unsigned i = 0; i < backward.getNumArguments(); ++i)
      half.setArgAttrs(i, backward.getArgAttrDict(i));
    b.setInsertionPointToEnd(half.addEntryBlock());
    return half;
  };

  SmallVector<Type> inputResults;
  for (unsigned i : needed.set_bits())
    inputResults.push_back(ret.getOperand(i).getType());
  for (Value v : bridges)
    inputResults.push_back(v.getType());
  func::FuncOp input = makeHalf("_input", argTypes, inputResults);
  {
    IRMapping map;
    map.map(body.getArguments(), input.getArguments());
    for (Operation &op : body.without_terminator())
      if (slice.contains(&op))
        b.clone(op, map);
    SmallVector<Value> results;
    for (unsigned i : needed.set_bits())
      results.push_back(map.lookupOrDefault(ret.getOperand(i)));
    for (Value v : bridges)
      results.push_back(map.lookup(v));
    func::ReturnOp::create(b, ret.getLoc(), results);
  }

  SmallVector<Type> weightArgs(argTypes), weightResults;
  for (Value v : bridges)
    weightArgs.push_back(v.getType());
  for (unsigned i = 0; i < ret.getNumOperands(); ++i)
    if (!needed.test(i))
      weightResults.push_back(ret.getOperand(i).getType());
  func::FuncOp weight = makeHalf("_weight", weightArgs, weightResults);
  {
    IRMapping map;
    map.map(body.getArguments(), weight.getArguments().take_front(body.getNumArguments()));
    for (auto [k, v] : llvm::enumerate(bridges))
      map.map(v, weight.getArgument(body.getNumArguments() + k));
    for (Operation &op : body.without_terminator())
      if (!slice.contains(&op))
        b.clone(op, map);
    SmallVector<Value> results;
    for (unsigned i = 0; i < ret.getNumOperands(); ++i)
      if (!needed.test(i))
        results.push_back(map.lookupOrDefault(ret.getOperand(i)));
    func::ReturnOp::create(b, ret.getLoc(), results);
  }
  symbols.insert(input, Block::iterator(backward));
  symbols.insert(weight, Block::iterator(backward));
  return BackwardSplit{input, weight, needed, unsigned(needed.count()), unsigned(bridges.size())};
}

} // namespace kiln
