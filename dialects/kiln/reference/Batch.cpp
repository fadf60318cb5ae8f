//===- Batch.cpp - token batches: seeded, from JSON, bound to inputs ------===//

#include "dialects/kiln/reference/Batch.h"
#include "dialects/kiln/ShapeCheck.h"

#include "llvm/Support/MemoryBuffer.h"

// This file is compiled without exceptions: only nlohmann's non-throwing
// parse is used, and every access is type-checked first.
#include <nlohmann/json.hpp>

namespace kiln::reference {

TokenBatch seededBatch(int64_t rows, int64_t seqLen, int64_t vocab, uint64_t seed) {
  TokenBatch batch{rows, seqLen, std::vector<int64_t>(rows * seqLen)};
  SeededRng rng(seed, "batch");
  for (int64_t &id : batch.ids)
    id = int64_t(rng.next() % uint64_t(vocab));
  return batch;
}

bool readBatchJson(const std::string &path, int64_t rows, int64_t seqLen,
                   int64_t vocab, TokenBatch &batch, std::string &error) {
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buffer) {
    error = path + ": cannot read token file: " + buffer.getError().message();
    return false;
  }
  nlohmann::json doc = nlohmann::json::parse((*buffer)->getBuffer().begin(),
                                             (*buffer)->getBuffer().end(), nullptr,
                                             /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_array()) {
    error = path + ": expected a JSON array of token rows, e.g. [[1, 2, 3], [4, 5, 6]]";
    return false;
  }
  if ((int64_t)doc.size() != rows) {
    error = path + ": has " + std::to_string(doc.size()) + " rows; this model's " +
            "batch has micro_batch = " + std::to_string(rows) + " rows";
    return false;
  }
  batch = TokenBatch{rows, seqLen, {}};
  for (int64_t r = 0; r < rows; ++r) {
    const nlohmann::json &row = doc[r];
    if (!row.is_array() || (int64_t)row.size() != seqLen) {
      error = path + ": row " + std::to_string(r) + " must be an array of seq_len = " +
              std::to_string(seqLen) + " token ids, got " +
              (row.is_array() ? std::to_string(row.size()) + " ids" : row.type_name());
      return false;
    }
    for (int64_t i = 0; i < seqLen; ++i) {
      const nlohmann::json &id = row[i];
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= vocab) {
        error = path + ": row " + std::to_string(r) + ", position " + std::to_string(i) +
                ": token " + id.dump() + " is not an integer in [0, " +
                std::to_string(vocab) + ")";
        return false;
      }
      batch.ids.push_back(id.get<int64_t>());
    }
  }
  return true;
}

bool bindNextTokenInputs(const TokenBatch &batch, const Signature &sig,
                         llvm::MutableArrayRef<RefTensor> args, std::string &error) {
  llvm::SmallVector<int64_t, 2> shape{batch.rows, batch.seqLen};
  for (const InputSlot &in : sig.inputs) {
    if (llvm::ArrayRef<int64_t>(in.shape) != llvm::ArrayRef<int64_t>(shape)) {
      error = "input '" + in.role + "' has shape " + formatShape(in.shape) +
              " but the batch is " + formatShape(shape);
      return false;
    }
    RefTensor t(in.elementType, shape);
    for (int64_t r = 0; r < batch.rows; ++r)
      for (int64_t i = 0; i < batch.seqLen; ++i) {
        int64_t at = r * batch.seqLen + i;
        bool last = i + 1 == batch.seqLen;
        if (in.role == "tokens")
          t.data[at] = double(batch.ids[at]);
        else if (in.role == "targets")
          t.data[at] = last ? 0.0 : double(batch.ids[at + 1]);
        else if (in.role == "loss_mask")
          t.data[at] = last ? 0.0 : 1.0;
        else {
          error = "unknown input role '" + in.role + "'";
          return false;
        }
      }
    args[in.argIndex] = std::move(t);
  }
  return true;
}

} // namespace kiln::reference
