//===- Timer.h - Steady-clock stopwatch for the training loop -*- C++ -*-===//
//
// Wall time for tokens/s, elapsed_s and the ETA. std::chrono::steady_clock,
// so a system clock change (NTP step, suspend on some systems) never makes
// time run backwards mid-run.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DRIVER_TIMER_H
#define KILN_RUNTIME_DRIVER_TIMER_H

#include <chrono>

namespace kiln::driver {

class Timer {
public:
  using Clock = std::chrono::steady_clock;

  Timer() : start_(Clock::now()), lap_(start_) {}

  /// Restarts both the total and the lap clock.
  void reset() { start_ = lap_ = Clock::now(); }

  /// Seconds since construction or the last reset().
  double seconds() const { return since(start_); }

  /// Seconds since the previous lap() (or construction/reset), and starts a
  /// new lap. Use it for per-step time.
  double lap() {
    Clock::time_point now = Clock::now();
    double s = std::chrono::duration<double>(now - lap_).count();
    lap_ = now;
    return s;
  }

private:
  static double since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  }

  Clock::time_point start_;
  Clock::time_point lap_;
};

} // namespace kiln::driver

#endif // KILN_RUNTIME_DRIVER_TIMER_H
