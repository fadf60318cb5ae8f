//===- kiln-corpus.cpp - Write the synthetic arithmetic corpus as a token shard ===//
//
//   kiln-corpus --seed S --tokens N [--max-digits D] [--max-ops K]
//               [--format plain|reasoning] -o FILE.bin
//   kiln-corpus --seed S --prompts N [--max-digits D] [--max-ops K] -o P.jsonl
//   kiln-corpus --score COMPLETIONS.jsonl
//   kiln-corpus --distill COMPLETIONS.jsonl -o D.bin   (D.bin + D.bin.mask)
//
// Writes the first N byte tokens of the seeded arithmetic corpus
// (runtime/data/SyntheticCorpus.h) as an llm.c shard, atomically. This is
// the file a generated `train --data FILE` reads, and what the PyTorch
// reference reads for the trajectory goldens. --format reasoning writes
// DeepSeek-R1's cold-start SFT format ("<think>…</think><answer>…</answer>");
// the default, plain, is the corpus the goldens were made from. --prompts
// and --score are the R1 recipe's measurement (HeldOut.h).
//
//===----------------------------------------------------------------------===//

#include "runtime/data/SyntheticCorpus.h"
#include "tools/kiln-corpus/HeldOut.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

static bool parseUnsigned(const char *text, uint64_t &out) {
  if (!*text)
    return false;
  out = 0;
  for (const char *c = text; *c; ++c) {
    if (*c < '0' || *c > '9' || out > (UINT64_MAX - 9) / 10)
      return false;
    out = out * 10 + uint64_t(*c - '0');
  }
  return true;
}

int main(int argc, char **argv) {
  const char *usage = "usage: kiln-corpus --seed S --tokens N [--max-digits D] [--max-ops K]\n"
                      "                   [--format plain|reasoning] -o FILE.bin\n"
                      "       kiln-corpus --seed S --prompts N [--max-digits D] [--max-ops K] "
                      "-o P.jsonl\n"
                      "       kiln-corpus --score COMPLETIONS.jsonl\n"
                      "       kiln-corpus --distill COMPLETIONS.jsonl -o D.bin\n";
  uint64_t seed = 0, tokens = 0, digits = 2, ops = 3, prompts = 0;
  bool haveSeed = false, haveTokens = false, havePrompts = false;
  std::string scorePath, distillPath;
  kiln::data::AnswerFormat format = kiln::data::AnswerFormat::Plain;
  std::string out, error;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      std::fputs(usage, stdout);
      return 0;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "kiln-corpus: %s needs a value\n%s", flag.c_str(), usage);
      return 2;
    }
    const char *value = argv[++i];
    if (flag == "--score") {
      scorePath = value;
      continue;
    }
    if (flag == "--distill") {
      distillPath = value;
      continue;
    }
    uint64_t *target = flag == "--seed"         ? &seed
                       : flag == "--tokens"     ? &tokens
                       : flag == "--prompts"    ? &prompts
                       : flag == "--max-digits" ? &digits
                       : flag == "--max-ops"    ? &ops
                                                : nullptr;
    if (flag == "-o") {
      out = value;
      continue;
    }
    if (flag == "--format") {
      if (!kiln::data::parseAnswerFormat(value, format, error)) {
        std::fprintf(stderr, "kiln-corpus: --format: %s\n", error.c_str());
        return 2;
      }
      continue;
    }
    if (!target) {
      std::fprintf(stderr, "kiln-corpus: unknown flag '%s'\n%s", flag.c_str(), usage);
      return 2;
    }
    if (!parseUnsigned(value, *target)) {
      std::fprintf(stderr, "kiln-corpus: %s wants a non-negative integer, got '%s'\n",
                   flag.c_str(), value);
      return 2;
    }
    haveSeed |= target == &seed;
    haveTokens |= target == &tokens;
    havePrompts |= target == &prompts;
  }
  if (!scorePath.empty()) {
    kiln::tools::CompletionScores scores;
    if (!kiln::tools::scoreCompletions(scorePath, scores, error)) {
      std::fprintf(stderr, "kiln-corpus: %s\n", error.c_str());
      return 1;
    }
    const double n = scores.completions ? double(scores.completions) : 1.0;
    std::printf("{\"completions\": %llu, \"accuracy\": %.4f, \"format_rate\": %.4f}\n",
                (unsigned long long)scores.completions, double(scores.correct) / n,
                double(scores.formatted) / n);
    return 0;
  }
  if (!distillPath.empty()) {
    if (out.empty()) {
      std::fprintf(stderr, "kiln-corpus: --distill needs -o D.bin\n%s", usage);
      return 2;
    }
    kiln::tools::CompletionScores scores;
    if (!kiln::tools::writeDistillationData(distillPath, out, scores, error)) {
      std::fprintf(stderr, "kiln-corpus: %s\n", error.c_str());
      return 1;
    }
    std::printf("kept %llu of %llu completions (correct) in %s and %s.mask\n",
                (unsigned long long)scores.correct, (unsigned long long)scores.completions,
                out.c_str(), out.c_str());
    return 0;
  }
  if (havePrompts && haveTokens) {
    std::fprintf(stderr, "kiln-corpus: --prompts and --tokens write different files; give one\n%s",
                 usage);
    return 2;
  }
  if (havePrompts) {
    if (!haveSeed || out.empty()) {
      std::fprintf(stderr, "kiln-corpus: --prompts needs --seed and -o\n%s", usage);
      return 2;
    }
    kiln::data::CorpusOptions options;
    options.maxOperandDigits = digits > 9 ? 10 : int(digits);
    options.maxOperations = ops > 8 ? 9 : int(ops);
    if (!kiln::tools::writeHeldOutPrompts(out, seed, prompts, options, error)) {
      std::fprintf(stderr, "kiln-corpus: %s\n", error.c_str());
      return 1;
    }
    return 0;
  }
  if (!haveSeed || !haveTokens || out.empty()) {
    std::fprintf(stderr, "kiln-corpus: --seed, --tokens and -o are required\n%s", usage);
    return 2;
  }
  kiln::data::CorpusOptions options;
  options.maxOperandDigits = digits > 9 ? 10 : int(digits);
  options.maxOperations = ops > 8 ? 9 : int(ops);
  options.format = format;
  if (!kiln::data::writeCorpusShard(out, seed, options, tokens, error)) {
    std::fprintf(stderr, "kiln-corpus: %s\n", error.c_str());
    return 1;
  }
  return 0;
}
