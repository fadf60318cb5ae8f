//===- fuzz_spec.cpp - the spec parser, validator and MLIRGen on any bytes -===//
//
// The spec parser must accept or refuse every input with one line naming a
// field, never crash, hang, read out of bounds or throw anything but its
// refusal (parseSpec() turns anything else into an "internal error"). A spec it accepts must have dimensions the frontend can
// build (checkSizes' limits) and, when it is small enough to build quickly,
// MLIRGen must build a module that verifies: the verifier never sees a
// module the frontend should have refused.
//
//===----------------------------------------------------------------------===//

#include "frontend/MLIRGen.h"
#include "frontend/Spec.h"
#include "frontend/SpecJson.h"
#include "test/fuzz/AsanWithMlir.h"
#include "test/fuzz/Refusal.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"

#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

/// IR grows by one call per layer and one function per layer kind, never
/// with the dimensions; more layers only make each input slower.
constexpr int64_t kMaxLayersToBuild = 16;

void buildAndVerify(const kiln::frontend::Spec &spec) {
  const kiln::frontend::ModelConfig &m = spec.model;
  if (m.numHiddenLayers + m.numNextnPredictLayers > kMaxLayersToBuild)
    return;
  mlir::MLIRContext context(mlir::MLIRContext::Threading::DISABLED);
  kiln::frontend::loadKilnDialects(context);
  std::string diagnostics;
  mlir::ScopedDiagnosticHandler collect(&context, [&](mlir::Diagnostic &d) {
    diagnostics += d.str() + "\n";
    return mlir::success();
  });
  mlir::OwningOpRef<mlir::ModuleOp> module = kiln::frontend::buildForwardModule(context, spec);
  if (!module || mlir::failed(mlir::verify(*module))) {
    std::fprintf(stderr, "accepted spec builds a module that does not verify:\n%s",
                 diagnostics.c_str());
    std::abort();
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // Without parseSpec's catch-alls: a refusal is a SpecFailure; any other
  // exception escapes to libFuzzer, which reports it as a finding.
  std::optional<kiln::frontend::Spec> spec;
  try {
    spec = kiln::frontend::detail::parseSpecOrThrow(
        std::string(reinterpret_cast<const char *>(data), size), "fuzz.json");
  } catch (const kiln::frontend::detail::SpecFailure &refusal) {
    kiln::fuzz::checkOneLine(refusal.message);
    return 0;
  }
  const kiln::frontend::ModelConfig &m = spec->model;
  constexpr int64_t kLimit = int64_t(1) << 24;
  for (int64_t d : {m.hiddenSize, m.vocabSize, m.numHiddenLayers, spec->train.seqLen,
                    spec->train.microBatch})
    if (d < 1 || d > kLimit)
      std::abort(); // accepted a size the frontend cannot build
  buildAndVerify(*spec);
  return 0;
}
