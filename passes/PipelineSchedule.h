//===- PipelineSchedule.h - pipeline schedules as data, and their simulator -===//
//
// A pipeline schedule is, per rank, the list of actions it runs in order
// (../shared/DESIGN.md, "Schedules are data"): per micro-batch and chunk, a
// forward F, a backward for the input B (the dgrad ops), a backward for the
// weights W (the wgrad ops, which zero-bubble schedules defer), or a whole
// backward BW (B then W, what schedules without the split run), and the
// sends and receives of activations (forward) and gradients (backward)
// between the ranks that hold neighbouring stages.
//
// Stages: the model is cut into ranks x chunks virtual stages; (rank, chunk)
// holds stage stageOf[rank][chunk]. GPipe, 1F1B and ZB-H1 have one chunk per
// rank (stage = rank); interleaved 1F1B has `chunks` per rank, stage = chunk
// x ranks + rank (Megatron's placement); DualPipeV's V puts stages r and
// 2 ranks - 1 - r on rank r (the last rank hands its first chunk's output to
// its second chunk itself).
//
// buildSchedule derives the action lists; simulate() runs them with
// per-action costs: it checks the schedule (every micro-batch through every
// stage once, F before B before W, every receive matched by a send, no
// deadlock; errors name the rank, action and micro-batch) and reports the
// makespan, each rank's busy time and bubble (idle time within the step),
// and each rank's peak of micro-batches in flight (forwards whose weight
// gradient is not done: their activations are held).
//
// The published bubbles, with F, B (backward for the input) and W costs
// (DualPipe's table writes B for the whole backward, B + W here):
//   1F1B and GPipe: (ranks - 1)(F + B + W) on every rank;
//   interleaved 1F1B: (ranks - 1)(F + B + W) / chunks;
//   ZB-H1: (ranks - 1)(F + B - W), in-flight micro-batches bounded by 1F1B's
//   peak (ranks);
//   DualPipeV: (PP/2 - 1)(F&B + (B + W) - 3W) with PP = 2 ranks stages and
//   F&B the cost of an overlapped pair, PP + 1 micro-batches in flight.
// PipelineScheduleTest checks each.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_PASSES_PIPELINESCHEDULE_H
#define KILN_PASSES_PIPELINESCHEDULE_H

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::pipeline {

enum class Op : uint8_t { F, B, W, BW, FB, SendF, RecvF, SendB, RecvB };

/// PyTorch's spelling (torch.distributed.pipelining's CSV schedules): "F",
/// "I" (B, backward for the input), "W", "B" (BW, the whole backward),
/// "SEND_F", "RECV_F", "SEND_B", "RECV_B"; "F&B" for FB, DualPipe's
/// overlapped pair of one micro-batch's forward and another's whole
/// backward (microbatch2, chunk2).
const char *opName(Op op);

struct Action {
  Op op;
  int32_t microbatch;
  int32_t chunk; ///< the chunk of the acting rank
  int32_t peer;  ///< sends and receives: the other rank; -1 otherwise
  int32_t microbatch2 = -1, chunk2 = -1; ///< FB: the backward's micro-batch and chunk
};

struct Schedule {
  std::string kind; ///< gpipe | 1f1b | interleaved-1f1b | zb-h1 | zb-v | dualpipev
  int32_t ranks = 0, chunks = 1, microbatches = 0;
  std::vector<std::vector<int32_t>> stageOf; ///< [rank][chunk] -> stage
  std::vector<std::vector<Action>> actions;  ///< per rank, in order

  int32_t stages() const { return ranks * chunks; }
  /// The (rank, chunk) that holds `stage`.
  std::pair<int32_t, int32_t> placeOf(int32_t stage) const;
};

/// Per-action costs (any unit; the planner's FLOPs or seconds).
struct Costs {
  double f = 1, b = 1, w = 1;
  double comm = 0; ///< from a send's end to the matching receive's earliest end
  /// An overlapped forward + whole backward (DualPipe's F&B); < 0: f + b + w,
  /// no overlap.
  double fb = -1;
};

/// The schedule `kind` for `ranks` x `chunks` stages and `microbatches`;
/// zb-h1 places its W actions with `costs`. Fails, saying why, on an unknown
/// kind or a shape it does not take (interleaved 1F1B: microbatches a
/// multiple of ranks, chunks >= 2; DualPipeV: 2 chunks (or 1, meaning 2),
/// micro-batches >= 2 ranks; the others: one chunk).
std::optional<Schedule> buildSchedule(const std::string &kind, int32_t ranks, int32_t chunks,
                                      int32_t microbatches, const Costs &costs,
                                      std::string &error);

struct Simulation {
  double makespan = 0;
  std::vector<double> busy, bubble;   ///< per rank
  std::vector<int32_t> peakInFlight;  ///< per rank
  /// Per rank, per action: start and end times.
  std::vector<std::vector<std::pair<double, double>>> times;
};

/// Checks and runs `schedule`; fails with a message naming the rank, the
/// action (its index and kind) and the micro-batch.
std::optional<Simulation> simulate(const Schedule &schedule, const Costs &costs,
                                   std::string &error);
/// The same with each stage's own costs (perStage[stage], the comm cost
/// perStage[0]'s): a model whose stages differ, the embedding on the first
/// and the head and losses on the last. An F&B costs its forward stage's F
/// plus its backward stage's B and W (or the forward stage's fb, if set).
std::optional<Simulation> simulate(const Schedule &schedule, const std::vector<Costs> &perStage,
                                   std::string &error);

/// One action of `rank` as PyTorch's CSV schedules write it ("0F0", "0B0",
/// "0W0", "0SEND_F0", ...: stage, op, micro-batch; "0F2&1B0" for F&B).
std::string formatAction(const Schedule &schedule, int32_t rank, const Action &action);

/// One row per rank, its actions (formatAction) comma-separated.
std::string formatScheduleCsv(const Schedule &schedule);

/// The simulated timeline as an SVG image: one row per rank, one box per
/// computation (F blue, I or B green, W orange; the micro-batch inside, the
/// second chunk's boxes darker), idle time blank, and each rank's bubble at
/// the end of its row.
std::string formatScheduleSvg(const Schedule &schedule, const Simulation &simulation);

} // namespace kiln::pipeline

#endif // KILN_PASSES_PIPELINESCHEDULE_H
