//===- KernelEvents.cuh - train --profile on the GPU: a pair of events per launch -*- CUDA -*-===//
//
// The host step times each launch with a steady clock around the call
// (runtime/driver/KernelProfile.h). On the GPU a launch returns at once, so
// the CUDA step's KernelTimer records a CUDA event on the step's stream
// before and after each launch instead; after the step the DeviceStep, once
// the stream is synchronised, adds each pair's elapsed time to the driver's
// KernelProfile under the launch's kernel name. The profile's table is then
// the host's: calls and milliseconds per step per catalog kernel, fused
// elementwise loops as one row, and "outside kernels" the rest of the step's
// wall time (uploads, downloads, the host's work, gaps between launches).
//
// A profiled step runs eagerly (no CUDA graph), as --save-grads' steps do:
// the events time the launches as issued one by one, so a graph's saving in
// launch overhead is not in the table. Events are created once and reused
// from step to step. Without --profile the timers cost a pointer test.
// CUDA only, as DeviceStep.cuh.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_CUDA_KERNELEVENTS_CUH
#define KILN_RUNTIME_CUDA_KERNELEVENTS_CUH

#include "runtime/driver/KernelProfile.h"
#include "runtime/kernels/cuda/Device.cuh"

#include <string>
#include <vector>

namespace kiln::cuda {

/// The event pairs of one profiled step, in launch order.
class KernelEvents {
public:
  KernelEvents() = default;
  KernelEvents(const KernelEvents &) = delete;
  KernelEvents &operator=(const KernelEvents &) = delete;
  ~KernelEvents() {
    for (Pair &p : pairs) {
      cudaEventDestroy(p.start);
      cudaEventDestroy(p.stop);
    }
  }

  /// Records the start of a launch of `kernel` (a literal) on `stream`.
  void begin(const char *kernel, cudaStream_t stream) {
    if (used == pairs.size()) {
      Pair p{};
      KILN_CUDA_CHECK(cudaEventCreate(&p.start));
      KILN_CUDA_CHECK(cudaEventCreate(&p.stop));
      pairs.push_back(p);
    }
    pairs[used].kernel = kernel;
    KILN_CUDA_CHECK(cudaEventRecord(pairs[used].start, stream));
  }
  /// Records the end of the launch begun last.
  void end(cudaStream_t stream) { KILN_CUDA_CHECK(cudaEventRecord(pairs[used++].stop, stream)); }

  /// After the step's stream is synchronised: adds every launch's time to
  /// `profile` and starts over for the next step.
  void collect(driver::KernelProfile &profile) {
    for (size_t i = 0; i < used; ++i) {
      float ms = 0;
      KILN_CUDA_CHECK(cudaEventElapsedTime(&ms, pairs[i].start, pairs[i].stop));
      profile.add(pairs[i].kernel, double(ms) / 1000.0);
    }
    used = 0;
  }

private:
  struct Pair {
    const char *kernel;
    cudaEvent_t start, stop;
  };
  std::vector<Pair> pairs;
  size_t used = 0;
};

/// The events of the step being profiled, or null (DeviceStep sets it
/// around a profiled step).
inline KernelEvents *&profiledStep() {
  static KernelEvents *events = nullptr;
  return events;
}

/// Times its scope's launches on `stream` into profiledStep(), if any.
class KernelTimer {
public:
  KernelTimer(const char *kernel, cudaStream_t stream) : events(profiledStep()), stream(stream) {
    if (events)
      events->begin(kernel, stream);
  }
  ~KernelTimer() {
    if (events)
      events->end(stream);
  }
  KernelTimer(const KernelTimer &) = delete;
  KernelTimer &operator=(const KernelTimer &) = delete;

private:
  KernelEvents *events;
  cudaStream_t stream;
};

} // namespace kiln::cuda

#endif // KILN_RUNTIME_CUDA_KERNELEVENTS_CUH
