//===- PlanArena.cpp - kiln-plan-arena: one arena, offsets by liveness ----===//
//
// The step is straight-line code, so a buffer's lifetime is the interval of
// op positions from its first to its last use (through reshape aliases), and
// two buffers may share bytes exactly when their intervals are disjoint.
// Intervals are inclusive of both ends: a kernel's outs never share bytes
// with its ins, even when an in dies at the op that creates the out.
//
// Placement is greedy by size (largest first, lowest fitting offset), which
// is what TFLite's arena planner and XLA's heap simulator do for straight-
// line programs; it is within a few percent of the peak-live lower bound on
// training steps, where a few large activations dominate. Ties are broken by
// program order so the plan is deterministic.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "llvm/ADT/DenseMap.h"

namespace kiln {
#define GEN_PASS_DEF_KILNPLANARENA
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using kiln::kernel::AllocOp;
using kiln::kernel::BufferOp;
using kiln::kernel::ReshapeOp;

namespace kiln {
namespace {

struct Lifetime {
  AllocOp alloc;
  int64_t bytes = 0; ///< rounded up to the alignment
  int64_t first = 0, last = 0;
  int64_t order = 0; ///< position of the alloc, for deterministic ties
  int64_t offset = -1;

  bool overlapsInTime(const Lifetime &other) const {
    return first <= other.last && other.first <= last;
  }
};

int64_t alignUp(int64_t bytes) {
  return (bytes + kernel::kArenaAlignment - 1) / kernel::kArenaAlignment *
         kernel::kArenaAlignment;
}

/// Extends `life` over every op that uses `buffer` or a reshape of it.
void extendOverUses(Value buffer, const llvm::DenseMap<Operation *, int64_t> &position,
                    Lifetime &life) {
  for (Operation *user : buffer.getUsers()) {
    if (auto reshape = dyn_cast<ReshapeOp>(user)) {
      extendOverUses(reshape.getResult(), position, life);
      continue;
    }
    int64_t p = position.lookup(user);
    life.first = std::min(life.first, p);
    life.last = std::max(life.last, p);
  }
}

/// The lowest aligned offset where `life` fits among `placed` buffers that
/// are live at the same time.
int64_t lowestFit(const Lifetime &life, ArrayRef<const Lifetime *> placed) {
  SmallVector<const Lifetime *> conflicts;
  for (const Lifetime *other : placed)
    if (other->overlapsInTime(life))
      conflicts.push_back(other);
  llvm::sort(conflicts, [](const Lifetime *a, const Lifetime *b) {
    return a->offset < b->offset;
  });
  int64_t offset = 0;
  for (const Lifetime *other : conflicts) {
    if (offset + life.bytes <= other->offset)
      break;
    offset = std::max(offset, other->offset + other->bytes);
  }
  return offset;
}

struct PlanArenaPass : impl::KilnPlanArenaBase<PlanArenaPass> {
  using Base::Base;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (func.isExternal())
      return;
    llvm::DenseMap<Operation *, int64_t> position;
    int64_t next = 0;
    func.walk([&](Operation *op) { position[op] = next++; });

    std::vector<Lifetime> lives;
    func.walk([&](AllocOp alloc) {
      Lifetime life;
      life.alloc = alloc;
      life.bytes = alignUp(kernel::bufferBytes(alloc.getType()));
      life.order = position.lookup(alloc);
      life.first = INT64_MAX;
      life.last = INT64_MIN;
      extendOverUses(alloc.getResult(), position, life);
      if (life.first > life.last) // Never used: give it its own instant.
        life.first = life.last = life.order;
      lives.push_back(life);
    });

    SmallVector<Lifetime *> bySize;
    for (Lifetime &life : lives)
      bySize.push_back(&life);
    llvm::stable_sort(bySize, [](const Lifetime *a, const Lifetime *b) {
      return a->bytes != b->bytes ? a->bytes > b->bytes : a->order < b->order;
    });
    SmallVector<const Lifetime *> placed;
    int64_t arenaBytes = 0, totalBytes = 0;
    for (Lifetime *life : bySize) {
      life->offset = reuse ? lowestFit(*life, placed) : arenaBytes;
      placed.push_back(life);
      arenaBytes = std::max(arenaBytes, life->offset + life->bytes);
      totalBytes += life->bytes;
    }

    for (Lifetime &life : lives) {
      OpBuilder b(life.alloc);
      auto buffer = BufferOp::create(b, life.alloc.getLoc(), life.alloc.getType(),
                                     b.getI64IntegerAttr(life.offset));
      life.alloc.getResult().replaceAllUsesWith(buffer.getResult());
      life.alloc.erase();
    }
    func->setAttr(kernel::kArenaBytesAttr,
                  IntegerAttr::get(IntegerType::get(&getContext(), 64), arenaBytes));

    if (report)
      func.emitRemark() << "kiln-plan-arena: @" << func.getSymName() << ": "
                        << lives.size() << " buffers in an arena of " << arenaBytes
                        << " bytes (" << totalBytes << " without reuse, peak live "
                        << peakLiveBytes(lives) << ")";
  }

  /// The most bytes live at one op: no placement can use less arena.
  static int64_t peakLiveBytes(ArrayRef<Lifetime> lives) {
    std::vector<std::pair<int64_t, int64_t>> events; // (position, +/- bytes)
    for (const Lifetime &life : lives) {
      events.push_back({life.first, life.bytes});
      events.push_back({life.last + 1, -life.bytes});
    }
    llvm::sort(events); // At equal positions the frees (negative) come first.
    int64_t live = 0, peak = 0;
    for (auto [pos, delta] : events) {
      live += delta;
      peak = std::max(peak, live);
    }
    return peak;
  }
};

} // namespace
} // namespace kiln
