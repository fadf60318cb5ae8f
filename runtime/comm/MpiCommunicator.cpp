//===- MpiCommunicator.cpp - Open MPI backend for multi-rank host programs ===//

#include "runtime/comm/MpiCommunicator.h"
#include "runtime/comm/PollBackoff.h"

#include "runtime/comm/Reduce.h"

// The C API only: Open MPI's mpi.h otherwise pulls in its deprecated C++
// bindings, which need libmpi_cxx at link time.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace kiln::comm {

bool launchedUnderMpi() {
  for (const char *name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(name) != nullptr)
      return true;
  return false;
}

namespace {

/// MPI itself, shared by every communicator of the process: the last one to
/// go finalizes (or aborts after a failure, see the header).
struct MpiSession {
  bool finalizeAtExit = false;
  bool failed = false;
  ~MpiSession() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized)
      return;
    if (failed) {
      std::fflush(nullptr);
      MPI_Abort(MPI_COMM_WORLD, 1);
    } else if (finalizeAtExit) {
      MPI_Finalize();
    }
  }
};

std::string mpiError(const char *call, int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS)
    return std::string(call) + " failed with MPI error " + std::to_string(code);
  return std::string(call) + " failed: " + std::string(text, size_t(length));
}

MPI_Datatype mpiType(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return MPI_FLOAT;
  case DType::F64:
    return MPI_DOUBLE;
  case DType::I32:
    return MPI_INT32_T;
  case DType::I64:
    return MPI_INT64_T;
  case DType::I8:
    return MPI_INT8_T;
  }
  return MPI_DATATYPE_NULL;
}

/// The per-rank counts and displacements of an MPI v-collective, which are
/// ints; false if some count or offset does not fit.
bool toMpiCounts(const std::vector<uint64_t> &counts, std::vector<int> &mpiCounts,
                 std::vector<int> &displacements, std::string &detail) {
  mpiCounts.assign(counts.size(), 0);
  displacements.assign(counts.size(), 0);
  uint64_t offset = 0;
  for (size_t r = 0; r < counts.size(); ++r) {
    if (offset + counts[r] > uint64_t(INT_MAX)) {
      detail = "more than 2^31 - 1 elements, which MPI's int counts cannot address";
      return false;
    }
    mpiCounts[r] = int(counts[r]);
    displacements[r] = int(offset);
    offset += counts[r];
  }
  return true;
}

class MpiComm final : public Communicator {
public:
  MpiComm(std::shared_ptr<MpiSession> session, MPI_Comm comm, bool ownsComm, bool verifyCalls,
          std::string name, int rank, std::vector<int> worldRanks,
          std::shared_ptr<RankContext> context)
      : Communicator(std::move(name), rank, std::move(worldRanks), std::move(context)),
        session_(std::move(session)), comm_(comm), ownsComm_(ownsComm), verifyCalls_(verifyCalls) {}

  ~MpiComm() override {
    // After a failure MPI may still be inside a request on comm_; the session
    // aborts rather than finalizes then, so leave the communicator alone.
    if (ownsComm_ && !session_->failed)
      MPI_Comm_free(&comm_);
  }

  static std::unique_ptr<Communicator> world(std::shared_ptr<MpiSession> session, int rank,
                                             int size, bool verifyCalls) {
    std::vector<int> ranks(size_t(size), 0);
    for (int r = 0; r < size; ++r)
      ranks[size_t(r)] = r;
    return std::make_unique<MpiComm>(std::move(session), MPI_COMM_WORLD, false, verifyCalls,
                                     "world", rank, std::move(ranks), newRankContext());
  }

  void abortJob(int exitCode) override {
    std::fflush(nullptr); // the caller's error message first
    MPI_Abort(MPI_COMM_WORLD, exitCode);
    std::_Exit(exitCode);
  }

protected:
  bool allReduceImpl(void *buf, size_t count, DType dtype, ReduceOp op,
                     std::string &detail) override {
    if (!verify(OpKind::AllReduce, dtype, op, count, detail))
      return false;
    size_t n = size_t(size()), me = size_t(rank()), eb = dtypeBytes(dtype);
    if (n == 1 || count == 0)
      return true;
    // Chunk r (count / n elements, one more for the first count % n ranks)
    // is reduced by rank r.
    std::vector<uint64_t> chunkCounts(n);
    for (size_t r = 0; r < n; ++r)
      chunkCounts[r] = count / n + (r < count % n ? 1 : 0);
    std::vector<int> counts, offsets, mineCounts, mineOffsets;
    uint64_t mine = chunkCounts[me];
    if (!toMpiCounts(chunkCounts, counts, offsets, detail) ||
        !toMpiCounts(std::vector<uint64_t>(n, mine), mineCounts, mineOffsets, detail))
      return false;
    scratch_.resize(n * mine * eb);
    MPI_Request request;
    if (!check(MPI_Ialltoallv(buf, counts.data(), offsets.data(), mpiType(dtype), scratch_.data(),
                              mineCounts.data(), mineOffsets.data(), mpiType(dtype), comm_,
                              &request),
               "MPI_Ialltoallv", detail) ||
        !wait(request, nullptr, everyRankLate(), detail))
      return false;
    std::vector<const void *> chunks(n);
    for (size_t r = 0; r < n; ++r)
      chunks[r] = scratch_.data() + r * mine * eb;
    reduction::inRankOrder(static_cast<char *>(buf) + size_t(offsets[me]) * eb, chunks.data(), n,
                           mine, dtype, op);
    return check(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts.data(),
                                 offsets.data(), mpiType(dtype), comm_, &request),
                 "MPI_Iallgatherv", detail) &&
           wait(request, nullptr, everyRankLate(), detail);
  }

  bool allGatherImpl(const void *send, void *recv, size_t countPerRank, DType dtype,
                     std::string &detail) override {
    if (!verify(OpKind::AllGather, dtype, ReduceOp::Sum, countPerRank, detail) ||
        !fitsInt(countPerRank * size_t(size()), detail))
      return false;
    MPI_Request request;
    return check(MPI_Iallgather(send, int(countPerRank), mpiType(dtype), recv, int(countPerRank),
                                mpiType(dtype), comm_, &request),
                 "MPI_Iallgather", detail) &&
           wait(request, nullptr, everyRankLate(), detail);
  }

  bool reduceScatterImpl(const void *send, void *recv, size_t countPerRank, DType dtype,
                         ReduceOp op, std::string &detail) override {
    if (!verify(OpKind::ReduceScatter, dtype, op, countPerRank, detail) ||
        !fitsInt(countPerRank * size_t(size()), detail))
      return false;
    size_t n = size_t(size()), chunk = countPerRank * dtypeBytes(dtype);
    scratch_.resize(n * chunk);
    MPI_Request request;
    if (!check(MPI_Ialltoall(send, int(countPerRank), mpiType(dtype), scratch_.data(),
                             int(countPerRank), mpiType(dtype), comm_, &request),
               "MPI_Ialltoall", detail) ||
        !wait(request, nullptr, everyRankLate(), detail))
      return false;
    std::vector<const void *> chunks(n);
    for (size_t r = 0; r < n; ++r)
      chunks[r] = scratch_.data() + r * chunk;
    reduction::inRankOrder(recv, chunks.data(), n, countPerRank, dtype, op);
    return true;
  }

  bool allToAllVImpl(const void *send, const int64_t *sendCounts, void *recv,
                     const int64_t *recvCounts, DType dtype, std::string &detail) override {
    size_t n = size_t(size());
    std::vector<uint64_t> sends(sendCounts, sendCounts + n), recvs(recvCounts, recvCounts + n);
    if (!verify(OpKind::AllToAllV, dtype, ReduceOp::Sum, 0, detail) ||
        (verifyCalls_ && !verifyCounts(sendCounts, recvCounts, dtype, detail)))
      return false;
    std::vector<int> sendInts, sendOffsets, recvInts, recvOffsets;
    if (!toMpiCounts(sends, sendInts, sendOffsets, detail) ||
        !toMpiCounts(recvs, recvInts, recvOffsets, detail))
      return false;
    MPI_Request request;
    return check(MPI_Ialltoallv(send, sendInts.data(), sendOffsets.data(), mpiType(dtype), recv,
                                recvInts.data(), recvOffsets.data(), mpiType(dtype), comm_,
                                &request),
                 "MPI_Ialltoallv", detail) &&
           wait(request, nullptr, everyRankLate(), detail);
  }

  bool sendImpl(const void *buf, size_t count, DType dtype, int peer,
                std::string &detail) override {
    uint64_t ticket = 0;
    return postSendImpl(buf, count, dtype, peer, ticket, detail) && completeImpl(ticket, detail);
  }

  bool postSendImpl(const void *buf, size_t count, DType dtype, int peer, uint64_t &ticket,
                    std::string &detail) override {
    return post(/*receive=*/false, const_cast<void *>(buf), count, dtype, peer, ticket, detail);
  }

  bool postRecvImpl(void *buf, size_t count, DType dtype, int peer, uint64_t &ticket,
                    std::string &detail) override {
    return post(/*receive=*/true, buf, count, dtype, peer, ticket, detail);
  }

  /// MPI_Isend (which only reads `buf`) or MPI_Irecv, kept under a new ticket.
  bool post(bool receive, void *buf, size_t count, DType dtype, int peer, uint64_t &ticket,
            std::string &detail) {
    Posted posted{MPI_Request(), receive, peer, count, dtype, false, {}};
    if (!fitsInt(count, detail))
      return false;
    const int code =
        receive ? MPI_Irecv(buf, int(count), mpiType(dtype), peer, kTag, comm_, &posted.request)
                : MPI_Isend(buf, int(count), mpiType(dtype), peer, kTag, comm_, &posted.request);
    if (!check(code, receive ? "MPI_Irecv" : "MPI_Isend", detail))
      return false;
    ticket = nextTicket_++;
    posted_.emplace(ticket, posted);
    return true;
  }

  bool completeImpl(uint64_t ticket, std::string &detail) override {
    auto it = posted_.find(ticket);
    if (it == posted_.end()) {
      detail = "no posted transfer has ticket " + std::to_string(ticket);
      return false;
    }
    Posted posted = it->second;
    posted_.erase(it);
    MPI_Status &status = posted.status;
    if (!posted.done &&
        !wait(posted.request, &status,
              rankName(posted.peer) + (posted.receive ? " did not send" : " did not receive"),
              detail)) {
      if (truncated_)
        detail = "mismatch: " + rankName(posted.peer) + " sent more than " +
                 std::to_string(posted.count) + " x " + dtypeName(posted.dtype) + " (" + detail +
                 ")";
      return false;
    }
    return !posted.receive || receivedAll(status, posted.count, posted.dtype, posted.peer, detail);
  }

  // Blocking transfers are a post and its completion.
  bool progressImpl(std::string &detail) override {
    for (auto &[ticket, posted] : posted_) {
      if (posted.done)
        continue;
      int done = 0;
      if (!check(MPI_Test(&posted.request, &done, &posted.status), "MPI_Test", detail))
        return false;
      posted.done = done != 0;
    }
    return true;
  }

  bool recvImpl(void *buf, size_t count, DType dtype, int peer, std::string &detail) override {
    uint64_t ticket = 0;
    return postRecvImpl(buf, count, dtype, peer, ticket, detail) && completeImpl(ticket, detail);
  }

  /// A completed receive got exactly `count` elements.
  bool receivedAll(MPI_Status &status, size_t count, DType dtype, int peer, std::string &detail) {
    int received = 0;
    if (!check(MPI_Get_count(&status, mpiType(dtype), &received), "MPI_Get_count", detail))
      return false;
    if (size_t(received) != count) {
      detail = "mismatch: " + rankName(peer) + " sent " + std::to_string(received) + " x " +
               dtypeName(dtype);
      return false;
    }
    return true;
  }

  bool barrierImpl(std::string &detail) override {
    // The call check is an all-gather, which no rank leaves before every rank
    // entered it: a barrier already.
    if (verifyCalls_)
      return verify(OpKind::Barrier, DType::F32, ReduceOp::Sum, 0, detail);
    MPI_Request request;
    return check(MPI_Ibarrier(comm_, &request), "MPI_Ibarrier", detail) &&
           wait(request, nullptr, everyRankLate(), detail);
  }

  std::unique_ptr<Communicator> splitImpl(int color, int key, const std::string &name,
                                          std::string &detail) override {
    if (!verify(OpKind::Split, DType::F32, ReduceOp::Sum, 0, detail))
      return nullptr;
    // MPI_Comm_split has no non-blocking form: gather the colors first, with
    // the timeout, so that a missing rank is reported here rather than hang
    // MPI_Comm_split. The gather also gives the new group's world ranks.
    size_t n = size_t(size());
    int mine[2] = {color, key};
    std::vector<int> all(2 * n);
    MPI_Request request;
    if (!check(MPI_Iallgather(mine, 2, MPI_INT, all.data(), 2, MPI_INT, comm_, &request),
               "MPI_Iallgather", detail) ||
        !wait(request, nullptr, everyRankLate(), detail))
      return nullptr;
    std::vector<int> members;
    for (size_t r = 0; r < n; ++r)
      if (all[2 * r] == color)
        members.push_back(int(r));
    std::stable_sort(members.begin(), members.end(),
                     [&](int a, int b) { return all[2 * size_t(a) + 1] < all[2 * size_t(b) + 1]; });
    std::vector<int> newWorldRanks;
    int newRank = -1;
    for (int r : members) {
      if (r == rank())
        newRank = int(newWorldRanks.size());
      newWorldRanks.push_back(worldRanks()[size_t(r)]);
    }
    MPI_Comm group = MPI_COMM_NULL;
    int mpiRank = -1;
    if (!check(MPI_Comm_split(comm_, color, key, &group), "MPI_Comm_split", detail) ||
        !check(MPI_Comm_set_errhandler(group, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler",
               detail) ||
        !check(MPI_Comm_rank(group, &mpiRank), "MPI_Comm_rank", detail))
      return nullptr;
    if (mpiRank != newRank) {
      detail = "MPI_Comm_split made this rank " + std::to_string(mpiRank) + ", expected " +
               std::to_string(newRank);
      return nullptr;
    }
    return std::make_unique<MpiComm>(session_, group, true, verifyCalls_, name, newRank,
                                     std::move(newWorldRanks), context());
  }

  void onFailure(const std::string &) override { session_->failed = true; }

private:
  /// Point-to-point messages of a communicator are ordered per pair; one tag.
  static constexpr int kTag = 7;

  static bool check(int code, const char *call, std::string &detail) {
    if (code == MPI_SUCCESS)
      return true;
    detail = mpiError(call, code);
    return false;
  }

  static bool fitsInt(uint64_t count, std::string &detail) {
    if (count <= uint64_t(INT_MAX))
      return true;
    detail = std::to_string(count) +
             " elements is more than the 2^31 - 1 that MPI's int counts can address";
    return false;
  }

  std::string everyRankLate() const {
    return "not every rank of " + name() + " arrived (MPI does not say which)";
  }

  /// Polls the request until it completes or the timeout passes, backing
  /// off between polls as PollBackoff.h says.
  bool wait(MPI_Request &request, MPI_Status *status, const std::string &late,
            std::string &detail) {
    using Clock = std::chrono::steady_clock;
    auto start = Clock::now();
    double timeout = timeoutSeconds();
    PollBackoff backoff;
    truncated_ = false;
    for (;;) {
      int done = 0;
      int code = MPI_Test(&request, &done, status ? status : MPI_STATUS_IGNORE);
      if (code != MPI_SUCCESS) {
        int errorClass = 0;
        MPI_Error_class(code, &errorClass);
        truncated_ = errorClass == MPI_ERR_TRUNCATE;
        return check(code, "MPI_Test", detail);
      }
      if (done)
        return true;
      double waited = std::chrono::duration<double>(Clock::now() - start).count();
      if (waited >= timeout) {
        detail = late + " within " + secondsText(timeout);
        return false;
      }
      backoff.pause(waited);
    }
  }

  /// The call check: every rank learns every rank's next collective.
  bool verify(OpKind kind, DType dtype, ReduceOp op, uint64_t count, std::string &detail) {
    if (!verifyCalls_)
      return true;
    const CallSignature mine = signatureOf(kind, dtype, op, count, nextCollective_++);
    std::vector<int64_t> all(kSignatureFields * size_t(size()));
    MPI_Request request;
    return check(MPI_Iallgather(mine.data(), int(kSignatureFields), MPI_INT64_T, all.data(),
                                int(kSignatureFields), MPI_INT64_T, comm_, &request),
                 "MPI_Iallgather", detail) &&
           wait(request, nullptr, everyRankLate(), detail) &&
           signaturesAgree(all.data(), mine, detail);
  }

  /// all_to_allv: every rank checks the whole count matrix, so that all of
  /// them fail on a mismatch, with the same message.
  bool verifyCounts(const int64_t *sendCounts, const int64_t *recvCounts, DType dtype,
                    std::string &detail) {
    size_t n = size_t(size());
    std::vector<int64_t> mine(sendCounts, sendCounts + n), all(2 * n * n);
    mine.insert(mine.end(), recvCounts, recvCounts + n);
    MPI_Request request;
    return check(MPI_Iallgather(mine.data(), int(2 * n), MPI_INT64_T, all.data(), int(2 * n),
                                MPI_INT64_T, comm_, &request),
                 "MPI_Iallgather", detail) &&
           wait(request, nullptr, everyRankLate(), detail) &&
           countsAgree(all.data(), dtype, detail);
  }

  std::shared_ptr<MpiSession> session_;
  MPI_Comm comm_;
  bool ownsComm_;
  bool verifyCalls_;
  uint64_t nextCollective_ = 0;
  bool truncated_ = false;
  std::vector<unsigned char> scratch_;
  /// Posted transfers by ticket, until their completion.
  struct Posted {
    MPI_Request request;
    bool receive;
    int peer;
    size_t count;
    DType dtype;
    bool done = false;     ///< progress() saw it complete
    MPI_Status status = {}; ///< then, its status
  };
  std::map<uint64_t, Posted> posted_;
  uint64_t nextTicket_ = 0;
};

} // namespace

std::unique_ptr<Communicator>
MpiCommunicator::initWorld(int *argc, char ***argv, std::string &error, const MpiOptions &options) {
  auto session = std::make_shared<MpiSession>();
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    // Only the main thread calls MPI; OpenMP threads run kernels.
    int code = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (code != MPI_SUCCESS) {
      error = mpiError("MPI_Init_thread", code);
      return nullptr;
    }
    session->finalizeAtExit = true;
  }
  int rank = 0, size = 0;
  int code = MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  if (code == MPI_SUCCESS)
    code = MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (code == MPI_SUCCESS)
    code = MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (code != MPI_SUCCESS) {
    error = mpiError("MPI_COMM_WORLD setup", code);
    return nullptr;
  }
  return MpiComm::world(std::move(session), rank, size, options.verifyCalls);
}

} // namespace kiln::comm
