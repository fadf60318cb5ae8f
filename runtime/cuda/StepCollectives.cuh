//===- StepCollectives.cuh - The collectives a generated CUDA step calls -*- CUDA -*-===//
//
// The CUDA spelling of runtime/driver/StepComm.h's collectives for a
// data-parallel step (codegen/HostLaunchesCollectives.cpp): the same
// names and arguments over DEVICE buffers, with the compute stream first and
// kiln-overlap-collectives' `event` last, over the NCCL communicator
// (NcclCommunicator.cuh) that DeviceStep.cuh sets up as the step's
// StepComm (DeviceStepComm below: the group "dp" is the NCCL world, split
// from nothing; one GPU per rank, localRankDevice()).
//
// Streams (kiln-overlap-collectives, passes/Passes.td): a collective is
// *posted* where the pass put it on the communication stream: its ready
// event is recorded on the compute stream there (inside the graph segment
// when the step is being captured: an external event record node), and the
// collective itself is queued. It runs at the `stream_wait` of its event
// (streamWait below), on the host, eagerly: the communication stream first
// waits for the ready event only (NcclCommunicator::setReadyEvent), so the
// compute issued between the collective and its wait, already queued on the
// GPU, overlaps the transfer; the host polls it to completion (the
// communicator's timeout), and the compute stream then waits for the
// communication stream (the join). StepSegments.h cuts the graphs there.
// A collective with event -1 (the pass did not run) runs where it is
// issued.
//
// Bits: every reduction is the NCCL backend's orderedReduce, in rank order,
// as MpiCommunicator's: a data-parallel step on the GPUs reduces its
// gradients exactly as the host dp program does. A tensor's [outer][inner]
// split (StepComm.h) is moved with cudaMemcpy2DAsync on the communication
// stream through a scratch buffer where outer > 1 (rank pieces grouped or
// interleaved as comm::RankPieces does on the host); local_shard is a 2-D
// copy on the compute stream (no data moves between ranks).
//
// Status: compiled with nvcc (sm_90a) in CI inside the generated dp
// programs (CudaProgramsBuildWithNvcc); never run on a GPU yet
// (scripts/gpu-check.sh's dp check runs it where there are two or more).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_CUDA_STEPCOLLECTIVES_CUH
#define KILN_RUNTIME_CUDA_STEPCOLLECTIVES_CUH

#include "runtime/cuda/StepSegments.h"
#include "runtime/kernels/cuda/Device.cuh"

#if KILN_CUDA_DEVICE
#if !defined(KILN_HAVE_NCCL)
// kilnc builds with -DKILN_HAVE_NCCL -lnccl where /usr/local/cuda/include/nccl.h exists.
#error "a multi-rank CUDA step needs NCCL: build it with -DKILN_HAVE_NCCL and -lnccl"
#endif

#include "runtime/cuda/NcclCommunicator.cuh"
#include "runtime/driver/StepComm.h"

#include <cstring>
#include <map>
#include <memory>
#include <string>

namespace kiln::cuda {

/// The StepComm of a data-parallel CUDA step: the NCCL world as the group
/// "dp", the step's posted collectives and their graph segments.
class DeviceStepComm final : public driver::StepComm {
public:
  /// The NCCL world over every rank of `bootstrap` (the MPI world, which
  /// must outlive it) on `device`, its operations ordered after `compute`
  /// (the step's stream). Null with `error` set on failure.
  static std::unique_ptr<DeviceStepComm> create(comm::Communicator &bootstrap, int device,
                                                cudaStream_t compute, std::string &error) {
    NcclOptions options;
    options.computeStream = compute;
    std::unique_ptr<comm::Communicator> world =
        NcclCommunicator::initWorld(bootstrap, device, error, options);
    if (!world)
      return nullptr;
    std::unique_ptr<DeviceStepComm> result(new DeviceStepComm(std::move(world), compute));
    if (!checkCuda(cudaEventCreateWithFlags(&result->joined_, cudaEventDisableTiming),
                   "cudaEventCreateWithFlags", error))
      return nullptr;
    DeviceStepComm *self = result.get();
    result->segments_.setJoin([self](std::string &e) { return self->join(e); });
    return result;
  }

  ~DeviceStepComm() override {
    for (auto &[event, ready] : ready_)
      cudaEventDestroy(ready);
    if (joined_ != nullptr)
      cudaEventDestroy(joined_);
    if (scratch_ != nullptr)
      cudaFree(scratch_);
  }

  comm::Communicator *group(const char *axes) override {
    return std::strcmp(axes, "dp") == 0 ? world_.get() : nullptr;
  }
  comm::Communicator &world() override { return *world_; }
  int peerRank(const char *, int64_t) override { return -1; } // no send/recv on this target
  double commSeconds() override { return world_->stats().seconds; }
  uint64_t commBytes() override { return world_->stats().inputBytes; }
  void resetStats() override {
    allToAllBytes = 0;
    world_->resetStats();
  }

  StepSegments &segments() { return segments_; }
  /// Ends this rank's part in NCCL (a failed step; the driver then ends the
  /// job over MPI).
  void abortCommunication() { nccl().abortCommunication(); }

  /// Posts `body(group, commStream, error)`, the collective `what` over
  /// `axes` of kiln-overlap-collectives' `event`: records its ready event on
  /// `compute` now and queues it for its wait (see the file comment).
  template <typename Body>
  bool post(cudaStream_t compute, const char *what, const char *axes, int64_t event, const void *in,
            const void *out, Body body, std::string *error) {
    comm::Communicator *group = this->group(axes);
    if (group == nullptr) {
      *error = std::string(what) + " over " + axes +
               ": the CUDA step's communicator has only the group dp";
      return false;
    }
    cudaEvent_t ready = readyEvent(event, *error);
    if (ready == nullptr || !record(ready, compute, *error))
      return false;
    posted_[event] = {what, in, out};
    NcclCommunicator &nccl = this->nccl();
    StepSegments::Action run = [this, &nccl, group, ready, body](std::string &e) {
      cudaStream_t stream = nccl.communicationStream();
      // The copies a body makes before the communicator's call are on the
      // communication stream too: after the ready event.
      if (!checkCuda(cudaStreamWaitEvent(stream, ready, 0), "cudaStreamWaitEvent", e))
        return false;
      nccl.setReadyEvent(ready);
      const bool ok = body(*group, stream, e);
      nccl.setReadyEvent(nullptr);
      return ok;
    };
    return segments_.post(event, std::move(run), *error);
  }

  /// kiln-overlap-collectives' stream_wait of `event`, naming the
  /// collective's buffers: they must be those it was posted with (a
  /// mismatch is an emitter or pass bug that would race on the buffers).
  bool wait(int64_t event, const void *in, const void *out, std::string &error) {
    auto it = posted_.find(event);
    if (it == posted_.end()) {
      error = "stream_wait: no collective was posted under event " + std::to_string(event);
      return false;
    }
    const Posted &p = it->second;
    if (p.in != in || p.out != out) {
      error = "stream_wait: the " + std::string(p.what) + " posted under event " +
              std::to_string(event) + " has other buffers than its wait names";
      return false;
    }
    return segments_.wait(event, error);
  }

  /// A device buffer of at least `bytes` on the communication stream (it
  /// only grows; growing waits for the stream's use of the old one).
  void *scratch(size_t bytes, std::string &error) {
    if (bytes <= scratchBytes_)
      return scratch_;
    if (scratch_ != nullptr && !checkCuda(cudaStreamSynchronize(nccl().communicationStream()),
                                          "cudaStreamSynchronize", error))
      return nullptr;
    if (scratch_ != nullptr)
      cudaFree(scratch_);
    scratch_ = nullptr;
    scratchBytes_ = 0;
    if (!checkCuda(cudaMalloc(&scratch_, bytes), "cudaMalloc", error))
      return nullptr;
    scratchBytes_ = bytes;
    return scratch_;
  }

private:
  DeviceStepComm(std::unique_ptr<comm::Communicator> world, cudaStream_t compute)
      : world_(std::move(world)), compute_(compute) {}

  NcclCommunicator &nccl() { return static_cast<NcclCommunicator &>(*world_); }

  /// The ready event of `event`, made once and reused every step (a
  /// replayed graph records it again).
  cudaEvent_t readyEvent(int64_t event, std::string &error) {
    auto it = ready_.find(event);
    if (it != ready_.end())
      return it->second;
    cudaEvent_t made = nullptr;
    if (!checkCuda(cudaEventCreateWithFlags(&made, cudaEventDisableTiming),
                   "cudaEventCreateWithFlags", error))
      return nullptr;
    ready_[event] = made;
    return made;
  }

  /// Records `ready` on `compute`: as an external event node when the
  /// stream is being captured, so the eager collective after the graph's
  /// launch can wait for it.
  static bool record(cudaEvent_t ready, cudaStream_t compute, std::string &error) {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    if (!checkCuda(cudaStreamIsCapturing(compute, &status), "cudaStreamIsCapturing", error))
      return false;
    if (status == cudaStreamCaptureStatusActive)
      return checkCuda(cudaEventRecordWithFlags(ready, compute, cudaEventRecordExternal),
                       "cudaEventRecordWithFlags", error);
    return checkCuda(cudaEventRecord(ready, compute), "cudaEventRecord", error);
  }

  /// The compute stream waits for the communication stream (the
  /// collectives' trailing copies included).
  bool join(std::string &error) {
    return checkCuda(cudaEventRecord(joined_, nccl().communicationStream()), "cudaEventRecord",
                     error) &&
           checkCuda(cudaStreamWaitEvent(compute_, joined_, 0), "cudaStreamWaitEvent", error);
  }

  std::unique_ptr<comm::Communicator> world_;
  cudaStream_t compute_;
  cudaEvent_t joined_ = nullptr;
  std::map<int64_t, cudaEvent_t> ready_;
  /// The buffers each event's collective was posted with (this step's).
  struct Posted {
    const char *what;
    const void *in, *out;
  };
  std::map<int64_t, Posted> posted_;
  StepSegments segments_;
  void *scratch_ = nullptr;
  size_t scratchBytes_ = 0;
};

/// The step's DeviceStepComm, or null with an error naming `what`.
inline DeviceStepComm *deviceStepComm(driver::StepComm *comm, const char *what,
                                      std::string *error) {
  auto *device = dynamic_cast<DeviceStepComm *>(comm);
  if (device == nullptr)
    *error = std::string(what) +
             ": this CUDA step has no NCCL communicator (the program was built for one rank, or "
             "the DeviceStep did not set it up)";
  return device;
}

inline bool failedIn(comm::Communicator &group, std::string &error) {
  error = group.error();
  return false;
}

/// out = the sum (or max) over the group of every rank's `in` (n floats).
inline bool allReduce(cudaStream_t stream, driver::StepComm *comm, const char *axes,
                      const float *in, float *out, int64_t n, bool max, int64_t event,
                      std::string *error) {
  DeviceStepComm *device = deviceStepComm(comm, "all_reduce", error);
  return device != nullptr &&
         device->post(
             stream, "all_reduce", axes, event, in, out,
             [=](comm::Communicator &group, cudaStream_t s, std::string &e) {
               if (in != out && n > 0 &&
                   !checkCuda(cudaMemcpyAsync(out, in, size_t(n) * sizeof(float),
                                              cudaMemcpyDeviceToDevice, s),
                              "cudaMemcpyAsync", e))
                 return false;
               return group.allReduce(out, size_t(n), comm::DType::F32,
                                      max ? comm::ReduceOp::Max : comm::ReduceOp::Sum) ||
                      failedIn(group, e);
             },
             error);
}

/// `in` is [outer][inner]; out is [outer][size * inner] with rank r's piece
/// at [r * inner, (r + 1) * inner) of each outer row.
template <typename T>
inline bool allGatherOf(cudaStream_t stream, driver::StepComm *comm, const char *axes, const T *in,
                        T *out, int64_t outer, int64_t inner, int64_t event, std::string *error) {
  DeviceStepComm *device = deviceStepComm(comm, "all_gather", error);
  return device != nullptr &&
         device->post(
             stream, "all_gather", axes, event, in, out,
             [=](comm::Communicator &group, cudaStream_t s, std::string &e) {
               constexpr comm::DType dtype = comm::dtypeOf<T>();
               if (outer == 1) // the pieces are already in rank order
                 return group.allGather(in, out, size_t(inner), dtype) || failedIn(group, e);
               const size_t size = size_t(group.size()), piece = size_t(outer * inner);
               T *byRank = static_cast<T *>(device->scratch(size * piece * sizeof(T), e));
               if (byRank == nullptr)
                 return false;
               if (!group.allGather(in, byRank, piece, dtype))
                 return failedIn(group, e);
               for (size_t r = 0; r < size && inner > 0; ++r)
                 if (!checkCuda(cudaMemcpy2DAsync(out + r * size_t(inner),
                                                  size * size_t(inner) * sizeof(T),
                                                  byRank + r * piece, size_t(inner) * sizeof(T),
                                                  size_t(inner) * sizeof(T), size_t(outer),
                                                  cudaMemcpyDeviceToDevice, s),
                                "cudaMemcpy2DAsync", e))
                   return false;
               return true;
             },
             error);
}

inline bool allGather(cudaStream_t stream, driver::StepComm *comm, const char *axes,
                      const float *in, float *out, int64_t outer, int64_t inner, int64_t event,
                      std::string *error) {
  return allGatherOf(stream, comm, axes, in, out, outer, inner, event, error);
}

/// The same for bytes (kiln.topk_compress messages).
inline bool allGather(cudaStream_t stream, driver::StepComm *comm, const char *axes,
                      const int8_t *in, int8_t *out, int64_t outer, int64_t inner, int64_t event,
                      std::string *error) {
  return allGatherOf(stream, comm, axes, in, out, outer, inner, event, error);
}

/// `in` is [outer][size * inner]; out ([outer][inner]) is this rank's piece
/// of the sum over the group.
inline bool reduceScatter(cudaStream_t stream, driver::StepComm *comm, const char *axes,
                          const float *in, float *out, int64_t outer, int64_t inner, int64_t event,
                          std::string *error) {
  DeviceStepComm *device = deviceStepComm(comm, "reduce_scatter", error);
  return device != nullptr &&
         device->post(
             stream, "reduce_scatter", axes, event, in, out,
             [=](comm::Communicator &group, cudaStream_t s, std::string &e) {
               const size_t size = size_t(group.size()), piece = size_t(outer * inner);
               const float *send = in;
               if (outer != 1) {
                 // Rank r's pieces together, as comm::groupPiecesByRank.
                 float *byRank = static_cast<float *>(device->scratch(size * piece * 4, e));
                 if (byRank == nullptr)
                   return false;
                 for (size_t r = 0; r < size && inner > 0; ++r)
                   if (!checkCuda(cudaMemcpy2DAsync(byRank + r * piece, size_t(inner) * 4,
                                                    in + r * size_t(inner),
                                                    size * size_t(inner) * 4, size_t(inner) * 4,
                                                    size_t(outer), cudaMemcpyDeviceToDevice, s),
                                  "cudaMemcpy2DAsync", e))
                     return false;
                 send = byRank;
               }
               return group.reduceScatter(send, out, piece, comm::DType::F32,
                                          comm::ReduceOp::Sum) ||
                      failedIn(group, e);
             },
             error);
}

/// This rank's piece of `in` ([outer][size * inner] -> [outer][inner]) on
/// the compute stream: no data moves between ranks.
inline bool localShard(cudaStream_t stream, driver::StepComm *comm, const char *axes,
                       const float *in, float *out, int64_t outer, int64_t inner,
                       std::string *error) {
  DeviceStepComm *device = deviceStepComm(comm, "local_shard", error);
  comm::Communicator *group = device != nullptr ? device->group(axes) : nullptr;
  if (device != nullptr && group == nullptr)
    *error = std::string("local_shard over ") + axes +
             ": the CUDA step's communicator has only the group dp";
  if (group == nullptr)
    return false;
  const size_t size = size_t(group->size()), rank = size_t(group->rank());
  if (outer == 0 || inner == 0)
    return true;
  return checkCuda(cudaMemcpy2DAsync(out, size_t(inner) * 4, in + rank * size_t(inner),
                                     size * size_t(inner) * 4, size_t(inner) * 4, size_t(outer),
                                     cudaMemcpyDeviceToDevice, stream),
                   "cudaMemcpy2DAsync", *error);
}

/// kiln-overlap-collectives' stream_wait: the posted collectives up to
/// `event` run (the graph segment so far launched first, when recording),
/// then the compute stream waits for the communication stream. `in` and
/// `out` are the collective's buffers (`in` twice for an in-place one),
/// checked against what it was posted with.
inline bool streamWait(cudaStream_t stream, driver::StepComm *comm, int64_t event, const void *in,
                       const void *out, std::string *error) {
  (void)stream; // the join is on the stream the DeviceStepComm was made with
  DeviceStepComm *device = deviceStepComm(comm, "stream_wait", error);
  return device != nullptr && device->wait(event, in, out, *error);
}

} // namespace kiln::cuda

#endif // KILN_CUDA_DEVICE

#endif // KILN_RUNTIME_CUDA_STEPCOLLECTIVES_CUH
