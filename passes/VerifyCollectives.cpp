//===- VerifyCollectives.cpp - kiln-verify-collectives: ranks meet peers --===//
//
// Proves at compile time that the per-rank programs of a module meet each
// other: every collective is reached by every rank of its group with the same
// op, reduction, element type, count and dim, and every kiln.send meets its
// kiln.recv, with no cycle of waits. LocalWorld finds the same problems, but
// only by running a step; here they are found before anything runs, naming
// both ranks' ops (whose locations are the HF module names).
//
// A rank's program is straight-line (calls expanded in order), so its
// communication is a fixed list of events. Every event has rendezvous
// semantics (a send returns once its recv has the data, as LocalWorld
// enforces), so a module that passes cannot deadlock on MPI's rendezvous
// protocol either. Completing an event never disables another (the ranks it
// moves were blocked on it), so every order of completion reaches the same
// final state: the simulation runs to that state and diagnoses it there,
// which makes the report independent of the order events were tried in.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/IR/SymbolTable.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"

#include <algorithm>
#include <map>
#include <optional>

namespace kiln {
#define GEN_PASS_DEF_KILNVERIFYCOLLECTIVES
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

/// Deeper call chains than this are refused rather than risking the stack.
constexpr unsigned kMaxCallDepth = 128;

/// One communication op as written. The group or peer rank depends on the
/// rank and is computed when the simulation reaches the event, so one list
/// serves every rank of an SPMD program.
struct Event {
  enum Kind { Collective, Send, Recv };
  Operation *op = nullptr;
  Kind kind = Collective;
  ArrayAttr axes;      ///< collectives: the axes the group spans
  StringRef axis;      ///< send/recv: the axis of the peer...
  int64_t peer = 0;    ///< ...and its coordinate on that axis
  StringRef reduction; ///< "sum" or "max"; empty where the op has none
  int64_t dim = -1;    ///< all_gather, reduce_scatter; -1 otherwise
  Type elementType;
  int64_t count = 0; ///< elements of the operand; all_to_all: of one row
};

std::optional<Event> eventOf(Operation *op) {
  if (!isa<AllReduceOp, AllGatherOp, ReduceScatterOp, AllToAllOp, SendOp, RecvOp>(op))
    return std::nullopt; // kiln.local_shard moves no data
  // The ops spell their attributes alike (axes, kind, dim, axis, peer), and
  // their verifiers have checked them, so one generic reading serves all.
  Event e;
  e.op = op;
  e.kind = isa<SendOp>(op) ? Event::Send : isa<RecvOp>(op) ? Event::Recv : Event::Collective;
  e.axes = op->getAttrOfType<ArrayAttr>("axes");
  if (auto axis = op->getAttrOfType<StringAttr>("axis"))
    e.axis = axis.getValue();
  if (auto peer = op->getAttrOfType<IntegerAttr>("peer"))
    e.peer = peer.getInt();
  if (auto kind = op->getAttrOfType<StringAttr>("kind"))
    e.reduction = kind.getValue();
  if (auto dim = op->getAttrOfType<IntegerAttr>("dim"))
    e.dim = dim.getInt();
  auto type =
      cast<ShapedType>(isa<RecvOp>(op) ? op->getResult(0).getType() : op->getOperand(0).getType());
  e.elementType = type.getElementType();
  e.count = type.getNumElements();
  if (isa<AllToAllOp>(op)) {
    // Capacities are per-rank bounds (the counts travel first): only the
    // rows must agree between ranks.
    e.count = 1;
    for (int64_t size : type.getShape().drop_front())
      e.count *= size;
  }
  return e;
}

bool sameData(const Event &a, const Event &b) {
  return a.elementType == b.elementType && a.count == b.count;
}

bool sameCollective(const Event &a, const Event &b) {
  return a.op->getName() == b.op->getName() && a.reduction == b.reduction && a.dim == b.dim &&
         sameData(a, b);
}

/// "dp", "pp+dp": the name LocalWorld gives the group's communicator.
std::string axesName(ArrayAttr axes) {
  std::string name;
  for (Attribute axis : axes)
    name += (name.empty() ? "" : "+") + cast<StringAttr>(axis).getValue().str();
  return name;
}

/// "dp [0, 1]"; a large group as "dp [0, 1, 2, 3, 4, 5, 6, 7, ..., 127]".
std::string groupName(ArrayAttr axes, ArrayRef<int64_t> ranks) {
  std::string name = axesName(axes) + " [";
  for (size_t i = 0; i < ranks.size(); ++i) {
    if (i == 8 && ranks.size() > 9) {
      name += ", ..., " + std::to_string(ranks.back());
      break;
    }
    name += (i ? ", " : "") + std::to_string(ranks[i]);
  }
  return name + "]";
}

/// "4096 x f32" (a Type streamed into a diagnostic would be quoted).
std::string dataOf(const Event &e) {
  std::string s;
  llvm::raw_string_ostream(s) << e.count << " x " << e.elementType;
  return s;
}

/// "kiln.all_reduce sum of 4096 x f32", "kiln.send to rank 1 of 4 x bf16".
std::string describe(const Event &e, int64_t peerRank) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << e.op->getName();
  if (e.kind != Event::Collective)
    os << (e.kind == Event::Send ? " to rank " : " from rank ") << peerRank;
  if (!e.reduction.empty())
    os << " " << e.reduction;
  os << " of " << (isa<AllToAllOp>(e.op) ? "rows of " : "") << dataOf(e);
  if (e.dim >= 0)
    os << " along dim " << e.dim;
  return s;
}

//===----------------------------------------------------------------------===//
// Each program's events
//===----------------------------------------------------------------------===//

/// Each function's communication in program order, calls expanded; built
/// once per function and shared by its callers and by every rank running it.
class EventLists {
public:
  explicit EventLists(ModuleOp module) : symbols(module) {}

  /// Null after an error (emitted).
  const std::vector<Event> *of(func::FuncOp f, unsigned depth = 0);

private:
  SymbolTable symbols;
  std::map<Operation *, std::vector<Event>> lists; ///< node-based: pointers stay valid
  llvm::DenseSet<Operation *> active;              ///< functions on the current call chain
};

const std::vector<Event> *EventLists::of(func::FuncOp f, unsigned depth) {
  if (auto it = lists.find(f); it != lists.end())
    return &it->second;
  std::vector<Event> events;
  active.insert(f);
  WalkResult walk = f.walk<WalkOrder::PreOrder>([&](Operation *op) {
    auto call = dyn_cast<func::CallOp>(op);
    std::optional<Event> event = eventOf(op);
    if (!call && !event)
      return WalkResult::advance();
    // Inside a loop or a branch the number of events would depend on data.
    if (op->getParentOp() != f || !f.getBody().hasOneBlock()) {
      op->emitError() << "kiln-verify-collectives: cannot put '" << op->getName()
                      << "' in program order: expected communication and calls only in the "
                         "single block of @"
                      << f.getSymName() << ", found it inside '" << op->getParentOp()->getName()
                      << "'";
      return WalkResult::interrupt();
    }
    if (event) {
      events.push_back(*event);
      return WalkResult::advance();
    }
    auto callee = symbols.lookup<func::FuncOp>(call.getCallee());
    if (!callee || callee.isExternal())
      return WalkResult::advance(); // a declaration holds no kiln op
    if (active.contains(callee) || depth + 1 >= kMaxCallDepth) {
      auto diag = call.emitError() << "kiln-verify-collectives: ";
      if (active.contains(callee))
        diag << "recursive call to @" << callee.getSymName();
      else
        diag << "call chain deeper than " << kMaxCallDepth << " functions at @"
             << callee.getSymName();
      diag << "; expected a fixed, finite sequence of communication per rank";
      return WalkResult::interrupt();
    }
    const std::vector<Event> *inner = of(callee, depth + 1);
    if (!inner)
      return WalkResult::interrupt();
    events.insert(events.end(), inner->begin(), inner->end());
    return WalkResult::advance();
  });
  active.erase(f);
  if (walk.wasInterrupted())
    return nullptr;
  return &lists.emplace(f, std::move(events)).first->second;
}

//===----------------------------------------------------------------------===//
// The simulation
//===----------------------------------------------------------------------===//

/// Runs every rank's events with blocking semantics until none can move, then
/// reports the first problem: the lowest rank that disagrees with a peer or
/// waits for a rank that has ended; else (every waiting rank waits for
/// another waiting rank) the cycle of waits reached from the lowest one.
class Simulator {
public:
  Simulator(GridAttr grid, ArrayRef<func::FuncOp> programs,
            ArrayRef<const std::vector<Event> *> events)
      : grid(grid), programs(programs), events(events), pc(programs.size(), 0),
        waiting(programs.size(), false) {}

  LogicalResult run();

  int64_t collectivesMatched = 0; ///< once per group, not per rank
  int64_t pairsMatched = 0;

private:
  /// One communicator: the ranks that agree on every axis outside `axes`,
  /// and how many collectives they have completed together.
  struct Group {
    ArrayAttr axes;
    SmallVector<int64_t> ranks; ///< in group order, which is ascending
    int64_t arrived = 0, completed = 0;
  };

  int64_t numRanks() const { return int64_t(pc.size()); }
  /// The rank's next event; null once its program has ended.
  const Event *current(int64_t rank) const {
    return pc[rank] < events[rank]->size() ? &(*events[rank])[pc[rank]] : nullptr;
  }
  unsigned groupOf(int64_t rank, ArrayAttr axes) {
    // The leader (coordinate 0 on every axis of the group) names the group.
    SmallVector<int64_t> coords = grid.coordinates(rank);
    for (Attribute axis : axes)
      coords[grid.axisIndex(cast<StringAttr>(axis).getValue())] = 0;
    int64_t leader = grid.rankOf(coords);
    auto [it, inserted] = groupIds.try_emplace({axes, leader}, unsigned(groups.size()));
    if (inserted)
      groups.push_back(Group{axes, grid.group(leader, axes)});
    return it->second;
  }
  /// The rank at coordinate `e.peer` on `e.axis`, `rank`'s elsewhere.
  int64_t peerOf(int64_t rank, const Event &e) const {
    SmallVector<int64_t> coords = grid.coordinates(rank);
    coords[grid.axisIndex(e.axis)] = e.peer;
    return grid.rankOf(coords);
  }
  /// Whether `rank` is at a collective of group `id`.
  bool atGroup(int64_t rank, unsigned id) {
    const Event *e = current(rank);
    return e && e->kind == Event::Collective && groupOf(rank, e->axes) == id;
  }
  void advance(int64_t rank) {
    ++pc[rank];
    waiting[rank] = false;
    ready.push_back(rank);
  }
  /// The lowest rank that `rank` waits for, when none waits for an ended rank.
  int64_t waitsFor(int64_t rank) {
    const Event &e = *current(rank);
    if (e.kind != Event::Collective)
      return peerOf(rank, e);
    unsigned id = groupOf(rank, e.axes);
    SmallVector<int64_t> members = groups[id].ranks;
    for (int64_t q : members)
      if (!atGroup(q, id))
        return q;
    llvm_unreachable("a collective that every member reached agreeing would have completed");
  }
  void arrive(int64_t rank);
  std::string waitIn(int64_t rank);
  LogicalResult diagnose();
  LogicalResult deadlock();
  /// Points at the end of `rank`'s program.
  void noteEnd(InFlightDiagnostic &diag, int64_t rank) const {
    func::FuncOp f = programs[rank];
    diag.attachNote(f.getBody().back().getTerminator()->getLoc())
        << "rank " << rank << "'s program @" << f.getSymName() << " ends here";
  }

  GridAttr grid;
  ArrayRef<func::FuncOp> programs;
  ArrayRef<const std::vector<Event> *> events;
  SmallVector<size_t> pc;
  SmallVector<bool> waiting; ///< arrived at its event, which has not completed
  std::vector<Group> groups;
  llvm::DenseMap<std::pair<Attribute, int64_t>, unsigned> groupIds; ///< (axes, leader)
  SmallVector<int64_t> ready; ///< ranks at an event they have not arrived at yet
};

void Simulator::arrive(int64_t rank) {
  const Event *e = current(rank);
  if (!e)
    return; // its program has ended
  waiting[rank] = true;
  if (e->kind == Event::Collective) {
    // A member counted here stays at this collective until it completes, so
    // a full count means every member is at the group's next collective.
    unsigned id = groupOf(rank, e->axes);
    if (++groups[id].arrived < int64_t(groups[id].ranks.size()))
      return;
    SmallVector<int64_t> members = groups[id].ranks;
    if (!llvm::all_of(members, [&](int64_t q) { return sameCollective(*current(q), *e); }))
      return; // stays stuck; diagnose() names the two ranks
    groups[id].arrived = 0;
    ++groups[id].completed;
    ++collectivesMatched;
    for (int64_t q : members)
      advance(q);
    return;
  }
  // Rendezvous: completes with a peer already waiting at the other half.
  int64_t peer = peerOf(rank, *e);
  const Event *other = current(peer);
  Event::Kind opposite = e->kind == Event::Send ? Event::Recv : Event::Send;
  if (peer != rank && other && waiting[peer] && other->kind == opposite &&
      peerOf(peer, *other) == rank && sameData(*e, *other)) {
    ++pairsMatched;
    advance(rank);
    advance(peer);
  }
}

LogicalResult Simulator::run() {
  for (int64_t rank = numRanks() - 1; rank >= 0; --rank)
    ready.push_back(rank);
  while (!ready.empty())
    arrive(ready.pop_back_val());
  for (int64_t rank = 0; rank < numRanks(); ++rank)
    if (current(rank))
      return diagnose();
  return success();
}

std::string Simulator::waitIn(int64_t rank) {
  const Event &e = *current(rank);
  if (e.kind != Event::Collective)
    return e.op->getName().getStringRef().str() +
           (e.kind == Event::Send ? " to rank " : " from rank ") + std::to_string(peerOf(rank, e));
  const Group &g = groups[groupOf(rank, e.axes)];
  return e.op->getName().getStringRef().str() + " over " + axesName(g.axes) + " (#" +
         std::to_string(g.completed + 1) + " of that group)";
}

LogicalResult Simulator::diagnose() {
  for (int64_t rank = 0; rank < numRanks(); ++rank) {
    const Event *e = current(rank);
    if (!e)
      continue;
    if (e->kind == Event::Collective) {
      unsigned id = groupOf(rank, e->axes);
      SmallVector<int64_t> members = groups[id].ranks;
      const int64_t *q = llvm::find_if(
          members, [&](int64_t m) { return atGroup(m, id) && !sameCollective(*e, *current(m)); });
      if (q != members.end()) {
        auto diag = e->op->emitError()
                    << "kiln-verify-collectives: rank " << rank << " and rank " << *q
                    << " disagree on collective #" << groups[id].completed + 1 << " of group "
                    << groupName(groups[id].axes, groups[id].ranks) << ": rank " << rank << " runs "
                    << describe(*e, -1) << ", rank " << *q << " runs "
                    << describe(*current(*q), -1);
        diag.attachNote(current(*q)->op->getLoc()) << "rank " << *q << " is here";
        return diag;
      }
      q = llvm::find_if(members, [&](int64_t m) { return !current(m); });
      if (q != members.end()) {
        auto diag = e->op->emitError()
                    << "kiln-verify-collectives: rank " << *q << " ends its program while rank "
                    << rank << " waits in " << waitIn(rank);
        noteEnd(diag, *q);
        return diag;
      }
      continue;
    }
    int64_t peer = peerOf(rank, *e);
    const Event *other = current(peer);
    bool isRecv = e->kind == Event::Recv;
    if (!other) {
      auto diag = e->op->emitError()
                  << "kiln-verify-collectives: rank " << rank << "'s " << e->op->getName()
                  << (isRecv ? " from" : " to") << " rank " << peer << " (" << dataOf(*e)
                  << ") has no matching " << (isRecv ? "kiln.send" : "kiln.recv") << ": rank "
                  << peer << " has ended its program";
      noteEnd(diag, peer);
      return diag;
    }
    // Both halves facing each other would have completed if their data agreed.
    if (peer != rank && other->kind == (isRecv ? Event::Send : Event::Recv) &&
        peerOf(peer, *other) == rank) {
      auto diag = e->op->emitError()
                  << "kiln-verify-collectives: rank " << rank << " and rank " << peer
                  << " disagree on a send/recv: rank " << rank << " runs " << describe(*e, peer)
                  << ", rank " << peer << " runs " << describe(*other, rank);
      diag.attachNote(other->op->getLoc()) << "rank " << peer << " is here";
      return diag;
    }
  }
  return deadlock();
}

/// Reached only when every waiting rank waits for another waiting rank: the
/// waits form a graph in which every node has a successor, hence a cycle.
LogicalResult Simulator::deadlock() {
  int64_t rank = 0;
  while (!current(rank))
    ++rank;
  SmallVector<int64_t> path;
  llvm::DenseMap<int64_t, size_t> seenAt;
  while (seenAt.try_emplace(rank, path.size()).second) {
    path.push_back(rank);
    rank = waitsFor(rank);
  }
  SmallVector<int64_t> cycle(path.begin() + seenAt[rank], path.end());
  std::rotate(cycle.begin(), llvm::min_element(cycle), cycle.end());
  std::string waits;
  for (auto [i, q] : llvm::enumerate(cycle)) {
    waits += (i ? ", rank " : "rank ") + std::to_string(q) + " waits in " + waitIn(q);
    if (current(q)->kind == Event::Collective)
      waits += " for rank " + std::to_string(cycle[(i + 1) % cycle.size()]);
  }
  auto diag = current(cycle.front())->op->emitError()
              << "kiln-verify-collectives: deadlock: " << waits;
  for (int64_t q : ArrayRef(cycle).drop_front())
    diag.attachNote(current(q)->op->getLoc()) << "rank " << q << " waits here";
  return diag;
}

//===----------------------------------------------------------------------===//
// The pass
//===----------------------------------------------------------------------===//

/// The function each rank runs: the `kiln.program = "<entry>"` functions by
/// their `kiln.ranks`, each rank exactly once; without any, @<entry> on all.
LogicalResult selectPrograms(ModuleOp module, GridAttr grid, StringRef entry,
                             SmallVectorImpl<func::FuncOp> &programOf) {
  int64_t n = grid.numRanks();
  programOf.assign(n, func::FuncOp());
  bool perRank = false;
  for (auto f : module.getOps<func::FuncOp>()) {
    auto program = f->getAttrOfType<StringAttr>("kiln.program");
    if (!program || program.getValue() != entry)
      continue;
    perRank = true;
    auto ranks = f->getAttrOfType<DenseI64ArrayAttr>("kiln.ranks");
    if (!ranks || f.isExternal())
      return f.emitError() << "kiln-verify-collectives: @" << f.getSymName()
                           << " has kiln.program = \"" << entry
                           << "\"; expected a body and kiln.ranks = array<i64: ...> listing the "
                              "ranks that run it";
    for (int64_t rank : ranks.asArrayRef()) {
      if (rank < 0 || rank >= n)
        return f.emitError() << "kiln-verify-collectives: kiln.ranks of @" << f.getSymName()
                             << " lists rank " << rank << "; the grid " << grid
                             << " has ranks 0 to " << n - 1;
      if (programOf[rank])
        return f.emitError() << "kiln-verify-collectives: rank " << rank
                             << " is listed in kiln.ranks of both @" << programOf[rank].getSymName()
                             << " and @" << f.getSymName()
                             << "; expected each rank to run one program";
      programOf[rank] = f;
    }
  }
  if (!perRank) {
    auto f = module.lookupSymbol<func::FuncOp>(entry);
    if (!f || f.isExternal())
      return module.emitError() << "kiln-verify-collectives: no function @" << entry
                                << " with a body and no function with kiln.program = \"" << entry
                                << "\"; expected one of them (or set entry=<name>)";
    programOf.assign(n, f);
  }
  for (int64_t rank = 0; rank < n; ++rank)
    if (!programOf[rank])
      return module.emitError() << "kiln-verify-collectives: rank " << rank
                                << " runs no program: no function with kiln.program = \"" << entry
                                << "\" lists it in kiln.ranks";
  return success();
}

struct VerifyCollectivesPass : impl::KilnVerifyCollectivesBase<VerifyCollectivesPass> {
  using KilnVerifyCollectivesBase::KilnVerifyCollectivesBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    markAllAnalysesPreserved(); // checks only
    GridAttr grid = GridAttr::lookup(module);
    if (!grid)
      return; // one rank: nobody to meet (a collective here fails its verifier)
    SmallVector<func::FuncOp> programOf;
    if (failed(selectPrograms(module, grid, entry, programOf)))
      return signalPassFailure();
    EventLists lists(module);
    SmallVector<const std::vector<Event> *> eventsOf;
    for (func::FuncOp f : programOf) {
      const std::vector<Event> *events = lists.of(f);
      if (!events)
        return signalPassFailure();
      eventsOf.push_back(events);
    }
    Simulator simulator(grid, programOf, eventsOf);
    if (failed(simulator.run()))
      return signalPassFailure();
    if (report)
      module.emitRemark() << "kiln-verify-collectives: " << grid.numRanks() << " ranks, "
                          << simulator.collectivesMatched << " collectives and "
                          << simulator.pairsMatched << " send/recv pairs matched";
  }
};

} // namespace
} // namespace kiln
