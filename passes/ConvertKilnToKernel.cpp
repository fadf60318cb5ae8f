//===- ConvertKilnToKernel.cpp - convert-kiln-to-kernel -------------------===//
//
// Bufferizes a kiln training step into the kernel level (see Passes.td). The
// step is one block of straight-line code, so this is a single walk in
// program order that gives each tensor value a buffer and rewrites each op
// into the launch, loop or alias that computes it there. The legality of
// in-place state updates is checked on the tensor IR first, before anything
// is rewritten, so a rejected step is left untouched.
//
//===----------------------------------------------------------------------===//

#include "dialects/kernel/KernelCatalog.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/TypeSwitch.h"

namespace kiln {
#define GEN_PASS_DEF_CONVERTKILNTOKERNEL
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using kiln::kernel::AllocOp;
using kiln::kernel::ElementwiseOp;
using kiln::kernel::LaunchOp;
using kiln::kernel::ReshapeOp;
using kiln::kernel::YieldOp;

namespace kiln {
namespace {

constexpr StringLiteral kResultAttr = "kiln.result";
constexpr StringLiteral kOutputAttr = "kiln.output";
constexpr StringLiteral kParamAttr = "kiln.param";
constexpr StringLiteral kStateAttr = "kiln.state";
constexpr StringLiteral kCacheAttr = "kiln.cache";

MemRefType bufferTypeOf(Type type) {
  auto tensor = cast<RankedTensorType>(type);
  return MemRefType::get(tensor.getShape(), tensor.getElementType());
}

//===----------------------------------------------------------------------===//
// Elementwise ops: their scalar bodies
//===----------------------------------------------------------------------===//

bool isElementwise(Operation *op) {
  if (isa<arith::AddFOp, arith::SubFOp, arith::MulFOp, arith::DivFOp, arith::NegFOp,
          math::SqrtOp, arith::TruncFOp, arith::ExtFOp>(op))
    return isa<RankedTensorType>(op->getResult(0).getType());
  return isa<ScaleOp, SiluOp, SwigluOp, SiluGradOp, SwigluGradOp>(op);
}

Value floatConstant(OpBuilder &b, Location loc, Type type, double value) {
  return arith::ConstantOp::create(b, loc, b.getFloatAttr(type, value));
}

/// 1 / (1 + exp(-x)), as runtime/kernels/KernelMath.h's sigmoidf.
Value sigmoid(OpBuilder &b, Location loc, Value x) {
  Value one = floatConstant(b, loc, x.getType(), 1.0);
  Value e = math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, x));
  return arith::DivFOp::create(b, loc, one, arith::AddFOp::create(b, loc, one, e));
}

/// The per-element values of `op`'s results from its per-element operands,
/// with the formulas of runtime/kernels/DenseMath.h.
SmallVector<Value> buildScalarBody(OpBuilder &b, Location loc, Operation *op, ValueRange a) {
  auto mul = [&](Value x, Value y) -> Value { return arith::MulFOp::create(b, loc, x, y); };
  auto one = [&] { return floatConstant(b, loc, a[0].getType(), 1.0); };
  auto sub = [&](Value x, Value y) -> Value { return arith::SubFOp::create(b, loc, x, y); };
  auto add = [&](Value x, Value y) -> Value { return arith::AddFOp::create(b, loc, x, y); };
  return TypeSwitch<Operation *, SmallVector<Value>>(op)
      .Case([&](arith::AddFOp) { return SmallVector<Value>{add(a[0], a[1])}; })
      .Case([&](arith::SubFOp) { return SmallVector<Value>{sub(a[0], a[1])}; })
      .Case([&](arith::MulFOp) { return SmallVector<Value>{mul(a[0], a[1])}; })
      .Case([&](arith::DivFOp) {
        return SmallVector<Value>{arith::DivFOp::create(b, loc, a[0], a[1])};
      })
      .Case([&](math::SqrtOp) { return SmallVector<Value>{math::SqrtOp::create(b, loc, a[0])}; })
      .Case([&](arith::TruncFOp) {
        Type to = getElementTypeOrSelf(op->getResult(0).getType());
        return SmallVector<Value>{arith::TruncFOp::create(b, loc, to, a[0])};
      })
      .Case([&](arith::ExtFOp) {
        Type to = getElementTypeOrSelf(op->getResult(0).getType());
        return SmallVector<Value>{arith::ExtFOp::create(b, loc, to, a[0])};
      })
      .Case([&](arith::NegFOp) {
        return SmallVector<Value>{arith::NegFOp::create(b, loc, a[0])};
      })
      .Case([&](ScaleOp s) {
        Value factor = floatConstant(b, loc, a[0].getType(), s.getFactor().convertToDouble());
        return SmallVector<Value>{mul(a[0], factor)};
      })
      .Case([&](SiluOp) { return SmallVector<Value>{mul(a[0], sigmoid(b, loc, a[0]))}; })
      .Case([&](SwigluOp) {
        return SmallVector<Value>{mul(mul(a[0], sigmoid(b, loc, a[0])), a[1])};
      })
      .Case([&](SiluGradOp) {
        // dx = dy * s (1 + x (1 - s)).
        Value s = sigmoid(b, loc, a[1]);
        Value d = mul(s, add(one(), mul(a[1], sub(one(), s))));
        return SmallVector<Value>{mul(a[0], d)};
      })
      .Case([&](SwigluGradOp) {
        // dgate = dy up s (1 + gate (1 - s)), dup = dy gate s.
        Value dy = a[0], gate = a[1], up = a[2];
        Value s = sigmoid(b, loc, gate);
        Value dgate = mul(mul(mul(dy, up), s), add(one(), mul(gate, sub(one(), s))));
        Value dup = mul(mul(dy, gate), s);
        return SmallVector<Value>{dgate, dup};
      })
      .Default([](Operation *) { return SmallVector<Value>{}; });
}

//===----------------------------------------------------------------------===//
// The conversion
//===----------------------------------------------------------------------===//

class StepLowering {
public:
  explicit StepLowering(func::FuncOp step) : step(step), body(step.getBody().front()) {}

  LogicalResult run();

private:
  LogicalResult checkInput();
  LogicalResult checkInPlace(Operation *update, ArrayRef<unsigned> stateOperands);
  LogicalResult lowerOp(Operation *op);
  LogicalResult lowerReturn(func::ReturnOp ret);

  Value bufferOf(Value tensor) { return buffers.lookup(tensor); }
  SmallVector<Value> buffersOf(ValueRange tensors) {
    return llvm::map_to_vector(tensors, [&](Value v) { return bufferOf(v); });
  }
  /// New allocs for `op`'s results, recorded as their buffers.
  SmallVector<Value> allocResults(OpBuilder &b, Operation *op);
  /// The buffer of `result`, the update of state `state`: the state's own
  /// argument buffer (updated in place; checkInput proved it legal), or a
  /// new alloc when the state is a temporary. Recorded as its buffer.
  Value updateBuffer(OpBuilder &b, Location loc, Value state, Value result);
  void launch(OpBuilder &b, Operation *op, StringRef kernel, ValueRange ins, ValueRange outs,
              DictionaryAttr params);

  func::FuncOp step;
  Block &body;
  IRMapping buffers;
};

LogicalResult StepLowering::checkInput() {
  if (!llvm::hasSingleElement(step.getBody()))
    return step.emitError() << "@" << step.getSymName()
                            << " must be a single block of straight-line code";
  for (BlockArgument arg : body.getArguments()) {
    auto type = dyn_cast<RankedTensorType>(arg.getType());
    if (!type || !type.hasStaticShape())
      return step.emitError() << "argument #" << arg.getArgNumber() << " of @"
                              << step.getSymName() << " must be a static-shaped tensor, got "
                              << arg.getType();
  }
  for (Operation &op : body.without_terminator()) {
    if (isa<func::CallOp>(op))
      return op.emitError() << "calls @" << cast<func::CallOp>(op).getCallee()
                            << "; run 'inline' before convert-kiln-to-kernel";
    for (Type t : op.getResultTypes()) {
      auto type = dyn_cast<RankedTensorType>(t);
      if (!type || !type.hasStaticShape())
        return op.emitError() << "has a result of type " << t
                              << "; the kernel level needs static-shaped tensors";
    }
    if (isa<AdamWOp>(op) && failed(checkInPlace(&op, {0, 2, 3})))
      return failure();
    if (isa<BiasUpdateOp>(op) && failed(checkInPlace(&op, {0})))
      return failure();
    if (isa<GradScalerOp>(op) && failed(checkInPlace(&op, {1, 2, 3})))
      return failure();
    if (isa<TopkCompressOp, SparsityMask24Op>(op) && isa<BlockArgument>(op.getOperand(1)) &&
        failed(checkInPlace(&op, {1})))
      return failure();
    if (isa<CacheWriteOp>(op) && isa<BlockArgument>(op.getOperand(0)) &&
        failed(checkInPlace(&op, {0})))
      return failure();
  }
  return success();
}

/// An update of state operand `i` may overwrite its argument buffer only if
/// the operand is an argument and nothing reads it later.
LogicalResult StepLowering::checkInPlace(Operation *update, ArrayRef<unsigned> stateOperands) {
  for (unsigned i : stateOperands) {
    Value state = update->getOperand(i);
    // A temporary that only this update reads may be overwritten too: the
    // parameter shard a ZeRO-1 step updates (kiln.local_shard of the
    // parameter), which it then all-gathers back.
    if (!isa<BlockArgument>(state) && state.hasOneUse())
      continue;
    if (!isa<BlockArgument>(state))
      return update->emitError() << "updates operand #" << i
                                 << " in place, but it is neither an argument of @"
                                 << step.getSymName() << " nor a temporary only it reads";
    for (Operation *user : state.getUsers())
      if (user != update && update->isBeforeInBlock(user))
        return user->emitError()
               << "reads argument #" << cast<BlockArgument>(state).getArgNumber()
               << " after '" << update->getName()
               << "' updated it in place; state must be read before its update";
  }
  return success();
}

SmallVector<Value> StepLowering::allocResults(OpBuilder &b, Operation *op) {
  SmallVector<Value> outs;
  for (Value result : op->getResults()) {
    Value alloc = AllocOp::create(b, op->getLoc(), bufferTypeOf(result.getType()));
    buffers.map(result, alloc);
    outs.push_back(alloc);
  }
  return outs;
}

Value StepLowering::updateBuffer(OpBuilder &b, Location loc, Value state, Value result) {
  Value buffer = isa<BlockArgument>(state)
                     ? bufferOf(state)
                     : AllocOp::create(b, loc, bufferTypeOf(result.getType())).getResult();
  buffers.map(result, buffer);
  return buffer;
}

void StepLowering::launch(OpBuilder &b, Operation *op, StringRef kernel, ValueRange ins,
                          ValueRange outs, DictionaryAttr params) {
  LaunchOp::create(b, op->getLoc(), b.getStringAttr(kernel), ins, outs, params);
}

/// Attributes of `op` named in `names`, as a launch's params.
DictionaryAttr pickAttrs(Operation *op, ArrayRef<StringRef> names) {
  SmallVector<NamedAttribute> picked;
  for (StringRef name : names)
    if (Attribute attr = op->getAttr(name))
      picked.push_back(NamedAttribute(StringAttr::get(op->getContext(), name), attr));
  return DictionaryAttr::get(op->getContext(), picked);
}

LogicalResult StepLowering::lowerOp(Operation *op) {
  OpBuilder b(op);
  Location loc = op->getLoc();
  MLIRContext *ctx = op->getContext();

  if (isElementwise(op)) {
    SmallVector<Value> ins = buffersOf(op->getOperands());
    SmallVector<Value> outs = allocResults(b, op);
    auto loop = ElementwiseOp::create(b, loc, ins, outs,
                                      b.getStrArrayAttr({op->getName().getStringRef()}));
    Block *loopBody = b.createBlock(&loop.getBody());
    for (Value in : ins)
      loopBody->addArgument(cast<MemRefType>(in.getType()).getElementType(), loc);
    b.setInsertionPointToStart(loopBody);
    SmallVector<Value> values = buildScalarBody(b, loc, op, loopBody->getArguments());
    YieldOp::create(b, loc, values);
    return success();
  }

  return TypeSwitch<Operation *, LogicalResult>(op)
      .Case([&](arith::ConstantOp constant) -> LogicalResult {
        auto splat = dyn_cast<SplatElementsAttr>(constant.getValue());
        if (!splat)
          return op->emitError() << "is a non-splat tensor constant; the kernel level "
                                    "has only splat fills";
        double value = isa<FloatType>(splat.getElementType())
                           ? splat.getSplatValue<APFloat>().convertToDouble()
                           : double(splat.getSplatValue<APInt>().getSExtValue());
        SmallVector<Value> outs = allocResults(b, op);
        launch(b, op, "fill", {}, outs,
               DictionaryAttr::get(ctx, {NamedAttribute(StringAttr::get(ctx, "value"),
                                                        b.getF64FloatAttr(value))}));
        return success();
      })
      .Case<tensor::ExpandShapeOp, tensor::CollapseShapeOp>([&](Operation *) {
        Value alias = ReshapeOp::create(b, loc, bufferTypeOf(op->getResult(0).getType()),
                                        bufferOf(op->getOperand(0)));
        buffers.map(op->getResult(0), alias);
        return success();
      })
      .Case([&](tensor::ExtractSliceOp slice) -> LogicalResult {
        if (!slice.getOffsets().empty() || !slice.getSizes().empty() ||
            !slice.getStrides().empty())
          return op->emitError() << "has dynamic offsets, sizes or strides";
        SmallVector<Value> outs = allocResults(b, op);
        launch(b, op, "extract_slice", {bufferOf(slice.getSource())}, outs,
               pickAttrs(op, {"static_offsets", "static_sizes", "static_strides"}));
        return success();
      })
      .Case([&](tensor::InsertSliceOp slice) -> LogicalResult {
        if (!slice.getOffsets().empty() || !slice.getSizes().empty() ||
            !slice.getStrides().empty())
          return op->emitError() << "has dynamic offsets, sizes or strides";
        SmallVector<Value> outs = allocResults(b, op);
        launch(b, op, "insert_slice", {bufferOf(slice.getSource()), bufferOf(slice.getDest())},
               outs, pickAttrs(op, {"static_offsets", "static_sizes", "static_strides"}));
        return success();
      })
      .Case([&](tensor::ConcatOp concat) {
        SmallVector<Value> outs = allocResults(b, op);
        launch(b, op, "concat", buffersOf(concat.getInputs()), outs, pickAttrs(op, {"dim"}));
        return success();
      })
      .Case([&](AdamWOp adamw) {
        // In place: the new parameter and moments overwrite the old ones.
        SmallVector<Value> state =
            buffersOf({adamw.getParam(), adamw.getM(), adamw.getV()});
        for (auto [result, buffer] : llvm::zip(op->getResults(), state))
          buffers.map(result, buffer);
        launch(b, op, "adamw", buffersOf(op->getOperands()), state, op->getAttrDictionary());
        return success();
      })
      .Case([&](TopkCompressOp compress) {
        // Error feedback: the new residual overwrites the old one (a step
        // argument); without it the residual is zeros and the new one a
        // temporary nothing reads.
        Value message = AllocOp::create(b, op->getLoc(), bufferTypeOf(compress.getMessage().getType()));
        Value residual = updateBuffer(b, loc, compress.getResidual(), compress.getNewResidual());
        buffers.map(compress.getMessage(), message);
        launch(b, op, "topk_compress", buffersOf(op->getOperands()), {message, residual},
               op->getAttrDictionary());
        return success();
      })
      .Case([&](SparsityMask24Op update) {
        // The mask state is updated in place (the kernel allows out == mask).
        Value out = updateBuffer(b, loc, update.getMask(), update.getResult());
        launch(b, op, "sparsity_mask_2_4", buffersOf(op->getOperands()), {out},
               op->getAttrDictionary());
        return success();
      })
      .Case([&](GradScalerOp scaler) {
        // In place: the scale, tracker and update count overwrite their
        // arguments; the skip flag and the inverse scale are new.
        Value skip = AllocOp::create(b, loc, bufferTypeOf(scaler.getSkip().getType()));
        Value inv = AllocOp::create(b, loc, bufferTypeOf(scaler.getInvScale().getType()));
        buffers.map(scaler.getSkip(), skip);
        buffers.map(scaler.getInvScale(), inv);
        SmallVector<Value> outs = {skip, inv};
        for (auto [result, state] :
             llvm::zip(op->getResults().drop_front(2), op->getOperands().drop_front())) {
          buffers.map(result, bufferOf(state));
          outs.push_back(bufferOf(state));
        }
        launch(b, op, "grad_scaler", buffersOf(op->getOperands()), outs, op->getAttrDictionary());
        return success();
      })
      .Case([&](CacheWriteOp write) {
        // A decode program's KV cache is updated in place (the kernel allows
        // out == cache); a cache that is a temporary gets a new buffer.
        Value out = updateBuffer(b, loc, write.getCache(), write.getResult());
        launch(b, op, "cache_write", buffersOf(op->getOperands()), {out},
               op->getAttrDictionary());
        return success();
      })
      .Case([&](BiasUpdateOp update) {
        Value bias = bufferOf(update.getBias());
        buffers.map(update.getResult(), bias);
        launch(b, op, "bias_update", buffersOf(op->getOperands()), {bias},
               op->getAttrDictionary());
        return success();
      })
      .Default([&](Operation *) -> LogicalResult {
        StringRef name = op->getName().getStringRef();
        if (!name.consume_front("kiln.") || !kernel::lookupKernel(name))
          return op->emitError() << "'" << op->getName()
                                 << "' has no kernel in the kernel catalog "
                                    "(dialects/kernel/KernelCatalog.cpp)";
        SmallVector<Value> ins = buffersOf(op->getOperands());
        SmallVector<Value> outs = allocResults(b, op);
        launch(b, op, name, ins, outs, op->getAttrDictionary());
        return success();
      });
}

/// The last op before `end` that uses `buffer` or a reshape alias of it (so
/// the last that can write it), or null.
static Operation *lastUserOfBuffer(Value buffer, Operation *end) {
  Value root = buffer;
  while (auto reshape = root.getDefiningOp<ReshapeOp>())
    root = reshape.getSource();
  SmallVector<Value> aliases = {root};
  Operation *last = nullptr;
  for (size_t i = 0; i < aliases.size(); ++i)
    for (Operation *user : aliases[i].getUsers()) {
      if (auto reshape = dyn_cast<ReshapeOp>(user))
        aliases.push_back(reshape.getResult());
      if (user != end && user->getBlock() == end->getBlock() &&
          (!last || last->isBeforeInBlock(user)))
        last = user;
    }
  return last;
}

/// `to` = `from`, as an identity elementwise loop.
static void emitCopy(OpBuilder &b, Location loc, Value from, Value to) {
  auto copy = ElementwiseOp::create(b, loc, ValueRange{from}, ValueRange{to},
                                    b.getStrArrayAttr({"copy"}));
  Block *copyBody = b.createBlock(&copy.getBody());
  copyBody->addArgument(cast<MemRefType>(from.getType()).getElementType(), loc);
  b.setInsertionPointToStart(copyBody);
  YieldOp::create(b, loc, copyBody->getArguments());
}

LogicalResult StepLowering::lowerReturn(func::ReturnOp ret) {
  MLIRContext *ctx = step.getContext();
  unsigned numOldArgs = body.getNumArguments();
  SmallVector<DictionaryAttr> newArgAttrs;
  for (auto [i, result] : llvm::enumerate(ret.getOperands())) {
    DictionaryAttr attrs = step.getResultAttrDict(i);
    auto role = attrs ? attrs.getAs<StringAttr>(kResultAttr) : StringAttr();
    if (!role)
      return ret.emitError() << "result #" << i << " of @" << step.getSymName()
                             << " has no kiln.result role";
    Value buffer = bufferOf(result);
    if (role == "kv_cache") {
      // A decode program's cache must have been updated in its argument.
      auto name = attrs.getAs<StringAttr>(kCacheAttr);
      auto arg = dyn_cast<BlockArgument>(buffer);
      if (name && arg && arg.getOwner() == &body &&
          step.getArgAttr(arg.getArgNumber(), kCacheAttr) == name)
        continue;
      return ret.emitError() << "result #" << i << " (kv_cache '"
                             << (name ? name.getValue() : StringRef("?"))
                             << "') is not an in-place update of its cache argument";
    }
    if (role == "param" || role == "exp_avg" || role == "exp_avg_sq" ||
        role == "grad_residual" || role == "sparsity_mask" || isLossScalerStateRole(role)) {
      // State must have been updated in its own argument's buffer.
      auto name = attrs.getAs<StringAttr>(kParamAttr);
      auto arg = dyn_cast<BlockArgument>(buffer);
      bool matches = arg && arg.getOwner() == &body &&
                     step.getArgAttr(arg.getArgNumber(), kParamAttr) == name &&
                     (role == "param"
                          ? !step.getArgAttr(arg.getArgNumber(), kStateAttr)
                          : step.getArgAttr(arg.getArgNumber(), kStateAttr) == role);
      if (matches)
        continue;
      // A parameter rebuilt elsewhere (ZeRO-1 all-gathers it from the ranks'
      // updated shards) is copied into its argument at the end of the step,
      // after every read of the old value.
      BlockArgument param;
      for (BlockArgument a : body.getArguments())
        if (role == "param" && name && step.getArgAttr(a.getArgNumber(), kParamAttr) == name &&
            !step.getArgAttr(a.getArgNumber(), kStateAttr))
          param = a;
      if (!param)
        return ret.emitError() << "result #" << i << " (" << role.getValue() << " of '"
                               << (name ? name.getValue() : StringRef("?"))
                               << "') is not an in-place update of its argument";
      // Right after the new value is complete when every read of the old one
      // came before (the gathered buffer then dies at once), else at the end.
      OpBuilder b(ret);
      Operation *lastWrite = lastUserOfBuffer(buffer, ret);
      if (lastWrite && llvm::all_of(param.getUsers(), [&](Operation *user) {
            return user == ret || user->isBeforeInBlock(lastWrite) || user == lastWrite;
          }))
        b.setInsertionPointAfter(lastWrite);
      emitCopy(b, ret.getLoc(), buffer, param);
      continue;
    }
    // An output: the kernel that computes it writes the output argument.
    BlockArgument out = body.addArgument(buffer.getType(), result.getLoc());
    NamedAttrList outAttrs(attrs);
    outAttrs.erase(kResultAttr);
    outAttrs.set(kOutputAttr, role);
    newArgAttrs.push_back(outAttrs.getDictionary(ctx));
    auto alloc = buffer.getDefiningOp<AllocOp>();
    if (alloc) {
      alloc.getResult().replaceAllUsesWith(out);
      alloc.erase();
      buffers.map(result, out);
      continue;
    }
    // Already an output (the same value returned twice) or an argument: copy.
    OpBuilder b(ret);
    emitCopy(b, ret.getLoc(), buffer, out);
  }
  OpBuilder b(ret);
  func::ReturnOp::create(b, ret.getLoc());
  ret.erase();

  SmallVector<DictionaryAttr> argAttrs;
  for (unsigned i = 0; i < numOldArgs; ++i)
    argAttrs.push_back(step.getArgAttrDict(i));
  argAttrs.append(newArgAttrs);
  step.setType(FunctionType::get(ctx, body.getArgumentTypes(), {}));
  step.setAllArgAttrs(argAttrs);
  step.removeResAttrsAttr();
  return success();
}

LogicalResult StepLowering::run() {
  if (failed(checkInput()))
    return failure();
  for (BlockArgument arg : body.getArguments()) {
    arg.setType(bufferTypeOf(arg.getType()));
    buffers.map(arg, arg);
  }
  SmallVector<Operation *> ops =
      llvm::map_to_vector(body.without_terminator(), [](Operation &op) { return &op; });
  for (Operation *op : ops)
    if (failed(lowerOp(op)))
      return failure();
  if (failed(lowerReturn(cast<func::ReturnOp>(body.getTerminator()))))
    return failure();
  for (Operation *op : llvm::reverse(ops)) {
    op->dropAllUses();
    op->erase();
  }
  return success();
}

struct ConvertKilnToKernelPass
    : impl::ConvertKilnToKernelBase<ConvertKilnToKernelPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    // Per-rank programs (kiln-pipeline's stages, kiln.program = "<entry>")
    // are lowered each; otherwise the one SPMD step @<entry>.
    SmallVector<func::FuncOp> steps;
    for (auto func : module.getOps<func::FuncOp>())
      if (auto program = func->getAttrOfType<StringAttr>("kiln.program");
          program && program.getValue() == entry && !func.isExternal())
        steps.push_back(func);
    if (steps.empty()) {
      auto step = module.lookupSymbol<func::FuncOp>(entry);
      if (!step || step.isExternal()) {
        module.emitError() << "convert-kiln-to-kernel: no function @" << entry
                           << " with a body to lower";
        return signalPassFailure();
      }
      steps.push_back(step);
    }
    for (func::FuncOp step : steps)
      if (failed(StepLowering(step).run()))
        return signalPassFailure();
    // The kernel-level module holds the steps alone.
    for (auto func : llvm::make_early_inc_range(module.getOps<func::FuncOp>()))
      if (!llvm::is_contained(steps, func))
        func.erase();
  }
};

} // namespace
} // namespace kiln
