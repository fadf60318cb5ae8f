//===- TokenLoader.cpp - Deterministic, resumable next-token batches ------===//
//
// The format choice and the wrapping window walk described in TokenLoader.h.
//
//===----------------------------------------------------------------------===//

#include "runtime/data/TokenLoader.h"

#include <algorithm>
#include <limits>

namespace kiln::data {

namespace {

bool endsWith(const std::string &s, const char *suffix) {
  const std::string tail(suffix);
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

} // namespace

const char *tokenFileFormatName(TokenFileFormat format) {
  switch (format) {
  case TokenFileFormat::LlmcShard:
    return "llm.c shard";
  case TokenFileFormat::MegatronIndexed:
    return "Megatron indexed dataset";
  case TokenFileFormat::InMemory:
    break;
  }
  return "in-memory token stream";
}

TokenFileFormat detectTokenFileFormat(const std::string &path) {
  if (endsWith(path, ".idx"))
    return TokenFileFormat::MegatronIndexed;
  if (endsWith(path, ".bin") && isRegularFile(megatronIndexPath(path.substr(0, path.size() - 4))))
    return TokenFileFormat::MegatronIndexed;
  return TokenFileFormat::LlmcShard;
}

bool TokenLoader::checkShape(const std::string &name, uint64_t rows, uint64_t seqLen,
                             std::string &error) {
  if (rows == 0 || seqLen == 0) {
    error = name + ": batch of " + std::to_string(rows) + " rows x " + std::to_string(seqLen) +
            " positions; both must be at least 1";
    return false;
  }
  // The mask bytes are smaller than the int64 tokens, so this bounds both.
  uint64_t rowTokens, batchTokens;
  if (__builtin_add_overflow(seqLen, uint64_t(1), &rowTokens) ||
      __builtin_mul_overflow(rows, rowTokens, &batchTokens) ||
      batchTokens > std::numeric_limits<size_t>::max() / sizeof(int64_t)) {
    error = name + ": a batch of " + std::to_string(rows) + " rows x " + std::to_string(seqLen) +
            " + 1 tokens does not fit in memory";
    return false;
  }
  return true;
}

std::optional<TokenLoader> TokenLoader::open(const std::string &path, uint64_t rows,
                                             uint64_t seqLen, std::string &error,
                                             std::optional<uint64_t> vocabSize) {
  try {
    if (!checkShape(path, rows, seqLen, error))
      return std::nullopt;
    const uint64_t rowTokens = seqLen + 1;
    const TokenFileFormat format = detectTokenFileFormat(path);
    std::optional<Source> source;
    uint64_t numTokens = 0;
    if (format == TokenFileFormat::MegatronIndexed) {
      std::optional<MegatronIndexed> dataset =
          MegatronIndexed::open(path.substr(0, path.size() - 4), error, vocabSize);
      if (!dataset)
        return std::nullopt;
      numTokens = dataset->numTokens();
      source.emplace(std::in_place_type<MegatronIndexed>, std::move(*dataset));
    } else {
      std::optional<LlmcShard> shard = LlmcShard::open(path, error, vocabSize);
      if (!shard)
        return std::nullopt;
      numTokens = shard->numTokens();
      source.emplace(std::in_place_type<LlmcShard>, std::move(*shard));
    }
    if (numTokens < rowTokens) {
      error = path + ": the " + tokenFileFormatName(format) + " has " + std::to_string(numTokens) +
              " tokens, fewer than one row of seq_len + 1 = " + std::to_string(rowTokens) +
              "; use a bigger file or a shorter sequence";
      return std::nullopt;
    }
    TokenLoader loader(std::move(*source));
    loader.name_ = path;
    loader.format_ = format;
    loader.rows_ = loader.maxRows_ = rows;
    loader.seqLen_ = seqLen;
    loader.numTokens_ = numTokens;
    return std::optional<TokenLoader>(std::move(loader));
  } catch (...) {
    error = path + ": out of memory while opening the token loader";
    return std::nullopt;
  }
}

std::optional<TokenLoader> TokenLoader::fromMemory(std::string name, std::vector<uint16_t> tokens,
                                                   std::vector<uint8_t> mask, uint64_t rows,
                                                   uint64_t seqLen, std::string &error,
                                                   std::optional<uint64_t> vocabSize) {
  try {
    if (!checkShape(name, rows, seqLen, error))
      return std::nullopt;
    if (!mask.empty() && mask.size() != tokens.size()) {
      error = name + ": the mask has " + std::to_string(mask.size()) + " entries for " +
              std::to_string(tokens.size()) + " tokens; give one per token or none";
      return std::nullopt;
    }
    if (vocabSize) {
      for (size_t i = 0; i < tokens.size(); ++i) {
        if (tokens[i] >= *vocabSize) {
          error = name + ": token " + std::to_string(i) + " has id " + std::to_string(tokens[i]) +
                  ", outside the vocabulary of " + std::to_string(*vocabSize) +
                  " (ids must be below " + std::to_string(*vocabSize) + ")";
          return std::nullopt;
        }
      }
    }
    const uint64_t numTokens = tokens.size();
    if (numTokens < seqLen + 1) {
      error = name + ": the " + tokenFileFormatName(TokenFileFormat::InMemory) + " has " +
              std::to_string(numTokens) + " tokens, fewer than one row of seq_len + 1 = " +
              std::to_string(seqLen + 1) + "; use more tokens or a shorter sequence";
      return std::nullopt;
    }
    TokenLoader loader(MemoryTokens{std::move(tokens), std::move(mask)});
    loader.name_ = std::move(name);
    loader.format_ = TokenFileFormat::InMemory;
    loader.rows_ = loader.maxRows_ = rows;
    loader.seqLen_ = seqLen;
    loader.numTokens_ = numTokens;
    return std::optional<TokenLoader>(std::move(loader));
  } catch (...) {
    error = name + ": out of memory while making the in-memory token loader";
    return std::nullopt;
  }
}

bool TokenLoader::hasMask() const {
  const MemoryTokens *memory = std::get_if<MemoryTokens>(&source_);
  return memory && !memory->mask.empty();
}

void TokenLoader::readWrappedMask(uint64_t begin, uint64_t count, uint8_t *out) const {
  const MemoryTokens *memory = std::get_if<MemoryTokens>(&source_);
  if (!memory || memory->mask.empty()) {
    std::fill(out, out + count, uint8_t(0));
    return;
  }
  while (count > 0) {
    const uint64_t run = std::min(count, numTokens_ - begin);
    std::copy(memory->mask.begin() + begin, memory->mask.begin() + begin + run, out);
    out += run;
    count -= run;
    begin = 0;
  }
}

void TokenLoader::readWrapped(uint64_t begin, uint64_t count, int64_t *out) const {
  while (count > 0) {
    const uint64_t run = std::min(count, numTokens_ - begin);
    std::visit([&](const auto &s) { s.readTokens(begin, run, out); }, source_);
    out += run;
    count -= run;
    begin = 0;
  }
}

bool TokenLoader::next(int64_t *out, std::string &error) { return next(out, nullptr, error); }

bool TokenLoader::next(int64_t *out, uint8_t *maskOut, std::string &error) {
  const uint64_t advance = rows_ * seqLen_; // Cannot wrap: checked in open().
  if (position_ > std::numeric_limits<uint64_t>::max() - advance) {
    error = name_ + ": position " + std::to_string(position_) +
            " cannot advance by another batch without passing 2^64";
    return false;
  }
  const uint64_t rowTokens = seqLen_ + 1;
  uint64_t start = position_ % numTokens_;
  for (uint64_t b = 0; b < rows_; ++b) {
    readWrapped(start, rowTokens, out + b * rowTokens);
    if (maskOut)
      readWrappedMask(start, rowTokens, maskOut + b * rowTokens);
    start = (start + seqLen_ % numTokens_) % numTokens_;
  }
  position_ += advance;
  return true;
}

bool TokenLoader::next(std::vector<int64_t> &batch, std::string &error) {
  try {
    batch.resize(batchTokens());
  } catch (...) {
    error = name_ + ": out of memory for a batch of " + std::to_string(batchTokens()) + " tokens";
    return false;
  }
  return next(batch.data(), error);
}

} // namespace kiln::data
