//===- KernelProfile.cpp - time per kernel of a generated step -------------===//

#include "runtime/driver/KernelProfile.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace kiln::driver {

void KernelProfile::add(const char *kernel, double seconds) {
  size_t row = rows_.size();
  for (const auto &[pointer, index] : byPointer_)
    if (pointer == kernel) {
      row = index;
      break;
    }
  if (row == rows_.size()) {
    // A new pointer: the same name may have come through another literal.
    auto same = std::find_if(rows_.begin(), rows_.end(),
                             [&](const Row &r) { return r.kernel == kernel; });
    row = size_t(same - rows_.begin());
    if (same == rows_.end())
      rows_.push_back({kernel, 0, 0.0});
    byPointer_.push_back({kernel, row});
  }
  ++rows_[row].calls;
  rows_[row].seconds += seconds;
}

std::vector<KernelProfile::Row> KernelProfile::rows() const {
  std::vector<Row> sorted = rows_;
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const Row &a, const Row &b) { return a.seconds > b.seconds; });
  return sorted;
}

std::string KernelProfile::format(uint64_t steps, double stepSeconds) const {
  const double perStep = steps ? stepSeconds / double(steps) : 0.0;
  char line[160];
  std::snprintf(line, sizeof(line), "kernel profile (rank 0, %llu steps, %.3f ms per step):\n",
                (unsigned long long)steps, perStep * 1e3);
  std::string out = line;
  std::snprintf(line, sizeof(line), "  %-24s %12s %14s %8s\n", "kernel", "calls/step",
                "ms/step", "% step");
  out += line;
  double listed = 0;
  for (const Row &r : rows()) {
    const double ms = steps ? r.seconds * 1e3 / double(steps) : 0.0;
    listed += r.seconds;
    std::snprintf(line, sizeof(line), "  %-24s %12.1f %14.3f %7.1f%%\n", r.kernel.c_str(),
                  steps ? double(r.calls) / double(steps) : 0.0, ms,
                  stepSeconds > 0 ? 100.0 * r.seconds / stepSeconds : 0.0);
    out += line;
  }
  std::snprintf(line, sizeof(line), "  %-24s %12s %14.3f %7.1f%%\n", "(outside kernels)", "",
                steps ? (stepSeconds - listed) * 1e3 / double(steps) : 0.0,
                stepSeconds > 0 ? 100.0 * (stepSeconds - listed) / stepSeconds : 0.0);
  return out + line;
}

} // namespace kiln::driver
