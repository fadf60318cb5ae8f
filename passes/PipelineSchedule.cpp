//===- PipelineSchedule.cpp - pipeline schedules as data, and their simulator --===//

#include "passes/PipelineSchedule.h"

#include <algorithm>
#include <deque>
#include <limits>
#include <map>
#include <sstream>
#include <tuple>

namespace kiln::pipeline {

const char *opName(Op op) {
  switch (op) {
  case Op::F:
    return "F";
  case Op::B:
    return "I";
  case Op::W:
    return "W";
  case Op::BW:
    return "B";
  case Op::FB:
    return "F&B";
  case Op::SendF:
    return "SEND_F";
  case Op::RecvF:
    return "RECV_F";
  case Op::SendB:
    return "SEND_B";
  case Op::RecvB:
    return "RECV_B";
  }
  return "?";
}

std::pair<int32_t, int32_t> Schedule::placeOf(int32_t stage) const {
  for (int32_t r = 0; r < ranks; ++r)
    for (int32_t c = 0; c < chunks; ++c)
      if (stageOf[size_t(r)][size_t(c)] == stage)
        return {r, c};
  return {-1, -1};
}

namespace {

double costOf(Op op, const Costs &c) {
  switch (op) {
  case Op::F:
    return c.f;
  case Op::B:
    return c.b;
  case Op::W:
    return c.w;
  case Op::BW:
    return c.b + c.w;
  case Op::FB:
    return c.fb >= 0 ? c.fb : c.f + c.b + c.w;
  default:
    return 0;
  }
}

Action compute(Op op, int32_t microbatch, int32_t chunk) { return {op, microbatch, chunk, -1}; }

/// Adds the sends and receives around each rank's compute actions: a stage's
/// forward receives its input from the stage before and sends its output to
/// the stage after; a backward (B or BW) receives its output gradient from
/// the stage after and sends its input gradient to the stage before.
void addCommunication(Schedule &s) {
  const int32_t last = s.stages() - 1;
  for (int32_t r = 0; r < s.ranks; ++r) {
    std::vector<Action> with;
    for (const Action &a : s.actions[size_t(r)]) {
      // The forward part (F, or FB's first half) and the backward part (B,
      // BW, or FB's second half).
      const bool pair = a.op == Op::FB;
      const bool forward = a.op == Op::F || pair, backward = a.op == Op::B || a.op == Op::BW || pair;
      const int32_t fMb = a.microbatch, fChunk = a.chunk;
      const int32_t bMb = pair ? a.microbatch2 : a.microbatch, bChunk = pair ? a.chunk2 : a.chunk;
      const int32_t fStage = s.stageOf[size_t(r)][size_t(fChunk)],
                    bStage = s.stageOf[size_t(r)][size_t(bChunk)];
      if (forward && fStage > 0)
        with.push_back({Op::RecvF, fMb, fChunk, s.placeOf(fStage - 1).first});
      if (backward && bStage < last)
        with.push_back({Op::RecvB, bMb, bChunk, s.placeOf(bStage + 1).first});
      with.push_back(a);
      if (forward && fStage < last)
        with.push_back({Op::SendF, fMb, fChunk, s.placeOf(fStage + 1).first});
      if (backward && bStage > 0)
        with.push_back({Op::SendB, bMb, bChunk, s.placeOf(bStage - 1).first});
    }
    s.actions[size_t(r)] = std::move(with);
  }
}

/// 1F1B's order on one rank: `warmup` forwards, then forward/backward pairs,
/// then the remaining backwards, over `total` (micro-batch, chunk) units.
template <typename ForwardUnit, typename BackwardUnit>
std::vector<Action> oneForwardOneBackward(int32_t total, int32_t warmup, Op backward,
                                          ForwardUnit forwardUnit, BackwardUnit backwardUnit) {
  std::vector<Action> order;
  auto f = [&](int32_t k) {
    auto [mb, chunk] = forwardUnit(k);
    order.push_back(compute(Op::F, mb, chunk));
  };
  auto b = [&](int32_t k) {
    auto [mb, chunk] = backwardUnit(k);
    order.push_back(compute(backward, mb, chunk));
  };
  for (int32_t k = 0; k < warmup; ++k)
    f(k);
  for (int32_t k = 0; k < total - warmup; ++k) {
    f(warmup + k);
    b(k);
  }
  for (int32_t k = total - warmup; k < total; ++k)
    b(k);
  return order;
}

/// ZB-H1: F and B in 1F1B's order, each W placed by list scheduling with
/// the costs: a rank runs a pending W whenever its next F or B is not ready
/// yet (filling what would be bubble) or when one more forward would exceed
/// `limit` micro-batches in flight (1F1B's peak), and its remaining Ws at the
/// end. Always committing the action that starts earliest over all ranks
/// keeps the derived times causal.
bool placeWeightGradients(Schedule &s, int32_t limit, const Costs &c, std::string &error) {
  const int32_t p = s.ranks, m = s.microbatches, last = s.stages() - 1;
  std::vector<std::vector<Action>> order = s.actions;
  const double unknown = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> forwardEnd(size_t(p), std::vector<double>(size_t(m), unknown)),
      backwardEnd(size_t(p), std::vector<double>(size_t(m), unknown));
  struct RankState {
    size_t next = 0;
    double clock = 0;
    std::deque<int32_t> pendingW;
    int32_t inFlight = 0;
    std::vector<Action> out;
  };
  std::vector<RankState> st(static_cast<size_t>(p));
  // The earliest start of rank r's next F or B (infinity: its input is not
  // scheduled yet).
  auto readyAt = [&](int32_t r, const Action &a) {
    const int32_t stage = s.stageOf[size_t(r)][0];
    if (a.op == Op::F)
      return stage == 0 ? 0.0 : forwardEnd[size_t(stage - 1)][size_t(a.microbatch)] + c.comm;
    return stage == last ? forwardEnd[size_t(stage)][size_t(a.microbatch)]
                         : backwardEnd[size_t(stage + 1)][size_t(a.microbatch)] + c.comm;
  };
  for (;;) {
    int32_t bestRank = -1;
    double bestStart = unknown;
    Action bestAction{};
    bool anyLeft = false;
    for (int32_t r = 0; r < p; ++r) {
      RankState &rs = st[size_t(r)];
      const std::vector<Action> &fb = order[size_t(r)];
      std::optional<Action> candidate;
      double start = unknown;
      const Action pendingW =
          compute(Op::W, rs.pendingW.empty() ? -1 : rs.pendingW.front(), 0);
      if (rs.next < fb.size()) {
        anyLeft = true;
        const Action &a = fb[rs.next];
        const double ready = readyAt(r, a);
        if (a.op == Op::F && rs.inFlight >= limit && !rs.pendingW.empty())
          candidate = pendingW, start = rs.clock;
        else if (ready <= rs.clock)
          candidate = a, start = rs.clock;
        else if (!rs.pendingW.empty())
          candidate = pendingW, start = rs.clock;
        else if (ready < unknown)
          candidate = a, start = ready;
      } else if (!rs.pendingW.empty()) {
        anyLeft = true;
        candidate = pendingW, start = rs.clock;
      }
      if (candidate && start < bestStart) {
        bestRank = r;
        bestStart = start;
        bestAction = *candidate;
      }
    }
    if (!anyLeft)
      break;
    if (bestRank < 0) {
      error = "zb-h1: no rank can run its next action (a bug in the generator)";
      return false;
    }
    RankState &rs = st[size_t(bestRank)];
    const int32_t stage = s.stageOf[size_t(bestRank)][0];
    const double end = bestStart + costOf(bestAction.op, c);
    rs.clock = end;
    rs.out.push_back(bestAction);
    if (bestAction.op == Op::W) {
      rs.pendingW.pop_front();
      --rs.inFlight;
      continue;
    }
    ++rs.next;
    if (bestAction.op == Op::F) {
      forwardEnd[size_t(stage)][size_t(bestAction.microbatch)] = end;
      ++rs.inFlight;
    } else {
      backwardEnd[size_t(stage)][size_t(bestAction.microbatch)] = end;
      rs.pendingW.push_back(bestAction.microbatch);
    }
  }
  for (int32_t r = 0; r < p; ++r)
    s.actions[size_t(r)] = std::move(st[size_t(r)].out);
  return true;
}

/// DualPipeV on a V of 2 x ranks stages, after DeepSeek's DualPipeV: per
/// rank r, with `m` micro-batches through each chunk (0: down the ranks,
/// 1: back up) and deferred weight gradients run first in, first out:
///   2 (ranks - r - 1) F0; (r + 1) x [F0, F1];
///   (ranks - r - 1) x [B1 (W deferred), W, F1];
///   (m - 2 ranks + r + 1) x [F0&B1, F1&B0] (the last rank's first pair not
///   overlapped);
///   (ranks - r - 1) x [B1, F1&B0]; (r + 1) x [B1, B0], deferring W from the
///   middle on; (ranks - r - 1) x [W, B0 (W deferred)]; (r + 1) x W.
std::vector<Action> dualPipeV(int32_t ranks, int32_t r, int32_t m) {
  std::vector<Action> order;
  int32_t nextF[2] = {0, 0}, nextB[2] = {0, 0};
  std::deque<std::pair<int32_t, int32_t>> deferred; // (micro-batch, chunk)
  auto f = [&](int32_t chunk) { order.push_back(compute(Op::F, nextF[chunk]++, chunk)); };
  auto b = [&](int32_t chunk, bool zeroBubble) {
    const int32_t mb = nextB[chunk]++;
    order.push_back(compute(zeroBubble ? Op::B : Op::BW, mb, chunk));
    if (zeroBubble)
      deferred.push_back({mb, chunk});
  };
  auto w = [&]() {
    auto [mb, chunk] = deferred.front();
    deferred.pop_front();
    order.push_back(compute(Op::W, mb, chunk));
  };
  auto fb = [&](int32_t fChunk, int32_t bChunk) {
    Action a = compute(Op::FB, nextF[fChunk]++, fChunk);
    a.microbatch2 = nextB[bChunk]++;
    a.chunk2 = bChunk;
    order.push_back(a);
  };
  const bool lastRank = r == ranks - 1;
  for (int32_t i = 0; i < 2 * (ranks - r - 1); ++i)
    f(0);
  for (int32_t i = 0; i < r + 1; ++i) {
    f(0);
    f(1);
  }
  for (int32_t i = 0; i < ranks - r - 1; ++i) {
    b(1, true);
    w();
    f(1);
  }
  for (int32_t i = 0; i < m - 2 * ranks + r + 1; ++i) {
    if (i == 0 && lastRank) {
      f(0);
      b(1, false);
    } else {
      fb(0, 1);
    }
    fb(1, 0);
  }
  for (int32_t i = 0; i < ranks - r - 1; ++i) {
    b(1, false);
    fb(1, 0);
  }
  bool zeroBubble = false;
  const int32_t step6 = r + 1;
  for (int32_t i = 0; i < step6; ++i) {
    if (i == step6 / 2 && r % 2 == 1)
      zeroBubble = true;
    b(1, zeroBubble);
    if (i == step6 / 2 && r % 2 == 0)
      zeroBubble = true;
    b(0, zeroBubble);
  }
  for (int32_t i = 0; i < ranks - r - 1; ++i) {
    w();
    b(0, true);
  }
  while (!deferred.empty())
    w();
  return order;
}

/// ZB-V (Qi et al., Zero Bubble Pipeline Parallelism, section 6), rank r's
/// order on the V (chunk 0 is stage r, chunk 1 stage 2 ranks - 1 - r):
/// forwards of chunk 0 until the V's far end can start, then F/I/W of chunk
/// 1 as gradients return, a steady state of F, I, W on each chunk in turn,
/// and the weight gradients drained last. With F = I = W it has no bubble
/// in the steady state and 1F1B's peak activation memory. The order is
/// built for at least 2 ranks - 1 micro-batches and the ones past `m`
/// dropped, as torch.distributed.pipelining does.
std::vector<Action> zeroBubbleV(int32_t ranks, int32_t r, int32_t m) {
  const int32_t n = std::max(m, 2 * ranks - 1);
  std::vector<Action> order;
  int32_t nextF[2] = {0, 0}, nextI[2] = {0, 0}, nextW[2] = {0, 0};
  auto add = [&](Op op, int32_t chunk) {
    int32_t &next = op == Op::F ? nextF[chunk] : op == Op::B ? nextI[chunk] : nextW[chunk];
    if (next < m)
      order.push_back(compute(op, next, chunk));
    ++next;
  };
  for (int32_t i = 0; i < 2 * (ranks - r) - 1; ++i)
    add(Op::F, 0);
  for (int32_t i = 0; i < r; ++i) {
    add(Op::F, 1);
    add(Op::F, 0);
  }
  for (int32_t i = 0; i < ranks - r; ++i) {
    add(Op::F, 1);
    add(Op::B, 1);
    add(Op::W, 1);
  }
  while (nextF[1] < nextF[0] || nextF[0] < n) {
    if (nextF[0] < n)
      add(Op::F, 0);
    add(Op::B, 0);
    add(Op::W, 0);
    add(Op::F, 1);
    add(Op::B, 1);
    add(Op::W, 1);
  }
  for (int32_t i = 0; i < r; ++i) {
    add(Op::B, 0);
    add(Op::B, 1);
  }
  for (int32_t i = 0; i < ranks - r; ++i) {
    add(Op::B, 0);
    add(Op::W, 0);
  }
  while (nextW[1] < nextI[1])
    add(Op::W, 1);
  while (nextW[0] < nextI[0])
    add(Op::W, 0);
  return order;
}

} // namespace

std::optional<Schedule> buildSchedule(const std::string &kind, int32_t ranks, int32_t chunks,
                                      int32_t microbatches, const Costs &costs,
                                      std::string &error) {
  if (ranks < 1 || microbatches < 1 || chunks < 1) {
    error = kind + ": expects ranks, chunks and micro-batches >= 1, got " +
            std::to_string(ranks) + ", " + std::to_string(chunks) + " and " +
            std::to_string(microbatches);
    return std::nullopt;
  }
  const bool interleaved = kind == "interleaved-1f1b", dualpipe = kind == "dualpipev",
             zeroBubbleVShape = kind == "zb-v";
  if (kind != "gpipe" && kind != "1f1b" && kind != "zb-h1" && !interleaved && !dualpipe &&
      !zeroBubbleVShape) {
    error = "unknown pipeline schedule '" + kind +
            "'; expected gpipe, 1f1b, interleaved-1f1b, zb-h1, zb-v or dualpipev";
    return std::nullopt;
  }
  if (zeroBubbleVShape) {
    if (chunks > 2) {
      error = "zb-v: a V of 2 chunks per rank, got " + std::to_string(chunks) + " chunks";
      return std::nullopt;
    }
    chunks = 2;
  }
  if (dualpipe) {
    if (chunks > 2 || microbatches < 2 * ranks) {
      error = "dualpipev: a V of 2 chunks per rank and micro-batches >= 2 x the " +
              std::to_string(ranks) + " ranks, got " + std::to_string(chunks) + " chunks and " +
              std::to_string(microbatches) + " micro-batches";
      return std::nullopt;
    }
    chunks = 2;
  }
  if (interleaved && (chunks < 2 || microbatches % ranks != 0)) {
    error = "interleaved-1f1b: needs 2 or more chunks per rank (virtual_stages) and micro-batches "
            "a multiple of the " + std::to_string(ranks) + " ranks, got " +
            std::to_string(chunks) + " chunks and " + std::to_string(microbatches) +
            " micro-batches";
    return std::nullopt;
  }
  const bool vShape = dualpipe || zeroBubbleVShape;
  if (!interleaved && !vShape && chunks != 1) {
    error = kind + ": takes one chunk per rank, got " + std::to_string(chunks);
    return std::nullopt;
  }
  Schedule s;
  s.kind = kind;
  s.ranks = ranks;
  s.chunks = chunks;
  s.microbatches = microbatches;
  s.stageOf.assign(size_t(ranks), std::vector<int32_t>(size_t(chunks)));
  for (int32_t r = 0; r < ranks; ++r)
    for (int32_t c = 0; c < chunks; ++c)
      s.stageOf[size_t(r)][size_t(c)] = vShape && c == 1 ? 2 * ranks - 1 - r : c * ranks + r;
  s.actions.resize(size_t(ranks));
  const int32_t m = microbatches;
  for (int32_t r = 0; r < ranks; ++r) {
    std::vector<Action> &order = s.actions[size_t(r)];
    if (dualpipe) {
      order = dualPipeV(ranks, r, m);
    } else if (zeroBubbleVShape) {
      order = zeroBubbleV(ranks, r, m);
    } else if (kind == "gpipe") {
      for (int32_t mb = 0; mb < m; ++mb)
        order.push_back(compute(Op::F, mb, 0));
      for (int32_t mb = 0; mb < m; ++mb)
        order.push_back(compute(Op::BW, mb, 0));
    } else if (!interleaved) {
      auto unit = [](int32_t k) { return std::pair<int32_t, int32_t>{k, 0}; };
      order = oneForwardOneBackward(m, std::min(ranks - r - 1, m),
                                    kind == "zb-h1" ? Op::B : Op::BW, unit, unit);
    } else {
      // Megatron's interleaved order: micro-batches in groups of `ranks`,
      // each group through every chunk (forward in chunk order, backward in
      // reverse), warmup 2 (ranks - r - 1) + (chunks - 1) ranks.
      const int32_t total = m * chunks;
      auto mbOf = [&](int32_t k) { return (k / (ranks * chunks)) * ranks + k % ranks; };
      auto forwardUnit = [&](int32_t k) {
        return std::pair<int32_t, int32_t>{mbOf(k), (k / ranks) % chunks};
      };
      auto backwardUnit = [&](int32_t k) {
        return std::pair<int32_t, int32_t>{mbOf(k), chunks - 1 - (k / ranks) % chunks};
      };
      order = oneForwardOneBackward(
          total, std::min(2 * (ranks - r - 1) + (chunks - 1) * ranks, total), Op::BW,
          forwardUnit, backwardUnit);
    }
  }
  if (kind == "zb-h1" && !placeWeightGradients(s, ranks, costs, error))
    return std::nullopt;
  addCommunication(s);
  return s;
}

std::optional<Simulation> simulate(const Schedule &s, const Costs &c, std::string &error) {
  return simulate(s, std::vector<Costs>(size_t(std::max(s.stages(), 1)), c), error);
}

std::optional<Simulation> simulate(const Schedule &s, const std::vector<Costs> &perStage,
                                   std::string &error) {
  const int32_t p = s.ranks, m = s.microbatches, last = s.stages() - 1;
  if (int32_t(perStage.size()) != s.stages()) {
    error = std::to_string(perStage.size()) + " stage costs for " + std::to_string(s.stages()) +
            " stages";
    return std::nullopt;
  }
  const Costs &c = perStage.front();
  auto where = [&](int32_t r, size_t i) {
    const Action &a = s.actions[size_t(r)][i];
    return "rank " + std::to_string(r) + ", action " + std::to_string(i) + " (" + opName(a.op) +
           " of micro-batch " + std::to_string(a.microbatch) + ", chunk " +
           std::to_string(a.chunk) +
           (a.op == Op::FB ? " and micro-batch " + std::to_string(a.microbatch2) + ", chunk " +
                                 std::to_string(a.chunk2)
                           : std::string()) +
           ")";
  };
  // Static checks: each rank's compute actions in a valid order, every
  // micro-batch through each of its chunks once, receives before the
  // computations that need them, sends after the ones that make them.
  using Key = std::tuple<int, int32_t, int32_t, int32_t>; // (F/B, mb, from, to stage)
  std::map<Key, int> sent, received;
  for (int32_t r = 0; r < p; ++r) {
    // 0 nothing, 1 forward done, 2 input gradient done, 3 weight gradient done.
    std::vector<std::vector<int>> state(size_t(s.chunks), std::vector<int>(size_t(m), 0));
    std::map<Key, int> got;
    for (size_t i = 0; i < s.actions[size_t(r)].size(); ++i) {
      const Action &a = s.actions[size_t(r)][i];
      auto valid = [&](int32_t mb, int32_t chunk) {
        return chunk >= 0 && chunk < s.chunks && mb >= 0 && mb < m;
      };
      if (!valid(a.microbatch, a.chunk) || (a.op == Op::FB && !valid(a.microbatch2, a.chunk2))) {
        error = where(r, i) + ": no such micro-batch or chunk";
        return std::nullopt;
      }
      const int32_t stage = s.stageOf[size_t(r)][size_t(a.chunk)];
      int &done = state[size_t(a.chunk)][size_t(a.microbatch)];
      auto need = [&](bool ok, const std::string &why) {
        if (!ok)
          error = where(r, i) + ": " + why;
        return ok;
      };
      auto forward = [&](int32_t mb, int32_t chunk) {
        const int32_t at = s.stageOf[size_t(r)][size_t(chunk)];
        int &d = state[size_t(chunk)][size_t(mb)];
        if (!need(d == 0, "the micro-batch already went forward through this chunk") ||
            !need(at == 0 || got.count({0, mb, at - 1, at}),
                  "its input from stage " + std::to_string(at - 1) + " is not received before it"))
          return false;
        d = 1;
        return true;
      };
      auto backward = [&](int32_t mb, int32_t chunk, bool whole) {
        const int32_t at = s.stageOf[size_t(r)][size_t(chunk)];
        int &d = state[size_t(chunk)][size_t(mb)];
        if (!need(d == 1, d == 0 ? "comes before the micro-batch's forward"
                                 : "the micro-batch's backward already ran") ||
            !need(at == last || got.count({1, mb, at + 1, at}),
                  "its output gradient from stage " + std::to_string(at + 1) +
                      " is not received before it"))
          return false;
        d = whole ? 3 : 2;
        return true;
      };
      switch (a.op) {
      case Op::F:
        if (!forward(a.microbatch, a.chunk))
          return std::nullopt;
        break;
      case Op::B:
      case Op::BW:
        if (!backward(a.microbatch, a.chunk, a.op == Op::BW))
          return std::nullopt;
        break;
      case Op::FB:
        if (!forward(a.microbatch, a.chunk) || !backward(a.microbatch2, a.chunk2, true))
          return std::nullopt;
        break;
      case Op::W:
        if (!need(done == 2, done < 2 ? "comes before the micro-batch's backward for the input"
                                      : "the weight gradient already ran"))
          return std::nullopt;
        done = 3;
        break;
      case Op::SendF:
      case Op::SendB: {
        const bool fwd = a.op == Op::SendF;
        const int32_t to = fwd ? stage + 1 : stage - 1;
        if (!need(to >= 0 && to <= last && s.placeOf(to).first == a.peer,
                  "sends to rank " + std::to_string(a.peer) + ", which does not hold stage " +
                      std::to_string(to)) ||
            !need(fwd ? done >= 1 : done >= 2, "sends what this rank has not computed yet"))
          return std::nullopt;
        ++sent[{fwd ? 0 : 1, a.microbatch, stage, to}];
        break;
      }
      case Op::RecvF:
      case Op::RecvB: {
        const bool fwd = a.op == Op::RecvF;
        const int32_t from = fwd ? stage - 1 : stage + 1;
        if (!need(from >= 0 && from <= last && s.placeOf(from).first == a.peer,
                  "receives from rank " + std::to_string(a.peer) +
                      ", which does not hold stage " + std::to_string(from)))
          return std::nullopt;
        const Key key{fwd ? 0 : 1, a.microbatch, from, stage};
        ++got[key];
        ++received[key];
        break;
      }
      }
    }
    for (int32_t c = 0; c < s.chunks; ++c)
      for (int32_t mb = 0; mb < m; ++mb)
        if (state[size_t(c)][size_t(mb)] != 3) {
          error = "rank " + std::to_string(r) + ": micro-batch " + std::to_string(mb) +
                  " of chunk " + std::to_string(c) + " never " +
                  (state[size_t(c)][size_t(mb)] == 0   ? "goes forward"
                   : state[size_t(c)][size_t(mb)] == 1 ? "goes backward"
                                                       : "gets its weight gradient (W)");
          return std::nullopt;
        }
  }
  for (const auto &[key, count] : received)
    if (sent[key] != count) {
      const auto [kind, mb, from, to] = key;
      error = "rank " + std::to_string(s.placeOf(to).first) + " receives the " +
              (kind == 0 ? "activation" : "gradient") + " of micro-batch " + std::to_string(mb) +
              " from stage " + std::to_string(from) + " that rank " +
              std::to_string(s.placeOf(from).first) + " never sends";
      return std::nullopt;
    }

  // Run it: buffered sends, blocking receives.
  Simulation sim;
  sim.busy.assign(size_t(p), 0);
  sim.bubble.assign(size_t(p), 0);
  sim.peakInFlight.assign(size_t(p), 0);
  sim.times.resize(size_t(p));
  std::vector<size_t> next(size_t(p), 0);
  std::vector<double> clock(size_t(p), 0);
  std::vector<int32_t> inFlight(size_t(p), 0);
  std::map<Key, double> arrival;
  for (bool progress = true; progress;) {
    progress = false;
    for (int32_t r = 0; r < p; ++r) {
      const std::vector<Action> &list = s.actions[size_t(r)];
      while (next[size_t(r)] < list.size()) {
        const Action &a = list[next[size_t(r)]];
        const int32_t stage = s.stageOf[size_t(r)][size_t(a.chunk)];
        double start = clock[size_t(r)], end = start;
        if (a.op == Op::RecvF || a.op == Op::RecvB) {
          const bool fwd = a.op == Op::RecvF;
          auto it = arrival.find({fwd ? 0 : 1, a.microbatch, fwd ? stage - 1 : stage + 1, stage});
          if (it == arrival.end())
            break; // blocked until the send runs
          end = std::max(start, it->second);
        } else if (a.op == Op::SendF || a.op == Op::SendB) {
          const bool fwd = a.op == Op::SendF;
          // A rank handing a value to itself (DualPipeV's last rank) waits for nothing.
          arrival[{fwd ? 0 : 1, a.microbatch, stage, fwd ? stage + 1 : stage - 1}] =
              start + (a.peer == r ? 0.0 : c.comm);
        } else {
          const Costs &own = perStage[size_t(stage)];
          end = start + (a.op == Op::FB && own.fb < 0
                             ? own.f + costOf(Op::BW, perStage[size_t(
                                           s.stageOf[size_t(r)][size_t(a.chunk2)])])
                             : costOf(a.op, own));
          sim.busy[size_t(r)] += end - start;
          if (a.op == Op::F || a.op == Op::FB)
            sim.peakInFlight[size_t(r)] =
                std::max(sim.peakInFlight[size_t(r)], ++inFlight[size_t(r)]);
          if (a.op == Op::W || a.op == Op::BW || a.op == Op::FB)
            --inFlight[size_t(r)];
        }
        sim.times[size_t(r)].push_back({start, end});
        clock[size_t(r)] = end;
        ++next[size_t(r)];
        progress = true;
      }
    }
  }
  for (int32_t r = 0; r < p; ++r)
    if (next[size_t(r)] < s.actions[size_t(r)].size()) {
      error = "deadlock: " + where(r, next[size_t(r)]) + " waits for a send that never comes";
      return std::nullopt;
    }
  sim.makespan = *std::max_element(clock.begin(), clock.end());
  for (int32_t r = 0; r < p; ++r)
    sim.bubble[size_t(r)] = sim.makespan - sim.busy[size_t(r)];
  return sim;
}

std::string formatAction(const Schedule &s, int32_t rank, const Action &a) {
  const std::vector<int32_t> &stageOf = s.stageOf[size_t(rank)];
  std::ostringstream os;
  if (a.op == Op::FB)
    os << stageOf[size_t(a.chunk)] << "F" << a.microbatch << "&" << stageOf[size_t(a.chunk2)]
       << "B" << a.microbatch2;
  else
    os << stageOf[size_t(a.chunk)] << opName(a.op) << a.microbatch;
  return os.str();
}

std::string formatScheduleCsv(const Schedule &s) {
  std::ostringstream os;
  for (int32_t r = 0; r < s.ranks; ++r) {
    for (size_t i = 0; i < s.actions[size_t(r)].size(); ++i)
      os << (i ? "," : "") << formatAction(s, r, s.actions[size_t(r)][i]);
    os << "\n";
  }
  return os.str();
}

std::string formatScheduleSvg(const Schedule &s, const Simulation &sim) {
  // Scale so that the step is about 1200 pixels wide, boxes at least 4.
  const double unit = sim.makespan > 0 ? std::max(4.0, 1200.0 / sim.makespan) : 1.0;
  const int rowHeight = 28, left = 70, top = 24;
  const double width = left + sim.makespan * unit + 220;
  const int height = top + rowHeight * s.ranks + 12;
  std::ostringstream os;
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << int(width) << "\" height=\""
     << height << "\" font-family=\"monospace\" font-size=\"11\">\n";
  os << "<text x=\"4\" y=\"14\">" << s.kind << ": " << s.ranks << " ranks x " << s.chunks
     << " chunk(s), " << s.microbatches << " micro-batches, makespan " << sim.makespan
     << "</text>\n";
  for (int32_t r = 0; r < s.ranks; ++r) {
    const int y = top + r * rowHeight;
    os << "<text x=\"4\" y=\"" << y + 18 << "\">rank " << r << "</text>\n";
    for (size_t i = 0; i < s.actions[size_t(r)].size(); ++i) {
      const Action &a = s.actions[size_t(r)][i];
      const auto [start, end] = sim.times[size_t(r)][i];
      if (a.op != Op::F && a.op != Op::B && a.op != Op::W && a.op != Op::BW && a.op != Op::FB)
        continue; // a receive's span is waiting, drawn as blank
      const bool second = a.chunk > 0;
      const char *fill = a.op == Op::F    ? (second ? "#1f4e99" : "#5b8fd9")
                         : a.op == Op::W  ? (second ? "#b35f00" : "#f0a040")
                         : a.op == Op::FB ? "#8e5bbf"
                                          : (second ? "#2d7a2d" : "#6cc06c");
      os << "<rect x=\"" << left + start * unit << "\" y=\"" << y << "\" width=\""
         << (end - start) * unit << "\" height=\"" << rowHeight - 4 << "\" fill=\"" << fill
         << "\" stroke=\"white\"><title>" << opName(a.op) << " micro-batch " << a.microbatch
         << " chunk " << a.chunk << "</title></rect>\n";
      os << "<text x=\"" << left + start * unit + 2 << "\" y=\"" << y + 17 << "\">"
         << opName(a.op) << a.microbatch << "</text>\n";
    }
    os << "<text x=\"" << left + sim.makespan * unit + 8 << "\" y=\"" << y + 18
       << "\">bubble " << sim.bubble[size_t(r)] << ", peak " << sim.peakInFlight[size_t(r)]
       << " in flight</text>\n";
  }
  os << "</svg>\n";
  return os.str();
}

} // namespace kiln::pipeline
