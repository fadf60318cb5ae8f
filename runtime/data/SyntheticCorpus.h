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
// The prompt of a problem is "Q: <expr>=? A: "; what follows it, its
// completion, depends on the answer format (CorpusOptions::format):
//
//   plain      the canonical decimal (a leading '-' when negative, no
//              leading zeros) followed by "\n":
//                Q: (7-12)*3=? A: -15
//   reasoning  DeepSeek-R1's cold-start SFT format: the working, then the
//              answer, each in its tags, followed by "\n":
//                Q: (7-12)*3=? A: <think>7-12=-5, -5*3=-15</think><answer>-15</answer>
//
// The working is one "a op b=c" per operation, joined by ", ", in the order
// a person evaluates the expression: a post-order walk of its parse tree
// (what a left-to-right recursive-descent evaluator does), so parenthesized
// and higher-precedence subexpressions come before the operations that use
// them and the rest goes left to right: "74-6*38-19" is
// "6*38=228, 74-228=-154, -154-19=-173"; "1+2+3*4" is
// "1+2=3, 3*4=12, 3+12=15". Every value is written as a canonical decimal;
// a negative right operand is parenthesized ("3-(-5)=8", "2*(-5)=-10"), a
// negative left one is not ("-5*3=-15"). The working comes from the same
// exact int64 evaluation as the answer, so its last result is the answer.
//
// The newline belongs to the completion: it is how a model says it is done,
// so SFT must learn it and GRPO sampling stops at it. answerMask marks
// exactly the completion's bytes (in plain format the answer digits, sign and
// newline; in reasoning format also the tags and the working) with 1. The
// format changes no random draw: a seed gives the same problems in both.
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

/// What follows a problem's prompt (see the file comment).
enum class AnswerFormat {
  Plain,     ///< "85\n"
  Reasoning, ///< "<think>37+48=85</think><answer>85</answer>\n"
};

/// "plain" or "reasoning".
const char *answerFormatName(AnswerFormat format);
/// Parses answerFormatName()'s names; fails naming the value and the valid
/// names.
bool parseAnswerFormat(std::string_view name, AnswerFormat &out, std::string &error);

/// The difficulty knob and the answer format.
struct CorpusOptions {
  /// Each operand has 1..maxOperandDigits decimal digits (uniform count,
  /// then uniform value). Valid: 1..9.
  int maxOperandDigits = 2;
  /// Each problem has 1..maxOperations binary operations (uniform). With 1
  /// every problem is "a op b"; more gives multi-step expressions with
  /// parentheses. Valid: 1..8.
  int maxOperations = 3;
  /// Plain keeps every corpus as it was before the reasoning format existed.
  AnswerFormat format = AnswerFormat::Plain;
};

/// Fails, naming the field, the value and the valid range, for options
/// outside the ranges above.
bool checkCorpusOptions(const CorpusOptions &options, std::string &error);

/// Byte-level vocabulary size of the corpus.
constexpr uint64_t kCorpusVocabSize = 256;

struct ArithmeticProblem {
  std::string expression; ///< e.g. "37+(48-5)*2", no spaces
  int64_t answer = 0;
  /// How completion() and text() write the answer.
  AnswerFormat format = AnswerFormat::Plain;

  /// "Q: " + expression + "=? A: ".
  std::string prompt() const;
  /// The canonical decimal of answer, e.g. "-15".
  std::string answerText() const;
  /// The working (see the file comment), e.g. "7-12=-5, -5*3=-15" for
  /// "(7-12)*3", "37+48=85" for "37+48". An expression without operations
  /// (never generated) gives its value; one that does not evaluate (never
  /// generated) gives "".
  std::string reasoningSteps() const;
  /// "<think>" + reasoningSteps() + "</think><answer>" + answerText() +
  /// "</answer>".
  std::string reasoningAnswerText() const;
  /// What follows the prompt, the bytes answerMask covers: answerText() or
  /// reasoningAnswerText() as `format` says, then "\n".
  std::string completion() const;
  /// prompt() + completion().
  std::string text() const;
};

/// Byte tokens and, per token, 1 if it is part of a completion (see the
/// file comment), else 0. Both vectors have the same length.
struct CorpusTokens {
  std::vector<uint16_t> tokens;
  std::vector<uint8_t> answerMask;
};

class SyntheticCorpus {
public:
  /// Fails if checkCorpusOptions() does.
  static std::optional<SyntheticCorpus> create(uint64_t seed, const CorpusOptions &options,
                                               std::string &error);

  /// The next problem of the stream, in the options' format.
  ArithmeticProblem nextProblem();
  /// Appends the next problem's text() and its answer mask (1 on its
  /// completion()) to `out`.
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
/// span of the plain format verifies as is; a reasoning-format completion is
/// judged by runtime/driver/GrpoRewards.h, which takes the answer out of its
/// tags and passes it here). The answer is recomputed from the expression. False,
/// with the reason in `whyNot`, for a malformed prompt, a non-canonical
/// answer ("085", "+85", "-0", " 85") or a wrong value.
bool verify(std::string_view problemText, std::string_view answerText, std::string &whyNot);
bool verify(std::string_view problemText, std::string_view answerText);

} // namespace kiln::data

#endif // KILN_RUNTIME_DATA_SYNTHETICCORPUS_H
