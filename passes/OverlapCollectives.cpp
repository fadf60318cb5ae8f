//===- OverlapCollectives.cpp - kiln-overlap-collectives: a communication stream ===//
//
// A data-parallel step all_reduces each gradient as soon as the backward has
// it (the optimizer reads them all at the end), so the communication of the
// early gradients can run while the rest of the backward computes, on a
// stream of its own (as PyTorch DDP's buckets and Megatron's overlapped
// gradient reduction do). This pass says so on the kernel level of one
// straight-line program:
//  * each `all_reduce`, `all_gather` and `reduce_scatter` goes on the
//    communication stream: its params get `stream = "comm"` and a unique
//    `event`; it moves up to right after the last kernel that writes its
//    input (not past the communication launch before it, so every rank
//    still issues its collectives in one order, nor past a kernel that
//    touches its output). The communication stream starts it once the
//    compute stream's work issued before it is done;
//  * the compute stream waits for it (`stream_wait`, with the same `event`)
//    right before the first later kernel that reads or writes its output,
//    writes its input (or reads it, for an in-place collective), before any
//    other communication (all_to_all, send and recv block the host and keep
//    the compute stream's order) and at the end of the step. The wait takes
//    the collective's buffers, so kiln-plan-arena keeps them live, and gives
//    their bytes to no other buffer, until the communication is over.
// Everything between a collective and its wait runs on the compute stream
// while the collective moves data. `local_shard` moves no data between
// ranks and stays on the compute stream.
//
// Target-neutral: the host's collectives block where they are issued, so
// the host spelling of a collective on the communication stream is today's
// call there and its `stream_wait` is nothing (kilnc runs this pass for the
// CUDA target only, so host programs are unchanged anyway); the CUDA
// spelling records where the collective may start and runs it on the
// NCCL communicator's stream (runtime/cuda/StepCollectives.cuh).
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

namespace kiln {
#define GEN_PASS_DEF_KILNOVERLAPCOLLECTIVES
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using kiln::kernel::AllocOp;
using kiln::kernel::ElementwiseOp;
using kiln::kernel::LaunchOp;

namespace kiln {
namespace {

/// The collectives this pass puts on the communication stream.
bool onCommStream(StringRef kernel) {
  return kernel == "all_reduce" || kernel == "all_gather" || kernel == "reduce_scatter";
}

/// Communication that blocks the host where it is issued and stays there
/// (all_to_all's counts are read on the host; sends and receives are
/// kiln-overlap-send-recv's).
bool otherCommunication(StringRef kernel) {
  return kernel == "all_to_all" || kernel == "send" || kernel == "recv" || kernel == "send_start" ||
         kernel == "recv_start" || kernel == "p2p_wait";
}

ValueRange insOf(Operation *op) {
  if (auto launch = dyn_cast<LaunchOp>(op))
    return launch.getIns();
  if (auto loop = dyn_cast<ElementwiseOp>(op))
    return loop.getIns();
  return {};
}

ValueRange outsOf(Operation *op) {
  if (auto launch = dyn_cast<LaunchOp>(op))
    return launch.getOuts();
  if (auto loop = dyn_cast<ElementwiseOp>(op))
    return loop.getOuts();
  return {};
}

bool touches(ValueRange values, Value root) {
  return llvm::any_of(values, [&](Value v) { return kernel::viewedBuffer(v) == root; });
}

struct OverlapCollectivesPass : impl::KilnOverlapCollectivesBase<OverlapCollectivesPass> {
  using Base::Base;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (func.isExternal())
      return;
    SmallVector<LaunchOp> collectives;
    bool bad = false;
    func.walk([&](LaunchOp launch) {
      if (launch.getKernel() == "stream_wait" || launch.getParams().get("stream")) {
        launch.emitError() << "kiln-overlap-collectives: @" << func.getSymName()
                           << " already places launches on streams (kernel '" << launch.getKernel()
                           << "'); run the pass once";
        bad = true;
      } else if (onCommStream(launch.getKernel())) {
        collectives.push_back(launch);
      }
    });
    if (bad)
      return signalPassFailure();
    if (collectives.empty())
      return;
    if (!func.getBody().hasOneBlock()) {
      func.emitError() << "kiln-overlap-collectives: @" << func.getSymName() << " has "
                       << func.getBody().getBlocks().size()
                       << " blocks; streams are placed on one straight-line step";
      return signalPassFailure();
    }
    Block &body = func.getBody().front();
    for (LaunchOp collective : collectives)
      if (collective->getBlock() != &body) {
        collective.emitError() << "kiln-overlap-collectives: a '" << collective.getKernel()
                               << "' inside " << collective->getParentOp()->getName()
                               << " cannot be given a stream; collectives must be in the "
                                  "step's own block";
        return signalPassFailure();
      }

    int64_t event = 0, hoisted = 0, overlapped = 0;
    for (LaunchOp collective : collectives) {
      Value in = collective.getIns()[0], out = collective.getOuts()[0];
      Value inRoot = kernel::viewedBuffer(in), outRoot = kernel::viewedBuffer(out);
      const bool inPlace = inRoot == outRoot;

      // 1. Up to right after what it must follow: the writer of its input,
      // any access to its output, the communication before it, and the ops
      // defining its operands (an output's own alloc moves up with it).
      Operation *after = nullptr;
      auto outAlloc = out.getDefiningOp<AllocOp>();
      for (Operation *op = collective->getPrevNode(); op; op = op->getPrevNode()) {
        if (outAlloc && op == outAlloc.getOperation())
          continue;
        auto launch = dyn_cast<LaunchOp>(op);
        const bool communication =
            launch && (onCommStream(launch.getKernel()) || otherCommunication(launch.getKernel()));
        if (communication || touches(outsOf(op), inRoot) || touches(outsOf(op), outRoot) ||
            touches(insOf(op), outRoot) || op == in.getDefiningOp() || op == out.getDefiningOp()) {
          after = op;
          break;
        }
      }
      Operation *at = after ? after->getNextNode() : &body.front();
      if (outAlloc && at == outAlloc.getOperation())
        at = outAlloc->getNextNode();
      if (at != collective.getOperation()) {
        if (outAlloc && outAlloc->isBeforeInBlock(collective) &&
            at->isBeforeInBlock(outAlloc.getOperation()))
          outAlloc->moveBefore(at);
        collective->moveBefore(at);
        ++hoisted;
      }
      NamedAttrList params(collective.getParams());
      OpBuilder b(collective);
      params.set("stream", b.getStringAttr("comm"));
      params.set("event", b.getI64IntegerAttr(event));
      collective.setParamsAttr(params.getDictionary(&getContext()));

      // 2. The compute stream waits before the first kernel that needs it
      // done.
      Operation *before = body.getTerminator();
      for (Operation *op = collective->getNextNode(); op && op != body.getTerminator();
           op = op->getNextNode()) {
        auto launch = dyn_cast<LaunchOp>(op);
        if ((launch && otherCommunication(launch.getKernel())) || touches(insOf(op), outRoot) ||
            touches(outsOf(op), outRoot) || touches(outsOf(op), inRoot) ||
            (inPlace && touches(insOf(op), inRoot))) {
          before = op;
          break;
        }
        overlapped += isa<ElementwiseOp>(op) || (launch && !onCommStream(launch.getKernel()) &&
                                                 launch.getKernel() != "stream_wait");
      }
      b.setInsertionPoint(before);
      SmallVector<Value> buffers = {in};
      if (out != in)
        buffers.push_back(out);
      LaunchOp::create(b, collective.getLoc(), b.getStringAttr("stream_wait"), buffers,
                       ValueRange{},
                       b.getDictionaryAttr({b.getNamedAttr("event", b.getI64IntegerAttr(event))}));
      ++event;
    }
    if (report)
      func.emitRemark() << "kiln-overlap-collectives: @" << func.getSymName() << ": " << event
                        << " collectives on the communication stream, " << hoisted << " moved up, "
                        << overlapped << " kernels issued between a collective and its wait";
  }
};

} // namespace
} // namespace kiln
