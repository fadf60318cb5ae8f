//===- Safetensors.cpp - Safetensors dtypes, element codecs, reader -------===//
//
// The validating reader and the dtype conversions shared with the writer
// (SafetensorsWriter.cpp). Every public entry point catches all exceptions
// (nlohmann::json reports parse errors by throwing; allocation can throw
// std::bad_alloc) because callers are built with -fno-exceptions.
//
//===----------------------------------------------------------------------===//

#include "runtime/safetensors/Safetensors.h"
#include "runtime/io/OneLine.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

namespace kiln::safetensors {

namespace {

using nlohmann::json;

struct DTypeEntry {
  DType dtype;
  const char *name;
  size_t size;
};

// In enum order, so that dtypeName/dtypeSize can index it.
constexpr DTypeEntry kDTypes[] = {
    {DType::F64, "F64", 8},   {DType::F32, "F32", 4},         {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E5M2, "F8_E5M2", 1},
    {DType::I64, "I64", 8},   {DType::I32, "I32", 4},         {DType::I16, "I16", 2},
    {DType::I8, "I8", 1},     {DType::U8, "U8", 1},           {DType::BOOL, "BOOL", 1},
};

const DTypeEntry &entryFor(DType dtype) { return kDTypes[static_cast<size_t>(dtype)]; }

/// Shortest decimal that reads back as the same double, so messages show
/// "0.1" rather than "0.10000000000000001" but never hide a difference.
std::string formatDouble(double v) {
  char buf[64];
  // Integers print in full ("65520", not "6.552e+04") up to where %g would
  // print them in full anyway.
  if (std::isfinite(v) && v == std::trunc(v) && std::fabs(v) < 1e17) {
    std::snprintf(buf, sizeof(buf), "%.0f", v);
    return buf;
  }
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::isnan(v) || std::strtod(buf, nullptr) == v)
      break;
  }
  return buf;
}

std::string inQuotes(std::string_view s) { return "'" + io::oneLine(s) + "'"; }

uint64_t loadLE(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i)
    v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

void storeLE(uint8_t *p, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i)
    p[i] = static_cast<uint8_t>(v >> (8 * i));
}

/// A binary floating-point format narrower than double. `finiteOnlyNaN`
/// marks the "fn" formats (F8_E4M3) whose all-ones exponent still holds
/// finite values and only the all-ones pattern is NaN.
struct FloatFormat {
  int expBits;
  int mantBits;
  int bias;
  bool finiteOnlyNaN;

  uint64_t expMask() const { return (uint64_t(1) << expBits) - 1; }
  uint64_t mantMask() const { return (uint64_t(1) << mantBits) - 1; }
  uint64_t signBit() const { return uint64_t(1) << (expBits + mantBits); }
  uint64_t maxExpField() const { return finiteOnlyNaN ? expMask() : expMask() - 1; }
  uint64_t maxFiniteBits() const {
    return (maxExpField() << mantBits) | (finiteOnlyNaN ? mantMask() - 1 : mantMask());
  }
};

constexpr FloatFormat kF32{8, 23, 127, false};
constexpr FloatFormat kF16{5, 10, 15, false};
constexpr FloatFormat kBF16{8, 7, 127, false};
constexpr FloatFormat kF8E4M3{4, 3, 7, true};
constexpr FloatFormat kF8E5M2{5, 2, 15, false};

double decodeFloat(uint64_t bits, const FloatFormat &f) {
  bool negative = bits & f.signBit();
  uint64_t exp = (bits >> f.mantBits) & f.expMask();
  uint64_t mant = bits & f.mantMask();
  double magnitude;
  if (f.finiteOnlyNaN && exp == f.expMask() && mant == f.mantMask())
    magnitude = std::numeric_limits<double>::quiet_NaN();
  else if (!f.finiteOnlyNaN && exp == f.expMask())
    magnitude =
        mant ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else if (exp == 0)
    magnitude = std::ldexp(static_cast<double>(mant), 1 - f.bias - f.mantBits);
  else
    magnitude = std::ldexp(static_cast<double>(mant | (uint64_t(1) << f.mantBits)),
                           static_cast<int>(exp) - f.bias - f.mantBits);
  return negative ? -magnitude : magnitude;
}

/// Rounds to nearest, ties to even, with integer arithmetic on the scaled
/// significand so that the result depends neither on the FPU rounding mode
/// nor on an intermediate float (double -> float -> bf16 rounds twice and
/// gets ties wrong).
bool encodeFloat(double v, const FloatFormat &f, const char *dtypeName, uint64_t &bits,
                 std::string &whyNot) {
  uint64_t sign = std::signbit(v) ? f.signBit() : 0;
  if (std::isnan(v)) {
    bits = f.finiteOnlyNaN ? sign | (f.expMask() << f.mantBits) | f.mantMask()
                           : sign | (f.expMask() << f.mantBits) | (uint64_t(1) << (f.mantBits - 1));
    return true;
  }
  auto overflow = [&] {
    whyNot = formatDouble(v) + " is out of range for " + dtypeName + " (largest finite value " +
             formatDouble(decodeFloat(f.maxFiniteBits(), f)) + ")";
    return false;
  };
  if (std::isinf(v)) {
    if (f.finiteOnlyNaN) {
      whyNot = std::string(dtypeName) + " cannot represent " + formatDouble(v) +
               " (it has no infinities)";
      return false;
    }
    bits = sign | (f.expMask() << f.mantBits);
    return true;
  }
  double a = std::fabs(v);
  if (a == 0) {
    bits = sign;
    return true;
  }
  int frexpExp;
  std::frexp(a, &frexpExp);
  int e = frexpExp - 1; // a in [2^e, 2^(e+1)).
  const int emin = 1 - f.bias;
  if (e > static_cast<int>(f.maxExpField()) - f.bias)
    return overflow();
  const bool subnormal = e < emin;
  double q = std::ldexp(a, -(std::max(e, emin) - f.mantBits));
  double whole = std::floor(q);
  double frac = q - whole; // Exact (Sterbenz), so the tie test below is exact.
  uint64_t m = static_cast<uint64_t>(whole);
  if (frac > 0.5 || (frac == 0.5 && (m & 1)))
    ++m;
  uint64_t magnitude;
  if (subnormal) {
    // m == 2^mantBits is the smallest normal, whose encoding is m as well.
    magnitude = m;
  } else {
    if (m == (uint64_t(2) << f.mantBits)) {
      m >>= 1;
      ++e;
    }
    magnitude = (static_cast<uint64_t>(e + f.bias) << f.mantBits) | (m & f.mantMask());
  }
  if (magnitude > f.maxFiniteBits())
    return overflow();
  bits = sign | magnitude;
  return true;
}

const FloatFormat *floatFormatFor(DType dtype) {
  switch (dtype) {
  case DType::F32: return &kF32;
  case DType::F16: return &kF16;
  case DType::BF16: return &kBF16;
  case DType::F8_E4M3: return &kF8E4M3;
  case DType::F8_E5M2: return &kF8E5M2;
  default: return nullptr;
  }
}

bool encodeInt(DType dtype, double v, uint8_t *out, std::string &whyNot) {
  const char *name = dtypeName(dtype);
  if (!std::isfinite(v) || v != std::trunc(v)) {
    whyNot = formatDouble(v) + " is not an integer, which " + name + " needs";
    return false;
  }
  int64_t lo = 0, hi = 1; // BOOL
  switch (dtype) {
  case DType::I64:
    lo = std::numeric_limits<int64_t>::min();
    hi = std::numeric_limits<int64_t>::max();
    break;
  case DType::I32:
    lo = INT32_MIN;
    hi = INT32_MAX;
    break;
  case DType::I16:
    lo = INT16_MIN;
    hi = INT16_MAX;
    break;
  case DType::I8:
    lo = INT8_MIN;
    hi = INT8_MAX;
    break;
  case DType::U8:
    lo = 0;
    hi = UINT8_MAX;
    break;
  default: break;
  }
  // `v < hi + 1` rather than `v <= hi`: INT64_MAX is not a double and
  // converts to 2^63, which is already out of range; hi + 1 is exact for all.
  if (!(v >= static_cast<double>(lo) && v < static_cast<double>(hi) + 1.0)) {
    if (dtype == DType::BOOL)
      whyNot = formatDouble(v) + " is not a valid BOOL (expected 0 or 1)";
    else
      whyNot = formatDouble(v) + " is out of range for " + name + " [" + std::to_string(lo) + ", " +
               std::to_string(hi) + "]";
    return false;
  }
  int64_t i = static_cast<int64_t>(v);
  storeLE(out, static_cast<uint64_t>(i), dtypeSize(dtype));
  return true;
}

/// Reads a JSON integer that must lie in [0, max]; false for floats
/// (including 1.0 and integers too large for 64 bits, which nlohmann stores
/// as floats), negatives and non-numbers.
bool readNonNegative(const json &j, uint64_t max, uint64_t &out) {
  if (!j.is_number_integer()) // True for both signed and unsigned storage.
    return false;
  if (j.is_number_unsigned()) {
    out = j.get<uint64_t>();
    return out <= max;
  }
  int64_t v = j.get<int64_t>();
  if (v < 0)
    return false;
  out = static_cast<uint64_t>(v);
  return out <= max;
}

/// Compact JSON text for messages, shortened so a huge value cannot flood
/// the terminal.
std::string jsonText(const json &j) {
  std::string text = j.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 60)
    text = text.substr(0, 57) + "...";
  return text;
}

/// "array [0,1,2]": the type first, since "got 5" alone hides that the
/// problem is a number where an object belongs.
std::string describe(const json &j) { return std::string(j.type_name()) + " " + jsonText(j); }

/// Finds duplicate keys, which nlohmann::json silently collapses (last one
/// wins): a header that names a tensor twice is ambiguous and must not load.
struct DuplicateKeyFinder {
  struct Frame {
    std::set<std::string> keys;
    std::string key; // The most recent key, i.e. the one whose value is being parsed.
  };
  std::vector<Frame> stack;
  std::optional<std::string> message;

  bool operator()(int /*depth*/, json::parse_event_t event, json &parsed) {
    switch (event) {
    case json::parse_event_t::object_start: stack.emplace_back(); break;
    case json::parse_event_t::object_end:
      if (!stack.empty())
        stack.pop_back();
      break;
    case json::parse_event_t::key: {
      if (stack.empty())
        break;
      std::string key = parsed.get<std::string>();
      Frame &top = stack.back();
      if (!top.keys.insert(key).second && !message) {
        if (stack.size() == 1)
          message = key == "__metadata__" ? "header has more than one \"__metadata__\" entry"
                                          : "duplicate tensor name " + inQuotes(key) +
                                                " in header; names must be unique";
        else if (stack.size() == 2 && stack[0].key == "__metadata__")
          message = "__metadata__ has duplicate key " + inQuotes(key);
        else if (stack.size() == 2)
          message = "tensor " + inQuotes(stack[0].key) + ": duplicate key " + inQuotes(key);
        else
          message = "duplicate key " + inQuotes(key) + " in a nested header object";
      }
      top.key = std::move(key);
      break;
    }
    default: break;
    }
    return true;
  }
};

std::optional<uint64_t> checkedMul(uint64_t a, uint64_t b) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a)
    return std::nullopt;
  return a * b;
}

/// Element count of a validated (non-negative) shape, or nullopt if it
/// exceeds int64. Any zero dimension makes the tensor empty no matter how
/// large the others are, so it is checked before multiplying.
std::optional<uint64_t> elementCount(const std::vector<int64_t> &shape) {
  for (int64_t d : shape)
    if (d == 0)
      return 0;
  uint64_t n = 1;
  for (int64_t d : shape) {
    auto next = checkedMul(n, static_cast<uint64_t>(d));
    if (!next || *next > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return std::nullopt;
    n = *next;
  }
  return n;
}

std::string offsetsToString(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

} // namespace

//===----------------------------------------------------------------------===//
// DTypes and element codecs
//===----------------------------------------------------------------------===//

const char *dtypeName(DType dtype) { return entryFor(dtype).name; }

size_t dtypeSize(DType dtype) { return entryFor(dtype).size; }

std::optional<DType> parseDType(std::string_view name) {
  for (const DTypeEntry &e : kDTypes)
    if (name == e.name)
      return e.dtype;
  return std::nullopt;
}

std::string allDTypeNames() {
  std::string out;
  try {
    for (const DTypeEntry &e : kDTypes) {
      if (!out.empty())
        out += ", ";
      out += e.name;
    }
  } catch (...) {
  }
  return out;
}

std::string shapeToString(const std::vector<int64_t> &shape) {
  std::string out;
  try {
    out = "[";
    for (size_t i = 0; i < shape.size(); ++i) {
      if (i)
        out += ", ";
      out += std::to_string(shape[i]);
    }
    out += "]";
  } catch (...) {
  }
  return out;
}

int64_t TensorInfo::numElements() const {
  for (int64_t d : shape)
    if (d < 0)
      return -1;
  auto n = elementCount(shape);
  return n ? static_cast<int64_t>(*n) : -1;
}

bool encodeElement(DType dtype, double value, uint8_t *out, std::string &whyNot) {
  try {
    if (dtype == DType::F64) {
      uint64_t bits = 0;
      std::memcpy(&bits, &value, sizeof(bits));
      storeLE(out, bits, 8);
      return true;
    }
    if (const FloatFormat *f = floatFormatFor(dtype)) {
      uint64_t bits = 0;
      if (!encodeFloat(value, *f, dtypeName(dtype), bits, whyNot))
        return false;
      storeLE(out, bits, dtypeSize(dtype));
      return true;
    }
    return encodeInt(dtype, value, out, whyNot);
  } catch (...) {
    whyNot = "out of memory";
    return false;
  }
}

bool decodeElement(DType dtype, const uint8_t *in, double &out, std::string &whyNot) {
  try {
    uint64_t raw = loadLE(in, dtypeSize(dtype));
    switch (dtype) {
    case DType::F64: std::memcpy(&out, &raw, sizeof(out)); return true;
    case DType::F32: {
      uint32_t bits32 = static_cast<uint32_t>(raw);
      float f;
      std::memcpy(&f, &bits32, sizeof(f));
      out = f;
      return true;
    }
    case DType::I64: {
      int64_t v = static_cast<int64_t>(raw);
      double d = static_cast<double>(v);
      // d == 2^63 means v rounded up past INT64_MAX; casting back would be UB.
      if (d >= 9223372036854775808.0 || static_cast<int64_t>(d) != v) {
        whyNot = "I64 value " + std::to_string(v) + " cannot be represented exactly as a double";
        return false;
      }
      out = d;
      return true;
    }
    case DType::I32: out = static_cast<int32_t>(static_cast<uint32_t>(raw)); return true;
    case DType::I16: out = static_cast<int16_t>(static_cast<uint16_t>(raw)); return true;
    case DType::I8: out = static_cast<int8_t>(static_cast<uint8_t>(raw)); return true;
    case DType::U8: out = static_cast<double>(raw); return true;
    case DType::BOOL:
      if (raw > 1) {
        whyNot = "BOOL byte is " + std::to_string(raw) + ", expected 0 or 1";
        return false;
      }
      out = static_cast<double>(raw);
      return true;
    default: out = decodeFloat(raw, *floatFormatFor(dtype)); return true;
    }
  } catch (...) {
    whyNot = "out of memory";
    return false;
  }
}

//===----------------------------------------------------------------------===//
// Reader
//===----------------------------------------------------------------------===//

namespace {

/// All header and layout validation; throws nothing it does not catch
/// itself except std::bad_alloc, which fromBytes() turns into a message.
bool validate(const std::vector<uint8_t> &bytes, const std::string &file, uint64_t &bufferStart,
              std::vector<TensorInfo> &tensors, std::map<std::string, std::string> &metadata,
              std::string &error) {
  auto fail = [&](const std::string &what) {
    error = file + ": " + what;
    return false;
  };
  const uint64_t fileSize = bytes.size();
  if (fileSize < 8)
    return fail("file is " + std::to_string(fileSize) +
                " bytes, too short for the 8-byte header length prefix of a safetensors file");
  const uint64_t headerLen = loadLE(bytes.data(), 8);
  if (headerLen > kMaxHeaderSize)
    return fail("header length " + std::to_string(headerLen) + " exceeds the limit of " +
                std::to_string(kMaxHeaderSize) +
                " bytes (corrupt length prefix, or not a safetensors file)");
  // fileSize >= 8 here, so the subtraction cannot wrap.
  if (headerLen > fileSize - 8)
    return fail("header length " + std::to_string(headerLen) + " exceeds the " +
                std::to_string(fileSize - 8) +
                " bytes that follow the 8-byte length prefix (truncated file?)");
  bufferStart = 8 + headerLen;
  const uint64_t bufferSize = fileSize - bufferStart;

  const char *headerBegin = reinterpret_cast<const char *>(bytes.data()) + 8;
  const char *headerEnd = headerBegin + headerLen;
  // nlohmann's lexer treats NUL as end of input, so "{}\0garbage" would
  // parse; raw NUL is never valid JSON, and zero padding is a common writer bug.
  if (const void *nul = std::memchr(headerBegin, 0, headerLen))
    return fail("header is not valid JSON: NUL byte at header offset " +
                std::to_string(static_cast<const char *>(nul) - headerBegin) +
                " (headers must be padded with spaces, not zeros)");
  DuplicateKeyFinder finder;
  json header;
  try {
    header = json::parse(headerBegin, headerEnd, std::ref(finder));
  } catch (const json::exception &e) {
    return fail(std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object())
    return fail(std::string("header must be a JSON object mapping tensor names to "
                            "{dtype, shape, data_offsets}, got ") +
                header.type_name());
  // nlohmann skips leading whitespace; the reference reader does not, so a
  // file we accept must start with '{' for other tools to accept it too.
  if (headerBegin[0] != '{') {
    char shown[16];
    std::snprintf(shown, sizeof(shown), "0x%02x", static_cast<unsigned char>(headerBegin[0]));
    return fail(std::string("header must start with '{' at byte 8, found ") + shown +
                " (leading whitespace is not allowed)");
  }
  if (finder.message)
    return fail(*finder.message);

  for (const auto &[name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object())
        return fail("__metadata__ must be a JSON object of string to string, got " +
                    describe(value));
      for (const auto &[key, v] : value.items()) {
        if (!v.is_string())
          return fail("__metadata__ key " + inQuotes(key) + " must map to a string, got " +
                      describe(v));
        metadata.emplace(key, v.get<std::string>());
      }
      continue;
    }
    const std::string where = "tensor " + inQuotes(name) + ": ";
    if (!value.is_object())
      return fail(where +
                  "entry must be a JSON object with keys dtype, shape and "
                  "data_offsets, got " +
                  describe(value));
    for (const auto &item : value.items())
      if (item.key() != "dtype" && item.key() != "shape" && item.key() != "data_offsets")
        return fail(where + "unexpected key " + inQuotes(item.key()) +
                    " (allowed keys: dtype, shape, data_offsets)");
    for (const char *key : {"dtype", "shape", "data_offsets"})
      if (!value.contains(key))
        return fail(where + "missing key '" + key + "'");

    TensorInfo info;
    info.name = name;

    const json &dtype = value["dtype"];
    if (!dtype.is_string())
      return fail(where + "dtype must be a string such as \"F32\", got " + describe(dtype));
    auto parsed = parseDType(dtype.get<std::string>());
    if (!parsed)
      return fail(where + "unknown dtype " + inQuotes(dtype.get<std::string>()) +
                  " (expected one of " + allDTypeNames() + ")");
    info.dtype = *parsed;

    const json &shape = value["shape"];
    if (!shape.is_array())
      return fail(where + "shape must be an array of non-negative integers, got " +
                  describe(shape));
    for (size_t i = 0; i < shape.size(); ++i) {
      uint64_t d;
      if (!readNonNegative(shape[i], std::numeric_limits<int64_t>::max(), d))
        return fail(where + "shape " + jsonText(shape) + ": dimension " + std::to_string(i) +
                    " is " + describe(shape[i]) + ", expected a non-negative integer below 2^63");
      info.shape.push_back(static_cast<int64_t>(d));
    }

    const json &offsets = value["data_offsets"];
    uint64_t begin = 0, end = 0;
    if (!offsets.is_array() || offsets.size() != 2 ||
        !readNonNegative(offsets[0], std::numeric_limits<uint64_t>::max(), begin) ||
        !readNonNegative(offsets[1], std::numeric_limits<uint64_t>::max(), end))
      return fail(where +
                  "data_offsets must be an array of two non-negative integers "
                  "[begin, end], got " +
                  describe(offsets));
    if (begin > end)
      return fail(where + "data_offsets " + offsetsToString(begin, end) +
                  " has begin > end; expected begin <= end");
    info.begin = begin;
    info.end = end;

    auto count = elementCount(info.shape);
    std::optional<uint64_t> needed;
    if (count)
      needed = checkedMul(*count, dtypeSize(info.dtype));
    if (!needed)
      return fail(where + dtypeName(info.dtype) + " shape " + shapeToString(info.shape) +
                  " is too large: its byte size does not fit in 64 bits");
    if (end - begin != *needed)
      return fail(where + "data_offsets " + offsetsToString(begin, end) + " span " +
                  std::to_string(end - begin) + " bytes but " + dtypeName(info.dtype) + " shape " +
                  shapeToString(info.shape) + " needs " + std::to_string(*needed));
    tensors.push_back(std::move(info));
  }

  // Name breaks ties between empty tensors at the same offset so the order
  // is deterministic.
  std::sort(tensors.begin(), tensors.end(), [](const TensorInfo &a, const TensorInfo &b) {
    if (a.begin != b.begin)
      return a.begin < b.begin;
    if (a.end != b.end)
      return a.end < b.end;
    return a.name < b.name;
  });
  uint64_t expected = 0;
  const TensorInfo *previous = nullptr;
  for (const TensorInfo &t : tensors) {
    if (t.begin != expected) {
      std::string range = "data_offsets " + offsetsToString(t.begin, t.end);
      if (!previous)
        return fail("tensor " + inQuotes(t.name) + ": " + range +
                    " but the first tensor must begin at offset 0 (" + std::to_string(t.begin) +
                    " unused bytes at the start of the buffer)");
      if (t.begin > expected)
        return fail("tensor " + inQuotes(t.name) + ": " + range + " leave a gap of " +
                    std::to_string(t.begin - expected) + " bytes after tensor " +
                    inQuotes(previous->name) + ", which ends at " + std::to_string(expected) +
                    "; tensors must be contiguous");
      return fail("tensor " + inQuotes(t.name) + ": " + range + " overlap tensor " +
                  inQuotes(previous->name) + " " + offsetsToString(previous->begin, previous->end) +
                  "; expected it to begin at " + std::to_string(expected));
    }
    expected = t.end;
    previous = &t;
  }
  if (expected > bufferSize)
    return fail("tensors need " + std::to_string(expected) + " bytes of data but the file has " +
                std::to_string(bufferSize) + " after the header (truncated file?)");
  if (expected < bufferSize)
    return fail(std::to_string(bufferSize - expected) + " trailing bytes after the last tensor" +
                (previous ? " " + inQuotes(previous->name) : std::string()) +
                ", which ends at buffer offset " + std::to_string(expected) +
                "; the file must end exactly where the last tensor does");
  return true;
}

bool readWholeFile(const std::string &path, std::vector<uint8_t> &bytes, std::string &error) {
  auto failErrno = [&](const char *what) {
    error = path + ": " + what + ": " + std::strerror(errno);
    return false;
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return failErrno("cannot open for reading");
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0)
    return failErrno("cannot stat");
  if (!S_ISREG(st.st_mode)) {
    error = path + ": not a regular file";
    return false;
  }
  bytes.clear();
  bytes.reserve(static_cast<size_t>(st.st_size));
  // Read to EOF rather than trusting st_size, so a file that changes size
  // underneath us is still read consistently up to what read() returns.
  uint8_t chunk[1 << 16];
  while (true) {
    ssize_t n = ::read(fd, chunk, sizeof(chunk));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return failErrno("read failed");
    }
    if (n == 0)
      break;
    bytes.insert(bytes.end(), chunk, chunk + n);
  }
  return true;
}

} // namespace

std::optional<Reader> Reader::fromBytes(std::vector<uint8_t> bytes,
                                        const std::string &nameForMessages, std::string &error) {
  try {
    Reader reader;
    reader.name_ = nameForMessages;
    if (!validate(bytes, nameForMessages, reader.bufferStart_, reader.tensors_, reader.metadata_,
                  error))
      return std::nullopt;
    reader.bytes_ = std::move(bytes);
    for (size_t i = 0; i < reader.tensors_.size(); ++i)
      reader.index_.emplace(reader.tensors_[i].name, i);
    return reader;
  } catch (const std::bad_alloc &) {
    error = nameForMessages + ": out of memory while reading the safetensors header";
  } catch (const std::exception &e) {
    error = nameForMessages + ": internal error while reading: " + e.what();
  } catch (...) {
    error = nameForMessages + ": unknown internal error while reading";
  }
  return std::nullopt;
}

std::optional<Reader> Reader::open(const std::string &path, std::string &error) {
  try {
    std::vector<uint8_t> bytes;
    if (!readWholeFile(path, bytes, error))
      return std::nullopt;
    return fromBytes(std::move(bytes), path, error);
  } catch (const std::bad_alloc &) {
    error = path + ": out of memory while reading the file (it is read whole)";
  } catch (...) {
    error = path + ": unknown internal error while reading";
  }
  return std::nullopt;
}

const TensorInfo *Reader::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const uint8_t *Reader::data(const TensorInfo &tensor) const {
  // Guards against a TensorInfo from another Reader pointing past our bytes.
  if (tensor.begin > tensor.end || tensor.end > bytes_.size() - bufferStart_)
    return nullptr;
  return bytes_.data() + bufferStart_ + tensor.begin;
}

bool Reader::readAsDouble(std::string_view name, std::vector<double> &out, std::string &error,
                          const std::vector<int64_t> *expectedShape) const {
  try {
    const TensorInfo *t = find(name);
    if (!t) {
      error = name_ + ": no tensor named " + inQuotes(name) + " (the file has " +
              std::to_string(tensors_.size()) + " tensors)";
      return false;
    }
    if (expectedShape && *expectedShape != t->shape) {
      error = name_ + ": tensor " + inQuotes(name) + " has shape " + shapeToString(t->shape) +
              " but shape " + shapeToString(*expectedShape) + " was expected";
      return false;
    }
    const size_t size = dtypeSize(t->dtype);
    const size_t n = static_cast<size_t>(t->byteSize() / size);
    const uint8_t *p = data(*t);
    out.resize(n);
    std::string whyNot;
    for (size_t i = 0; i < n; ++i) {
      if (!decodeElement(t->dtype, p + i * size, out[i], whyNot)) {
        error =
            name_ + ": tensor " + inQuotes(name) + ": element " + std::to_string(i) + ": " + whyNot;
        return false;
      }
    }
    return true;
  } catch (const std::bad_alloc &) {
    error = name_ + ": tensor " + inQuotes(name) + ": out of memory converting to double";
  } catch (...) {
    error = name_ + ": tensor " + inQuotes(name) + ": unknown internal error";
  }
  return false;
}

} // namespace kiln::safetensors
