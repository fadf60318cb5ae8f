//===- AtomicFile.h - crash-safe file replacement -------------------------===//
//
// Every file the runtime writes (checkpoints, their `latest` pointer, token
// shards, safetensors) is replaced atomically: written to "<path>.tmp.<pid>",
// fsynced, renamed over the path, and the directory fsynced. A crash or a
// SIGKILL at any point leaves either the old file or the new one, never a
// partial file under the real name.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_IO_ATOMICFILE_H
#define KILN_RUNTIME_IO_ATOMICFILE_H

#include <cstddef>
#include <string>
#include <vector>

namespace kiln::io {

/// One contiguous piece of a file being written.
struct ByteRange {
  const void *data;
  size_t size;
};

/// Writes the concatenation of `pieces` to "<path>.tmp.<pid>", fsyncs it,
/// renames it over `path` and fsyncs the directory. On failure the temp file
/// is removed and an existing file at `path` is left untouched (except when
/// only the final directory fsync fails, which is still reported).
bool writeFileAtomic(const std::string &path, const std::vector<ByteRange> &pieces,
                     std::string &error);

/// Whether writeFileAtomic could write `path` later: not a directory, and in
/// an existing directory this process may write to. A flag whose file is
/// written after minutes of work (--save-grads, --out) checks it first; the
/// error names `flag`, the path and what would be right.
bool checkWritablePath(const std::string &flag, const std::string &path, std::string &error);

} // namespace kiln::io

#endif // KILN_RUNTIME_IO_ATOMICFILE_H
