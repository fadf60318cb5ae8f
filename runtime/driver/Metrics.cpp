//===- Metrics.cpp - Per-step metrics: jsonl log and live progress line ---===//

#include "runtime/driver/Metrics.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>

namespace kiln::driver {

std::string formatJsonNumber(double value) {
  if (!std::isfinite(value))
    return "null";
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

std::string formatMetricsLine(const StepMetrics &m) {
  std::string line = "{\"step\":" + std::to_string(m.step);
  line += ",\"loss\":" + formatJsonNumber(m.loss);
  line += ",\"main_loss\":" + formatJsonNumber(m.mainLoss);
  line += ",\"lr\":" + formatJsonNumber(m.lr);
  line += ",\"grad_norm\":" + formatJsonNumber(m.gradNorm);
  line += ",\"tokens_per_s\":" + formatJsonNumber(m.tokensPerSec);
  if (std::isfinite(m.mfu))
    line += ",\"mfu\":" + formatJsonNumber(m.mfu);
  line += ",\"elapsed_s\":" + formatJsonNumber(m.elapsedSec);
  if (m.globalBatch > 0) {
    line += ",\"global_batch\":" + std::to_string(m.globalBatch);
    line += ",\"consumed_samples\":" + std::to_string(m.consumedSamples);
  }
  if (m.multiRank) {
    line += ",\"comm_s\":" + formatJsonNumber(m.commSec);
    line += ",\"comm_bytes\":" + std::to_string(m.commBytes);
  }
  if (m.expertCapacity) {
    line += ",\"routed_rows\":" + std::to_string(m.routedRows);
    line += ",\"dropped_rows\":" + std::to_string(m.droppedRows);
  }
  if (m.allToAllBytesPredicted > 0) {
    line += ",\"all_to_all_bytes\":" + std::to_string(m.allToAllBytes);
    line += ",\"all_to_all_bytes_dropless\":" + std::to_string(m.allToAllBytesPredicted);
  }
  if (m.gradBytesSent > 0) {
    line += ",\"grad_bytes_sent\":" + std::to_string(m.gradBytesSent);
    line += ",\"grad_bytes_uncompressed\":" + std::to_string(m.gradBytesUncompressed);
  }
  if (m.lossScaling) {
    line += ",\"loss_scale\":" + formatJsonNumber(m.lossScale);
    line += std::string(",\"skipped\":") + (m.skipped ? "true" : "false");
  }
  if (m.grpo) {
    line += ",\"reward_mean\":" + formatJsonNumber(m.rewardMean);
    line += ",\"reward_std\":" + formatJsonNumber(m.rewardStd);
    line += ",\"accuracy\":" + formatJsonNumber(m.accuracy);
    line += ",\"format_rate\":" + formatJsonNumber(m.formatRate);
    line += ",\"response_length\":" + formatJsonNumber(m.responseLength);
    line += ",\"kl\":" + formatJsonNumber(m.kl);
    line += ",\"clip_fraction\":" + formatJsonNumber(m.clipFraction);
    line += ",\"tied_groups\":" + formatJsonNumber(m.tiedGroups);
    line += ",\"generation_tokens_per_s\":" + formatJsonNumber(m.generationTokensPerSec);
  }
  line += "}";
  return line;
}

std::optional<MetricsLog> MetricsLog::open(const std::string &path, bool append,
                                           std::string &error) {
  std::FILE *file = std::fopen(path.c_str(), append ? "ab" : "wb");
  if (!file) {
    error = path + ": cannot open metrics log for writing: " + std::strerror(errno);
    return std::nullopt;
  }
  MetricsLog log;
  log.file_ = file;
  log.path_ = path;
  return log;
}

MetricsLog::MetricsLog(MetricsLog &&other) noexcept
    : file_(other.file_), path_(std::move(other.path_)) {
  other.file_ = nullptr;
}

MetricsLog &MetricsLog::operator=(MetricsLog &&other) noexcept {
  if (this != &other) {
    close();
    file_ = other.file_;
    path_ = std::move(other.path_);
    other.file_ = nullptr;
  }
  return *this;
}

MetricsLog::~MetricsLog() { close(); }

void MetricsLog::close() {
  if (file_)
    std::fclose(file_);
  file_ = nullptr;
}

bool MetricsLog::write(const StepMetrics &m, std::string &error) {
  if (!file_) {
    error = path_ + ": metrics log is not open";
    return false;
  }
  std::string line = formatMetricsLine(m) + "\n";
  errno = 0;
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() ||
      std::fflush(file_) != 0) {
    error = path_ + ": cannot write metrics log: " +
            (errno ? std::strerror(errno) : "short write");
    std::clearerr(file_);
    return false;
  }
  return true;
}

std::string formatEta(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0)
    return "--";
  double rounded = std::floor(seconds + 0.5);
  if (rounded > 1e15) // far beyond any run; keep the integer cast defined
    return "--";
  uint64_t total = uint64_t(rounded);
  char buffer[48];
  if (total < 60)
    std::snprintf(buffer, sizeof(buffer), "%llus", (unsigned long long)total);
  else if (total < 3600)
    std::snprintf(buffer, sizeof(buffer), "%llum%02llus", (unsigned long long)(total / 60),
                  (unsigned long long)(total % 60));
  else
    std::snprintf(buffer, sizeof(buffer), "%lluh%02llum", (unsigned long long)(total / 3600),
                  (unsigned long long)(total % 3600 / 60));
  return buffer;
}

std::string formatRate(double perSecond) {
  if (!std::isfinite(perSecond) || perSecond < 0)
    return "--";
  char buffer[48];
  // Thresholds sit where rounding to one decimal would reach 1000 of a unit.
  if (perSecond < 999.5)
    std::snprintf(buffer, sizeof(buffer), "%.0f", perSecond);
  else if (perSecond < 999.95e3)
    std::snprintf(buffer, sizeof(buffer), "%.1fk", perSecond / 1e3);
  else if (perSecond < 999.95e6)
    std::snprintf(buffer, sizeof(buffer), "%.1fM", perSecond / 1e6);
  else
    std::snprintf(buffer, sizeof(buffer), "%.1fG", perSecond / 1e9);
  return buffer;
}

std::string formatProgressLine(const Progress &p) {
  char buffer[256];
  std::snprintf(buffer, sizeof(buffer), "step %llu/%llu | loss %.4f | lr %.2e | grad %.2f | ",
                (unsigned long long)p.step, (unsigned long long)p.totalSteps, p.loss, p.lr,
                p.gradNorm);
  std::string mfu;
  if (std::isfinite(p.mfu)) {
    char percent[32];
    std::snprintf(percent, sizeof(percent), " | MFU %.1f%%", 100.0 * p.mfu);
    mfu = percent;
  }
  return buffer + formatRate(p.tokensPerSec) + " tok/s" + mfu + " | ETA " + formatEta(p.etaSec);
}

double estimateEta(uint64_t step, uint64_t totalSteps, double elapsedSec) {
  if (step == 0)
    return std::nan("");
  if (step >= totalSteps)
    return 0;
  return elapsedSec / double(step) * double(totalSteps - step);
}

void ProgressPrinter::update(const Progress &p) {
  std::string line = formatProgressLine(p);
  size_t width = line.size();
  if (width < lastWidth_)
    line.append(lastWidth_ - width, ' ');
  lastWidth_ = width;
  std::fputc('\r', out_);
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
  drawn_ = true;
}

void ProgressPrinter::finish() {
  if (!drawn_)
    return;
  std::fputc('\n', out_);
  std::fflush(out_);
  drawn_ = false;
  lastWidth_ = 0;
}

} // namespace kiln::driver
