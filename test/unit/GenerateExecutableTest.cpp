//===- GenerateExecutableTest.cpp - `train --generate` against the forward
//
// Builds r1-tiny and dense-tiny with kilnc, trains each 40 steps on the
// built-in arithmetic corpus with a checkpoint, then generates from that
// checkpoint with the executable's decode program (f32 kernels, KV caches)
// and checks every generated token's log-probability against the training
// forward on the reference evaluator (f64) over the same tokens, with the
// checkpoint's parameters: greedy decoding (which must also pick the
// forward's argmax) and sampling with temperature, top-k and top-p. The
// log-probability at a position is log softmax(logits / T) there, so this
// checks the decode logits at every generated position, prefill's last
// included. Sampling is reproducible: the same command writes the same
// bytes.
//
//===----------------------------------------------------------------------===//

#include "dialects/kiln/reference/Evaluator.h"
#include "dialects/kiln/reference/Parameters.h"
#include "frontend/MLIRGen.h"
#include "frontend/Spec.h"
#include "test/unit/TrainExecutableFixture.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"

using namespace kiln;
using namespace kiln::test;

namespace {

constexpr double kLogprobTolerance = 1e-5;

class GenerateExecutable : public ::testing::TestWithParam<std::string> {
protected:
  inline static std::string root, binDir, tmp, setupError;
  inline static Sandbox sandbox;

  static void SetUpTestSuite() {
    root = KILN_SOURCE_DIR;
    binDir = std::string(KILN_BINARY_DIR) + "/bin";
    ::setenv("OMP_WAIT_POLICY", "passive", 0);
    sandbox = Sandbox::make("kiln-generate");
    tmp = sandbox.dir;
    if (tmp.empty()) {
      setupError = "mkdtemp failed";
      return;
    }
    // Prompts of different lengths in one decode batch, one a full
    // arithmetic problem, one a bare prefix.
    writeFile(tmp + "/prompts.jsonl", "{\"prompt\": \"Q: 12+7=? A: \"}\n"
                                      "{\"prompt\": \"Q: 3*4=? A: \"}\n"
                                      "{\"tokens\": [81, 58, 32]}\n");
  }
  static void TearDownTestSuite() { sandbox.remove(); }
  static RunResult run(const std::vector<std::string> &args) { return sandbox.run(args); }

  /// Builds and trains `model` once; returns the executable's directory.
  static std::string trained(const std::string &model) {
    const std::string dir = tmp + "/" + model;
    if (fs::exists(dir + "/ck/latest"))
      return dir;
    std::vector<std::string> build = {binDir + "/kilnc", root + "/models/" + model + ".json",
                                      "-o", dir};
    RunResult b = run(build);
    EXPECT_EQ(b.exitCode, 0) << describe(build, b);
    std::vector<std::string> train = {dir + "/train", "--steps", "40", "--threads", kThreads,
                                      "--checkpoint-dir", dir + "/ck"};
    RunResult t = run(train);
    EXPECT_EQ(t.exitCode, 0) << describe(train, t);
    return dir;
  }
};

struct Completion {
  std::vector<int32_t> prompt, tokens;
  std::vector<double> logprobs;
};

std::vector<Completion> readCompletions(const std::string &text) {
  std::vector<Completion> out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    json j = json::parse(line);
    out.push_back({j["prompt_tokens"].get<std::vector<int32_t>>(),
                   j["tokens"].get<std::vector<int32_t>>(),
                   j["logprobs"].get<std::vector<double>>()});
  }
  return out;
}

/// The forward's logits [len, vocab] on `tokens` (one row) with the
/// parameters of the checkpoint model file `params`.
std::vector<double> forwardLogits(const frontend::Spec &base, const std::string &params,
                                  const std::vector<int32_t> &tokens) {
  frontend::Spec spec = base;
  spec.train.microBatch = 1;
  spec.train.seqLen = int64_t(tokens.size());
  mlir::MLIRContext context;
  mlir::OwningOpRef<mlir::ModuleOp> module = frontend::buildForwardModule(context, spec);
  auto forward = module->lookupSymbol<mlir::func::FuncOp>("forward");
  mlir::FailureOr<reference::Signature> sig = reference::readSignature(forward);
  EXPECT_TRUE(mlir::succeeded(sig));
  llvm::SmallVector<reference::RefTensor> args(sig->numArgs);
  std::string error;
  EXPECT_TRUE(reference::loadParameters(params, *sig, args, error)) << error;
  mlir::Builder b(&context);
  reference::RefTensor ids(b.getI32Type(), {1, int64_t(tokens.size())});
  for (size_t i = 0; i < tokens.size(); ++i)
    ids.data[i] = tokens[i];
  for (const reference::InputSlot &in : sig->inputs)
    args[in.argIndex] =
        in.role == "loss_mask" ? reference::RefTensor(b.getF32Type(), in.shape, 1.0) : ids;
  reference::Evaluator evaluator(*module);
  auto results = evaluator.call("forward", args);
  EXPECT_TRUE(mlir::succeeded(results));
  return mlir::succeeded(results) ? (*results)[1].data : std::vector<double>();
}

/// Checks each generated token's log-prob against log softmax(logits / T)
/// of the forward; returns the worst error (relative to max(|lp|, 1)).
double checkAgainstForward(const frontend::Spec &spec, const std::string &params,
                           const std::vector<Completion> &completions, double temperature,
                           bool greedy) {
  const int64_t V = spec.model.vocabSize;
  double worst = 0;
  for (const Completion &c : completions) {
    std::vector<int32_t> all = c.prompt;
    all.insert(all.end(), c.tokens.begin(), c.tokens.end());
    std::vector<double> logits = forwardLogits(spec, params, all);
    EXPECT_EQ(int64_t(logits.size()), int64_t(all.size()) * V);
    if (int64_t(logits.size()) != int64_t(all.size()) * V)
      return 1;
    for (size_t i = 0; i < c.tokens.size(); ++i) {
      const double *row = &logits[(c.prompt.size() - 1 + i) * V];
      const double t = temperature > 0 ? temperature : 1.0;
      double peak = row[0];
      int64_t argmax = 0;
      for (int64_t v = 1; v < V; ++v)
        if (row[v] > peak)
          peak = row[v], argmax = v;
      double sum = 0;
      for (int64_t v = 0; v < V; ++v)
        sum += std::exp((row[v] - peak) / t);
      const double want = (row[c.tokens[i]] - peak) / t - std::log(sum);
      worst = std::max(worst,
                       std::fabs(c.logprobs[i] - want) / std::max(std::fabs(want), 1.0));
      if (greedy) {
        EXPECT_TRUE(c.tokens[i] == argmax || row[argmax] - row[c.tokens[i]] < 1e-5)
            << "greedy picked " << c.tokens[i] << ", the forward's argmax is " << argmax;
      }
    }
  }
  return worst;
}

TEST_P(GenerateExecutable, LogprobsEqualTheForwardOnTheSameTokens) {
  ASSERT_TRUE(setupError.empty()) << setupError;
  const std::string model = GetParam();
  const std::string dir = trained(model);
  std::string error;
  std::optional<frontend::Spec> spec =
      frontend::loadSpec(root + "/models/" + model + ".json", error);
  ASSERT_TRUE(spec) << error;
  const std::string params = dir + "/ck/step-00000040/model-00001-of-00001.safetensors";
  ASSERT_TRUE(fs::exists(params)) << params;

  struct Setting {
    const char *name;
    std::vector<std::string> flags;
    double temperature;
    bool greedy;
  };
  const std::vector<Setting> settings = {
      {"greedy", {"--temperature", "0", "--max-new-tokens", "12"}, 0.0, true},
      {"sampled", {"--temperature", "0.8", "--top-k", "20", "--top-p", "0.95", "--samples", "2",
                   "--max-new-tokens", "12", "--stop-token", "10"}, 0.8, false}};
  for (const Setting &s : settings) {
    std::vector<std::string> args = {dir + "/train", "--generate", tmp + "/prompts.jsonl",
                                     "--checkpoint", dir + "/ck", "--threads", kThreads,
                                     "--out", tmp + "/out.jsonl"};
    args.insert(args.end(), s.flags.begin(), s.flags.end());
    RunResult r = run(args);
    ASSERT_EQ(r.exitCode, 0) << describe(args, r);
    const std::string first = readFile(tmp + "/out.jsonl");
    std::vector<Completion> completions = readCompletions(first);
    ASSERT_EQ(completions.size(), s.greedy ? 3u : 6u);
    size_t tokens = 0;
    for (const Completion &c : completions)
      tokens += c.tokens.size();
    const double worst = checkAgainstForward(*spec, params, completions, s.temperature, s.greedy);
    std::printf("[%s %s] %zu tokens of %zu completions; first: %d (logprob %.7g); worst "
                "log-prob error vs the f64 forward %.3g (limit %.0e)\n",
                model.c_str(), s.name, tokens, completions.size(), completions[0].tokens[0],
                completions[0].logprobs[0], worst, kLogprobTolerance);
    EXPECT_LE(worst, kLogprobTolerance);

    // The same command writes the same bytes.
    RunResult again = run(args);
    ASSERT_EQ(again.exitCode, 0) << describe(args, again);
    EXPECT_EQ(readFile(tmp + "/out.jsonl"), first) << s.name << " is not reproducible";
  }
}

INSTANTIATE_TEST_SUITE_P(Models, GenerateExecutable,
                         ::testing::Values("r1-tiny", "dense-tiny"), [](const auto &info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

} // namespace
