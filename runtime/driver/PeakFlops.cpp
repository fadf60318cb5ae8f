//===- PeakFlops.cpp - a GPU's dense peak FLOP/s, for MFU -----------------===//

#include "runtime/driver/PeakFlops.h"

#include <cmath>

namespace kiln::driver {

double denseFlopsPerSmPerClock(int major, int minor, GemmPrecision precision) {
  struct Entry {
    int major, minor;
    double f32, half, fp8;
  };
  static const Entry kTable[] = {
      {8, 0, 128, 2048, 0},
      {8, 9, 256, 1024, 2048},
      {9, 0, 256, 4096, 8192},
      {10, 0, 256, 8192, 16384},
  };
  for (const Entry &e : kTable)
    if (e.major == major && e.minor == minor)
      switch (precision) {
      case GemmPrecision::F32:
        return e.f32;
      case GemmPrecision::Bf16:
      case GemmPrecision::F16:
        return e.half;
      case GemmPrecision::Fp8:
        return e.fp8;
      }
  return 0;
}

double densePeakFlops(int major, int minor, int sms, double clockHz, GemmPrecision precision) {
  if (sms <= 0 || !(clockHz > 0))
    return 0;
  return double(sms) * clockHz * denseFlopsPerSmPerClock(major, minor, precision);
}

double modelFlopsUtilization(double flopsPerToken, double tokensPerSec, int ranks,
                             double peakFlops) {
  if (!(flopsPerToken > 0) || !(peakFlops > 0) || ranks < 1 || !std::isfinite(tokensPerSec))
    return std::nan("");
  return flopsPerToken * tokensPerSec / (double(ranks) * peakFlops);
}

} // namespace kiln::driver
