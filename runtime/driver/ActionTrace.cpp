//===- ActionTrace.cpp - train --trace: a Chrome trace of the steps -------===//

#include "runtime/driver/ActionTrace.h"

#include "runtime/comm/Communicator.h"
#include "runtime/io/AtomicFile.h"

#include <algorithm>
#include <cstdio>

namespace kiln::driver {

bool ActionTrace::start(comm::Communicator &world, std::string &error) {
  if (!world.barrier()) {
    error = world.error();
    return false;
  }
  zero_ = std::chrono::steady_clock::now();
  return true;
}

void ActionTrace::beginStep(uint64_t step) {
  step_ = step;
  stepStart_ = now();
  running_ = nullptr;
}

void ActionTrace::action(const char *name) {
  const double t = now();
  if (running_)
    events_.push_back({running_, step_, runningStart_, t, /*isStep=*/false});
  running_ = name;
  runningStart_ = t;
}

void ActionTrace::endStep() {
  action(nullptr);
  events_.push_back({"step " + std::to_string(step_), step_, stepStart_, now(), /*isStep=*/true});
}

/// `text` as a JSON string's contents (the names are the generated step's
/// literals, but a trace must parse whatever they hold).
static std::string escaped(const std::string &text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buffer[8];
      std::snprintf(buffer, sizeof(buffer), "\\u%04x", c);
      out += buffer;
    } else {
      out += c;
    }
  }
  return out;
}

std::string ActionTrace::eventsJson() const {
  std::string out;
  char buffer[160];
  // The rank's process and its two tracks, named.
  std::snprintf(buffer, sizeof(buffer),
                "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"args\":{\"name\":\"rank %d "
                "(pp stage %d, dp %d)\"}},\n",
                rank_, rank_, stage_, dpRank_);
  out += buffer;
  std::snprintf(buffer, sizeof(buffer),
                "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,\"args\":{\"name\":"
                "\"actions\"}},\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":1,"
                "\"args\":{\"name\":\"steps\"}}",
                rank_, rank_);
  out += buffer;
  for (const Event &e : events_) {
    const bool comm = e.name.find("SEND") != std::string::npos ||
                      e.name.find("RECV") != std::string::npos;
    const char *category = e.isStep                                          ? "step"
                           : comm                                            ? "comm"
                           : e.name == "prologue" || e.name == "epilogue" ? "outside"
                                                                             : "compute";
    std::snprintf(buffer, sizeof(buffer),
                  ",\n{\"name\":\"%s\",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":%d,\"tid\":%d,"
                  "\"ts\":%.3f,\"dur\":%.3f,\"args\":{\"step\":%llu}}",
                  escaped(e.name).c_str(), category, rank_, e.isStep ? 1 : 0, e.start,
                  e.end - e.start, (unsigned long long)e.step);
    out += buffer;
  }
  return out;
}

bool ActionTrace::write(comm::Communicator &world, const std::string &path, std::string &error) {
  // Every rank's JSON, padded to the longest, gathered on every rank (the
  // communicator has no gather to one rank; the traces are small).
  const std::string mine = eventsJson();
  int64_t longest = int64_t(mine.size());
  if (!world.allReduce(&longest, 1, comm::DType::I64, comm::ReduceOp::Max)) {
    error = world.error();
    return false;
  }
  std::vector<int8_t> padded(size_t(longest), 0), all(size_t(longest) * size_t(world.size()));
  std::copy(mine.begin(), mine.end(), padded.begin());
  if (!world.allGather(padded.data(), all.data(), size_t(longest), comm::DType::I8)) {
    error = world.error();
    return false;
  }
  if (world.rank() != 0)
    return true;
  std::string text = "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n";
  for (int r = 0; r < world.size(); ++r) {
    const char *begin = reinterpret_cast<const char *>(all.data()) + size_t(r) * size_t(longest);
    std::string rankJson(begin, std::find(begin, begin + longest, '\0'));
    text += (r ? ",\n" : "") + rankJson;
  }
  text += "\n]}\n";
  if (!io::writeFileAtomic(path, {{text.data(), text.size()}}, error)) {
    error = "--trace " + path + ": " + error;
    return false;
  }
  return true;
}

} // namespace kiln::driver
