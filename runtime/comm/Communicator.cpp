//===- Communicator.cpp - Checks, messages and statistics of every backend ===//
//
// The public operations are not virtual: each one checks its arguments,
// refuses to run after an earlier failure, times the backend's *Impl call,
// counts bytes and writes the error message, so that every backend reports
// the same way and a backend only moves data.
//
//===----------------------------------------------------------------------===//

#include "runtime/comm/Communicator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>

namespace kiln::comm {

size_t dtypeBytes(DType dtype) {
  switch (dtype) {
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::F64:
  case DType::I64:
    return 8;
  case DType::I8:
    return 1;
  }
  return 0;
}

const char *dtypeName(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return "f32";
  case DType::F64:
    return "f64";
  case DType::I32:
    return "i32";
  case DType::I64:
    return "i64";
  case DType::I8:
    return "i8";
  }
  return "unknown-dtype";
}

const char *reduceOpName(ReduceOp op) {
  switch (op) {
  case ReduceOp::Sum:
    return "sum";
  case ReduceOp::Max:
    return "max";
  }
  return "unknown-reduction";
}

namespace {

bool overlaps(const void *a, size_t aBytes, const void *b, size_t bBytes) {
  if (aBytes == 0 || bBytes == 0)
    return false;
  auto x = reinterpret_cast<uintptr_t>(a), y = reinterpret_cast<uintptr_t>(b);
  return x < y + bBytes && y < x + aBytes;
}

/// The argument error of a buffer of `count` elements, or "".
std::string checkBuffer(const void *buf, const char *what, uint64_t count, DType dtype) {
  if (dtypeBytes(dtype) == 0)
    return "unknown dtype " + std::to_string(static_cast<int>(dtype));
  if (count > std::numeric_limits<uint64_t>::max() / 8)
    return std::string(what) + " count " + std::to_string(count) + " is too large";
  if (buf == nullptr && count > 0)
    return std::string(what) + " is null but holds " + std::to_string(count) + " elements";
  return "";
}

std::string checkReduceOp(ReduceOp op) {
  if (op != ReduceOp::Sum && op != ReduceOp::Max)
    return "unknown reduction " + std::to_string(static_cast<int>(op));
  return "";
}

} // namespace

Communicator::Communicator(std::string name, int rank, std::vector<int> worldRanks,
                           std::shared_ptr<RankContext> context)
    : name_(std::move(name)), rank_(rank), worldRanks_(std::move(worldRanks)),
      context_(std::move(context)) {
  numberedLikeWorld_ = true;
  for (size_t r = 0; r < worldRanks_.size(); ++r)
    numberedLikeWorld_ = numberedLikeWorld_ && worldRanks_[r] == static_cast<int>(r);
}

Communicator::~Communicator() = default;

std::shared_ptr<Communicator::RankContext> Communicator::newRankContext() {
  return std::make_shared<RankContext>();
}

bool Communicator::failed() const { return !context_->firstFailure.empty(); }
void Communicator::setStep(int64_t step) { context_->step = step; }
int64_t Communicator::step() const { return context_->step; }

void Communicator::setTimeoutSeconds(double seconds) {
  // A zero or negative (or NaN) timeout would fail every wait at once; treat
  // it as a caller bug and keep the old value rather than fail collectives.
  if (seconds > 0)
    timeoutSeconds_ = seconds;
}

std::string Communicator::secondsText(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%g s", seconds);
  return text;
}

std::string Communicator::rankName(int groupRank) const {
  if (groupRank < 0 || groupRank >= size())
    return "peer " + std::to_string(groupRank); // a bad argument, reported as such
  int world = worldRanks_[static_cast<size_t>(groupRank)];
  if (numberedLikeWorld_)
    return "rank " + std::to_string(world);
  return "rank " + std::to_string(world) + " (" + name_ + " rank " + std::to_string(groupRank) +
         ")";
}

std::string Communicator::opHead(OpKind kind, ReduceOp op, int peer) const {
  std::string over = " over " + name_;
  switch (kind) {
  case OpKind::AllReduce:
    return std::string("all_reduce ") + reduceOpName(op) + over;
  case OpKind::AllGather:
    return "all_gather" + over;
  case OpKind::ReduceScatter:
    return std::string("reduce_scatter ") + reduceOpName(op) + over;
  case OpKind::AllToAllV:
    return "all_to_allv" + over;
  case OpKind::Send:
    return "send to " + rankName(peer) + over;
  case OpKind::Recv:
    return "recv from " + rankName(peer) + over;
  case OpKind::Barrier:
    return "barrier" + over;
  case OpKind::Split:
    return "split" + over;
  }
  return "unknown operation" + over;
}

std::string Communicator::opArgs(OpKind kind, DType dtype, uint64_t count) {
  std::string elements = std::to_string(count) + " x " + dtypeName(dtype);
  switch (kind) {
  case OpKind::AllGather:
  case OpKind::ReduceScatter:
    return elements + " per rank";
  case OpKind::AllToAllV:
    return "sends " + elements;
  case OpKind::Barrier:
  case OpKind::Split:
    return "";
  default:
    return elements;
  }
}

std::string Communicator::describe(OpKind kind, DType dtype, ReduceOp op, uint64_t count,
                                   int peer) const {
  // An all_to_allv's counts differ per rank; only its type must agree.
  std::string args = kind == OpKind::AllToAllV ? dtypeName(dtype) : opArgs(kind, dtype, count);
  return opHead(kind, op, peer) + (args.empty() ? "" : " (" + args + ")");
}

Communicator::CallSignature Communicator::signatureOf(OpKind kind, DType dtype, ReduceOp op,
                                                  uint64_t count, uint64_t sequence) {
  return {int64_t(kind), int64_t(dtype), int64_t(op), int64_t(count), int64_t(sequence)};
}

bool Communicator::signaturesAgree(const int64_t *all, const CallSignature &mine,
                                   std::string &detail) const {
  enum Field { Kind, Type, Op, Count, Sequence };
  for (int r = 0; r < size(); ++r) {
    const int64_t *theirs = all + kSignatureFields * size_t(r);
    if (std::equal(mine.begin(), mine.end(), theirs))
      continue;
    detail = "mismatch: " + rankName(r) + " called " +
             describe(OpKind(theirs[Kind]), DType(theirs[Type]), ReduceOp(theirs[Op]),
                      uint64_t(theirs[Count]), -1) +
             " as collective #" + std::to_string(theirs[Sequence]) + " of " + name();
    if (theirs[Sequence] != mine[Sequence])
      detail += " (this rank's #" + std::to_string(mine[Sequence]) + ")";
    return false;
  }
  return true;
}

bool Communicator::countsAgree(const int64_t *all, DType dtype, std::string &detail) const {
  const size_t n = size_t(size());
  for (size_t from = 0; from < n; ++from)
    for (size_t to = 0; to < n; ++to) {
      const int64_t sent = all[2 * n * from + to], expected = all[2 * n * to + n + from];
      if (sent == expected)
        continue;
      detail = "count mismatch: " + rankName(int(from)) + " sends " + std::to_string(sent) +
               " x " + dtypeName(dtype) + " to " + rankName(int(to)) + ", which expects " +
               std::to_string(expected) + " from it";
      return false;
    }
  return true;
}

std::string Communicator::messageFor(const std::string &detail) const {
  std::string context;
  if (context_->step >= 0)
    context = "step " + std::to_string(context_->step);
  if (!currentArgs_.empty())
    context += (context.empty() ? "" : ", ") + currentArgs_;
  return rankName(rank_) + ": " + currentHead_ + (context.empty() ? "" : " (" + context + ")") +
         ": " + detail;
}

bool Communicator::fail(const std::string &detail) {
  error_ = messageFor(detail);
  if (context_->firstFailure.empty())
    context_->firstFailure = error_;
  onFailure(error_);
  return false;
}

template <typename Impl>
bool Communicator::run(std::string head, std::string args, const std::string &argumentError,
                       uint64_t inputBytes, uint64_t outputBytes, Impl &&impl) {
  currentHead_ = std::move(head);
  currentArgs_ = std::move(args);
  currentCall_ = currentHead_ + (currentArgs_.empty() ? "" : " (" + currentArgs_ + ")");
  if (!context_->firstFailure.empty())
    return fail("not attempted: an earlier operation failed (" + context_->firstFailure + ")");
  if (!argumentError.empty())
    return fail(argumentError);
  auto start = std::chrono::steady_clock::now();
  std::string detail;
  if (!impl(detail))
    return fail(detail.empty() ? "failed" : detail);
  stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ++stats_.calls;
  stats_.inputBytes += inputBytes;
  stats_.outputBytes += outputBytes;
  return true;
}

bool Communicator::allReduce(void *buf, size_t count, DType dtype, ReduceOp op) {
  std::string argumentError = checkBuffer(buf, "buf", count, dtype);
  if (argumentError.empty())
    argumentError = checkReduceOp(op);
  uint64_t bytes = count * dtypeBytes(dtype);
  return run(opHead(OpKind::AllReduce, op, -1), opArgs(OpKind::AllReduce, dtype, count),
             argumentError, bytes, bytes,
             [&](std::string &detail) { return allReduceImpl(buf, count, dtype, op, detail); });
}

bool Communicator::allGather(const void *send, void *recv, size_t countPerRank, DType dtype) {
  uint64_t total = uint64_t(countPerRank) * uint64_t(size());
  std::string argumentError = checkBuffer(send, "send", countPerRank, dtype);
  if (argumentError.empty())
    argumentError = checkBuffer(recv, "recv", total, dtype);
  size_t eb = dtypeBytes(dtype);
  if (argumentError.empty() && overlaps(send, countPerRank * eb, recv, total * eb))
    argumentError = "send and recv overlap";
  return run(
      opHead(OpKind::AllGather, ReduceOp::Sum, -1), opArgs(OpKind::AllGather, dtype, countPerRank),
      argumentError, countPerRank * eb, total * eb,
      [&](std::string &detail) { return allGatherImpl(send, recv, countPerRank, dtype, detail); });
}

bool Communicator::reduceScatter(const void *send, void *recv, size_t countPerRank, DType dtype,
                                 ReduceOp op) {
  uint64_t total = uint64_t(countPerRank) * uint64_t(size());
  std::string argumentError = checkBuffer(send, "send", total, dtype);
  if (argumentError.empty())
    argumentError = checkBuffer(recv, "recv", countPerRank, dtype);
  if (argumentError.empty())
    argumentError = checkReduceOp(op);
  size_t eb = dtypeBytes(dtype);
  if (argumentError.empty() && overlaps(send, total * eb, recv, countPerRank * eb))
    argumentError = "send and recv overlap";
  return run(opHead(OpKind::ReduceScatter, op, -1),
             opArgs(OpKind::ReduceScatter, dtype, countPerRank), argumentError, total * eb,
             countPerRank * eb, [&](std::string &detail) {
               return reduceScatterImpl(send, recv, countPerRank, dtype, op, detail);
             });
}

bool Communicator::allToAllV(const void *send, const int64_t *sendCounts, void *recv,
                             const int64_t *recvCounts, DType dtype) {
  std::string argumentError;
  uint64_t sent = 0, received = 0;
  if (sendCounts == nullptr || recvCounts == nullptr)
    argumentError = sendCounts == nullptr ? "sendCounts is null" : "recvCounts is null";
  for (int p = 0; argumentError.empty() && p < size(); ++p) {
    if (sendCounts[p] < 0 || recvCounts[p] < 0) {
      bool badSend = sendCounts[p] < 0;
      argumentError = std::string(badSend ? "sendCounts[" : "recvCounts[") + std::to_string(p) +
                      "] is " + std::to_string(badSend ? sendCounts[p] : recvCounts[p]);
    } else {
      sent += uint64_t(sendCounts[p]);
      received += uint64_t(recvCounts[p]);
    }
  }
  if (argumentError.empty())
    argumentError = checkBuffer(send, "send", sent, dtype);
  if (argumentError.empty())
    argumentError = checkBuffer(recv, "recv", received, dtype);
  size_t eb = dtypeBytes(dtype);
  if (argumentError.empty() && overlaps(send, sent * eb, recv, received * eb))
    argumentError = "send and recv overlap";
  std::string args =
      opArgs(OpKind::AllToAllV, dtype, sent) + ", receives " + std::to_string(received);
  return run(opHead(OpKind::AllToAllV, ReduceOp::Sum, -1), args, argumentError, sent * eb,
             received * eb, [&](std::string &detail) {
               return allToAllVImpl(send, sendCounts, recv, recvCounts, dtype, detail);
             });
}

namespace {
std::string checkPeer(int peer, int rank, int size, const std::string &group) {
  if (peer < 0 || peer >= size)
    return "peer " + std::to_string(peer) + " is not a rank of " + group + " (size " +
           std::to_string(size) + ")";
  if (peer == rank)
    return "the peer is this rank itself";
  return "";
}
} // namespace

bool Communicator::send(const void *buf, size_t count, DType dtype, int peer) {
  std::string argumentError = checkPeer(peer, rank(), size(), name_);
  if (argumentError.empty())
    argumentError = checkBuffer(buf, "buf", count, dtype);
  uint64_t bytes = count * dtypeBytes(dtype);
  return run(opHead(OpKind::Send, ReduceOp::Sum, peer), opArgs(OpKind::Send, dtype, count),
             argumentError, bytes, 0,
             [&](std::string &detail) { return sendImpl(buf, count, dtype, peer, detail); });
}

bool Communicator::recv(void *buf, size_t count, DType dtype, int peer) {
  std::string argumentError = checkPeer(peer, rank(), size(), name_);
  if (argumentError.empty())
    argumentError = checkBuffer(buf, "buf", count, dtype);
  uint64_t bytes = count * dtypeBytes(dtype);
  return run(opHead(OpKind::Recv, ReduceOp::Sum, peer), opArgs(OpKind::Recv, dtype, count),
             argumentError, 0, bytes,
             [&](std::string &detail) { return recvImpl(buf, count, dtype, peer, detail); });
}

bool Communicator::postSend(const void *buf, size_t count, DType dtype, int peer,
                            uint64_t &ticket) {
  std::string argumentError = checkPeer(peer, rank(), size(), name_);
  if (argumentError.empty())
    argumentError = checkBuffer(buf, "buf", count, dtype);
  uint64_t bytes = count * dtypeBytes(dtype);
  return run("post " + opHead(OpKind::Send, ReduceOp::Sum, peer),
             opArgs(OpKind::Send, dtype, count), argumentError, bytes, 0,
             [&](std::string &detail) {
               return postSendImpl(buf, count, dtype, peer, ticket, detail);
             });
}

bool Communicator::postRecv(void *buf, size_t count, DType dtype, int peer, uint64_t &ticket) {
  std::string argumentError = checkPeer(peer, rank(), size(), name_);
  if (argumentError.empty())
    argumentError = checkBuffer(buf, "buf", count, dtype);
  uint64_t bytes = count * dtypeBytes(dtype);
  return run("post " + opHead(OpKind::Recv, ReduceOp::Sum, peer),
             opArgs(OpKind::Recv, dtype, count), argumentError, 0, bytes,
             [&](std::string &detail) {
               return postRecvImpl(buf, count, dtype, peer, ticket, detail);
             });
}

bool Communicator::complete(uint64_t ticket) {
  return run("wait for posted transfer " + std::to_string(ticket) + " over " + name_, "", "", 0,
             0, [&](std::string &detail) { return completeImpl(ticket, detail); });
}

bool Communicator::progress() {
  // Not through run(): called between every kernel, it is neither timed nor
  // counted as an operation.
  if (!context_->firstFailure.empty())
    return false;
  std::string detail;
  if (progressImpl(detail))
    return true;
  currentHead_ = "progress of posted transfers over " + name_;
  currentArgs_.clear();
  currentCall_ = currentHead_;
  return fail(detail);
}

bool Communicator::progressImpl(std::string &) { return true; }

bool Communicator::postSendImpl(const void *, size_t, DType, int, uint64_t &,
                                std::string &detail) {
  detail = "posted transfers are not built for this communicator; use send";
  return false;
}

bool Communicator::postRecvImpl(void *, size_t, DType, int, uint64_t &, std::string &detail) {
  detail = "posted transfers are not built for this communicator; use recv";
  return false;
}

bool Communicator::completeImpl(uint64_t, std::string &detail) {
  detail = "posted transfers are not built for this communicator";
  return false;
}

bool Communicator::barrier() {
  return run(opHead(OpKind::Barrier, ReduceOp::Sum, -1), "", "", 0, 0,
             [&](std::string &detail) { return barrierImpl(detail); });
}

std::unique_ptr<Communicator> Communicator::split(int color, int key, std::string name) {
  std::string argumentError;
  if (color < 0)
    argumentError = "color must be >= 0, got " + std::to_string(color);
  else if (name.empty())
    argumentError = "the new group needs a name";
  std::string args =
      "into \"" + name + "\", color " + std::to_string(color) + ", key " + std::to_string(key);
  std::unique_ptr<Communicator> child;
  run(opHead(OpKind::Split, ReduceOp::Sum, -1), args, argumentError, 0, 0,
      [&](std::string &detail) {
        child = splitImpl(color, key, name, detail);
        return child != nullptr;
      });
  if (child)
    child->timeoutSeconds_ = timeoutSeconds_;
  return child;
}

} // namespace kiln::comm
