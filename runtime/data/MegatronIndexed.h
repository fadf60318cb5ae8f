//===- MegatronIndexed.h - Strict Megatron .idx/.bin reader and writer -*- C++ -*-===//
//
// The on-disk pair of Megatron-LM's MMapIndexedDataset
// (megatron/core/datasets/indexed_dataset.py, _IndexWriter/_IndexReader),
// all little-endian:
//
//   <prefix>.idx:
//     9 bytes  magic "MMIDIDX\0\0"
//     uint64   version = 1
//     uint8    dtype code (1 uint8, 2 int8, 3 int16, 4 int32, 5 int64,
//              6 float64, 7 float32, 8 uint16)
//     uint64   sequence count S
//     uint64   document count D (entries of the document index, i.e.
//              documents + 1)
//     int32    sequence lengths[S]           (in tokens)
//     int64    sequence pointers[S]          (byte offsets into .bin)
//     int64    document indices[D]           (0, ..., S: sequence index
//                                             where each document starts,
//                                             then S)
//   <prefix>.bin: the sequences' tokens back to back, in the dtype.
//
// The reader is strict: wrong magic, version or dtype code (the float codes
// are refused: token ids are integers), sizes that disagree with the file
// (computed with overflow checks, so a corrupt count cannot wrap), negative
// lengths, pointers that are not the running sum of lengths x dtype size,
// document indices that do not start at 0, decrease or do not end at S, and
// a .bin whose size is not the total are each rejected with a message naming
// the file, the entry and what was expected. Megatron's multimodal variant
// (an int8 mode per sequence after the document indices) is recognised in
// the message but not read.
//
// Because pointers must be the running sum, a valid .bin is exactly the
// concatenation of the sequences, which is how TokenLoader reads it.
//
// Public functions never throw; see runtime/safetensors/Safetensors.h.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DATA_MEGATRONINDEXED_H
#define KILN_RUNTIME_DATA_MEGATRONINDEXED_H

#include "runtime/data/DataFile.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::data {

/// Megatron's DType codes (the enum values are the on-disk codes).
enum class MegatronDType : uint8_t {
  UInt8 = 1,
  Int8 = 2,
  Int16 = 3,
  Int32 = 4,
  Int64 = 5,
  Float64 = 6,
  Float32 = 7,
  UInt16 = 8,
};

/// "uint16" etc.; "unknown" for codes outside 1..8.
const char *megatronDTypeName(uint8_t code);
/// Bytes per element; 0 for codes outside 1..8.
size_t megatronDTypeSize(uint8_t code);
/// True for the integer codes 1, 2, 3, 4, 5, 8.
bool isMegatronTokenDType(uint8_t code);

/// The fixed part of the .idx: magic (9) + version (8) + dtype (1) +
/// sequence count (8) + document count (8).
constexpr uint64_t kMegatronIndexHeaderBytes = 34;
constexpr char kMegatronIndexMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', '\0', '\0'};

/// The .idx path for a prefix, and the .bin path.
inline std::string megatronIndexPath(const std::string &prefix) { return prefix + ".idx"; }
inline std::string megatronDataPath(const std::string &prefix) { return prefix + ".bin"; }

/// A validated .idx/.bin pair; the .bin is memory-mapped.
class MegatronIndexed {
public:
  /// Opens "<prefix>.idx" and "<prefix>.bin". Messages start with the path
  /// of the file at fault. With `vocabSize`, also requires every token id to
  /// be in [0, vocabSize) (see checkVocab()).
  static std::optional<MegatronIndexed> open(const std::string &prefix, std::string &error,
                                             std::optional<uint64_t> vocabSize = std::nullopt);

  MegatronDType dtype() const { return dtype_; }
  uint64_t numSequences() const { return starts_.size() - 1; }
  /// Length of sequence `i` in tokens; requires i < numSequences().
  uint64_t sequenceLength(uint64_t i) const { return starts_[i + 1] - starts_[i]; }
  /// Index of the first token of sequence `i` in the concatenated stream.
  uint64_t sequenceStart(uint64_t i) const { return starts_[i]; }
  /// The document index as stored: numDocuments() + 1 entries, from 0 to
  /// numSequences(); document d is sequences [docs[d], docs[d + 1]).
  const std::vector<uint64_t> &documentIndices() const { return documents_; }
  uint64_t numDocuments() const { return documents_.size() - 1; }
  /// Total tokens over all sequences.
  uint64_t numTokens() const { return starts_.back(); }

  /// Sequence `i` as int64 token ids. Fails (naming the index and the count)
  /// if i >= numSequences().
  bool readSequence(uint64_t i, std::vector<int64_t> &out, std::string &error) const;
  /// Copies tokens [begin, begin + count) of the concatenated stream to
  /// `out`; requires begin + count <= numTokens().
  void readTokens(uint64_t begin, uint64_t count, int64_t *out) const;
  /// Fails, naming the first offending token (sequence, offset, stream
  /// index) and its id, if any id is negative or >= vocabSize.
  bool checkVocab(uint64_t vocabSize, std::string &error) const;

  const std::string &indexPath() const { return indexPath_; }
  const std::string &dataPath() const { return dataPath_; }

private:
  explicit MegatronIndexed(MappedFile data) : data_(std::move(data)) {}

  MappedFile data_;
  std::string indexPath_, dataPath_;
  MegatronDType dtype_ = MegatronDType::UInt16;
  size_t elementSize_ = 2;
  std::vector<uint64_t> starts_; // numSequences() + 1 entries, in tokens.
  std::vector<uint64_t> documents_;
};

/// Builds the .idx and .bin bytes for `sequences` (each token must fit
/// `dtype`, an integer code) with `documentIndices` as stored (first 0, non-
/// decreasing, last sequences.size()); empty `documentIndices` means one
/// document per sequence. Fails, naming the offending value, otherwise.
bool serializeMegatronIndexed(MegatronDType dtype,
                              const std::vector<std::vector<int64_t>> &sequences,
                              const std::vector<uint64_t> &documentIndices,
                              std::vector<uint8_t> &index, std::vector<uint8_t> &data,
                              std::string &error);

/// Writes "<prefix>.bin" then "<prefix>.idx", each atomically. (If the .idx
/// write fails after the .bin was replaced, an old .idx may be left beside
/// the new .bin; the reader's size checks reject such a pair.)
bool writeMegatronIndexed(const std::string &prefix, MegatronDType dtype,
                          const std::vector<std::vector<int64_t>> &sequences,
                          const std::vector<uint64_t> &documentIndices, std::string &error);

} // namespace kiln::data

#endif // KILN_RUNTIME_DATA_MEGATRONINDEXED_H
