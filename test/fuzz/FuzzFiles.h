//===- FuzzFiles.h - scratch files for harnesses of path-based parsers ----===//
//
// Some parsers read files (mmap, safetensors shards of a checkpoint): a
// harness writes its input to a per-process scratch directory under /dev/shm
// (or TMPDIR) and points the parser at it.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TEST_FUZZ_FUZZFILES_H
#define KILN_TEST_FUZZ_FUZZFILES_H

#include "runtime/checkpoint/Checkpoint.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>
#include <sys/stat.h>
#include <unistd.h>

namespace kiln::fuzz {

/// A directory of this process's own, created once.
inline const std::string &scratchDir() {
  static const std::string dir = [] {
    struct stat st;
    std::string base = ::stat("/dev/shm", &st) == 0 ? "/dev/shm" : "/tmp";
    std::string d = base + "/kiln-fuzz-" + std::to_string(::getpid());
    ::mkdir(d.c_str(), 0700);
    return d;
  }();
  return dir;
}

/// Replaces `path` with `size` bytes of `data`.
inline void writeBytes(const std::string &path, const uint8_t *data, size_t size) {
  FILE *f = std::fopen(path.c_str(), "wb");
  if (!f)
    std::abort(); // the harness's own setup failed, not the parser
  if (size && std::fwrite(data, 1, size, f) != size)
    std::abort();
  std::fclose(f);
}

/// The whole file at `path` ("" when it cannot be read).
inline std::string readAll(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// A small valid checkpoint written to `dir` (checkpoint::save): step 3 of
/// spec "fuzz", two parameters and one moment. Returns its files relative to
/// `dir` (index, model shard, optimizer file, latest); `layout` gets the
/// tensors loadLatest expects.
inline std::vector<std::string> writeSampleCheckpoint(const std::string &dir,
                                                      std::vector<checkpoint::Tensor> &layout) {
  checkpoint::Checkpoint c;
  c.step = 3;
  c.rngState = 7;
  c.dataPosition = 9;
  c.specFingerprint = "fuzz";
  c.tensors = {{"model.norm.weight", {4}, {1, 2, 3, 4}},
               {"lm_head.weight", {2, 3}, {1, 2, 3, 4, 5, 6}},
               {"optimizer.exp_avg.model.norm.weight", {4}, {0.5f, 0.25f, 0, -1}}};
  std::string error;
  if (!checkpoint::save(dir, c, error))
    std::abort();
  layout.clear();
  for (const checkpoint::Tensor &t : c.tensors)
    layout.push_back({t.name, t.shape, {}});
  const std::string step = checkpoint::stepDirName(3) + "/";
  return {step + "model.safetensors.index.json", step + checkpoint::modelFileName(0, 1),
          step + checkpoint::optimizerFileName(0, 1), "latest"};
}

} // namespace kiln::fuzz

#endif // KILN_TEST_FUZZ_FUZZFILES_H
