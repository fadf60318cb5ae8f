//===- LlmcShard.cpp - Strict reader and writer for llm.c token shards ----===//
//
// Validation order follows the file: length of the header, magic, version,
// token count, then the total size, so the first message a user sees names
// the first thing that is wrong.
//
//===----------------------------------------------------------------------===//

#include "runtime/data/LlmcShard.h"

namespace kiln::data {

namespace {

/// What a wrong magic probably means, for the message.
std::string magicHint(int32_t magic, const uint8_t *bytes) {
  if (magic == 20240801)
    return " (20240801 is llm.c's llama-3 format with uint32 tokens, which Kiln does not read)";
  if (magic == 20240522)
    return " (20240522 is an llm.c eval file, e.g. HellaSwag, not a token shard)";
  if (std::string(reinterpret_cast<const char *>(bytes), 7) == "MMIDIDX")
    return " (this is a Megatron .idx file; pass the matching .bin path instead)";
  return "";
}

} // namespace

std::optional<LlmcShard> LlmcShard::open(const std::string &path, std::string &error,
                                         std::optional<uint64_t> vocabSize) {
  try {
    std::optional<MappedFile> file = MappedFile::open(path, error);
    if (!file)
      return std::nullopt;
    const uint64_t size = file->size();
    const uint8_t *p = file->data();
    if (size < kLlmcHeaderBytes) {
      error = path + ": file is " + std::to_string(size) + " bytes, shorter than the " +
              std::to_string(kLlmcHeaderBytes) +
              "-byte llm.c header (256 int32); not an llm.c token shard or truncated";
      return std::nullopt;
    }
    const int32_t magic = static_cast<int32_t>(loadLE32(p));
    if (magic != kLlmcMagic) {
      error = path + ": bad magic " + std::to_string(magic) + " in header[0]; an llm.c token " +
              "shard starts with " + std::to_string(kLlmcMagic) + magicHint(magic, p);
      return std::nullopt;
    }
    const int32_t version = static_cast<int32_t>(loadLE32(p + 4));
    if (version != kLlmcVersion) {
      error = path + ": unsupported version " + std::to_string(version) +
              " in header[1]; Kiln reads version " + std::to_string(kLlmcVersion) +
              " (uint16 tokens)";
      return std::nullopt;
    }
    const int32_t count = static_cast<int32_t>(loadLE32(p + 8));
    if (count < 0) {
      error = path + ": negative token count " + std::to_string(count) +
              " in header[2]; it must be between 0 and " + std::to_string(kLlmcMaxTokens);
      return std::nullopt;
    }
    const uint64_t numTokens = static_cast<uint64_t>(count);
    const uint64_t expected = kLlmcHeaderBytes + 2 * numTokens;
    if (size != expected) {
      const bool truncated = size < expected;
      error = path + ": header[2] says " + std::to_string(numTokens) + " tokens, so the file " +
              "should be " + std::to_string(expected) + " bytes (1024-byte header + 2 per " +
              "token), but it is " + std::to_string(size) + " bytes" +
              (truncated ? " (truncated: " + std::to_string(expected - size) + " bytes missing)"
                         : " (" + std::to_string(size - expected) + " trailing bytes)");
      return std::nullopt;
    }
    LlmcShard shard(std::move(*file), path, numTokens);
    if (vocabSize && !shard.checkVocab(*vocabSize, error))
      return std::nullopt;
    return std::optional<LlmcShard>(std::move(shard));
  } catch (...) {
    error = path + ": out of memory while opening the llm.c shard";
    return std::nullopt;
  }
}

void LlmcShard::readTokens(uint64_t begin, uint64_t count, int64_t *out) const {
  const uint8_t *p = tokens() + 2 * begin;
  for (uint64_t i = 0; i < count; ++i)
    out[i] = loadLE16(p + 2 * i);
}

bool LlmcShard::checkVocab(uint64_t vocabSize, std::string &error) const {
  const uint8_t *p = tokens();
  for (uint64_t i = 0; i < numTokens_; ++i) {
    const uint16_t id = loadLE16(p + 2 * i);
    if (id >= vocabSize) {
      try {
        error = name_ + ": token " + std::to_string(i) + " has id " + std::to_string(id) +
                ", outside the vocabulary of " + std::to_string(vocabSize) +
                " (ids must be below " + std::to_string(vocabSize) +
                "); the shard was tokenized for a different model";
      } catch (...) {
      }
      return false;
    }
  }
  return true;
}

std::vector<uint8_t> serializeLlmcShard(const std::vector<uint16_t> &tokens) {
  std::vector<uint8_t> out;
  out.reserve(kLlmcHeaderBytes + 2 * tokens.size());
  appendLE(out, static_cast<uint32_t>(kLlmcMagic), 4);
  appendLE(out, static_cast<uint32_t>(kLlmcVersion), 4);
  appendLE(out, static_cast<uint32_t>(tokens.size()), 4);
  out.resize(kLlmcHeaderBytes, 0);
  for (uint16_t t : tokens)
    appendLE(out, t, 2);
  return out;
}

bool writeLlmcShard(const std::string &path, const std::vector<uint16_t> &tokens,
                    std::string &error) {
  try {
    if (tokens.size() > kLlmcMaxTokens) {
      error = path + ": " + std::to_string(tokens.size()) + " tokens do not fit one llm.c " +
              "shard (header[2] is an int32: at most " + std::to_string(kLlmcMaxTokens) +
              "); split them across shards";
      return false;
    }
    std::vector<uint8_t> bytes = serializeLlmcShard(tokens);
    return writeFileAtomic(path, {{bytes.data(), bytes.size()}}, error);
  } catch (...) {
    error = path + ": out of memory while writing the llm.c shard";
    return false;
  }
}

} // namespace kiln::data
