//===- CollectiveRules.cpp - the collectives on the multi-rank evaluator --===//
//
// Each rank's evaluator gets rules bound to that rank's communicators: the
// world (send/recv, addressed by world rank) and one group per distinct
// `axes` of the module's collectives, split from the world before any rank
// runs (so every rank splits in the same order, whatever its program).
// Values travel as f64, which holds every f32/bf16 value and every integer
// count exactly.
//
//===----------------------------------------------------------------------===//

#include "dialects/kiln/reference/MultiRank.h"

#include "dialects/kiln/KilnDialect.h"
#include "runtime/comm/Communicator.h"
#include "runtime/comm/LocalWorld.h"
#include "runtime/comm/RankPieces.h"

#include "mlir/IR/BuiltinOps.h"

#include "llvm/ADT/MapVector.h"

#include <mutex>

using namespace mlir;
using kiln::comm::Communicator;
using kiln::comm::DType;

namespace kiln::reference {
namespace {

/// One rank's communicators.
class RankComms {
public:
  RankComms(Communicator &world, GridAttr grid) : world(world), grid(grid) {}

  /// Splits one group per distinct `axes` of the module's collectives.
  bool splitGroups(ModuleOp module, std::string &error) {
    llvm::SmallVector<ArrayAttr> distinct;
    module.walk([&](Operation *op) {
      if (auto axes = op->getAttrOfType<ArrayAttr>("axes"))
        if (isa<AllReduceOp, AllGatherOp, ReduceScatterOp, AllToAllOp, LocalShardOp>(op) &&
            !llvm::is_contained(distinct, axes))
          distinct.push_back(axes);
    });
    for (ArrayAttr axes : distinct) {
      llvm::SmallVector<int64_t> members = grid.group(world.rank(), axes);
      int key = int(llvm::find(members, world.rank()) - members.begin());
      std::string name;
      for (Attribute a : axes)
        name += (name.empty() ? "" : "+") + cast<StringAttr>(a).getValue().str();
      // The group's lowest rank names it: distinct groups, distinct colors.
      auto group = world.split(int(members.front()), key, name);
      if (!group) {
        error = world.error();
        return false;
      }
      groups[axes] = std::move(group);
    }
    return true;
  }

  Communicator &group(ArrayAttr axes) { return *groups.find(axes)->second; }

  /// The world rank at coordinate `peer` on `axis`, this rank's elsewhere.
  int peerRank(StringRef axis, int64_t peer) {
    llvm::SmallVector<int64_t> coords = grid.coordinates(world.rank());
    coords[grid.axisIndex(axis)] = peer;
    return int(grid.rankOf(coords));
  }

  Communicator &world;
  GridAttr grid;
  llvm::MapVector<ArrayAttr, std::unique_ptr<Communicator>> groups;
};

RefTensor resultLike(Operation *op, unsigned i = 0) {
  auto type = cast<ShapedType>(op->getResult(i).getType());
  return RefTensor(type.getElementType(), type.getShape());
}

LogicalResult commError(Operation *op, Communicator &comm) {
  return op->emitError() << "reference evaluator: " << comm.error();
}

/// Elements before dimension `dim` (outer) and from it on (inner).
std::pair<int64_t, int64_t> splitAt(ArrayRef<int64_t> shape, int64_t dim) {
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < int64_t(shape.size()); ++d)
    (d < dim ? outer : inner) *= shape[d];
  return {outer, inner};
}

void addRules(Evaluator &evaluator, RankComms &comms) {
  evaluator.setRule("kiln.all_reduce", [&comms](Operation *op, ArrayRef<const RefTensor *> in,
                                                SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto reduce = cast<AllReduceOp>(op);
    Communicator &group = comms.group(reduce.getAxes());
    RefTensor r = *in[0];
    if (!group.allReduce(r.data.data(), r.data.size(), DType::F64,
                         reduce.getKind() == "max" ? comm::ReduceOp::Max : comm::ReduceOp::Sum))
      return commError(op, group);
    out.push_back(std::move(r));
    return success();
  });

  evaluator.setRule("kiln.all_gather", [&comms](Operation *op, ArrayRef<const RefTensor *> in,
                                                SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto gather = cast<AllGatherOp>(op);
    Communicator &group = comms.group(gather.getAxes());
    const RefTensor &x = *in[0];
    std::vector<double> all(x.data.size() * group.size());
    if (!group.allGather(x.data.data(), all.data(), x.data.size(), DType::F64))
      return commError(op, group);
    // all is [rank][outer][inner]; the result interleaves ranks at `dim`.
    auto [outer, inner] = splitAt(x.shape, int64_t(gather.getDim()));
    RefTensor r = resultLike(op);
    comm::interleavePiecesOfRanks(all.data(), outer, int64_t(group.size()), inner, r.data.data());
    out.push_back(std::move(r));
    return success();
  });

  evaluator.setRule("kiln.reduce_scatter", [&comms](Operation *op, ArrayRef<const RefTensor *> in,
                                                    SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto scatter = cast<ReduceScatterOp>(op);
    Communicator &group = comms.group(scatter.getAxes());
    auto [outer, inner] = splitAt(in[0]->shape, int64_t(scatter.getDim()));
    std::vector<double> send(in[0]->data.size());
    comm::groupPiecesByRank(in[0]->data.data(), outer, int64_t(group.size()),
                            inner / group.size(), send.data());
    RefTensor r = resultLike(op);
    if (!group.reduceScatter(send.data(), r.data.data(), r.data.size(), DType::F64,
                             comm::ReduceOp::Sum))
      return commError(op, group);
    out.push_back(std::move(r));
    return success();
  });

  evaluator.setRule("kiln.local_shard", [&comms](Operation *op, ArrayRef<const RefTensor *> in,
                                                 SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto shard = cast<LocalShardOp>(op);
    Communicator &group = comms.group(shard.getAxes());
    auto [outer, inner] = splitAt(in[0]->shape, int64_t(shard.getDim()));
    RefTensor r = resultLike(op);
    comm::copyPieceOfRank(in[0]->data.data(), outer, int64_t(group.size()), inner / group.size(),
                          int64_t(group.rank()), r.data.data());
    out.push_back(std::move(r));
    return success();
  });

  evaluator.setRule("kiln.all_to_all", [&comms](Operation *op, ArrayRef<const RefTensor *> in,
                                                SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto exchange = cast<AllToAllOp>(op);
    Communicator &group = comms.group(exchange.getAxes());
    const RefTensor &x = *in[0], &sendCounts = *in[1];
    int64_t rowSize = x.shape.empty() ? 1 : x.numElements() / x.shape[0];
    std::vector<int64_t> sendRows(group.size()), recvRows(group.size());
    int64_t sent = 0;
    for (int64_t p = 0; p < group.size(); ++p) {
      double c = sendCounts.data[p];
      if (!(c >= 0) || c != std::floor(c))
        return op->emitError() << "reference evaluator: send_counts[" << p << "] = "
                               << formatNumber(c) << " is not a row count";
      sendRows[p] = int64_t(c);
      sent += sendRows[p];
    }
    if (sent > x.shape[0])
      return op->emitError() << "reference evaluator: rank " << comms.world.rank() << " sends "
                             << sent << " rows, more than x holds (" << x.shape[0] << ")";
    std::vector<int64_t> ones(group.size(), 1);
    if (!group.allToAllV(sendRows.data(), ones.data(), recvRows.data(), ones.data(), DType::I64))
      return commError(op, group);
    RefTensor rows = resultLike(op, 0), counts = resultLike(op, 1);
    int64_t received = 0;
    for (int64_t p = 0; p < group.size(); ++p) {
      counts.data[p] = double(recvRows[p]);
      received += recvRows[p];
    }
    if (received > rows.shape[0])
      return op->emitError() << "reference evaluator: rank " << comms.world.rank()
                             << " receives " << received << " rows, more than the result's "
                             << "capacity " << rows.shape[0];
    std::vector<int64_t> sendElems(group.size()), recvElems(group.size());
    for (int64_t p = 0; p < group.size(); ++p) {
      sendElems[p] = sendRows[p] * rowSize;
      recvElems[p] = recvRows[p] * rowSize;
    }
    if (!group.allToAllV(x.data.data(), sendElems.data(), rows.data.data(), recvElems.data(),
                         DType::F64))
      return commError(op, group);
    out.push_back(std::move(rows));
    out.push_back(std::move(counts));
    return success();
  });

  evaluator.setRule("kiln.send", [&comms](Operation *op, ArrayRef<const RefTensor *> in,
                                          SmallVectorImpl<RefTensor> &) -> LogicalResult {
    auto send = cast<SendOp>(op);
    int peer = comms.peerRank(send.getAxis(), int64_t(send.getPeer()));
    if (!comms.world.send(in[0]->data.data(), in[0]->data.size(), DType::F64, peer))
      return commError(op, comms.world);
    return success();
  });

  evaluator.setRule("kiln.recv", [&comms](Operation *op, ArrayRef<const RefTensor *>,
                                          SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto recv = cast<RecvOp>(op);
    int peer = comms.peerRank(recv.getAxis(), int64_t(recv.getPeer()));
    RefTensor r = resultLike(op);
    if (!comms.world.recv(r.data.data(), r.data.size(), DType::F64, peer))
      return commError(op, comms.world);
    out.push_back(std::move(r));
    return success();
  });
}

} // namespace

int64_t numRanksOf(ModuleOp module) {
  GridAttr grid = GridAttr::lookup(module);
  return grid ? grid.numRanks() : 1;
}

FailureOr<std::vector<SmallVector<RefTensor>>>
evaluateAllRanks(ModuleOp module, const ProgramOfRank &programOf,
                 ArrayRef<SmallVector<RefTensor>> argsPerRank) {
  GridAttr grid = GridAttr::lookup(module);
  int64_t ranks = numRanksOf(module);
  if (int64_t(argsPerRank.size()) != ranks)
    return module.emitError() << "reference evaluator: " << argsPerRank.size()
                              << " argument lists for " << ranks << " ranks",
           failure();
  if (!grid) // one rank: collectives over no grid cannot even verify
    grid = GridAttr::get(module.getContext(), ArrayAttr::get(module.getContext(), {}), {});
  std::vector<SmallVector<RefTensor>> results(ranks);
  std::vector<char> ok(ranks, 0);
  std::mutex diagnostics; // one rank's error at a time, with its rank
  comm::LocalWorld::run(int(ranks), [&](Communicator &world) {
    int rank = world.rank();
    RankComms comms(world, grid);
    std::string error;
    if (!comms.splitGroups(module, error)) {
      std::lock_guard<std::mutex> lock(diagnostics);
      module.emitError() << "reference evaluator: rank " << rank << ": " << error;
      return;
    }
    Evaluator evaluator(module);
    addRules(evaluator, comms);
    FailureOr<SmallVector<RefTensor>> out = evaluator.call(programOf(rank), argsPerRank[rank]);
    if (failed(out)) {
      world.abortJob(1); // the peers fail instead of waiting for this rank
      return;
    }
    results[rank] = std::move(*out);
    ok[rank] = 1;
  });
  if (llvm::is_contained(ok, 0))
    return failure();
  return results;
}

} // namespace kiln::reference
