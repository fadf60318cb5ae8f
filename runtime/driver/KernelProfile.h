//===- KernelProfile.h - time per kernel of a generated step (--profile) -*- C++ -*-===//
//
// A generated step wraps every launch (and fused elementwise loop) in a
// KernelTimer named by its catalog kernel. With StepBuffers::profile null
// (the default) a timer does nothing; with `train --profile` it adds the
// launch's wall time to the kernel's row, and the driver prints the rows at
// the end of the run: where the step's time goes, collectives included
// (their time counts waiting for peers, as comm_s does).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DRIVER_KERNELPROFILE_H
#define KILN_RUNTIME_DRIVER_KERNELPROFILE_H

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace kiln::driver {

class KernelProfile {
public:
  struct Row {
    std::string kernel;
    uint64_t calls = 0;
    double seconds = 0;
  };

  void add(const char *kernel, double seconds);
  /// Rows by decreasing time.
  std::vector<Row> rows() const;
  /// The table the driver prints for `steps` profiled steps of
  /// `stepSeconds` in all.
  std::string format(uint64_t steps, double stepSeconds) const;

private:
  std::vector<Row> rows_;
  /// The row of each kernel-name pointer seen (generated code passes
  /// literals), so a lookup is a pointer compare.
  std::vector<std::pair<const char *, size_t>> byPointer_;
};

/// Times its scope into `profile` when that is non-null.
class KernelTimer {
public:
  KernelTimer(KernelProfile *profile, const char *kernel) : profile_(profile), kernel_(kernel) {
    if (profile_)
      start_ = std::chrono::steady_clock::now();
  }
  ~KernelTimer() {
    if (profile_)
      profile_->add(kernel_, std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                                           start_)
                                 .count());
  }
  KernelTimer(const KernelTimer &) = delete;
  KernelTimer &operator=(const KernelTimer &) = delete;

private:
  KernelProfile *profile_;
  const char *kernel_;
  std::chrono::steady_clock::time_point start_;
};

} // namespace kiln::driver

#endif // KILN_RUNTIME_DRIVER_KERNELPROFILE_H
