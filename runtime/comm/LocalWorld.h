//===- LocalWorld.h - N ranks as threads of one process -*- C++ -*-===//
//
// The communicator of the unit tests and of the compiler's multi-rank
// reference evaluator: every rank is a thread, and the ranks meet in memory
// (one mutex and condition variable per world). Results are bit-identical to
// MpiCommunicator's (the same rank-ordered reductions, Reduce.h).
//
// It is strict where MPI is lenient, so that a program that runs here cannot
// hang under MPI:
// - send returns only once the peer has received (MPI_Ssend semantics, what
//   MPI does for large messages anyway), so two ranks that both send first
//   deadlock here as they would there;
// - the ranks of a collective must agree on its kind, type, reduction and
//   count, and all_to_allv's send counts must equal the peers' recv counts;
//   otherwise every rank of the collective fails with a message naming both
//   ranks and both calls;
// - deadlock: when every rank that still holds a communicator is blocked (in
//   any group of the world), none can ever proceed, so each fails at once
//   with a message listing every blocked rank and its call; a rank that
//   destroyed all its communicators has left the world and can no longer be
//   waited for;
// - the first failure anywhere (mismatch, deadlock, timeout, a bad argument,
//   abortJob) stops the whole world: every rank's current and later
//   operations fail, naming the first failure, which is what MPI_Abort does
//   to a job.
//
// Each collective's data is moved by the last rank to arrive, outside the
// lock, while the others wait: reductions read every rank's buffer in rank
// order and write the result to each.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_COMM_LOCALWORLD_H
#define KILN_RUNTIME_COMM_LOCALWORLD_H

#include "runtime/comm/Communicator.h"

#include <functional>

namespace kiln::comm {

class LocalWorld {
public:
  /// One communicator ("world") per rank, 0..size-1; empty for size <= 0.
  /// Rank r's communicator, and those split from it, belong to one thread.
  /// A rank leaves the world when it has destroyed all of its communicators.
  static std::vector<std::unique_ptr<Communicator>> create(int size);

  /// Runs body(world) for every rank of a new world, each on its own thread,
  /// and returns when all have returned. A rank's communicator is destroyed
  /// as soon as its body returns, so peers still waiting for it fail instead
  /// of waiting for their timeout. An exception escaping a body ends that rank
  /// (its peers then fail) and the lowest rank's exception is rethrown here.
  static void run(int size, const std::function<void(Communicator &world)> &body);
};

} // namespace kiln::comm

#endif // KILN_RUNTIME_COMM_LOCALWORLD_H
