//===- ActionTrace.h - train --trace: a Chrome trace of the steps --*- C++ -*-===//
//
// `train --trace FILE.json` records, on every rank, when each step began and
// ended and, in a pipeline stage's program, when each of its schedule's
// actions did: the generated step calls traceAction() where the action of
// its kernels changes (kiln-pipeline marks every op with its action:
// KilnDialect.h, pipelineActionLoc). At the end of the run the ranks send
// their events to rank 0, which writes one Chrome trace (the JSON trace
// event format that Perfetto and chrome://tracing open): one process per
// rank, the actions on its first track, the steps on its second.
//
// The ranks' clocks are aligned by a barrier before the first step (all
// ranks of a job run on one machine here; across machines the offsets are
// within the barrier's latency). Kernels outside every action (the step's
// prologue and its epilogue: sums of gradients, the optimizer) are events
// named "prologue" and "epilogue". An action's event includes the time its
// receives waited: the bubble is what is not F, I, B or W.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DRIVER_ACTIONTRACE_H
#define KILN_RUNTIME_DRIVER_ACTIONTRACE_H

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace kiln::comm {
class Communicator;
} // namespace kiln::comm

namespace kiln::driver {

class ActionTrace {
public:
  /// `stage` and `dpRank` label the rank's track.
  ActionTrace(int rank, int stage, int dpRank) : rank_(rank), stage_(stage), dpRank_(dpRank) {}

  /// Aligns the ranks' clocks (a collective: a barrier, then every rank's
  /// zero); false with the communicator's error.
  bool start(comm::Communicator &world, std::string &error);
  void beginStep(uint64_t step);
  /// Ends the running action and begins `name` (a literal of the generated
  /// step); null ends it without beginning another.
  void action(const char *name);
  void endStep();

  /// Sends every rank's events to rank 0, which writes the trace to `path`
  /// atomically (a collective); false with the error on the rank that
  /// failed (rank 0's write, or the exchange).
  bool write(comm::Communicator &world, const std::string &path, std::string &error);

  /// This rank's events as trace-event JSON objects, comma-separated.
  std::string eventsJson() const;

private:
  double now() const {
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - zero_)
        .count();
  }

  struct Event {
    std::string name;
    uint64_t step;
    double start, end; ///< microseconds since the aligned zero
    bool isStep;
  };
  int rank_, stage_, dpRank_;
  std::chrono::steady_clock::time_point zero_ = std::chrono::steady_clock::now();
  std::vector<Event> events_;
  uint64_t step_ = 0;
  double stepStart_ = 0;
  const char *running_ = nullptr;
  double runningStart_ = 0;
};

/// What the generated step calls; a null trace (no --trace) costs a branch.
inline void traceAction(ActionTrace *trace, const char *name) {
  if (trace)
    trace->action(name);
}

} // namespace kiln::driver

#endif // KILN_RUNTIME_DRIVER_ACTIONTRACE_H
