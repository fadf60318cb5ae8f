//===- MemoryCheck.cpp - What a rank will allocate, checked before it does -===//

#include "runtime/driver/MemoryCheck.h"
#include "runtime/io/SystemMemory.h"

#include <cstdlib>
#include <limits>

namespace kiln::driver::detail {

namespace {

/// a + b, saturating: a sum past 2^64 bytes fits nowhere either way.
uint64_t add(uint64_t a, uint64_t b) {
  uint64_t sum;
  return __builtin_add_overflow(a, b, &sum) ? std::numeric_limits<uint64_t>::max() : sum;
}

uint64_t mul(uint64_t a, uint64_t b) {
  uint64_t product;
  return __builtin_mul_overflow(a, b, &product) ? std::numeric_limits<uint64_t>::max() : product;
}

uint64_t floatBytes(uint64_t elements) { return mul(elements, sizeof(float)); }

} // namespace

uint64_t RankMemory::total() const {
  return add(add(add(parameters, moments), add(residuals, arena)), add(batch, resumeCopy));
}

std::string RankMemory::breakdown() const {
  const std::pair<const char *, uint64_t> parts[] = {
      {"parameters", parameters},   {"AdamW moments", moments},
      {"gradient residuals", residuals}, {"step arena (activations, gradients)", arena},
      {"batch buffers", batch},     {"the checkpoint's whole-model copy (--resume)", resumeCopy}};
  std::string text;
  for (const auto &[name, bytes] : parts) {
    if (!bytes)
      continue;
    text += (text.empty() ? "" : ", ") + std::string(name) + " " + io::formatBytes(bytes);
  }
  return text;
}

std::string RankMemory::advice() const {
  // The arena holds one step's activations and gradients, which grow with
  // the rows and their length; the model state shrinks with more ranks.
  if (arena >= add(parameters, add(moments, residuals)))
    return "compile the spec with a smaller train.micro_batch or train.seq_len (the arena "
           "grows with both), or run fewer ranks on this machine";
  return "compile the spec for more ranks (parallel.dp, with parallel.zero 1 to shard the "
         "moments and parallel.ep to split the experts) and run them on more machines";
}

RankMemory rankMemory(const ModelDesc &model, const std::vector<ParamLayout> &layouts,
                      const std::vector<ParamLayout> *wholeLayouts) {
  RankMemory m;
  for (const ParamLayout &l : layouts) {
    m.parameters = add(m.parameters, floatBytes(l.numElements));
    if (!l.desc->trainable)
      continue;
    // Two moments of 4 bytes an element, or 2 in bf16.
    const uint64_t momentElements = shardElements(l.numElements, l.momentShards);
    m.moments = add(m.moments, model.bf16Moments ? mul(4, momentElements)
                                                 : mul(2, floatBytes(momentElements)));
    if (model.gradResiduals)
      m.residuals = add(m.residuals, floatBytes(l.numElements));
    if (l.desc->sparse) // the 2:4 mask, optimizer state like the moments
      m.moments = add(m.moments, floatBytes(l.numElements));
  }
  m.arena = model.arenaBytes;
  // Tokens, targets and the loss mask (4 bytes each) on the rank's rows, and
  // the loader's int64 tokens and byte mask for them.
  const uint64_t tokens = mul(uint64_t(model.batch), uint64_t(model.seqLen));
  m.batch = mul(tokens, 3 * 4 + 8 + 1);
  if (wholeLayouts)
    for (const ParamLayout &l : *wholeLayouts)
      m.resumeCopy = add(m.resumeCopy, floatBytes(l.desc->trainable ? mul(3, l.numElements)
                                                                     : l.numElements));
  return m;
}

int ranksOnThisMachine() {
  // Set by Open MPI's launcher for every process it starts (the only MPI
  // Kiln's runtime supports); a single-rank program is run directly.
  const char *local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  if (!local || !*local)
    return 1;
  char *end = nullptr;
  long n = std::strtol(local, &end, 10);
  return *end == '\0' && n > 0 && n < (1 << 20) ? int(n) : 1;
}

bool checkMemoryFits(const RankMemory &need, int ranksHere, std::string &error) {
  std::optional<io::AvailableMemory> available = io::availableMemory();
  const uint64_t total = mul(need.total(), uint64_t(ranksHere));
  if (!available || total <= available->bytes)
    return true;
  error = "this run needs " + io::formatBytes(total) +
          (ranksHere > 1 ? " for its " + std::to_string(ranksHere) + " ranks on this machine (" +
                               io::formatBytes(need.total()) + " each: "
                         : " (") +
          need.breakdown() + ") and this machine has " + io::formatBytes(available->bytes) +
          " available (" + available->source +
          "); " + need.advice();
  return false;
}

} // namespace kiln::driver::detail
