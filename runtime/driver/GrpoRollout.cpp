//===- GrpoRollout.cpp - One GRPO step's rollouts, rewards and batch ------===//

#include "runtime/driver/GrpoRollout.h"
#include "runtime/driver/Curriculum.h"
#include "runtime/driver/Generate.h"
#include "runtime/driver/GrpoAdvantages.h"
#include "runtime/driver/GrpoRewards.h"
#include "runtime/driver/Timer.h"
#include "runtime/kernels/GrpoMath.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

namespace kiln::driver {

bool readRollouts(const std::string &path, const ModelDesc &model, int dpRank,
                  const GrpoBatch &batch, std::string &error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "--rollouts " + path + ": cannot read";
    return false;
  }
  std::stringstream text;
  text << in.rdbuf();
  const std::string body = text.str();
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    error = "--rollouts " + path + ": not a JSON object";
    return false;
  }
  // The file holds the global batch; this rank keeps rows
  // [firstRow, firstRow + model.batch).
  const int64_t rows = model.batch * model.dp, T = model.seqLen,
                firstRow = model.batch * int64_t(dpRank);
  // Each field: `rows` values, or `rows` rows of T, each checked by `valid`.
  auto read = [&](const char *field, bool perToken, auto store, auto valid) {
    const std::string where = "--rollouts " + path + ": " + field;
    if (!doc.contains(field) || !doc[field].is_array() || int64_t(doc[field].size()) != rows) {
      error = where + ": expected " + std::to_string(rows) + (perToken ? " rows" : " numbers") +
              " (the step's rows" +
              (model.dp > 1 ? " on all " + std::to_string(model.dp) + " data-parallel ranks"
                            : std::string()) +
              ")";
      return false;
    }
    for (int64_t r = 0; r < rows; ++r) {
      const nlohmann::json &row = doc[field][size_t(r)];
      if (perToken && (!row.is_array() || int64_t(row.size()) != T)) {
        error = where + ": row " + std::to_string(r) + ": expected " + std::to_string(T) +
                " values (train.seq_len)";
        return false;
      }
      for (int64_t t = 0; t < (perToken ? T : 1); ++t) {
        const nlohmann::json &v = perToken ? row[size_t(t)] : row;
        if (!v.is_number() || !std::isfinite(v.get<double>()) || !valid(v.get<double>())) {
          error = where + ": row " + std::to_string(r) + ", position " + std::to_string(t) +
                  ": " + v.dump() + " is not a valid value";
          return false;
        }
        if (r >= firstRow && r < firstRow + model.batch)
          store((r - firstRow) * (perToken ? T : 1) + t, v.get<double>());
      }
    }
    return true;
  };
  auto anyNumber = [](double) { return true; };
  auto tokenId = [&](double v) { return v == std::floor(v) && v >= 0 && v < model.vocabSize; };
  return read("tokens", true, [&](int64_t i, double v) { batch.tokens[i] = int32_t(v); },
              tokenId) &&
         read("targets", true, [&](int64_t i, double v) { batch.targets[i] = int32_t(v); },
              tokenId) &&
         read("loss_mask", true, [&](int64_t i, double v) { batch.lossMask[i] = float(v); },
              [](double v) { return v == 0 || v == 1; }) &&
         read("old_logprobs", true, [&](int64_t i, double v) { batch.oldLogprobs[i] = float(v); },
              anyNumber) &&
         read("ref_logprobs", true, [&](int64_t i, double v) { batch.refLogprobs[i] = float(v); },
              anyNumber) &&
         read("advantages", false, [&](int64_t i, double v) { batch.advantages[i] = float(v); },
              anyNumber);
}

std::optional<GrpoRollout> GrpoRollout::create(const ModelDesc &model, const DecodeDesc &decode,
                                               const GrpoDesc &grpo,
                                               const std::vector<detail::ParamLayout> &layouts,
                                               float *const *params, comm::Communicator *dp,
                                               std::string &error) {
  const ScoreDesc &score = *grpo.score;
  if (score.rows != model.batch || score.seqLen != model.seqLen ||
      decode.vocabSize != model.vocabSize) {
    error = "the GRPO score program is built for " + std::to_string(score.rows) + " x " +
            std::to_string(score.seqLen) + " tokens and the step for " +
            std::to_string(model.batch) + " x " + std::to_string(model.seqLen) +
            "; rebuild the executable with kilnc";
    return std::nullopt;
  }
  const int ranks = dp ? dp->size() : 1;
  if (ranks != model.dp || grpo.promptsPerStep % ranks != 0 ||
      grpo.promptsPerStep * grpo.samplesPerPrompt != model.batch * ranks) {
    error = "train.grpo: " + std::to_string(grpo.promptsPerStep) + " prompts x " +
            std::to_string(grpo.samplesPerPrompt) + " samples on " + std::to_string(ranks) +
            " data-parallel ranks is not the step's " + std::to_string(model.batch) +
            " rows on each of " + std::to_string(model.dp) + "; rebuild the executable with kilnc";
    return std::nullopt;
  }
  GrpoRollout r(model, decode, grpo, dp);
  std::vector<size_t> decodeIndices, scoreIndices;
  std::string missing;
  if (!detail::layoutIndicesByName(decode.paramNames, decode.numParams, layouts, decodeIndices,
                                   missing) ||
      !detail::layoutIndicesByName(score.paramNames, score.numParams, layouts, scoreIndices,
                                   missing)) {
    error = "the GRPO programs read parameter '" + missing +
            "', which the training step does not hold; rebuild the executable with kilnc";
    return std::nullopt;
  }
  for (size_t i : decodeIndices)
    r.decodeParams.push_back(params[i]);
  // The reference model: a copy of what the score program reads.
  r.reference.resize(scoreIndices.size());
  for (size_t k = 0; k < scoreIndices.size(); ++k) {
    const size_t i = scoreIndices[k];
    r.scoreParams.push_back(params[i]);
    if (!r.reference[k].allocate(layouts[i].numElements)) {
      error = "out of memory for the GRPO reference model";
      return std::nullopt;
    }
    std::memcpy(r.reference[k].data(), params[i], layouts[i].numElements * sizeof(float));
    r.scoreRefParams.push_back(r.reference[k].data());
  }
  if (!r.scoreArena.allocate(score.arenaBytes)) {
    error = "out of memory for the GRPO score program's arena";
    return std::nullopt;
  }
  return r;
}

bool GrpoRollout::score(const std::vector<const float *> &params, const GrpoBatch &batch,
                        float *out, std::string &error) {
  ScoreBuffers buffers{params.data(), batch.tokens, batch.targets, out, scoreArena.data()};
  std::string why;
  if (!grpo->score->score(buffers, why)) {
    error = "GRPO score program: " + why;
    return false;
  }
  return true;
}

bool GrpoRollout::sumOverRanks(double *values, size_t count, comm::ReduceOp op,
                               std::string &error) {
  if (!dp || dp->size() == 1 || dp->allReduce(values, count, comm::DType::F64, op))
    return true;
  error = dp->error();
  return false;
}

bool GrpoRollout::prepare(uint64_t seed, uint64_t step, const GrpoBatch &batch,
                          StepMetrics &metrics, std::string &error) {
  // This rank's prompts of the step's draw: P / ranks whole groups.
  const int64_t ranks = dp ? dp->size() : 1, rank = dp ? dp->rank() : 0;
  const int64_t allPrompts = grpo->promptsPerStep, P = allPrompts / ranks,
                G = grpo->samplesPerPrompt;
  const int64_t rows = model->batch, T = model->seqLen;
  std::vector<data::ArithmeticProblem> problems;
  if (!drawStepProblems(seed, step, allPrompts,
                        curriculumOptions(*model, step, data::AnswerFormat::Plain), problems,
                        error))
    return false;
  problems = std::vector<data::ArithmeticProblem>(problems.begin() + rank * P,
                                                  problems.begin() + (rank + 1) * P);
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::string> promptTexts;
  size_t longest = 0;
  for (const data::ArithmeticProblem &p : problems) {
    prompts.push_back(grpoPromptTokens(p));
    promptTexts.push_back(grpoPrompt(p));
    longest = std::max(longest, prompts.back().size());
  }
  if (int64_t(longest) >= T || int64_t(longest) > decode->promptLen) {
    error = "GRPO step " + std::to_string(step) + ": a prompt of " + std::to_string(longest) +
            " tokens does not fit train.seq_len " + std::to_string(T) +
            " and train.generate.max_prompt_len " + std::to_string(decode->promptLen);
    return false;
  }
  GenerateOptions options;
  options.sampling = {grpo->temperature, grpo->topP, grpo->topK};
  options.samples = G;
  options.maxNewTokens = std::min<int64_t>(grpo->maxNewTokens, T + 1 - int64_t(longest));
  options.stopToken = model->vocabSize >= 256 ? '\n' : -1;
  options.seed = seed;
  options.step = step;
  options.firstPrompt = uint64_t(rank * P);
  Timer timer;
  std::vector<Completion> completions;
  if (!generate(*decode, decodeParams.data(), prompts, options, completions, error)) {
    error = "GRPO step " + std::to_string(step) + ": " + error;
    return false;
  }
  const double generationSec = timer.seconds();

  // Rewards and advantages, group by group.
  std::vector<double> rewards(static_cast<size_t>(rows));
  uint64_t correct = 0, formatted = 0, generated = 0;
  for (const Completion &c : completions) {
    std::string text(c.tokens.begin(), c.tokens.end());
    CompletionReward r = scoreCompletion(promptTexts[size_t(c.prompt)], text,
                                         grpo->accuracyReward, grpo->formatReward);
    rewards[size_t(c.prompt * G + c.sample)] = r.reward;
    correct += r.correct;
    formatted += r.formatted;
    generated += c.tokens.size();
  }
  std::vector<double> advantages;
  if (!groupAdvantages(rewards, G, grpo->normalizeAdvantages, grpo->advantageEps, advantages,
                       error))
    return false;
  int64_t tied = 0;
  for (int64_t p = 0; p < P; ++p)
    tied += std::all_of(rewards.begin() + p * G, rewards.begin() + (p + 1) * G,
                        [&](double r) { return r == rewards[size_t(p * G)]; });

  // The batch.
  std::fill_n(batch.tokens, rows * T, 0);
  std::fill_n(batch.targets, rows * T, 0);
  std::fill_n(batch.lossMask, rows * T, 0.0f);
  for (const Completion &c : completions) {
    const int64_t row = c.prompt * G + c.sample;
    std::vector<int32_t> ids = c.promptTokens;
    ids.insert(ids.end(), c.tokens.begin(), c.tokens.end());
    const bool learn = c.stopped || !grpo->maskTruncated;
    for (int64_t t = 0; t < T && t < int64_t(ids.size()); ++t) {
      batch.tokens[row * T + t] = ids[size_t(t)];
      if (t + 1 < int64_t(ids.size())) {
        batch.targets[row * T + t] = ids[size_t(t + 1)];
        batch.lossMask[row * T + t] =
            learn && t + 1 >= int64_t(c.promptTokens.size()) ? 1.0f : 0.0f;
      }
    }
    batch.advantages[row] = float(advantages[size_t(row)]);
  }

  // Log-probs of the completion tokens: the sampling policy (these very
  // parameters) and the reference model, which with beta = 0 is not read.
  if (!score(scoreParams, batch, batch.oldLogprobs, error))
    return false;
  if (grpo->beta > 0) {
    if (!score(scoreRefParams, batch, batch.refLogprobs, error))
      return false;
  } else {
    std::copy_n(batch.oldLogprobs, rows * T, batch.refLogprobs);
  }

  // The metrics of the global batch: sums over the ranks, then the mean
  // first, so the standard deviation is two-pass as on one rank.
  double sums[7] = {0, 0, double(correct), double(formatted), double(generated), double(tied),
                    0};
  for (double r : rewards)
    sums[0] += r;
  for (int64_t i = 0; i < rows * T; ++i)
    if (batch.lossMask[i] != 0) {
      const double d = double(batch.refLogprobs[i]) - double(batch.oldLogprobs[i]);
      sums[1] += std::exp(d) - d - 1;
      sums[6] += 1;
    }
  double slowest = generationSec;
  if (!sumOverRanks(sums, 7, comm::ReduceOp::Sum, error) ||
      !sumOverRanks(&slowest, 1, comm::ReduceOp::Max, error))
    return false;
  const double allRows = double(rows * ranks);
  const double mean = sums[0] / allRows;
  double var = 0;
  for (double r : rewards)
    var += (r - mean) * (r - mean);
  if (!sumOverRanks(&var, 1, comm::ReduceOp::Sum, error))
    return false;
  metrics.grpo = true;
  metrics.rewardMean = mean;
  metrics.rewardStd = std::sqrt(var / allRows);
  metrics.accuracy = sums[2] / allRows;
  metrics.formatRate = sums[3] / allRows;
  metrics.responseLength = sums[4] / allRows;
  metrics.kl = sums[6] > 0 ? sums[1] / sums[6] : 0;
  metrics.clipFraction = 0;
  metrics.tiedGroups = sums[5] / double(allPrompts);
  // Every rank generates at once: the job's tokens over the slowest rank's time.
  metrics.generationTokensPerSec = slowest > 0 ? sums[4] / slowest : 0;
  clippedTokens = clipCountedTokens = 0;
  return true;
}

bool GrpoRollout::measureClipping(const GrpoBatch &batch, StepMetrics &metrics,
                                  std::string &error) {
  const int64_t rows = model->batch, T = model->seqLen;
  std::vector<float> current(size_t(rows * T));
  if (!score(scoreParams, batch, current.data(), error))
    return false;
  double counts[2] = {0, 0}; // clipped, counted: on every rank
  for (int64_t i = 0; i < rows * T; ++i) {
    if (batch.lossMask[i] == 0)
      continue;
    kernels::GrpoTerm<double> term = kernels::grpoToken<double>(
        current[size_t(i)], batch.oldLogprobs[i], batch.refLogprobs[i],
        batch.advantages[i / T], grpo->clipLow, grpo->clipHigh, grpo->beta);
    counts[0] += term.clipped;
    counts[1] += 1;
  }
  if (!sumOverRanks(counts, 2, comm::ReduceOp::Sum, error))
    return false;
  clippedTokens += uint64_t(counts[0]);
  clipCountedTokens += uint64_t(counts[1]);
  metrics.clipFraction =
      clipCountedTokens ? double(clippedTokens) / double(clipCountedTokens) : 0.0;
  return true;
}

static const std::string kReferencePrefix = "rank_state.grpo_reference.";

void GrpoRollout::exposeReference(detail::TrainState &state) const {
  for (size_t i = 0; i < reference.size(); ++i)
    state.extraRankState.push_back({kReferencePrefix + grpo->score->paramNames[i],
                                    {int64_t(reference[i].size())}, reference[i].data()});
}

bool GrpoRollout::restoreReference(const std::vector<checkpoint::Tensor> &rankState,
                                   std::string &error) {
  std::map<std::string, const checkpoint::Tensor *> saved;
  for (const checkpoint::Tensor &t : rankState)
    saved[t.name] = &t;
  for (size_t i = 0; i < reference.size(); ++i) {
    const std::string name = kReferencePrefix + grpo->score->paramNames[i];
    auto it = saved.find(name);
    if (it == saved.end() || it->second->values.size() != reference[i].size()) {
      error = "the checkpoint has no GRPO reference model tensor '" + name +
              (it == saved.end() ? "'" : "' of " + std::to_string(reference[i].size()) +
                                             " elements") +
              "; resume a GRPO run from a checkpoint of a GRPO run of this spec";
      return false;
    }
    std::copy(it->second->values.begin(), it->second->values.end(), reference[i].data());
  }
  return true;
}

void GrpoRollout::finishStep(uint64_t step) {
  if (grpo->refUpdateEvery <= 0 || step % uint64_t(grpo->refUpdateEvery) != 0)
    return;
  for (size_t i = 0; i < reference.size(); ++i)
    std::memcpy(reference[i].data(), scoreParams[i], reference[i].size() * sizeof(float));
}

} // namespace kiln::driver
