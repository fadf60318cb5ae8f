//===- StepSegments.h - A multi-rank CUDA step as graph segments and collectives -*- C++ -*-===//
//
// A CUDA graph cannot hold the NCCL communicator's collectives as Kiln runs
// them: each polls its completion on the host with a timeout
// (runtime/cuda/NcclCommunicator.cuh), which a stream capture cannot
// contain. A multi-rank step is therefore recorded as what it does, in
// order (DeviceStep.cuh's header says why this and not a watchdog):
//
//   graph 0 (compute) | collective, collective, join | graph 1 | ...
//
// The generated step *posts* each collective where kiln-overlap-collectives
// put it on the communication stream (having recorded its ready event on
// the compute stream, in the graph when capturing) and *waits* for it at
// the `stream_wait` with its event. A wait ends the graph segment being
// captured, launches it, runs the posted collectives up to that event
// eagerly (the communication stream first waits for each one's ready
// event, so it overlaps the rest of the segment already queued on the
// GPU), then the join (the compute stream waits for the communication
// stream), and begins the next segment. Later steps replay the record:
// launch each graph, run each collective and join. Kernels' pointers are
// fixed (the static arena, the DeviceStep's state), so the record is the
// step.
//
// Plain C++ (no CUDA): the capture is an interface that DeviceStep.cuh
// implements with cudaStreamBeginCapture / EndCapture / cudaGraphLaunch and
// CudaShimStepSegmentsTest with a log, so the segmenting is tested on the
// CPU.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_CUDA_STEPSEGMENTS_H
#define KILN_RUNTIME_CUDA_STEPSEGMENTS_H

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace kiln::cuda {

class StepSegments {
public:
  /// Host work that may fail with a message: a collective, a join, a step.
  using Action = std::function<bool(std::string &error)>;

  /// The compute stream's capture into graphs.
  class Capture {
  public:
    virtual ~Capture() = default;
    /// Begins capturing the compute stream.
    virtual bool begin(std::string &error) = 0;
    /// Ends the capture begun last and instantiates it: `graph` is its
    /// handle, or -1 where it captured no work.
    virtual bool end(int64_t &graph, std::string &error) = 0;
    /// Launches an instantiated graph on the compute stream.
    virtual bool launch(int64_t graph, std::string &error) = 0;
    /// Ends a capture whose recording failed, keeping nothing.
    virtual void discard() = 0;
  };

  /// Called by the generated step through its collectives: `run` is the
  /// collective of kiln-overlap-collectives' `event` (-1: a collective the
  /// pass did not place, run where it is issued, at once).
  bool post(int64_t event, Action run, std::string &error) {
    pending_.push_back({event, std::move(run)});
    return event >= 0 || wait(-1, error);
  }

  /// The compute stream waits for the collective of `event`: every posted
  /// collective up to it (they are numbered in issue order) runs, then the
  /// join. Nothing when an earlier wait already ran it.
  bool wait(int64_t event, std::string &error) {
    std::vector<Action> ready;
    while (!pending_.empty() && (event < 0 || pending_.front().event <= event)) {
      ready.push_back(std::move(pending_.front().run));
      pending_.pop_front();
    }
    if (ready.empty())
      return true;
    if (capture_ != nullptr) {
      // Recording: the segment so far becomes a graph, launched before the
      // collectives that wait for its ready events.
      int64_t graph = -1;
      if (!capture_->end(graph, error))
        return failRecording(false);
      capturing_ = false;
      if (graph >= 0) {
        program_.push_back({graph, nullptr});
        if (!capture_->launch(graph, error))
          return failRecording(false);
      }
    }
    for (Action &run : ready) {
      if (!run(error))
        return failRecording(true);
      if (capture_ != nullptr)
        program_.push_back({-1, std::move(run)});
    }
    if (join_ && !join_(error))
      return failRecording(true);
    if (capture_ != nullptr) {
      program_.push_back({-1, join_});
      if (!capture_->begin(error))
        return failRecording(true);
      capturing_ = true;
    }
    return true;
  }

  /// What follows the collectives run by a wait: the compute stream waits
  /// for the communication stream.
  void setJoin(Action join) { join_ = std::move(join); }

  /// Runs `step` eagerly: its collectives run at their waits.
  bool runEager(const Action &step, std::string &error) {
    pending_.clear();
    return step(error) && allWaited(error);
  }

  /// Runs `step` once while recording it (see the file comment); on
  /// success replay() runs the record from then on. On failure nothing is
  /// recorded and the capture is ended.
  bool record(Capture &capture, const Action &step, std::string &error) {
    pending_.clear();
    program_.clear();
    capture_ = &capture;
    if (!capture.begin(error)) {
      capture_ = nullptr;
      return false;
    }
    capturing_ = true;
    if (!step(error) || !allWaited(error))
      return failRecording(true);
    int64_t graph = -1;
    capturing_ = false;
    if (!capture.end(graph, error))
      return failRecording(false);
    capture_ = nullptr;
    if (graph >= 0) {
      program_.push_back({graph, nullptr});
      if (!capture.launch(graph, error)) {
        program_.clear();
        return false;
      }
    }
    recorded_ = true;
    return true;
  }

  bool recorded() const { return recorded_; }

  /// Runs the record of the step: its graphs, collectives and joins in
  /// order.
  bool replay(Capture &capture, std::string &error) {
    for (const Entry &entry : program_)
      if (entry.graph >= 0 ? !capture.launch(entry.graph, error) : !entry.action(error))
        return false;
    return true;
  }

  /// The record: graphs and host actions (collectives and joins).
  size_t graphs() const {
    size_t n = 0;
    for (const Entry &entry : program_)
      n += entry.graph >= 0;
    return n;
  }
  size_t hostActions() const { return program_.size() - graphs(); }
  /// The record in order: 'G' a graph, 'H' a host action.
  std::string shape() const {
    std::string s;
    for (const Entry &entry : program_)
      s += entry.graph >= 0 ? 'G' : 'H';
    return s;
  }

private:
  struct Posted {
    int64_t event;
    Action run;
  };
  struct Entry {
    int64_t graph; ///< -1: `action`
    Action action;
  };

  /// Every posted collective must have been waited for by the step's end
  /// (kiln-overlap-collectives puts a wait before the end for each).
  bool allWaited(std::string &error) {
    if (pending_.empty())
      return true;
    error = "the collective of event " + std::to_string(pending_.front().event) +
            " was posted and never waited for (the step lacks its stream_wait; regenerate "
            "it with kilnc)";
    pending_.clear();
    return false;
  }

  /// Ends a failed recording: the capture (if `endCapture` and one is
  /// open) without a graph, and the record.
  bool failRecording(bool endCapture) {
    if (capture_ != nullptr) {
      if (endCapture && capturing_)
        capture_->discard();
      capturing_ = false;
      capture_ = nullptr;
      program_.clear();
    }
    pending_.clear();
    return false;
  }

  std::deque<Posted> pending_;
  std::vector<Entry> program_;
  Action join_;
  Capture *capture_ = nullptr; ///< while recording
  bool capturing_ = false;     ///< a capture is open
  bool recorded_ = false;
};

} // namespace kiln::cuda

#endif // KILN_RUNTIME_CUDA_STEPSEGMENTS_H
