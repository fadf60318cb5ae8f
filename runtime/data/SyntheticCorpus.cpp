//===- SyntheticCorpus.cpp - Seeded arithmetic problems with verifiable answers ===//
//
// The generator draws an expression tree, the evaluator parses text back;
// they share nothing but the grammar, so a test that every generated
// problem verifies checks the printer (parentheses) against the parser. The
// reasoning format's working is the evaluator's trace: recursive descent
// applies each operation right after evaluating its operands, which is the
// post-order the header describes.
//
//===----------------------------------------------------------------------===//

#include "runtime/data/SyntheticCorpus.h"

#include "runtime/data/LlmcShard.h"

#include <initializer_list>

namespace kiln::data {

namespace {

constexpr int kAtomPrecedence = 3;

int precedenceOf(char op) { return op == '*' ? 2 : 1; }

/// a op b in int64; false if the result does not fit.
bool applyOp(char op, int64_t a, int64_t b, int64_t &out) {
  switch (op) {
  case '+': return !__builtin_add_overflow(a, b, &out);
  case '-': return !__builtin_sub_overflow(a, b, &out);
  default: return !__builtin_mul_overflow(a, b, &out);
  }
}

/// Recursive descent over
///   expr   := term (('+' | '-') term)*
///   term   := factor ('*' factor)*
///   factor := digits | '(' expr ')'
class Evaluator {
public:
  /// With `steps`, appends "a op b=c" per applied operation, ", "-separated.
  explicit Evaluator(std::string_view text, std::string *steps = nullptr)
      : text_(text), steps_(steps) {}

  bool run(int64_t &value, std::string &error) {
    if (!expr(value, 0))
      return fail(error);
    if (pos_ != text_.size()) {
      why_ = std::string("unexpected '") + text_[pos_] + "'";
      return fail(error);
    }
    return true;
  }

private:
  static constexpr int kMaxDepth = 64;

  bool fail(std::string &error) {
    error = "offset " + std::to_string(pos_) + " of \"" + std::string(text_) + "\": " + why_;
    return false;
  }
  bool peek(char c) const { return pos_ < text_.size() && text_[pos_] == c; }

  void record(char op, int64_t lhs, int64_t rhs, int64_t result) {
    if (!steps_)
      return;
    if (!steps_->empty())
      *steps_ += ", ";
    *steps_ += std::to_string(lhs);
    *steps_ += op;
    *steps_ += rhs < 0 ? "(" + std::to_string(rhs) + ")" : std::to_string(rhs);
    *steps_ += '=';
    *steps_ += std::to_string(result);
  }

  bool expr(int64_t &value, int depth) {
    if (!term(value, depth))
      return false;
    while (peek('+') || peek('-')) {
      const char op = text_[pos_++];
      int64_t rhs;
      if (!term(rhs, depth))
        return false;
      const int64_t lhs = value;
      if (!applyOp(op, lhs, rhs, value)) {
        why_ = std::string("the result of '") + op + "' does not fit in a 64-bit integer";
        return false;
      }
      record(op, lhs, rhs, value);
    }
    return true;
  }

  bool term(int64_t &value, int depth) {
    if (!factor(value, depth))
      return false;
    while (peek('*')) {
      ++pos_;
      int64_t rhs;
      if (!factor(rhs, depth))
        return false;
      const int64_t lhs = value;
      if (!applyOp('*', lhs, rhs, value)) {
        why_ = "the result of '*' does not fit in a 64-bit integer";
        return false;
      }
      record('*', lhs, rhs, value);
    }
    return true;
  }

  bool factor(int64_t &value, int depth) {
    if (peek('(')) {
      if (depth >= kMaxDepth) {
        why_ = "parentheses nested deeper than " + std::to_string(kMaxDepth);
        return false;
      }
      ++pos_;
      if (!expr(value, depth + 1))
        return false;
      if (!peek(')')) {
        why_ = pos_ < text_.size() ? std::string("expected ')' but found '") + text_[pos_] + "'"
                                   : "expected ')' but the expression ended";
        return false;
      }
      ++pos_;
      return true;
    }
    if (pos_ >= text_.size() || text_[pos_] < '0' || text_[pos_] > '9') {
      why_ = pos_ < text_.size()
                 ? std::string("expected a number or '(' but found '") + text_[pos_] + "'"
                 : "expected a number or '(' but the expression ended";
      return false;
    }
    value = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      if (__builtin_mul_overflow(value, int64_t(10), &value) ||
          __builtin_add_overflow(value, int64_t(text_[pos_] - '0'), &value)) {
        why_ = "number does not fit in a 64-bit integer";
        return false;
      }
      ++pos_;
    }
    return true;
  }

  std::string_view text_;
  std::string *steps_;
  size_t pos_ = 0;
  std::string why_;
};

/// True if `s` is the canonical decimal of some int64: optional '-', no
/// leading zeros, not "-0".
bool isCanonicalInteger(std::string_view s) {
  size_t i = (!s.empty() && s[0] == '-') ? 1 : 0;
  if (i == s.size())
    return false;
  for (size_t k = i; k < s.size(); ++k)
    if (s[k] < '0' || s[k] > '9')
      return false;
  if (s[i] == '0' && s.size() > i + 1)
    return false; // Leading zero.
  if (i == 1 && s == "-0")
    return false;
  return true;
}

} // namespace

const char *answerFormatName(AnswerFormat format) {
  return format == AnswerFormat::Reasoning ? "reasoning" : "plain";
}

bool parseAnswerFormat(std::string_view name, AnswerFormat &out, std::string &error) {
  for (AnswerFormat format : {AnswerFormat::Plain, AnswerFormat::Reasoning})
    if (name == answerFormatName(format)) {
      out = format;
      return true;
    }
  error = "answer format '" + std::string(name) + "' is unknown; expected plain or reasoning";
  return false;
}

bool checkCorpusOptions(const CorpusOptions &options, std::string &error) {
  if (options.maxOperandDigits < 1 || options.maxOperandDigits > 9) {
    error = "synthetic corpus: maxOperandDigits is " + std::to_string(options.maxOperandDigits) +
            "; it must be between 1 and 9";
    return false;
  }
  if (options.maxOperations < 1 || options.maxOperations > 8) {
    error = "synthetic corpus: maxOperations is " + std::to_string(options.maxOperations) +
            "; it must be between 1 and 8";
    return false;
  }
  if (options.format != AnswerFormat::Plain && options.format != AnswerFormat::Reasoning) {
    error = "synthetic corpus: format is " + std::to_string(static_cast<int>(options.format)) +
            "; it must be plain or reasoning";
    return false;
  }
  return true;
}

std::string ArithmeticProblem::prompt() const { return "Q: " + expression + "=? A: "; }
std::string ArithmeticProblem::answerText() const { return std::to_string(answer); }

std::string ArithmeticProblem::reasoningSteps() const {
  std::string steps, error;
  int64_t value;
  if (!Evaluator(expression, &steps).run(value, error))
    return "";
  return steps.empty() ? std::to_string(value) : steps;
}

std::string ArithmeticProblem::reasoningAnswerText() const {
  return "<think>" + reasoningSteps() + "</think><answer>" + answerText() + "</answer>";
}

std::string ArithmeticProblem::completion() const {
  return (format == AnswerFormat::Reasoning ? reasoningAnswerText() : answerText()) + "\n";
}

std::string ArithmeticProblem::text() const { return prompt() + completion(); }

struct SyntheticCorpus::Drawn {
  std::string text;
  int precedence = kAtomPrecedence;
  int64_t value = 0;
};

std::optional<SyntheticCorpus> SyntheticCorpus::create(uint64_t seed, const CorpusOptions &options,
                                                       std::string &error) {
  if (!checkCorpusOptions(options, error))
    return std::nullopt;
  return SyntheticCorpus(seed, options);
}

int64_t SyntheticCorpus::drawOperand() {
  const uint64_t digits = 1 + rng_.below(static_cast<uint64_t>(options_.maxOperandDigits));
  if (digits == 1)
    return static_cast<int64_t>(rng_.below(10));
  uint64_t low = 1;
  for (uint64_t d = 1; d < digits; ++d)
    low *= 10;
  return static_cast<int64_t>(low + rng_.below(9 * low));
}

bool SyntheticCorpus::drawTree(int operations, Drawn &out) {
  if (operations == 0) {
    out.value = drawOperand();
    out.text = std::to_string(out.value);
    out.precedence = kAtomPrecedence;
    return true;
  }
  // One draw per statement: the order of draws defines the corpus, and the
  // order in which function arguments are evaluated is unspecified.
  const int left = static_cast<int>(rng_.below(static_cast<uint64_t>(operations)));
  const char op = "+-*"[rng_.below(3)];
  Drawn lhs, rhs;
  if (!drawTree(left, lhs))
    return false;
  if (!drawTree(operations - 1 - left, rhs))
    return false;
  if (!applyOp(op, lhs.value, rhs.value, out.value))
    return false;
  // Parenthesize exactly where the left-to-right parser would otherwise
  // build a different tree.
  const int p = precedenceOf(op);
  const bool wrapLeft = lhs.precedence < p;
  const bool wrapRight = rhs.precedence <= p;
  out.text = (wrapLeft ? "(" + lhs.text + ")" : lhs.text) + op +
             (wrapRight ? "(" + rhs.text + ")" : rhs.text);
  out.precedence = p;
  return true;
}

ArithmeticProblem SyntheticCorpus::nextProblem() {
  for (;;) {
    const int operations =
        1 + static_cast<int>(rng_.below(static_cast<uint64_t>(options_.maxOperations)));
    Drawn drawn;
    if (drawTree(operations, drawn)) // Redraw the rare expression that overflows.
      return ArithmeticProblem{std::move(drawn.text), drawn.value, options_.format};
  }
}

bool SyntheticCorpus::appendNext(CorpusTokens &out) {
  try {
    const ArithmeticProblem problem = nextProblem();
    const std::string prompt = problem.prompt();
    const std::string answer = problem.completion();
    for (char c : prompt) {
      out.tokens.push_back(static_cast<uint8_t>(c));
      out.answerMask.push_back(0);
    }
    for (char c : answer) {
      out.tokens.push_back(static_cast<uint8_t>(c));
      out.answerMask.push_back(1);
    }
    return true;
  } catch (...) {
    return false;
  }
}

bool generateCorpus(uint64_t seed, const CorpusOptions &options, uint64_t numTokens,
                    CorpusTokens &out, std::string &error) {
  std::optional<SyntheticCorpus> corpus = SyntheticCorpus::create(seed, options, error);
  if (!corpus)
    return false;
  try {
    out.tokens.clear();
    out.answerMask.clear();
    out.tokens.reserve(numTokens + 64);
    out.answerMask.reserve(numTokens + 64);
    while (out.tokens.size() < numTokens) {
      if (!corpus->appendNext(out)) {
        error = "synthetic corpus: out of memory after " + std::to_string(out.tokens.size()) +
                " of " + std::to_string(numTokens) + " tokens";
        return false;
      }
    }
    out.tokens.resize(numTokens);
    out.answerMask.resize(numTokens);
    return true;
  } catch (...) {
    error = "synthetic corpus: out of memory for " + std::to_string(numTokens) + " tokens";
    return false;
  }
}

bool writeCorpusShard(const std::string &path, uint64_t seed, const CorpusOptions &options,
                      uint64_t numTokens, std::string &error) {
  if (numTokens > kLlmcMaxTokens) {
    error = path + ": " + std::to_string(numTokens) + " tokens do not fit one llm.c shard (at " +
            "most " + std::to_string(kLlmcMaxTokens) + ")";
    return false;
  }
  CorpusTokens corpus;
  if (!generateCorpus(seed, options, numTokens, corpus, error)) {
    error = path + ": " + error;
    return false;
  }
  return writeLlmcShard(path, corpus.tokens, error);
}

std::optional<int64_t> evaluateArithmetic(std::string_view expression, std::string &error) {
  try {
    int64_t value;
    Evaluator evaluator(expression);
    if (!evaluator.run(value, error))
      return std::nullopt;
    return value;
  } catch (...) {
    error = "out of memory while evaluating an expression";
    return std::nullopt;
  }
}

bool verify(std::string_view problemText, std::string_view answerText, std::string &whyNot) {
  try {
    constexpr std::string_view kPrefix = "Q: ", kSuffix = "=? A:";
    std::string_view body = problemText;
    if (!body.empty() && body.back() == ' ')
      body.remove_suffix(1);
    if (body.substr(0, kPrefix.size()) != kPrefix ||
        body.size() < kPrefix.size() + kSuffix.size() ||
        body.substr(body.size() - kSuffix.size()) != kSuffix) {
      whyNot = "the problem is not a prompt of the form \"Q: <expression>=? A: \"";
      return false;
    }
    const std::string_view expression =
        body.substr(kPrefix.size(), body.size() - kPrefix.size() - kSuffix.size());
    std::string error;
    std::optional<int64_t> expected = evaluateArithmetic(expression, error);
    if (!expected) {
      whyNot = "the problem's expression does not evaluate: " + error;
      return false;
    }
    std::string_view answer = answerText;
    if (!answer.empty() && answer.back() == '\n')
      answer.remove_suffix(1);
    if (!isCanonicalInteger(answer)) {
      whyNot = "the answer \"" + std::string(answer) +
               "\" is not a canonical integer (digits with an optional leading '-', no leading "
               "zeros, no spaces)";
      return false;
    }
    const std::string want = std::to_string(*expected);
    if (answer != want) {
      whyNot =
          "the answer is " + std::string(answer) + " but " + std::string(expression) + " = " + want;
      return false;
    }
    return true;
  } catch (...) {
    whyNot = "out of memory while verifying";
    return false;
  }
}

bool verify(std::string_view problemText, std::string_view answerText) {
  std::string whyNot;
  return verify(problemText, answerText, whyNot);
}

} // namespace kiln::data
