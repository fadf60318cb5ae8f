//===- DriverTest.cpp - runtime/driver: flags, metrics log, progress line -===//

#include "runtime/driver/CommandLine.h"
#include "runtime/driver/Metrics.h"
#include "runtime/driver/Timer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <limits>
#include <unistd.h>

using namespace kiln::driver;

namespace {

const SpecDefaults kDefaults{300, 1234};

std::string parseError(const std::vector<std::string> &args) {
  TrainOptions options;
  std::string error;
  EXPECT_FALSE(parseCommandLine(args, kDefaults, options, error)) << "accepted";
  // A failed parse leaves the defaults.
  EXPECT_EQ(options.steps, 300u);
  EXPECT_EQ(error.find('\n'), std::string::npos) << "error is not one line: " << error;
  return error;
}

TrainOptions parseOk(const std::vector<std::string> &args) {
  TrainOptions options;
  std::string error;
  EXPECT_TRUE(parseCommandLine(args, kDefaults, options, error)) << error;
  return options;
}

std::string tempPath(const std::string &name) {
  return ::testing::TempDir() + "kiln-driver-" + std::to_string(getpid()) + "-" + name;
}

} // namespace

//===--- command line -----------------------------------------------------===//

TEST(CommandLine, Defaults) {
  TrainOptions o = parseOk({});
  EXPECT_EQ(o.steps, 300u);
  EXPECT_EQ(o.seed, 1234u);
  EXPECT_EQ(o.dataPath, "");
  EXPECT_EQ(o.checkpointDir, "");
  EXPECT_EQ(o.checkpointEvery, 0u);
  EXPECT_FALSE(o.resume);
  EXPECT_EQ(o.logPath, "");
  EXPECT_EQ(o.threads, 0u);
  EXPECT_EQ(o.saveGradsPath, "");
  EXPECT_FALSE(o.help);
}

TEST(CommandLine, AllFlags) {
  TrainOptions o = parseOk({"--data", "shard.bin", "--steps", "10", "--checkpoint-dir", "ck",
                            "--checkpoint-every=5", "--resume", "--log", "m.jsonl",
                            "--threads=8", "--seed", "18446744073709551615",
                            "--save-grads", "g.safetensors"});
  EXPECT_EQ(o.dataPath, "shard.bin");
  EXPECT_EQ(o.steps, 10u);
  EXPECT_EQ(o.checkpointDir, "ck");
  EXPECT_EQ(o.checkpointEvery, 5u);
  EXPECT_TRUE(o.resume);
  EXPECT_EQ(o.logPath, "m.jsonl");
  EXPECT_EQ(o.threads, 8u);
  EXPECT_EQ(o.seed, 18446744073709551615ull);
  EXPECT_EQ(o.saveGradsPath, "g.safetensors");
}

TEST(CommandLine, ArgcArgvSkipsProgramName) {
  const char *argv[] = {"train", "--steps", "7"};
  TrainOptions o;
  std::string error;
  ASSERT_TRUE(parseCommandLine(3, argv, kDefaults, o, error)) << error;
  EXPECT_EQ(o.steps, 7u);
}

TEST(CommandLine, HelpWins) {
  TrainOptions o = parseOk({"--bogus", "--help"});
  EXPECT_TRUE(o.help);
  EXPECT_TRUE(parseOk({"-h"}).help);
  std::string text = helpText("train", kDefaults);
  EXPECT_NE(text.find("usage: train"), std::string::npos);
  for (const char *flag : {"--data FILE", "--steps N", "--checkpoint-dir D", "--checkpoint-every N",
                           "--resume", "--log FILE.jsonl", "--threads N", "--seed N",
                           "--save-grads FILE", "--profile", "--trace FILE.json", "--help"})
    EXPECT_NE(text.find(flag), std::string::npos) << flag;
  EXPECT_TRUE(parseOk({"--profile"}).profile);
  EXPECT_EQ(parseOk({"--trace", "t.json"}).tracePath, "t.json");
  EXPECT_FALSE(parseOk({"--profile"}).resume);
  EXPECT_FALSE(parseOk({"--resume", "--checkpoint-dir", "d"}).profile);
  EXPECT_NE(text.find("default 300"), std::string::npos);
  EXPECT_NE(text.find("default 1234"), std::string::npos);
  EXPECT_NE(text.find("exit codes: 0 done, 1 error"), std::string::npos);
  EXPECT_NE(text.find("SIGTERM or Ctrl-C finishes the running step"), std::string::npos);
}

TEST(CommandLine, UnknownFlagSuggestsClosest) {
  EXPECT_EQ(parseError({"--step", "3"}), "unknown flag '--step'; did you mean '--steps'? (see --help)");
  // The built-in corpus' answer format.
  EXPECT_EQ(parseOk({}).corpusFormat, "plain");
  EXPECT_EQ(parseOk({"--corpus-format", "reasoning"}).corpusFormat, "reasoning");
  EXPECT_EQ(parseError({"--corpus-format", "cot"}),
            "--corpus-format cot: expected plain or reasoning");
  EXPECT_EQ(parseError({"--corpus-format", "reasoning", "--data", "x.bin"}),
            "--corpus-format chooses the built-in corpus' answers, and --data reads a token file "
            "instead; give one of them");
  // --init-from starts a new run; --resume continues this one.
  EXPECT_EQ(parseOk({"--init-from", "sft/ck"}).initFrom, "sft/ck");
  EXPECT_EQ(parseError({"--init-from", "sft/ck", "--checkpoint-dir", "d", "--resume"}),
            "--init-from starts a new run from another run's parameters and --resume continues "
            "this one; give one of them");
  EXPECT_EQ(parseError({"--checkpoint-evry", "3"}),
            "unknown flag '--checkpoint-evry'; did you mean '--checkpoint-every'? (see --help)");
  EXPECT_EQ(parseError({"--threds=2"}), "unknown flag '--threds'; did you mean '--threads'? (see --help)");
  EXPECT_EQ(closestFlag("--resum"), "--resume");
  EXPECT_EQ(closestFlag("--logs"), "--log");
  EXPECT_EQ(closestFlag("--save-grad"), "--save-grads");
  EXPECT_EQ(parseError({"--savegrads", "g"}),
            "unknown flag '--savegrads'; did you mean '--save-grads'? (see --help)");
}

TEST(CommandLine, PositionalArgument) {
  EXPECT_EQ(parseError({"data.bin"}), "unexpected argument 'data.bin'; flags start with '--' (see --help)");
  EXPECT_EQ(parseError({"-s"}), "unexpected argument '-s'; flags start with '--' (see --help)");
}

TEST(CommandLine, MissingValue) {
  EXPECT_EQ(parseError({"--steps"}), "--steps needs a value: --steps N");
  EXPECT_EQ(parseError({"--data", "--steps", "3"}), "--data needs a value: --data FILE");
  EXPECT_EQ(parseError({"--log"}), "--log needs a value: --log FILE.jsonl");
  EXPECT_EQ(parseError({"--checkpoint-dir="}), "--checkpoint-dir needs a non-empty value: --checkpoint-dir D");
  EXPECT_EQ(parseError({"--save-grads"}), "--save-grads needs a value: --save-grads FILE");
  EXPECT_EQ(parseError({"--save-grads="}), "--save-grads needs a non-empty value: --save-grads FILE");
}

TEST(CommandLine, BadNumbers) {
  EXPECT_EQ(parseError({"--steps", "abc"}), "--steps expects an integer from 1 to 9223372036854775807, got 'abc'");
  EXPECT_EQ(parseError({"--steps", "0"}), "--steps expects an integer from 1 to 9223372036854775807, got '0'");
  EXPECT_EQ(parseError({"--steps=-1"}), "--steps expects an integer from 1 to 9223372036854775807, got '-1'");
  EXPECT_EQ(parseError({"--steps", "1e3"}), "--steps expects an integer from 1 to 9223372036854775807, got '1e3'");
  EXPECT_EQ(parseError({"--steps", "9223372036854775808"}),
            "--steps expects an integer from 1 to 9223372036854775807, got '9223372036854775808'");
  EXPECT_EQ(parseError({"--checkpoint-dir", "d", "--checkpoint-every", "0"}),
            "--checkpoint-every expects an integer from 1 to 9223372036854775807, got '0'");
  EXPECT_EQ(parseError({"--threads", "0"}), "--threads expects an integer from 1 to 4096, got '0'");
  EXPECT_EQ(parseError({"--threads", "4097"}), "--threads expects an integer from 1 to 4096, got '4097'");
  EXPECT_EQ(parseError({"--threads", " 4"}), "--threads expects an integer from 1 to 4096, got ' 4'");
  EXPECT_EQ(parseError({"--seed", "18446744073709551616"}),
            "--seed expects an integer from 0 to 18446744073709551615, got '18446744073709551616'");
  EXPECT_EQ(parseError({"--seed", "0x10"}),
            "--seed expects an integer from 0 to 18446744073709551615, got '0x10'");
  EXPECT_EQ(parseError({"--seed="}), "--seed expects an integer from 0 to 18446744073709551615, got ''");
  EXPECT_EQ(parseOk({"--seed", "0"}).seed, 0u);
}

TEST(CommandLine, Duplicates) {
  EXPECT_EQ(parseError({"--steps", "3", "--steps=4"}), "--steps given more than once; give it once");
  EXPECT_EQ(parseError({"--checkpoint-dir", "d", "--resume", "--resume"}),
            "--resume given more than once; give it once");
}

TEST(CommandLine, SwitchTakesNoValue) {
  EXPECT_EQ(parseError({"--checkpoint-dir", "d", "--resume=yes"}),
            "--resume takes no value, got '--resume=yes'; write just --resume");
}

TEST(CommandLine, NeedsCheckpointDir) {
  EXPECT_EQ(parseError({"--resume"}), "--resume needs --checkpoint-dir D to say where to resume from");
  EXPECT_EQ(parseError({"--checkpoint-every", "10"}),
            "--checkpoint-every needs --checkpoint-dir D to say where to save");
}

TEST(CommandLine, GenerateDefaults) {
  TrainOptions o = parseOk({"--generate", "p.jsonl"});
  EXPECT_EQ(o.generatePath, "p.jsonl");
  EXPECT_EQ(o.loadCheckpoint, "");
  EXPECT_EQ(o.outPath, "");
  EXPECT_EQ(o.samples, 1u);
  EXPECT_EQ(o.maxNewTokens, 0u);
  EXPECT_EQ(o.temperature, 1.0);
  EXPECT_EQ(o.topP, 1.0);
  EXPECT_EQ(o.topK, 0u);
  EXPECT_EQ(o.stopToken, -1);
  EXPECT_EQ(o.seed, 1234u);
  EXPECT_EQ(parseOk({}).generatePath, "");
}

TEST(CommandLine, GenerateFlags) {
  TrainOptions o = parseOk({"--generate=p.jsonl", "--checkpoint", "ck", "--out", "o.jsonl",
                            "--samples", "4", "--max-new-tokens=64", "--temperature", "0.7",
                            "--top-p", ".9", "--top-k", "50", "--stop-token", "10",
                            "--threads", "2", "--seed", "5"});
  EXPECT_EQ(o.generatePath, "p.jsonl");
  EXPECT_EQ(o.loadCheckpoint, "ck");
  EXPECT_EQ(o.outPath, "o.jsonl");
  EXPECT_EQ(o.samples, 4u);
  EXPECT_EQ(o.maxNewTokens, 64u);
  EXPECT_EQ(o.temperature, 0.7);
  EXPECT_EQ(o.topP, 0.9);
  EXPECT_EQ(o.topK, 50u);
  EXPECT_EQ(o.stopToken, 10);
  EXPECT_EQ(o.threads, 2u);
  EXPECT_EQ(o.seed, 5u);
  EXPECT_EQ(parseOk({"--generate", "p", "--temperature", "0"}).temperature, 0.0);
  EXPECT_EQ(parseOk({"--generate", "p", "--temperature", "1e-3"}).temperature, 1e-3);
  EXPECT_EQ(parseOk({"--generate", "p", "--top-p", "1"}).topP, 1.0);
  EXPECT_EQ(parseOk({"--generate", "p", "--top-k", "0"}).topK, 0u);
  EXPECT_EQ(parseOk({"--generate", "p", "--stop-token", "-1"}).stopToken, -1);
  EXPECT_EQ(parseOk({"--generate", "p", "--stop-token=0"}).stopToken, 0);
  EXPECT_EQ(parseOk({"--generate", "p", "--stop-token", "2147483647"}).stopToken, 2147483647);
}

TEST(CommandLine, GenerateBadValues) {
  const std::string temperature = "--temperature expects a number >= 0 (0: greedy), got ";
  for (const char *bad : {"-1", "abc", "nan", "inf", "1e999", " 1", "0x1p3", "1,5", ""})
    EXPECT_EQ(parseError({"--generate", "p", std::string("--temperature=") + bad}),
              temperature + "'" + bad + "'");
  const std::string topP = "--top-p expects a number greater than 0 and at most 1, got ";
  for (const char *bad : {"0", "1.5", "-0.5", "1.0000001", "nan"})
    EXPECT_EQ(parseError({"--generate", "p", "--top-p", bad}), topP + "'" + bad + "'");
  EXPECT_EQ(parseError({"--generate", "p", "--top-k", "-1"}),
            "--top-k expects an integer from 0 to 2147483647 (0: no limit), got '-1'");
  EXPECT_EQ(parseError({"--generate", "p", "--top-k", "2147483648"}),
            "--top-k expects an integer from 0 to 2147483647 (0: no limit), got '2147483648'");
  for (const char *bad : {"-2", "2147483648", "x", "-"})
    EXPECT_EQ(parseError({"--generate", "p", "--stop-token", bad}),
              std::string("--stop-token expects a token id from 0 to 2147483647, or -1 for none, "
                          "got '") +
                  bad + "'");
  EXPECT_EQ(parseError({"--generate", "p", "--samples", "0"}),
            "--samples expects an integer from 1 to 1000000, got '0'");
  EXPECT_EQ(parseError({"--generate", "p", "--samples", "1000001"}),
            "--samples expects an integer from 1 to 1000000, got '1000001'");
  EXPECT_EQ(parseError({"--generate", "p", "--max-new-tokens", "0"}),
            "--max-new-tokens expects an integer from 1 to 9223372036854775807, got '0'");
  EXPECT_EQ(parseError({"--generate"}), "--generate needs a value: --generate PROMPTS.jsonl");
  EXPECT_EQ(parseError({"--generate="}),
            "--generate needs a non-empty value: --generate PROMPTS.jsonl");
  EXPECT_EQ(parseError({"--generate", "p", "--out", "--samples", "2"}),
            "--out needs a value: --out FILE.jsonl");
  EXPECT_EQ(parseError({"--generate", "p", "--samples", "2", "--samples", "3"}),
            "--samples given more than once; give it once");
}

TEST(CommandLine, GenerateAndTrainingFlagsDoNotMix) {
  // Generation flags without --generate.
  EXPECT_EQ(parseError({"--samples", "3"}),
            "--samples is a --generate flag; add --generate PROMPTS.jsonl to sample completions");
  EXPECT_EQ(parseError({"--steps", "3", "--temperature", "0"}),
            "--temperature is a --generate flag; add --generate PROMPTS.jsonl to sample "
            "completions");
  EXPECT_EQ(parseError({"--checkpoint", "ck"}),
            "--checkpoint D loads the model for --generate PROMPTS.jsonl; to continue training "
            "use --checkpoint-dir D --resume");
  // Training flags with --generate, wherever they are.
  EXPECT_EQ(parseError({"--steps", "3", "--generate", "p"}),
            "--steps is a training flag, and --generate does not train; drop --steps (see "
            "--help)");
  for (const char *flag : {"--data=x", "--log=x", "--save-grads=x", "--collective-timeout=5",
                           "--trace=x", "--profile"}) {
    const std::string name = std::string(flag).substr(0, std::string(flag).find('='));
    EXPECT_EQ(parseError({"--generate", "p", flag}),
              name + " is a training flag, and --generate does not train; drop " + name +
                  " (see --help)");
  }
  EXPECT_EQ(parseError({"--generate", "p", "--checkpoint-dir", "ck"}),
            "--checkpoint-dir is for training; to sample from a checkpoint, pass --checkpoint D "
            "with --generate");
  EXPECT_EQ(parseError({"--generate", "p", "--checkpoint-dir", "ck", "--resume"}),
            "--checkpoint-dir is for training; to sample from a checkpoint, pass --checkpoint D "
            "with --generate");
  // The first offending flag is named.
  EXPECT_EQ(parseError({"--top-k", "3", "--samples", "2"}),
            "--top-k is a --generate flag; add --generate PROMPTS.jsonl to sample completions");
  // --help still wins.
  EXPECT_TRUE(parseOk({"--samples", "3", "--help"}).help);
}

TEST(CommandLine, GenerateHelpAndSuggestions) {
  std::string text = helpText("train", kDefaults);
  for (const char *flag :
       {"train --generate PROMPTS.jsonl [generation flags]", "--generate PROMPTS.jsonl",
        "--checkpoint D", "--out FILE.jsonl", "--samples N", "--max-new-tokens N",
        "--temperature X", "--top-p X", "--top-k N", "--stop-token N",
        "generation flags (with --generate; --threads and --seed apply too):",
        "(default and at most: the decode program's max_len - 1)", "(default -1: none)"})
    EXPECT_NE(text.find(flag), std::string::npos) << flag;
  // The generation flags come after the training ones, under their heading.
  EXPECT_LT(text.find("--trace FILE.json"), text.find("generation flags (with"));
  EXPECT_LT(text.find("generation flags (with"), text.find("--samples N"));
  EXPECT_EQ(closestFlag("--temprature"), "--temperature");
  EXPECT_EQ(closestFlag("--top_p"), "--top-p");
  EXPECT_EQ(closestFlag("--max-new-token"), "--max-new-tokens");
  EXPECT_EQ(closestFlag("--sample"), "--samples");
  EXPECT_EQ(closestFlag("--stop-tokens"), "--stop-token");
  EXPECT_EQ(closestFlag("--checkpoints"), "--checkpoint");
  EXPECT_EQ(parseError({"--generate", "p", "--topk", "3"}),
            "unknown flag '--topk'; did you mean '--top-k'? (see --help)");
}

//===--- metrics log ------------------------------------------------------===//

TEST(Metrics, JsonNumbers) {
  EXPECT_EQ(formatJsonNumber(0.003), "0.003");
  EXPECT_EQ(formatJsonNumber(5.0), "5");
  EXPECT_EQ(formatJsonNumber(std::nan("")), "null");
  EXPECT_EQ(formatJsonNumber(std::numeric_limits<double>::infinity()), "null");
  EXPECT_EQ(formatJsonNumber(-std::numeric_limits<double>::infinity()), "null");
  double third = 1.0 / 3.0;
  EXPECT_EQ(std::stod(formatJsonNumber(third)), third);
}

TEST(Metrics, JsonlRoundTrip) {
  std::string path = tempPath("roundtrip.jsonl");
  std::vector<StepMetrics> steps = {
      {1, 10.987654321012345, 10.5, 3e-3, 1.2345678901234567, 12345.678, 0.25},
      {2, 1.0 / 3.0, 0.25, 2.9999999999999997e-3, 1e-300, 1e6, 0.5},
      {3, std::nan(""), std::nan(""), std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(), 0, 0.75},
  };
  std::string error;
  {
    auto log = MetricsLog::open(path, /*append=*/false, error);
    ASSERT_TRUE(log) << error;
    for (const StepMetrics &m : steps)
      ASSERT_TRUE(log->write(m, error)) << error;
    // Flushed after each line: readable before the log is closed.
    std::ifstream in(path);
    std::string line;
    int lines = 0;
    while (std::getline(in, line))
      ++lines;
    EXPECT_EQ(lines, 3);
  }
  {
    auto log = MetricsLog::open(path, /*append=*/true, error);
    ASSERT_TRUE(log) << error;
    ASSERT_TRUE(log->write({4, 2.5, 2.0, 1e-4, 0.5, 100, 1.0}, error)) << error;
  }
  steps.push_back({4, 2.5, 2.0, 1e-4, 0.5, 100, 1.0});

  std::ifstream in(path);
  std::string line;
  size_t i = 0;
  while (std::getline(in, line)) {
    ASSERT_LT(i, steps.size());
    nlohmann::json j = nlohmann::json::parse(line); // throws (fails) if invalid
    const StepMetrics &m = steps[i];
    EXPECT_EQ(j.at("step").get<uint64_t>(), m.step);
    auto same = [&](const char *key, double want) {
      if (std::isfinite(want))
        EXPECT_EQ(j.at(key).get<double>(), want) << key << " line " << i;
      else
        EXPECT_TRUE(j.at(key).is_null()) << key << " line " << i << ": " << line;
    };
    same("loss", m.loss);
    same("main_loss", m.mainLoss);
    same("lr", m.lr);
    same("grad_norm", m.gradNorm);
    same("tokens_per_s", m.tokensPerSec);
    same("elapsed_s", m.elapsedSec);
    ++i;
  }
  EXPECT_EQ(i, steps.size());
  std::printf("first line: %s\n", formatMetricsLine(steps[0]).c_str());
  unlink(path.c_str());
}

TEST(Metrics, LineKeysInOrder) {
  EXPECT_EQ(formatMetricsLine({12, 5.5, 5.25, 0.003, 1.5, 1000, 7.5}),
            "{\"step\":12,\"loss\":5.5,\"main_loss\":5.25,\"lr\":0.003,\"grad_norm\":1.5,"
            "\"tokens_per_s\":1000,\"elapsed_s\":7.5}");
}

TEST(Metrics, MfuOnlyWhereKnown) {
  StepMetrics m{12, 5.5, 5.25, 0.003, 1.5, 1000, 7.5};
  m.mfu = 0.25;
  EXPECT_EQ(formatMetricsLine(m),
            "{\"step\":12,\"loss\":5.5,\"main_loss\":5.25,\"lr\":0.003,\"grad_norm\":1.5,"
            "\"tokens_per_s\":1000,\"mfu\":0.25,\"elapsed_s\":7.5}");
}

TEST(Metrics, UnwritablePathIsAnError) {
  std::string error;
  auto log = MetricsLog::open("/nonexistent-kiln-dir/m.jsonl", false, error);
  EXPECT_FALSE(log);
  EXPECT_EQ(error, "/nonexistent-kiln-dir/m.jsonl: cannot open metrics log for writing: "
                   "No such file or directory");
}

TEST(Metrics, FullDeviceWriteIsAnError) {
  if (access("/dev/full", W_OK) != 0)
    GTEST_SKIP() << "no /dev/full";
  std::string error;
  auto log = MetricsLog::open("/dev/full", false, error);
  ASSERT_TRUE(log) << error;
  EXPECT_FALSE(log->write({1, 1, 1, 1, 1, 1, 1}, error));
  EXPECT_EQ(error, "/dev/full: cannot write metrics log: No space left on device");
}

//===--- progress line ----------------------------------------------------===//

TEST(Progress, Eta) {
  EXPECT_EQ(formatEta(0), "0s");
  EXPECT_EQ(formatEta(42.4), "42s");
  EXPECT_EQ(formatEta(59.4), "59s");
  EXPECT_EQ(formatEta(59.6), "1m00s");
  EXPECT_EQ(formatEta(62), "1m02s");
  EXPECT_EQ(formatEta(3599), "59m59s");
  EXPECT_EQ(formatEta(3600), "1h00m");
  EXPECT_EQ(formatEta(2 * 3600 + 5 * 60 + 59), "2h05m");
  EXPECT_EQ(formatEta(100 * 3600.0), "100h00m");
  EXPECT_EQ(formatEta(-1), "--");
  EXPECT_EQ(formatEta(std::nan("")), "--");
  EXPECT_EQ(formatEta(std::numeric_limits<double>::infinity()), "--");
}

TEST(Progress, Rate) {
  EXPECT_EQ(formatRate(0), "0");
  EXPECT_EQ(formatRate(950), "950");
  EXPECT_EQ(formatRate(999.7), "1.0k");
  EXPECT_EQ(formatRate(12345), "12.3k");
  EXPECT_EQ(formatRate(999960), "1.0M");
  EXPECT_EQ(formatRate(1.5e6), "1.5M");
  EXPECT_EQ(formatRate(2e9), "2.0G");
  EXPECT_EQ(formatRate(std::nan("")), "--");
}

TEST(Progress, Line) {
  Progress p{12, 300, 5.4321, 3e-3, 1.23, 12345, 62};
  EXPECT_EQ(formatProgressLine(p),
            "step 12/300 | loss 5.4321 | lr 3.00e-03 | grad 1.23 | 12.3k tok/s | ETA 1m02s");
  Progress q{300, 300, std::nan(""), 0, 0, 0, 0};
  EXPECT_EQ(formatProgressLine(q), "step 300/300 | loss nan | lr 0.00e+00 | grad 0.00 | 0 tok/s | ETA 0s");
  Progress gpu{12, 300, 5.4321, 3e-3, 1.23, 12345, 62, 0.41234};
  EXPECT_EQ(formatProgressLine(gpu), "step 12/300 | loss 5.4321 | lr 3.00e-03 | grad 1.23 | "
                                     "12.3k tok/s | MFU 41.2% | ETA 1m02s");
}

TEST(Progress, EstimateEta) {
  EXPECT_TRUE(std::isnan(estimateEta(0, 300, 0)));
  EXPECT_DOUBLE_EQ(estimateEta(10, 300, 5.0), 145.0);
  EXPECT_EQ(estimateEta(300, 300, 5.0), 0.0);
}

TEST(Progress, PrinterRedrawsAndEndsLine) {
  std::string path = tempPath("progress.txt");
  std::FILE *f = std::fopen(path.c_str(), "w+");
  ASSERT_NE(f, nullptr);
  {
    ProgressPrinter printer(f);
    printer.update({1, 300, 10, 3e-3, 123.45, 1e5, 3725});
    printer.update({2, 300, 9, 3e-3, 1.5, 1e5, 60});
    printer.finish();
    printer.finish(); // idempotent
  }
  std::rewind(f);
  std::string out;
  char buffer[512];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), f)) > 0)
    out.append(buffer, n);
  std::fclose(f);
  unlink(path.c_str());
  std::string first = "step 1/300 | loss 10.0000 | lr 3.00e-03 | grad 123.45 | 100.0k tok/s | ETA 1h02m";
  std::string second = "step 2/300 | loss 9.0000 | lr 3.00e-03 | grad 1.50 | 100.0k tok/s | ETA 1m00s";
  ASSERT_LT(second.size(), first.size());
  EXPECT_EQ(out, "\r" + first + "\r" + second + std::string(first.size() - second.size(), ' ') + "\n");
}

//===--- timer ------------------------------------------------------------===//

TEST(Timer, MonotonicAndLaps) {
  Timer t;
  usleep(2000);
  double lap1 = t.lap();
  EXPECT_GE(lap1, 0.001);
  double lap2 = t.lap();
  EXPECT_GE(lap2, 0.0);
  EXPECT_LT(lap2, lap1 + 1.0);
  EXPECT_GE(t.seconds(), lap1);
  t.reset();
  EXPECT_LT(t.seconds(), lap1 + 1.0);
}
