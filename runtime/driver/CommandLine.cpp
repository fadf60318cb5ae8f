//===- CommandLine.cpp - The training executable's flags ------------------===//

#include "runtime/driver/CommandLine.h"
#include "runtime/data/SyntheticCorpus.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <set>

namespace kiln::driver {

namespace {

enum class Kind { Path, Count, Threads, Seed, Switch, Samples, TopK, StopToken, Real };

/// Which runs a flag belongs to: training, --generate, or both.
enum class Mode { Train, Generate, Both };

struct FlagInfo {
  const char *name;
  const char *metavar; // shown in messages and --help
  Kind kind;
  const char *help;
  Mode mode = Mode::Train;
};

const FlagInfo kFlags[] = {
    {"--data", "FILE", Kind::Path, "token data file (llm.c shard or Megatron .bin/.idx prefix)"},
    {"--steps", "N", Kind::Count, "number of training steps"},
    {"--checkpoint-dir", "D", Kind::Path, "directory for checkpoints (created if missing)"},
    {"--checkpoint-every", "N", Kind::Count, "save a checkpoint every N steps (needs --checkpoint-dir)"},
    {"--resume", "", Kind::Switch, "continue from <checkpoint-dir>/latest"},
    {"--rollouts", "FILE.json", Kind::Path,
     "GRPO: train every step on these fixed rollouts instead of sampling (to check a step "
     "against a reference)"},
    {"--init-from", "D", Kind::Path,
     "start from the parameters of D/latest (any stage's run of this model), fresh optimizer"},
    {"--log", "FILE.jsonl", Kind::Path, "append one JSON object of metrics per step to FILE"},
    {"--corpus-format", "F", Kind::Path,
     "the built-in corpus' answers: plain (\"85\") or reasoning (R1's <think>...</think>"
     "<answer>...</answer>, for SFT cold start); pass the same one to --resume"},
    {"--threads", "N", Kind::Threads, "CPU threads to use", Mode::Both},
    {"--seed", "N", Kind::Seed,
     "random seed (initial model, data, and --generate's sampling)",
     Mode::Both},
    {"--save-grads", "FILE", Kind::Path,
     "write the first step's gradients to FILE (f32 safetensors, Hugging Face names)"},
    {"--collective-timeout", "S", Kind::Count,
     "multi-rank runs: end the job when a collective waits longer than S seconds"},
    {"--profile", "", Kind::Switch,
     "time every kernel and print where each step's time went (rank 0) at the end"},
    {"--trace", "FILE.json", Kind::Path,
     "write a Chrome trace (Perfetto) of every step: one track per rank, one event per "
     "pipeline action"},
    {"--help", "", Kind::Switch, "print this help and exit", Mode::Both},
    {"--generate", "PROMPTS.jsonl", Kind::Path,
     "sample completions of these prompts instead of training",
     Mode::Generate},
    {"--checkpoint", "D", Kind::Path,
     "the model to sample: the latest checkpoint in D (a --checkpoint-dir)", Mode::Generate},
    {"--out", "FILE.jsonl", Kind::Path, "write the completions to FILE", Mode::Generate},
    {"--samples", "N", Kind::Samples, "completions per prompt", Mode::Generate},
    {"--max-new-tokens", "N", Kind::Count, "tokens to generate at most per completion",
     Mode::Generate},
    {"--temperature", "X", Kind::Real, "sampling temperature, 0 for greedy", Mode::Generate},
    {"--top-p", "X", Kind::Real, "nucleus sampling: keep the most probable tokens up to mass X",
     Mode::Generate},
    {"--top-k", "N", Kind::TopK, "keep only the N most probable tokens", Mode::Generate},
    {"--stop-token", "N", Kind::StopToken, "end a completion at token N (kept as its last token)",
     Mode::Generate},
};

const FlagInfo *findFlag(const std::string &name) {
  for (const FlagInfo &f : kFlags)
    if (name == f.name)
      return &f;
  return nullptr;
}

size_t editDistance(const std::string &a, const std::string &b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string usage(const FlagInfo &f) {
  return *f.metavar ? std::string(f.name) + " " + f.metavar : std::string(f.name);
}

/// Plain decimal digits only: no sign, no spaces, no 0x, no exponent.
bool parseDecimal(const std::string &text, uint64_t &out) {
  if (text.empty() || text.size() > 20)
    return false;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9')
      return false;
    uint64_t digit = uint64_t(c - '0');
    if (value > (UINT64_MAX - digit) / 10)
      return false;
    value = value * 10 + digit;
  }
  out = value;
  return true;
}

bool parseNumber(const FlagInfo &f, const std::string &text, uint64_t &out, std::string &error) {
  uint64_t lo = 0, hi = UINT64_MAX;
  const char *note = "";
  if (f.kind == Kind::Count) {
    lo = 1;
    hi = kMaxSteps;
  } else if (f.kind == Kind::Threads) {
    lo = 1;
    hi = kMaxThreads;
  } else if (f.kind == Kind::Samples) {
    lo = 1;
    hi = kMaxSamples;
  } else if (f.kind == Kind::TopK) {
    hi = kMaxTokenId;
    note = " (0: no limit)";
  }
  uint64_t value = 0;
  if (!parseDecimal(text, value) || value < lo || value > hi) {
    error = std::string(f.name) + " expects an integer from " + std::to_string(lo) + " to " +
            std::to_string(hi) + note + ", got '" + text + "'";
    return false;
  }
  out = value;
  return true;
}

/// A plain decimal number ("0.7", "1", ".5", "1e-3"): no sign, no spaces,
/// no hex, no inf or nan.
bool parseReal(const std::string &text, double &out) {
  if (text.empty() || text.size() > 64 || !(std::isdigit((unsigned char)text[0]) || text[0] == '.'))
    return false;
  for (char c : text)
    if (!std::isdigit((unsigned char)c) && c != '.' && c != 'e' && c != 'E' && c != '+' &&
        c != '-')
      return false;
  char *end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(value))
    return false;
  out = value;
  return true;
}

bool parseRealFlag(const std::string &name, const std::string &text, TrainOptions &options,
                   std::string &error) {
  double value = 0;
  const bool parsed = parseReal(text, value);
  if (name == "--temperature") {
    if (!parsed) {
      error = "--temperature expects a number >= 0 (0: greedy), got '" + text + "'";
      return false;
    }
    options.temperature = value;
    return true;
  }
  if (!parsed || !(value > 0 && value <= 1)) {
    error = "--top-p expects a number greater than 0 and at most 1, got '" + text + "'";
    return false;
  }
  options.topP = value;
  return true;
}

bool parseStopToken(const std::string &text, TrainOptions &options, std::string &error) {
  uint64_t value = 0;
  if (text == "-1") {
    options.stopToken = -1;
    return true;
  }
  if (!parseDecimal(text, value) || value > kMaxTokenId) {
    error = "--stop-token expects a token id from 0 to " + std::to_string(kMaxTokenId) +
            ", or -1 for none, got '" + text + "'";
    return false;
  }
  options.stopToken = int64_t(value);
  return true;
}

/// A flag of the other mode: what to do instead.
std::string wrongMode(const std::string &name, bool generating) {
  if (generating) {
    if (name == "--checkpoint-dir" || name == "--resume")
      return name + " is for training; to sample from a checkpoint, pass --checkpoint D with "
                    "--generate";
    return name + " is a training flag, and --generate does not train; drop " + name +
           " (see --help)";
  }
  if (name == "--checkpoint")
    return "--checkpoint D loads the model for --generate PROMPTS.jsonl; to continue training "
           "use --checkpoint-dir D --resume";
  return name + " is a --generate flag; add --generate PROMPTS.jsonl to sample completions";
}

bool parseInto(const std::vector<std::string> &args, TrainOptions &options, std::string &error) {
  std::set<std::string> seen;
  std::vector<const FlagInfo *> given; // in argv order
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string &arg = args[i];
    if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) {
      error = "unexpected argument '" + arg + "'; flags start with '--' (see --help)";
      return false;
    }
    std::string name = arg;
    std::string value;
    bool inlineValue = false;
    if (size_t eq = arg.find('='); eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      inlineValue = true;
    }
    const FlagInfo *f = findFlag(name);
    if (!f) {
      error = "unknown flag '" + name + "'; did you mean '" + closestFlag(name) + "'? (see --help)";
      return false;
    }
    if (!seen.insert(name).second) {
      error = name + " given more than once; give it once";
      return false;
    }
    given.push_back(f);
    if (f->kind == Kind::Switch) {
      if (inlineValue) {
        error = name + " takes no value, got '" + arg + "'; write just " + name;
        return false;
      }
      if (name == "--profile")
        options.profile = true;
      else
        options.resume = true; // --help is handled before parsing
      continue;
    }
    if (!inlineValue) {
      if (i + 1 == args.size() || args[i + 1].compare(0, 2, "--") == 0) {
        error = name + " needs a value: " + usage(*f);
        return false;
      }
      value = args[++i];
    }
    if (f->kind == Kind::Path) {
      if (value.empty()) {
        error = name + " needs a non-empty value: " + usage(*f);
        return false;
      }
      if (name == "--data")
        options.dataPath = value;
      else if (name == "--checkpoint-dir")
        options.checkpointDir = value;
      else if (name == "--save-grads")
        options.saveGradsPath = value;
      else if (name == "--trace")
        options.tracePath = value;
      else if (name == "--generate")
        options.generatePath = value;
      else if (name == "--checkpoint")
        options.loadCheckpoint = value;
      else if (name == "--init-from")
        options.initFrom = value;
      else if (name == "--rollouts")
        options.rolloutsPath = value;
      else if (name == "--corpus-format") {
        data::AnswerFormat format;
        std::string why;
        if (!data::parseAnswerFormat(value, format, why)) {
          error = "--corpus-format " + value + ": expected plain or reasoning";
          return false;
        }
        options.corpusFormat = value;
      }
      else if (name == "--out")
        options.outPath = value;
      else
        options.logPath = value;
      continue;
    }
    if (f->kind == Kind::Real) {
      if (!parseRealFlag(name, value, options, error))
        return false;
      continue;
    }
    if (f->kind == Kind::StopToken) {
      if (!parseStopToken(value, options, error))
        return false;
      continue;
    }
    uint64_t number = 0;
    if (!parseNumber(*f, value, number, error))
      return false;
    if (name == "--steps")
      options.steps = number;
    else if (name == "--checkpoint-every")
      options.checkpointEvery = number;
    else if (name == "--threads")
      options.threads = number;
    else if (name == "--collective-timeout")
      options.collectiveTimeoutSec = number;
    else if (name == "--samples")
      options.samples = number;
    else if (name == "--max-new-tokens")
      options.maxNewTokens = number;
    else if (name == "--top-k")
      options.topK = number;
    else
      options.seed = number;
  }
  // The first flag (in argv order) of the other mode.
  const bool generating = !options.generatePath.empty();
  for (const FlagInfo *f : given)
    if (f->mode == (generating ? Mode::Train : Mode::Generate)) {
      error = wrongMode(f->name, generating);
      return false;
    }
  if (options.resume && options.checkpointDir.empty()) {
    error = "--resume needs --checkpoint-dir D to say where to resume from";
    return false;
  }
  if (options.corpusFormat != "plain" && !options.dataPath.empty()) {
    error = "--corpus-format chooses the built-in corpus' answers, and --data reads a token file "
            "instead; give one of them";
    return false;
  }
  if (options.resume && !options.initFrom.empty()) {
    error = "--init-from starts a new run from another run's parameters and --resume continues "
            "this one; give one of them";
    return false;
  }
  if (options.checkpointEvery != 0 && options.checkpointDir.empty()) {
    error = "--checkpoint-every needs --checkpoint-dir D to say where to save";
    return false;
  }
  return true;
}

TrainOptions defaultOptions(const SpecDefaults &defaults) {
  TrainOptions options;
  options.steps = defaults.steps;
  options.seed = defaults.seed;
  return options;
}

} // namespace

std::string closestFlag(const std::string &flag) {
  const FlagInfo *best = &kFlags[0];
  size_t bestDistance = SIZE_MAX;
  for (const FlagInfo &f : kFlags) {
    size_t d = editDistance(flag, f.name);
    if (d < bestDistance) {
      bestDistance = d;
      best = &f;
    }
  }
  return best->name;
}

bool parseCommandLine(const std::vector<std::string> &args, const SpecDefaults &defaults,
                      TrainOptions &options, std::string &error) {
  options = defaultOptions(defaults);
  for (const std::string &arg : args) {
    if (arg == "--help" || arg == "-h") {
      options.help = true;
      return true;
    }
  }
  TrainOptions parsed = options;
  if (!parseInto(args, parsed, error))
    return false;
  options = parsed;
  return true;
}

bool parseCommandLine(int argc, const char *const *argv, const SpecDefaults &defaults,
                      TrainOptions &options, std::string &error) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i)
    args.emplace_back(argv[i]);
  return parseCommandLine(args, defaults, options, error);
}

std::string helpText(const std::string &program, const SpecDefaults &defaults) {
  std::string text = "usage: " + program + " [flags]\n       " + program +
                     " --generate PROMPTS.jsonl [generation flags]\n\nflags:\n";
  size_t width = 0;
  for (const FlagInfo &f : kFlags)
    width = std::max(width, usage(f).size());
  bool generationHeading = false;
  for (const FlagInfo &f : kFlags) {
    if (f.mode == Mode::Generate && !generationHeading) {
      text += "\ngeneration flags (with --generate; --threads and --seed apply too):\n";
      generationHeading = true;
    }
    std::string u = usage(f);
    text += "  " + u + std::string(width - u.size() + 2, ' ') + f.help;
    std::string name = f.name;
    if (name == "--steps")
      text += " (default " + std::to_string(defaults.steps) + ", from the spec)";
    else if (name == "--seed")
      text += " (default " + std::to_string(defaults.seed) + ", from the spec)";
    else if (name == "--threads")
      text += " (default: all hardware threads)";
    else if (name == "--checkpoint-every")
      text += " (default: only at the end)";
    else if (name == "--collective-timeout")
      text += " (default: 300)";
    else if (name == "--checkpoint")
      text += " (default: the seeded initial model, as at step 0)";
    else if (name == "--out")
      text += " (default: stdout)";
    else if (name == "--samples")
      text += " (default 1)";
    else if (name == "--max-new-tokens")
      text += " (default and at most: the decode program's max_len - 1)";
    else if (name == "--temperature" || name == "--top-p")
      text += " (default 1)";
    else if (name == "--top-k")
      text += " (default 0: all)";
    else if (name == "--stop-token")
      text += " (default -1: none)";
    text += "\n";
  }
  text += "\nSIGTERM or Ctrl-C finishes the running step, checkpoints it (with --checkpoint-dir)\n"
          "and exits; --resume continues from there bit-exactly.\n"
          "A program built for dp > 1 ranks runs under mpirun (mpirun -np <dp> PROGRAM ...):\n"
          "each rank trains its rows of the global batch, rank 0 prints and logs.\n"
          "--generate reads one JSON object a line, {\"prompt\": \"text\"} (a token per byte) or\n"
          "{\"tokens\": [ids]}, and writes one per completion (prompt_index, sample,\n"
          "prompt_tokens, tokens, logprobs, finish_reason; prompt and text for a byte-level\n"
          "vocabulary); it runs in one process.\n"
          "exit codes: 0 done, 1 error (one 'error:' line), 2 bad flags, 143 / 130 stopped by\n"
          "SIGTERM / SIGINT.\n";
  return text;
}

} // namespace kiln::driver
