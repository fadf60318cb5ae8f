//===- PipelineScheduleTest.cpp - schedules, the simulator, the formulas --===//
//
// Every schedule passes the simulator's checks for a range of ranks and
// micro-batches, and its simulated bubbles and in-flight peaks are the
// published ones (PipelineSchedule.h); mutated schedules (a swapped pair of
// receives, a missing W, a backward before its forward, a receive from the
// wrong rank) are refused with the rank, action and micro-batch named.
//
//===----------------------------------------------------------------------===//

#include "passes/PipelineSchedule.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

namespace kiln::pipeline {
namespace {

Schedule build(const std::string &kind, int32_t ranks, int32_t chunks, int32_t microbatches,
               const Costs &costs) {
  std::string error;
  std::optional<Schedule> s = buildSchedule(kind, ranks, chunks, microbatches, costs, error);
  EXPECT_TRUE(s) << error;
  return s ? *s : Schedule{};
}

Simulation run(const Schedule &s, const Costs &costs) {
  std::string error;
  std::optional<Simulation> sim = simulate(s, costs, error);
  EXPECT_TRUE(sim) << s.kind << ": " << error << "\n" << formatScheduleCsv(s);
  return sim ? *sim : Simulation{};
}

TEST(PipelineSchedule, OneForwardOneBackwardAndGPipeBubbles) {
  const Costs costs{1.0, 2.0, 0.5, 0.0};
  for (const char *kind : {"1f1b", "gpipe"})
    for (int32_t p : {1, 2, 4, 8})
      for (int32_t m : {p, 2 * p, 3 * p + 1}) {
        SCOPED_TRACE(std::string(kind) + " ranks " + std::to_string(p) + " micro-batches " +
                     std::to_string(m));
        Simulation sim = run(build(kind, p, 1, m, costs), costs);
        ASSERT_EQ(sim.bubble.size(), size_t(p));
        const double full = costs.f + costs.b + costs.w;
        EXPECT_DOUBLE_EQ(sim.makespan, (m + p - 1) * full);
        for (int32_t r = 0; r < p; ++r) {
          EXPECT_DOUBLE_EQ(sim.bubble[size_t(r)], (p - 1) * full) << "rank " << r;
          // 1F1B holds at most ranks - r forwards in flight; GPipe all of them.
          EXPECT_EQ(sim.peakInFlight[size_t(r)],
                    std::string(kind) == "1f1b" ? std::min(p - r, m) : m);
        }
      }
}

// Stages of different cost (the head and losses on the last): GPipe on 2
// ranks, 2 micro-batches, stage 0 F 1 and B 2, stage 1 F 2 and B 3. Rank 1
// runs F at 1-3 and 3-5, its backwards at 5-8 and 8-11; rank 0's forwards
// at 0-1 and 1-2, its backwards when each gradient arrives, 8-10 and 11-13.
TEST(PipelineSchedule, StagesOfTheirOwnCost) {
  const Schedule s = build("gpipe", 2, 1, 2, Costs{});
  std::string error;
  std::optional<Simulation> sim =
      simulate(s, std::vector<Costs>{{1.0, 2.0, 0.0, 0.0}, {2.0, 3.0, 0.0, 0.0}}, error);
  ASSERT_TRUE(sim) << error;
  EXPECT_DOUBLE_EQ(sim->makespan, 13.0);
  EXPECT_DOUBLE_EQ(sim->busy[0], 6.0);
  EXPECT_DOUBLE_EQ(sim->busy[1], 10.0);
  EXPECT_DOUBLE_EQ(sim->bubble[0], 7.0);
  EXPECT_DOUBLE_EQ(sim->bubble[1], 3.0);
  // Uniform stage costs are the one-cost simulation.
  const Costs costs{1.0, 2.0, 0.5, 0.0};
  const Schedule zb = build("zb-h1", 4, 1, 8, costs);
  std::optional<Simulation> uniform = simulate(zb, std::vector<Costs>(4, costs), error);
  ASSERT_TRUE(uniform) << error;
  EXPECT_DOUBLE_EQ(uniform->makespan, run(zb, costs).makespan);
  EXPECT_FALSE(simulate(zb, std::vector<Costs>(3, costs), error));
  EXPECT_EQ(error, "3 stage costs for 4 stages");
}

TEST(PipelineSchedule, InterleavedDividesTheBubbleByTheChunks) {
  const Costs costs{1.0, 1.0, 1.0, 0.0};
  for (int32_t p : {2, 4})
    for (int32_t v : {2, 3})
      for (int32_t m : {p, 2 * p, 4 * p}) {
        SCOPED_TRACE("ranks " + std::to_string(p) + " chunks " + std::to_string(v) +
                     " micro-batches " + std::to_string(m));
        // Each chunk holds 1/v of a rank's layers: per-chunk costs are 1/v.
        const Costs chunk{costs.f / v, costs.b / v, costs.w / v, 0.0};
        Simulation sim = run(build("interleaved-1f1b", p, v, m, chunk), chunk);
        const double full = costs.f + costs.b + costs.w;
        for (int32_t r = 0; r < p; ++r)
          EXPECT_NEAR(sim.bubble[size_t(r)], (p - 1) * full / v, 1e-9) << "rank " << r;
      }
}

TEST(PipelineSchedule, ZeroBubbleH1HasAThirdOfTheBubble) {
  // F = B = W: ZB-H1's (p - 1)(F + B - W) is a third of 1F1B's (p - 1)(F + B + W).
  for (const Costs costs : {Costs{1, 1, 1, 0}, Costs{1.0, 1.0, 0.5, 0.0}})
    for (int32_t p : {2, 4, 8})
      for (int32_t m : {2 * p, 3 * p}) {
        SCOPED_TRACE("ranks " + std::to_string(p) + " micro-batches " + std::to_string(m) +
                     " W " + std::to_string(costs.w));
        Schedule s = build("zb-h1", p, 1, m, costs);
        Simulation sim = run(s, costs);
        const double bubble = (p - 1) * (costs.f + costs.b - costs.w);
        for (int32_t r = 0; r < p; ++r) {
          EXPECT_NEAR(sim.bubble[size_t(r)], bubble, 1e-9) << "rank " << r << "\n"
                                                           << formatScheduleCsv(s);
          EXPECT_LE(sim.peakInFlight[size_t(r)], p) << "1F1B's peak bounds ZB-H1's";
        }
      }
}

TEST(PipelineSchedule, ZeroBubbleVHasOneInputGradientPerRankOfBubble) {
  // ZB-V on the V (2 chunks per rank, per-chunk costs): from 2p - 1
  // micro-batches on, each rank idles (p - 1) x I, the stagger of the V's
  // first gradients (the paper's (p - 1)(F + B - 2W) counts no stagger), and
  // holds at most 2p chunk activations, 1F1B's p micro-batches of a whole
  // stage. Fewer micro-batches still make a valid, slower schedule.
  for (const Costs costs : {Costs{1, 1, 1, 0}, Costs{1.0, 1.0, 0.5, 0.0}, Costs{1.0, 2.0, 1.0, 0.0}})
    for (int32_t p : {2, 4, 8})
      for (int32_t m : {p, 2 * p - 1, 2 * p, 3 * p}) {
        SCOPED_TRACE("ranks " + std::to_string(p) + " micro-batches " + std::to_string(m) +
                     " I " + std::to_string(costs.b) + " W " + std::to_string(costs.w));
        Schedule s = build("zb-v", p, 2, m, costs);
        ASSERT_EQ(s.stageOf[0], (std::vector<int32_t>{0, 2 * p - 1}));
        Simulation sim = run(s, costs);
        for (int32_t r = 0; r < p; ++r) {
          EXPECT_LE(sim.peakInFlight[size_t(r)], 2 * p) << "rank " << r;
          if (m < 2 * p - 1)
            continue;
          EXPECT_NEAR(sim.bubble[size_t(r)], (p - 1) * costs.b, 1e-9)
              << "rank " << r << "\n" << formatScheduleCsv(s);
        }
      }
}

TEST(PipelineSchedule, DualPipeVBubbleAndMemoryAreDeepSeeks) {
  // DualPipe's table, PP = 2 x ranks stages: bubble (PP/2 - 1)(F&B + B - 3W)
  // with B the whole backward (I + W here), PP + 1 micro-batches in flight;
  // F&B unset is F + I + W (no overlap).
  for (const Costs costs : {Costs{1, 1, 1, 0, -1}, Costs{1, 1, 1, 0, 2.5}, Costs{1, 1.5, 0.5, 0, 2.0}})
    for (int32_t p : {2, 4, 8})
      for (int32_t m : {2 * p, 2 * p + 3, 5 * p}) {
        SCOPED_TRACE("ranks " + std::to_string(p) + " micro-batches " + std::to_string(m) +
                     " F&B " + std::to_string(costs.fb));
        Schedule s = build("dualpipev", p, 2, m, costs);
        ASSERT_EQ(s.stageOf[0], (std::vector<int32_t>{0, 2 * p - 1}));
        Simulation sim = run(s, costs);
        const double overlapped = costs.fb >= 0 ? costs.fb : costs.f + costs.b + costs.w;
        const double bubble = (p - 1) * (overlapped + (costs.b + costs.w) - 3 * costs.w);
        // Ranks run different numbers of overlapped pairs, so when F&B is
        // cheaper than F + B their bubbles differ: the formula is the largest.
        for (int32_t r = 0; r < p; ++r) {
          EXPECT_LE(sim.bubble[size_t(r)], bubble + 1e-9) << "rank " << r;
          EXPECT_EQ(sim.peakInFlight[size_t(r)], 2 * p + 1) << "rank " << r;
        }
        // Exact when F = I = W, as DualPipe's table assumes; otherwise a bound
        // (with I = 1.5 and W = 0.5 the V's bubble is 0.5 (PP/2 - 1) smaller).
        const double largest = *std::max_element(sim.bubble.begin(), sim.bubble.end());
        if (costs.f == costs.b && costs.b == costs.w) {
          EXPECT_NEAR(largest, bubble, 1e-9);
        }
      }
}

TEST(PipelineSchedule, CsvRowsSpellActionsLikePyTorch) {
  const Costs costs;
  Schedule s = build("1f1b", 2, 1, 2, costs);
  EXPECT_EQ(formatScheduleCsv(s),
            "0F0,0SEND_F0,0F1,0SEND_F1,0RECV_B0,0B0,0RECV_B1,0B1\n"
            "1RECV_F0,1F0,1B0,1SEND_B0,1RECV_F1,1F1,1B1,1SEND_B1\n");
}

TEST(PipelineSchedule, MutatedSchedulesAreRefused) {
  const Costs costs;
  std::string error;
  auto refuse = [&](Schedule s, const std::string &want) {
    std::optional<Simulation> sim = simulate(s, costs, error);
    EXPECT_FALSE(sim);
    EXPECT_EQ(error, want);
  };
  Schedule base = build("zb-h1", 2, 1, 2, costs);
  ASSERT_EQ(base.actions.size(), 2u);
  // Rank 1 receives micro-batch 1's activation before micro-batch 0's, whose
  // forward then has no input.
  {
    Schedule s = base;
    std::vector<Action> &a = s.actions[1];
    auto first = std::find_if(a.begin(), a.end(), [](const Action &x) { return x.op == Op::RecvF; });
    auto second = std::find_if(first + 1, a.end(), [](const Action &x) { return x.op == Op::RecvF; });
    std::swap(first->microbatch, second->microbatch);
    refuse(s, "rank 1, action 1 (F of micro-batch 0, chunk 0): its input from stage 0 is not "
              "received before it");
  }
  // A missing W.
  {
    Schedule s = base;
    std::vector<Action> &a = s.actions[0];
    a.erase(std::find_if(a.begin(), a.end(), [](const Action &x) { return x.op == Op::W; }));
    refuse(s, "rank 0: micro-batch 0 of chunk 0 never gets its weight gradient (W)");
  }
  // A backward before its forward.
  {
    Schedule s = build("gpipe", 1, 1, 2, costs);
    std::swap(s.actions[0][0], s.actions[0][2]);
    refuse(s, "rank 0, action 0 (B of micro-batch 0, chunk 0): comes before the micro-batch's "
              "forward");
  }
  // A receive that names the wrong rank.
  {
    Schedule s = build("1f1b", 3, 1, 3, costs);
    for (Action &x : s.actions[2])
      if (x.op == Op::RecvF) {
        x.peer = 0;
        break;
      }
    refuse(s, "rank 2, action 0 (RECV_F of micro-batch 0, chunk 0): receives from rank 0, which "
              "does not hold stage 1");
  }
  // A receive nobody sends: the schedule deadlocks.
  {
    Schedule s = build("1f1b", 2, 1, 2, costs);
    std::vector<Action> &a = s.actions[0];
    a.erase(std::find_if(a.begin(), a.end(), [](const Action &x) { return x.op == Op::SendF; }));
    refuse(s, "rank 1 receives the activation of micro-batch 0 from stage 0 that rank 0 never "
              "sends");
  }
}

TEST(PipelineSchedule, ShapesItDoesNotTakeAreErrors) {
  std::string error;
  EXPECT_FALSE(buildSchedule("dualpipe", 4, 1, 8, Costs{}, error));
  EXPECT_EQ(error, "unknown pipeline schedule 'dualpipe'; expected gpipe, 1f1b, "
                   "interleaved-1f1b, zb-h1, zb-v or dualpipev");
  EXPECT_FALSE(buildSchedule("zb-v", 4, 3, 8, Costs{}, error));
  EXPECT_EQ(error, "zb-v: a V of 2 chunks per rank, got 3 chunks");
  EXPECT_FALSE(buildSchedule("dualpipev", 4, 2, 6, Costs{}, error));
  EXPECT_EQ(error, "dualpipev: a V of 2 chunks per rank and micro-batches >= 2 x the 4 ranks, "
                   "got 2 chunks and 6 micro-batches");
  EXPECT_FALSE(buildSchedule("interleaved-1f1b", 4, 2, 6, Costs{}, error));
  EXPECT_EQ(error, "interleaved-1f1b: needs 2 or more chunks per rank (virtual_stages) and "
                   "micro-batches a multiple of the 4 ranks, got 2 chunks and 6 micro-batches");
  EXPECT_FALSE(buildSchedule("1f1b", 4, 2, 8, Costs{}, error));
  EXPECT_EQ(error, "1f1b: takes one chunk per rank, got 2");
}

} // namespace
} // namespace kiln::pipeline
