//===- SyntheticCorpus.h - Seeded arithmetic problems with verifiable answers -*- C++ -*-===//
//
// A corpus for smoke-testing pretraining, SFT and GRPO end to end without a
// tokenizer or a download: arithmetic problems, one per line,
//
//   Q: 37+48=? A: 85
//   Q: (7-12)*3=? A: -15
//
// tokenized byte-level (token id = byte value, vocabulary 256). Operands are
// non-negative decimal integers; the operators are +, - and * with the usual
// precedence, left to right. A problem with more than one operation is a
// random expression tree printed with exactly the parentheses its shape
// needs (a lower-precedence child, or a right child of equal precedence:
// "a-(b-c)", "a*(b*c)"), so the printed text parses back to the same tree.
// Answers are computed exactly in int64; a drawn expression whose value or
// any intermediate would overflow is redrawn, so every answer is exact.
//
// The prompt of a problem is "Q: <expr>=? A: "; its answer is the canonical
// decimal (a leading '-' when negative, no leading zeros) followed by "\n".
// The newline belongs to the answer: it is how a model says it is done, so
// SFT must learn it and GRPO sampling stops at it. answerMask marks exactly
// those bytes (answer digits, sign and newline) with 1.
//
// Randomness is SplitMix64 seeded by the caller, with draws in a fixed
// order, so a seed gives the same corpus on every platform.
//
// Public functions never throw; see runtime/safetensors/Safetensors.h.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DATA_SYNTHETICCORPUS_H
#define KILN_RUNTIME_DATA_SYNTHETICCORPUS_H

#include "runtime/data/SplitMix64.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::data {

/// The difficulty knob.
struct CorpusOptions {
  /// Each operand has 1..maxOperandDigits decimal digits (uniform count,
  /// then uniform value). Valid: 1..9.
  int maxOperandDigits = 2;
  /// Each problem has 1..maxOperations binary operations (uniform). With 1
  /// every problem is "a op b"; more gives multi-step expressions with
  /// parentheses. Valid: 1..8.
  int maxOperations = 3;
};

/// Fails, naming the field, the value and the valid range, for options
/// outside the ranges above.
bool checkCorpusOptions(const CorpusOptions &options, std::string &error);

/// Byte-level vocabulary size of the corpus.
constexpr uint64_t kCorpusVocabSize = 256;

struct ArithmeticProblem {
  std::string expression; ///< e.g. "37+(48-5)*2", no spaces
  int64_t answer = 0;

  /// "Q: " + expression + "=? A: ".
  std::string prompt() const;
  /// The canonical decimal of answer, e.g. "-15".
  std::string answerText() const;
  /// prompt() + answerText() + "\n".
  std::string text() const;
};

/// Byte tokens and, per token, 1 if it is part of an answer (see the file
/// comment), else 0. Both vectors have the same length.
struct CorpusTokens {
  std::vector<uint16_t> tokens;
  std::vector<uint8_t> answerMask;
};

class SyntheticCorpus {
public:
  /// Fails if checkCorpusOptions() does.
  static std::optional<SyntheticCorpus> create(uint64_t seed, const CorpusOptions &options,
                                               std::string &error);

  /// The next problem of the stream.
  ArithmeticProblem nextProblem();
  /// Appends the next problem's text() and its answer mask to `out`.
  /// Returns false only when out of memory (`out` may then hold part of it).
  bool appendNext(CorpusTokens &out);

  const CorpusOptions &options() const { return options_; }

private:
  struct Drawn;
  SyntheticCorpus(uint64_t seed, const CorpusOptions &options) : rng_(seed), options_(options) {}
  bool drawTree(int operations, Drawn &out);
  int64_t drawOperand();

  SplitMix64 rng_;
  CorpusOptions options_;
};

/// The first `numTokens` tokens of the corpus for `seed` (problems in
/// order; the last one is cut where the count ends).
bool generateCorpus(uint64_t seed, const CorpusOptions &options, uint64_t numTokens,
                    CorpusTokens &out, std::string &error);

/// Writes the first `numTokens` tokens of the corpus for `seed` to an llm.c
/// shard at `path` (atomically; see writeLlmcShard()).
bool writeCorpusShard(const std::string &path, uint64_t seed, const CorpusOptions &options,
                      uint64_t numTokens, std::string &error);

/// Evaluates `expression`: non-negative decimal integers, '+', '-', '*' and
/// parentheses, no spaces, usual precedence, left to right, exactly in
/// int64. Fails, naming the byte offset, on a syntax error, nesting deeper
/// than 64, or a value or intermediate outside int64.
std::optional<int64_t> evaluateArithmetic(std::string_view expression, std::string &error);

/// The reward check. `problemText` is a prompt as generated ("Q: <expr>=? A: ",
/// the trailing space optional); `answerText` is the answer to judge: the
/// canonical decimal, optionally followed by one "\n" (so a masked answer
/// span verifies as is). The answer is recomputed from the expression. False,
/// with the reason in `whyNot`, for a malformed prompt, a non-canonical
/// answer ("085", "+85", "-0", " 85") or a wrong value.
bool verify(std::string_view problemText, std::string_view answerText, std::string &whyNot);
bool verify(std::string_view problemText, std::string_view answerText);

} // namespace kiln::data

#endif // KILN_RUNTIME_DATA_SYNTHETICCORPUS_H
