//===- TrainExecutableBadInputTest.cpp - `train` on bad input and SIGKILL ---===//
//
// The r1-tiny executable of TrainExecutableFixture.h:
//  4. bad inputs fail with exit code 1 and an `error:` naming the problem,
//     leaving an existing checkpoint directory byte-for-byte unchanged;
//  5. SIGKILL at random moments of a run that checkpoints every step leaves
//     `latest` naming a complete checkpoint, and resuming from it continues
//     bit-exactly.
//
//===----------------------------------------------------------------------===//

#include "test/unit/TrainExecutableFixture.h"

namespace {

using namespace kiln::test;

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

  /// r1-tiny reading token file `data` fails as expectFailure says, both on a fresh start and
  /// when resuming from `ckptDir`, with stderr naming the file and `mention`.
  void expectBadDataFailsFreshAndResumed(const std::string &data, const std::string &ckptDir,
                                         const std::string &mention) {
    for (bool resume : {false, true}) {
      SCOPED_TRACE(resume ? "resumed" : "fresh");
      std::vector<std::string> args{"--data", data, "--steps", "20", "--checkpoint-dir", ckptDir,
                                    "--checkpoint-every", "1", "--threads", kThreads};
      if (resume)
        args.push_back("--resume");
      expectFailure("r1-tiny", args, ckptDir, {data, mention});
    }
  }
};

TEST_F(TrainExecutableBadInput, MissingTokenFile) {
  const std::string ckpt = checkpointCopy("missing-data"), data = tmp + "/no-such-shard.bin";
  expectBadDataFailsFreshAndResumed(data, ckpt, "No such file");
}

TEST_F(TrainExecutableBadInput, TruncatedTokenFile) {
  const std::string ckpt = checkpointCopy("truncated-data"), data = tmp + "/truncated.bin";
  const std::string bytes = readFile(corpus);
  ASSERT_EQ(bytes.size(), 1024u + 2 * 4096);
  writeFile(data, bytes.substr(0, 1024 + 2 * 1000 + 1)); // mid-data, mid-token
  expectBadDataFailsFreshAndResumed(data, ckpt, "truncated");
}

TEST_F(TrainExecutableBadInput, CorruptTokenFileHeader) {
  const std::string ckpt = checkpointCopy("bad-magic"), data = tmp + "/bad-magic.bin";
  std::string bytes = readFile(corpus);
  ASSERT_GE(bytes.size(), 4u);
  bytes[0] ^= 0x5a; // the magic 20240520 is header[0]
  writeFile(data, bytes);
  expectBadDataFailsFreshAndResumed(data, ckpt, "magic");
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
