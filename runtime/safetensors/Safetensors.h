//===- Safetensors.h - Strict safetensors reader and writer -----*- C++ -*-===//
//
// Reads and writes the Hugging Face safetensors format
// (https://github.com/huggingface/safetensors):
//
//   [u64 little-endian N][N bytes of UTF-8 JSON header][byte buffer]
//
// The header maps each tensor name to {"dtype", "shape", "data_offsets"}
// (offsets relative to the byte buffer) plus an optional "__metadata__" object
// of string -> string.
//
// The reader is deliberately stricter than most: a checkpoint that is off by
// one byte, has a gap, a duplicate name or trailing garbage is rejected with a
// message naming the file, the tensor and what was expected, because such a
// file almost always means a buggy writer or a truncated copy, and training on
// it silently is far more expensive than failing at load time.
//
// This header is plain C++17 without exceptions in its interface: callers are
// compiled with -fno-exceptions, so every public function reports failure
// through its return value and a `std::string &error` out-parameter and never
// lets an exception escape (the implementation catches everything, including
// std::bad_alloc).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_SAFETENSORS_SAFETENSORS_H
#define KILN_RUNTIME_SAFETENSORS_SAFETENSORS_H

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::safetensors {

/// The subset of safetensors dtypes Kiln reads and writes. F8_E4M3 is the
/// "fn" variant (torch.float8_e4m3fn: no infinities, max 448); F8_E5M2 is the
/// IEEE-like one (torch.float8_e5m2).
enum class DType { F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I16, I8, U8, BOOL };

/// The header spelling, e.g. "F32".
const char *dtypeName(DType dtype);
/// Exact, case-sensitive inverse of dtypeName().
std::optional<DType> parseDType(std::string_view name);
/// Bytes per element.
size_t dtypeSize(DType dtype);
/// "F64, F32, ..., BOOL", for messages that list what would have been valid.
std::string allDTypeNames();

/// "[2, 3]"; "[]" for a scalar.
std::string shapeToString(const std::vector<int64_t> &shape);

/// The header reader refuses headers longer than this, as the reference
/// implementation does, so a corrupt length prefix cannot make us allocate
/// gigabytes before noticing.
constexpr uint64_t kMaxHeaderSize = 100'000'000;

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  /// Byte range [begin, end) relative to the start of the byte buffer.
  uint64_t begin = 0, end = 0;

  /// Product of the shape (1 for a scalar). Returns -1 if the product does
  /// not fit in int64_t, which cannot happen for tensors from a Reader.
  int64_t numElements() const;
  uint64_t byteSize() const { return end - begin; }
};

/// Encodes one element of `dtype` (little-endian, dtypeSize(dtype) bytes) at
/// `out`. Floats round to nearest, ties to even, directly from the double (no
/// double rounding through float); a finite value that would round to
/// infinity (or past 448 for F8_E4M3, which has no infinity) is an error, as
/// is a non-integral or out-of-range value for an integer dtype and anything
/// but 0 or 1 for BOOL. On failure `whyNot` says why (without naming a tensor).
bool encodeElement(DType dtype, double value, uint8_t *out, std::string &whyNot);

/// Decodes one little-endian element exactly. Fails for BOOL bytes other than
/// 0/1 and for I64 values a double cannot represent exactly (|v| > 2^53 and
/// not a multiple of the spacing), rather than rounding them silently.
bool decodeElement(DType dtype, const uint8_t *in, double &out, std::string &whyNot);

/// A validated safetensors file held in memory.
///
/// The whole file is read into memory: simple and fine for the checkpoint
/// sizes Kiln tests with. Multi-gigabyte checkpoints will want an mmap-based
/// variant with the same validation.
class Reader {
public:
  /// Reads and validates the file at `path`. Messages start with `path`.
  static std::optional<Reader> open(const std::string &path, std::string &error);
  /// Validates an in-memory file; messages start with `nameForMessages`.
  static std::optional<Reader> fromBytes(std::vector<uint8_t> bytes,
                                         const std::string &nameForMessages, std::string &error);

  /// In file order, i.e. sorted by data offset.
  const std::vector<TensorInfo> &tensors() const { return tensors_; }
  /// nullptr if there is no such tensor.
  const TensorInfo *find(std::string_view name) const;
  const std::map<std::string, std::string> &metadata() const { return metadata_; }
  /// The tensor's raw little-endian bytes (byteSize() of them). Not aligned:
  /// the header length is arbitrary, so use memcpy rather than casting.
  const uint8_t *data(const TensorInfo &tensor) const;
  /// The name given to open()/fromBytes(), used as the prefix of messages.
  const std::string &name() const { return name_; }

  /// Decodes tensor `name` (any dtype) to doubles in row-major order. F16,
  /// BF16 and F8 decode exactly. Fails if the tensor does not exist, if
  /// `expectedShape` is given and differs (the message names both shapes),
  /// or if an element cannot be represented (see decodeElement()); `out` is
  /// then unspecified.
  bool readAsDouble(std::string_view name, std::vector<double> &out, std::string &error,
                    const std::vector<int64_t> *expectedShape = nullptr) const;

private:
  Reader() = default;

  std::string name_;
  std::vector<uint8_t> bytes_;
  uint64_t bufferStart_ = 0; // 8 + header length.
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

/// Builds a safetensors file in memory and writes it.
class Writer {
public:
  /// Sets (or replaces) a metadata entry. Fails if key or value is not valid
  /// UTF-8, since the header must be valid JSON.
  bool setMetadata(std::string key, std::string value, std::string &error);

  /// Adds a tensor, converting `values` (row-major, product(shape) of them)
  /// with encodeElement(). Fails, naming the tensor and the offending
  /// element, on a duplicate or reserved name, a negative dimension, a count
  /// mismatch or a value the dtype cannot hold.
  bool add(std::string name, DType dtype, std::vector<int64_t> shape,
           const std::vector<double> &values, std::string &error);
  /// Adds already-encoded little-endian bytes; their size must match the
  /// shape (and BOOL bytes must be 0 or 1).
  bool addRaw(std::string name, DType dtype, std::vector<int64_t> shape, std::vector<uint8_t> bytes,
              std::string &error);

  /// The complete file: "__metadata__" first, then tensors in the order added,
  /// contiguous from offset 0; the header is padded with spaces so that the
  /// byte buffer starts 8-byte aligned.
  bool serialize(std::vector<uint8_t> &out, std::string &error) const;
  /// Convenience form; returns an empty vector (never a valid file) on
  /// failure, which is only possible when out of memory or when the header
  /// would exceed kMaxHeaderSize.
  std::vector<uint8_t> serialize() const;

  /// Writes "<path>.tmp.<pid>", fsyncs it, renames it over `path` and fsyncs
  /// the directory, so readers see either the old file or the complete new
  /// one. On failure the temp file is removed and an existing file at `path`
  /// is left untouched; the one exception is a failing directory fsync after
  /// the rename, where the new file is in place but may not survive a crash,
  /// which is still reported as an error. Concurrent writers of the same path
  /// from one process are not supported (they would share the temp name).
  bool writeAtomic(const std::string &path, std::string &error) const;

private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  bool checkNewTensor(const std::string &name, const std::vector<int64_t> &shape,
                      uint64_t &numElements, std::string &error) const;
  bool buildHeader(std::string &header, std::string &error) const;

  std::map<std::string, std::string> metadata_;
  std::vector<Entry> entries_;
  std::map<std::string, size_t, std::less<>> index_;
};

} // namespace kiln::safetensors

#endif // KILN_RUNTIME_SAFETENSORS_SAFETENSORS_H
