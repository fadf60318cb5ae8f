//===- StepComm.h - The collectives a generated step calls -----*- C++ -*-===//
//
// A generated multi-rank step names each collective's group by its grid axes
// ("dp"), as the kernel-level IR does; the driver hands the step a StepComm
// that maps those names to the communicators it split from the world
// (runtime/comm). Data is f32. A collective along dimension `dim` of a
// row-major tensor sees it as [outer][inner] with outer the product of the
// dimensions before `dim`: the ranks' pieces interleave at `dim`, exactly as
// the reference evaluator does it (dialects/kiln/reference/CollectiveRules.cpp),
// so the generated program and the evaluator agree bit for bit.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DRIVER_STEPCOMM_H
#define KILN_RUNTIME_DRIVER_STEPCOMM_H

#include <cstdint>
#include <map>
#include <string>

namespace kiln::comm {
class Communicator;
} // namespace kiln::comm

namespace kiln::driver {

class StepComm {
public:
  virtual ~StepComm() = default;
  /// The communicator of the group over `axes` ("dp", "pp+dp"), or null.
  virtual comm::Communicator *group(const char *axes) = 0;
  /// The world communicator and the world rank whose coordinate on grid axis
  /// `axis` is `coordinate` and whose other coordinates are this rank's
  /// (send/recv); -1 when there is no such axis or coordinate.
  virtual comm::Communicator &world() = 0;
  virtual int peerRank(const char *axis, int64_t coordinate) = 0;
  /// Seconds and input bytes of this rank's collectives in every group
  /// since the last resetStats() (the jsonl's comm_s and comm_bytes).
  virtual double commSeconds() = 0;
  virtual uint64_t commBytes() = 0;
  /// Zeroes the statistics, allToAllBytes included.
  virtual void resetStats() = 0;
  /// The input bytes of this rank's all_to_alls since resetStats(): each
  /// one's count exchange (i64 per group rank) and the rows it sent.
  uint64_t allToAllBytes = 0;
  /// Posted transfers (sendStart, recvStart) not waited for yet: the step's
  /// ticket -> the world communicator's, and the buffer.
  struct Posted {
    uint64_t ticket;
    const float *buffer;
  };
  std::map<int64_t, Posted> posted;
};

/// out = the sum (or max) over the group of every rank's `in` (n values).
bool allReduce(StepComm *comm, const char *axes, const float *in, float *out, int64_t n,
               bool max, std::string *error);

/// `in` is [outer][inner]; out is [outer][size * inner] with rank r's piece at
/// [r * inner, (r + 1) * inner) of each outer row.
bool allGather(StepComm *comm, const char *axes, const float *in, float *out, int64_t outer,
               int64_t inner, std::string *error);
/// The same for bytes (kiln.topk_compress messages).
bool allGather(StepComm *comm, const char *axes, const int8_t *in, int8_t *out, int64_t outer,
               int64_t inner, std::string *error);

/// `in` is [outer][size * inner]; out ([outer][inner]) is this rank's piece of
/// the sum over the group.
bool reduceScatter(StepComm *comm, const char *axes, const float *in, float *out,
                   int64_t outer, int64_t inner, std::string *error);

/// This rank's piece of `in` ([outer][size * inner] -> [outer][inner]), no
/// data moved: the slice whose reduce_scatter result this rank holds.
bool localShard(StepComm *comm, const char *axes, const float *in, float *out, int64_t outer,
                int64_t inner, std::string *error);

/// kiln.all_to_all: `in` holds rows of `rowSize` floats grouped by
/// destination, sendCounts[p] of them for group rank p (in rank order, at
/// most `inRows` in all). The counts are exchanged first: recvCounts[p] is
/// how many rows came from p, and `out` holds them grouped by source, zeros
/// after the last (at most `outRows`; more is an error naming both ranks).
bool allToAll(StepComm *comm, const char *axes, const float *in, const int64_t *sendCounts,
              float *out, int64_t *recvCounts, int64_t inRows, int64_t outRows, int64_t rowSize,
              std::string *error);
/// The same for rows of int64 (expert parallelism's per-expert row counts).
bool allToAll(StepComm *comm, const char *axes, const int64_t *in, const int64_t *sendCounts,
              int64_t *out, int64_t *recvCounts, int64_t inRows, int64_t outRows, int64_t rowSize,
              std::string *error);

/// kiln.send / kiln.recv of n floats with the rank at `coordinate` on `axis`.
bool send(StepComm *comm, const char *axis, int64_t coordinate, const float *in, int64_t n,
          std::string *error);
bool recv(StepComm *comm, const char *axis, int64_t coordinate, float *out, int64_t n,
          std::string *error);

/// The same posted under the step's `ticket` (kiln-overlap-send-recv's
/// send_start, recv_start), finished by p2pWait(ticket) with the same
/// buffer (checked); the buffer must stay untouched until then.
bool sendStart(StepComm *comm, const char *axis, int64_t coordinate, const float *in, int64_t n,
               int64_t ticket, std::string *error);
bool recvStart(StepComm *comm, const char *axis, int64_t coordinate, float *out, int64_t n,
               int64_t ticket, std::string *error);
bool p2pWait(StepComm *comm, int64_t ticket, const float *buffer, std::string *error);
/// Lets the posted transfers move on (the generated step calls it after each
/// kernel while any is posted).
bool p2pProgress(StepComm *comm, std::string *error);

} // namespace kiln::driver

#endif // KILN_RUNTIME_DRIVER_STEPCOMM_H
