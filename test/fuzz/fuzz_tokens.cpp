//===- fuzz_tokens.cpp - the llm.c and Megatron token readers on any bytes -===//
//
// The first byte picks the format: even, the rest is an llm.c shard; odd,
// the rest is split at a 4-byte little-endian length into a Megatron .idx
// and its .bin. Whatever opens must read every token it claims to hold.
//
//===----------------------------------------------------------------------===//

#include "test/fuzz/FuzzFiles.h"
#include "test/fuzz/Refusal.h"

#include "runtime/data/LlmcShard.h"
#include "runtime/data/MegatronIndexed.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

using namespace kiln::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  const bool megatron = data[0] & 1;
  ++data, --size;
  std::string error;
  std::vector<int64_t> tokens;
  if (!megatron) {
    const std::string path = scratchDir() + "/shard.bin";
    writeBytes(path, data, size);
    std::optional<kiln::data::LlmcShard> shard = kiln::data::LlmcShard::open(path, error, 256);
    if (!shard)
      checkRefusal(error);
    else if (shard->numTokens() > 0) {
      tokens.resize(shard->numTokens());
      shard->readTokens(0, shard->numTokens(), tokens.data());
    }
    return 0;
  }
  uint32_t idxSize = 0;
  if (size >= 4)
    std::memcpy(&idxSize, data, 4);
  data += size >= 4 ? 4 : size;
  size -= size >= 4 ? 4 : size;
  idxSize = idxSize > size ? uint32_t(size) : idxSize;
  const std::string prefix = scratchDir() + "/megatron";
  writeBytes(kiln::data::megatronIndexPath(prefix), data, idxSize);
  writeBytes(kiln::data::megatronDataPath(prefix), data + idxSize, size - idxSize);
  std::optional<kiln::data::MegatronIndexed> indexed =
      kiln::data::MegatronIndexed::open(prefix, error, 1000);
  if (!indexed)
    checkRefusal(error);
  else
    for (uint64_t s = 0; s < indexed->numSequences(); ++s) {
      tokens.resize(indexed->sequenceLength(s));
      if (!tokens.empty())
        indexed->readTokens(indexed->sequenceStart(s), tokens.size(), tokens.data());
    }
  return 0;
}
