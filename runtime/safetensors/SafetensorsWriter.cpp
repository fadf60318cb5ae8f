//===- SafetensorsWriter.cpp - Safetensors writer with atomic replace -----===//
//
// Builds safetensors files that the strict Reader (and the reference
// implementation) accept, and replaces files on disk atomically so that a
// crash or a full disk mid-checkpoint never destroys the previous checkpoint.
// Kept apart from the reader so that code which only writes does not pull in
// nlohmann::json.
//
//===----------------------------------------------------------------------===//

#include "runtime/safetensors/Safetensors.h"
#include "runtime/io/AtomicFile.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <sys/stat.h>
#include <unistd.h>

namespace kiln::safetensors {

namespace {

std::string inQuotes(std::string_view s) {
  std::string out = "'";
  out.append(s.data(), s.size());
  out += "'";
  return out;
}

/// Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF), the
/// same rules nlohmann::json applies when the Reader parses the header.
bool isValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size())
      return false;
    for (size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static const uint32_t minForLen[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < minForLen[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

void appendJsonString(std::string &out, std::string_view s) {
  static const char hex[] = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\r': out += "\\r"; break;
    case '\t': out += "\\t"; break;
    case '\b': out += "\\b"; break;
    case '\f': out += "\\f"; break;
    default:
      if (c < 0x20) {
        out += "\\u00";
        out += hex[c >> 4];
        out += hex[c & 0xF];
      } else {
        out += ch;
      }
    }
  }
  out += '"';
}

} // namespace

bool Writer::setMetadata(std::string key, std::string value, std::string &error) {
  try {
    if (!isValidUtf8(key)) {
      error = "metadata key is not valid UTF-8; safetensors headers must be UTF-8 JSON";
      return false;
    }
    if (!isValidUtf8(value)) {
      error = "metadata value for key " + inQuotes(key) +
              " is not valid UTF-8; safetensors headers must be UTF-8 JSON";
      return false;
    }
    metadata_[std::move(key)] = std::move(value);
    return true;
  } catch (...) {
    error = "out of memory while setting metadata";
    return false;
  }
}

bool Writer::checkNewTensor(const std::string &name, const std::vector<int64_t> &shape,
                            uint64_t &numElements, std::string &error) const {
  if (name == "__metadata__") {
    error = "tensor name '__metadata__' is reserved for the header's metadata object";
    return false;
  }
  if (!isValidUtf8(name)) {
    error = "tensor name " + inQuotes(name) + " is not valid UTF-8";
    return false;
  }
  if (index_.count(name)) {
    error = "tensor " + inQuotes(name) + " was already added; names must be unique";
    return false;
  }
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) {
      error = "tensor " + inQuotes(name) + ": shape " + shapeToString(shape) + ": dimension " +
              std::to_string(i) + " is negative";
      return false;
    }
  }
  TensorInfo probe;
  probe.shape = shape;
  int64_t n = probe.numElements();
  if (n < 0) {
    error = "tensor " + inQuotes(name) + ": shape " + shapeToString(shape) +
            " has more elements than fit in 64 bits";
    return false;
  }
  numElements = static_cast<uint64_t>(n);
  return true;
}

bool Writer::add(std::string name, DType dtype, std::vector<int64_t> shape,
                 const std::vector<double> &values, std::string &error) {
  try {
    uint64_t n;
    if (!checkNewTensor(name, shape, n, error))
      return false;
    if (values.size() != n) {
      error = "tensor " + inQuotes(name) + ": " + dtypeName(dtype) + " shape " +
              shapeToString(shape) + " has " + std::to_string(n) + " elements but " +
              std::to_string(values.size()) + " values were given";
      return false;
    }
    const size_t size = dtypeSize(dtype);
    std::vector<uint8_t> bytes(values.size() * size);
    std::string whyNot;
    for (size_t i = 0; i < values.size(); ++i) {
      if (!encodeElement(dtype, values[i], bytes.data() + i * size, whyNot)) {
        error = "tensor " + inQuotes(name) + ": element " + std::to_string(i) + ": " + whyNot;
        return false;
      }
    }
    return addRaw(std::move(name), dtype, std::move(shape), std::move(bytes), error);
  } catch (...) {
    error = "tensor " + inQuotes(name) + ": out of memory while adding";
    return false;
  }
}

bool Writer::addRaw(std::string name, DType dtype, std::vector<int64_t> shape,
                    std::vector<uint8_t> bytes, std::string &error) {
  try {
    uint64_t n;
    if (!checkNewTensor(name, shape, n, error))
      return false;
    const uint64_t size = dtypeSize(dtype);
    if (n > std::numeric_limits<uint64_t>::max() / size || bytes.size() != n * size) {
      error = "tensor " + inQuotes(name) + ": " + std::to_string(bytes.size()) +
              " bytes given but " + dtypeName(dtype) + " shape " + shapeToString(shape) +
              " needs " +
              (n > std::numeric_limits<uint64_t>::max() / size ? std::string("more than 2^64")
                                                               : std::to_string(n * size));
      return false;
    }
    if (dtype == DType::BOOL) {
      for (size_t i = 0; i < bytes.size(); ++i) {
        if (bytes[i] > 1) {
          error = "tensor " + inQuotes(name) + ": element " + std::to_string(i) +
                  ": BOOL byte is " + std::to_string(bytes[i]) + ", expected 0 or 1";
          return false;
        }
      }
    }
    index_.emplace(name, entries_.size());
    entries_.push_back({std::move(name), dtype, std::move(shape), std::move(bytes)});
    return true;
  } catch (...) {
    error = "tensor " + inQuotes(name) + ": out of memory while adding";
    return false;
  }
}

bool Writer::buildHeader(std::string &header, std::string &error) const {
  header = "{";
  bool first = true;
  if (!metadata_.empty()) {
    header += "\"__metadata__\":{";
    for (const auto &[key, value] : metadata_) {
      if (!first)
        header += ',';
      first = false;
      appendJsonString(header, key);
      header += ':';
      appendJsonString(header, value);
    }
    header += '}';
    first = false;
  }
  uint64_t offset = 0;
  for (const Entry &e : entries_) {
    if (!first)
      header += ',';
    first = false;
    appendJsonString(header, e.name);
    header += ":{\"dtype\":\"";
    header += dtypeName(e.dtype);
    header += "\",\"shape\":[";
    for (size_t i = 0; i < e.shape.size(); ++i) {
      if (i)
        header += ',';
      header += std::to_string(e.shape[i]);
    }
    header += "],\"data_offsets\":[";
    header += std::to_string(offset);
    header += ',';
    offset += e.bytes.size();
    header += std::to_string(offset);
    header += "]}";
  }
  header += '}';
  // Padding to a multiple of 8 makes the byte buffer 8-aligned when the file
  // is mapped, which lets readers use it in place; spaces keep it valid JSON.
  header.append((8 - header.size() % 8) % 8, ' ');
  if (header.size() > kMaxHeaderSize) {
    error = "header would be " + std::to_string(header.size()) + " bytes, over the " +
            std::to_string(kMaxHeaderSize) +
            "-byte limit readers enforce; split the tensors over several files";
    return false;
  }
  return true;
}

bool Writer::serialize(std::vector<uint8_t> &out, std::string &error) const {
  try {
    std::string header;
    if (!buildHeader(header, error))
      return false;
    size_t total = 8 + header.size();
    for (const Entry &e : entries_)
      total += e.bytes.size();
    out.clear();
    out.reserve(total);
    out.resize(8);
    for (int i = 0; i < 8; ++i)
      out[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));
    out.insert(out.end(), header.begin(), header.end());
    for (const Entry &e : entries_)
      out.insert(out.end(), e.bytes.begin(), e.bytes.end());
    return true;
  } catch (...) {
    out.clear();
    error = "out of memory while serializing safetensors";
    return false;
  }
}

std::vector<uint8_t> Writer::serialize() const {
  std::vector<uint8_t> out;
  std::string error;
  if (!serialize(out, error))
    out.clear();
  return out;
}

bool Writer::writeAtomic(const std::string &path, std::string &error) const {
  try {
    std::string header;
    if (!buildHeader(header, error)) {
      error = path + ": " + error;
      return false;
    }
    uint8_t prefix[8];
    for (int i = 0; i < 8; ++i)
      prefix[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));
    std::vector<io::ByteRange> pieces{{prefix, 8}, {header.data(), header.size()}};
    for (const Entry &e : entries_)
      pieces.push_back({e.bytes.data(), e.bytes.size()});
    return io::writeFileAtomic(path, pieces, error);
  } catch (...) {
    error = path + ": out of memory while writing (any existing file was left unchanged)";
    return false;
  }
}

} // namespace kiln::safetensors
