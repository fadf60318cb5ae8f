//===- SpecSweepTest.cpp - every spec the validator accepts builds ---------===//
//
// Issue 15: "the verifier never sees a module the frontend should have
// refused". Random specs around the shipped tiny models (sizes, heads,
// ranks, experts, routing, MTP, tying, data/expert parallelism, capacity,
// gradient compression) go through parseSpec; each one it accepts must
// build a forward module that verifies and lower through the passes kilnc
// runs (kiln-expert-parallel, kiln-autodiff, kiln-data-parallel,
// kiln-grad-compression) without an error. kilnc's only "internal error"
// (the generated module does not verify) is then unreachable from the
// specs this sweep draws; a refused spec is fine, a crash or a failing
// pass on an accepted one is a bug.
//
//===----------------------------------------------------------------------===//

#include "test/unit/PartitionHarness.h"

#include "runtime/init/SeededRng.h"

#include "mlir/IR/Verifier.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

using namespace kiln;
using json = nlohmann::json;

namespace {

json readSpec(const std::string &name) {
  std::ifstream in(std::string(KILN_SOURCE_DIR) + "/models/" + name);
  std::stringstream text;
  text << in.rdbuf();
  return json::parse(text.str());
}

/// A random spec: r1-tiny or dense-tiny with its sizes, routing and layout
/// redrawn (often inconsistently: the validator must refuse those).
json randomSpec(init::SeededRng &rng) {
  auto pick = [&](std::initializer_list<int64_t> values) {
    return *(values.begin() + rng.next() % values.size());
  };
  const bool moe = rng.next() % 2;
  json s = readSpec(moe ? "r1-tiny.json" : "dense-tiny.json");
  json &m = s["model"];
  m["vocab_size"] = pick({16, 64, 256, 300});
  m["hidden_size"] = pick({8, 16, 24, 32, 64});
  m["num_hidden_layers"] = pick({1, 2, 3});
  m["num_attention_heads"] = pick({1, 2, 4, 8});
  m["num_key_value_heads"] = pick({1, 2, 4});
  m["intermediate_size"] = pick({8, 32, 48});
  m["tie_word_embeddings"] = bool(rng.next() % 2);
  if (moe) {
    m["q_lora_rank"] = pick({4, 8, 16});
    m["kv_lora_rank"] = pick({4, 8, 16});
    m["qk_nope_head_dim"] = pick({2, 4, 8});
    m["qk_rope_head_dim"] = pick({2, 4, 8});
    m["v_head_dim"] = pick({2, 4, 8});
    m["moe_intermediate_size"] = pick({4, 8, 16});
    m["n_routed_experts"] = pick({2, 4, 8, 16});
    m["n_shared_experts"] = pick({0, 1, 2});
    m["num_experts_per_tok"] = pick({1, 2, 3, 4});
    m["n_group"] = pick({1, 2, 4});
    m["topk_group"] = pick({1, 2});
    m["first_k_dense_replace"] = pick({0, 1, 2});
    m["num_nextn_predict_layers"] = pick({0, 1, 2});
    m["scoring_func"] = rng.next() % 2 ? "sigmoid" : "softmax";
    const char *methods[] = {"noaux_tc", "group_limited_greedy", "greedy"};
    m["topk_method"] = methods[rng.next() % 3];
  }
  json &t = s["train"];
  t["seq_len"] = pick({2, 5, 8, 16, 32});
  t["micro_batch"] = pick({1, 2, 3});
  json p = json::object();
  p["dp"] = pick({1, 1, 2, 4});
  if (moe && rng.next() % 2)
    p["ep"] = pick({1, 2, 4});
  if (rng.next() % 3 == 0)
    p["zero"] = 1;
  if (rng.next() % 3 == 0)
    p["microbatches"] = 2;
  if (moe && rng.next() % 3 == 0)
    p["expert_capacity"] = rng.next() % 2 ? 1.0 : 0.5;
  if (rng.next() % 4 == 0)
    p["grad_compression"] = {{"ratio", 0.1}};
  s["parallel"] = p;
  return s;
}

TEST(SpecSweep, EveryAcceptedSpecBuildsAndLowers) {
  constexpr int kSpecs = 2000;
  init::SeededRng rng(15, "spec sweep");
  int accepted = 0, refused = 0;
  for (int i = 0; i < kSpecs; ++i) {
    const json s = randomSpec(rng);
    std::string error;
    std::optional<frontend::Spec> spec = frontend::parseSpec(s.dump(), "sweep.json", error);
    if (!spec) {
      ++refused;
      EXPECT_EQ(error.find('\n'), std::string::npos) << error;
      continue;
    }
    ++accepted;
    mlir::MLIRContext context;
    mlir::OwningOpRef<mlir::ModuleOp> module = frontend::buildForwardModule(context, *spec);
    ASSERT_TRUE(module && mlir::succeeded(mlir::verify(*module)))
        << "accepted spec builds a module that does not verify:\n" << s.dump(2);
    const frontend::ParallelConfig &p = spec->parallel;
    mlir::PassManager pm(&context);
    if (p.ep > 1) {
      KilnExpertParallelOptions ep;
      ep.ep = p.ep;
      ep.dp = p.dp;
      pm.addPass(createKilnExpertParallel(ep));
    }
    pm.addPass(createKilnAutodiff(test::harnessAutodiff(*spec)));
    if (p.dp > 1 || p.microbatches > 1) {
      KilnDataParallelOptions dp;
      dp.dp = p.dp;
      dp.zero = p.zero;
      dp.microbatches = p.microbatches;
      pm.addPass(createKilnDataParallel(dp));
      if (p.gradCompression.enabled) {
        KilnGradCompressionOptions compression;
        compression.ratio = p.gradCompression.ratio;
        pm.addPass(createKilnGradCompression(compression));
      }
      pm.addPass(createKilnVerifyCollectives());
    }
    ASSERT_TRUE(mlir::succeeded(pm.run(*module)))
        << "accepted spec fails to lower:\n" << s.dump(2);
  }
  std::printf("[spec sweep] %d random specs: %d accepted, built and lowered; %d refused\n", kSpecs,
              accepted, refused);
  EXPECT_GT(accepted, kSpecs / 5) << "the sweep should exercise the builder, not the validator";
}

} // namespace
