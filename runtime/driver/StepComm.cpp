//===- StepComm.cpp - The collectives a generated step calls -------------===//

#include "runtime/driver/StepComm.h"

#include "runtime/comm/Communicator.h"
#include "runtime/comm/RankPieces.h"

#include <algorithm>
#include <vector>

namespace kiln::driver {

using comm::Communicator;
using comm::DType;

static Communicator *groupOf(StepComm *stepComm, const char *axes, const char *what,
                             std::string *error) {
  Communicator *group = stepComm ? stepComm->group(axes) : nullptr;
  if (!group)
    *error = std::string(what) + " over " + axes +
             ": this program has no such group (it was built for one rank, or the driver "
             "did not set up the grid)";
  return group;
}

static bool failedIn(Communicator &group, std::string *error) {
  *error = group.error();
  return false;
}

bool allReduce(StepComm *stepComm, const char *axes, const float *in, float *out, int64_t n,
               bool max, std::string *error) {
  Communicator *group = groupOf(stepComm, axes, "all_reduce", error);
  if (!group)
    return false;
  if (in != out)
    std::copy_n(in, n, out);
  if (!group->allReduce(out, size_t(n), DType::F32,
                        max ? comm::ReduceOp::Max : comm::ReduceOp::Sum))
    return failedIn(*group, error);
  return true;
}

template <typename T>
static bool allGatherOf(StepComm *stepComm, const char *axes, const T *in, T *out,
                        int64_t outer, int64_t inner, DType dtype, std::string *error) {
  Communicator *group = groupOf(stepComm, axes, "all_gather", error);
  if (!group)
    return false;
  int64_t size = group->size();
  if (outer == 1) // the pieces are already in rank order
    return group->allGather(in, out, size_t(inner), dtype) || failedIn(*group, error);
  std::vector<T> byRank(size_t(size * outer * inner));
  if (!group->allGather(in, byRank.data(), size_t(outer * inner), dtype))
    return failedIn(*group, error);
  comm::interleavePiecesOfRanks(byRank.data(), outer, size, inner, out);
  return true;
}

bool allGather(StepComm *stepComm, const char *axes, const float *in, float *out, int64_t outer,
               int64_t inner, std::string *error) {
  return allGatherOf(stepComm, axes, in, out, outer, inner, DType::F32, error);
}

bool allGather(StepComm *stepComm, const char *axes, const int8_t *in, int8_t *out,
               int64_t outer, int64_t inner, std::string *error) {
  return allGatherOf(stepComm, axes, in, out, outer, inner, DType::I8, error);
}

bool reduceScatter(StepComm *stepComm, const char *axes, const float *in, float *out,
                   int64_t outer, int64_t inner, std::string *error) {
  Communicator *group = groupOf(stepComm, axes, "reduce_scatter", error);
  if (!group)
    return false;
  int64_t size = group->size();
  const float *send = in;
  std::vector<float> byRank;
  if (outer != 1) {
    byRank.resize(size_t(outer * size * inner));
    comm::groupPiecesByRank(in, outer, size, inner, byRank.data());
    send = byRank.data();
  }
  if (!group->reduceScatter(send, out, size_t(outer * inner), DType::F32, comm::ReduceOp::Sum))
    return failedIn(*group, error);
  return true;
}

bool localShard(StepComm *stepComm, const char *axes, const float *in, float *out, int64_t outer,
                int64_t inner, std::string *error) {
  Communicator *group = groupOf(stepComm, axes, "local_shard", error);
  if (!group)
    return false;
  comm::copyPieceOfRank(in, outer, int64_t(group->size()), inner, int64_t(group->rank()), out);
  return true;
}

template <typename T>
static bool allToAllRows(StepComm *stepComm, const char *axes, const T *in,
                         const int64_t *sendCounts, T *out, int64_t *recvCounts, int64_t inRows,
                         int64_t outRows, int64_t rowSize, DType dtype, std::string *error) {
  Communicator *group = groupOf(stepComm, axes, "all_to_all", error);
  if (!group)
    return false;
  const int size = group->size();
  int64_t sent = 0;
  for (int p = 0; p < size; ++p) {
    if (sendCounts[p] < 0) {
      *error = "all_to_all over " + std::string(axes) + ": rank " +
               std::to_string(group->worldRank()) + " sends " + std::to_string(sendCounts[p]) +
               " rows to group rank " + std::to_string(p) + "; counts must be >= 0";
      return false;
    }
    sent += sendCounts[p];
  }
  if (sent > inRows) {
    *error = "all_to_all over " + std::string(axes) + ": rank " +
             std::to_string(group->worldRank()) + " sends " + std::to_string(sent) +
             " rows, more than its buffer holds (" + std::to_string(inRows) + ")";
    return false;
  }
  std::vector<int64_t> ones(static_cast<size_t>(size), 1);
  if (!group->allToAllV(sendCounts, ones.data(), recvCounts, ones.data(), DType::I64))
    return failedIn(*group, error);
  int64_t received = 0;
  for (int p = 0; p < size; ++p)
    received += recvCounts[p];
  if (received > outRows) {
    int64_t most = 0;
    for (int p = 1; p < size; ++p)
      if (recvCounts[p] > recvCounts[most])
        most = p;
    *error = "all_to_all over " + std::string(axes) + ": rank " +
             std::to_string(group->worldRank()) + " receives " + std::to_string(received) +
             " rows (most from group rank " + std::to_string(most) + ": " +
             std::to_string(recvCounts[most]) + "), more than its capacity " +
             std::to_string(outRows);
    // The peers are about to exchange rows this rank cannot take.
    group->abortJob(1);
    return false;
  }
  std::vector<int64_t> sendElems(static_cast<size_t>(size)), recvElems(static_cast<size_t>(size));
  for (int p = 0; p < size; ++p) {
    sendElems[size_t(p)] = sendCounts[p] * rowSize;
    recvElems[size_t(p)] = recvCounts[p] * rowSize;
  }
  if (!group->allToAllV(in, sendElems.data(), out, recvElems.data(), dtype))
    return failedIn(*group, error);
  stepComm->allToAllBytes += uint64_t(size) * sizeof(int64_t) + uint64_t(sent * rowSize) * sizeof(T);
  std::fill(out + received * rowSize, out + outRows * rowSize, T(0));
  return true;
}

bool allToAll(StepComm *stepComm, const char *axes, const float *in, const int64_t *sendCounts,
              float *out, int64_t *recvCounts, int64_t inRows, int64_t outRows, int64_t rowSize,
              std::string *error) {
  return allToAllRows(stepComm, axes, in, sendCounts, out, recvCounts, inRows, outRows, rowSize,
                      DType::F32, error);
}

bool allToAll(StepComm *stepComm, const char *axes, const int64_t *in,
              const int64_t *sendCounts, int64_t *out, int64_t *recvCounts, int64_t inRows,
              int64_t outRows, int64_t rowSize, std::string *error) {
  return allToAllRows(stepComm, axes, in, sendCounts, out, recvCounts, inRows, outRows, rowSize,
                      DType::I64, error);
}

static Communicator *peerOf(StepComm *stepComm, const char *axis, int64_t coordinate,
                            const char *what, int &peer, std::string *error) {
  peer = stepComm ? stepComm->peerRank(axis, coordinate) : -1;
  if (peer < 0) {
    *error = std::string(what) + " on " + axis + ": no rank at coordinate " +
             std::to_string(coordinate) + " in this program's grid";
    return nullptr;
  }
  return &stepComm->world();
}

bool send(StepComm *stepComm, const char *axis, int64_t coordinate, const float *in, int64_t n,
          std::string *error) {
  int peer;
  Communicator *world = peerOf(stepComm, axis, coordinate, "send", peer, error);
  return world && (world->send(in, size_t(n), DType::F32, peer) || failedIn(*world, error));
}

bool recv(StepComm *stepComm, const char *axis, int64_t coordinate, float *out, int64_t n,
          std::string *error) {
  int peer;
  Communicator *world = peerOf(stepComm, axis, coordinate, "recv", peer, error);
  return world && (world->recv(out, size_t(n), DType::F32, peer) || failedIn(*world, error));
}

/// Posts a send (or a receive) of n floats under the step's `ticket`.
static bool post(StepComm *stepComm, const char *axis, int64_t coordinate, bool isSend,
                 float *buffer, int64_t n, int64_t ticket, std::string *error) {
  int peer;
  uint64_t posted = 0;
  Communicator *world =
      peerOf(stepComm, axis, coordinate, isSend ? "send_start" : "recv_start", peer, error);
  if (!world)
    return false;
  const bool ok = isSend ? world->postSend(buffer, size_t(n), DType::F32, peer, posted)
                         : world->postRecv(buffer, size_t(n), DType::F32, peer, posted);
  if (!ok)
    return failedIn(*world, error);
  stepComm->posted[ticket] = {posted, buffer};
  return true;
}

bool sendStart(StepComm *stepComm, const char *axis, int64_t coordinate, const float *in,
               int64_t n, int64_t ticket, std::string *error) {
  // Only read: the send's buffer is posted as is.
  return post(stepComm, axis, coordinate, /*isSend=*/true, const_cast<float *>(in), n, ticket,
              error);
}

bool recvStart(StepComm *stepComm, const char *axis, int64_t coordinate, float *out, int64_t n,
               int64_t ticket, std::string *error) {
  return post(stepComm, axis, coordinate, /*isSend=*/false, out, n, ticket, error);
}

bool p2pWait(StepComm *stepComm, int64_t ticket, const float *buffer, std::string *error) {
  auto it = stepComm ? stepComm->posted.find(ticket) : decltype(StepComm::posted)::iterator();
  if (!stepComm || it == stepComm->posted.end() || it->second.buffer != buffer) {
    if (error)
      *error = "p2p_wait: no transfer of this buffer was posted under ticket " +
               std::to_string(ticket) + (stepComm ? "" : " (a single-rank step has none)") +
               "; regenerate with kilnc";
    return false;
  }
  const uint64_t posted = it->second.ticket;
  stepComm->posted.erase(it);
  Communicator &world = stepComm->world();
  return world.complete(posted) || failedIn(world, error);
}

bool p2pProgress(StepComm *stepComm, std::string *error) {
  if (!stepComm || stepComm->posted.empty())
    return true;
  Communicator &world = stepComm->world();
  return world.progress() || failedIn(world, error);
}

} // namespace kiln::driver
