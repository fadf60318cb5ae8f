//===- MegatronIndexed.cpp - Strict Megatron .idx/.bin reader and writer --===//
//
// Validation follows the .idx front to back (magic, version, dtype, counts
// against the file size, lengths, pointers, document indices) and ends with
// the .bin size, so the first message names the first thing that is wrong.
//
//===----------------------------------------------------------------------===//

#include "runtime/data/MegatronIndexed.h"

#include <cstring>
#include <limits>

namespace kiln::data {

namespace {

/// Printable form of the 9 magic bytes: "MMIDIDX\x00\x00".
std::string escapeBytes(const uint8_t *p, size_t n) {
  static const char hex[] = "0123456789abcdef";
  std::string out = "\"";
  for (size_t i = 0; i < n; ++i) {
    if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\') {
      out += static_cast<char>(p[i]);
    } else {
      out += "\\x";
      out += hex[p[i] >> 4];
      out += hex[p[i] & 0xF];
    }
  }
  return out + "\"";
}

const char *const kTokenDTypeList =
    "1 (uint8), 2 (int8), 3 (int16), 4 (int32), 5 (int64) or 8 (uint16)";

/// Reads element `i` of a little-endian array of `code` at `p`.
int64_t loadElement(uint8_t code, const uint8_t *p, uint64_t i) {
  switch (static_cast<MegatronDType>(code)) {
  case MegatronDType::UInt8: return p[i];
  case MegatronDType::Int8: return static_cast<int8_t>(p[i]);
  case MegatronDType::Int16: return static_cast<int16_t>(loadLE16(p + 2 * i));
  case MegatronDType::UInt16: return loadLE16(p + 2 * i);
  case MegatronDType::Int32: return static_cast<int32_t>(loadLE32(p + 4 * i));
  case MegatronDType::Int64: return static_cast<int64_t>(loadLE64(p + 8 * i));
  default: return 0; // Float codes never get past open().
  }
}

template <typename Load>
void copyElements(const uint8_t *p, uint64_t count, int64_t *out, Load load) {
  for (uint64_t i = 0; i < count; ++i)
    out[i] = load(p, i);
}

bool fitsDType(MegatronDType dtype, int64_t v) {
  switch (dtype) {
  case MegatronDType::UInt8: return v >= 0 && v <= 255;
  case MegatronDType::Int8: return v >= -128 && v <= 127;
  case MegatronDType::Int16: return v >= -32768 && v <= 32767;
  case MegatronDType::UInt16: return v >= 0 && v <= 65535;
  case MegatronDType::Int32:
    return v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max();
  case MegatronDType::Int64: return true;
  default: return false;
  }
}

} // namespace

const char *megatronDTypeName(uint8_t code) {
  switch (code) {
  case 1: return "uint8";
  case 2: return "int8";
  case 3: return "int16";
  case 4: return "int32";
  case 5: return "int64";
  case 6: return "float64";
  case 7: return "float32";
  case 8: return "uint16";
  default: return "unknown";
  }
}

size_t megatronDTypeSize(uint8_t code) {
  switch (code) {
  case 1:
  case 2: return 1;
  case 3:
  case 8: return 2;
  case 4:
  case 7: return 4;
  case 5:
  case 6: return 8;
  default: return 0;
  }
}

bool isMegatronTokenDType(uint8_t code) {
  return code == 1 || code == 2 || code == 3 || code == 4 || code == 5 || code == 8;
}

std::optional<MegatronIndexed> MegatronIndexed::open(const std::string &prefix, std::string &error,
                                                     std::optional<uint64_t> vocabSize) {
  const std::string idxPath = megatronIndexPath(prefix);
  try {
    const std::string binPath = megatronDataPath(prefix);
    std::optional<MappedFile> idx = MappedFile::open(idxPath, error);
    if (!idx)
      return std::nullopt;
    const uint8_t *p = idx->data();
    const uint64_t size = idx->size();
    if (size < kMegatronIndexHeaderBytes) {
      error = idxPath + ": file is " + std::to_string(size) + " bytes, shorter than the " +
              std::to_string(kMegatronIndexHeaderBytes) + "-byte Megatron index header " +
              "(magic, version, dtype, sequence and document counts)";
      return std::nullopt;
    }
    if (std::memcmp(p, kMegatronIndexMagic, 9) != 0) {
      error = idxPath + ": bad magic " + escapeBytes(p, 9) + "; a Megatron index starts with " +
              escapeBytes(reinterpret_cast<const uint8_t *>(kMegatronIndexMagic), 9);
      return std::nullopt;
    }
    const uint64_t version = loadLE64(p + 9);
    if (version != 1) {
      error = idxPath + ": unsupported index version " + std::to_string(version) +
              "; Megatron's MMapIndexedDataset writes version 1";
      return std::nullopt;
    }
    const uint8_t code = p[17];
    if (!isMegatronTokenDType(code)) {
      error = idxPath + ": dtype code " + std::to_string(code) + " (" + megatronDTypeName(code) +
              ") " +
              (megatronDTypeSize(code) ? "is not an integer type" : "is not a Megatron dtype") +
              "; token ids need " + kTokenDTypeList;
      return std::nullopt;
    }
    const uint64_t elementSize = megatronDTypeSize(code);
    const uint64_t numSeq = loadLE64(p + 18);
    const uint64_t numDocEntries = loadLE64(p + 26);

    // 34 + 4 S + 8 S + 8 D, refusing counts whose sizes wrap.
    uint64_t seqBytes, docBytes, expected;
    if (__builtin_mul_overflow(numSeq, uint64_t(12), &seqBytes) ||
        __builtin_mul_overflow(numDocEntries, uint64_t(8), &docBytes) ||
        __builtin_add_overflow(seqBytes, docBytes, &expected) ||
        __builtin_add_overflow(expected, kMegatronIndexHeaderBytes, &expected)) {
      error = idxPath + ": header says " + std::to_string(numSeq) + " sequences and " +
              std::to_string(numDocEntries) + " document indices, which would need more than " +
              "2^64 bytes; the header is corrupt";
      return std::nullopt;
    }
    if (size != expected) {
      std::string what = idxPath + ": header says " + std::to_string(numSeq) + " sequences and " +
                         std::to_string(numDocEntries) + " document indices, so the file " +
                         "should be " + std::to_string(expected) + " bytes (34 + 12 per " +
                         "sequence + 8 per document index), but it is " + std::to_string(size) +
                         " bytes";
      if (size < expected)
        what += " (truncated: " + std::to_string(expected - size) + " bytes missing)";
      else if (numSeq > 0 && size - expected == numSeq)
        what += " (one extra byte per sequence: a multimodal index with sequence modes, which "
                "Kiln does not read)";
      else
        what += " (" + std::to_string(size - expected) + " trailing bytes)";
      error = what;
      return std::nullopt;
    }

    const uint8_t *lengths = p + kMegatronIndexHeaderBytes;
    const uint8_t *pointers = lengths + 4 * numSeq;
    const uint8_t *documents = pointers + 8 * numSeq;

    std::vector<uint64_t> starts(numSeq + 1);
    uint64_t tokens = 0, bytes = 0;
    for (uint64_t i = 0; i < numSeq; ++i) {
      const int32_t length = static_cast<int32_t>(loadLE32(lengths + 4 * i));
      if (length < 0) {
        error = idxPath + ": sequence " + std::to_string(i) + " has negative length " +
                std::to_string(length);
        return std::nullopt;
      }
      const int64_t pointer = static_cast<int64_t>(loadLE64(pointers + 8 * i));
      if (pointer < 0 || static_cast<uint64_t>(pointer) != bytes) {
        error = idxPath + ": sequence " + std::to_string(i) + " has pointer " +
                std::to_string(pointer) + " but should start at byte " + std::to_string(bytes) +
                " (the sum of the lengths before it x " + std::to_string(elementSize) +
                " bytes per " + megatronDTypeName(code) + "); the sequences must be back to back";
        return std::nullopt;
      }
      starts[i] = tokens;
      // tokens <= bytes <= 2^63 before this, and length < 2^31: no wrap.
      tokens += static_cast<uint64_t>(length);
      if (__builtin_mul_overflow(tokens, elementSize, &bytes) ||
          bytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        error = idxPath + ": the sequences up to " + std::to_string(i) + " total more than " +
                "2^63 bytes; the lengths are corrupt";
        return std::nullopt;
      }
    }
    starts[numSeq] = tokens;

    std::vector<uint64_t> docs(numDocEntries);
    for (uint64_t d = 0; d < numDocEntries; ++d) {
      const int64_t v = static_cast<int64_t>(loadLE64(documents + 8 * d));
      if (d == 0 && v != 0) {
        error = idxPath + ": document index 0 is " + std::to_string(v) +
                "; the document indices start with 0";
        return std::nullopt;
      }
      if (d > 0 && v < static_cast<int64_t>(docs[d - 1])) {
        error = idxPath + ": document index " + std::to_string(d) + " is " + std::to_string(v) +
                ", less than index " + std::to_string(d - 1) + " (" + std::to_string(docs[d - 1]) +
                "); document indices must be non-decreasing";
        return std::nullopt;
      }
      docs[d] = static_cast<uint64_t>(v);
    }
    if (numDocEntries == 0 || docs.back() != numSeq) {
      error = idxPath + ": the document indices " +
              (numDocEntries == 0 ? std::string("are empty")
                                  : "end at " + std::to_string(docs.back())) +
              "; they must run from 0 to the sequence count " + std::to_string(numSeq);
      return std::nullopt;
    }

    std::optional<MappedFile> bin = MappedFile::open(binPath, error);
    if (!bin)
      return std::nullopt;
    if (bin->size() != bytes) {
      error = binPath + ": is " + std::to_string(bin->size()) + " bytes but " + idxPath +
              " describes " + std::to_string(tokens) + " " + megatronDTypeName(code) +
              " tokens = " + std::to_string(bytes) + " bytes" +
              (bin->size() < bytes ? " (truncated)" : " (trailing bytes)");
      return std::nullopt;
    }

    MegatronIndexed dataset(std::move(*bin));
    dataset.indexPath_ = idxPath;
    dataset.dataPath_ = binPath;
    dataset.dtype_ = static_cast<MegatronDType>(code);
    dataset.elementSize_ = elementSize;
    dataset.starts_ = std::move(starts);
    dataset.documents_ = std::move(docs);
    if (vocabSize && !dataset.checkVocab(*vocabSize, error))
      return std::nullopt;
    return std::optional<MegatronIndexed>(std::move(dataset));
  } catch (...) {
    error = idxPath + ": out of memory while opening the Megatron dataset";
    return std::nullopt;
  }
}

void MegatronIndexed::readTokens(uint64_t begin, uint64_t count, int64_t *out) const {
  const uint8_t *p = data_.data() + begin * elementSize_;
  // One loop per dtype, so the per-element switch stays out of the hot loop.
  switch (dtype_) {
  case MegatronDType::UInt8:
    return copyElements(p, count, out,
                        [](const uint8_t *q, uint64_t i) -> int64_t { return q[i]; });
  case MegatronDType::Int8:
    return copyElements(p, count, out, [](const uint8_t *q, uint64_t i) -> int64_t {
      return static_cast<int8_t>(q[i]);
    });
  case MegatronDType::Int16:
    return copyElements(p, count, out, [](const uint8_t *q, uint64_t i) -> int64_t {
      return static_cast<int16_t>(loadLE16(q + 2 * i));
    });
  case MegatronDType::UInt16:
    return copyElements(
        p, count, out, [](const uint8_t *q, uint64_t i) -> int64_t { return loadLE16(q + 2 * i); });
  case MegatronDType::Int32:
    return copyElements(p, count, out, [](const uint8_t *q, uint64_t i) -> int64_t {
      return static_cast<int32_t>(loadLE32(q + 4 * i));
    });
  case MegatronDType::Int64:
    return copyElements(p, count, out, [](const uint8_t *q, uint64_t i) -> int64_t {
      return static_cast<int64_t>(loadLE64(q + 8 * i));
    });
  default: return;
  }
}

bool MegatronIndexed::readSequence(uint64_t i, std::vector<int64_t> &out,
                                   std::string &error) const {
  try {
    if (i >= numSequences()) {
      error = indexPath_ + ": no sequence " + std::to_string(i) + " (the dataset has " +
              std::to_string(numSequences()) + ")";
      return false;
    }
    out.resize(sequenceLength(i));
    readTokens(starts_[i], out.size(), out.data());
    return true;
  } catch (...) {
    error = indexPath_ + ": out of memory while reading sequence " + std::to_string(i);
    return false;
  }
}

bool MegatronIndexed::checkVocab(uint64_t vocabSize, std::string &error) const {
  const uint8_t code = static_cast<uint8_t>(dtype_);
  const uint64_t n = numTokens();
  uint64_t seq = 0;
  for (uint64_t t = 0; t < n; ++t) {
    const int64_t id = loadElement(code, data_.data(), t);
    if (id < 0 || static_cast<uint64_t>(id) >= vocabSize) {
      while (starts_[seq + 1] <= t)
        ++seq;
      try {
        error = dataPath_ + ": token " + std::to_string(t - starts_[seq]) + " of sequence " +
                std::to_string(seq) + " (token " + std::to_string(t) + " of the stream) has id " +
                std::to_string(id) + ", outside the vocabulary of " + std::to_string(vocabSize) +
                " (ids must be in [0, " + std::to_string(vocabSize) +
                ")); the dataset was tokenized for a different model";
      } catch (...) {
      }
      return false;
    }
  }
  return true;
}

bool serializeMegatronIndexed(MegatronDType dtype,
                              const std::vector<std::vector<int64_t>> &sequences,
                              const std::vector<uint64_t> &documentIndices,
                              std::vector<uint8_t> &index, std::vector<uint8_t> &data,
                              std::string &error) {
  try {
    const uint8_t code = static_cast<uint8_t>(dtype);
    if (!isMegatronTokenDType(code)) {
      error = std::string("dtype ") + megatronDTypeName(code) + " (code " + std::to_string(code) +
              ") cannot hold token ids; use " + kTokenDTypeList;
      return false;
    }
    const uint64_t numSeq = sequences.size();
    std::vector<uint64_t> docs = documentIndices;
    if (docs.empty()) {
      docs.resize(numSeq + 1);
      for (uint64_t i = 0; i <= numSeq; ++i)
        docs[i] = i;
    }
    for (size_t d = 0; d < docs.size(); ++d) {
      if ((d == 0 && docs[d] != 0) || (d > 0 && docs[d] < docs[d - 1])) {
        error = "document index " + std::to_string(d) + " is " + std::to_string(docs[d]) +
                "; document indices start with 0 and never decrease";
        return false;
      }
    }
    if (docs.back() != numSeq) {
      error = "the document indices end at " + std::to_string(docs.back()) +
              " but must end at the sequence count " + std::to_string(numSeq);
      return false;
    }
    const size_t elementSize = megatronDTypeSize(code);
    data.clear();
    index.clear();
    for (char c : kMegatronIndexMagic)
      index.push_back(static_cast<uint8_t>(c));
    appendLE(index, 1, 8);
    index.push_back(code);
    appendLE(index, numSeq, 8);
    appendLE(index, docs.size(), 8);
    for (uint64_t i = 0; i < numSeq; ++i) {
      if (sequences[i].size() > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) {
        error = "sequence " + std::to_string(i) + " has " + std::to_string(sequences[i].size()) +
                " tokens; the index stores lengths as int32";
        return false;
      }
      appendLE(index, sequences[i].size(), 4);
    }
    uint64_t pointer = 0;
    for (uint64_t i = 0; i < numSeq; ++i) {
      appendLE(index, pointer, 8);
      pointer += sequences[i].size() * elementSize;
    }
    for (uint64_t d : docs)
      appendLE(index, d, 8);
    data.reserve(pointer);
    for (uint64_t i = 0; i < numSeq; ++i) {
      for (size_t j = 0; j < sequences[i].size(); ++j) {
        const int64_t v = sequences[i][j];
        if (!fitsDType(dtype, v)) {
          error = "sequence " + std::to_string(i) + " token " + std::to_string(j) + " is " +
                  std::to_string(v) + ", which does not fit " + megatronDTypeName(code);
          return false;
        }
        appendLE(data, static_cast<uint64_t>(v), static_cast<int>(elementSize));
      }
    }
    return true;
  } catch (...) {
    error = "out of memory while building the Megatron dataset";
    return false;
  }
}

bool writeMegatronIndexed(const std::string &prefix, MegatronDType dtype,
                          const std::vector<std::vector<int64_t>> &sequences,
                          const std::vector<uint64_t> &documentIndices, std::string &error) {
  try {
    std::vector<uint8_t> index, data;
    if (!serializeMegatronIndexed(dtype, sequences, documentIndices, index, data, error)) {
      error = megatronIndexPath(prefix) + ": " + error;
      return false;
    }
    return writeFileAtomic(megatronDataPath(prefix), {{data.data(), data.size()}}, error) &&
           writeFileAtomic(megatronIndexPath(prefix), {{index.data(), index.size()}}, error);
  } catch (...) {
    error = prefix + ": out of memory while writing the Megatron dataset";
    return false;
  }
}

} // namespace kiln::data
