//===- make_seeds.cpp - writes the seed corpora of the fuzz harnesses ------===//
//
// `make_seeds DIR` writes small valid inputs of every harness into
// DIR/<harness>/ with the project's own writers, so the seeds are exactly
// what Kiln produces. The committed corpora under test/fuzz/corpus/ came
// from it (plus the shipped specs); scripts/fuzz.sh runs it too.
//
//===----------------------------------------------------------------------===//

#include "test/fuzz/FuzzFiles.h"

#include "runtime/checkpoint/Checkpoint.h"
#include "runtime/data/LlmcShard.h"
#include "runtime/data/MegatronIndexed.h"
#include "runtime/safetensors/Safetensors.h"

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

void put(const std::string &path, const std::string &bytes) {
  kiln::fuzz::writeBytes(path, reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size());
}


std::string bytesOf(const std::vector<uint8_t> &v) { return std::string(v.begin(), v.end()); }

} // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds DIR\n");
    return 2;
  }
  const std::string out = argv[1];
  for (const std::string &dir : {out, out + "/checkpoint", out + "/safetensors", out + "/tokens"})
    ::mkdir(dir.c_str(), 0755);
  std::string error;
  // A checkpoint: its files are the checkpoint and safetensors seeds.
  const std::string ckpt = kiln::fuzz::scratchDir() + "/seed-ckpt";
  std::vector<kiln::checkpoint::Tensor> layout;
  const std::vector<std::string> files = kiln::fuzz::writeSampleCheckpoint(ckpt, layout);
  for (size_t i = 0; i < files.size(); ++i)
    put(out + "/checkpoint/seed-" + std::to_string(i),
        std::string(1, char(i)) + kiln::fuzz::readAll(ckpt + "/" + files[i]));
  put(out + "/safetensors/model", kiln::fuzz::readAll(ckpt + "/" + files[1]));
  put(out + "/safetensors/optimizer", kiln::fuzz::readAll(ckpt + "/" + files[2]));

  // Tokens: an llm.c shard, and a Megatron pair (length-prefixed .idx, .bin).
  put(out + "/tokens/llmc", std::string(1, '\0') + bytesOf(kiln::data::serializeLlmcShard({1, 2, 3, 250})));
  std::vector<uint8_t> index, data;
  if (!kiln::data::serializeMegatronIndexed(kiln::data::MegatronDType::UInt16, {{1, 2, 3}, {4, 5}},
                                            {0, 1, 2}, index, data, error)) {
    std::fprintf(stderr, "make_seeds: %s\n", error.c_str());
    return 1;
  }
  const uint32_t n = uint32_t(index.size());
  std::string prefix(1, '\1');
  prefix.append(reinterpret_cast<const char *>(&n), 4);
  put(out + "/tokens/megatron", prefix + bytesOf(index) + bytesOf(data));
  return 0;
}
