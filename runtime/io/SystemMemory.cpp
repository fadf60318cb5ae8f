//===- SystemMemory.cpp - How much memory this machine can give a run -----===//

#include "runtime/io/SystemMemory.h"

#include <cstdio>
#include <fstream>
#include <sstream>

namespace kiln::io {

namespace {

/// The first line of a small /proc or /sys file as an unsigned number;
/// nullopt for a missing file, "max" (no limit) or anything else.
std::optional<uint64_t> readNumber(const char *path) {
  std::ifstream in(path);
  std::string text;
  if (!in || !std::getline(in, text) || text.empty() ||
      text.find_first_not_of("0123456789") != std::string::npos || text.size() > 19)
    return std::nullopt;
  return std::stoull(text);
}

std::optional<uint64_t> memAvailable() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  uint64_t value = 0;
  while (in >> key >> value) {
    std::getline(in, unit);
    if (key == "MemAvailable:")
      return value * 1024; // the kernel writes kB meaning KiB
  }
  return std::nullopt;
}

/// Room left under the cgroup limit, if there is one.
std::optional<uint64_t> cgroupRoom(std::string &source) {
  struct Files {
    const char *limit, *usage;
  };
  // v2 (unified hierarchy), then v1. A v1 "no limit" is a huge number
  // (PAGE_COUNTER_MAX pages), larger than any machine.
  const Files files[] = {{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
                         {"/sys/fs/cgroup/memory/memory.limit_in_bytes",
                          "/sys/fs/cgroup/memory/memory.usage_in_bytes"}};
  for (const Files &f : files) {
    std::optional<uint64_t> limit = readNumber(f.limit), usage = readNumber(f.usage);
    if (!limit || !usage || *limit >= (uint64_t(1) << 62))
      continue;
    source = std::string("the cgroup limit in ") + f.limit;
    return *limit > *usage ? *limit - *usage : 0;
  }
  return std::nullopt;
}

} // namespace

std::optional<AvailableMemory> availableMemory() {
  std::optional<AvailableMemory> best;
  if (std::optional<uint64_t> bytes = memAvailable())
    best = AvailableMemory{*bytes, "MemAvailable in /proc/meminfo"};
  std::string cgroupSource;
  if (std::optional<uint64_t> room = cgroupRoom(cgroupSource))
    if (!best || *room < best->bytes)
      best = AvailableMemory{*room, cgroupSource};
  return best;
}

std::string formatBytes(uint64_t bytes) {
  const char *units[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
  double value = double(bytes);
  int unit = 0;
  while (value >= 1000 && unit < 6) {
    value /= 1000;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit ? "%.1f %s" : "%.0f %s", value, units[unit]);
  return text;
}

} // namespace kiln::io
