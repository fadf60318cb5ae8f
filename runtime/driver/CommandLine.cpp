//===- CommandLine.cpp - The training executable's flags ------------------===//

#include "runtime/driver/CommandLine.h"

#include <algorithm>
#include <set>

namespace kiln::driver {

namespace {

enum class Kind { Path, Count, Threads, Seed, Switch };

struct FlagInfo {
  const char *name;
  const char *metavar; // shown in messages and --help
  Kind kind;
  const char *help;
};

const FlagInfo kFlags[] = {
    {"--data", "FILE", Kind::Path, "token data file (llm.c shard or Megatron .bin/.idx prefix)"},
    {"--steps", "N", Kind::Count, "number of training steps"},
    {"--checkpoint-dir", "D", Kind::Path, "directory for checkpoints (created if missing)"},
    {"--checkpoint-every", "N", Kind::Count, "save a checkpoint every N steps (needs --checkpoint-dir)"},
    {"--resume", "", Kind::Switch, "continue from <checkpoint-dir>/latest"},
    {"--log", "FILE.jsonl", Kind::Path, "append one JSON object of metrics per step to FILE"},
    {"--threads", "N", Kind::Threads, "CPU threads to use"},
    {"--seed", "N", Kind::Seed, "random seed"},
    {"--save-grads", "FILE", Kind::Path,
     "write the first step's gradients to FILE (f32 safetensors, Hugging Face names)"},
    {"--collective-timeout", "S", Kind::Count,
     "multi-rank runs: end the job when a collective waits longer than S seconds"},
    {"--profile", "", Kind::Switch,
     "time every kernel and print where each step's time went (rank 0) at the end"},
    {"--trace", "FILE.json", Kind::Path,
     "write a Chrome trace (Perfetto) of every step: one track per rank, one event per "
     "pipeline action"},
    {"--help", "", Kind::Switch, "print this help and exit"},
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
  if (f.kind == Kind::Count) {
    lo = 1;
    hi = kMaxSteps;
  } else if (f.kind == Kind::Threads) {
    lo = 1;
    hi = kMaxThreads;
  }
  uint64_t value = 0;
  if (!parseDecimal(text, value) || value < lo || value > hi) {
    error = std::string(f.name) + " expects an integer from " + std::to_string(lo) + " to " +
            std::to_string(hi) + ", got '" + text + "'";
    return false;
  }
  out = value;
  return true;
}

bool parseInto(const std::vector<std::string> &args, TrainOptions &options, std::string &error) {
  std::set<std::string> seen;
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
      else
        options.logPath = value;
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
    else
      options.seed = number;
  }
  if (options.resume && options.checkpointDir.empty()) {
    error = "--resume needs --checkpoint-dir D to say where to resume from";
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
  std::string text = "usage: " + program + " [flags]\n\nflags:\n";
  size_t width = 0;
  for (const FlagInfo &f : kFlags)
    width = std::max(width, usage(f).size());
  for (const FlagInfo &f : kFlags) {
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
    text += "\n";
  }
  text += "\nSIGTERM or Ctrl-C finishes the running step, checkpoints it (with --checkpoint-dir)\n"
          "and exits; --resume continues from there bit-exactly.\n"
          "A program built for dp > 1 ranks runs under mpirun (mpirun -np <dp> PROGRAM ...):\n"
          "each rank trains its rows of the global batch, rank 0 prints and logs.\n"
          "exit codes: 0 done, 1 error (one 'error:' line), 2 bad flags, 143 / 130 stopped by\n"
          "SIGTERM / SIGINT.\n";
  return text;
}

} // namespace kiln::driver
