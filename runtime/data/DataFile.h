//===- DataFile.h - Mapped reading and atomic writing of token files -*- C++ -*-===//
//
// The file plumbing shared by the token formats (LlmcShard, MegatronIndexed):
// a read-only memory map of a whole file, little-endian loads that do not
// depend on the host's byte order or on alignment, and a writer that replaces
// a file atomically (temp file, fsync, rename, fsync of the directory) so a
// crash never leaves a half-written shard under the final name.
//
// Token files are mapped rather than read because a pretraining shard is
// hundreds of megabytes and the loader touches it sequentially; the kernel's
// page cache does the buffering. Like the rest of runtime/, nothing here lets
// an exception escape: failures come back as false/nullopt plus a message
// that starts with the path.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DATA_DATAFILE_H
#define KILN_RUNTIME_DATA_DATAFILE_H

#include "runtime/io/AtomicFile.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::data {

/// A whole file mapped read-only. Move-only; unmaps on destruction. An empty
/// file is valid and has data() == nullptr, size() == 0.
class MappedFile {
public:
  /// Maps `path`. Fails, naming the path and the system error, if it cannot
  /// be opened, is not a regular file or cannot be mapped.
  static std::optional<MappedFile> open(const std::string &path, std::string &error);

  MappedFile(MappedFile &&other) noexcept;
  MappedFile &operator=(MappedFile &&other) noexcept;
  MappedFile(const MappedFile &) = delete;
  MappedFile &operator=(const MappedFile &) = delete;
  ~MappedFile();

  const uint8_t *data() const { return data_; }
  uint64_t size() const { return size_; }

private:
  MappedFile() = default;
  void release();

  const uint8_t *data_ = nullptr;
  uint64_t size_ = 0;
};

// Token files are written through the runtime's one atomic writer.
using io::ByteRange;
using io::writeFileAtomic;

/// True if `path` names an existing regular file (following symlinks).
bool isRegularFile(const std::string &path);

/// Little-endian loads from possibly unaligned bytes.
inline uint16_t loadLE16(const uint8_t *p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline uint32_t loadLE32(const uint8_t *p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}
inline uint64_t loadLE64(const uint8_t *p) {
  return static_cast<uint64_t>(loadLE32(p)) | static_cast<uint64_t>(loadLE32(p + 4)) << 32;
}

/// Little-endian stores, appended to `out`.
inline void appendLE(std::vector<uint8_t> &out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i)
    out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

} // namespace kiln::data

#endif // KILN_RUNTIME_DATA_DATAFILE_H
