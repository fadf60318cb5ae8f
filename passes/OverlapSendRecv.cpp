//===- OverlapSendRecv.cpp - kiln-overlap-send-recv: posted sends, early receives ===//
//
// A blocking `send` holds its rank until the peer has the data, and a
// `recv` posted only where its data is needed waits for all of it there.
// This pass turns each into a posted transfer and its wait, on the kernel
// level of one straight-line program:
//  * a receive is posted (`recv_start`) right after the blocking
//    communication before it (a collective, another receive; sends do not
//    block now), so the data can arrive during the compute between, and
//    waited for (`p2p_wait`) where the `recv` was;
//  * a send is posted (`send_start`) right after the last kernel that
//    writes its buffer, but not before the communication launch before it,
//    and waited for right before the next blocking communication (a
//    `p2p_wait` of a receive, a collective) or at the end: the rank computes
//    on while the peer takes the data.
// Posts keep their order, so transfers between a pair match as before (MPI
// matches in posting order). Every post is at or before its old place and
// every wait at or after it for a send, at it for a receive: whatever a peer
// needed this rank to have done before it blocked, it still has done, so a
// program whose blocking sends could not deadlock cannot now either. The
// waits take the buffer, so kiln-plan-arena keeps it live (and untouched)
// until the transfer is over.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

namespace kiln {
#define GEN_PASS_DEF_KILNOVERLAPSENDRECV
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using kiln::kernel::AllocOp;
using kiln::kernel::ElementwiseOp;
using kiln::kernel::LaunchOp;
using kiln::kernel::ReshapeOp;

namespace kiln {
namespace {

bool isCommunication(Operation *op) {
  auto launch = dyn_cast<LaunchOp>(op);
  if (!launch)
    return false;
  StringRef k = launch.getKernel();
  return k == "send" || k == "recv" || k == "all_reduce" || k == "all_gather" ||
         k == "reduce_scatter" || k == "all_to_all" || k == "send_start" ||
         k == "recv_start" || k == "p2p_wait";
}

/// Where a rank waits for its peers: a collective or the wait of a receive.
bool blocks(Operation *op, const llvm::DenseSet<Operation *> &sendWaits) {
  auto launch = dyn_cast<LaunchOp>(op);
  return launch && isCommunication(op) && launch.getKernel() != "send_start" &&
         launch.getKernel() != "recv_start" && !sendWaits.contains(op);
}

/// Whether `op` writes the buffer rooted at `root`.
bool writes(Operation *op, Value root) {
  ValueRange outs;
  if (auto launch = dyn_cast<LaunchOp>(op))
    outs = launch.getOuts();
  else if (auto loop = dyn_cast<ElementwiseOp>(op))
    outs = loop.getOuts();
  return llvm::any_of(outs, [&](Value out) { return kernel::viewedBuffer(out) == root; });
}

LaunchOp createLaunch(OpBuilder &b, Location loc, StringRef kernel, ValueRange ins,
                      ValueRange outs, DictionaryAttr params) {
  return LaunchOp::create(b, loc, b.getStringAttr(kernel), ins, outs, params);
}

DictionaryAttr withTicket(LaunchOp op, int64_t ticket) {
  NamedAttrList params(op.getParams());
  params.set("ticket", Builder(op.getContext()).getI64IntegerAttr(ticket));
  return params.getDictionary(op.getContext());
}

struct OverlapSendRecvPass : impl::KilnOverlapSendRecvBase<OverlapSendRecvPass> {
  using Base::Base;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (func.isExternal() || !func.getBody().hasOneBlock())
      return;
    Block &body = func.getBody().front();
    SmallVector<LaunchOp> transfers;
    for (auto launch : body.getOps<LaunchOp>())
      if (launch.getKernel() == "send" || launch.getKernel() == "recv")
        transfers.push_back(launch);
    if (transfers.empty())
      return;

    int64_t ticket = 0, hoistedOps = 0, deferredOps = 0;
    llvm::DenseSet<Operation *> sendWaits;
    SmallVector<std::pair<LaunchOp, LaunchOp>> sends; // (send_start, p2p_wait)
    llvm::DenseSet<Operation *> sendParts; // sends, and the starts and waits made of them
    for (LaunchOp transfer : transfers)
      if (transfer.getKernel() == "send")
        sendParts.insert(transfer);
    for (LaunchOp transfer : transfers) {
      OpBuilder b(transfer);
      const bool isSend = transfer.getKernel() == "send";
      // The communication launch before this one, which the post may not
      // pass: any for a send (posts keep their order); for a receive, one
      // that is no part of a send (a send's wait moves down below).
      Operation *previous = nullptr;
      for (Operation *op = transfer->getPrevNode(); op; op = op->getPrevNode())
        if (isCommunication(op) && (isSend || !sendParts.contains(op))) {
          previous = op;
          break;
        }
      const int64_t id = ticket++;
      if (transfer.getKernel() == "recv") {
        Value buffer = transfer.getOuts()[0];
        auto alloc = buffer.getDefiningOp<AllocOp>();
        if (!alloc) {
          transfer.emitError() << "kiln-overlap-send-recv: a recv into " << buffer
                               << " (not a kiln_kernel.alloc) cannot be posted early";
          return signalPassFailure();
        }
        // Post right after `previous` (or at the top), the alloc with it.
        Operation *at = previous ? previous->getNextNode() : &body.front();
        if (at != alloc.getOperation())
          alloc->moveBefore(at);
        hoistedOps += alloc->getNextNode() != transfer.getOperation();
        b.setInsertionPointAfter(alloc);
        createLaunch(b, transfer.getLoc(), "recv_start", {}, {buffer},
                     withTicket(transfer, id));
        b.setInsertionPoint(transfer);
        createLaunch(b, transfer.getLoc(), "p2p_wait", {buffer}, {},
                     b.getDictionaryAttr({b.getNamedAttr("ticket", b.getI64IntegerAttr(id))}));
        transfer.erase();
        continue;
      }
      // A send: posted after the last writer of its buffer (and `previous`).
      Value buffer = transfer.getIns()[0];
      Value root = kernel::viewedBuffer(buffer);
      Operation *after = previous;
      for (Operation *op = transfer->getPrevNode(); op && op != previous; op = op->getPrevNode())
        if (writes(op, root) || op == buffer.getDefiningOp()) {
          after = op;
          break;
        }
      Operation *at = after ? after->getNextNode() : &body.front();
      b.setInsertionPoint(at);
      hoistedOps += at != transfer.getOperation();
      LaunchOp start = createLaunch(b, transfer.getLoc(), "send_start", {buffer}, {},
                                    withTicket(transfer, id));
      b.setInsertionPoint(transfer);
      LaunchOp wait = createLaunch(
          b, transfer.getLoc(), "p2p_wait", {buffer}, {},
          b.getDictionaryAttr({b.getNamedAttr("ticket", b.getI64IntegerAttr(id))}));
      sendWaits.insert(wait);
      sendParts.insert(start);
      sendParts.insert(wait);
      sends.push_back({start, wait});
      transfer.erase();
    }
    // Each send's wait moves down to the next blocking communication (or the
    // end, or the first later write of its buffer, whichever comes first).
    for (auto [start, wait] : sends) {
      Value root = kernel::viewedBuffer(start.getIns()[0]);
      Operation *before = body.getTerminator();
      for (Operation *op = wait->getNextNode(); op && op != body.getTerminator();
           op = op->getNextNode())
        if (blocks(op, sendWaits) || writes(op, root)) {
          before = op;
          break;
        }
      if (before != wait->getNextNode()) {
        wait->moveBefore(before);
        ++deferredOps;
      }
    }
    if (report)
      func.emitRemark() << "kiln-overlap-send-recv: @" << func.getSymName() << ": " << ticket
                        << " transfers posted, " << hoistedOps << " posted early, "
                        << deferredOps << " send waits deferred";
  }
};

} // namespace
} // namespace kiln
