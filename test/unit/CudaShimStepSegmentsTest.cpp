//===- CudaShimStepSegmentsTest.cpp - a multi-rank CUDA step as segments --===//
//
// runtime/cuda/StepSegments.h on the CPU: a fake capture stands for the
// compute stream (the step's "kernels" append to what is being captured,
// or run at once when nothing is), and the collectives and joins append to
// the same log. Checked: the eager step runs each collective at its wait,
// in issue order, the join after them; recording cuts a graph at each wait
// that runs a collective (empty segments dropped), launches it before the
// collectives, and replay repeats exactly the recorded order; a collective
// the step never waits for, a failing collective and a failing step leave
// no record and no open capture.
//
//===----------------------------------------------------------------------===//

#include "test/unit/CudaShimTesting.h"

#include "runtime/cuda/StepSegments.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using kiln::cuda::StepSegments;

/// The compute stream and its captures, as a log of what ran in order.
class FakeCapture : public StepSegments::Capture {
public:
  bool begin(std::string &) override {
    EXPECT_FALSE(open) << "a capture began inside another";
    open = true;
    ++begun;
    captured.clear();
    return true;
  }
  bool end(int64_t &graph, std::string &) override {
    EXPECT_TRUE(open) << "a capture ended that was not begun";
    open = false;
    graph = captured.empty() ? -1 : int64_t(graphs.size());
    if (!captured.empty())
      graphs.push_back(captured);
    return true;
  }
  bool launch(int64_t graph, std::string &) override {
    for (const std::string &k : graphs[size_t(graph)])
      log.push_back(k);
    log.push_back("|");
    return true;
  }
  void discard() override {
    EXPECT_TRUE(open);
    open = false;
    ++discarded;
  }
  /// A kernel of the step: captured, or run now.
  void kernel(const std::string &name) {
    if (open)
      captured.push_back(name);
    else
      log.push_back(name);
  }

  bool open = false;
  int begun = 0, discarded = 0;
  std::vector<std::string> captured, log;
  std::vector<std::vector<std::string>> graphs;
};

/// A step like a data-parallel one: two gradients' collectives posted
/// during the backward, waited for before the optimizer, one more after.
struct Step {
  FakeCapture &gpu;
  StepSegments &segments;
  bool failCollective = false, skipLastWait = false, failKernel = false;

  StepSegments::Action collective(const std::string &name) {
    return [this, name](std::string &error) {
      if (failCollective && name == "all_reduce(g1)") {
        error = "rank 1: all_reduce sum over dp: rank 0 did not arrive within 1 s";
        return false;
      }
      gpu.log.push_back(name);
      return true;
    };
  }

  bool operator()(std::string &error) {
    gpu.kernel("backward1");
    if (!segments.post(0, collective("all_reduce(g1)"), error))
      return false;
    gpu.kernel("backward0");
    if (failKernel) {
      error = "a launcher refused";
      return false;
    }
    if (!segments.post(1, collective("all_reduce(g0)"), error))
      return false;
    gpu.kernel("loss");
    if (!segments.wait(0, error) || !segments.wait(1, error))
      return false;
    gpu.kernel("adamw");
    if (!segments.post(2, collective("all_gather(p)"), error))
      return false;
    return skipLastWait || segments.wait(2, error);
  }
};

class StepSegmentsTest : public ::testing::Test {
protected:
  StepSegmentsTest() {
    segments.setJoin([this](std::string &) {
      gpu.log.push_back("join");
      return true;
    });
  }
  FakeCapture gpu;
  StepSegments segments;
};

TEST_F(StepSegmentsTest, EagerStepRunsEachCollectiveAtItsWait) {
  Step step{gpu, segments};
  std::string error;
  ASSERT_TRUE(segments.runEager(std::ref(step), error)) << error;
  const std::vector<std::string> expected = {
      "backward1",      "backward0", "loss",  "all_reduce(g1)", "join",
      "all_reduce(g0)", "join",      "adamw", "all_gather(p)",  "join"};
  EXPECT_EQ(gpu.log, expected);
  EXPECT_EQ(gpu.begun, 0);
  EXPECT_FALSE(segments.recorded());
}

TEST_F(StepSegmentsTest, RecordingCutsGraphsAtWaitsAndReplayRepeatsIt) {
  Step step{gpu, segments};
  std::string error;
  ASSERT_TRUE(segments.record(gpu, std::ref(step), error)) << error;
  EXPECT_FALSE(gpu.open);
  // Segment 1 (the backward) is launched before its collectives run; the
  // empty segment between the two waits and after the last one is dropped.
  const std::vector<std::string> recorded = {
      "backward1",      "backward0", "loss",  "|", "all_reduce(g1)", "join",
      "all_reduce(g0)", "join",      "adamw", "|", "all_gather(p)",  "join"};
  EXPECT_EQ(gpu.log, recorded);
  EXPECT_TRUE(segments.recorded());
  EXPECT_EQ(segments.graphs(), 2u);
  EXPECT_EQ(segments.hostActions(), 6u);
  EXPECT_EQ(segments.shape(), "GHHHHGHH");
  for (int replay = 0; replay < 2; ++replay) {
    gpu.log.clear();
    ASSERT_TRUE(segments.replay(gpu, error)) << error;
    EXPECT_EQ(gpu.log, recorded) << "replay " << replay;
  }
  EXPECT_EQ(gpu.discarded, 0);
}

TEST_F(StepSegmentsTest, UnplacedCollectiveRunsWhereItIsIssued) {
  std::string error;
  auto step = [&](std::string &e) {
    gpu.kernel("a");
    if (!segments.post(
            -1, [&](std::string &) { return gpu.log.push_back("all_reduce"), true; }, e))
      return false;
    gpu.kernel("b");
    return true;
  };
  ASSERT_TRUE(segments.record(gpu, step, error)) << error;
  EXPECT_EQ(segments.shape(), "GHHG");
  const std::vector<std::string> expected = {"a", "|", "all_reduce", "join", "b", "|"};
  EXPECT_EQ(gpu.log, expected);
}

TEST_F(StepSegmentsTest, CollectiveNeverWaitedForIsAnError) {
  Step step{gpu, segments};
  step.skipLastWait = true;
  std::string error;
  EXPECT_FALSE(segments.runEager(std::ref(step), error));
  EXPECT_NE(error.find("the collective of event 2 was posted and never waited for"),
            std::string::npos)
      << error;
  error.clear();
  EXPECT_FALSE(segments.record(gpu, std::ref(step), error));
  EXPECT_NE(error.find("event 2"), std::string::npos) << error;
  EXPECT_FALSE(segments.recorded());
  EXPECT_FALSE(gpu.open);
  EXPECT_EQ(gpu.discarded, 1);
}

TEST_F(StepSegmentsTest, FailingCollectiveLeavesNoRecord) {
  Step step{gpu, segments};
  step.failCollective = true;
  std::string error;
  EXPECT_FALSE(segments.record(gpu, std::ref(step), error));
  EXPECT_NE(error.find("did not arrive"), std::string::npos) << error;
  EXPECT_FALSE(segments.recorded());
  EXPECT_FALSE(gpu.open);
  EXPECT_EQ(segments.graphs(), 0u);
}

TEST_F(StepSegmentsTest, FailingStepDiscardsItsCapture) {
  Step step{gpu, segments};
  step.failKernel = true;
  std::string error;
  EXPECT_FALSE(segments.record(gpu, std::ref(step), error));
  EXPECT_EQ(error, "a launcher refused");
  EXPECT_FALSE(gpu.open);
  EXPECT_EQ(gpu.discarded, 1);
  // The next step records from scratch.
  step.failKernel = false;
  gpu.log.clear();
  ASSERT_TRUE(segments.record(gpu, std::ref(step), error)) << error;
  EXPECT_EQ(segments.shape(), "GHHHHGHH");
}

} // namespace
