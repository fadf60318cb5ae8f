//===- fuzz_safetensors.cpp - the safetensors reader on any bytes ---------===//
//
// Reader::fromBytes() validates the header (JSON, dtypes, shapes, offsets
// that tile the buffer); every tensor it accepts must then decode without
// reading outside the buffer.
//
//===----------------------------------------------------------------------===//

#include "runtime/safetensors/Safetensors.h"
#include "test/fuzz/Refusal.h"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string error;
  std::optional<kiln::safetensors::Reader> reader = kiln::safetensors::Reader::fromBytes(
      std::vector<uint8_t>(data, data + size), "fuzz.safetensors", error);
  if (!reader) {
    kiln::fuzz::checkRefusal(error);
    return 0;
  }
  std::vector<double> values;
  for (const kiln::safetensors::TensorInfo &t : reader->tensors()) {
    if (reader->find(t.name) != &t)
      std::abort();
    std::string readError;
    if (!reader->readAsDouble(t.name, values, readError))
      kiln::fuzz::checkRefusal(readError);
  }
  return 0;
}
