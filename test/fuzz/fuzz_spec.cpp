//===- fuzz_spec.cpp - the spec parser and validator on any bytes ---------===//
//
// parseSpec() must accept or refuse every input with one line naming a
// field, never crash, hang, throw or read out of bounds; a spec it accepts
// must have dimensions the frontend can build (checkSizes' limits).
//
//===----------------------------------------------------------------------===//

#include "frontend/Spec.h"

#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string error;
  std::optional<kiln::frontend::Spec> spec = kiln::frontend::parseSpec(
      std::string(reinterpret_cast<const char *>(data), size), "fuzz.json", error);
  if (!spec) {
    if (error.empty() || error.find('\n') != std::string::npos)
      std::abort(); // a refusal is one non-empty line
    return 0;
  }
  if (!error.empty())
    std::abort();
  const kiln::frontend::ModelConfig &m = spec->model;
  constexpr int64_t kLimit = int64_t(1) << 24;
  for (int64_t d : {m.hiddenSize, m.vocabSize, m.numHiddenLayers, spec->train.seqLen,
                    spec->train.microBatch})
    if (d < 1 || d > kLimit)
      std::abort(); // accepted a size the frontend cannot build
  return 0;
}
