//===- SafetensorsTest.cpp - Tests for the safetensors reader and writer --===//
//
// Round trips through Writer and Reader, exact bytes of a known file, one
// test per strict reader check (on hand-built malformed files, asserting the
// message names the problem), float rounding at ties, and writeAtomic's
// guarantee that a failed write leaves the old file alone.
//
//===----------------------------------------------------------------------===//

#include "runtime/safetensors/Safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace kiln::safetensors;

namespace {

constexpr DType kAllDTypes[] = {DType::F64,     DType::F32,     DType::F16, DType::BF16,
                                DType::F8_E4M3, DType::F8_E5M2, DType::I64, DType::I32,
                                DType::I16,     DType::I8,      DType::U8,  DType::BOOL};

const double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<uint8_t> u64le(uint64_t v) {
  std::vector<uint8_t> out(8);
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<uint8_t>(v >> (8 * i));
  return out;
}

/// A file with an explicit length prefix, so tests can lie about it.
std::vector<uint8_t> rawFile(uint64_t headerLen, const std::string &header,
                             const std::vector<uint8_t> &buffer = {}) {
  std::vector<uint8_t> out = u64le(headerLen);
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), buffer.begin(), buffer.end());
  return out;
}

/// A well-framed file: correct length prefix, zero-filled buffer.
std::vector<uint8_t> file(const std::string &header, size_t bufferBytes = 0) {
  return rawFile(header.size(), header, std::vector<uint8_t>(bufferBytes, 0));
}

/// Parses bytes that must be rejected and returns the message.
std::string rejectMessage(std::vector<uint8_t> bytes) {
  std::string error;
  auto reader = Reader::fromBytes(std::move(bytes), "bad.safetensors", error);
  EXPECT_FALSE(reader.has_value()) << "the file was accepted";
  EXPECT_EQ(error.rfind("bad.safetensors: ", 0), 0u)
      << "message must start with the file name: " << error;
  return error;
}

::testing::AssertionResult contains(const std::string &text,
                                    std::initializer_list<const char *> needles) {
  for (const char *needle : needles)
    if (text.find(needle) == std::string::npos)
      return ::testing::AssertionFailure()
             << "message does not mention \"" << needle << "\":\n  " << text;
  return ::testing::AssertionSuccess();
}

Reader mustRead(std::vector<uint8_t> bytes) {
  std::string error;
  auto reader = Reader::fromBytes(std::move(bytes), "good.safetensors", error);
  EXPECT_TRUE(reader.has_value()) << error;
  if (!reader)
    std::abort(); // A test relying on this cannot continue meaningfully.
  return std::move(*reader);
}

/// Equal, treating NaN as equal to NaN and distinguishing -0 from +0.
bool sameValue(double a, double b) {
  if (std::isnan(a) || std::isnan(b))
    return std::isnan(a) && std::isnan(b);
  return a == b && std::signbit(a) == std::signbit(b);
}

uint64_t encodeBits(DType dtype, double v) {
  uint8_t buf[8] = {};
  std::string why;
  EXPECT_TRUE(encodeElement(dtype, v, buf, why)) << dtypeName(dtype) << " " << v << ": " << why;
  uint64_t bits = 0;
  for (size_t i = 0; i < dtypeSize(dtype); ++i)
    bits |= uint64_t(buf[i]) << (8 * i);
  return bits;
}

std::string encodeError(DType dtype, double v) {
  uint8_t buf[8] = {};
  std::string why;
  EXPECT_FALSE(encodeElement(dtype, v, buf, why)) << dtypeName(dtype) << " accepted " << v;
  return why;
}

double decodeBits(DType dtype, uint64_t bits) {
  uint8_t buf[8] = {};
  for (size_t i = 0; i < dtypeSize(dtype); ++i)
    buf[i] = static_cast<uint8_t>(bits >> (8 * i));
  double out = 0;
  std::string why;
  EXPECT_TRUE(decodeElement(dtype, buf, out, why)) << why;
  return out;
}

/// A scratch directory removed (with its files) at the end of the test.
class TempDir {
public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "safetensors_test_XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data()))
      std::abort();
    path_ = buf.data();
  }
  ~TempDir() {
    ::chmod(path_.c_str(), 0700);
    removeTree(path_);
  }
  const std::string &path() const { return path_; }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    if (DIR *d = ::opendir(path_.c_str())) {
      while (dirent *e = ::readdir(d))
        if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, ".."))
          out.push_back(e->d_name);
      ::closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

private:
  static void removeTree(const std::string &p) {
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0)
      return;
    if (S_ISDIR(st.st_mode)) {
      if (DIR *d = ::opendir(p.c_str())) {
        while (dirent *e = ::readdir(d))
          if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, ".."))
            removeTree(p + "/" + e->d_name);
        ::closedir(d);
      }
      ::rmdir(p.c_str());
    } else {
      ::unlink(p.c_str());
    }
  }
  std::string path_;
};

std::string readText(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void writeText(const std::string &path, const std::string &text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

} // namespace

//===----------------------------------------------------------------------===//
// DTypes
//===----------------------------------------------------------------------===//

TEST(SafetensorsDType, NamesSizesAndParsing) {
  const size_t sizes[] = {8, 4, 2, 2, 1, 1, 8, 4, 2, 1, 1, 1};
  const char *names[] = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2",
                         "I64", "I32", "I16", "I8",   "U8",      "BOOL"};
  for (size_t i = 0; i < std::size(kAllDTypes); ++i) {
    EXPECT_STREQ(dtypeName(kAllDTypes[i]), names[i]);
    EXPECT_EQ(dtypeSize(kAllDTypes[i]), sizes[i]) << names[i];
    EXPECT_EQ(parseDType(names[i]), kAllDTypes[i]);
  }
  EXPECT_FALSE(parseDType("f32"));
  EXPECT_FALSE(parseDType("F32 "));
  EXPECT_FALSE(parseDType("U16"));
  EXPECT_FALSE(parseDType(""));
  EXPECT_EQ(shapeToString({}), "[]");
  EXPECT_EQ(shapeToString({2, 3}), "[2, 3]");
}

//===----------------------------------------------------------------------===//
// Round trips
//===----------------------------------------------------------------------===//

TEST(SafetensorsRoundTrip, EveryDTypeWithMatrixScalarAndEmptyShapes) {
  struct Case {
    DType dtype;
    std::vector<double> values; // Six values, all exactly representable.
  };
  const std::vector<Case> cases = {
      {DType::F64, {0.1, -1e300, 5e-324, kInf, -0.0, kNaN}},
      {DType::F32, {0.5, -3.25, std::ldexp(1.0, -149), 3.4028234663852886e38, -kInf, -0.0}},
      {DType::F16, {65504, -std::ldexp(1.0, -24), 0.333251953125, kInf, kNaN, -0.0}},
      {DType::BF16, {3.3895313892515355e38, std::ldexp(1.0, -133), -1.5, -kInf, kNaN, 0.0}},
      {DType::F8_E4M3, {448, -448, std::ldexp(1.0, -9), 1.125, kNaN, -0.0}},
      {DType::F8_E5M2, {57344, -std::ldexp(1.0, -16), 1.25, kInf, -kInf, kNaN}},
      {DType::I64, {-9223372036854775808.0, 9007199254740992.0, -1, 0, 42, -7}},
      {DType::I32, {-2147483648.0, 2147483647.0, 0, -1, 5, 6}},
      {DType::I16, {-32768, 32767, 0, -1, 5, 6}},
      {DType::I8, {-128, 127, 0, -1, 5, 6}},
      {DType::U8, {0, 255, 1, 128, 7, 200}},
      {DType::BOOL, {0, 1, 1, 0, 1, 0}},
  };
  ASSERT_EQ(cases.size(), std::size(kAllDTypes));
  Writer writer;
  std::string error;
  for (const Case &c : cases) {
    std::string base = dtypeName(c.dtype);
    ASSERT_TRUE(writer.add(base + ".matrix", c.dtype, {2, 3}, c.values, error)) << error;
    ASSERT_TRUE(writer.add(base + ".scalar", c.dtype, {}, {c.values[1]}, error)) << error;
    ASSERT_TRUE(writer.add(base + ".empty", c.dtype, {0, 4}, {}, error)) << error;
  }
  std::vector<uint8_t> bytes = writer.serialize();
  ASSERT_FALSE(bytes.empty());
  Reader reader = mustRead(bytes);
  EXPECT_EQ(reader.tensors().size(), 3 * cases.size());
  for (const Case &c : cases) {
    std::string base = dtypeName(c.dtype);
    std::vector<double> out;
    std::vector<int64_t> matrixShape = {2, 3};
    ASSERT_TRUE(reader.readAsDouble(base + ".matrix", out, error, &matrixShape)) << error;
    ASSERT_EQ(out.size(), 6u);
    for (size_t i = 0; i < 6; ++i)
      EXPECT_TRUE(sameValue(out[i], c.values[i]))
          << base << "[" << i << "]: " << out[i] << " vs " << c.values[i];

    const TensorInfo *scalar = reader.find(base + ".scalar");
    ASSERT_NE(scalar, nullptr);
    EXPECT_EQ(scalar->dtype, c.dtype);
    EXPECT_TRUE(scalar->shape.empty());
    EXPECT_EQ(scalar->numElements(), 1);
    EXPECT_EQ(scalar->byteSize(), dtypeSize(c.dtype));
    ASSERT_TRUE(reader.readAsDouble(base + ".scalar", out, error)) << error;
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(sameValue(out[0], c.values[1])) << base;

    const TensorInfo *empty = reader.find(base + ".empty");
    ASSERT_NE(empty, nullptr);
    EXPECT_EQ(empty->shape, (std::vector<int64_t>{0, 4}));
    EXPECT_EQ(empty->numElements(), 0);
    EXPECT_EQ(empty->begin, empty->end);
    out.assign(3, 1.0);
    ASSERT_TRUE(reader.readAsDouble(base + ".empty", out, error)) << error;
    EXPECT_TRUE(out.empty());
  }
}

TEST(SafetensorsRoundTrip, RawBytesAndTensorOrder) {
  Writer writer;
  std::string error;
  // Added out of name order: the file keeps the order of add().
  ASSERT_TRUE(writer.addRaw("z", DType::U8, {3}, {1, 2, 3}, error)) << error;
  ASSERT_TRUE(writer.addRaw("a", DType::I16, {2}, {0x34, 0x12, 0xff, 0xff}, error)) << error;
  Reader reader = mustRead(writer.serialize());
  ASSERT_EQ(reader.tensors().size(), 2u);
  EXPECT_EQ(reader.tensors()[0].name, "z");
  EXPECT_EQ(reader.tensors()[0].begin, 0u);
  EXPECT_EQ(reader.tensors()[1].name, "a");
  EXPECT_EQ(reader.tensors()[1].begin, 3u);
  EXPECT_EQ(std::memcmp(reader.data(reader.tensors()[0]), "\x01\x02\x03", 3), 0);
  std::vector<double> out;
  ASSERT_TRUE(reader.readAsDouble("a", out, error)) << error;
  EXPECT_EQ(out, (std::vector<double>{0x1234, -1}));
  EXPECT_EQ(reader.find("missing"), nullptr);
}

TEST(SafetensorsRoundTrip, Metadata) {
  Writer writer;
  std::string error;
  ASSERT_TRUE(writer.setMetadata("format", "pt", error)) << error;
  ASSERT_TRUE(writer.setMetadata("quote\"back\\slash",
                                 "line\nbreak\ttab \x01 \xc3\xa9 \xe2\x82\xac", error))
      << error;
  ASSERT_TRUE(writer.setMetadata("empty", "", error)) << error;
  ASSERT_TRUE(writer.setMetadata("format", "kiln", error)) << error; // Replaces.
  ASSERT_TRUE(writer.add("w", DType::F32, {1}, {1.0}, error)) << error;
  Reader reader = mustRead(writer.serialize());
  std::map<std::string, std::string> expected = {
      {"format", "kiln"},
      {"quote\"back\\slash", "line\nbreak\ttab \x01 \xc3\xa9 \xe2\x82\xac"},
      {"empty", ""}};
  EXPECT_EQ(reader.metadata(), expected);
  ASSERT_EQ(reader.tensors().size(), 1u);

  Writer bad;
  EXPECT_FALSE(bad.setMetadata("k", "\xff", error));
  EXPECT_TRUE(contains(error, {"'k'", "UTF-8"}));
  EXPECT_FALSE(bad.setMetadata("\xc0\x80", "v", error)); // Overlong NUL.
  EXPECT_TRUE(contains(error, {"UTF-8"}));
}

TEST(SafetensorsRoundTrip, EmptyFile) {
  Writer writer;
  std::vector<uint8_t> bytes = writer.serialize();
  // "{}" padded to 8 bytes.
  std::vector<uint8_t> expected = rawFile(8, "{}      ");
  EXPECT_EQ(bytes, expected);
  Reader reader = mustRead(bytes);
  EXPECT_TRUE(reader.tensors().empty());
  EXPECT_TRUE(reader.metadata().empty());
}

TEST(SafetensorsRoundTrip, ExactBytesOfTinyFile) {
  Writer writer;
  std::string error;
  ASSERT_TRUE(writer.setMetadata("format", "pt", error)) << error;
  ASSERT_TRUE(writer.add("a", DType::F32, {2}, {1.0, -2.0}, error)) << error;
  // 85 bytes of JSON, padded with 3 spaces to 88 = 0x58.
  const std::string header = "{\"__metadata__\":{\"format\":\"pt\"},"
                             "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}   ";
  ASSERT_EQ(header.size(), 88u);
  std::vector<uint8_t> expected = {0x58, 0, 0, 0, 0, 0, 0, 0};
  expected.insert(expected.end(), header.begin(), header.end());
  for (uint8_t b : {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0}) // 1.0f, -2.0f
    expected.push_back(b);
  EXPECT_EQ(writer.serialize(), expected);

  std::vector<uint8_t> viaOut;
  ASSERT_TRUE(writer.serialize(viaOut, error)) << error;
  EXPECT_EQ(viaOut, expected);
}

//===----------------------------------------------------------------------===//
// Strict reader checks, one per rule
//===----------------------------------------------------------------------===//

TEST(SafetensorsReject, FileShorterThanLengthPrefix) {
  EXPECT_TRUE(contains(rejectMessage({1, 2, 3, 4, 5}), {"5 bytes", "too short", "8-byte"}));
  EXPECT_TRUE(contains(rejectMessage({}), {"0 bytes", "too short"}));
}

TEST(SafetensorsReject, HeaderLengthOverCap) {
  EXPECT_TRUE(contains(rejectMessage(rawFile(100'000'001, "{}")),
                       {"header length 100000001", "limit of 100000000"}));
  // The largest u64 must not wrap around in the size arithmetic.
  EXPECT_TRUE(contains(rejectMessage(rawFile(UINT64_MAX, "{}")),
                       {"header length 18446744073709551615", "limit"}));
}

TEST(SafetensorsReject, HeaderLengthPastEndOfFile) {
  EXPECT_TRUE(contains(rejectMessage(rawFile(3, "{}")),
                       {"header length 3", "exceeds the 2 bytes", "truncated"}));
  // Exactly at the cap but still larger than the file.
  EXPECT_TRUE(contains(rejectMessage(rawFile(100'000'000, "{}")),
                       {"header length 100000000", "exceeds the 2 bytes"}));
}

TEST(SafetensorsReject, HeaderNotValidJson) {
  EXPECT_TRUE(contains(rejectMessage(file("{\"a\":")), {"not valid JSON"}));
  EXPECT_TRUE(contains(rejectMessage(file("")), {"not valid JSON"}));
  EXPECT_TRUE(contains(rejectMessage(file(std::string("{}\0\0", 4))),
                       {"not valid JSON", "NUL byte at header offset 2"}));
  EXPECT_TRUE(contains(rejectMessage(file(std::string("{}\0xyz", 6))), {"not valid JSON"}));
  EXPECT_TRUE(contains(rejectMessage(file("{\"\xff\":{}}")), {"not valid JSON"})); // Bad UTF-8.
  EXPECT_TRUE(contains(rejectMessage(file("{} {}")), {"not valid JSON"}));
  EXPECT_TRUE(
      contains(rejectMessage(file("{\"w\":{\"shape\":[1e400]}}")), {"not valid JSON", "1e400"}));
}

TEST(SafetensorsReject, HeaderNotAnObject) {
  EXPECT_TRUE(contains(rejectMessage(file("[1, 2]")), {"must be a JSON object", "array"}));
  EXPECT_TRUE(contains(rejectMessage(file("\"x\"")), {"must be a JSON object", "string"}));
}

TEST(SafetensorsReject, HeaderNotStartingWithBrace) {
  // Valid JSON objects, but other readers insist on '{' as the first byte.
  EXPECT_TRUE(contains(rejectMessage(file(" {}")), {"must start with '{'", "0x20"}));
  EXPECT_TRUE(contains(rejectMessage(file("\n{}")), {"must start with '{'", "0x0a"}));
}

TEST(SafetensorsReject, DuplicateTensorName) {
  std::string header = "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                       "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}";
  EXPECT_TRUE(contains(rejectMessage(file(header, 2)), {"duplicate tensor name 'a'"}));
}

TEST(SafetensorsReject, DuplicateKeysInsideEntriesAndMetadata) {
  std::string entry = "{\"a\":{\"dtype\":\"U8\",\"dtype\":\"I8\",\"shape\":[1],"
                      "\"data_offsets\":[0,1]}}";
  EXPECT_TRUE(contains(rejectMessage(file(entry, 1)), {"tensor 'a'", "duplicate key 'dtype'"}));
  std::string meta = "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}";
  EXPECT_TRUE(contains(rejectMessage(file(meta)), {"__metadata__", "duplicate key 'k'"}));
  std::string twoMeta = "{\"__metadata__\":{},\"__metadata__\":{}}";
  EXPECT_TRUE(contains(rejectMessage(file(twoMeta)), {"more than one \"__metadata__\""}));
}

TEST(SafetensorsReject, EntryNotAnObject) {
  EXPECT_TRUE(contains(rejectMessage(file("{\"w\":[0,4]}")),
                       {"tensor 'w'", "must be a JSON object", "array"}));
}

TEST(SafetensorsReject, EntryMissingKey) {
  EXPECT_TRUE(contains(rejectMessage(file("{\"w\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1)),
                       {"tensor 'w'", "missing key 'shape'"}));
  EXPECT_TRUE(contains(rejectMessage(file("{\"w\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1)),
                       {"tensor 'w'", "missing key 'dtype'"}));
  EXPECT_TRUE(contains(rejectMessage(file("{\"w\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1)),
                       {"tensor 'w'", "missing key 'data_offsets'"}));
}

TEST(SafetensorsReject, EntryExtraKey) {
  std::string header =
      "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"stride\":[1]}}";
  EXPECT_TRUE(contains(rejectMessage(file(header, 1)), {"tensor 'w'", "unexpected key 'stride'"}));
}

TEST(SafetensorsReject, ControlCharactersInNamesKeepTheMessageOnOneLine) {
  // JSON "\n" in a tensor name and a key: quoted as \x0a.
  std::string header =
      "{\"w\\n1\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"a\\nb\":[1]}}";
  const std::string message = rejectMessage(file(header, 1));
  EXPECT_TRUE(contains(message, {"tensor 'w\\x0a1'", "unexpected key 'a\\x0ab'"})) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

TEST(SafetensorsReject, UnknownDType) {
  auto withDType = [](const std::string &dtype) {
    return file("{\"w\":{\"dtype\":" + dtype + ",\"shape\":[1],\"data_offsets\":[0,1]}}", 1);
  };
  EXPECT_TRUE(contains(rejectMessage(withDType("\"F128\"")),
                       {"tensor 'w'", "unknown dtype 'F128'", "F32", "BOOL"}));
  EXPECT_TRUE(contains(rejectMessage(withDType("\"u8\"")), {"unknown dtype 'u8'"}));
  EXPECT_TRUE(contains(rejectMessage(withDType("4")), {"tensor 'w'", "dtype must be a string"}));
}

TEST(SafetensorsReject, ShapeNotArrayOfNonNegativeIntegers) {
  auto withShape = [](const std::string &shape) {
    return file("{\"w\":{\"dtype\":\"U8\",\"shape\":" + shape + ",\"data_offsets\":[0,1]}}", 1);
  };
  EXPECT_TRUE(contains(rejectMessage(withShape("1")), {"tensor 'w'", "shape must be an array"}));
  EXPECT_TRUE(contains(rejectMessage(withShape("[1, -1]")),
                       {"tensor 'w'", "dimension 1", "-1", "non-negative integer"}));
  EXPECT_TRUE(contains(rejectMessage(withShape("[1.0]")), {"dimension 0", "non-negative integer"}));
  EXPECT_TRUE(contains(rejectMessage(withShape("[\"1\"]")), {"dimension 0", "string"}));
  EXPECT_TRUE(
      contains(rejectMessage(withShape("[9223372036854775808]")), {"dimension 0", "below 2^63"}));
}

TEST(SafetensorsReject, DataOffsetsNotTwoNonNegativeIntegers) {
  auto withOffsets = [](const std::string &offsets) {
    return file("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":" + offsets + "}}", 1);
  };
  for (const char *bad : {"[0]", "[0,1,2]", "[-1,0]", "[0,1.5]", "{\"0\":1}", "[0,\"1\"]", "7",
                          "[0,18446744073709551616]"})
    EXPECT_TRUE(contains(rejectMessage(withOffsets(bad)),
                         {"tensor 'w'", "data_offsets must be an array of two non-negative"}))
        << bad;
}

TEST(SafetensorsReject, DataOffsetsBeginAfterEnd) {
  std::string header = "{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,0]}}";
  EXPECT_TRUE(contains(rejectMessage(file(header, 4)),
                       {"tensor 'w'", "[4, 0]", "begin > end", "begin <= end"}));
}

TEST(SafetensorsReject, ByteSizeMismatchExactMessage) {
  std::string header = "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[64],"
                       "\"data_offsets\":[0,100]}}";
  std::string error;
  auto reader = Reader::fromBytes(file(header, 100), "params.safetensors", error);
  EXPECT_FALSE(reader);
  EXPECT_EQ(error, "params.safetensors: tensor 'model.norm.weight': data_offsets [0, 100] span "
                   "100 bytes but F32 shape [64] needs 256");
}

TEST(SafetensorsReject, ElementCountOverflow) {
  // 2^32 * 2^32 overflows the element count.
  std::string product = "{\"w\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],"
                        "\"data_offsets\":[0,0]}}";
  EXPECT_TRUE(contains(rejectMessage(file(product)), {"tensor 'w'", "too large", "64 bits"}));
  // 2^62 elements fit, but times 4 bytes does not.
  std::string bytes = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],"
                      "\"data_offsets\":[0,0]}}";
  EXPECT_TRUE(contains(rejectMessage(file(bytes)), {"tensor 'w'", "F32", "too large"}));
  // A zero dimension makes the tensor empty however large the others are.
  std::string empty = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,0],"
                      "\"data_offsets\":[0,0]}}";
  Reader reader = mustRead(file(empty));
  EXPECT_EQ(reader.tensors()[0].numElements(), 0);
}

TEST(SafetensorsReject, FirstTensorNotAtZero) {
  std::string header = "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}";
  EXPECT_TRUE(
      contains(rejectMessage(file(header, 8)), {"tensor 'w'", "[4, 8]", "must begin at offset 0"}));
}

TEST(SafetensorsReject, GapBetweenTensors) {
  std::string header = "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                       "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[6,10]}}";
  EXPECT_TRUE(contains(rejectMessage(file(header, 10)),
                       {"tensor 'b'", "gap of 2 bytes", "after tensor 'a'", "ends at 4"}));
}

TEST(SafetensorsReject, OverlappingTensors) {
  std::string header = "{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
                       "\"b\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[4,12]}}";
  EXPECT_TRUE(contains(rejectMessage(file(header, 12)),
                       {"tensor 'b'", "[4, 12]", "overlap tensor 'a'", "begin at 8"}));
  std::string same = "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                     "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}";
  EXPECT_TRUE(contains(rejectMessage(file(same, 4)), {"tensor 'b'", "overlap tensor 'a'"}));
}

TEST(SafetensorsReject, TrailingBytesAfterLastTensor) {
  std::string header = "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}";
  EXPECT_TRUE(
      contains(rejectMessage(file(header, 7)), {"3 trailing bytes", "'w'", "must end exactly"}));
  EXPECT_TRUE(contains(rejectMessage(file("{}", 1)), {"1 trailing bytes"}));
}

TEST(SafetensorsReject, BufferShorterThanTensors) {
  std::string header = "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}";
  EXPECT_TRUE(contains(rejectMessage(file(header, 3)), {"need 4 bytes", "has 3", "truncated"}));
}

TEST(SafetensorsReject, MetadataNotObjectOfStrings) {
  EXPECT_TRUE(contains(rejectMessage(file("{\"__metadata__\":[\"a\"]}")),
                       {"__metadata__ must be a JSON object", "array"}));
  EXPECT_TRUE(contains(rejectMessage(file("{\"__metadata__\":{\"epoch\":3}}")),
                       {"__metadata__ key 'epoch'", "must map to a string", "number 3"}));
  EXPECT_TRUE(contains(rejectMessage(file("{\"__metadata__\":{\"x\":null}}")),
                       {"__metadata__ key 'x'", "null"}));
}

//===----------------------------------------------------------------------===//
// Valid edge cases the reader must accept
//===----------------------------------------------------------------------===//

TEST(SafetensorsAccept, ZeroElementTensorsAndFileOrder) {
  // Header order differs from offset order; zero-size tensors sit between.
  std::string header = "{\"late\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]},"
                       "\"none\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                       "\"early\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                       "\"tail\":{\"dtype\":\"F64\",\"shape\":[3,0],\"data_offsets\":[6,6]}}   ";
  Reader reader = mustRead(file(header, 6));
  std::vector<std::string> names;
  for (const TensorInfo &t : reader.tensors())
    names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"early", "none", "late", "tail"}));
  EXPECT_EQ(reader.find("tail")->numElements(), 0);
}

TEST(SafetensorsAccept, OnlyZeroSizeTensors) {
  std::string header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
                       "\"b\":{\"dtype\":\"BF16\",\"shape\":[0,5],\"data_offsets\":[0,0]}}";
  Reader reader = mustRead(file(header));
  ASSERT_EQ(reader.tensors().size(), 2u);
  EXPECT_EQ(reader.tensors()[0].name, "a"); // Ties broken by name.
}

TEST(SafetensorsAccept, TruncationsAndByteFlipsAreRejectedOrConsistent) {
  Writer writer;
  std::string error;
  ASSERT_TRUE(writer.setMetadata("format", "pt", error)) << error;
  ASSERT_TRUE(writer.add("a", DType::F16, {2, 2}, {1, 2, 3, 4}, error)) << error;
  ASSERT_TRUE(writer.add("b", DType::I8, {3}, {-1, 0, 1}, error)) << error;
  const std::vector<uint8_t> good = writer.serialize();
  auto check = [&](std::vector<uint8_t> bytes, const std::string &what) {
    std::string err;
    auto reader = Reader::fromBytes(std::move(bytes), "f", err);
    if (!reader) {
      EXPECT_FALSE(err.empty()) << what;
      return;
    }
    // Whatever survives must describe a contiguous buffer we can decode.
    uint64_t expected = 0;
    for (const TensorInfo &t : reader->tensors()) {
      EXPECT_EQ(t.begin, expected) << what;
      expected = t.end;
      std::vector<double> out;
      std::string readError;
      if (reader->readAsDouble(t.name, out, readError)) {
        EXPECT_EQ(out.size(), static_cast<size_t>(t.numElements())) << what;
      }
    }
  };
  for (size_t len = 0; len < good.size(); ++len)
    check(std::vector<uint8_t>(good.begin(), good.begin() + len),
          "truncated to " + std::to_string(len));
  for (size_t i = 0; i < good.size(); ++i) {
    for (uint8_t mask : {0x01, 0x02, 0x08, 0x20, 0x80, 0xff}) {
      std::vector<uint8_t> bytes = good;
      bytes[i] ^= mask;
      check(std::move(bytes), "byte " + std::to_string(i) + " ^ " + std::to_string(mask));
    }
  }
}

//===----------------------------------------------------------------------===//
// readAsDouble
//===----------------------------------------------------------------------===//

TEST(SafetensorsReadAsDouble, MissingTensorAndShapeMismatch) {
  Writer writer;
  std::string error;
  ASSERT_TRUE(writer.add("w", DType::F32, {2, 3}, std::vector<double>(6, 1.0), error)) << error;
  std::string bytesError;
  auto reader = Reader::fromBytes(writer.serialize(), "params.safetensors", bytesError);
  ASSERT_TRUE(reader) << bytesError;
  std::vector<double> out;
  EXPECT_FALSE(reader->readAsDouble("v", out, error));
  EXPECT_TRUE(contains(error, {"params.safetensors", "no tensor named 'v'"}));
  std::vector<int64_t> expected = {3, 2};
  EXPECT_FALSE(reader->readAsDouble("w", out, error, &expected));
  EXPECT_EQ(error, "params.safetensors: tensor 'w' has shape [2, 3] but shape [3, 2] was expected");
}

TEST(SafetensorsReadAsDouble, RejectsValuesThatCannotBeRepresented) {
  Writer writer;
  std::string error;
  ASSERT_TRUE(writer.addRaw("flag", DType::BOOL, {2}, {0, 1}, error)) << error;
  // 2^53 + 1 as I64 has no exact double.
  std::vector<uint8_t> big = {0x01, 0, 0, 0, 0, 0, 0x20, 0};
  ASSERT_TRUE(writer.addRaw("big", DType::I64, {}, big, error)) << error;
  std::vector<uint8_t> max = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
  ASSERT_TRUE(writer.addRaw("max", DType::I64, {}, max, error)) << error;
  Reader reader = mustRead(writer.serialize());
  std::vector<double> out;
  EXPECT_FALSE(reader.readAsDouble("big", out, error));
  EXPECT_TRUE(contains(error, {"tensor 'big'", "9007199254740993", "exactly"}));
  EXPECT_FALSE(reader.readAsDouble("max", out, error));
  EXPECT_TRUE(contains(error, {"tensor 'max'", "9223372036854775807"}));

  // A BOOL byte other than 0/1 can only come from a foreign writer.
  std::string header = "{\"b\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[0,2]}}";
  std::vector<uint8_t> bytes = file(header, 2);
  bytes.back() = 2;
  Reader bools = mustRead(bytes);
  EXPECT_FALSE(bools.readAsDouble("b", out, error));
  EXPECT_TRUE(contains(error, {"tensor 'b'", "element 1", "BOOL byte is 2"}));
}

//===----------------------------------------------------------------------===//
// Writer validation and float rounding
//===----------------------------------------------------------------------===//

TEST(SafetensorsWriter, RejectsBadTensors) {
  Writer writer;
  std::string error;
  ASSERT_TRUE(writer.add("w", DType::F32, {1}, {1.0}, error)) << error;
  EXPECT_FALSE(writer.add("w", DType::F32, {1}, {1.0}, error));
  EXPECT_TRUE(contains(error, {"tensor 'w'", "already added"}));
  EXPECT_FALSE(writer.addRaw("w", DType::U8, {1}, {1}, error));
  EXPECT_TRUE(contains(error, {"tensor 'w'", "already added"}));
  EXPECT_FALSE(writer.add("__metadata__", DType::F32, {1}, {1.0}, error));
  EXPECT_TRUE(contains(error, {"'__metadata__'", "reserved"}));
  EXPECT_FALSE(writer.add("bad\xff", DType::F32, {1}, {1.0}, error));
  EXPECT_TRUE(contains(error, {"UTF-8"}));
  EXPECT_FALSE(writer.add("neg", DType::F32, {2, -1}, {}, error));
  EXPECT_TRUE(contains(error, {"tensor 'neg'", "[2, -1]", "dimension 1 is negative"}));
  EXPECT_FALSE(writer.add("count", DType::F32, {2, 2}, {1, 2, 3}, error));
  EXPECT_TRUE(contains(error, {"tensor 'count'", "[2, 2] has 4 elements", "3 values"}));
  EXPECT_FALSE(writer.add("huge", DType::F32, {1LL << 62, 1LL << 62}, {}, error));
  EXPECT_TRUE(contains(error, {"tensor 'huge'", "more elements than fit"}));
  EXPECT_FALSE(writer.add("frac", DType::I32, {2}, {1, 2.5}, error));
  EXPECT_TRUE(contains(error, {"tensor 'frac'", "element 1", "2.5 is not an integer", "I32"}));
  EXPECT_FALSE(writer.add("range", DType::I8, {1}, {128}, error));
  EXPECT_TRUE(contains(error, {"tensor 'range'", "128 is out of range for I8 [-128, 127]"}));
  EXPECT_FALSE(writer.add("neg8", DType::U8, {1}, {-1}, error));
  EXPECT_TRUE(contains(error, {"-1 is out of range for U8"}));
  EXPECT_FALSE(writer.add("i64", DType::I64, {1}, {9223372036854775808.0}, error));
  EXPECT_TRUE(contains(error, {"out of range for I64"}));
  EXPECT_FALSE(writer.add("nan", DType::I16, {1}, {kNaN}, error));
  EXPECT_TRUE(contains(error, {"nan is not an integer"}));
  EXPECT_FALSE(writer.add("bool", DType::BOOL, {1}, {2}, error));
  EXPECT_TRUE(contains(error, {"tensor 'bool'", "not a valid BOOL"}));
  EXPECT_FALSE(writer.addRaw("raw", DType::F32, {3}, {0, 0, 0, 0}, error));
  EXPECT_TRUE(contains(error, {"tensor 'raw'", "4 bytes given", "F32 shape [3] needs 12"}));
  EXPECT_FALSE(writer.addRaw("rawbool", DType::BOOL, {2}, {1, 7}, error));
  EXPECT_TRUE(contains(error, {"tensor 'rawbool'", "element 1", "BOOL byte is 7"}));
  // Failed adds leave nothing behind.
  Reader reader = mustRead(writer.serialize());
  ASSERT_EQ(reader.tensors().size(), 1u);
  EXPECT_EQ(reader.tensors()[0].name, "w");
}

TEST(SafetensorsRounding, BF16TiesToEven) {
  const double ulp = std::ldexp(1.0, -7);                         // BF16 spacing in [1, 2).
  EXPECT_EQ(encodeBits(DType::BF16, 1.0 + ulp / 2), 0x3F80u);     // Tie, down to even.
  EXPECT_EQ(encodeBits(DType::BF16, 1.0 + 3 * ulp / 2), 0x3F82u); // Tie, up to even.
  EXPECT_EQ(encodeBits(DType::BF16, -(1.0 + ulp / 2)), 0xBF80u);
  // Just above a tie by less than a float ulp: rounding through float first
  // would make this an exact tie and round down; direct rounding goes up.
  EXPECT_EQ(encodeBits(DType::BF16, 1.0 + ulp / 2 + std::ldexp(1.0, -40)), 0x3F81u);
  EXPECT_EQ(encodeBits(DType::BF16, 1.0 + ulp / 2 - std::ldexp(1.0, -40)), 0x3F80u);
  // Carry out of the mantissa into the exponent.
  EXPECT_EQ(encodeBits(DType::BF16, 2.0 - ulp / 4), 0x4000u);
  // Smallest subnormal is 2^-133; half of it ties to zero, 1.5x to 2^-132.
  EXPECT_EQ(encodeBits(DType::BF16, std::ldexp(1.0, -134)), 0x0000u);
  EXPECT_EQ(encodeBits(DType::BF16, std::ldexp(3.0, -134)), 0x0002u);
  EXPECT_EQ(encodeBits(DType::BF16, 0.1), 0x3DCDu);
  EXPECT_TRUE(contains(encodeError(DType::BF16, 3.4e38), {"out of range for BF16"}));
}

TEST(SafetensorsRounding, F16TiesToEven) {
  const double ulp = std::ldexp(1.0, -10);
  EXPECT_EQ(encodeBits(DType::F16, 1.0 + ulp / 2), 0x3C00u);
  EXPECT_EQ(encodeBits(DType::F16, 1.0 + 3 * ulp / 2), 0x3C02u);
  EXPECT_EQ(encodeBits(DType::F16, 1.0 + ulp / 2 + std::ldexp(1.0, -40)), 0x3C01u);
  EXPECT_EQ(encodeBits(DType::F16, std::ldexp(1.0, -25)), 0x0000u); // Half the min subnormal.
  EXPECT_EQ(encodeBits(DType::F16, std::ldexp(3.0, -25)), 0x0002u);
  EXPECT_EQ(encodeBits(DType::F16, -std::ldexp(1.0, -26)), 0x8000u); // Rounds to -0.
  // Largest subnormal + half ulp ties up into the smallest normal.
  EXPECT_EQ(encodeBits(DType::F16, std::ldexp(1023.5, -24)), 0x0400u);
  EXPECT_EQ(encodeBits(DType::F16, 65519.0), 0x7BFFu); // Below max + half ulp: 65504.
  EXPECT_TRUE(
      contains(encodeError(DType::F16, 65520.0), {"65520 is out of range for F16", "65504"}));
  EXPECT_EQ(encodeBits(DType::F16, kInf), 0x7C00u);
  EXPECT_EQ(encodeBits(DType::F16, -kInf), 0xFC00u);
  EXPECT_TRUE(std::isnan(decodeBits(DType::F16, encodeBits(DType::F16, kNaN))));
}

TEST(SafetensorsRounding, F32AndF8) {
  EXPECT_EQ(encodeBits(DType::F32, 0.1), 0x3DCCCCCDu);
  EXPECT_EQ(encodeBits(DType::F32, 1.0 + std::ldexp(1.0, -24)), 0x3F800000u);
  EXPECT_EQ(encodeBits(DType::F32, 1.0 + std::ldexp(3.0, -24)), 0x3F800002u);
  EXPECT_TRUE(contains(encodeError(DType::F32, 1e39), {"out of range for F32"}));
  // F8_E4M3: max 448 (mantissa 110, even), next pattern is NaN, so 464 is a
  // tie that rounds down to 448 and anything above overflows.
  EXPECT_EQ(encodeBits(DType::F8_E4M3, 464.0), 0x7Eu);
  EXPECT_TRUE(contains(encodeError(DType::F8_E4M3, 465.0), {"out of range for F8_E4M3", "448"}));
  EXPECT_TRUE(contains(encodeError(DType::F8_E4M3, kInf), {"F8_E4M3", "no infinities"}));
  EXPECT_TRUE(std::isnan(decodeBits(DType::F8_E4M3, 0x7F)));
  EXPECT_TRUE(std::isnan(decodeBits(DType::F8_E4M3, 0xFF)));
  EXPECT_EQ(decodeBits(DType::F8_E4M3, 0x78), 256.0); // All-ones exponent is finite.
  EXPECT_EQ(decodeBits(DType::F8_E4M3, 0x01), std::ldexp(1.0, -9));
  EXPECT_EQ(decodeBits(DType::F8_E5M2, 0x7C), kInf);
  EXPECT_EQ(decodeBits(DType::F8_E5M2, 0x7B), 57344.0);
  EXPECT_TRUE(contains(encodeError(DType::F8_E5M2, 61440.0), {"out of range for F8_E5M2"}));
  EXPECT_EQ(encodeBits(DType::F8_E5M2, 61439.0), 0x7Bu);
}

TEST(SafetensorsRounding, EveryNarrowBitPatternRoundTrips) {
  for (DType dtype : {DType::F16, DType::BF16, DType::F8_E4M3, DType::F8_E5M2}) {
    const uint64_t count = uint64_t(1) << (8 * dtypeSize(dtype));
    int failures = 0;
    for (uint64_t bits = 0; bits < count && failures < 5; ++bits) {
      double v = decodeBits(dtype, bits);
      if (std::isnan(v))
        continue;
      uint64_t again = encodeBits(dtype, v);
      if (again != bits) {
        ++failures;
        ADD_FAILURE() << dtypeName(dtype) << " bits 0x" << std::hex << bits << " -> " << v
                      << " -> 0x" << again;
      }
    }
  }
}

//===----------------------------------------------------------------------===//
// Files
//===----------------------------------------------------------------------===//

TEST(SafetensorsFile, WriteAtomicThenOpen) {
  TempDir dir;
  std::string path = dir.path() + "/params.safetensors";
  writeText(path, "old contents");
  Writer writer;
  std::string error;
  ASSERT_TRUE(writer.add("w", DType::BF16, {2}, {1.5, -2}, error)) << error;
  ASSERT_TRUE(writer.writeAtomic(path, error)) << error;
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"params.safetensors"}));
  auto reader = Reader::open(path, error);
  ASSERT_TRUE(reader) << error;
  std::vector<double> out;
  ASSERT_TRUE(reader->readAsDouble("w", out, error)) << error;
  EXPECT_EQ(out, (std::vector<double>{1.5, -2}));
  EXPECT_EQ(reader->name(), path);
}

TEST(SafetensorsFile, OpenReportsPathAndReason) {
  TempDir dir;
  std::string error;
  std::string missing = dir.path() + "/missing.safetensors";
  EXPECT_FALSE(Reader::open(missing, error));
  EXPECT_TRUE(contains(error, {"missing.safetensors", "No such file"}));
  EXPECT_FALSE(Reader::open(dir.path(), error));
  EXPECT_TRUE(contains(error, {dir.path().c_str(), "not a regular file"}));
  std::string bad = dir.path() + "/bad.safetensors";
  writeText(bad, "abc");
  EXPECT_FALSE(Reader::open(bad, error));
  EXPECT_TRUE(contains(error, {"bad.safetensors: file is 3 bytes"}));
}

TEST(SafetensorsFile, WriteAtomicOntoDirectoryLeavesItAlone) {
  TempDir dir;
  std::string target = dir.path() + "/ckpt";
  ASSERT_EQ(::mkdir(target.c_str(), 0755), 0);
  writeText(target + "/keep", "keep");
  Writer writer;
  std::string error;
  ASSERT_TRUE(writer.add("w", DType::F32, {1}, {1}, error)) << error;
  EXPECT_FALSE(writer.writeAtomic(target, error));
  EXPECT_TRUE(contains(error, {"ckpt", "cannot rename", "left unchanged"}));
  struct stat st;
  ASSERT_EQ(::stat(target.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(readText(target + "/keep"), "keep");
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"ckpt"})) << "temp file left behind";
}

TEST(SafetensorsFile, WriteAtomicIntoMissingDirectoryFails) {
  TempDir dir;
  Writer writer;
  std::string error;
  EXPECT_FALSE(writer.writeAtomic(dir.path() + "/no/such/dir/x.safetensors", error));
  EXPECT_TRUE(contains(error, {"x.safetensors", "cannot create temporary file"}));
}

TEST(SafetensorsFile, WriteAtomicIntoUnwritableDirectoryLeavesFileIntact) {
  TempDir dir;
  std::string path = dir.path() + "/params.safetensors";
  writeText(path, "previous checkpoint");
  ASSERT_EQ(::chmod(dir.path().c_str(), 0555), 0);
  Writer writer;
  std::string error;
  ASSERT_TRUE(writer.add("w", DType::F32, {1}, {1}, error)) << error;

  if (::geteuid() != 0) {
    EXPECT_FALSE(writer.writeAtomic(path, error));
    EXPECT_TRUE(contains(error, {"params.safetensors", "Permission denied", "left unchanged"}));
  } else {
    // Root ignores directory permissions, so try as an unprivileged user in a
    // child process; the message comes back through a pipe.
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      if (::setgid(65534) != 0 || ::setuid(65534) != 0)
        ::_exit(3);
      std::string childError;
      bool ok = writer.writeAtomic(path, childError);
      (void)!::write(fds[1], childError.data(), childError.size());
      ::_exit(ok ? 1 : 0);
    }
    ::close(fds[1]);
    std::string childError;
    char buf[512];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof(buf))) > 0)
      childError.append(buf, static_cast<size_t>(n));
    ::close(fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    if (WEXITSTATUS(status) == 3)
      GTEST_SKIP() << "cannot drop root privileges to test permissions";
    EXPECT_EQ(WEXITSTATUS(status), 0) << "writeAtomic succeeded in an unwritable directory";
    EXPECT_TRUE(contains(childError, {"params.safetensors", "left unchanged"}));
  }
  EXPECT_EQ(readText(path), "previous checkpoint");
  ::chmod(dir.path().c_str(), 0700);
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"params.safetensors"}));
}
