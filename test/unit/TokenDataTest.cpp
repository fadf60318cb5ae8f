//===- TokenDataTest.cpp - Tests for token files and the batch loader -----===//
//
// Round trips of llm.c shards and Megatron .idx/.bin pairs; one test per
// strict reader check, on malformed files built byte by byte in a temp
// directory, asserting that the message names the file and the problem; and
// the loader's batches against a hand computation, across the wrap, for
// both formats, and after a save/seek resume.
//
//===----------------------------------------------------------------------===//

#include "runtime/data/LlmcShard.h"
#include "runtime/data/MegatronIndexed.h"
#include "runtime/data/TokenLoader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>

using namespace kiln::data;

namespace {

::testing::AssertionResult contains(const std::string &text,
                                    std::initializer_list<const char *> needles) {
  for (const char *needle : needles)
    if (text.find(needle) == std::string::npos)
      return ::testing::AssertionFailure()
             << "message does not mention \"" << needle << "\":\n  " << text;
  return ::testing::AssertionSuccess();
}

/// A fresh directory per test, removed afterwards.
class TempDirTest : public ::testing::Test {
protected:
  void SetUp() override {
    const char *base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/kiln-tokendata-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string path(const std::string &name) const { return dir_ + "/" + name; }

  void writeBytes(const std::string &file, const std::vector<uint8_t> &bytes) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char *>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(out.good()) << file;
  }

  std::vector<uint8_t> readBytes(const std::string &file) {
    std::ifstream in(file, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
  }

  /// Names in the directory, to check that writers leave no temp files.
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto &entry : std::filesystem::directory_iterator(dir_))
      names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  std::string dir_;
};

//===----------------------------------------------------------------------===//
// llm.c shards
//===----------------------------------------------------------------------===//

std::vector<uint8_t> llmcBytes(int32_t magic, int32_t version, int32_t count,
                               const std::vector<uint16_t> &tokens) {
  std::vector<uint8_t> out;
  appendLE(out, static_cast<uint32_t>(magic), 4);
  appendLE(out, static_cast<uint32_t>(version), 4);
  appendLE(out, static_cast<uint32_t>(count), 4);
  out.resize(kLlmcHeaderBytes, 0);
  for (uint16_t t : tokens)
    appendLE(out, t, 2);
  return out;
}

class LlmcShardTest : public TempDirTest {
protected:
  std::string reject(const std::vector<uint8_t> &bytes,
                     std::optional<uint64_t> vocab = std::nullopt) {
    const std::string file = path("bad.bin");
    writeBytes(file, bytes);
    std::string error;
    EXPECT_FALSE(LlmcShard::open(file, error, vocab).has_value()) << "the shard was accepted";
    EXPECT_EQ(error.rfind(file + ": ", 0), 0u) << "message must start with the path: " << error;
    return error;
  }
};

TEST_F(LlmcShardTest, RoundTrip) {
  const std::vector<uint16_t> tokens = {0, 1, 50256, 65535, 7, 300, 42};
  const std::string file = path("train_000.bin");
  std::string error;
  ASSERT_TRUE(writeLlmcShard(file, tokens, error)) << error;
  EXPECT_EQ(listing(), std::vector<std::string>{"train_000.bin"}) << "temp file left behind";

  // Exact bytes: header as llm.c writes it, then little-endian uint16.
  EXPECT_EQ(readBytes(file), llmcBytes(20240520, 1, 7, tokens));

  auto shard = LlmcShard::open(file, error);
  ASSERT_TRUE(shard) << error;
  ASSERT_EQ(shard->numTokens(), tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i)
    EXPECT_EQ(shard->token(i), tokens[i]) << "token " << i;
  std::vector<int64_t> slice(3);
  shard->readTokens(2, 3, slice.data());
  EXPECT_EQ(slice, (std::vector<int64_t>{50256, 65535, 7}));

  EXPECT_TRUE(shard->checkVocab(65536, error)) << error;
  EXPECT_TRUE(LlmcShard::open(file, error, 65536)) << error;
}

TEST_F(LlmcShardTest, EmptyShardRoundTrips) {
  const std::string file = path("empty.bin");
  std::string error;
  ASSERT_TRUE(writeLlmcShard(file, {}, error)) << error;
  auto shard = LlmcShard::open(file, error);
  ASSERT_TRUE(shard) << error;
  EXPECT_EQ(shard->numTokens(), 0u);
}

TEST_F(LlmcShardTest, WriteReplacesExistingFile) {
  const std::string file = path("s.bin");
  std::string error;
  ASSERT_TRUE(writeLlmcShard(file, {1, 2, 3}, error)) << error;
  ASSERT_TRUE(writeLlmcShard(file, {9}, error)) << error;
  auto shard = LlmcShard::open(file, error);
  ASSERT_TRUE(shard) << error;
  ASSERT_EQ(shard->numTokens(), 1u);
  EXPECT_EQ(shard->token(0), 9);
}

TEST_F(LlmcShardTest, WriteIntoMissingDirectoryFails) {
  const std::string file = path("no/such/dir/s.bin");
  std::string error;
  EXPECT_FALSE(writeLlmcShard(file, {1}, error));
  EXPECT_TRUE(contains(error, {"no/such/dir/s.bin", "cannot create temporary file"}));
}

TEST_F(LlmcShardTest, RejectsMissingFile) {
  std::string error;
  EXPECT_FALSE(LlmcShard::open(path("absent.bin"), error));
  EXPECT_TRUE(contains(error, {"absent.bin", "cannot open"}));
}

TEST_F(LlmcShardTest, RejectsFileShorterThanHeader) {
  std::vector<uint8_t> bytes = llmcBytes(20240520, 1, 0, {});
  bytes.resize(1000);
  EXPECT_TRUE(contains(reject(bytes), {"1000 bytes", "shorter than the 1024-byte"}));
}

TEST_F(LlmcShardTest, RejectsWrongMagic) {
  EXPECT_TRUE(contains(reject(llmcBytes(12345, 1, 0, {})),
                       {"bad magic 12345", "header[0]", "starts with 20240520"}));
}

TEST_F(LlmcShardTest, WrongMagicNamesOtherLlmcFormats) {
  EXPECT_TRUE(contains(reject(llmcBytes(20240801, 7, 0, {})), {"20240801", "llama-3", "uint32"}));
  EXPECT_TRUE(contains(reject(llmcBytes(20240522, 1, 0, {})), {"eval file"}));
  std::vector<uint8_t> idx(kLlmcHeaderBytes, 0);
  std::memcpy(idx.data(), "MMIDIDX", 7);
  EXPECT_TRUE(contains(reject(idx), {"Megatron .idx"}));
}

TEST_F(LlmcShardTest, RejectsUnsupportedVersion) {
  EXPECT_TRUE(contains(reject(llmcBytes(20240520, 2, 0, {})),
                       {"unsupported version 2", "header[1]", "version 1 (uint16 tokens)"}));
}

TEST_F(LlmcShardTest, RejectsNegativeCount) {
  EXPECT_TRUE(contains(reject(llmcBytes(20240520, 1, -5, {})), {"negative token count -5"}));
}

TEST_F(LlmcShardTest, RejectsTruncatedFile) {
  // Says 4 tokens, holds 3.
  EXPECT_TRUE(contains(
      reject(llmcBytes(20240520, 1, 4, {1, 2, 3})),
      {"says 4 tokens", "should be 1032 bytes", "it is 1030 bytes", "truncated: 2 bytes missing"}));
}

TEST_F(LlmcShardTest, RejectsTrailingBytes) {
  std::vector<uint8_t> bytes = llmcBytes(20240520, 1, 2, {1, 2});
  bytes.push_back(0);
  EXPECT_TRUE(
      contains(reject(bytes), {"says 2 tokens", "should be 1028 bytes", "1 trailing bytes"}));
}

TEST_F(LlmcShardTest, RejectsTokenOutsideVocabulary) {
  const std::vector<uint16_t> tokens = {5, 255, 10, 300, 400};
  EXPECT_TRUE(contains(reject(llmcBytes(20240520, 1, 5, tokens), 256),
                       {"token 3 has id 300", "vocabulary of 256", "below 256"}));
  // Without the vocabulary argument the same file is fine.
  std::string error;
  EXPECT_TRUE(LlmcShard::open(path("bad.bin"), error)) << error;
}

//===----------------------------------------------------------------------===//
// Megatron indexed datasets
//===----------------------------------------------------------------------===//

/// The fields of an .idx, each settable to something wrong.
struct IdxFile {
  std::string magic = std::string("MMIDIDX\0\0", 9);
  uint64_t version = 1;
  uint8_t code = 8;
  std::optional<uint64_t> sequenceCount, documentCount; // Default: the array sizes.
  std::vector<int32_t> lengths = {3, 1, 2};
  std::vector<int64_t> pointers = {0, 6, 8};
  std::vector<int64_t> documents = {0, 2, 3};
  size_t extraBytes = 0;

  std::vector<uint8_t> bytes() const {
    std::vector<uint8_t> out(magic.begin(), magic.end());
    appendLE(out, version, 8);
    out.push_back(code);
    appendLE(out, sequenceCount.value_or(lengths.size()), 8);
    appendLE(out, documentCount.value_or(documents.size()), 8);
    for (int32_t v : lengths)
      appendLE(out, static_cast<uint32_t>(v), 4);
    for (int64_t v : pointers)
      appendLE(out, static_cast<uint64_t>(v), 8);
    for (int64_t v : documents)
      appendLE(out, static_cast<uint64_t>(v), 8);
    out.resize(out.size() + extraBytes, 0);
    return out;
  }
};

class MegatronTest : public TempDirTest {
protected:
  /// Writes `idx` and a .bin of `binBytes` zero bytes (12 = the default
  /// index's 6 uint16 tokens) and returns the rejection message.
  std::string reject(const IdxFile &idx, size_t binBytes = 12) {
    return rejectBytes(idx.bytes(), binBytes);
  }
  std::string rejectBytes(const std::vector<uint8_t> &idx, size_t binBytes = 12) {
    writeBytes(path("bad.idx"), idx);
    writeBytes(path("bad.bin"), std::vector<uint8_t>(binBytes, 0));
    std::string error;
    EXPECT_FALSE(MegatronIndexed::open(path("bad"), error).has_value()) << "accepted";
    return error;
  }
  /// Messages about the index start with its path.
  std::string rejectIndex(const IdxFile &idx) {
    std::string error = reject(idx);
    EXPECT_EQ(error.rfind(path("bad.idx") + ": ", 0), 0u) << "must start with the .idx: " << error;
    return error;
  }
};

TEST_F(MegatronTest, DefaultTestIndexIsValid) {
  // The base the malformed cases below start from must itself be accepted.
  writeBytes(path("ok.idx"), IdxFile().bytes());
  writeBytes(path("ok.bin"), std::vector<uint8_t>(12, 0));
  std::string error;
  auto dataset = MegatronIndexed::open(path("ok"), error);
  ASSERT_TRUE(dataset) << error;
  EXPECT_EQ(dataset->numSequences(), 3u);
  EXPECT_EQ(dataset->numDocuments(), 2u);
}

TEST_F(MegatronTest, RoundTripEveryIntegerDType) {
  struct Case {
    MegatronDType dtype;
    std::vector<std::vector<int64_t>> sequences;
  };
  const std::vector<Case> cases = {
      {MegatronDType::UInt8, {{0, 255, 7}, {}, {1}}},
      {MegatronDType::Int8, {{-128, 127}, {0, -1, 5}}},
      {MegatronDType::Int16, {{-32768, 32767, 3}, {12}}},
      {MegatronDType::UInt16, {{0, 65535}, {50256, 1, 2, 3}}},
      {MegatronDType::Int32, {{-2147483648LL, 2147483647LL}, {100000}}},
      {MegatronDType::Int64,
       {{std::numeric_limits<int64_t>::min(), 1}, {std::numeric_limits<int64_t>::max()}}},
  };
  for (const Case &c : cases) {
    const std::string name = megatronDTypeName(static_cast<uint8_t>(c.dtype));
    SCOPED_TRACE(name);
    const std::string prefix = path("ds_" + name);
    std::string error;
    ASSERT_TRUE(writeMegatronIndexed(prefix, c.dtype, c.sequences, {}, error)) << error;
    auto dataset = MegatronIndexed::open(prefix, error);
    ASSERT_TRUE(dataset) << error;
    EXPECT_EQ(dataset->dtype(), c.dtype);
    ASSERT_EQ(dataset->numSequences(), c.sequences.size());
    std::vector<int64_t> stream;
    for (size_t i = 0; i < c.sequences.size(); ++i) {
      std::vector<int64_t> seq;
      ASSERT_TRUE(dataset->readSequence(i, seq, error)) << error;
      EXPECT_EQ(seq, c.sequences[i]) << "sequence " << i;
      EXPECT_EQ(dataset->sequenceLength(i), c.sequences[i].size());
      EXPECT_EQ(dataset->sequenceStart(i), stream.size());
      stream.insert(stream.end(), c.sequences[i].begin(), c.sequences[i].end());
    }
    // Default document index: one document per sequence.
    std::vector<uint64_t> docs;
    for (size_t i = 0; i <= c.sequences.size(); ++i)
      docs.push_back(i);
    EXPECT_EQ(dataset->documentIndices(), docs);
    ASSERT_EQ(dataset->numTokens(), stream.size());
    std::vector<int64_t> all(stream.size());
    dataset->readTokens(0, all.size(), all.data());
    EXPECT_EQ(all, stream);
  }
}

TEST_F(MegatronTest, WritesTheMegatronLayout) {
  const std::string prefix = path("layout");
  std::string error;
  ASSERT_TRUE(writeMegatronIndexed(prefix, MegatronDType::UInt16, {{1, 2, 3}, {4}, {5, 6}},
                                   {0, 2, 3}, error))
      << error;
  EXPECT_EQ(listing(), (std::vector<std::string>{"layout.bin", "layout.idx"}));
  // Same bytes as the hand-built index with those lengths and documents.
  IdxFile expected;
  EXPECT_EQ(readBytes(prefix + ".idx"), expected.bytes());
  EXPECT_EQ(readBytes(prefix + ".bin"), (std::vector<uint8_t>{1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0}));
  auto dataset = MegatronIndexed::open(prefix, error);
  ASSERT_TRUE(dataset) << error;
  EXPECT_EQ(dataset->documentIndices(), (std::vector<uint64_t>{0, 2, 3}));
  EXPECT_EQ(dataset->numDocuments(), 2u);
}

TEST_F(MegatronTest, EmptyDatasetRoundTrips) {
  std::string error;
  ASSERT_TRUE(writeMegatronIndexed(path("empty"), MegatronDType::Int32, {}, {}, error)) << error;
  auto dataset = MegatronIndexed::open(path("empty"), error);
  ASSERT_TRUE(dataset) << error;
  EXPECT_EQ(dataset->numSequences(), 0u);
  EXPECT_EQ(dataset->numTokens(), 0u);
  EXPECT_EQ(dataset->documentIndices(), std::vector<uint64_t>{0});
}

TEST_F(MegatronTest, WriterRejectsWhatTheReaderWould) {
  std::string error;
  EXPECT_FALSE(writeMegatronIndexed(path("w"), MegatronDType::Float32, {{1}}, {}, error));
  EXPECT_TRUE(contains(error, {"w.idx", "float32", "cannot hold token ids"}));
  EXPECT_FALSE(writeMegatronIndexed(path("w"), MegatronDType::UInt8, {{1, 256}}, {}, error));
  EXPECT_TRUE(contains(error, {"sequence 0 token 1 is 256", "does not fit uint8"}));
  EXPECT_FALSE(writeMegatronIndexed(path("w"), MegatronDType::UInt8, {{1}, {2}}, {0, 1}, error));
  EXPECT_TRUE(contains(error, {"end at 1", "sequence count 2"}));
  EXPECT_FALSE(
      writeMegatronIndexed(path("w"), MegatronDType::UInt8, {{1}, {2}}, {0, 2, 1, 2}, error));
  EXPECT_TRUE(contains(error, {"document index 2 is 1"}));
  EXPECT_TRUE(listing().empty()) << "a failed write must leave nothing behind";
}

TEST_F(MegatronTest, RejectsMissingFiles) {
  std::string error;
  EXPECT_FALSE(MegatronIndexed::open(path("absent"), error));
  EXPECT_TRUE(contains(error, {"absent.idx", "cannot open"}));
  writeBytes(path("nobin.idx"), IdxFile().bytes());
  EXPECT_FALSE(MegatronIndexed::open(path("nobin"), error));
  EXPECT_TRUE(contains(error, {"nobin.bin", "cannot open"}));
}

TEST_F(MegatronTest, RejectsShortHeader) {
  std::vector<uint8_t> bytes = IdxFile().bytes();
  bytes.resize(20);
  EXPECT_TRUE(contains(rejectBytes(bytes), {"bad.idx", "20 bytes", "shorter than the 34-byte"}));
}

TEST_F(MegatronTest, RejectsWrongMagic) {
  IdxFile idx;
  idx.magic = std::string("MMIDIDY\0\0", 9);
  EXPECT_TRUE(contains(rejectIndex(idx),
                       {"bad magic \"MMIDIDY\\x00\\x00\"", "starts with \"MMIDIDX\\x00\\x00\""}));
}

TEST_F(MegatronTest, RejectsWrongVersion) {
  IdxFile idx;
  idx.version = 2;
  EXPECT_TRUE(contains(rejectIndex(idx), {"unsupported index version 2", "version 1"}));
}

TEST_F(MegatronTest, RejectsFloatAndUnknownDTypeCodes) {
  IdxFile idx;
  idx.code = 7;
  EXPECT_TRUE(
      contains(rejectIndex(idx), {"dtype code 7 (float32)", "not an integer type", "8 (uint16)"}));
  idx.code = 6;
  EXPECT_TRUE(contains(rejectIndex(idx), {"dtype code 6 (float64)", "not an integer type"}));
  idx.code = 9;
  EXPECT_TRUE(contains(rejectIndex(idx), {"dtype code 9", "not a Megatron dtype"}));
  idx.code = 0;
  EXPECT_TRUE(contains(rejectIndex(idx), {"dtype code 0", "not a Megatron dtype"}));
}

TEST_F(MegatronTest, RejectsCountsWhoseSizeOverflows) {
  IdxFile idx;
  idx.sequenceCount = uint64_t(1) << 62; // 12 x 2^62 wraps 64 bits.
  EXPECT_TRUE(
      contains(rejectIndex(idx), {"4611686018427387904 sequences", "more than 2^64 bytes"}));
  idx.sequenceCount.reset();
  idx.documentCount = ~uint64_t(0) / 4;
  EXPECT_TRUE(contains(rejectIndex(idx), {"more than 2^64 bytes"}));
}

TEST_F(MegatronTest, RejectsTruncatedIndex) {
  IdxFile idx;
  idx.sequenceCount = 4; // The arrays hold 3.
  EXPECT_TRUE(
      contains(rejectIndex(idx), {"4 sequences and 3 document indices", "should be 106 bytes",
                                  "it is 94 bytes", "truncated: 12 bytes missing"}));
}

TEST_F(MegatronTest, RejectsTrailingBytesInIndex) {
  IdxFile idx;
  idx.extraBytes = 5;
  EXPECT_TRUE(
      contains(rejectIndex(idx), {"should be 94 bytes", "it is 99 bytes", "5 trailing bytes"}));
}

TEST_F(MegatronTest, NamesMultimodalIndex) {
  IdxFile idx;
  idx.extraBytes = 3; // One int8 mode per sequence.
  EXPECT_TRUE(contains(rejectIndex(idx), {"multimodal", "sequence modes"}));
}

TEST_F(MegatronTest, RejectsNegativeLength) {
  IdxFile idx;
  idx.lengths = {3, -1, 2};
  EXPECT_TRUE(contains(rejectIndex(idx), {"sequence 1 has negative length -1"}));
}

TEST_F(MegatronTest, RejectsPointerOffRunningSum) {
  IdxFile idx;
  idx.pointers = {0, 6, 10};
  EXPECT_TRUE(contains(rejectIndex(idx), {"sequence 2 has pointer 10", "should start at byte 8",
                                          "2 bytes per uint16", "back to back"}));
  idx.pointers = {0, -6, 8};
  EXPECT_TRUE(contains(rejectIndex(idx), {"sequence 1 has pointer -6", "should start at byte 6"}));
}

TEST_F(MegatronTest, RejectsDocumentIndicesNotStartingAtZero) {
  IdxFile idx;
  idx.documents = {1, 2, 3};
  EXPECT_TRUE(contains(rejectIndex(idx), {"document index 0 is 1", "start with 0"}));
}

TEST_F(MegatronTest, RejectsDecreasingDocumentIndices) {
  IdxFile idx;
  idx.documents = {0, 2, 1, 3};
  EXPECT_TRUE(contains(rejectIndex(idx),
                       {"document index 2 is 1", "less than index 1 (2)", "non-decreasing"}));
}

TEST_F(MegatronTest, RejectsDocumentIndicesNotEndingAtSequenceCount) {
  IdxFile idx;
  idx.documents = {0, 2};
  EXPECT_TRUE(contains(rejectIndex(idx), {"end at 2", "sequence count 3"}));
  idx.documents = {0, 2, 4};
  EXPECT_TRUE(contains(rejectIndex(idx), {"end at 4", "sequence count 3"}));
  idx.documents = {};
  EXPECT_TRUE(contains(rejectIndex(idx), {"are empty", "sequence count 3"}));
}

TEST_F(MegatronTest, RejectsBinOfTheWrongSize) {
  std::string error = reject(IdxFile(), 10);
  EXPECT_EQ(error.rfind(path("bad.bin") + ": ", 0), 0u) << error;
  EXPECT_TRUE(contains(error, {"is 10 bytes", "6 uint16 tokens = 12 bytes", "truncated"}));
  EXPECT_TRUE(contains(reject(IdxFile(), 13), {"is 13 bytes", "trailing bytes"}));
}

TEST_F(MegatronTest, RejectsTokensOutsideVocabulary) {
  std::string error;
  ASSERT_TRUE(
      writeMegatronIndexed(path("v"), MegatronDType::Int16, {{1, 2}, {3, -4, 5}}, {}, error))
      << error;
  EXPECT_FALSE(MegatronIndexed::open(path("v"), error, 256));
  EXPECT_TRUE(contains(
      error, {"v.bin", "token 1 of sequence 1", "token 3 of the stream", "has id -4", "[0, 256)"}));
  ASSERT_TRUE(
      writeMegatronIndexed(path("w"), MegatronDType::UInt16, {{1}, {}, {2, 900}}, {}, error))
      << error;
  EXPECT_FALSE(MegatronIndexed::open(path("w"), error, 256));
  EXPECT_TRUE(contains(error, {"token 1 of sequence 2", "token 2 of the stream", "has id 900"}));
  EXPECT_TRUE(MegatronIndexed::open(path("w"), error, 901)) << error;
}

TEST_F(MegatronTest, ReadSequenceOutOfRange) {
  std::string error;
  ASSERT_TRUE(writeMegatronIndexed(path("r"), MegatronDType::UInt8, {{1}, {2}}, {}, error))
      << error;
  auto dataset = MegatronIndexed::open(path("r"), error);
  ASSERT_TRUE(dataset) << error;
  std::vector<int64_t> seq;
  EXPECT_FALSE(dataset->readSequence(2, seq, error));
  EXPECT_TRUE(contains(error, {"no sequence 2", "has 2"}));
}

//===----------------------------------------------------------------------===//
// TokenLoader
//===----------------------------------------------------------------------===//

class TokenLoaderTest : public TempDirTest {
protected:
  /// tokens 100, 101, ..., 100 + n - 1 as an llm.c shard.
  std::string rampShard(uint16_t n, const std::string &name = "ramp.bin") {
    std::vector<uint16_t> tokens;
    for (uint16_t i = 0; i < n; ++i)
      tokens.push_back(static_cast<uint16_t>(100 + i));
    std::string error;
    EXPECT_TRUE(writeLlmcShard(path(name), tokens, error)) << error;
    return path(name);
  }

  std::vector<int64_t> next(TokenLoader &loader) {
    std::vector<int64_t> batch;
    std::string error;
    EXPECT_TRUE(loader.next(batch, error)) << error;
    return batch;
  }
};

using Batch = std::vector<int64_t>;

/// B = 2 rows of S + 1 = 4 over the 10-token stream 100..109: rows overlap by
/// one token, each batch advances 6, and the stream wraps.
const std::vector<Batch> kRampBatches = {
    {100, 101, 102, 103, /**/ 103, 104, 105, 106},
    {106, 107, 108, 109, /**/ 109, 100, 101, 102}, // Row 1 wraps.
    {102, 103, 104, 105, /**/ 105, 106, 107, 108},
    {108, 109, 100, 101, /**/ 101, 102, 103, 104}, // Row 0 wraps.
    {104, 105, 106, 107, /**/ 107, 108, 109, 100},
};

TEST_F(TokenLoaderTest, BatchesMatchHandComputation) {
  std::string error;
  auto loader = TokenLoader::open(rampShard(10), 2, 3, error);
  ASSERT_TRUE(loader) << error;
  EXPECT_EQ(loader->format(), TokenFileFormat::LlmcShard);
  EXPECT_EQ(loader->numTokens(), 10u);
  EXPECT_EQ(loader->batchTokens(), 8u);
  for (size_t k = 0; k < kRampBatches.size(); ++k) {
    EXPECT_EQ(loader->position(), 6 * k);
    EXPECT_EQ(next(*loader), kRampBatches[k]) << "batch " << k;
  }
  EXPECT_EQ(loader->position(), 30u); // Three passes over 10 tokens.
}

TEST_F(TokenLoaderTest, MegatronStreamIsTheConcatenatedSequences) {
  // The same 10 tokens split into sequences (one empty) give the same batches.
  std::string error;
  ASSERT_TRUE(writeMegatronIndexed(path("mega"), MegatronDType::Int32,
                                   {{100, 101, 102}, {103}, {}, {104, 105, 106, 107, 108, 109}},
                                   {0, 2, 4}, error))
      << error;
  for (const char *suffix : {".bin", ".idx"}) {
    SCOPED_TRACE(suffix);
    auto loader = TokenLoader::open(path("mega") + suffix, 2, 3, error);
    ASSERT_TRUE(loader) << error;
    EXPECT_EQ(loader->format(), TokenFileFormat::MegatronIndexed);
    for (size_t k = 0; k < kRampBatches.size(); ++k)
      EXPECT_EQ(next(*loader), kRampBatches[k]) << "batch " << k;
  }
}

TEST_F(TokenLoaderTest, FormatIsChosenBySiblingIdx) {
  const std::string shard = rampShard(10, "fineweb_000.bin");
  EXPECT_EQ(detectTokenFileFormat(shard), TokenFileFormat::LlmcShard);
  EXPECT_EQ(detectTokenFileFormat(path("x.idx")), TokenFileFormat::MegatronIndexed);
  writeBytes(path("fineweb_000.idx"), IdxFile().bytes());
  EXPECT_EQ(detectTokenFileFormat(shard), TokenFileFormat::MegatronIndexed);
  // Now read as Megatron, the llm.c bytes do not match the index.
  std::string error;
  EXPECT_FALSE(TokenLoader::open(shard, 1, 3, error));
  EXPECT_TRUE(contains(error, {"fineweb_000.bin", "12 bytes"}));
}

TEST_F(TokenLoaderTest, SeekResumesWithIdenticalBatches) {
  const std::string file = rampShard(37);
  std::string error;
  auto first = TokenLoader::open(file, 3, 5, error);
  ASSERT_TRUE(first) << error;
  std::vector<Batch> reference;
  uint64_t saved = 0;
  for (int k = 0; k < 12; ++k) {
    if (k == 4)
      saved = first->position();
    reference.push_back(next(*first));
  }
  EXPECT_EQ(saved, 4u * 3 * 5);

  auto resumed = TokenLoader::open(file, 3, 5, error);
  ASSERT_TRUE(resumed) << error;
  resumed->seek(saved);
  for (int k = 4; k < 12; ++k)
    EXPECT_EQ(next(*resumed), reference[k]) << "batch " << k << " after resuming";

  // The position is a stream offset: one epoch later reads the same tokens.
  resumed->seek(saved + 37);
  EXPECT_EQ(next(*resumed), reference[4]);
  EXPECT_EQ(resumed->position(), saved + 37 + 15);
}

TEST_F(TokenLoaderTest, PositionIsInTokensSoBatchShapeCanChange) {
  // After 2 batches of 1 x 4 (position 8), a 2 x 2 loader continues at token 8.
  const std::string file = rampShard(20);
  std::string error;
  auto a = TokenLoader::open(file, 1, 4, error);
  ASSERT_TRUE(a) << error;
  next(*a);
  next(*a);
  auto b = TokenLoader::open(file, 2, 2, error);
  ASSERT_TRUE(b) << error;
  b->seek(a->position());
  EXPECT_EQ(next(*b), (Batch{108, 109, 110, /**/ 110, 111, 112}));
}

TEST_F(TokenLoaderTest, WholeStreamRowWrapsAtOnce) {
  // S + 1 == N: every row is the whole stream, rotated.
  std::string error;
  auto loader = TokenLoader::open(rampShard(4), 2, 3, error);
  ASSERT_TRUE(loader) << error;
  EXPECT_EQ(next(*loader), (Batch{100, 101, 102, 103, /**/ 103, 100, 101, 102}));
  EXPECT_EQ(next(*loader), (Batch{102, 103, 100, 101, /**/ 101, 102, 103, 100}));
}

TEST_F(TokenLoaderTest, RejectsBadShapes) {
  const std::string file = rampShard(10);
  std::string error;
  EXPECT_FALSE(TokenLoader::open(file, 0, 3, error));
  EXPECT_TRUE(contains(error, {"ramp.bin", "0 rows", "at least 1"}));
  EXPECT_FALSE(TokenLoader::open(file, 2, 0, error));
  EXPECT_TRUE(contains(error, {"0 positions", "at least 1"}));
  EXPECT_FALSE(TokenLoader::open(file, 2, 10, error));
  EXPECT_TRUE(contains(error, {"llm.c shard has 10 tokens", "one row of seq_len + 1 = 11"}));
  EXPECT_FALSE(TokenLoader::open(file, uint64_t(1) << 40, uint64_t(1) << 40, error));
  EXPECT_TRUE(contains(error, {"does not fit in memory"}));
}

TEST_F(TokenLoaderTest, PassesVocabularyCheckThrough) {
  const std::string file = rampShard(10);
  std::string error;
  EXPECT_FALSE(TokenLoader::open(file, 1, 3, error, 105));
  EXPECT_TRUE(contains(error, {"token 5 has id 105", "vocabulary of 105"}));
  EXPECT_TRUE(TokenLoader::open(file, 1, 3, error, 110)) << error;
}

TEST_F(TokenLoaderTest, PropagatesFileErrors) {
  std::string error;
  writeBytes(path("junk.bin"), std::vector<uint8_t>(2000, 7));
  EXPECT_FALSE(TokenLoader::open(path("junk.bin"), 1, 3, error));
  EXPECT_TRUE(contains(error, {"junk.bin", "bad magic"}));
}

TEST_F(TokenLoaderTest, RefusesToPassTwoToThe64) {
  std::string error;
  auto loader = TokenLoader::open(rampShard(10), 2, 3, error);
  ASSERT_TRUE(loader) << error;
  loader->seek(std::numeric_limits<uint64_t>::max() - 5);
  std::vector<int64_t> batch;
  EXPECT_FALSE(loader->next(batch, error));
  EXPECT_TRUE(contains(error, {"cannot advance", "2^64"}));
  loader->seek(std::numeric_limits<uint64_t>::max() - 6);
  EXPECT_TRUE(loader->next(batch, error)) << error;
}

//===----------------------------------------------------------------------===//
// TokenLoader::fromMemory
//===----------------------------------------------------------------------===//

std::vector<uint16_t> rampTokens(uint16_t n) {
  std::vector<uint16_t> tokens;
  for (uint16_t i = 0; i < n; ++i)
    tokens.push_back(static_cast<uint16_t>(100 + i));
  return tokens;
}

TEST(TokenLoaderMemory, BatchesMatchTheFileLoader) {
  std::string error;
  auto loader = TokenLoader::fromMemory("ramp", rampTokens(10), {}, 2, 3, error);
  ASSERT_TRUE(loader) << error;
  EXPECT_EQ(loader->format(), TokenFileFormat::InMemory);
  EXPECT_EQ(loader->name(), "ramp");
  EXPECT_EQ(loader->numTokens(), 10u);
  EXPECT_FALSE(loader->hasMask());
  std::vector<int64_t> batch;
  for (size_t k = 0; k < kRampBatches.size(); ++k) {
    EXPECT_EQ(loader->position(), 6 * k);
    ASSERT_TRUE(loader->next(batch, error)) << error;
    EXPECT_EQ(batch, kRampBatches[k]) << "batch " << k;
  }
  // Without a mask, next() hands out zeros.
  std::vector<int64_t> tokens(8);
  std::vector<uint8_t> mask(8, 9);
  ASSERT_TRUE(loader->next(tokens.data(), mask.data(), error)) << error;
  EXPECT_EQ(mask, std::vector<uint8_t>(8, 0));
}

TEST(TokenLoaderMemory, MaskFollowsTheTokensAcrossTheWrapAndSeek) {
  // The mask marks tokens 103, 104 and 109.
  std::vector<uint8_t> mask = {0, 0, 0, 1, 1, 0, 0, 0, 0, 1};
  std::string error;
  auto loader = TokenLoader::fromMemory("masked", rampTokens(10), mask, 2, 3, error);
  ASSERT_TRUE(loader) << error;
  EXPECT_TRUE(loader->hasMask());
  std::vector<int64_t> tokens(8);
  std::vector<uint8_t> got(8);
  for (size_t k = 0; k < kRampBatches.size(); ++k) {
    ASSERT_TRUE(loader->next(tokens.data(), got.data(), error)) << error;
    EXPECT_EQ(tokens, kRampBatches[k]);
    for (size_t i = 0; i < 8; ++i)
      EXPECT_EQ(got[i], mask[size_t(tokens[i] - 100)]) << "batch " << k << " index " << i;
  }
  loader->seek(6); // batch 1, whose second row wraps
  ASSERT_TRUE(loader->next(tokens.data(), got.data(), error)) << error;
  EXPECT_EQ(got, (std::vector<uint8_t>{0, 0, 0, 1, /**/ 1, 0, 0, 0}));
}

TEST(TokenLoaderMemory, RejectsWhatOpenWould) {
  std::string error;
  EXPECT_FALSE(TokenLoader::fromMemory("m", rampTokens(10), {}, 0, 3, error));
  EXPECT_TRUE(contains(error, {"m: batch of 0 rows", "at least 1"}));
  EXPECT_FALSE(TokenLoader::fromMemory("m", rampTokens(10), {}, 2, 10, error));
  EXPECT_TRUE(contains(error, {"in-memory token stream has 10 tokens", "seq_len + 1 = 11"}));
  EXPECT_FALSE(TokenLoader::fromMemory("m", rampTokens(10), {1, 0}, 2, 3, error));
  EXPECT_TRUE(contains(error, {"mask has 2 entries for 10 tokens"}));
  EXPECT_FALSE(TokenLoader::fromMemory("m", rampTokens(10), {}, 2, 3, error, 105));
  EXPECT_TRUE(contains(error, {"m: token 5 has id 105", "vocabulary of 105"}));
  EXPECT_TRUE(TokenLoader::fromMemory("m", rampTokens(10), {}, 2, 3, error, 110)) << error;
}

} // namespace
