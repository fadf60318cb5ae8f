//===- BatchRampupTest.cpp - train.batch_rampup's schedule ----------------===//
//
// runtime/driver/BatchRampup.h against Megatron's
// RampupBatchsizeNumMicroBatchesCalculator, worked by hand: the global batch
// of every step, the samples consumed before a step (which a resumed run
// recomputes), the program chosen per size, the rounding of Megatron's
// double-precision division kept as Python computes it, and programs that
// do not match their schedule refused.
//
//===----------------------------------------------------------------------===//

#include "runtime/driver/BatchRampup.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace kiln::driver;

namespace {

bool fakeStep(const StepBuffers &, std::string &) { return true; }
bool otherStep(const StepBuffers &, std::string &) { return true; }

const ParamDesc kParams[] = {
    {"model.embed_tokens.weight", 2, {16, 8}, InitKind::Normal, 0.02, true},
};

/// A description of `rows` rows per rank on `dp` ranks.
ModelDesc desc(int64_t rows, int64_t dp, const BatchRampup *rampup = nullptr) {
  ModelDesc m{};
  m.specName = "test";
  m.specFingerprint = "0";
  m.params = kParams;
  m.numParams = 1;
  m.batch = rows;
  m.seqLen = 8;
  m.vocabSize = 16;
  m.dp = dp;
  m.rampup = rampup;
  return m;
}

/// Global rows of steps 1..n, stepping `consumed` as Megatron's training
/// loop does (consumed_train_samples += the step's global batch).
std::vector<int64_t> sizes(const BatchSchedule &schedule, int n) {
  std::vector<int64_t> out;
  uint64_t consumed = 0;
  for (int s = 1; s <= n; ++s) {
    EXPECT_EQ(schedule.consumedBefore(uint64_t(s)), consumed) << "step " << s;
    out.push_back(schedule.globalRowsAfter(consumed));
    consumed += uint64_t(out.back());
  }
  return out;
}

TEST(BatchRampup, NoRampupIsTheGlobalBatch) {
  const ModelDesc m = desc(4, 2);
  BatchSchedule schedule(m, fakeStep);
  EXPECT_FALSE(schedule.ramps());
  EXPECT_EQ(sizes(schedule, 4), (std::vector<int64_t>{8, 8, 8, 8}));
  EXPECT_EQ(schedule.consumedBefore(101), 800u);
  EXPECT_EQ(schedule.programFor(8).step, &fakeStep);
  std::string error;
  EXPECT_TRUE(checkRampupPrograms(m, fakeStep, error)) << error;
}

TEST(BatchRampup, FollowsMegatronsCalculator) {
  // Megatron: --global-batch-size 16 --rampup-batch-size 4 4 24, dp 2,
  // micro-batch 2: 3 increments of 8 samples each; the global batch is
  // 4 + int(consumed / 8) * 4 while consumed <= 24, then 16.
  const ModelDesc small = desc(2, 2), mid = desc(4, 2), large = desc(6, 2);
  const RampupProgram programs[] = {{&small, otherStep}, {&mid, otherStep}, {&large, otherStep}};
  const BatchRampup rampup{4, 4, 24, programs, 3};
  const ModelDesc m = desc(8, 2, &rampup);
  BatchSchedule schedule(m, fakeStep);
  EXPECT_TRUE(schedule.ramps());
  // consumed:  0  4  8  16  28  44 ...
  EXPECT_EQ(sizes(schedule, 7), (std::vector<int64_t>{4, 4, 8, 12, 16, 16, 16}));
  EXPECT_EQ(schedule.globalRowsAfter(24), 16); // int(24 / 8) = 3 increments
  EXPECT_EQ(schedule.globalRowsAfter(23), 12);
  EXPECT_EQ(schedule.globalRowsAfter(25), 16); // past the ramp
  EXPECT_EQ(schedule.consumedBefore(1001), 28u + 996u * 16u);
  EXPECT_EQ(schedule.programFor(4).model, &small);
  EXPECT_EQ(schedule.programFor(12).model, &large);
  EXPECT_EQ(schedule.programFor(16).step, &fakeStep);
  std::string error;
  EXPECT_TRUE(checkRampupPrograms(m, fakeStep, error)) << error;
}

TEST(BatchRampup, KeepsMegatronsFloatingPointDivision) {
  // 9 samples over 7 increments: Megatron computes int(9 / (9 / 7)) in
  // doubles, 6.999999999999999 -> 6, where exact arithmetic gives 7. The
  // sizes must change at the steps Megatron's do.
  std::vector<ModelDesc> smaller;
  for (int64_t rows = 1; rows < 8; ++rows)
    smaller.push_back(desc(rows, 1));
  std::vector<RampupProgram> programs;
  for (const ModelDesc &m : smaller)
    programs.push_back({&m, otherStep});
  const BatchRampup rampup{1, 1, 9, programs.data(), 7};
  const ModelDesc m = desc(8, 1, &rampup);
  BatchSchedule schedule(m, fakeStep);
  EXPECT_EQ(schedule.globalRowsAfter(9), 7);
  EXPECT_EQ(schedule.globalRowsAfter(10), 8);
  // consumed 0, 1, 2, 4, 8: int(c / 1.2857...) = 0, 0, 1, 3, 6 -> rows 1, 1, 2, 4, 7.
  EXPECT_EQ(sizes(schedule, 6), (std::vector<int64_t>{1, 1, 2, 4, 7, 8}));
}

TEST(BatchRampup, RefusesProgramsThatDoNotMatch) {
  const ModelDesc small = desc(2, 2), wrongRows = desc(3, 2), wrongDp = desc(4, 1);
  std::string error;
  {
    const RampupProgram programs[] = {{&small, otherStep}};
    const BatchRampup rampup{4, 4, 8, programs, 1};
    const ModelDesc m = desc(4, 2, &rampup); // global 8: sizes 4 only
    EXPECT_TRUE(checkRampupPrograms(m, fakeStep, error)) << error;
  }
  {
    const RampupProgram programs[] = {{&wrongRows, otherStep}};
    const BatchRampup rampup{4, 4, 8, programs, 1};
    const ModelDesc m = desc(4, 2, &rampup);
    EXPECT_FALSE(checkRampupPrograms(m, fakeStep, error));
    EXPECT_NE(error.find("the program for 4 rows does not match"), std::string::npos) << error;
  }
  {
    const RampupProgram programs[] = {{&wrongDp, otherStep}};
    const BatchRampup rampup{4, 4, 8, programs, 1};
    const ModelDesc m = desc(4, 2, &rampup);
    EXPECT_FALSE(checkRampupPrograms(m, fakeStep, error));
  }
  {
    const RampupProgram programs[] = {{&small, otherStep}};
    const BatchRampup rampup{4, 4, 8, programs, 1};
    const ModelDesc m = desc(8, 2, &rampup); // global 16: three smaller sizes
    EXPECT_FALSE(checkRampupPrograms(m, fakeStep, error));
    EXPECT_NE(error.find("1 smaller programs for 3 smaller sizes"), std::string::npos) << error;
  }
}

} // namespace
