//===- LocalRendezvous.h - Where LocalWorld's threads meet -*- C++ -*-===//
//
// Private to LocalWorld.cpp: the state every rank of one LocalWorld shares,
// all of it guarded by World::mutex.
// - per world rank: how many communicators it holds, and while it waits,
//   what it waits in and for whom (for deadlock messages);
// - per group: the collectives in flight, keyed by their sequence number on
//   the group (the k-th collective of every member meets in slot k), and the
//   half of each send/recv pair that arrived first.
// A rank that has to wait marks itself blocked; whoever completes its
// operation marks it unblocked under the same lock, before it wakes up. So
// "every rank still in the world is blocked" is exact: nobody is left who
// could complete anything, and that is the deadlock test.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_COMM_LOCALRENDEZVOUS_H
#define KILN_RUNTIME_COMM_LOCALRENDEZVOUS_H

#include "runtime/comm/Communicator.h"

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>

namespace kiln::comm::local {

struct RankState {
  int liveCommunicators = 0;
  bool blocked = false;
  std::string blockedIn;                   ///< the call, as its rank describes it
  std::function<std::string()> waitingFor; ///< "rank 1", "rank 0, rank 2"
  std::string failure;                     ///< set by another rank that decided this wait fails
};

struct World {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<RankState> ranks;
  std::string failure; ///< the first failure; stops every rank
};

struct Group;

/// What one rank brought to a collective (and, for split, what it gets).
struct Arrival {
  const void *send = nullptr;
  void *recv = nullptr; ///< all_reduce: the in-place buffer
  const int64_t *sendCounts = nullptr;
  const int64_t *recvCounts = nullptr;
  int color = 0, key = 0;
  std::string call;
  std::shared_ptr<Group> newGroup;
  int newRank = -1;
};

/// What every rank of a collective must agree on.
struct Signature {
  int kind = -1;
  DType dtype = DType::F32;
  ReduceOp op = ReduceOp::Sum;
  uint64_t count = 0;
  bool operator==(const Signature &o) const {
    return kind == o.kind && dtype == o.dtype && op == o.op && count == o.count;
  }
};

struct Collective {
  Signature signature;
  int firstRank = -1;
  int arrived = 0;
  std::vector<Arrival> arrivals;
  std::vector<bool> present;
  bool executing = false; ///< all arrived; the last one is moving the data
  bool done = false;
  int departed = 0;
};

/// The half of a send/recv pair that arrived first, waiting for the other.
struct PendingTransfer {
  const void *sendBuf = nullptr;
  void *recvBuf = nullptr;
  size_t count = 0;
  DType dtype = DType::F32;
  std::string call;
  bool done = false;
};

struct Group {
  std::vector<int> worldRanks;
  std::map<uint64_t, Collective> collectives;
  /// By (sender, receiver) group rank. At most one per pair: each rank is in
  /// one operation at a time, and a second half meeting a first completes it.
  std::map<std::pair<int, int>, PendingTransfer *> pending;
};

/// With the lock held: if every rank still in the world is blocked, fails
/// each of them with one message listing every blocked rank, its call and
/// whom it waits for, and stops the world.
void failIfDeadlocked(World &world);

} // namespace kiln::comm::local

#endif // KILN_RUNTIME_COMM_LOCALRENDEZVOUS_H
