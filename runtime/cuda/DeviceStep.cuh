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
//   - bad data a kernel found (an id out of range...) is read after every
//     step (Device.cuh's record) and fails the step with its code and index.
//
// One rank per process, on device 0 of what CUDA_VISIBLE_DEVICES shows;
// multi-rank steps (NCCL behind the communicator) are not built yet, and
// kilnc refuses to emit them for this target.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_CUDA_DEVICESTEP_CUH
#define KILN_RUNTIME_CUDA_DEVICESTEP_CUH

#include "runtime/driver/PeakFlops.h"
#include "runtime/driver/TrainStep.h"
#include "runtime/kernels/PrecisionMath.h"
#include "runtime/kernels/cuda/Device.cuh"

#include <cuda_runtime.h>

#include <cstring>
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
    bool ok = true;
    if (host.gradSink || steps == 0) {
      // Eager: the sink copies gradients to the host mid-step, and the first
      // step creates the GEMM plans and scratch a graph would capture.
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
      error = "a kernel found bad data on the GPU (error " + std::to_string(bad.code) +
              " at index " + std::to_string(bad.index) +
              ": see runtime/kernels/cuda/Device.cuh and the family headers for the codes)";
      return false;
    }
    return true;
  }

  /// Copies the device's state (parameters, moments, masks, loss scaler)
  /// into the driver's buffers.
  bool syncStateToHost(std::string &error) {
    if (!ready)
      return true; // no step ran: the host's state is the state
    for (const Mirror &m : state)
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

  /// A device buffer of `bytes` holding (when `from` is set) a copy of it;
  /// recorded as state when `persistent`, so syncStateToHost() copies it
  /// back.
  void *mirror(const void *from, uint64_t bytes, bool persistent) {
    void *d = nullptr;
    KILN_CUDA_CHECK(cudaMalloc(&d, bytes ? bytes : 1));
    allocations.push_back(d);
    if (from)
      KILN_CUDA_CHECK(cudaMemcpy(d, from, bytes, cudaMemcpyHostToDevice));
    if (persistent)
      state.push_back({const_cast<void *>(from), d, bytes});
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
    if (model.dp != 1 || model.pp != 1 || model.ep != 1 || host.comm) {
      error = "the CUDA step runs on one rank; this program describes dp " +
              std::to_string(model.dp) + ", ep " + std::to_string(model.ep) + ", pp " +
              std::to_string(model.pp);
      return false;
    }
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
    KILN_CUDA_CHECK(cudaStreamCreateWithFlags(&stepStream(), cudaStreamNonBlocking));
    auto numel = [](const driver::ParamDesc &p) {
      uint64_t n = 1;
      for (int64_t k = 0; k < p.rank; ++k)
        n *= uint64_t(p.shape[k]);
      return n;
    };
    for (int64_t i = 0; i < model.numParams; ++i) {
      const driver::ParamDesc &p = model.params[i];
      params.push_back(
          static_cast<float *>(mirror(host.params[i], numel(p) * sizeof(float), true)));
      if (!p.trainable)
        continue;
      const size_t k = expAvg.size();
      if (model.bf16Moments) {
        const uint64_t bytes = numel(p) * sizeof(kernels::Bf16);
        expAvgBf16.push_back(static_cast<kernels::Bf16 *>(mirror(host.expAvgBf16[k], bytes, true)));
        expAvgSqBf16.push_back(
            static_cast<kernels::Bf16 *>(mirror(host.expAvgSqBf16[k], bytes, true)));
        expAvg.push_back(nullptr);
        expAvgSq.push_back(nullptr);
      } else {
        expAvg.push_back(
            static_cast<float *>(mirror(host.expAvg[k], numel(p) * sizeof(float), true)));
        expAvgSq.push_back(
            static_cast<float *>(mirror(host.expAvgSq[k], numel(p) * sizeof(float), true)));
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
    ready = true;
    return true;
  }

  const driver::ModelDesc &model;
  driver::TrainStepFn deviceStep;
  driver::StepBuffers device{};
  std::vector<float *> params, expAvg, expAvgSq, masks, loads, kept;
  std::vector<kernels::Bf16 *> expAvgBf16, expAvgSqBf16;
  std::vector<Mirror> state;
  std::vector<void *> allocations;
  cudaGraphExec_t graph = nullptr;
  uint64_t steps = 0;
  bool ready = false;
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
