//===- CommandLine.h - The training executable's flags -*- C++ -*-===//
//
// A generated training executable is run as
//
//   train [--data FILE] [--steps N] [--checkpoint-dir D]
//         [--checkpoint-every N] [--resume | --init-from D] [--log FILE.jsonl]
//         [--threads N] [--seed N] [--save-grads FILE] [--help]
//
// or, to sample completions from the model (Generate.h), as
//
//   train --generate PROMPTS.jsonl [--checkpoint D] [--out FILE.jsonl]
//         [--samples N] [--max-new-tokens N] [--temperature X] [--top-p X]
//         [--top-k N] [--stop-token N] [--threads N] [--seed N]
//
// Flags take their value as the next argument or after '=' (`--steps 300`,
// `--steps=300`). Parsing is strict: an unknown flag (the closest known one
// is suggested), a missing or empty value, a number that is not plain
// decimal digits (or, for --temperature and --top-p, a plain decimal number)
// or is out of range, a repeated flag, a stray positional argument, --resume
// or --checkpoint-every without --checkpoint-dir, a generation flag without
// --generate and a training flag with it are each a one-line error naming
// the flag and what would be right. --help (or -h) anywhere wins: parsing
// stops and `help` is set.
//
// Like the rest of runtime/, nothing here throws.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DRIVER_COMMANDLINE_H
#define KILN_RUNTIME_DRIVER_COMMANDLINE_H

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::driver {

/// Defaults that come from the spec the executable was generated from.
struct SpecDefaults {
  uint64_t steps = 1;
  uint64_t seed = 0;
};

/// Upper bounds of the numeric flags (steps and checkpoint-every must fit an
/// int64 step counter; threads is a sanity bound).
constexpr uint64_t kMaxSteps = 9223372036854775807ULL;
constexpr uint64_t kMaxThreads = 4096;
/// --samples per prompt (a sanity bound), and the largest token id.
constexpr uint64_t kMaxSamples = 1000000;
constexpr uint64_t kMaxTokenId = 2147483647;

struct TrainOptions {
  std::string dataPath;        ///< --data; empty: the spec's data source.
  uint64_t steps = 1;          ///< --steps; default from the spec.
  std::string checkpointDir;   ///< --checkpoint-dir; empty: no checkpoints.
  uint64_t checkpointEvery = 0;///< --checkpoint-every; 0: only at the end.
  bool resume = false;         ///< --resume from <checkpointDir>/latest.
  std::string corpusFormat = "plain"; ///< --corpus-format: the built-in corpus' answers
  std::string rolloutsPath;    ///< --rollouts: GRPO's fixed rollouts (GrpoRollout.h)
  std::string initFrom;        ///< --init-from D: parameters of D/latest, by name
                               ///< (warm start: step 0, fresh optimizer).
  std::string logPath;         ///< --log; empty: no metrics file.
  uint64_t threads = 0;        ///< --threads; 0: all hardware threads.
  uint64_t seed = 0;           ///< --seed; default from the spec.
  std::string saveGradsPath;   ///< --save-grads; empty: none. The first step's
                               ///< gradients, f32 safetensors under HF names.
  uint64_t collectiveTimeoutSec = 300; ///< --collective-timeout: how long a
                               ///< collective may wait for its peers.
  bool profile = false;        ///< --profile: time every kernel, print a table.
  std::string tracePath;       ///< --trace; empty: none. A Chrome trace of the
                               ///< steps (ActionTrace.h), written by rank 0.
  bool help = false;           ///< --help or -h was given; print helpText().

  // --generate mode (Generate.h); the rest are its options.
  std::string generatePath;    ///< --generate PROMPTS.jsonl; empty: train.
  std::string loadCheckpoint;  ///< --checkpoint D: the model of D/latest;
                               ///< empty: the seeded initial model.
  std::string outPath;         ///< --out; empty: stdout.
  uint64_t samples = 1;        ///< --samples: completions per prompt.
  uint64_t maxNewTokens = 0;   ///< --max-new-tokens; 0: the decode program's
                               ///< maxLen - 1 (also the upper bound).
  double temperature = 1.0;    ///< --temperature; 0: greedy.
  double topP = 1.0;           ///< --top-p; 1: no nucleus truncation.
  uint64_t topK = 0;           ///< --top-k; 0: no limit.
  int64_t stopToken = -1;      ///< --stop-token; -1: none.
};

/// Parses `args` (the arguments after the program name). On success fills
/// `options` (unset flags take `defaults` or the TrainOptions defaults); on
/// failure returns false with a one-line `error` and leaves `options` as the
/// defaults.
bool parseCommandLine(const std::vector<std::string> &args, const SpecDefaults &defaults,
                      TrainOptions &options, std::string &error);

/// Same, from main()'s argc/argv (argv[0] is skipped).
bool parseCommandLine(int argc, const char *const *argv, const SpecDefaults &defaults,
                      TrainOptions &options, std::string &error);

/// The --help text (several lines, ending in '\n'), showing the defaults.
std::string helpText(const std::string &program, const SpecDefaults &defaults);

/// The known flag closest to `flag` by edit distance (used in the
/// unknown-flag message), e.g. "--step" -> "--steps".
std::string closestFlag(const std::string &flag);

} // namespace kiln::driver

#endif // KILN_RUNTIME_DRIVER_COMMANDLINE_H
