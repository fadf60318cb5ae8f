//===- TokenLoader.h - Deterministic, resumable next-token batches -*- C++ -*-===//
//
// Turns a token file into batches for next-token training. The file is read
// as one token stream:
//   - "<p>.bin" with a sibling "<p>.idx" (or "<p>.idx" itself) is a Megatron
//     indexed dataset; its sequences are concatenated in order;
//   - anything else is an llm.c shard.
//
// A batch is B rows of S + 1 tokens, row-major, so that row b gives the
// inputs tokens[b][0..S) and the targets tokens[b][1..S+1). As in llm.c's
// DataLoader, rows are consecutive windows that overlap by one token: with
// the stream t and position p, row b is t[p + b S .. p + b S + S], and each
// batch advances the position by B x S. Every token is thus the target of
// exactly one position per pass.
//
// The stream wraps: token index i reads t[i mod N]. A row that crosses the
// end continues with the first tokens (the last token of the file is
// followed by the first, like a document boundary); nothing is dropped.
//
// position() counts tokens consumed since the start of the stream (it does
// not wrap at N, so position() / N is the epoch) and seek() restores it:
// a run resumed with seek(savedPosition) reads exactly the batches the
// interrupted run would have read, even with another batch shape.
//
// fromMemory() serves a token vector the same way (the built-in synthetic
// corpus, which is generated rather than read), optionally with a 0/1 mask
// per token that next() hands out alongside the batch: the SFT answer mask.
// Files carry no mask.
//
// The order is deterministic and there is no shuffling for now: the batches
// are the file in order. Shuffling (of documents or windows, seeded) is a
// later addition and would become part of the saved state.
//
// Public functions never throw; see runtime/safetensors/Safetensors.h.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DATA_TOKENLOADER_H
#define KILN_RUNTIME_DATA_TOKENLOADER_H

#include "runtime/data/LlmcShard.h"
#include "runtime/data/MegatronIndexed.h"

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace kiln::data {

/// InMemory is a fromMemory() loader; detectTokenFileFormat() never picks it.
enum class TokenFileFormat { LlmcShard, MegatronIndexed, InMemory };

/// "llm.c shard", "Megatron indexed dataset" or "in-memory token stream".
const char *tokenFileFormatName(TokenFileFormat format);

/// The format open() would choose for `path` (by extension and the sibling
/// .idx), without opening anything else.
TokenFileFormat detectTokenFileFormat(const std::string &path);

class TokenLoader {
public:
  /// Opens `path` (see the file comment for the format choice) for batches
  /// of `rows` x (`seqLen` + 1) tokens. With `vocabSize`, every token id
  /// must be in [0, vocabSize). Fails if rows or seqLen is 0, if a batch
  /// would not fit in memory, or if the file has fewer than seqLen + 1
  /// tokens (a row would repeat the whole file).
  static std::optional<TokenLoader> open(const std::string &path, uint64_t rows, uint64_t seqLen,
                                         std::string &error,
                                         std::optional<uint64_t> vocabSize = std::nullopt);

  /// A loader over `tokens` held in memory, named `name` in messages, with
  /// the batching, wrapping and position semantics of open(). `mask` is
  /// empty or one 0/1 byte per token (e.g. SyntheticCorpus's answer mask).
  /// Fails like open() on a bad shape or too short a stream, if the mask's
  /// length differs from the tokens', or (with `vocabSize`) on a token id
  /// outside the vocabulary.
  static std::optional<TokenLoader> fromMemory(std::string name, std::vector<uint16_t> tokens,
                                               std::vector<uint8_t> mask, uint64_t rows,
                                               uint64_t seqLen, std::string &error,
                                               std::optional<uint64_t> vocabSize = std::nullopt);

  TokenFileFormat format() const { return format_; }
  /// True for a fromMemory() loader given a mask.
  bool hasMask() const;
  uint64_t rows() const { return rows_; }
  uint64_t seqLen() const { return seqLen_; }
  /// seqLen() + 1.
  uint64_t rowTokens() const { return seqLen_ + 1; }
  /// rows() x rowTokens().
  uint64_t batchTokens() const { return rows_ * (seqLen_ + 1); }
  /// N, the length of the stream.
  uint64_t numTokens() const { return numTokens_; }

  /// Tokens consumed so far: the stream index (before wrapping) of the next
  /// batch's first token.
  uint64_t position() const { return position_; }
  /// Makes the next batch start at stream index `position` (any value; it
  /// is taken mod numTokens() when reading).
  void seek(uint64_t position) { position_ = position; }

  /// Makes the next batches `rows` rows, at most the rows the loader was
  /// opened for (a batch-size rampup's smaller steps); false otherwise.
  bool setRows(uint64_t rows) {
    if (rows == 0 || rows > maxRows_)
      return false;
    rows_ = rows;
    return true;
  }

  /// Writes the next batch (batchTokens() ids, row-major) to `out` and
  /// advances position() by rows() x seqLen(). Fails only if the position
  /// would pass 2^64.
  bool next(int64_t *out, std::string &error);
  /// Same, and writes the mask of those tokens (batchTokens() bytes, laid
  /// out like `out`) to `maskOut` when it is not null: all 0 when the
  /// loader has no mask.
  bool next(int64_t *out, uint8_t *maskOut, std::string &error);
  /// Same as next(out, error), resizing `batch` to batchTokens().
  bool next(std::vector<int64_t> &batch, std::string &error);

  /// The path given to open() or the name given to fromMemory().
  const std::string &name() const { return name_; }

private:
  /// The fromMemory() source: the stream itself and its optional mask.
  struct MemoryTokens {
    std::vector<uint16_t> tokens;
    std::vector<uint8_t> mask;
    void readTokens(uint64_t begin, uint64_t count, int64_t *out) const {
      for (uint64_t i = 0; i < count; ++i)
        out[i] = tokens[begin + i];
    }
  };
  using Source = std::variant<LlmcShard, MegatronIndexed, MemoryTokens>;
  explicit TokenLoader(Source source) : source_(std::move(source)) {}
  /// Fails, naming `name`, unless a rows x (seqLen + 1) batch is valid and
  /// fits in memory.
  static bool checkShape(const std::string &name, uint64_t rows, uint64_t seqLen,
                         std::string &error);
  /// Copies stream tokens [begin, begin + count) with begin < N, wrapping.
  void readWrapped(uint64_t begin, uint64_t count, int64_t *out) const;
  /// Same for the mask; zeros when there is none.
  void readWrappedMask(uint64_t begin, uint64_t count, uint8_t *out) const;

  Source source_;
  std::string name_;
  TokenFileFormat format_ = TokenFileFormat::LlmcShard;
  uint64_t rows_ = 0, maxRows_ = 0, seqLen_ = 0, numTokens_ = 0, position_ = 0;
};

} // namespace kiln::data

#endif // KILN_RUNTIME_DATA_TOKENLOADER_H
