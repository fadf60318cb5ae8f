//===- Communicator.h - Every cross-rank operation of a Kiln program -*- C++ -*-===//
//
// The one interface through which a generated training program, and the
// compiler's multi-rank reference evaluator, talk to other ranks. Backends:
//   WorldOfOne.h      a single rank: collectives are copies.
//   LocalWorld.h      N ranks as threads of one process, with deadlock
//                     detection (unit tests, the multi-rank evaluator).
//   MpiCommunicator.h Open MPI, for the host target.
//
// The contract, the same for every backend:
// - Every operation blocks until it is complete on this rank and returns
//   false on failure; error() then names the operation, the group, the step,
//   this rank and the peer, e.g. "rank 1: all_reduce sum over dp (step 12,
//   4096 x f32): rank 0 did not arrive within 300 s". Nothing throws, so code
//   built with -fno-exceptions may call it. Generated code reads
//   `if (!dp.allReduce(g, n, DType::F32, ReduceOp::Sum)) return fail(dp);`.
// - A failure is final. The peers are now out of step with this rank, so
//   every later operation on any communicator of this rank (the world and
//   every group split from it) fails at once, and the program should end the
//   job with abortJob().
// - Reductions are deterministic: element i of a Sum is
//   (((x_0 + x_1) + x_2) + ...) + x_{N-1}, in group-rank order and in the
//   element type, computed once and copied to every rank. So every rank holds
//   the same bits, a rerun gives the same bits, and LocalWorld and MPI agree
//   bit for bit. (MPI_Allreduce promises no summation order; the MPI backend
//   does not use it. MpiCommunicator.h gives the algorithm and its bytes.)
//   Max propagates NaN; integer sums wrap around.
// - Counts are in elements. The send and receive buffers of one call must not
//   overlap (allReduce works in place on one buffer).
// - A communicator is used by one thread at a time, in program order. Every
//   member of a group calls the group's collectives in the same order with the
//   same kind, type, reduction and count; a mismatch the backend sees is an
//   error naming both ranks.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_COMM_COMMUNICATOR_H
#define KILN_RUNTIME_COMM_COMMUNICATOR_H

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

namespace kiln::comm {

enum class DType { F32, F64, I32, I64, I8 };
enum class ReduceOp { Sum, Max };

/// The DType of a C++ element type: float, double, int32_t, int64_t, int8_t.
template <typename T> constexpr DType dtypeOf() {
  if constexpr (std::is_same_v<T, float>)
    return DType::F32;
  else if constexpr (std::is_same_v<T, double>)
    return DType::F64;
  else if constexpr (std::is_same_v<T, int32_t>)
    return DType::I32;
  else if constexpr (std::is_same_v<T, int64_t>)
    return DType::I64;
  else {
    static_assert(std::is_same_v<T, int8_t>, "no DType for this element type");
    return DType::I8;
  }
}

/// Bytes of one element (1, 4 or 8); 0 for a value outside the enum.
size_t dtypeBytes(DType dtype);
/// "f32", "f64", "i32", "i64", "i8".
const char *dtypeName(DType dtype);
/// "sum", "max".
const char *reduceOpName(ReduceOp op);

/// Where one communicator's time and data went, for the metrics log.
/// Bytes are the sizes of the caller's buffers, the same for every backend
/// (nccl-tests' "size"; divide by seconds for algorithm bandwidth):
///   operation       inputBytes              outputBytes
///   all_reduce      count                   count
///   all_gather      countPerRank            size * countPerRank
///   reduce_scatter  size * countPerRank     countPerRank
///   all_to_allv     sum of sendCounts       sum of recvCounts
///   send / recv     count / 0               0 / count
///   barrier, split  0                       0
/// (times the element size). Only operations that succeeded are counted.
struct CommStats {
  uint64_t calls = 0;
  /// Wall time inside the operations, waiting for late peers included, so
  /// load imbalance between ranks shows up here.
  double seconds = 0;
  uint64_t inputBytes = 0;
  uint64_t outputBytes = 0;
};

class Communicator {
public:
  virtual ~Communicator();
  Communicator(const Communicator &) = delete;
  Communicator &operator=(const Communicator &) = delete;

  /// This rank within the group, 0 <= rank() < size().
  int rank() const { return rank_; }
  int size() const { return static_cast<int>(worldRanks_.size()); }
  /// This rank in the world the group was split from.
  int worldRank() const { return worldRanks_[static_cast<size_t>(rank_)]; }
  /// The group's name in messages: "world", or what split() was given.
  const std::string &name() const { return name_; }

  /// In place: every rank's buf becomes the reduction of all ranks' bufs.
  bool allReduce(void *buf, size_t count, DType dtype, ReduceOp op);
  /// recv (size() * countPerRank) = every rank's send, in rank order.
  bool allGather(const void *send, void *recv, size_t countPerRank, DType dtype);
  /// send holds size() chunks of countPerRank; rank r receives the reduction
  /// of every rank's chunk r. The inverse of allGather, as in autodiff.
  bool reduceScatter(const void *send, void *recv, size_t countPerRank, DType dtype, ReduceOp op);
  /// sendCounts[p] elements go to rank p and recvCounts[p] come from rank p
  /// (size() entries each; rank p's sendCounts[r] must equal rank r's
  /// recvCounts[p]). Chunks are packed in rank order: the displacements are
  /// the prefix sums of the counts. MoE token dispatch and combine.
  bool allToAllV(const void *send, const int64_t *sendCounts, void *recv, const int64_t *recvCounts,
                 DType dtype);
  /// Point to point, matched in order between each pair. send may wait until
  /// the peer receives (always does under LocalWorld, so that a program which
  /// passes there cannot deadlock on MPI's rendezvous protocol).
  bool send(const void *buf, size_t count, DType dtype, int peer);
  bool recv(void *buf, size_t count, DType dtype, int peer);
  /// Posted point to point (kiln-overlap-send-recv): postSend and postRecv
  /// start the transfer and return at once with its `ticket`; complete
  /// waits until it is over. Posts between a pair match in posting order,
  /// as send and recv do, and a posted buffer must stay untouched until its
  /// completion. The bytes count at the post, the time at both.
  bool postSend(const void *buf, size_t count, DType dtype, int peer, uint64_t &ticket);
  bool postRecv(void *buf, size_t count, DType dtype, int peer, uint64_t &ticket);
  bool complete(uint64_t ticket);
  /// Lets the posted transfers move on without waiting for them (MPI
  /// progresses only inside its calls): what a rank calls between kernels
  /// while transfers are posted. Not timed or counted.
  bool progress();
  bool barrier();

  /// A collective like MPI_Comm_split: the ranks that pass the same color
  /// (>= 0) form a group, ordered by key and then by rank in this group.
  /// `name` ("dp", "ep") names the group in messages. The child inherits the
  /// timeout and shares the step and the failure state with this rank's
  /// other communicators. Returns null on failure (see error()).
  std::unique_ptr<Communicator> split(int color, int key, std::string name);

  /// Ends every rank of the job after a failure. MPI: MPI_Abort, kills all
  /// processes and does not return. WorldOfOne: nothing to end; returns.
  /// LocalWorld: every other rank's current and next operations fail; returns.
  /// Where it returns, the caller then exits with exitCode itself.
  virtual void abortJob(int exitCode) = 0;

  /// The message of the last failed operation; empty while none failed.
  const std::string &error() const { return error_; }
  /// Whether an operation of this rank (on any of its communicators) failed.
  bool failed() const;

  /// The training step named in messages, shared by every communicator of
  /// this rank (setting it on the world sets it for dp and ep too). Messages
  /// leave the step out while it is negative (the default: setup).
  void setStep(int64_t step);
  int64_t step() const;

  /// How long an operation may wait for its peers before it fails; default
  /// 300 s, inherited by split(). Infinity waits forever; a value <= 0 (or
  /// NaN) is ignored, since it would fail every wait. Per communicator.
  void setTimeoutSeconds(double seconds);
  double timeoutSeconds() const { return timeoutSeconds_; }

  const CommStats &stats() const { return stats_; }
  void resetStats() { stats_ = CommStats(); }

protected:
  /// What the communicators of one rank share.
  struct RankContext {
    int64_t step = -1;
    std::string firstFailure;
  };

  Communicator(std::string name, int rank, std::vector<int> worldRanks,
               std::shared_ptr<RankContext> context);
  static std::shared_ptr<RankContext> newRankContext();
  const std::shared_ptr<RankContext> &context() const { return context_; }
  const std::vector<int> &worldRanks() const { return worldRanks_; }

  /// "0.25 s", "300 s".
  static std::string secondsText(double seconds);
  /// "rank 2" in a group numbered like the world, else "rank 5 (dp rank 2)".
  std::string rankName(int groupRank) const;
  /// The operation in progress without the step: "all_reduce sum over dp
  /// (4096 x f32)". Backends put it in messages other ranks print.
  const std::string &currentCall() const { return currentCall_; }
  /// The full error message for `detail` in the current operation, as
  /// error() will read: "rank 1: <operation> (step 12, ...): <detail>".
  std::string messageFor(const std::string &detail) const;
  /// Describes an operation with this group's naming: "all_reduce sum over
  /// dp (4096 x f32)". count is per rank for all_gather and reduce_scatter.
  enum class OpKind { AllReduce, AllGather, ReduceScatter, AllToAllV, Send, Recv, Barrier, Split };
  std::string describe(OpKind kind, DType dtype, ReduceOp op, uint64_t count, int peer) const;

  /// The call check of backends whose transport would hang, truncate or
  /// read garbage on a mismatch (MPI, NCCL): before a collective the ranks
  /// all-gather its signature (kind, type, reduction, count, the group's
  /// sequence number), and each compares every rank's with its own; for
  /// all_to_allv also every rank's send and receive counts. The backend
  /// moves the values; these build and compare them.
  static constexpr size_t kSignatureFields = 5;
  using CallSignature = std::array<int64_t, kSignatureFields>;
  static CallSignature signatureOf(OpKind kind, DType dtype, ReduceOp op, uint64_t count,
                               uint64_t sequence);
  /// `all`: size() signatures in rank order. True when every one is
  /// `mine`, else false with the first mismatch, naming both calls.
  bool signaturesAgree(const int64_t *all, const CallSignature &mine, std::string &detail) const;
  /// `all`: each rank's sendCounts then recvCounts (2 size() values per
  /// rank, in rank order). True when every rank receives from each peer
  /// what the peer sends it, else false naming the pair.
  bool countsAgree(const int64_t *all, DType dtype, std::string &detail) const;

  /// The backends. Arguments are checked (non-null buffers for non-zero
  /// counts, no overlap, peer in range and not this rank, counts >= 0) and
  /// this rank has not failed before. On failure they fill `detail` with what
  /// went wrong, without the operation, which the caller adds.
  virtual bool allReduceImpl(void *buf, size_t count, DType dtype, ReduceOp op,
                             std::string &detail) = 0;
  virtual bool allGatherImpl(const void *send, void *recv, size_t countPerRank, DType dtype,
                             std::string &detail) = 0;
  virtual bool reduceScatterImpl(const void *send, void *recv, size_t countPerRank, DType dtype,
                                 ReduceOp op, std::string &detail) = 0;
  virtual bool allToAllVImpl(const void *send, const int64_t *sendCounts, void *recv,
                             const int64_t *recvCounts, DType dtype, std::string &detail) = 0;
  virtual bool sendImpl(const void *buf, size_t count, DType dtype, int peer,
                        std::string &detail) = 0;
  virtual bool recvImpl(void *buf, size_t count, DType dtype, int peer, std::string &detail) = 0;
  /// Posted transfers; a backend without them refuses (the default).
  virtual bool postSendImpl(const void *buf, size_t count, DType dtype, int peer,
                            uint64_t &ticket, std::string &detail);
  virtual bool postRecvImpl(void *buf, size_t count, DType dtype, int peer, uint64_t &ticket,
                            std::string &detail);
  virtual bool completeImpl(uint64_t ticket, std::string &detail);
  virtual bool progressImpl(std::string &detail);
  virtual bool barrierImpl(std::string &detail) = 0;
  /// Returns the new communicator (built with this->context()), or null.
  virtual std::unique_ptr<Communicator> splitImpl(int color, int key, const std::string &name,
                                                  std::string &detail) = 0;
  /// Told of every failure of this rank, with error()'s message, so a backend
  /// can stop its peers from waiting for this rank (LocalWorld) or remember
  /// not to finalize (MPI).
  virtual void onFailure(const std::string &message) { (void)message; }

private:
  /// "all_reduce sum over dp" and "4096 x f32": an operation's name and its
  /// arguments; messages put the step between them.
  std::string opHead(OpKind kind, ReduceOp op, int peer) const;
  static std::string opArgs(OpKind kind, DType dtype, uint64_t count);
  /// Runs one operation: refuses it after an earlier failure or with a bad
  /// argument, times it, counts its bytes on success, and turns a failure's
  /// detail into error().
  template <typename Impl>
  bool run(std::string head, std::string args, const std::string &argumentError,
           uint64_t inputBytes, uint64_t outputBytes, Impl &&impl);
  bool fail(const std::string &detail);

  std::string name_;
  int rank_;
  std::vector<int> worldRanks_;
  bool numberedLikeWorld_;
  std::shared_ptr<RankContext> context_;
  double timeoutSeconds_ = 300;
  std::string currentHead_;
  std::string currentArgs_;
  std::string currentCall_;
  std::string error_;
  CommStats stats_;
};

} // namespace kiln::comm

#endif // KILN_RUNTIME_COMM_COMMUNICATOR_H
