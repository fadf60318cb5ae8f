//===- TrainExecutableTest.cpp - the generated `train` executable, end to end
//
// Drives real executables built by `kilnc SPEC -o DIR` (r1-tiny, dense-tiny)
// on a kiln-corpus shard (seed 1, 4096 tokens):
//  1. 20 steps against the float32 PyTorch trajectory goldens
//     (test/Reference/goldens/*.trajectory.json): per-step loss, main_loss,
//     lr, grad_norm, and the step-1 gradients (--save-grads) through the
//     per-tensor statistics of models/reference/training.py stats();
//  2. resuming from a checkpoint is bit-exact (jsonl and checkpoint bytes),
//     in f32 and with train.precision bf16, fp8 and fp16, whose 20-step
//     loss trajectories also stay close to the f32 one; fp16's dynamic loss
//     scaling follows GradScaler's rules, and its skipped steps change no
//     parameter or moment;
//  3. two runs with the same seed and thread count are identical;
//  4. bad inputs fail with exit code 1 and an `error:` naming the problem,
//     leaving an existing checkpoint directory byte-for-byte unchanged;
//  5. SIGKILL at random moments of a run that checkpoints every step leaves
//     `latest` naming a complete checkpoint, and resuming from it continues
//     bit-exactly.
//
//===----------------------------------------------------------------------===//

#include "runtime/safetensors/Safetensors.h"

#include "test/unit/GradientStats.h"

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

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using namespace kiln::test;

constexpr double kTolerance = 1e-4;
const char *const kThreads = "2";

//===----------------------------------------------------------------------===//
// Files and processes
//===----------------------------------------------------------------------===//

std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void writeFile(const std::string &path, const std::string &bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

/// Every regular file under `dir` (relative path -> bytes), and every
/// directory (relative path + "/" -> "").
std::map<std::string, std::string> snapshot(const std::string &dir) {
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
std::string diffSnapshots(const std::map<std::string, std::string> &before,
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
pid_t spawn(const std::vector<std::string> &args, const std::string &stdoutPath,
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

RunResult waitFor(pid_t pid, const std::string &stdoutPath, const std::string &stderrPath) {
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

std::string describe(const std::vector<std::string> &args, const RunResult &r) {
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
std::vector<LogLine> readLog(const std::string &path) {
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

double number(const LogLine &line, const std::string &key) {
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
std::string compareLines(const LogLine &got, const LogLine &want) {
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
// Gradient statistics (GradientStats.h)
//===----------------------------------------------------------------------===//

/// As TrainStepGoldenTest's compareStats: sums and the projection relative
/// to the golden's abs_sum (so cancelling sums compare sensibly), sq_sum
/// relative to itself, first values relative to the mean |value|.
void compareStats(const std::string &name, const Stats &got, const json &want, Worst &sums,
                  Worst &squares, Worst &firsts) {
  double n = 1;
  for (const json &d : want["shape"])
    n *= d.get<double>();
  const double absSum = want["abs_sum"].get<double>();
  if (absSum == 0) { // an all-zero golden: compare absolutely
    sums.check(got.absSum, 0, 1.0, name + " abs_sum");
    return;
  }
  sums.check(got.absSum, absSum, absSum, name + " abs_sum");
  sums.check(got.sum, want["sum"].get<double>(), absSum, name + " sum");
  sums.check(got.proj, want["proj"].get<double>(), absSum, name + " proj");
  squares.check(got.sqSum, want["sq_sum"].get<double>(), want["sq_sum"].get<double>(),
                name + " sq_sum");
  for (size_t i = 0; i < got.first.size() && i < want["first"].size(); ++i)
    firsts.check(got.first[i], want["first"][i].get<double>(), absSum / n,
                 name + " first[" + std::to_string(i) + "]");
}

//===----------------------------------------------------------------------===//
// The fixture: executables and the corpus, built once per process
//===----------------------------------------------------------------------===//

class TrainExecutable : public ::testing::Test {
protected:
  static std::string root, binDir, tmp, corpus, setupError;
  static std::map<std::string, std::string> exe; // model -> train path

  static void SetUpTestSuite() {
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
    for (const char *model : {"r1-tiny", "dense-tiny"}) {
      const std::string dir = tmp + "/" + model;
      runTool({binDir + "/kilnc", root + "/models/" + model + ".json", "-o", dir});
      exe[model] = dir + "/train";
    }
    // r1-tiny with train.precision bf16, fp8 and fp16 (kiln-mixed-precision),
    // and fp16 from a loss scale of 2^26 that overflows for the first steps,
    // growing after every 3 finite steps (GradScaler's state machine, fast).
    // bf16 with bf16 AdamW moments (train.optimizer.state_dtype).
    for (const char *precision : {"bf16", "fp8", "fp16", "fp16-overflow", "bf16-moments"}) {
      std::ifstream in(root + "/models/r1-tiny.json");
      json spec = json::parse(in);
      spec["train"]["precision"] = std::string(precision).substr(0, 4);
      if (std::string(precision) == "fp16-overflow")
        spec["train"]["loss_scale"] = {{"init", std::ldexp(1.0, 26)}, {"growth_interval", 3}};
      if (std::string(precision) == "bf16-moments")
        spec["train"]["optimizer"]["state_dtype"] = "bf16";
      const std::string name = std::string("r1-tiny-") + precision;
      writeFile(tmp + "/" + name + ".json", spec.dump(2));
      runTool({binDir + "/kilnc", tmp + "/" + name + ".json", "-o", tmp + "/" + name});
      exe[name] = tmp + "/" + name + "/train";
    }
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

std::string TrainExecutable::root, TrainExecutable::binDir, TrainExecutable::tmp,
    TrainExecutable::corpus, TrainExecutable::setupError;
std::map<std::string, std::string> TrainExecutable::exe;

//===----------------------------------------------------------------------===//
// 1. Trajectory and step-1 gradients vs PyTorch
//===----------------------------------------------------------------------===//

void TrainExecutable::checkTrajectory(const std::string &model) {
  std::ifstream in(root + "/test/Reference/goldens/" + model + ".trajectory.json");
  ASSERT_TRUE(in) << "missing trajectory golden for " << model;
  const json golden = json::parse(in);
  const std::string dir = freshDir("trajectory-" + model);
  const std::string log = dir + "/log.jsonl", grads = dir + "/g.safetensors";
  std::string what;
  RunResult r = train(model,
                      {"--data", corpus, "--steps", "20", "--log", log, "--save-grads", grads,
                       "--threads", kThreads},
                      &what);
  ASSERT_EQ(r.exitCode, 0) << what;

  // Per-step metrics.
  const std::vector<LogLine> lines = readLog(log);
  const json &steps = golden["steps"];
  ASSERT_EQ(lines.size(), steps.size()) << log;
  struct Field {
    const char *key;
    double worst = 0;
    uint64_t at = 0;
  } fields[] = {{"loss"}, {"main_loss"}, {"lr"}, {"grad_norm"}};
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(number(lines[i], "step"), double(i + 1)) << log << " line " << i + 1;
    for (Field &f : fields) {
      const double got = number(lines[i], f.key), want = steps[i][f.key].get<double>();
      double e = std::fabs(got - want) / std::fabs(want);
      if (std::isnan(e))
        e = INFINITY;
      if (i == 0)
        std::printf("[%s] step 1 %s: kiln %.10g  pytorch %.10g\n", model.c_str(), f.key, got, want);
      EXPECT_LE(e, kTolerance) << model << " step " << i + 1 << " " << f.key << ": kiln " << got
                               << ", pytorch " << want;
      if (e > f.worst)
        f.worst = e, f.at = i + 1;
    }
  }
  for (const Field &f : fields)
    std::printf("[%s] max relative error over %zu steps: %-9s %.3g (step %llu)\n", model.c_str(),
                lines.size(), f.key, f.worst, (unsigned long long)f.at);

  // Step-1 gradients.
  std::string error;
  auto reader = kiln::safetensors::Reader::open(grads, error);
  ASSERT_TRUE(reader) << error;
  const json &want = golden["grads_step1"];
  Worst sums, squares, firsts;
  size_t compared = 0;
  for (const auto &[name, stats] : want.items()) {
    if (!reader->find(name)) {
      // Not trainable (the DeepSeek e_score_correction_bias): the golden
      // lists it with an all-zero gradient.
      EXPECT_EQ(stats["abs_sum"].get<double>(), 0.0)
          << grads << ": no gradient for '" << name << "', which the golden has as nonzero";
      continue;
    }
    const std::vector<int64_t> shape = stats["shape"].get<std::vector<int64_t>>();
    std::vector<double> values;
    ASSERT_TRUE(reader->readAsDouble(name, values, error, &shape)) << error;
    const Stats got = statsOf(name, values.data(), int64_t(values.size()));
    if (compared == 0)
      std::printf("[%s] d %s first values: kiln %.10g %.10g  pytorch %.10g %.10g\n", model.c_str(),
                  name.c_str(), got.first[0], got.first[1], stats["first"][0].get<double>(),
                  stats["first"][1].get<double>());
    compareStats(name, got, stats, sums, squares, firsts);
    ++compared;
  }
  EXPECT_EQ(reader->tensors().size(), compared) << grads << " has tensors the golden lacks";
  std::printf("[%s] step-1 gradients of %zu tensors, max relative error: sum/abs_sum/proj %.3g "
              "(%s), sq_sum %.3g (%s), first values %.3g (%s)\n",
              model.c_str(), compared, sums.error, sums.where.c_str(), squares.error,
              squares.where.c_str(), firsts.error, firsts.where.c_str());
  EXPECT_LE(sums.error, kTolerance) << sums.where;
  EXPECT_LE(squares.error, kTolerance) << squares.where;
  EXPECT_LE(firsts.error, kTolerance) << firsts.where;
}

TEST_F(TrainExecutable, TrajectoryMatchesPyTorchR1Tiny) { checkTrajectory("r1-tiny"); }
TEST_F(TrainExecutable, TrajectoryMatchesPyTorchDenseTiny) { checkTrajectory("dense-tiny"); }

//===----------------------------------------------------------------------===//
// 2. Resume is bit-exact
//===----------------------------------------------------------------------===//

void TrainExecutable::checkResumeIsBitExact(const std::string &model) {
  const std::string a = freshDir("resume-a-" + model), b = freshDir("resume-b-" + model);
  trainOk(model, {"--data", corpus, "--steps", "20", "--checkpoint-dir", a,
                      "--checkpoint-every", "10", "--log", a + "/log.jsonl", "--threads",
                      kThreads});
  trainOk(model, {"--data", corpus, "--steps", "10", "--checkpoint-dir", b, "--log",
                      b + "/log.jsonl", "--threads", kThreads});
  trainOk(model, {"--data", corpus, "--steps", "20", "--resume", "--checkpoint-dir", b,
                      "--checkpoint-every", "10", "--log", b + "/log.jsonl", "--threads",
                      kThreads});
  ASSERT_FALSE(HasFailure());

  const std::vector<LogLine> la = readLog(a + "/log.jsonl"), lb = readLog(b + "/log.jsonl");
  ASSERT_EQ(la.size(), 20u);
  ASSERT_EQ(lb.size(), 20u) << "the resumed run appends steps 11-20 to the log";
  for (size_t i = 0; i < 20; ++i)
    EXPECT_EQ(compareLines(lb[i], la[i]), "") << "step " << i + 1;
  std::printf("step 20 loss: uninterrupted %s, resumed at 10 %s\n", la[19].at("loss").c_str(),
              lb[19].at("loss").c_str());

  for (const char *step : {"/step-00000010", "/step-00000020"}) {
    const auto fa = snapshot(a + step), fb = snapshot(b + step);
    ASSERT_EQ(fa.size(), 3u) << a + step << ": model, optimizer and index files";
    EXPECT_EQ(diffSnapshots(fa, fb), "") << a + step << " and " << b + step << " differ";
  }
  EXPECT_EQ(readFile(a + "/latest"), readFile(b + "/latest"));
}

TEST_F(TrainExecutable, ResumeIsBitExact) { checkResumeIsBitExact("r1-tiny"); }
TEST_F(TrainExecutable, ResumeIsBitExactInBf16) { checkResumeIsBitExact("r1-tiny-bf16"); }
TEST_F(TrainExecutable, ResumeIsBitExactInFp8) { checkResumeIsBitExact("r1-tiny-fp8"); }
// bf16 moments are checkpointed widened to f32 and narrowed back exactly.
TEST_F(TrainExecutable, ResumeIsBitExactWithBf16Moments) {
  checkResumeIsBitExact("r1-tiny-bf16-moments");
}
// The loss scaler's scale, growth tracker and update count are checkpoint
// state: resumed at step 10 (after skips, updates and a scale change) the
// run continues through the same skips and scale changes.
TEST_F(TrainExecutable, ResumeIsBitExactInFp16WithSkippedSteps) {
  checkResumeIsBitExact("r1-tiny-fp16-overflow");
}

// Mixed precision keeps f32 master weights, gradients and moments: the
// trajectory follows the f32 one closely without being it. The step-1
// losses differ only by the rounding of the GEMMs, and over 20 steps the gap
// stays within `bound` (measured, 2 threads: bf16 8.5e-4 and fp8 8.2e-4,
// its experts in bf16, both at step 18).
void TrainExecutable::checkTracksFp32(const std::string &model, double bound,
                                      const std::string &reference) {
  const std::string dir = freshDir(model + "-vs-" + reference);
  trainOk(reference, {"--data", corpus, "--steps", "20", "--log", dir + "/f32.jsonl",
                      "--threads", kThreads});
  trainOk(model, {"--data", corpus, "--steps", "20", "--log", dir + "/low.jsonl", "--threads",
                  kThreads});
  ASSERT_FALSE(HasFailure());
  const std::vector<LogLine> f32 = readLog(dir + "/f32.jsonl"), low = readLog(dir + "/low.jsonl");
  ASSERT_EQ(f32.size(), 20u);
  ASSERT_EQ(low.size(), 20u);
  // Not the reference's numbers (moment storage shows from step 3 on: the
  // step-1 update uses the unrounded moments).
  EXPECT_NE(f32[19].at("loss"), low[19].at("loss"))
      << model << " computes " << reference << "'s numbers";
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < 20; ++i) {
    const double a = number(f32[i], "loss"), b = number(low[i], "loss");
    const double gap = std::fabs(b - a) / std::fabs(a);
    EXPECT_LE(gap, bound) << model << " step " << i + 1 << ": f32 " << a << ", " << b;
    if (!(gap <= worst))
      worst = gap, at = i + 1;
  }
  std::printf("[%s] vs f32 loss over 20 steps: step 1 %s vs %s, max relative gap %.3g "
              "(step %zu)\n",
              model.c_str(), low[0].at("loss").c_str(), f32[0].at("loss").c_str(), worst, at);
}

TEST_F(TrainExecutable, Bf16TracksFp32R1Tiny) { checkTracksFp32("r1-tiny-bf16", 5e-3); }
TEST_F(TrainExecutable, Fp8TracksFp32R1Tiny) { checkTracksFp32("r1-tiny-fp8", 5e-3); }
TEST_F(TrainExecutable, Fp16TracksFp32R1Tiny) { checkTracksFp32("r1-tiny-fp16", 5e-3); }
// bf16 moments against f32 moments, both with bf16 GEMMs (measured, 2
// threads: 2.8e-4 over 20 steps).
TEST_F(TrainExecutable, Bf16MomentsTrackF32Moments) {
  checkTracksFp32("r1-tiny-bf16-moments", 2e-3, "r1-tiny-bf16");
}

// Checkpoints hold f32 moments whatever the program keeps, so a run with
// bf16 moments resumes one written with f32 moments (rounding them) and the
// other way round (exactly), and both continue close to the uninterrupted
// run.
TEST_F(TrainExecutable, MomentStorageDoesNotTieCheckpoints) {
  const std::string dir = freshDir("moment-storage");
  trainOk("r1-tiny-bf16", {"--data", corpus, "--steps", "20", "--log", dir + "/whole.jsonl",
                           "--threads", kThreads});
  for (const auto &[first, second] :
       {std::pair<std::string, std::string>{"r1-tiny-bf16", "r1-tiny-bf16-moments"},
        {"r1-tiny-bf16-moments", "r1-tiny-bf16"}}) {
    const std::string ckpt = freshDir("moment-storage-" + first);
    trainOk(first, {"--data", corpus, "--steps", "10", "--checkpoint-dir", ckpt, "--threads",
                    kThreads});
    trainOk(second, {"--data", corpus, "--steps", "20", "--resume", "--checkpoint-dir", ckpt,
                     "--log", ckpt + "/resumed.jsonl", "--threads", kThreads});
    ASSERT_FALSE(HasFailure());
    const std::vector<LogLine> whole = readLog(dir + "/whole.jsonl"),
                               resumed = readLog(ckpt + "/resumed.jsonl");
    ASSERT_EQ(resumed.size(), 10u) << first << " -> " << second;
    double worst = 0;
    for (size_t i = 0; i < 10; ++i) {
      EXPECT_EQ(resumed[i].at("step"), whole[i + 10].at("step"));
      const double a = number(whole[i + 10], "loss"), b = number(resumed[i], "loss");
      worst = std::max(worst, std::fabs(b - a) / std::fabs(a));
    }
    std::printf("[%s -> %s] steps 11-20 within %.3g of the uninterrupted f32-moment run\n",
                first.c_str(), second.c_str(), worst);
    EXPECT_LE(worst, 2e-3) << first << " -> " << second;
  }
}

// Dynamic loss scaling follows torch GradScaler's rules step by step: from
// 2^26 the steps overflow (skipped, grad_norm not finite, the scale halved)
// until the scale fits; then each 3rd finite step in a row doubles
// the scale and each overflow halves it and restarts the count. The model
// still trains, and the default fp16 run (2^16) skips nothing.
TEST_F(TrainExecutable, Fp16LossScalingFollowsGradScaler) {
  const std::string dir = freshDir("fp16-scaler");
  trainOk("r1-tiny-fp16-overflow", {"--data", corpus, "--steps", "40", "--log",
                                    dir + "/over.jsonl", "--threads", kThreads});
  trainOk("r1-tiny-fp16", {"--data", corpus, "--steps", "20", "--log", dir + "/plain.jsonl",
                           "--threads", kThreads});
  ASSERT_FALSE(HasFailure());
  const std::vector<LogLine> over = readLog(dir + "/over.jsonl"),
                             plain = readLog(dir + "/plain.jsonl");
  ASSERT_EQ(over.size(), 40u);
  ASSERT_EQ(plain.size(), 20u);
  double scale = std::ldexp(1.0, 26);
  int tracker = 0, skipped = 0, grown = 0;
  for (size_t i = 0; i < over.size(); ++i) {
    const LogLine &line = over[i];
    ASSERT_TRUE(line.count("loss_scale") && line.count("skipped")) << "step " << i + 1;
    EXPECT_EQ(number(line, "loss_scale"), scale) << "step " << i + 1;
    const bool skip = line.at("skipped") == "true";
    EXPECT_EQ(skip, !std::isfinite(number(line, "grad_norm"))) << "step " << i + 1;
    if (skip) {
      scale *= 0.5, tracker = 0, ++skipped;
    } else if (++tracker == 3) {
      scale *= 2, tracker = 0, ++grown;
    }
  }
  EXPECT_EQ(over[0].at("skipped"), "true") << "2^26 overflows fp16";
  EXPECT_GT(grown, 0) << "no scale growth in 40 steps";
  EXPECT_LT(number(over[39], "main_loss"), number(over[0], "main_loss") - 0.5);
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_EQ(plain[i].at("skipped"), "false") << "step " << i + 1;
    EXPECT_EQ(number(plain[i], "loss_scale"), 65536.0) << "step " << i + 1;
  }
  std::printf("[r1-tiny fp16] from 2^26: %d of 40 steps skipped, the scale grew %d times, ends "
              "at %g; main loss %s -> %s\n",
              skipped, grown, scale, over[0].at("main_loss").c_str(),
              over[39].at("main_loss").c_str());
}

// A skipped step changes no parameter and no moment: the checkpoints after
// steps 1 and 2 (both overflowing) hold the initial parameters and zero
// moments, and only the scaler's state moved.
TEST_F(TrainExecutable, Fp16SkippedStepsLeaveTheStateUntouched) {
  const std::string dir = freshDir("fp16-skipped");
  trainOk("r1-tiny-fp16-overflow", {"--data", corpus, "--steps", "2", "--checkpoint-dir", dir,
                                    "--checkpoint-every", "1", "--threads", kThreads});
  ASSERT_FALSE(HasFailure());
  std::string error;
  std::map<std::string, std::vector<double>> first;
  for (const char *step : {"/step-00000001", "/step-00000002"}) {
    int moments = 0, params = 0;
    for (const auto &entry : fs::directory_iterator(dir + step)) {
      if (entry.path().extension() != ".safetensors")
        continue;
      auto reader = kiln::safetensors::Reader::open(entry.path().string(), error);
      ASSERT_TRUE(reader) << error;
      for (const auto &tensor : reader->tensors()) {
        std::vector<double> values;
        ASSERT_TRUE(reader->readAsDouble(tensor.name, values, error)) << error;
        if (tensor.name.rfind("optimizer.", 0) == 0) {
          ++moments;
          EXPECT_TRUE(std::all_of(values.begin(), values.end(), [](double v) { return v == 0; }))
              << step << ": " << tensor.name << " is not zero after skipped steps";
        } else {
          ++params;
          if (!first.count(tensor.name))
            first[tensor.name] = values;
          else
            EXPECT_TRUE(values == first[tensor.name]) << tensor.name << " changed in step 2";
        }
      }
      if (entry.path().filename().string().rfind("optimizer", 0) == 0) {
        const auto &meta = reader->metadata();
        EXPECT_EQ(meta.at("optimizer_updates"), "0") << step;
        EXPECT_EQ(meta.at("growth_tracker"), "0") << step;
        // 2^25 after one skip, 2^24 after two, as %.9g (which round-trips f32).
        EXPECT_EQ(meta.at("loss_scale"), std::string(step).back() == '1' ? "33554432" : "16777216")
            << step;
      }
    }
    EXPECT_GT(params, 10) << step;
    EXPECT_GT(moments, 10) << step;
  }
}

//===----------------------------------------------------------------------===//
// 3. Determinism
//===----------------------------------------------------------------------===//

// --profile times every kernel without changing a bit of the training, and
// prints one row per kernel (calls per step, ms per step, share of the step).
TEST_F(TrainExecutable, ProfileTimesKernelsWithoutChangingNumbers) {
  const std::string dir = freshDir("profile");
  trainOk("r1-tiny", {"--steps", "5", "--threads", kThreads, "--log", dir + "/plain.jsonl"});
  std::string what;
  RunResult r = train("r1-tiny", {"--steps", "5", "--threads", kThreads, "--log",
                                  dir + "/profiled.jsonl", "--profile"},
                      &what);
  ASSERT_EQ(r.exitCode, 0) << what;
  const std::vector<LogLine> plain = readLog(dir + "/plain.jsonl"),
                             profiled = readLog(dir + "/profiled.jsonl");
  ASSERT_EQ(plain.size(), 5u);
  ASSERT_EQ(profiled.size(), 5u);
  for (size_t i = 0; i < 5; ++i)
    for (const char *key : {"loss", "main_loss", "grad_norm"})
      EXPECT_EQ(profiled[i].at(key), plain[i].at(key)) << key << " at step " << i + 1;
  EXPECT_NE(r.err.find("kernel profile (rank 0, 5 steps, "), std::string::npos) << r.err;
  // r1-tiny: 3 MoE layer calls (2 decoder layers, MTP) x 3 grouped GEMMs.
  EXPECT_TRUE(std::regex_search(r.err, std::regex("\\n  grouped_matmul +9\\.0 +[0-9.]+ +[0-9.]+%")))
      << r.err;
  EXPECT_TRUE(std::regex_search(r.err, std::regex("\\n  adamw +[0-9]+\\.0 "))) << r.err;
  EXPECT_NE(r.err.find("(outside kernels)"), std::string::npos) << r.err;
}

TEST_F(TrainExecutable, SameSeedAndThreadsIsDeterministic) {
  const std::string dir = freshDir("determinism");
  // The built-in synthetic corpus (from --seed) and a token file.
  for (bool synthetic : {true, false}) {
    std::vector<std::string> logs;
    for (int run = 0; run < 2; ++run) {
      logs.push_back(dir + "/" + (synthetic ? "synthetic" : "file") + std::to_string(run) +
                     ".jsonl");
      std::vector<std::string> args{"--steps", "20", "--seed", "7", "--threads", kThreads,
                                    "--log", logs.back()};
      if (!synthetic)
        args.insert(args.end(), {"--data", corpus});
      trainOk("r1-tiny", args);
    }
    const std::vector<LogLine> l0 = readLog(logs[0]), l1 = readLog(logs[1]);
    ASSERT_EQ(l0.size(), 20u) << logs[0];
    ASSERT_EQ(l1.size(), 20u) << logs[1];
    for (size_t i = 0; i < l0.size(); ++i)
      EXPECT_EQ(compareLines(l1[i], l0[i]), "")
          << logs[1] << " vs " << logs[0] << " step " << i + 1;
    std::printf("%s corpus: step 20 loss %s / %s, grad_norm %s / %s\n",
                synthetic ? "synthetic" : "token-file", l0[19].at("loss").c_str(),
                l1[19].at("loss").c_str(), l0[19].at("grad_norm").c_str(),
                l1[19].at("grad_norm").c_str());
  }
}

//===----------------------------------------------------------------------===//
// 4. Bad inputs
//===----------------------------------------------------------------------===//

class TrainExecutableBadInput : public TrainExecutable {
protected:
  /// A checkpoint directory holding r1-tiny's step-10 checkpoint (copied
  /// from one made once per process).
  std::string checkpointCopy(const std::string &name) {
    static std::string made;
    if (made.empty()) {
      const std::string src = freshDir("bad-input-source");
      trainOk("r1-tiny", {"--data", corpus, "--steps", "10", "--checkpoint-dir", src,
                          "--threads", kThreads});
      made = src;
    }
    const std::string dir = freshDir(name);
    fs::copy(made, dir, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
    return dir;
  }

  /// Runs `model`'s train with `args`; expects exit code 1, one `error:`
  /// line containing each of `mentions`, and `ckptDir` unchanged.
  void expectFailure(const std::string &model, const std::vector<std::string> &args,
                     const std::string &ckptDir, const std::vector<std::string> &mentions) {
    const auto before = snapshot(ckptDir);
    std::string what;
    RunResult r = train(model, args, &what);
    EXPECT_EQ(r.exitCode, 1) << what;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << what;
    for (const std::string &m : mentions)
      EXPECT_NE(r.err.find(m), std::string::npos) << "expected '" << m << "' in stderr\n" << what;
    EXPECT_EQ(diffSnapshots(before, snapshot(ckptDir)), "") << ckptDir << " changed\n" << what;
    std::printf("  %s", r.err.c_str());
  }
};

TEST_F(TrainExecutableBadInput, MissingTokenFile) {
  const std::string ckpt = checkpointCopy("missing-data"), data = tmp + "/no-such-shard.bin";
  for (bool resume : {false, true}) {
    std::vector<std::string> args{"--data", data, "--steps", "20", "--checkpoint-dir", ckpt,
                                  "--checkpoint-every", "1", "--threads", kThreads};
    if (resume)
      args.push_back("--resume");
    expectFailure("r1-tiny", args, ckpt, {data, "No such file"});
  }
}

TEST_F(TrainExecutableBadInput, TruncatedTokenFile) {
  const std::string ckpt = checkpointCopy("truncated-data"), data = tmp + "/truncated.bin";
  const std::string bytes = readFile(corpus);
  ASSERT_EQ(bytes.size(), 1024u + 2 * 4096);
  writeFile(data, bytes.substr(0, 1024 + 2 * 1000 + 1)); // mid-data, mid-token
  for (bool resume : {false, true}) {
    std::vector<std::string> args{"--data", data, "--steps", "20", "--checkpoint-dir", ckpt,
                                  "--checkpoint-every", "1", "--threads", kThreads};
    if (resume)
      args.push_back("--resume");
    expectFailure("r1-tiny", args, ckpt, {data, "truncated"});
  }
}

TEST_F(TrainExecutableBadInput, CorruptTokenFileHeader) {
  const std::string ckpt = checkpointCopy("bad-magic"), data = tmp + "/bad-magic.bin";
  std::string bytes = readFile(corpus);
  ASSERT_GE(bytes.size(), 4u);
  bytes[0] ^= 0x5a; // the magic 20240520 is header[0]
  writeFile(data, bytes);
  for (bool resume : {false, true}) {
    std::vector<std::string> args{"--data", data, "--steps", "20", "--checkpoint-dir", ckpt,
                                  "--checkpoint-every", "1", "--threads", kThreads};
    if (resume)
      args.push_back("--resume");
    expectFailure("r1-tiny", args, ckpt, {data, "magic"});
  }
}

TEST_F(TrainExecutableBadInput, TruncatedCheckpoint) {
  const std::string ckpt = checkpointCopy("truncated-checkpoint");
  std::string latest = readFile(ckpt + "/latest");
  while (!latest.empty() && (latest.back() == '\n' || latest.back() == '\r'))
    latest.pop_back();
  ASSERT_EQ(latest, "step-00000010");
  for (const char *name : {"model-00001-of-00001.safetensors",
                           "optimizer-00001-of-00001.safetensors",
                           "model.safetensors.index.json"}) {
    const std::string file = ckpt + "/" + latest + "/" + name;
    const std::string bytes = readFile(file);
    ASSERT_FALSE(bytes.empty()) << file;
    // (The index without its last byte, a newline, is still the same JSON.)
    const bool index = fs::path(file).extension() == ".json";
    for (size_t keep : {bytes.size() / 2, bytes.size() - (index ? 2 : 1), size_t(5)}) {
      writeFile(file, bytes.substr(0, keep));
      SCOPED_TRACE(file + ": kept " + std::to_string(keep) + " of " +
                   std::to_string(bytes.size()) + " bytes");
      expectFailure("r1-tiny",
                    {"--data", corpus, "--steps", "20", "--checkpoint-dir", ckpt, "--resume",
                     "--checkpoint-every", "1", "--threads", kThreads},
                    ckpt, {file});
    }
    writeFile(file, bytes);
  }
}

TEST_F(TrainExecutableBadInput, CheckpointFromAnotherSpec) {
  const std::string ckpt = checkpointCopy("other-spec");
  expectFailure("dense-tiny",
                {"--data", corpus, "--steps", "20", "--checkpoint-dir", ckpt, "--resume",
                 "--checkpoint-every", "1", "--threads", kThreads},
                ckpt, {ckpt + "/step-00000010/model.safetensors.index.json", "another spec"});
}

TEST_F(TrainExecutableBadInput, CheckpointDirUnderRegularFile) {
  const std::string ckpt = checkpointCopy("unwritable-regular-file");
  const std::string file = tmp + "/a-regular-file";
  writeFile(file, "not a directory\n");
  // The checkpoint directory itself.
  expectFailure("r1-tiny",
                {"--data", corpus, "--steps", "20", "--checkpoint-dir", file + "/ckpt",
                 "--threads", kThreads},
                ckpt, {file + "/ckpt", "Not a directory"});
  // A resumed run whose log or --save-grads cannot be written must not touch
  // the checkpoint directory it resumed from.
  expectFailure("r1-tiny",
                {"--data", corpus, "--steps", "20", "--checkpoint-dir", ckpt, "--resume",
                 "--checkpoint-every", "1", "--log", file + "/log.jsonl", "--threads", kThreads},
                ckpt, {file + "/log.jsonl"});
  expectFailure("r1-tiny",
                {"--data", corpus, "--steps", "20", "--checkpoint-dir", ckpt, "--resume",
                 "--checkpoint-every", "1", "--save-grads", file + "/g.safetensors",
                 "--threads", kThreads},
                ckpt, {file + "/g.safetensors"});
  EXPECT_EQ(readFile(file), "not a directory\n");
}

TEST_F(TrainExecutableBadInput, ReadOnlyCheckpointDir) {
  if (::geteuid() == 0)
    GTEST_SKIP() << "running as root: chmod does not stop root's writes "
                    "(CheckpointDirUnderRegularFile covers an unwritable directory)";
  const std::string ckpt = checkpointCopy("read-only");
  ASSERT_EQ(::chmod(ckpt.c_str(), 0555), 0);
  expectFailure("r1-tiny",
                {"--data", corpus, "--steps", "20", "--checkpoint-dir", ckpt, "--resume",
                 "--checkpoint-every", "1", "--threads", kThreads},
                ckpt, {ckpt, "cannot write"});
  ::chmod(ckpt.c_str(), 0755);
}

//===----------------------------------------------------------------------===//
// 5. SIGKILL during checkpoint writes
//===----------------------------------------------------------------------===//

std::string stepFile(int step) {
  char buffer[40];
  std::snprintf(buffer, sizeof(buffer), "step-%08d", step);
  return buffer;
}

std::string readLatest(const std::string &dir) {
  std::string s = readFile(dir + "/latest");
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r'))
    s.pop_back();
  return s;
}

TEST_F(TrainExecutable, SigkillDuringCheckpointWrites) {
  constexpr int kSteps = 48;
  const std::string steps = std::to_string(kSteps);
  // The uninterrupted run.
  const std::string ref = freshDir("sigkill-reference");
  trainOk("r1-tiny", {"--data", corpus, "--steps", steps, "--checkpoint-dir", ref, "--log",
                      ref + "/log.jsonl", "--threads", kThreads});
  ASSERT_FALSE(HasFailure());
  const std::vector<LogLine> refLog = readLog(ref + "/log.jsonl");
  ASSERT_EQ(refLog.size(), size_t(kSteps));
  const auto refCkpt = snapshot(ref + "/" + stepFile(kSteps));
  ASSERT_EQ(refCkpt.size(), 3u) << "model, optimizer and index files";

  const std::string dir = freshDir("sigkill");
  std::mt19937 rng(20240520);
  std::uniform_int_distribution<int> delayMs(0, 60);
  constexpr int kKills = 10;
  int kills = 0, killsMidWrite = 0, resumedRuns = 0, comparedSteps = 0;
  size_t maxTemps = 0;
  for (int attempt = 0;; ++attempt) {
    const bool resume = ::access((dir + "/latest").c_str(), F_OK) == 0;
    const std::string log = dir + "/log" + std::to_string(attempt) + ".jsonl";
    std::vector<std::string> args{exe["r1-tiny"], "--data",  corpus,   "--steps",
                                  steps,           "--checkpoint-dir", dir, "--checkpoint-every",
                                  "1",             "--log",  log,      "--threads", kThreads};
    if (resume)
      args.push_back("--resume");
    const std::string startLatest = readLatest(dir);
    const uint64_t startStep =
        startLatest.empty() ? 0 : std::strtoull(startLatest.c_str() + 5, nullptr, 10);
    const std::string outPath = dir + "/../sigkill.out", errPath = dir + "/../sigkill.err";
    pid_t pid = spawn(args, outPath, errPath);
    ASSERT_GT(pid, 0);

    // The first kKills runs are killed (a run that finishes first ends the
    // loop): attempts 0-2 right after `latest` changed 1-3 times; 3-5 after
    // it changed once and a random delay; 6-7 as soon as this process's
    // temp file of a model or optimizer file exists (mid-write); 8-9 as
    // soon as its latest.tmp exists (the step's files renamed, `latest` not
    // yet).
    bool kill = attempt < kKills;
    if (kill) {
      const std::string tmpSuffix = ".tmp." + std::to_string(pid);
      const int changes = attempt < 3 ? 1 + attempt : 1;
      std::string seen = startLatest, trigger;
      int changed = 0;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      for (;;) {
        if (attempt < 6) {
          const std::string now = readLatest(dir);
          if (now != seen)
            seen = now, ++changed;
          if (changed >= changes) {
            trigger = "latest changed " + std::to_string(changes) + "x";
            break;
          }
          std::this_thread::sleep_for(std::chrono::microseconds(200));
        } else {
          std::error_code ec;
          for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
               it.increment(ec)) {
            const std::string name = it->path().filename().string();
            const bool wanted = attempt < 8 ? name.rfind("model-", 0) == 0 ||
                                                  name.rfind("optimizer-", 0) == 0
                                            : name.rfind("latest", 0) == 0;
            if (wanted && name.size() > tmpSuffix.size() &&
                name.compare(name.size() - tmpSuffix.size(), tmpSuffix.size(), tmpSuffix) == 0)
              trigger = name.substr(0, name.size() - std::to_string(pid).size()) + "<pid> seen";
          }
          if (!trigger.empty())
            break;
        }
        if (std::chrono::steady_clock::now() > deadline) {
          ::kill(pid, SIGKILL);
          waitFor(pid, outPath, errPath);
          FAIL() << "attempt " << attempt << ": no kill trigger in 60 s";
        }
        int status;
        if (::waitpid(pid, &status, WNOHANG) == pid) {
          kill = false;
          ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
              << "the run failed before it was killed\n"
              << describe(args, RunResult{WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0, "",
                                          readFile(errPath)});
          break;
        }
      }
      if (kill) {
        int delay = 0;
        if (attempt >= 3 && attempt < 6) {
          delay = delayMs(rng);
          std::this_thread::sleep_for(std::chrono::milliseconds(delay));
          trigger += " +" + std::to_string(delay) + "ms";
        }
        ::kill(pid, SIGKILL);
        RunResult r = waitFor(pid, outPath, errPath);
        if (r.signal != SIGKILL) { // it finished before the signal
          ASSERT_EQ(r.exitCode, 0) << describe(args, r);
          kill = false;
        } else {
          ++kills;
          size_t left = 0;
          for (const auto &[name, bytes] : snapshot(dir))
            if (name.find(tmpSuffix) != std::string::npos)
              ++left;
          if (left)
            ++killsMidWrite;
          std::printf("  kill %d (%s): latest %s, %zu temp file(s) left\n", kills,
                      trigger.c_str(), readLatest(dir).c_str(), left);
        }
      }
    } else {
      RunResult r = waitFor(pid, outPath, errPath);
      ASSERT_EQ(r.exitCode, 0) << describe(args, r);
    }
    if (resume)
      ++resumedRuns;

    // Whatever this run logged continues the uninterrupted run bit for bit.
    const std::vector<LogLine> lines = readLog(log);
    for (size_t i = 0; i < lines.size(); ++i) {
      const uint64_t step = startStep + 1 + i;
      ASSERT_LE(step, uint64_t(kSteps)) << log;
      EXPECT_EQ(compareLines(lines[i], refLog[step - 1]), "")
          << log << " (resumed from step " << startStep << ") line " << i + 1;
      ++comparedSteps;
    }

    // `latest` names a complete checkpoint of the step it says.
    const std::string latest = readLatest(dir);
    ASSERT_EQ(latest.size(), std::string("step-00000000").size()) << latest;
    for (const auto &[name, bytes] : refCkpt) {
      if (fs::path(name).extension() != ".safetensors")
        continue;
      std::string error;
      auto reader = kiln::safetensors::Reader::open(dir + "/" + latest + "/" + name, error);
      ASSERT_TRUE(reader) << "after kill " << kills << ": latest names an unreadable file: "
                          << error;
      auto want = kiln::safetensors::Reader::fromBytes(
          std::vector<uint8_t>(bytes.begin(), bytes.end()), name, error);
      ASSERT_TRUE(want) << error;
      ASSERT_EQ(reader->tensors().size(), want->tensors().size()) << latest << "/" << name;
    }
    ASSERT_TRUE(fs::exists(dir + "/" + latest + "/model.safetensors.index.json")) << latest;
    size_t temps = 0;
    for (const auto &[name, bytes] : snapshot(dir))
      if (name.find(".tmp") != std::string::npos)
        ++temps;
    maxTemps = std::max(maxTemps, temps);
    if (!kill)
      break;
  }
  std::printf("%d kills, %d of them mid-write (left a temp file)\n", kills, killsMidWrite);
  std::printf("%d resumed runs, %d logged steps compared bit-exactly with the uninterrupted run; "
              "up to %zu leftover temp files in the checkpoint directory\n",
              resumedRuns, comparedSteps, maxTemps);
  EXPECT_GE(kills, kKills - 2) << "runs finished before they could be killed";
  EXPECT_GE(killsMidWrite, 1) << "no kill interrupted a checkpoint write";
  const std::string last = stepFile(kSteps);
  EXPECT_EQ(readLatest(dir), last);
  EXPECT_EQ(diffSnapshots(snapshot(ref + "/" + last), snapshot(dir + "/" + last)), "")
      << "the final checkpoint after " << kills << " kills differs from the uninterrupted run's";
}

} // namespace
