//===- Batch.cpp - token batches: seeded, from JSON, bound to inputs ------===//

#include "dialects/kiln/reference/Batch.h"
#include "dialects/kiln/ShapeCheck.h"

#include "llvm/Support/MemoryBuffer.h"

// This file is compiled without exceptions: only nlohmann's non-throwing
// parse is used, and every access is type-checked first.
#include <nlohmann/json.hpp>

#include <cmath>

namespace kiln::reference {

TokenBatch seededBatch(int64_t rows, int64_t seqLen, int64_t vocab, uint64_t seed) {
  TokenBatch batch{rows, seqLen, std::vector<int64_t>(rows * seqLen), {}};
  SeededRng rng(seed, "batch");
  for (int64_t &id : batch.ids)
    id = int64_t(rng.next() % uint64_t(vocab));
  SeededRng grpo(seed, "grpo");
  for (int64_t r = 0; r < rows; ++r)
    batch.advantages.push_back(3.0 * grpo.uniform() - 1.5);
  for (int64_t i = 0; i < rows * seqLen; ++i) {
    batch.oldLogprobs.push_back(-0.5 - 5.5 * grpo.uniform());
    batch.refLogprobs.push_back(-0.5 - 5.5 * grpo.uniform());
  }
  return batch;
}

/// Reads `rows` rows of `seqLen` integers into `out`, each checked by `valid`.
template <typename T, typename Valid>
static bool readRows(const nlohmann::json &doc, const std::string &where, int64_t rows,
                     int64_t seqLen, const char *what, Valid valid, std::vector<T> &out,
                     std::string &error) {
  if (!doc.is_array() || (int64_t)doc.size() != rows) {
    error = where + ": expected " + std::to_string(rows) +
            " rows (the model's micro_batch), got " +
            (doc.is_array() ? std::to_string(doc.size()) + " rows" : doc.type_name());
    return false;
  }
  for (int64_t r = 0; r < rows; ++r) {
    const nlohmann::json &row = doc[r];
    if (!row.is_array() || (int64_t)row.size() != seqLen) {
      error = where + ": row " + std::to_string(r) + " must be an array of seq_len = " +
              std::to_string(seqLen) + " " + what + ", got " +
              (row.is_array() ? std::to_string(row.size()) + " " + what : row.type_name());
      return false;
    }
    for (int64_t i = 0; i < seqLen; ++i) {
      const nlohmann::json &v = row[i];
      std::string why;
      if (!v.is_number_integer() || !valid(v.get<int64_t>(), why)) {
        error = where + ": row " + std::to_string(r) + ", position " + std::to_string(i) +
                ": " + v.dump() + " " + (why.empty() ? "is not an integer" : why);
        return false;
      }
      out.push_back(T(v.get<int64_t>()));
    }
  }
  return true;
}

/// The batch file parsed as JSON; false, with `error`, if it cannot be read
/// or is not a JSON array or object.
static bool parseBatchFile(const std::string &path, nlohmann::json &doc, std::string &error) {
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buffer) {
    error = path + ": cannot read token file: " + buffer.getError().message();
    return false;
  }
  doc = nlohmann::json::parse((*buffer)->getBuffer().begin(), (*buffer)->getBuffer().end(),
                              nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !(doc.is_array() || doc.is_object())) {
    error = path + ": expected a JSON array of token rows, e.g. [[1, 2, 3], [4, 5, 6]], or "
                   "{\"tokens\": [...], \"loss_mask\": [...]}";
    return false;
  }
  return true;
}

bool readBatchShape(const std::string &path, int64_t &rows, int64_t &seqLen,
                    std::string &error) {
  nlohmann::json doc;
  if (!parseBatchFile(path, doc, error))
    return false;
  const nlohmann::json *tokens = &doc;
  if (doc.is_object() && doc.contains("tokens"))
    tokens = &doc["tokens"];
  if (!tokens->is_array() || tokens->empty() || !(*tokens)[0].is_array()) {
    error = path + ": expected a non-empty JSON array of token rows, e.g. [[1, 2, 3], [4, 5, 6]]";
    return false;
  }
  rows = int64_t(tokens->size());
  seqLen = int64_t((*tokens)[0].size());
  return true;
}

/// `count` finite numbers from `doc`: a flat array, or `rows` arrays of
/// `count / rows` when `rows` > 0.
static bool readNumbers(const nlohmann::json &doc, const std::string &where, int64_t rows,
                        int64_t count, std::vector<double> &out, std::string &error) {
  std::vector<const nlohmann::json *> items;
  if (!doc.is_array()) {
    error = where + ": expected an array";
    return false;
  }
  if (rows > 0) {
    if (int64_t(doc.size()) != rows) {
      error = where + ": expected " + std::to_string(rows) + " rows, got " +
              std::to_string(doc.size());
      return false;
    }
    for (const nlohmann::json &row : doc) {
      if (!row.is_array() || int64_t(row.size()) != count / rows) {
        error = where + ": expected rows of " + std::to_string(count / rows) + " numbers";
        return false;
      }
      for (const nlohmann::json &v : row)
        items.push_back(&v);
    }
  } else {
    for (const nlohmann::json &v : doc)
      items.push_back(&v);
  }
  if (int64_t(items.size()) != count) {
    error = where + ": expected " + std::to_string(count) + " numbers, got " +
            std::to_string(items.size());
    return false;
  }
  out.clear();
  for (const nlohmann::json *v : items) {
    if (!v->is_number() || !std::isfinite(v->get<double>())) {
      error = where + ": " + v->dump() + " is not a finite number";
      return false;
    }
    out.push_back(v->get<double>());
  }
  return true;
}

bool readBatchJson(const std::string &path, int64_t rows, int64_t seqLen,
                   int64_t vocab, TokenBatch &batch, std::string &error, bool requireMask) {
  nlohmann::json doc;
  if (!parseBatchFile(path, doc, error))
    return false;
  const nlohmann::json *tokens = &doc, *mask = nullptr;
  if (doc.is_object()) {
    for (auto it = doc.begin(); it != doc.end(); ++it)
      if (it.key() != "tokens" && it.key() != "loss_mask" && it.key() != "advantages" &&
          it.key() != "old_logprobs" && it.key() != "ref_logprobs") {
        error = path + ": unknown key '" + it.key() +
                "'; expected tokens and loss_mask (and for GRPO advantages, old_logprobs and "
                "ref_logprobs)";
        return false;
      }
    if (!doc.contains("tokens")) {
      error = path + ": missing key 'tokens'";
      return false;
    }
    tokens = &doc["tokens"];
    if (doc.contains("loss_mask"))
      mask = &doc["loss_mask"];
  }
  if (requireMask && !mask) {
    error = path + ": train.stage is \"sft\", so the batch needs a loss_mask: write "
                   "{\"tokens\": [...], \"loss_mask\": [...]} with 1 for tokens to learn";
    return false;
  }
  batch = TokenBatch{rows, seqLen, {}, {}};
  auto inVocab = [&](int64_t id, std::string &why) {
    if (id >= 0 && id < vocab)
      return true;
    why = "is not a token id in [0, " + std::to_string(vocab) + ")";
    return false;
  };
  if (!readRows(*tokens, path + (mask ? ": tokens" : ""), rows, seqLen, "token ids", inVocab,
                batch.ids, error))
    return false;
  auto zeroOrOne = [](int64_t v, std::string &why) {
    if (v == 0 || v == 1)
      return true;
    why = "must be 0 or 1";
    return false;
  };
  if (mask && !readRows(*mask, path + ": loss_mask", rows, seqLen, "mask values", zeroOrOne,
                        batch.learn, error))
    return false;
  // GRPO's rollout data, all three or none.
  if (!doc.is_object())
    return true;
  const int present = int(doc.contains("advantages")) + int(doc.contains("old_logprobs")) +
                      int(doc.contains("ref_logprobs"));
  if (present == 0)
    return true;
  if (present != 3) {
    error = path + ": GRPO rollout data needs all of advantages, old_logprobs and ref_logprobs";
    return false;
  }
  return readNumbers(doc["advantages"], path + ": advantages", 0, rows, batch.advantages,
                     error) &&
         readNumbers(doc["old_logprobs"], path + ": old_logprobs", rows, rows * seqLen,
                     batch.oldLogprobs, error) &&
         readNumbers(doc["ref_logprobs"], path + ": ref_logprobs", rows, rows * seqLen,
                     batch.refLogprobs, error);
}

bool bindNextTokenInputs(const TokenBatch &batch, const Signature &sig,
                         llvm::MutableArrayRef<RefTensor> args, std::string &error) {
  llvm::SmallVector<int64_t, 2> shape{batch.rows, batch.seqLen};
  for (const InputSlot &in : sig.inputs) {
    const bool rollout =
        in.role == "advantages" || in.role == "old_logprobs" || in.role == "ref_logprobs";
    if (rollout) {
      const std::vector<double> &data = in.role == "advantages"    ? batch.advantages
                                        : in.role == "old_logprobs" ? batch.oldLogprobs
                                                                    : batch.refLogprobs;
      llvm::SmallVector<int64_t, 2> want{batch.rows};
      if (in.role != "advantages")
        want.push_back(batch.seqLen);
      if (llvm::ArrayRef<int64_t>(in.shape) != llvm::ArrayRef<int64_t>(want) ||
          int64_t(data.size()) != RefTensor::numElementsOf(want)) {
        error = "input '" + in.role + "' has shape " + formatShape(in.shape) +
                (data.empty() ? " and the batch has no GRPO rollout data"
                              : " but the batch's is " + formatShape(want));
        return false;
      }
      RefTensor t(in.elementType, want);
      t.data = data;
      args[in.argIndex] = std::move(t);
      continue;
    }
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
          t.data[at] = last ? 0.0 : batch.learn.empty() ? 1.0 : batch.learn[at + 1];
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
