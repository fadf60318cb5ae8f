//===- LlmcShard.h - Strict reader and writer for llm.c token shards -*- C++ -*-===//
//
// The token shard format of karpathy/llm.c (dev/data/data_common.py,
// write_datafile with the "gpt-2" descriptor):
//
//   int32 little-endian header[256]:
//     header[0] = 20240520 (magic)
//     header[1] = 1        (version: tokens are uint16)
//     header[2] = N        (number of tokens, 0 <= N < 2^31)
//     header[3..255]       unused (written as 0, not checked)
//   uint16 little-endian tokens[N]
//
// The reader is strict: a short file, a wrong magic, another version, a size
// that disagrees with N (truncated copy or trailing bytes) and, when a
// vocabulary size is given, a token id outside it are each rejected with a
// message naming the file, what was found and what would be right. llm.c's
// other descriptors (llama-3: magic 20240801, version 7, uint32 tokens) and
// its eval files (magic 20240522) are recognised in the message but not read.
//
// Public functions never throw; see runtime/safetensors/Safetensors.h.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DATA_LLMCSHARD_H
#define KILN_RUNTIME_DATA_LLMCSHARD_H

#include "runtime/data/DataFile.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::data {

constexpr int32_t kLlmcMagic = 20240520;
constexpr int32_t kLlmcVersion = 1;
constexpr uint64_t kLlmcHeaderInts = 256;
constexpr uint64_t kLlmcHeaderBytes = kLlmcHeaderInts * 4;
/// header[2] is an int32, so a shard holds fewer than 2^31 tokens.
constexpr uint64_t kLlmcMaxTokens = (uint64_t(1) << 31) - 1;

/// A validated llm.c shard, memory-mapped.
class LlmcShard {
public:
  /// Maps and validates `path`. With `vocabSize`, also requires every token
  /// id to be below it (see checkVocab()). Messages start with `path`.
  static std::optional<LlmcShard> open(const std::string &path, std::string &error,
                                       std::optional<uint64_t> vocabSize = std::nullopt);

  uint64_t numTokens() const { return numTokens_; }
  /// Token `i`; requires i < numTokens().
  uint16_t token(uint64_t i) const { return loadLE16(tokens() + 2 * i); }
  /// Copies tokens [begin, begin + count) to `out`; requires
  /// begin + count <= numTokens().
  void readTokens(uint64_t begin, uint64_t count, int64_t *out) const;
  /// Fails, naming the first offending index and its id, if any token is
  /// >= vocabSize.
  bool checkVocab(uint64_t vocabSize, std::string &error) const;
  /// The path given to open(), used as the prefix of messages.
  const std::string &name() const { return name_; }

private:
  LlmcShard(MappedFile file, std::string name, uint64_t numTokens)
      : file_(std::move(file)), name_(std::move(name)), numTokens_(numTokens) {}
  const uint8_t *tokens() const { return file_.data() + kLlmcHeaderBytes; }

  MappedFile file_;
  std::string name_;
  uint64_t numTokens_ = 0;
};

/// The bytes of a shard holding `tokens` (header as llm.c writes it).
/// Requires tokens.size() <= kLlmcMaxTokens.
std::vector<uint8_t> serializeLlmcShard(const std::vector<uint16_t> &tokens);

/// Writes `tokens` as an llm.c shard at `path`, atomically (writeFileAtomic).
/// Fails without touching `path` if there are more than kLlmcMaxTokens.
bool writeLlmcShard(const std::string &path, const std::vector<uint16_t> &tokens,
                    std::string &error);

} // namespace kiln::data

#endif // KILN_RUNTIME_DATA_LLMCSHARD_H
