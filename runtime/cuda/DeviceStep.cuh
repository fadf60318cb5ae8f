//===- DeviceStep.cuh - A generated step on the GPU behind the host driver -*- CUDA -*-===//
//
// The CUDA target's runtime between kiln::driver::trainMain (TrainMain.h:
// data, checkpoints, metrics, the loop; unchanged) and a generated CUDA step
// (kilnc's train.cu: the same straight-line step as the host program, its
// launches spelled `kiln::cuda::fn(stream, ...)` over device buffers).
//
// The driver owns the state in host memory, as on the host target. The
// DeviceStep keeps a device copy of everything the step reads and writes
// across steps (parameters, AdamW moments, 2:4 masks, the loss scaler) and
// one device arena of the planned size (the static plan: no allocation
// during a step but the launchers' stream-ordered scratch):
//
//   - the first step uploads the state, and every step uploads its batch
//     (tokens, targets, loss mask, the step number) and downloads what the
//     driver reads after it (losses, gradient norm, learning rate, expert
//     loads, the loss scaler's state);
//   - the device copy is the state from then on: syncStateToHost() (the
//     ModelDesc hook the driver calls before it saves a checkpoint) copies it
//     back;
//   - steps run eagerly until the second, which is captured as a CUDA graph
//     (shapes are static; the first warms the GEMM plans) and replayed after;
//     a step that reports gradients (--save-grads' sink) runs eagerly;
//   - a batch rampup's programs (train.batch_rampup) are a DeviceStep each,
//     with its own arena and graph, over one device copy of the state
//     (sharedState(): the driver holds the state once for all of them);
//   - bad data a kernel found (an id out of range...) is read after every
//     step (Device.cuh's record) and fails the step with its code and index.
//
// One rank per process. A single-rank program runs on device 0 of what
// CUDA_VISIBLE_DEVICES shows, and its whole step is one CUDA graph, as
// above.
//
// Data parallelism (`mpirun -np <dp> train`, built with KILN_HAVE_NCCL): the
// driver runs as on the host (MPI world, data shards, rank 0's checkpoints,
// metrics; its StepComm over MPI stays the driver's, for host buffers). The
// DeviceStep takes the GPU localRankDevice() names (one per rank on a node),
// and builds the step's own StepComm over device buffers:
// StepCollectives.cuh's DeviceStepComm, the NCCL world bootstrapped over the
// driver's MPI world, its operations on NCCL's own communication stream.
// A failing step aborts the NCCL communicator (ncclCommAbort: peers blocked
// in a collective with this rank return) before the driver ends the job
// (MPI_Abort), as the host program does.
//
// CUDA graphs with collectives (why segments): the NCCL communicator's
// operations wait on the host, polling the communication stream and NCCL's
// async error until the collective timeout, so that a dead or stuck peer is
// an error naming the operation and the step instead of a hang, and that
// the call check (every rank's collective signatures compared over MPI)
// runs before NCCL could hang or corrupt memory. A stream capture can hold
// neither a host poll nor the host exchange of the call check. The other
// design - capture the NCCL kernels into the graph and move the timeout to
// a watchdog thread polling the step's end - gives up both: the watchdog
// can only say that the step is late, not which collective of which group
// did not arrive, the call check could run only once at capture time, and
// NCCL's graph-captured kernels would run with the whole step's
// parameters fixed at capture (no ncclCommAbort from inside a graph launch
// short of tearing the context down). So a multi-rank step is recorded as
// graph segments with the collectives run eagerly between them
// (StepSegments.h): the segments are the compute between the
// `stream_wait`s of kiln-overlap-collectives, each collective waits only for
// its ready event recorded inside the segment, so the compute queued after
// it overlaps the transfer, and the host work per step is one graph launch
// per segment plus the collectives' own polls. A data-parallel step has few
// segments: its gradient collectives wait together before the optimizer.
// The first step runs eagerly (GEMM plans), the second is recorded, the
// rest replay the record; --save-grads' steps run eagerly.
//
// Status: the multi-rank path compiles with nvcc in CI (the generated dp
// programs of CudaProgramsBuildWithNvcc) and its segmenting is tested on
// the CPU (CudaShimStepSegmentsTest); it has never run on a GPU.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_CUDA_DEVICESTEP_CUH
#define KILN_RUNTIME_CUDA_DEVICESTEP_CUH

#include "runtime/cuda/KernelEvents.cuh"
#include "runtime/cuda/StepSegments.h"
#include "runtime/driver/PeakFlops.h"
#include "runtime/driver/Ranks.h"
#include "runtime/driver/TrainStep.h"
#include "runtime/kernels/PrecisionMath.h"
#include "runtime/kernels/cuda/Device.cuh"
#if defined(KILN_HAVE_NCCL)
#include "runtime/cuda/StepCollectives.cuh"
#endif

#include <cuda_runtime.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace kiln::cuda {

/// The stream every launch of the generated step runs on.
inline cudaStream_t &stepStream() {
  static cudaStream_t stream = nullptr;
  return stream;
}

/// One program's step on the GPU behind the driver (see the file comment).
/// The device memory it allocates lives as long as the process (the
/// executable's one DeviceStep is static).
class DeviceStep {
public:
  DeviceStep(const driver::ModelDesc &model, driver::TrainStepFn deviceStep)
      : model(model), deviceStep(deviceStep) {}

#if defined(KILN_HAVE_NCCL)
  ~DeviceStep() {
    // At exit the driver has ended MPI and the CUDA runtime may be going
    // down: the NCCL communicator is left to the process' end (every
    // collective of the run is complete by then).
    (void)comm.release();
  }
#endif

  /// Runs one step on `host`'s buffers (the driver's): see the file comment.
  bool run(const driver::StepBuffers &host, std::string &error) {
    if (!ready && !setUp(host, error))
      return false;
    cudaStream_t stream = stepStream();
    const uint64_t tokens = uint64_t(model.batch) * uint64_t(model.seqLen);
    upload(device.tokens, host.tokens, tokens * sizeof(int32_t));
    upload(device.targets, host.targets, tokens * sizeof(int32_t));
    upload(device.lossMask, host.lossMask, tokens * sizeof(float));
    upload(device.step, host.step, sizeof(int64_t));
    device.gradSink = host.gradSink;
    device.gradSinkContext = host.gradSinkContext;
    // --profile: this step's launches between event pairs (KernelEvents.cuh),
    // eagerly, as the gradient sink's steps.
    const bool eager = host.gradSink || host.profile || steps == 0;
    profiledStep() = host.profile ? &kernelEvents : nullptr;
    bool ok = true;
#if defined(KILN_HAVE_NCCL)
    if (comm) {
      // Graph segments with the collectives between them (file comment).
      StepSegments &segments = comm->segments();
      const StepSegments::Action whole = [this](std::string &e) { return deviceStep(device, e); };
      if (eager)
        ok = segments.runEager(whole, error);
      else if (!segments.recorded())
        ok = segments.record(capture, whole, error);
      else
        ok = segments.replay(capture, error);
      if (!ok) {
        profiledStep() = nullptr;
        comm->abortCommunication();
        return false;
      }
    } else
#endif
    if (eager) {
      // Eager: the sink copies gradients to the host mid-step, a profiled
      // step times each launch, and the first step creates the GEMM plans
      // and scratch a graph would capture.
      ok = deviceStep(device, error);
    } else {
      if (!graph) {
        cudaGraph_t captured = nullptr;
        KILN_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
        ok = deviceStep(device, error);
        KILN_CUDA_CHECK(cudaStreamEndCapture(stream, &captured));
        if (ok)
          KILN_CUDA_CHECK(cudaGraphInstantiate(&graph, captured, 0));
        KILN_CUDA_CHECK(cudaGraphDestroy(captured));
      }
      if (ok)
        KILN_CUDA_CHECK(cudaGraphLaunch(graph, stream));
    }
    profiledStep() = nullptr;
    if (!ok)
      return false;
    ++steps;
    download(host.loss, device.loss, sizeof(float));
    download(host.mainLoss, device.mainLoss, sizeof(float));
    download(host.gradNorm, device.gradNorm, sizeof(float));
    download(host.lr, device.lr, sizeof(float));
    for (int64_t i = 0; i < model.numExpertLoads; ++i)
      download(host.expertLoads[i], loads[size_t(i)], uint64_t(model.numExperts) * 4);
    for (int64_t i = 0; host.expertKept && i < model.numExpertKept; ++i)
      download(host.expertKept[i], kept[size_t(i)], uint64_t(model.numExperts) * 4);
    if (host.lossScale) {
      download(host.lossScale, device.lossScale, sizeof(float));
      download(host.growthTracker, device.growthTracker, sizeof(int64_t));
      download(host.optimizerUpdates, device.optimizerUpdates, sizeof(int64_t));
    }
    const DeviceErrorRecord bad = takeDeviceError(stream); // synchronises the stream
    if (bad.code != kNoError) {
#if defined(KILN_HAVE_NCCL)
      if (comm)
        comm->abortCommunication();
#endif
      error = "a kernel found bad data on the GPU (error " + std::to_string(bad.code) +
              " at index " + std::to_string(bad.index) +
              ": see runtime/kernels/cuda/Device.cuh and the family headers for the codes)";
      return false;
    }
    if (host.profile)
      kernelEvents.collect(*host.profile);
    return true;
  }

  /// Copies the device's state (parameters, moments, masks, loss scaler)
  /// into the driver's buffers: every DeviceStep's, as they share it.
  bool syncStateToHost(std::string &error) {
    if (sharedState().empty())
      return true; // no step ran: the host's state is the state
    for (const Mirror &m : sharedState())
      KILN_CUDA_CHECK(cudaMemcpyAsync(m.host, m.device, m.bytes, cudaMemcpyDeviceToHost,
                                      stepStream()));
    KILN_CUDA_CHECK(cudaStreamSynchronize(stepStream()));
    (void)error;
    return true;
  }

private:
  struct Mirror {
    void *host, *device;
    uint64_t bytes;
  };

  /// The device copies of the driver's state, one per host buffer, shared
  /// by every DeviceStep of the process: a batch rampup's programs (one
  /// DeviceStep each, with its own arena and graph) train the same
  /// parameters, moments and loss scaler, which the driver holds once.
  static std::vector<Mirror> &sharedState() {
    static std::vector<Mirror> mirrors;
    return mirrors;
  }

  /// A device buffer of `bytes` holding (when `from` is set) a copy of it.
  /// When `persistent` it is state: the device copy of `from` that an
  /// earlier DeviceStep made if there is one (the device's copy is the state
  /// from the first step on), else a new one that syncStateToHost() copies
  /// back.
  void *mirror(const void *from, uint64_t bytes, bool persistent) {
    if (persistent)
      for (const Mirror &m : sharedState())
        if (m.host == from) {
          KILN_LAUNCH_CHECK(m.bytes == bytes,
                            "a rampup program's state buffer has %llu bytes where the first "
                            "program's has %llu",
                            (unsigned long long)bytes, (unsigned long long)m.bytes);
          return m.device;
        }
    void *d = nullptr;
    KILN_CUDA_CHECK(cudaMalloc(&d, bytes ? bytes : 1));
    allocations.push_back(d);
    if (from)
      KILN_CUDA_CHECK(cudaMemcpy(d, from, bytes, cudaMemcpyHostToDevice));
    if (persistent)
      sharedState().push_back({const_cast<void *>(from), d, bytes});
    return d;
  }
  /// Host -> device (the device buffers the batch fields point at are the
  /// DeviceStep's own, hence the const_cast).
  static void upload(const void *to, const void *from, uint64_t bytes) {
    KILN_CUDA_CHECK(cudaMemcpyAsync(const_cast<void *>(to), from, bytes, cudaMemcpyHostToDevice,
                                    stepStream()));
  }
  static void download(void *to, const void *from, uint64_t bytes) {
    KILN_CUDA_CHECK(cudaMemcpyAsync(to, from, bytes, cudaMemcpyDeviceToHost, stepStream()));
  }

  bool setUp(const driver::StepBuffers &host, std::string &error) {
    const bool multiRank = model.dp > 1;
    if (model.pp != 1 || model.ep != 1 || multiRank != (host.comm != nullptr)) {
      error = "the CUDA step runs one rank or data-parallel ranks (ep and pp 1); this program "
              "describes dp " +
              std::to_string(model.dp) + ", ep " + std::to_string(model.ep) + ", pp " +
              std::to_string(model.pp) +
              (multiRank && !host.comm ? ", and the driver set up no ranks for it" : "");
      return false;
    }
#if !defined(KILN_HAVE_NCCL)
    if (multiRank) {
      error = "this data-parallel CUDA program was built without NCCL (KILN_HAVE_NCCL); rebuild "
              "it with kilnc where /usr/local/cuda has nccl.h and libnccl";
      return false;
    }
#endif
    if (host.advantages || host.gradResidual) {
      error = "the CUDA step does not run GRPO or compressed gradients yet";
      return false;
    }
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
      error = "no CUDA device: this executable was built for the GPU target (rebuild the spec "
              "with \"target\": \"host\" to train on the CPU)";
      return false;
    }
#if defined(KILN_HAVE_NCCL)
    // This rank's GPU first: the stream, the state and NCCL live on it.
    const int deviceIndex = multiRank ? localRankDevice() : 0;
    if (multiRank)
      KILN_CUDA_CHECK(cudaSetDevice(deviceIndex));
#endif
    if (!stepStream()) // the first DeviceStep's (a rampup has several)
      KILN_CUDA_CHECK(cudaStreamCreateWithFlags(&stepStream(), cudaStreamNonBlocking));
#if defined(KILN_HAVE_NCCL)
    if (multiRank) {
      comm = DeviceStepComm::create(host.comm->world(), deviceIndex, stepStream(), error);
      if (!comm)
        return false;
    }
#endif
    auto numel = [](const driver::ParamDesc &p) {
      uint64_t n = 1;
      for (int64_t k = 0; k < p.rank; ++k)
        n *= uint64_t(p.shape[k]);
      return n;
    };
    // ZeRO-1 (ModelDesc::shardedState): this rank's moments are its shard,
    // ceil(numel / dp) elements, as the driver holds them.
    auto momentElements = [&](const driver::ParamDesc &p) {
      return model.shardedState ? driver::shardElements(numel(p), int(model.dp)) : numel(p);
    };
    for (int64_t i = 0; i < model.numParams; ++i) {
      const driver::ParamDesc &p = model.params[i];
      params.push_back(
          static_cast<float *>(mirror(host.params[i], numel(p) * sizeof(float), true)));
      if (!p.trainable)
        continue;
      const size_t k = expAvg.size();
      if (model.bf16Moments) {
        const uint64_t bytes = momentElements(p) * sizeof(kernels::Bf16);
        expAvgBf16.push_back(static_cast<kernels::Bf16 *>(mirror(host.expAvgBf16[k], bytes, true)));
        expAvgSqBf16.push_back(
            static_cast<kernels::Bf16 *>(mirror(host.expAvgSqBf16[k], bytes, true)));
        expAvg.push_back(nullptr);
        expAvgSq.push_back(nullptr);
      } else {
        expAvg.push_back(static_cast<float *>(
            mirror(host.expAvg[k], momentElements(p) * sizeof(float), true)));
        expAvgSq.push_back(static_cast<float *>(
            mirror(host.expAvgSq[k], momentElements(p) * sizeof(float), true)));
      }
      const bool masked = host.sparsityMask && host.sparsityMask[k];
      masks.push_back(masked ? static_cast<float *>(
                                   mirror(host.sparsityMask[k], numel(p) * sizeof(float), true))
                             : nullptr);
    }
    const uint64_t tokens = uint64_t(model.batch) * uint64_t(model.seqLen);
    device = driver::StepBuffers{};
    device.params = params.data();
    device.expAvg = expAvg.data();
    device.expAvgSq = expAvgSq.data();
    device.expAvgBf16 = model.bf16Moments ? expAvgBf16.data() : nullptr;
    device.expAvgSqBf16 = model.bf16Moments ? expAvgSqBf16.data() : nullptr;
    device.sparsityMask = masks.data();
    device.step = static_cast<const int64_t *>(mirror(nullptr, sizeof(int64_t), false));
    device.tokens = static_cast<const int32_t *>(mirror(nullptr, tokens * 4, false));
    device.targets = static_cast<const int32_t *>(mirror(nullptr, tokens * 4, false));
    device.lossMask = static_cast<const float *>(mirror(nullptr, tokens * 4, false));
    device.loss = static_cast<float *>(mirror(nullptr, 4, false));
    device.mainLoss = static_cast<float *>(mirror(nullptr, 4, false));
    device.gradNorm = static_cast<float *>(mirror(nullptr, 4, false));
    device.lr = static_cast<float *>(mirror(nullptr, 4, false));
    for (int64_t i = 0; i < model.numExpertLoads; ++i)
      loads.push_back(
          static_cast<float *>(mirror(nullptr, uint64_t(model.numExperts) * 4, false)));
    device.expertLoads = loads.data();
    for (int64_t i = 0; i < model.numExpertKept; ++i)
      kept.push_back(static_cast<float *>(mirror(nullptr, uint64_t(model.numExperts) * 4, false)));
    device.expertKept = kept.empty() ? nullptr : kept.data();
    if (host.lossScale) {
      device.lossScale = static_cast<float *>(mirror(host.lossScale, sizeof(float), true));
      device.growthTracker =
          static_cast<int64_t *>(mirror(host.growthTracker, sizeof(int64_t), true));
      device.optimizerUpdates =
          static_cast<int64_t *>(mirror(host.optimizerUpdates, sizeof(int64_t), true));
    }
    device.arena = static_cast<unsigned char *>(mirror(nullptr, model.arenaBytes, false));
#if defined(KILN_HAVE_NCCL)
    device.comm = comm.get();
#endif
    ready = true;
    return true;
  }

  const driver::ModelDesc &model;
  driver::TrainStepFn deviceStep;
  driver::StepBuffers device{};
  std::vector<float *> params, expAvg, expAvgSq, masks, loads, kept;
  std::vector<kernels::Bf16 *> expAvgBf16, expAvgSqBf16;
  std::vector<void *> allocations;
  cudaGraphExec_t graph = nullptr;
  KernelEvents kernelEvents; // --profile's event pairs
  uint64_t steps = 0;
  bool ready = false;
#if defined(KILN_HAVE_NCCL)
  /// StepSegments' capture: the step stream's captures as graphs.
  class GraphCapture final : public StepSegments::Capture {
  public:
    bool begin(std::string &error) override {
      return checkCuda(cudaStreamBeginCapture(stepStream(), cudaStreamCaptureModeThreadLocal),
                       "cudaStreamBeginCapture", error);
    }
    bool end(int64_t &graph, std::string &error) override {
      cudaGraph_t captured = nullptr;
      graph = -1;
      if (!checkCuda(cudaStreamEndCapture(stepStream(), &captured), "cudaStreamEndCapture", error))
        return false;
      size_t nodes = 0;
      bool ok = checkCuda(cudaGraphGetNodes(captured, nullptr, &nodes), "cudaGraphGetNodes", error);
      if (ok && nodes > 0) {
        cudaGraphExec_t exec = nullptr;
        ok = checkCuda(cudaGraphInstantiate(&exec, captured, 0), "cudaGraphInstantiate", error);
        if (ok) {
          graph = int64_t(execs.size());
          execs.push_back(exec);
        }
      }
      cudaGraphDestroy(captured);
      return ok;
    }
    bool launch(int64_t graph, std::string &error) override {
      return checkCuda(cudaGraphLaunch(execs[size_t(graph)], stepStream()), "cudaGraphLaunch",
                       error);
    }
    void discard() override {
      cudaGraph_t captured = nullptr;
      if (cudaStreamEndCapture(stepStream(), &captured) == cudaSuccess && captured != nullptr)
        cudaGraphDestroy(captured);
      (void)cudaGetLastError(); // the recording's own error is the one reported
    }

  private:
    std::vector<cudaGraphExec_t> execs;
  };
  std::unique_ptr<DeviceStepComm> comm;
  GraphCapture capture;
#endif
};

/// `--save-grads` on the GPU: copies the step's gradients (device buffers of
/// `counts` floats) to the host and hands them to the driver's sink.
inline bool sinkGradients(const driver::StepBuffers &io, const float *const *grads,
                          const int64_t *counts, int64_t num, std::string &error) {
  if (!io.gradSink)
    return true;
  std::vector<std::vector<float>> hostGrads(static_cast<size_t>(num));
  std::vector<const float *> pointers;
  for (int64_t i = 0; i < num; ++i) {
    std::vector<float> &copy = hostGrads[static_cast<size_t>(i)];
    copy.resize(static_cast<size_t>(counts[i]));
    KILN_CUDA_CHECK(cudaMemcpyAsync(copy.data(), grads[i], uint64_t(counts[i]) * sizeof(float),
                                    cudaMemcpyDeviceToHost, stepStream()));
    pointers.push_back(copy.data());
  }
  KILN_CUDA_CHECK(cudaStreamSynchronize(stepStream()));
  io.gradSink(io.gradSinkContext, pointers.data());
  (void)error;
  return true;
}

/// ModelDesc::peakFlops for a step whose GEMMs run in `P`: this GPU's dense
/// peak (runtime/driver/PeakFlops.h, at the clock the device reports as its
/// peak), read once; 0 for a GPU the table has no entry for, or where the
/// device cannot be queried (no GPU: the step itself then says so), and
/// then no MFU is shown.
template <driver::GemmPrecision P> double devicePeakFlops() {
  static const double peak = [] {
    int device = 0, major = 0, minor = 0, sms = 0, clockKHz = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) !=
            cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) !=
            cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&clockKHz, cudaDevAttrClockRate, device) != cudaSuccess) {
      (void)cudaGetLastError(); // not sticky: the step's own check reports it
      return 0.0;
    }
    return driver::densePeakFlops(major, minor, sms, 1e3 * clockKHz, P);
  }();
  return peak;
}

} // namespace kiln::cuda

#endif // KILN_RUNTIME_CUDA_DEVICESTEP_CUH
