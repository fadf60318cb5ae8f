//===- NcclCommunicator.cuh - NCCL backend of the communicator -*- CUDA -*-===//
//
// comm::Communicator (runtime/comm/Communicator.h: the interface and its
// contract) over one NCCL communicator, for multi-rank steps of the CUDA
// target: every buffer an operation takes is a DEVICE pointer (allToAllV's
// count arrays are host arrays). A *bootstrap* host communicator (the MPI
// world, which must outlive this one) carries what NCCL cannot: the
// ncclUniqueId (rank 0 creates it; an all_gather of its bytes as i8, rank
// 0's taken), split (the bootstrap splits, then the child group gets its
// own NCCL communicator from a fresh id), barrier, and the call check.
//
// Algorithms (n ranks, B = bytes of the caller's buffer, "sends" = bytes one
// rank puts on the wire). NCCL only moves bytes (ncclInt8); every reduction
// is orderedReduce below, in rank order, with comm::reduction's
// combineElement, so the results are MpiCommunicator's and LocalWorld's bit
// for bit for the same inputs:
// - all_reduce: chunk r (count / n elements, one more for the first
//   count % n ranks, as MpiCommunicator splits) goes to rank r in one group
//   of ncclSend / ncclRecv (an all-to-all of raw chunks into the scratch;
//   this rank's own chunk is a device copy), orderedReduce into this rank's
//   chunk of the buffer, then every rank gets every reduced chunk: an
//   in-place ncclAllGather when the chunks are equal, else a group of
//   send / recv. Sends 2 (n-1)/n B, as a ring all-reduce, with B of scratch.
// - reduce_scatter: the same all-to-all, orderedReduce into recv. Sends
//   (n-1)/n B with B of scratch.
// - all_gather: ncclAllGather. all_to_allv: one group of ncclSend / ncclRecv
//   by the counts (displacements their prefix sums; the self chunk a device
//   copy). send / recv: ncclSend / ncclRecv. barrier: once the
//   communication stream is idle, the bootstrap's barrier (or the call
//   check's all_gather, a barrier already).
// - Call check (on by default, NcclOptions::verifyCalls): before each
//   collective the ranks exchange its signature (kind, type, reduction,
//   count, sequence number: 40 bytes per rank, one all_gather over the
//   bootstrap; all_to_allv also its 2n counts), as MpiCommunicator does; a
//   mismatch is an error naming both ranks on every rank, where NCCL would
//   hang or corrupt memory. A send and its recv exchange (type, count) over
//   the bootstrap's send / recv first, both ways, so both ranks see a
//   mismatch. Each check costs one host round trip per call.
// Why not ncclAllReduce / ncclReduceScatter: NCCL fixes no summation order
// (ring or tree, chosen by size, rank count and topology, and its channels
// split the buffer differently again), so float sums would differ from the
// host backends and between layouts of the same model.
//
// Blocking contract: an operation enqueues on the communication stream this
// communicator owns and returns once it is complete, polling cudaStreamQuery
// and ncclCommGetAsyncError until timeoutSeconds(); on a timeout or an
// asynchronous NCCL error it calls ncclCommAbort and fails (the base class
// adds the operation, the step and the rank). The communicator is created
// nonblocking (ncclConfig_t blocking = 0) so that init, and NCCL's own
// enqueue (ncclInProgress), are timed out the same way. The buffers are the
// step's kernels' work: each operation first makes the communication stream
// wait for the compute stream (NcclOptions::computeStream or
// setComputeStream: the step's stream), or for the whole device where none
// was set, or, while setReadyEvent holds one, for that event only (so that
// compute issued after it overlaps the operation); since the host blocks,
// work enqueued after an operation sees its result. So a step that calls
// these cannot be captured in one CUDA graph: DeviceStep records a
// multi-rank step as graph segments with these run between them
// (StepSegments.h). postSend / postRecv / complete
// refuse (the base class's default: "use send"); progress has nothing to do.
//
// A failure is final, as the contract says: this communicator and those
// split from it share the failure state; the bootstrap keeps its own (its
// step and timeout follow this communicator's before each use). A failing
// communicator aborts its NCCL communicator at once (the others of the rank
// in their destructors), and the program then calls abortJob:
// ncclCommAbort, then the bootstrap's abortJob (MPI_Abort). The bootstrap's
// own send / recv between a pair are used by the call check of send / recv:
// a program should not interleave its own host point-to-point on the same
// bootstrap.
//
// Bits the GPU may not share with the host: a float Sum over a NaN gives
// the GPU's canonical NaN where the host keeps the first NaN's payload
// (Max only selects, so its NaNs keep their bits); subnormals are kept
// (nvcc's default -ftz=false) as on the host.
//
// Status: compiled with nvcc (sm_90a) and the reduction kernel tested on the
// CPU shim against comm::reduction::inRankOrder (CudaShimNcclReduceTest);
// never run on a GPU yet. test/cuda/nccl_check.cu compares every operation
// with the MPI backend on N GPUs (scripts/gpu-check.sh runs it where the
// machine has two or more).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_CUDA_NCCLCOMMUNICATOR_CUH
#define KILN_RUNTIME_CUDA_NCCLCOMMUNICATOR_CUH

#include "runtime/comm/Communicator.h"
#include "runtime/comm/PollBackoff.h"
#include "runtime/comm/Reduce.h"
#include "runtime/kernels/cuda/Device.cuh"

#include <cstdint>

#if KILN_CUDA_DEVICE
#include <cstdlib>
#include <string>
#endif

#if KILN_CUDA_DEVICE && defined(KILN_HAVE_NCCL)
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <vector>
#endif

namespace kiln::cuda {

//===----------------------------------------------------------------------===//
// Kernels
//===----------------------------------------------------------------------===//

/// out[i] = chunk 0 op chunk 1 op ... op chunk n-1 at element i, in rank
/// order (chunk r at in + r * stride): comm::reduction::inRankOrder's
/// sequence of operations, one thread per element, so the bits are the host
/// backends'. out may be chunk 0 (each thread reads its element before it
/// writes it), no other chunk.
template <typename T>
__global__ void orderedReduceKernel(T *out, const T *in, int64_t count, int64_t stride, int n,
                                    comm::ReduceOp op) {
  for (int64_t i = globalThread(); i < count; i += gridThreads()) {
    T acc = in[i];
    for (int r = 1; r < n; ++r)
      acc = comm::reduction::combineElement(acc, in[int64_t(r) * stride + i], op);
    out[i] = acc;
  }
}

//===----------------------------------------------------------------------===//
// Launchers
//===----------------------------------------------------------------------===//

template <typename T>
inline void orderedReduceAs(cudaStream_t stream, void *out, const void *in, int64_t count,
                            int64_t stride, int n, comm::ReduceOp op) {
  KILN_LAUNCH(orderedReduceKernel<T>, blocksFor(count), kBlock, 0, stream, static_cast<T *>(out),
              static_cast<const T *>(in), count, stride, n, op);
}

/// The reduction of n chunks of `count` elements, `stride` elements apart
/// from `in` on, into out (see orderedReduceKernel), on `stream`.
inline void orderedReduce(cudaStream_t stream, void *out, const void *in, int64_t count,
                          int64_t stride, int n, comm::DType dtype, comm::ReduceOp op) {
  KILN_LAUNCH_CHECK(count >= 0 && n >= 0, "count %lld and n %d must be >= 0", (long long)count,
                    n);
  KILN_LAUNCH_CHECK(n <= 1 || stride >= count, "chunks of %lld elements overlap at stride %lld",
                    (long long)count, (long long)stride);
  KILN_LAUNCH_CHECK(op == comm::ReduceOp::Sum || op == comm::ReduceOp::Max,
                    "unknown reduction %d", int(op));
  if (count == 0 || n == 0)
    return;
  switch (dtype) {
  case comm::DType::F32:
    return orderedReduceAs<float>(stream, out, in, count, stride, n, op);
  case comm::DType::F64:
    return orderedReduceAs<double>(stream, out, in, count, stride, n, op);
  case comm::DType::I32:
    return orderedReduceAs<int32_t>(stream, out, in, count, stride, n, op);
  case comm::DType::I64:
    return orderedReduceAs<int64_t>(stream, out, in, count, stride, n, op);
  case comm::DType::I8:
    return orderedReduceAs<int8_t>(stream, out, in, count, stride, n, op);
  }
  KILN_LAUNCH_CHECK(false, "unknown dtype %d", int(dtype));
}

#if KILN_CUDA_DEVICE
/// The GPU of this process among those it sees: its local rank on the node
/// (Open MPI's OMPI_COMM_WORLD_LOCAL_RANK, MPICH's MPI_LOCALRANKID, Slurm's
/// SLURM_LOCALID) modulo the device count; 0 when none is set or CUDA sees
/// no device.
inline int localRankDevice() {
  const char *local = nullptr;
  for (const char *name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"})
    if ((local = std::getenv(name)) != nullptr)
      break;
  int devices = 0;
  if (local == nullptr || cudaGetDeviceCount(&devices) != cudaSuccess || devices <= 0)
    return 0;
  const long rank = std::strtol(local, nullptr, 10);
  return rank < 0 ? 0 : int(rank % devices);
}
#endif

#if KILN_CUDA_DEVICE && defined(KILN_HAVE_NCCL)

struct NcclOptions {
  /// Exchange and compare every collective's signature first (see above).
  bool verifyCalls = true;
  /// The stream the step's kernels run on (NcclCommunicator::
  /// setComputeStream); null: each operation waits for the whole device.
  cudaStream_t computeStream = nullptr;
};

/// Whether a CUDA runtime call succeeded; if not, `detail` says which call
/// failed and CUDA's error ("cudaMalloc failed: CUDA error
/// cudaErrorMemoryAllocation: out of memory"). For the communicator and the
/// step's collectives, which report errors instead of exiting.
inline bool checkCuda(cudaError_t code, const char *call, std::string &detail) {
  if (code == cudaSuccess)
    return true;
  detail = std::string(call) + " failed: CUDA error " + cudaGetErrorName(code) + ": " +
           cudaGetErrorString(code);
  return false;
}

class NcclCommunicator final : public comm::Communicator {
public:
  /// Makes `device` current, creates this rank's NCCL communicator over
  /// every rank of `bootstrap` (same ranks, same name) and its stream.
  /// Returns null with `error` set on failure (within the bootstrap's
  /// timeout). `bootstrap` must outlive the result and every group split
  /// from it.
  static std::unique_ptr<comm::Communicator> initWorld(comm::Communicator &bootstrap, int device,
                                                       std::string &error,
                                                       const NcclOptions &options = {}) {
    std::string detail;
    std::unique_ptr<comm::Communicator> world;
    if (checkCuda(cudaSetDevice(device), "cudaSetDevice", detail))
      world = create(bootstrap, nullptr, device, options.verifyCalls, bootstrap.timeoutSeconds(),
                     options.computeStream, newRankContext(), detail);
    if (!world)
      error = "NCCL communicator over " + bootstrap.name() + " (device " + std::to_string(device) +
              "): " + detail;
    return world;
  }

  ~NcclCommunicator() override {
    // Healthy: finalize (flushes this rank's work, all of it finished; a
    // nonblocking call, awaited with the timeout), then free. Otherwise, or
    // if that fails, abort: a peer may still wait for this rank.
    if (comm_ != nullptr && !failed()) {
      std::string ignored;
      if (nccl(ncclCommFinalize(comm_), "ncclCommFinalize", ignored) && comm_ != nullptr) {
        ncclCommDestroy(comm_);
        comm_ = nullptr;
      }
    }
    abortNccl();
    if (scratch_ != nullptr)
      cudaFree(scratch_);
    if (computeReady_ != nullptr)
      cudaEventDestroy(computeReady_);
    if (stream_ != nullptr)
      cudaStreamDestroy(stream_);
  }

  /// The stream the step's kernels run on (the buffers' producer and
  /// consumer): each operation first waits for its work so far. Unset (the
  /// default), each waits for the whole device. Inherited by split().
  void setComputeStream(cudaStream_t stream) { computeStream_ = stream; }

  void abortJob(int exitCode) override {
    abortNccl();
    bootstrap_.abortJob(exitCode);
  }

  /// The communication stream every operation runs on.
  cudaStream_t communicationStream() const { return stream_; }

  /// While set, each operation waits for `ready` (an event recorded on the
  /// compute stream where its buffers were done) instead of the compute
  /// stream's work so far, so that compute issued after `ready` overlaps it
  /// (runtime/cuda/StepCollectives.cuh: kiln-overlap-collectives' ready
  /// events). Null: back to the compute stream (or the whole device).
  void setReadyEvent(cudaEvent_t ready) { readyEvent_ = ready; }

  /// Ends this rank's part in the NCCL communicator now (a step failed for
  /// a reason of its own: peers blocked in a collective with this rank
  /// return), without ending the job: the driver then does, over the
  /// bootstrap. Later operations fail.
  void abortCommunication() { abortNccl(); }

protected:
  bool allReduceImpl(void *buf, size_t count, comm::DType dtype, comm::ReduceOp op,
                     std::string &detail) override {
    if (!verify(OpKind::AllReduce, dtype, op, count, detail))
      return false;
    const size_t n = size_t(size()), me = size_t(rank()), eb = comm::dtypeBytes(dtype);
    if (n == 1 || count == 0)
      return true;
    // Chunk r (count / n elements, one more for the first count % n ranks)
    // is reduced by rank r, as MpiCommunicator splits.
    std::vector<size_t> chunk(n), offset(n);
    for (size_t r = 0, at = 0; r < n; at += chunk[r], ++r) {
      chunk[r] = count / n + (r < count % n ? 1 : 0);
      offset[r] = at;
    }
    const size_t mine = chunk[me];
    char *data = static_cast<char *>(buf);
    if (!computeDone(detail) || !reserve(n * mine * eb, detail))
      return false;
    char *scratch = static_cast<char *>(scratch_);
    // 1. Chunk r of every rank to rank r: scratch row p is rank p's.
    if (!copyOnStream(scratch + me * mine * eb, data + offset[me] * eb, mine * eb, detail) ||
        !grouped(
            [&](std::string &d) {
              for (size_t p = 0; p < n; ++p) {
                if (p == me)
                  continue;
                if (!sendBytes(data + offset[p] * eb, chunk[p] * eb, int(p), d) ||
                    !recvBytes(scratch + p * mine * eb, mine * eb, int(p), d))
                  return false;
              }
              return true;
            },
            detail))
      return false;
    // 2. This rank's chunk, reduced in rank order.
    orderedReduce(stream_, data + offset[me] * eb, scratch, int64_t(mine), int64_t(mine), int(n),
                  dtype, op);
    // 3. Every reduced chunk to every rank.
    bool ok;
    if (count % n == 0) {
      ok = nccl(ncclAllGather(data + offset[me] * eb, data, mine * eb, ncclInt8, comm_, stream_),
                "ncclAllGather", detail);
    } else {
      ok = grouped(
          [&](std::string &d) {
            for (size_t p = 0; p < n; ++p) {
              if (p == me)
                continue;
              if (!sendBytes(data + offset[me] * eb, mine * eb, int(p), d) ||
                  !recvBytes(data + offset[p] * eb, chunk[p] * eb, int(p), d))
                return false;
            }
            return true;
          },
          detail);
    }
    return ok && awaitStream(detail);
  }

  bool allGatherImpl(const void *send, void *recv, size_t countPerRank, comm::DType dtype,
                     std::string &detail) override {
    if (!verify(OpKind::AllGather, dtype, comm::ReduceOp::Sum, countPerRank, detail))
      return false;
    if (countPerRank == 0)
      return true;
    return computeDone(detail) &&
           nccl(ncclAllGather(send, recv, countPerRank * comm::dtypeBytes(dtype), ncclInt8, comm_,
                              stream_),
                "ncclAllGather", detail) &&
           awaitStream(detail);
  }

  bool reduceScatterImpl(const void *send, void *recv, size_t countPerRank, comm::DType dtype,
                         comm::ReduceOp op, std::string &detail) override {
    if (!verify(OpKind::ReduceScatter, dtype, op, countPerRank, detail))
      return false;
    const size_t n = size_t(size()), me = size_t(rank());
    const size_t bytes = countPerRank * comm::dtypeBytes(dtype);
    if (countPerRank == 0)
      return true;
    if (!computeDone(detail) || !reserve(n * bytes, detail))
      return false;
    const char *data = static_cast<const char *>(send);
    char *scratch = static_cast<char *>(scratch_);
    // Chunk r of every rank to rank r (scratch row p is rank p's), then
    // those n chunks reduced in rank order.
    if (!copyOnStream(scratch + me * bytes, data + me * bytes, bytes, detail) ||
        !grouped(
            [&](std::string &d) {
              for (size_t p = 0; p < n; ++p)
                if (p != me && (!sendBytes(data + p * bytes, bytes, int(p), d) ||
                                !recvBytes(scratch + p * bytes, bytes, int(p), d)))
                  return false;
              return true;
            },
            detail))
      return false;
    orderedReduce(stream_, recv, scratch, int64_t(countPerRank), int64_t(countPerRank), int(n),
                  dtype, op);
    return awaitStream(detail);
  }

  bool allToAllVImpl(const void *send, const int64_t *sendCounts, void *recv,
                     const int64_t *recvCounts, comm::DType dtype, std::string &detail) override {
    const size_t n = size_t(size()), me = size_t(rank()), eb = comm::dtypeBytes(dtype);
    if (!verify(OpKind::AllToAllV, dtype, comm::ReduceOp::Sum, 0, detail) ||
        (verifyCalls_ && !verifyCounts(sendCounts, recvCounts, dtype, detail)))
      return false;
    if (sendCounts[me] != recvCounts[me]) {
      detail = "count mismatch: this rank sends " + std::to_string(sendCounts[me]) + " x " +
               comm::dtypeName(dtype) + " to itself and expects " +
               std::to_string(recvCounts[me]);
      return false;
    }
    std::vector<size_t> sendAt(n), recvAt(n);
    for (size_t p = 0, s = 0, r = 0; p < n; ++p) {
      sendAt[p] = s;
      recvAt[p] = r;
      s += size_t(sendCounts[p]);
      r += size_t(recvCounts[p]);
    }
    const char *from = static_cast<const char *>(send);
    char *to = static_cast<char *>(recv);
    return computeDone(detail) &&
           copyOnStream(to + recvAt[me] * eb, from + sendAt[me] * eb, size_t(sendCounts[me]) * eb,
                        detail) &&
           grouped(
               [&](std::string &d) {
                 for (size_t p = 0; p < n; ++p)
                   if (p != me &&
                       (!sendBytes(from + sendAt[p] * eb, size_t(sendCounts[p]) * eb, int(p), d) ||
                        !recvBytes(to + recvAt[p] * eb, size_t(recvCounts[p]) * eb, int(p), d)))
                     return false;
                 return true;
               },
               detail) &&
           awaitStream(detail);
  }

  bool sendImpl(const void *buf, size_t count, comm::DType dtype, int peer,
                std::string &detail) override {
    return verifyPair(/*sending=*/true, count, dtype, peer, detail) && computeDone(detail) &&
           (count == 0 || (nccl(ncclSend(buf, count * comm::dtypeBytes(dtype), ncclInt8, peer,
                                         comm_, stream_),
                                "ncclSend", detail) &&
                           awaitStream(detail)));
  }

  bool recvImpl(void *buf, size_t count, comm::DType dtype, int peer,
                std::string &detail) override {
    return verifyPair(/*sending=*/false, count, dtype, peer, detail) && computeDone(detail) &&
           (count == 0 || (nccl(ncclRecv(buf, count * comm::dtypeBytes(dtype), ncclInt8, peer,
                                         comm_, stream_),
                                "ncclRecv", detail) &&
                           awaitStream(detail)));
  }

  bool barrierImpl(std::string &detail) override {
    if (!awaitStream(detail))
      return false;
    // The call check is an all_gather over the bootstrap, which no rank
    // leaves before every rank entered it: a barrier already.
    if (verifyCalls_)
      return verify(OpKind::Barrier, comm::DType::F32, comm::ReduceOp::Sum, 0, detail);
    syncBootstrap();
    return bootstrapOk(bootstrap_.barrier(), detail);
  }

  std::unique_ptr<comm::Communicator> splitImpl(int color, int key, const std::string &name,
                                                std::string &detail) override {
    if (!verify(OpKind::Split, comm::DType::F32, comm::ReduceOp::Sum, 0, detail) ||
        !awaitStream(detail))
      return nullptr;
    syncBootstrap();
    std::unique_ptr<comm::Communicator> group = bootstrap_.split(color, key, name);
    if (!group) {
      bootstrapOk(false, detail);
      return nullptr;
    }
    comm::Communicator &groupBootstrap = *group;
    return create(groupBootstrap, std::move(group), device_, verifyCalls_, timeoutSeconds(),
                  computeStream_, context(), detail);
  }

  void onFailure(const std::string &) override {
    // Peers may wait in NCCL for this rank's part: end this rank's.
    abortNccl();
  }

private:
  NcclCommunicator(comm::Communicator &bootstrap, std::unique_ptr<comm::Communicator> owned,
                   ncclComm_t comm, int device, bool verifyCalls, std::vector<int> worldRanks,
                   std::shared_ptr<RankContext> context)
      : Communicator(bootstrap.name(), bootstrap.rank(), std::move(worldRanks),
                     std::move(context)),
        bootstrap_(bootstrap), ownedBootstrap_(std::move(owned)), comm_(comm), device_(device),
        verifyCalls_(verifyCalls) {}

  /// A new communicator over every rank of `bootstrap` (owned by it when
  /// `owned` is set): the NCCL id over the bootstrap, the NCCL communicator
  /// (nonblocking, awaited within `timeout`), its stream and event.
  static std::unique_ptr<comm::Communicator>
  create(comm::Communicator &bootstrap, std::unique_ptr<comm::Communicator> owned, int device,
         bool verifyCalls, double timeout, cudaStream_t computeStream,
         std::shared_ptr<RankContext> context, std::string &detail) {
    const size_t n = size_t(bootstrap.size());
    // Rank 0's id, led by a byte saying whether it has one, so that the
    // others fail with its reason rather than join a garbage id.
    ncclUniqueId id;
    std::memset(&id, 0, sizeof id);
    int8_t mine[1 + sizeof id] = {};
    std::string idError;
    if (bootstrap.rank() == 0) {
      const ncclResult_t made = ncclGetUniqueId(&id);
      if (made == ncclSuccess) {
        mine[0] = 1;
        std::memcpy(mine + 1, &id, sizeof id);
      } else {
        idError = ncclMessage(nullptr, "ncclGetUniqueId", made);
      }
    }
    std::vector<int8_t> ids(n * sizeof mine);
    std::vector<int32_t> worldRanks(n);
    const int32_t worldRank = bootstrap.worldRank();
    bootstrap.setTimeoutSeconds(timeout);
    if (!bootstrap.allGather(mine, ids.data(), sizeof mine, comm::DType::I8) ||
        !bootstrap.allGather(&worldRank, worldRanks.data(), 1, comm::DType::I32)) {
      detail = "sharing the NCCL id over the bootstrap failed: " + bootstrap.error();
      return nullptr;
    }
    if (ids[0] != 1) {
      detail = !idError.empty() ? idError
                                : "rank 0 of " + bootstrap.name() + " could not create the NCCL id";
      return nullptr;
    }
    std::memcpy(&id, ids.data() + 1, sizeof id);

    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0; // init returns ncclInProgress: awaited with the timeout
    ncclComm_t comm = nullptr;
    const ncclResult_t started =
        ncclCommInitRankConfig(&comm, int(n), id, bootstrap.rank(), &config);
    if (started != ncclSuccess && started != ncclInProgress) {
      detail = ncclMessage(comm, "ncclCommInitRankConfig", started);
      if (comm != nullptr)
        ncclCommAbort(comm);
      return nullptr;
    }
    std::unique_ptr<NcclCommunicator> result(new NcclCommunicator(
        bootstrap, std::move(owned), comm, device, verifyCalls,
        std::vector<int>(worldRanks.begin(), worldRanks.end()), std::move(context)));
    result->setTimeoutSeconds(timeout);
    result->computeStream_ = computeStream;
    if (!result->awaitNccl("ncclCommInitRankConfig", detail) ||
        !checkCuda(cudaStreamCreateWithFlags(&result->stream_, cudaStreamNonBlocking),
                   "cudaStreamCreateWithFlags", detail) ||
        !checkCuda(cudaEventCreateWithFlags(&result->computeReady_, cudaEventDisableTiming),
                   "cudaEventCreateWithFlags", detail)) {
      result->abortNccl();
      return nullptr;
    }
    return result;
  }

  //--- Errors and waits ---------------------------------------------------

  /// "ncclSend failed: NCCL error 3 (internal error): <NCCL's last error>".
  static std::string ncclMessage(ncclComm_t comm, const char *call, ncclResult_t code) {
    std::string message = std::string(call) + " failed: NCCL error " + std::to_string(int(code)) +
                          " (" + ncclGetErrorString(code) + ")";
    const char *last = ncclGetLastError(comm);
    if (last != nullptr && last[0] != '\0')
      message += ": " + std::string(last);
    return message;
  }

  /// A CUDA call of an operation: on failure the communicator is aborted
  /// (the peers may already wait for this rank's part).
  bool cuda(cudaError_t code, const char *call, std::string &detail) {
    if (checkCuda(code, call, detail))
      return true;
    abortNccl();
    return false;
  }

  /// An NCCL call: ncclInProgress (a nonblocking communicator still
  /// enqueuing) is awaited; any other error aborts the communicator.
  bool nccl(ncclResult_t code, const char *call, std::string &detail) {
    if (code == ncclInProgress)
      return awaitNccl(call, detail);
    if (code == ncclSuccess)
      return true;
    detail = ncclMessage(comm_, call, code);
    abortNccl();
    return false;
  }

  /// enqueue(detail) between ncclGroupStart and ncclGroupEnd; the group is
  /// closed even when enqueue fails, so that no later call joins it.
  template <typename Enqueue> bool grouped(Enqueue &&enqueue, std::string &detail) {
    if (!nccl(ncclGroupStart(), "ncclGroupStart", detail))
      return false;
    const bool ok = enqueue(detail);
    const ncclResult_t ended = ncclGroupEnd();
    if (!ok) {
      abortNccl();
      return false;
    }
    return nccl(ended, "ncclGroupEnd", detail);
  }

  /// A call inside a group: only queued until ncclGroupEnd, which the
  /// group awaits (ncclInProgress here is not waited for).
  bool queued(ncclResult_t code, const char *call, std::string &detail) {
    if (code == ncclSuccess || code == ncclInProgress)
      return true;
    detail = ncclMessage(comm_, call, code);
    return false;
  }

  /// Within a group. Zero-byte transfers are skipped: both ends know the
  /// count.
  bool sendBytes(const void *from, size_t bytes, int peer, std::string &detail) {
    return bytes == 0 ||
           queued(ncclSend(from, bytes, ncclInt8, peer, comm_, stream_), "ncclSend", detail);
  }
  bool recvBytes(void *to, size_t bytes, int peer, std::string &detail) {
    return bytes == 0 ||
           queued(ncclRecv(to, bytes, ncclInt8, peer, comm_, stream_), "ncclRecv", detail);
  }

  bool copyOnStream(void *to, const void *from, size_t bytes, std::string &detail) {
    return bytes == 0 || cuda(cudaMemcpyAsync(to, from, bytes, cudaMemcpyDeviceToDevice, stream_),
                              "cudaMemcpyAsync", detail);
  }

  /// The communication stream waits for the buffers' producer (see
  /// setComputeStream).
  bool computeDone(std::string &detail) {
    if (readyEvent_ != nullptr)
      return cuda(cudaStreamWaitEvent(stream_, readyEvent_, 0), "cudaStreamWaitEvent", detail);
    if (computeStream_ == nullptr)
      return cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize", detail);
    return cuda(cudaEventRecord(computeReady_, computeStream_), "cudaEventRecord", detail) &&
           cuda(cudaStreamWaitEvent(stream_, computeReady_, 0), "cudaStreamWaitEvent", detail);
  }

  /// At least `bytes` of device scratch (it only grows).
  bool reserve(size_t bytes, std::string &detail) {
    if (bytes <= scratchBytes_)
      return true;
    if (scratch_ != nullptr &&
        !cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize", detail))
      return false;
    if (scratch_ != nullptr)
      cudaFree(scratch_);
    scratch_ = nullptr;
    scratchBytes_ = 0;
    if (!cuda(cudaMalloc(&scratch_, bytes), "cudaMalloc", detail))
      return false;
    scratchBytes_ = bytes;
    return true;
  }

  bool awaitNccl(const char *call, std::string &detail) { return await(false, call, detail); }
  bool awaitStream(std::string &detail) { return await(true, "the transfers", detail); }

  /// Polls NCCL's state (and, with `stream`, the communication stream) until
  /// NCCL is idle (and the stream's work is done) or the timeout passes;
  /// aborts the communicator on a timeout or an error. Backs off between
  /// polls as PollBackoff.h says.
  bool await(bool stream, const char *what, std::string &detail) {
    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();
    const double timeout = timeoutSeconds();
    comm::PollBackoff backoff;
    for (;;) {
      if (comm_ == nullptr) {
        detail = "the NCCL communicator was aborted after an earlier failure";
        return false;
      }
      ncclResult_t state = ncclSuccess;
      const ncclResult_t asked = ncclCommGetAsyncError(comm_, &state);
      if (asked != ncclSuccess || (state != ncclSuccess && state != ncclInProgress)) {
        detail = asked != ncclSuccess ? ncclMessage(comm_, "ncclCommGetAsyncError", asked)
                                      : ncclMessage(comm_, what, state);
        abortNccl();
        return false;
      }
      if (state == ncclSuccess) {
        if (!stream)
          return true;
        const cudaError_t queried = cudaStreamQuery(stream_);
        if (queried == cudaSuccess)
          return true;
        if (queried != cudaErrorNotReady) {
          checkCuda(queried, "cudaStreamQuery", detail);
          detail = std::string(what) + ": " + detail;
          abortNccl();
          return false;
        }
      }
      const double waited = std::chrono::duration<double>(Clock::now() - start).count();
      if (waited >= timeout) {
        detail = std::string(what) + " over " + name() + " did not complete within " +
                 secondsText(timeout) +
                 " (a peer is late, stuck or gone; NCCL does not say which); the NCCL "
                 "communicator was aborted";
        abortNccl();
        return false;
      }
      backoff.pause(waited);
    }
  }

  /// Ends this rank's part in the NCCL communicator (kernels blocked on a
  /// peer return); later operations fail.
  void abortNccl() {
    if (comm_ == nullptr)
      return;
    ncclCommAbort(comm_);
    comm_ = nullptr;
  }

  //--- The bootstrap and the call check ------------------------------------

  /// The bootstrap runs this communicator's checks: its messages carry the
  /// same step, its waits the same timeout.
  void syncBootstrap() {
    bootstrap_.setStep(step());
    bootstrap_.setTimeoutSeconds(timeoutSeconds());
  }

  bool bootstrapOk(bool ok, std::string &detail) {
    if (!ok)
      detail = "over the bootstrap: " + bootstrap_.error();
    return ok;
  }

  /// The call check: every rank learns every rank's next collective.
  bool verify(OpKind kind, comm::DType dtype, comm::ReduceOp op, uint64_t count,
              std::string &detail) {
    if (!verifyCalls_)
      return true;
    const CallSignature mine = signatureOf(kind, dtype, op, count, nextCollective_++);
    std::vector<int64_t> all(kSignatureFields * size_t(size()));
    syncBootstrap();
    return bootstrapOk(
               bootstrap_.allGather(mine.data(), all.data(), kSignatureFields, comm::DType::I64),
               detail) &&
           signaturesAgree(all.data(), mine, detail);
  }

  /// all_to_allv: every rank checks the whole count matrix, so that all of
  /// them fail on a mismatch, with the same message.
  bool verifyCounts(const int64_t *sendCounts, const int64_t *recvCounts, comm::DType dtype,
                    std::string &detail) {
    const size_t n = size_t(size());
    std::vector<int64_t> mine(sendCounts, sendCounts + n), all(2 * n * n);
    mine.insert(mine.end(), recvCounts, recvCounts + n);
    syncBootstrap();
    return bootstrapOk(bootstrap_.allGather(mine.data(), all.data(), 2 * n, comm::DType::I64),
                       detail) &&
           countsAgree(all.data(), dtype, detail);
  }

  /// send / recv: the two ends swap (type, count) over the bootstrap (the
  /// sender first), so that both fail on a mismatch where NCCL would hang
  /// or truncate.
  bool verifyPair(bool sending, size_t count, comm::DType dtype, int peer, std::string &detail) {
    if (!verifyCalls_)
      return true;
    const int64_t mine[2] = {int64_t(dtype), int64_t(count)};
    int64_t theirs[2] = {0, 0};
    syncBootstrap();
    const bool swapped =
        sending ? bootstrap_.send(mine, 2, comm::DType::I64, peer) &&
                      bootstrap_.recv(theirs, 2, comm::DType::I64, peer)
                : bootstrap_.recv(theirs, 2, comm::DType::I64, peer) &&
                      bootstrap_.send(mine, 2, comm::DType::I64, peer);
    if (!bootstrapOk(swapped, detail))
      return false;
    if (theirs[0] == mine[0] && theirs[1] == mine[1])
      return true;
    const std::string ours = std::to_string(count) + " x " + comm::dtypeName(dtype);
    const std::string other =
        std::to_string(theirs[1]) + " x " + comm::dtypeName(comm::DType(theirs[0]));
    detail = "mismatch: " + rankName(peer) + (sending ? " expects " : " sends ") + other +
             ", this rank " + (sending ? "sends " : "expects ") + ours;
    return false;
  }

  comm::Communicator &bootstrap_;
  /// The bootstrap of a split group (its parent's bootstrap split), or null.
  std::unique_ptr<comm::Communicator> ownedBootstrap_;
  ncclComm_t comm_;
  int device_;
  bool verifyCalls_;
  uint64_t nextCollective_ = 0;
  cudaStream_t stream_ = nullptr;
  cudaStream_t computeStream_ = nullptr;
  cudaEvent_t computeReady_ = nullptr;
  cudaEvent_t readyEvent_ = nullptr; ///< setReadyEvent's, not owned
  void *scratch_ = nullptr;
  size_t scratchBytes_ = 0;
};

#endif // KILN_CUDA_DEVICE && KILN_HAVE_NCCL

} // namespace kiln::cuda

#endif // KILN_RUNTIME_CUDA_NCCLCOMMUNICATOR_CUH
