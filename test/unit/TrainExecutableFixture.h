//===- TrainExecutableFixture.h - the `train` executables' test fixture -*- C++ -*-===//
//
// Shared by the TrainExecutable test files (one test binary): helpers that
// spawn processes, read jsonl metrics logs and snapshot directories, and the
// TrainExecutable fixture, which builds r1-tiny, dense-tiny and r1-tiny's
// precision variants once per test suite on a kiln-corpus shard (seed 1,
// 4096 tokens).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TEST_UNIT_TRAINEXECUTABLEFIXTURE_H
#define KILN_TEST_UNIT_TRAINEXECUTABLEFIXTURE_H

#include "runtime/safetensors/Safetensors.h"

#include "test/unit/GradientStats.h"
#include "test/unit/ProgramCache.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <random>
#include <signal.h>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace kiln::test {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr double kTolerance = 1e-4;
const char *const kThreads = "2";

//===----------------------------------------------------------------------===//
// Files and processes
//===----------------------------------------------------------------------===//

inline std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void writeFile(const std::string &path, const std::string &bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

/// Every regular file under `dir` (relative path -> bytes), and every
/// directory (relative path + "/" -> "").
inline std::map<std::string, std::string> snapshot(const std::string &dir) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    const std::string rel = fs::relative(it->path(), dir).string();
    if (it->is_directory())
      out[rel + "/"] = "";
    else
      out[rel] = readFile(it->path().string());
  }
  return out;
}

/// "" when equal, else what differs.
inline std::string diffSnapshots(const std::map<std::string, std::string> &before,
                                 const std::map<std::string, std::string> &after) {
  std::string out;
  for (const auto &[name, bytes] : before) {
    auto it = after.find(name);
    if (it == after.end())
      out += " removed " + name + ";";
    else if (it->second != bytes)
      out += " changed " + name + " (" + std::to_string(bytes.size()) + " -> " +
             std::to_string(it->second.size()) + " bytes);";
  }
  for (const auto &[name, bytes] : after)
    if (!before.count(name))
      out += " added " + name + ";";
  return out;
}

/// Starts `args` (args[0] is the program path) with stdout and stderr
/// redirected to files; returns the pid.
inline pid_t spawn(const std::vector<std::string> &args, const std::string &stdoutPath,
                   const std::string &stderrPath) {
  std::vector<char *> argv;
  for (const std::string &a : args)
    argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    int out = ::open(stdoutPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = ::open(stderrPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0 || err < 0)
      ::_exit(126);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

struct RunResult {
  int exitCode = -1; ///< -1 when killed by a signal.
  int signal = 0;
  std::string out, err;
};

inline RunResult waitFor(pid_t pid, const std::string &stdoutPath,
                         const std::string &stderrPath) {
  RunResult r;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status))
    r.exitCode = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    r.signal = WTERMSIG(status);
  r.out = readFile(stdoutPath);
  r.err = readFile(stderrPath);
  return r;
}

inline std::string describe(const std::vector<std::string> &args, const RunResult &r) {
  std::string s = "command:";
  for (const std::string &a : args)
    s += " " + a;
  s += "\nexit code " + std::to_string(r.exitCode);
  if (r.exitCode == 127)
    s += " (could not execute " + args[0] + ")";
  if (r.signal)
    s += " (signal " + std::to_string(r.signal) + ")";
  return s + "\nstderr:\n" + r.err;
}

//===----------------------------------------------------------------------===//
// jsonl logs
//===----------------------------------------------------------------------===//

/// One metrics line as the texts of its fields, so that "identical" means
/// identical digits (the writer prints the shortest round-tripping form, so
/// equal text is equal bits).
using LogLine = std::map<std::string, std::string>;

/// The complete lines of a jsonl file (a final line without '\n', which a
/// killed run may leave, is dropped).
inline std::vector<LogLine> readLog(const std::string &path) {
  std::vector<LogLine> lines;
  std::string text = readFile(path);
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::string line = text.substr(start, nl - start);
    LogLine fields;
    if (line.size() >= 2 && line.front() == '{' && line.back() == '}') {
      std::stringstream ss(line.substr(1, line.size() - 2));
      for (std::string item; std::getline(ss, item, ',');) {
        size_t colon = item.find(':');
        if (colon == std::string::npos || colon < 2)
          continue;
        fields[item.substr(1, colon - 2)] = item.substr(colon + 1);
      }
    }
    lines.push_back(fields);
  }
  return lines;
}

inline double number(const LogLine &line, const std::string &key) {
  auto it = line.find(key);
  if (it == line.end() || it->second == "null")
    return std::nan("");
  return std::strtod(it->second.c_str(), nullptr);
}

/// The fields that must match bit for bit between runs (all but timings).
const char *const kExactFields[] = {"step", "loss", "main_loss", "lr", "grad_norm"};

/// Loss scaling's fields, exact too where the log has them.
const char *const kScalerFields[] = {"loss_scale", "skipped"};

/// "" when `got` matches `want` on kExactFields (and kScalerFields where
/// `want` has them), else the first difference.
inline std::string compareLines(const LogLine &got, const LogLine &want) {
  for (const char *key : kExactFields) {
    auto g = got.find(key), w = want.find(key);
    if (g == got.end() || w == want.end())
      return std::string("missing field '") + key + "'";
    if (g->second != w->second)
      return std::string(key) + " " + g->second + " vs " + w->second;
  }
  for (const char *key : kScalerFields) {
    auto g = got.find(key), w = want.find(key);
    if (w == want.end())
      continue;
    if (g == got.end() || g->second != w->second)
      return std::string(key) + " " + (g == got.end() ? "missing" : g->second) + " vs " +
             w->second;
  }
  return "";
}

//===----------------------------------------------------------------------===//
// The fixture: executables and the corpus, built once per process
//===----------------------------------------------------------------------===//

/// A temporary directory for one test suite's executables, and a runner
/// of commands whose output lands there (GenerateExecutableTest,
/// GrpoExecutableTest).
struct Sandbox {
  std::string dir; ///< empty when it could not be made

  /// mkdtemp under $TMPDIR (or /tmp) named `prefix`-XXXXXX.
  static Sandbox make(const std::string &prefix) {
    const char *tmpBase = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmpBase && *tmpBase ? tmpBase : "/tmp") + "/" + prefix + "-XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    return {::mkdtemp(buf.data()) ? std::string(buf.data()) : std::string()};
  }
  void remove() const {
    std::error_code ec;
    if (!dir.empty())
      fs::remove_all(dir, ec);
  }
  RunResult run(const std::vector<std::string> &args) const {
    pid_t pid = spawn(args, dir + "/run.out", dir + "/run.err");
    return waitFor(pid, dir + "/run.out", dir + "/run.err");
  }
};

class TrainExecutable : public ::testing::Test {
protected:
  inline static std::string root, binDir, tmp, corpus, setupError;
  inline static std::map<std::string, std::string> exe; // model -> train path

  static void SetUpTestSuite() { buildModels(/*precisions=*/true, /*checkpointing=*/false); }

  /// Builds r1-tiny and dense-tiny, and with `precisions` r1-tiny's
  /// precision variants, with `checkpointing` both with
  /// train.checkpointing "full", "selective" and a budget (r1-tiny-full, ...,
  /// r1-tiny-budget), with `sparsity` r1-tiny-sparse (2:4 magnitude pruning
  /// from step 3, the mask recomputed every 4 steps). Each ctest
  /// case runs in its own process; the programs are built by the first and
  /// reused by the others (ProgramCache.h).
  static void buildModels(bool precisions, bool checkpointing, bool sparsity = false) {
    setupError.clear();
    exe.clear();
    root = KILN_SOURCE_DIR;
    // ctest runs these next to other tests on few cores: OpenMP's default
    // spin-waiting makes an oversubscribed 2-thread run ~8x slower. The wait
    // policy does not change results (the thread count decides the bits).
    ::setenv("OMP_WAIT_POLICY", "passive", /*overwrite=*/0);
    binDir = std::string(KILN_BINARY_DIR) + "/bin";
    if (const char *env = std::getenv("KILN_BIN_DIR"))
      binDir = env;
    const char *tmpBase = std::getenv("TMPDIR");
    std::string pattern = std::string(tmpBase && *tmpBase ? tmpBase : "/tmp") +
                          "/kiln-train-exe-XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) {
      setupError = "mkdtemp " + pattern + ": " + std::strerror(errno);
      return;
    }
    tmp = buf.data();
    corpus = tmp + "/corpus.bin";
    auto runTool = [&](const std::vector<std::string> &args) {
      pid_t pid = spawn(args, tmp + "/setup.out", tmp + "/setup.err");
      RunResult r = waitFor(pid, tmp + "/setup.out", tmp + "/setup.err");
      if (r.exitCode != 0)
        setupError += "setup failed: " + describe(args, r) + "\n";
    };
    runTool({binDir + "/kiln-corpus", "--seed", "1", "--tokens", "4096", "-o", corpus});
    for (const char *model : {"r1-tiny", "dense-tiny"})
      addProgram(model, readFile(root + "/models/" + model + ".json"));
    // r1-tiny with train.precision bf16, fp8 and fp16 (kiln-mixed-precision),
    // and fp16 from a loss scale of 2^26 that overflows for the first steps,
    // growing after every 3 finite steps (GradScaler's state machine, fast).
    // bf16 with bf16 AdamW moments (train.optimizer.state_dtype).
    // The same specs with train.checkpointing "full" and "selective".
    // And with a budget (policy budget) that mixes the levels: r1-tiny's
    // 2,000,000 bytes give blocks full, full, none, selective, dense-tiny's
    // 1,100,000 full and none (kilnc --report says which).
    for (const char *model : {"r1-tiny", "dense-tiny"})
      for (const char *policy : {"full", "selective", "budget"}) {
        if (!checkpointing)
          break;
        std::ifstream in(root + "/models/" + model + ".json");
        json spec = json::parse(in);
        spec["train"]["checkpointing"] = policy;
        if (std::string(policy) == "budget")
          spec["train"]["checkpointing"] = {
              {"budget_bytes", std::string(model) == "r1-tiny" ? 2'000'000 : 1'100'000}};
        addProgram(std::string(model) + "-" + policy, spec.dump(2));
      }
    if (sparsity) {
      std::ifstream in(root + "/models/r1-tiny.json");
      json spec = json::parse(in);
      spec["train"]["sparsity"] = {{"pattern", "2:4"}, {"start_step", 3}, {"mask_every", 4}};
      addProgram("r1-tiny-sparse", spec.dump(2));
    }
    for (const char *precision : {"bf16", "fp8", "fp16", "fp16-overflow", "bf16-moments"}) {
      if (!precisions)
        break;
      std::ifstream in(root + "/models/r1-tiny.json");
      json spec = json::parse(in);
      spec["train"]["precision"] = std::string(precision).substr(0, 4);
      if (std::string(precision) == "fp16-overflow")
        spec["train"]["loss_scale"] = {{"init", std::ldexp(1.0, 26)}, {"growth_interval", 3}};
      if (std::string(precision) == "bf16-moments")
        spec["train"]["optimizer"]["state_dtype"] = "bf16";
      addProgram(std::string("r1-tiny-") + precision, spec.dump(2));
    }
  }

  /// exe[name]: the program of the spec `text`, built once for all the
  /// suite's cases (ProgramCache.h) under the build's test/train-exe.
  static void addProgram(const std::string &name, const std::string &text) {
    const std::string dir = std::string(KILN_BINARY_DIR) + "/test/train-exe/" + name;
    if (std::string error = buildOnce(binDir + "/kilnc", text, dir); !error.empty())
      setupError += "setup failed: " + error + "\n";
    exe[name] = dir + "/train";
  }

  /// The spec file exe[name] was built from.
  static std::string specOf(const std::string &name) {
    return fs::path(exe[name]).parent_path().string() + "/" + name + ".json";
  }

  static void TearDownTestSuite() {
    if (tmp.empty())
      return;
    std::error_code ec;
    // A read-only directory left by a failed test must not stop the cleanup.
    for (auto it = fs::recursive_directory_iterator(tmp, ec); !ec && it != fs::end(it);
         it.increment(ec))
      if (it->is_directory())
        fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(tmp, ec);
  }

  void SetUp() override { ASSERT_TRUE(setupError.empty()) << setupError; }

  /// A fresh, empty directory under the suite's temp dir.
  static std::string freshDir(const std::string &name) {
    const std::string dir = tmp + "/" + name;
    std::error_code ec;
    fs::remove_all(dir, ec);
    fs::create_directories(dir);
    return dir;
  }

  /// Runs `model`'s train with `args` and waits for it.
  static RunResult train(const std::string &model, const std::vector<std::string> &args,
                         std::string *command = nullptr) {
    std::vector<std::string> all{exe[model]};
    all.insert(all.end(), args.begin(), args.end());
    static int counter = 0;
    const std::string base = tmp + "/run" + std::to_string(counter++);
    RunResult r = waitFor(spawn(all, base + ".out", base + ".err"), base + ".out", base + ".err");
    if (command)
      *command = describe(all, r);
    return r;
  }

  /// Runs and expects exit code 0.
  static void trainOk(const std::string &model, const std::vector<std::string> &args) {
    std::string what;
    RunResult r = train(model, args, &what);
    EXPECT_EQ(r.exitCode, 0) << what;
  }

  static void checkTrajectory(const std::string &model);
  static void checkResumeIsBitExact(const std::string &model);
  static void checkTracksFp32(const std::string &model, double bound,
                              const std::string &reference = "r1-tiny");
};

} // namespace kiln::test

#endif // KILN_TEST_UNIT_TRAINEXECUTABLEFIXTURE_H
