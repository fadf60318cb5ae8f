//===- fuzz_checkpoint.cpp - the checkpoint loader on any file contents ----===//
//
// A small valid checkpoint (one model file, one optimizer file) is written
// once; each input replaces one of its files, chosen by the first byte (the
// index, the model shard, the optimizer file or `latest`), and loadLatest()
// must refuse or load it without crashing, then the file is restored.
//
//===----------------------------------------------------------------------===//

#include "test/fuzz/FuzzFiles.h"
#include "test/fuzz/Refusal.h"

#include "runtime/checkpoint/Checkpoint.h"

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

using namespace kiln::checkpoint;
using namespace kiln::fuzz;

namespace {

struct Sample {
  std::string dir;
  std::vector<Tensor> layout;
  std::vector<std::string> files;     // relative to dir
  std::vector<std::string> originals; // their bytes
};


const Sample &sample() {
  static const Sample s = [] {
    Sample s;
    s.dir = scratchDir() + "/ckpt";
    s.files = writeSampleCheckpoint(s.dir, s.layout);
    for (const std::string &f : s.files)
      s.originals.push_back(readAll(s.dir + "/" + f));
    return s;
  }();
  return s;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const Sample &s = sample();
  if (size < 1)
    return 0;
  const size_t which = data[0] % s.files.size();
  const std::string path = s.dir + "/" + s.files[which];
  writeBytes(path, data + 1, size - 1);
  Checkpoint loaded;
  std::string error;
  if (!loadLatest(s.dir, s.layout, "fuzz", loaded, error, 0))
    checkRefusal(error);
  const std::string &original = s.originals[which];
  writeBytes(path, reinterpret_cast<const uint8_t *>(original.data()), original.size());
  return 0;
}
