//===- SystemMemory.h - How much memory this machine can give a run -*- C++ -*-===//
//
// A training run that allocates more than the machine has is killed by the
// kernel's OOM killer part-way (or swaps until it is useless), with nothing
// said about why. `train` and `kilnc -o` ask here first and refuse or warn.
//
// Available memory is the smaller of the kernel's estimate for new
// allocations (MemAvailable in /proc/meminfo, which counts reclaimable page
// cache) and the room left under this process's cgroup limit (v2
// memory.max - memory.current, or v1 memory.limit_in_bytes -
// memory.usage_in_bytes), since a container's limit is what the OOM killer
// enforces there.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_IO_SYSTEMMEMORY_H
#define KILN_RUNTIME_IO_SYSTEMMEMORY_H

#include <cstdint>
#include <optional>
#include <string>

namespace kiln::io {

struct AvailableMemory {
  uint64_t bytes = 0;
  std::string source; ///< where the figure came from, for messages
};

/// This machine's available memory, or nullopt where neither /proc/meminfo
/// nor a cgroup limit can be read (then callers do not check).
std::optional<AvailableMemory> availableMemory();

/// `bytes` as "12.3 GB" (decimal units, one decimal), for messages.
std::string formatBytes(uint64_t bytes);

} // namespace kiln::io

#endif // KILN_RUNTIME_IO_SYSTEMMEMORY_H
