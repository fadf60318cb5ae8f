//===- Batch.h - token batches for evaluating a language model ------------===//
//
// A batch is `rows` token rows of `seqLen` ids each, from a JSON file (an
// array of arrays of ints) or drawn from a seeded generator. Next-token
// training reads it as tokens[b, i], targets[b, i] = tokens[b, i + 1] and a
// loss mask that is 1 for positions 0..S-2 and 0 for the last position (whose
// target is unknown; it is set to 0).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_REFERENCE_BATCH_H
#define KILN_REFERENCE_BATCH_H

#include "dialects/kiln/reference/Parameters.h"

#include <string>
#include <vector>

namespace kiln::reference {

struct TokenBatch {
  int64_t rows = 0, seqLen = 0;
  std::vector<int64_t> ids; ///< rows * seqLen, row-major
};

/// Uniform ids in [0, vocab) from the seeded stream "batch".
TokenBatch seededBatch(int64_t rows, int64_t seqLen, int64_t vocab, uint64_t seed);

/// Reads a JSON array of `rows` rows of `seqLen` ids in [0, vocab).
bool readBatchJson(const std::string &path, int64_t rows, int64_t seqLen,
                   int64_t vocab, TokenBatch &batch, std::string &error);

/// Fills the "tokens", "targets" and "loss_mask" inputs of `sig` in `args`.
bool bindNextTokenInputs(const TokenBatch &batch, const Signature &sig,
                         llvm::MutableArrayRef<RefTensor> args, std::string &error);

} // namespace kiln::reference

#endif // KILN_REFERENCE_BATCH_H
