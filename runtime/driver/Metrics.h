//===- Metrics.h - Per-step metrics: jsonl log and live progress line -*- C++ -*-===//
//
// Two views of the same numbers each step:
//
//  * MetricsLog writes one JSON object per line (jsonl) and flushes it, so a
//    run killed at any point leaves a file whose every complete line parses:
//      {"step":12,"loss":5.4321,"main_loss":5.1,"lr":0.003,"grad_norm":1.23,
//       "tokens_per_s":12345.6,"elapsed_s":7.5}
//    ("loss" is what the step minimised, "main_loss" the next-token part
//    alone, without the MTP and load-balance terms).
//    Numbers are written in the shortest form that reads back to the same
//    double (std::to_chars, locale-independent); NaN and ±inf, which JSON
//    cannot express, are written as null.
//
//  * formatProgressLine() renders the terminal line
//      step 12/300 | loss 5.4321 | lr 3.00e-03 | grad 1.23 | 12.3k tok/s | ETA 1m02s
//    as a pure function of the numbers; ProgressPrinter redraws it in place
//    with '\r' and ends it with a newline.
//
// Like the rest of runtime/, nothing here throws.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DRIVER_METRICS_H
#define KILN_RUNTIME_DRIVER_METRICS_H

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

namespace kiln::driver {

/// What one training step reports.
struct StepMetrics {
  uint64_t step = 0;
  double loss = 0;
  double mainLoss = 0;
  double lr = 0;
  double gradNorm = 0;
  double tokensPerSec = 0;
  double elapsedSec = 0;
  /// Multi-rank steps only: rank 0's seconds inside collectives (waiting for
  /// peers included) and the bytes it passed to them (comm/Communicator.h's
  /// CommStats::inputBytes).
  bool multiRank = false;
  double commSec = 0;
  /// train.batch_rampup only (globalBatch > 0): this step's global batch in
  /// rows and the samples consumed before it (Megatron's
  /// consumed_train_samples).
  uint64_t globalBatch = 0;
  uint64_t consumedSamples = 0;
  uint64_t commBytes = 0;
  /// parallel.expert_capacity only: the (token, expert) rows routed to
  /// routed experts this step, over all MoE layers, micro-batches and ranks,
  /// and how many of them capacity dropped.
  bool expertCapacity = false;
  uint64_t routedRows = 0;
  uint64_t droppedRows = 0;
  /// parallel.grad_compression only (sent > 0): the bytes of rank 0's
  /// compressed gradient messages this step, and of the all_reduce they
  /// replace.
  uint64_t gradBytesSent = 0;
  uint64_t gradBytesUncompressed = 0;
  /// Expert parallelism only (predicted > 0): the bytes every rank passed to
  /// the all_to_alls this step, summed over ranks, and the compiler's
  /// dropless prediction of that sum.
  uint64_t allToAllBytes = 0;
  uint64_t allToAllBytesPredicted = 0;
  /// Dynamic loss scaling only: the scale this step's backward was seeded
  /// with, and whether its gradients overflowed so that no update was made.
  bool lossScaling = false;
  double lossScale = 0;
  bool skipped = false;
  /// GRPO only (GrpoRollout.h): the rollouts' rewards (mean and population
  /// std), the fraction of completions with a correct answer and with R1's
  /// format, the mean completion length in tokens, the mean k3 KL to the
  /// reference model over the completion tokens, the fraction of completion
  /// tokens whose ratio the clip bounds cut (over the updates after the
  /// first; 0 with one update per batch), the fraction of groups whose
  /// rewards all tie (no advantage, no gradient), and the sampling speed.
  bool grpo = false;
  double rewardMean = 0, rewardStd = 0, accuracy = 0, formatRate = 0, responseLength = 0;
  double kl = 0, clipFraction = 0, tiedGroups = 0, generationTokensPerSec = 0;
  /// Model FLOPs utilization (PeakFlops.h) where the device's peak is known
  /// (the CUDA target); NaN on the host, and then not written. Written
  /// after tokens_per_s.
  double mfu = std::nan("");
};

/// `value` as a JSON number in its shortest round-tripping form, or "null"
/// when it is NaN or infinite.
std::string formatJsonNumber(double value);

/// One jsonl record for `m` (no trailing newline). Keys, in order: step,
/// loss, main_loss, lr, grad_norm, tokens_per_s, elapsed_s, for multi-rank
/// steps comm_s, comm_bytes, with expert capacity routed_rows,
/// dropped_rows, with gradient compression grad_bytes_sent,
/// grad_bytes_uncompressed, with expert parallelism all_to_all_bytes,
/// all_to_all_bytes_dropless, and with loss scaling loss_scale, skipped.
std::string formatMetricsLine(const StepMetrics &m);

/// An open jsonl metrics file. Move-only; closes on destruction.
class MetricsLog {
public:
  /// Opens `path` for writing: truncating it, or with `append` (a resumed
  /// run) adding to its end. Fails, naming the path and the system error,
  /// if it cannot be opened.
  static std::optional<MetricsLog> open(const std::string &path, bool append,
                                        std::string &error);

  MetricsLog(MetricsLog &&other) noexcept;
  MetricsLog &operator=(MetricsLog &&other) noexcept;
  MetricsLog(const MetricsLog &) = delete;
  MetricsLog &operator=(const MetricsLog &) = delete;
  ~MetricsLog();

  /// Writes formatMetricsLine(m) and a newline, then flushes. Fails, naming
  /// the path and the system error, on a short write or failed flush.
  bool write(const StepMetrics &m, std::string &error);

  const std::string &path() const { return path_; }

private:
  MetricsLog() = default;
  void close();

  std::FILE *file_ = nullptr;
  std::string path_;
};

/// What the live progress line shows.
struct Progress {
  uint64_t step = 0;
  uint64_t totalSteps = 0;
  double loss = 0;
  double lr = 0;
  double gradNorm = 0;
  double tokensPerSec = 0;
  double etaSec = 0;
  /// Shown as "MFU 41.2%" after the rate where finite.
  double mfu = std::nan("");
};

/// A time left: "42s" under a minute, "1m02s" under an hour, "2h05m" from
/// an hour up (seconds rounded to the nearest, minutes then truncated).
/// Negative or non-finite: "--".
std::string formatEta(double seconds);

/// A rate with an SI suffix and three significant-ish digits: "950",
/// "12.3k", "1.5M", "2.0G". Negative or non-finite: "--".
std::string formatRate(double perSecond);

/// `step 12/300 | loss 5.4321 | lr 3.00e-03 | grad 1.23 | 12.3k tok/s | ETA 1m02s`, with
/// `| MFU 41.2% ` before the ETA where the MFU is known.
std::string formatProgressLine(const Progress &p);

/// Seconds left after `step` of `totalSteps`, from the elapsed time, by the
/// average step time so far. Returns NaN before the first step.
double estimateEta(uint64_t step, uint64_t totalSteps, double elapsedSec);

/// Redraws one progress line in place on a terminal stream.
class ProgressPrinter {
public:
  explicit ProgressPrinter(std::FILE *out = stderr) : out_(out) {}
  ProgressPrinter(const ProgressPrinter &) = delete;
  ProgressPrinter &operator=(const ProgressPrinter &) = delete;
  ~ProgressPrinter() { finish(); }

  /// Prints '\r' + the line, blank-padded over a longer previous line.
  void update(const Progress &p);
  /// Ends the line with '\n' if anything was drawn; idempotent.
  void finish();

private:
  std::FILE *out_;
  size_t lastWidth_ = 0;
  bool drawn_ = false;
};

} // namespace kiln::driver

#endif // KILN_RUNTIME_DRIVER_METRICS_H
