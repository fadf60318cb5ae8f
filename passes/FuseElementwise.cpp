//===- FuseElementwise.cpp - kiln-fuse-elementwise: one loop per chain ----===//
//
// Works on buffers, after convert-kiln-to-kernel, where "who reads this
// intermediate" is a plain use-list question: a producer loop whose out is
// read by exactly one later loop and nothing else is folded into that loop,
// and the intermediate buffer (and its memory traffic) disappears. This is
// XLA's loop fusion restricted to the case that never recomputes anything.
//
// A loop that only widens a buffer (mixed precision's arith.extf of a bf16
// GEMM result, say) is instead redone inside every loop that reads its out:
// they read the narrow buffer and widen it themselves, exactly, moving half
// the bytes, and the wide copy stays only for library kernels that read it.
// This is the one recomputation the pass allows: a conversion costs less
// than the load it replaces.
//
// A loop that computes what an earlier loop already computed (the same
// ins, an equivalent body, nothing written to either in between: mixed
// precision's truncf of one activation for each GEMM that reads it, q, k
// and v) is dropped, and its readers read the earlier loop's out, where
// that out is live until the later one's last reader anyway (so no buffer
// lives longer: a recomputation stays one).
//
// Splat fills read only by loops become scalar constants in those loops.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/SetVector.h"

namespace kiln {
#define GEN_PASS_DEF_KILNFUSEELEMENTWISE
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

/// Non-reshape ops using `buffer` or a reshape of it, and the reshapes.
void collectUsers(Value buffer, SmallVectorImpl<Operation *> &users,
                  SmallVectorImpl<ReshapeOp> &reshapes) {
  for (Operation *user : buffer.getUsers()) {
    if (auto reshape = dyn_cast<ReshapeOp>(user)) {
      reshapes.push_back(reshape);
      collectUsers(reshape.getResult(), users, reshapes);
    } else {
      users.push_back(user);
    }
  }
}

/// Buffers `op` writes (outs of launches and loops), as roots.
SmallVector<Value> writtenRoots(Operation *op) {
  SmallVector<Value> roots;
  if (auto launch = dyn_cast<LaunchOp>(op))
    for (Value out : launch.getOuts())
      roots.push_back(kernel::viewedBuffer(out));
  if (auto loop = dyn_cast<ElementwiseOp>(op))
    for (Value out : loop.getOuts())
      roots.push_back(kernel::viewedBuffer(out));
  return roots;
}

int64_t countKernels(func::FuncOp func) {
  int64_t n = 0;
  func.walk([&](Operation *op) { n += isa<LaunchOp, ElementwiseOp>(op); });
  return n;
}

class Fuser {
public:
  /// Tries to fold `producer` into the one loop that reads its out `index`.
  bool tryFuse(ElementwiseOp producer, unsigned index);
  /// Tries to move a widening-only loop into the loops that read its out.
  bool tryForwardWidening(ElementwiseOp producer);
  /// Tries to turn a fill read only by loops into constants in them.
  bool tryInlineFill(LaunchOp fill);
  /// Tries to replace `loop` by an earlier loop that computed the same.
  bool tryReuseEarlierLoop(ElementwiseOp loop);

  int64_t buffersRemoved = 0;

private:
  /// Erases an intermediate buffer nothing reads any more: its one writer,
  /// its reshapes and its alloc.
  void eraseBuffer(Operation *writer, ArrayRef<ReshapeOp> reshapes, AllocOp alloc) {
    writer->erase();
    for (ReshapeOp reshape : llvm::reverse(reshapes))
      reshape.erase();
    alloc.erase();
    ++buffersRemoved;
  }
};

bool Fuser::tryFuse(ElementwiseOp producer, unsigned index) {
  Value out = producer.getOuts()[index];
  auto alloc = out.getDefiningOp<AllocOp>();
  if (!alloc)
    return false; // Outputs and state are observable: keep them.
  SmallVector<Operation *> users;
  SmallVector<ReshapeOp> reshapes;
  collectUsers(alloc.getResult(), users, reshapes);
  ElementwiseOp consumer;
  for (Operation *user : users) {
    if (user == producer)
      continue;
    auto loop = dyn_cast<ElementwiseOp>(user);
    if (!loop || (consumer && consumer != loop))
      return false;
    consumer = loop;
  }
  if (!consumer || consumer->getBlock() != producer->getBlock() ||
      !producer->isBeforeInBlock(consumer))
    return false;
  // The producer's out must only be read by the consumer, not written.
  for (Value o : consumer.getOuts())
    if (kernel::viewedBuffer(o) == alloc.getResult())
      return false;
  // Moving the producer's work down to the consumer must not change what it
  // reads, or make its other outs late for someone in between.
  llvm::SmallPtrSet<Value, 8> inRoots;
  for (Value in : producer.getIns())
    inRoots.insert(kernel::viewedBuffer(in));
  llvm::SmallPtrSet<Value, 4> otherOuts;
  for (auto [i, o] : llvm::enumerate(producer.getOuts()))
    if (i != index)
      otherOuts.insert(kernel::viewedBuffer(o));
  for (Operation *op = producer->getNextNode(); op != consumer; op = op->getNextNode()) {
    for (Value root : writtenRoots(op))
      if (inRoots.contains(root) || otherOuts.contains(root))
        return false;
    for (Value operand : op->getOperands())
      if (otherOuts.contains(kernel::viewedBuffer(operand)))
        return false;
  }

  // Build the merged loop in the consumer's place.
  SmallVector<Value> ins;
  llvm::SmallDenseMap<Value, unsigned> inIndex;
  auto addIn = [&](Value v) {
    auto [it, inserted] = inIndex.try_emplace(v, ins.size());
    if (inserted)
      ins.push_back(v);
    return it->second;
  };
  for (Value in : producer.getIns())
    addIn(in);
  // The consumer reads any out of the producer (the fused one, or another
  // one it keeps writing) as the producer's value for the same element, not
  // from memory: in the merged loop that memory is written, not yet read.
  llvm::SmallDenseMap<Value, unsigned> producerOut;
  for (auto [i, o] : llvm::enumerate(producer.getOuts()))
    producerOut[kernel::viewedBuffer(o)] = i;
  for (Value in : consumer.getIns())
    if (!producerOut.count(kernel::viewedBuffer(in)))
      addIn(in);
  SmallVector<Value> outs;
  for (auto [i, o] : llvm::enumerate(producer.getOuts()))
    if (i != index)
      outs.push_back(o);
  llvm::append_range(outs, consumer.getOuts());
  SmallVector<Attribute> origin(producer.getOrigin().begin(), producer.getOrigin().end());
  origin.append(consumer.getOrigin().begin(), consumer.getOrigin().end());

  OpBuilder b(consumer);
  auto merged = ElementwiseOp::create(b, consumer.getLoc(), ins, outs, b.getArrayAttr(origin));
  Block *body = b.createBlock(&merged.getBody());
  for (Value in : ins)
    body->addArgument(cast<MemRefType>(in.getType()).getElementType(), consumer.getLoc());
  b.setInsertionPointToStart(body);

  IRMapping map;
  Block &pBody = producer.getBody().front();
  for (auto [arg, in] : llvm::zip(pBody.getArguments(), producer.getIns()))
    map.map(arg, body->getArgument(inIndex.lookup(in)));
  for (Operation &op : pBody.without_terminator())
    b.clone(op, map);
  auto pYield = cast<YieldOp>(pBody.getTerminator());
  Block &cBody = consumer.getBody().front();
  for (auto [arg, in] : llvm::zip(cBody.getArguments(), consumer.getIns())) {
    auto out = producerOut.find(kernel::viewedBuffer(in));
    map.map(arg, out != producerOut.end() ? map.lookup(pYield.getValues()[out->second])
                                          : body->getArgument(inIndex.lookup(in)));
  }
  for (Operation &op : cBody.without_terminator())
    b.clone(op, map);
  SmallVector<Value> yields;
  for (auto [i, v] : llvm::enumerate(pYield.getValues()))
    if (i != index)
      yields.push_back(map.lookup(v));
  for (Value v : cast<YieldOp>(cBody.getTerminator()).getValues())
    yields.push_back(map.lookup(v));
  YieldOp::create(b, consumer.getLoc(), yields);

  consumer.erase();
  eraseBuffer(producer, reshapes, alloc);
  return true;
}

/// Whether some op strictly between `from` and `to` (same block) writes
/// the buffer `root`.
bool writtenBetween(Operation *from, Operation *to, Value root) {
  for (Operation *op = from->getNextNode(); op != to; op = op->getNextNode())
    if (llvm::is_contained(writtenRoots(op), root))
      return true;
  return false;
}

bool Fuser::tryForwardWidening(ElementwiseOp producer) {
  if (producer.getIns().size() != 1 || producer.getOuts().size() != 1)
    return false;
  Block &pBody = producer.getBody().front();
  auto widen = dyn_cast<arith::ExtFOp>(&pBody.front());
  if (!widen || widen.getIn() != pBody.getArgument(0) ||
      &pBody.back() != widen->getNextNode() ||
      cast<YieldOp>(pBody.getTerminator()).getValues()[0] != widen.getResult())
    return false;
  auto alloc = producer.getOuts()[0].getDefiningOp<AllocOp>();
  if (!alloc)
    return false;
  Value narrow = producer.getIns()[0];
  Value narrowRoot = kernel::viewedBuffer(narrow);
  SmallVector<Operation *> users;
  SmallVector<ReshapeOp> reshapes;
  collectUsers(alloc.getResult(), users, reshapes);
  bool changed = false;
  for (Operation *user : users) {
    auto loop = dyn_cast<ElementwiseOp>(user);
    if (!loop || loop == producer || loop->getBlock() != producer->getBlock() ||
        !producer->isBeforeInBlock(loop) ||
        llvm::any_of(loop.getOuts(),
                     [&](Value o) {
                       Value root = kernel::viewedBuffer(o);
                       return root == alloc.getResult() || root == narrowRoot;
                     }) ||
        writtenBetween(producer, loop, narrowRoot))
      continue;
    Block &body = loop.getBody().front();
    OpBuilder b = OpBuilder::atBlockBegin(&body);
    for (auto [i, in] : llvm::enumerate(loop.getIns())) {
      if (kernel::viewedBuffer(in) != alloc.getResult())
        continue;
      BlockArgument arg = body.getArgument(i);
      Type wide = arg.getType();
      loop.getInsMutable()[i].assign(narrow);
      arg.setType(pBody.getArgument(0).getType());
      auto widened = arith::ExtFOp::create(b, loop.getLoc(), wide, arg);
      arg.replaceAllUsesExcept(widened.getResult(), widened);
    }
    changed = true;
  }
  if (!changed)
    return false;
  for (ReshapeOp reshape : llvm::reverse(reshapes))
    if (reshape->use_empty())
      reshape.erase();
  users.clear();
  reshapes.clear();
  collectUsers(alloc.getResult(), users, reshapes);
  if (llvm::all_of(users, [&](Operation *user) { return user == producer; }))
    eraseBuffer(producer, reshapes, alloc);
  return true;
}

/// Whether an op other than `except` writes the buffer `root`.
bool writtenElsewhere(Value root, Operation *except) {
  SmallVector<Operation *> users;
  SmallVector<ReshapeOp> reshapes;
  collectUsers(root, users, reshapes);
  return llvm::any_of(users, [&](Operation *user) {
    return user != except && llvm::is_contained(writtenRoots(user), root);
  });
}

/// The last op of `block` that reads or writes `buffer` (or a reshape of
/// it), or null when some user is in another block.
Operation *lastUser(Value buffer, Block *block) {
  SmallVector<Operation *> users;
  SmallVector<ReshapeOp> reshapes;
  collectUsers(buffer, users, reshapes);
  Operation *last = nullptr;
  for (Operation *user : users) {
    if (user->getBlock() != block)
      return nullptr;
    if (!last || last->isBeforeInBlock(user))
      last = user;
  }
  return last;
}

/// Whether two loops' bodies compute the same from the same arguments
/// (block arguments matched by position; locations aside).
bool sameBody(ElementwiseOp a, ElementwiseOp b) {
  DenseMap<Value, Value> matched;
  return OperationEquivalence::isRegionEquivalentTo(
      &a.getBody(), &b.getBody(),
      [&](Value l, Value r) { return success(l == r || matched.lookup(l) == r); },
      [&](Value l, Value r) { matched[l] = r; }, OperationEquivalence::IgnoreLocations);
}

bool Fuser::tryReuseEarlierLoop(ElementwiseOp loop) {
  if (loop.getOuts().size() != 1)
    return false;
  auto alloc = loop.getOuts()[0].getDefiningOp<AllocOp>();
  if (!alloc || writtenElsewhere(alloc.getResult(), loop))
    return false; // Outputs and state are observable, and one writer only.
  SmallVector<Value> inRoots;
  for (Value in : loop.getIns())
    inRoots.push_back(kernel::viewedBuffer(in));
  for (Operation *op = loop->getPrevNode(); op; op = op->getPrevNode()) {
    // Walking back from `loop`: once an op writes an input, no earlier
    // loop read what `loop` reads.
    if (llvm::any_of(writtenRoots(op),
                     [&](Value root) { return llvm::is_contained(inRoots, root); }))
      return false;
    auto earlier = dyn_cast<ElementwiseOp>(op);
    if (!earlier || earlier.getIns() != loop.getIns() || earlier.getOuts().size() != 1 ||
        earlier.getOuts()[0].getType() != loop.getOuts()[0].getType())
      continue;
    auto earlierAlloc = earlier.getOuts()[0].getDefiningOp<AllocOp>();
    if (!earlierAlloc || writtenElsewhere(earlierAlloc.getResult(), earlier) ||
        !sameBody(earlier, loop))
      continue;
    // Only where the earlier out lives at least as long anyway: a loop that
    // kiln-activation-checkpointing recomputed in the backward, after the
    // forward's buffer died, stays recomputed.
    Operation *earlierLast = lastUser(earlierAlloc.getResult(), loop->getBlock());
    Operation *laterLast = lastUser(alloc.getResult(), loop->getBlock()); // `loop` at least
    if (!earlierLast || !laterLast || earlierLast->isBeforeInBlock(laterLast))
      return false;
    alloc.getResult().replaceAllUsesWith(earlierAlloc.getResult());
    loop.erase();
    alloc.erase();
    ++buffersRemoved;
    return true;
  }
  return false;
}

bool Fuser::tryInlineFill(LaunchOp fill) {
  auto alloc = fill.getOuts()[0].getDefiningOp<AllocOp>();
  auto value = fill.getParams().getAs<FloatAttr>("value");
  if (!alloc || !value)
    return false;
  SmallVector<Operation *> users;
  SmallVector<ReshapeOp> reshapes;
  collectUsers(alloc.getResult(), users, reshapes);
  SmallVector<ElementwiseOp> loops;
  for (Operation *user : users) {
    if (user == fill)
      continue;
    auto loop = dyn_cast<ElementwiseOp>(user);
    if (!loop || llvm::any_of(loop.getOuts(), [&](Value o) {
          return kernel::viewedBuffer(o) == alloc.getResult();
        }))
      return false;
    loops.push_back(loop);
  }
  if (loops.empty())
    return false;
  for (ElementwiseOp loop : loops) {
    Block &body = loop.getBody().front();
    OpBuilder b = OpBuilder::atBlockBegin(&body);
    SmallVector<Value> keptIns;
    llvm::BitVector dropped(body.getNumArguments());
    for (auto [i, in] : llvm::enumerate(loop.getIns())) {
      if (kernel::viewedBuffer(in) != alloc.getResult()) {
        keptIns.push_back(in);
        continue;
      }
      Type type = body.getArgument(i).getType();
      TypedAttr attr = isa<FloatType>(type)
                           ? TypedAttr(b.getFloatAttr(type, value.getValueAsDouble()))
                           : TypedAttr(b.getIntegerAttr(type, int64_t(value.getValueAsDouble())));
      Value constant = arith::ConstantOp::create(b, loop.getLoc(), attr);
      body.getArgument(i).replaceAllUsesWith(constant);
      dropped.set(i);
    }
    body.eraseArguments(dropped);
    loop.getInsMutable().assign(keptIns);
  }
  eraseBuffer(fill, reshapes, alloc);
  return true;
}

struct FuseElementwisePass : impl::KilnFuseElementwiseBase<FuseElementwisePass> {
  using Base::Base;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (func.isExternal())
      return;
    int64_t before = countKernels(func);
    Fuser fuser;
    SmallVector<LaunchOp> fills;
    func.walk([&](LaunchOp launch) {
      if (launch.getKernel() == "fill")
        fills.push_back(launch);
    });
    for (LaunchOp fill : fills)
      fuser.tryInlineFill(fill);
    // Each fusion removes a loop, so this ends; restart after each change
    // because the op list changed under the walk.
    for (bool changed = true; changed;) {
      changed = false;
      SmallVector<ElementwiseOp> loops;
      func.walk([&](ElementwiseOp loop) { loops.push_back(loop); });
      for (ElementwiseOp loop : loops) {
        changed = fuser.tryReuseEarlierLoop(loop);
        if (changed)
          break;
        changed = fuser.tryForwardWidening(loop);
        for (unsigned i = 0, e = loop.getOuts().size(); i < e && !changed; ++i)
          changed = fuser.tryFuse(loop, i);
        if (changed)
          break;
      }
    }
    if (report)
      func.emitRemark() << "kiln-fuse-elementwise: @" << func.getSymName() << ": "
                        << before << " kernels before, " << countKernels(func)
                        << " after; " << fuser.buffersRemoved
                        << " intermediate buffers removed";
  }
};

} // namespace
} // namespace kiln
