//===- Sampling.cpp - Drawing a token from a row of logits ----------------===//

#include "runtime/driver/Sampling.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace kiln::driver {

namespace {

/// SplitMix64's output function (Stafford's Mix13): a bijection on 64 bits
/// whose every output bit depends on every input bit.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::string number(double value) {
  char text[40];
  std::snprintf(text, sizeof(text), "%g", value);
  return text;
}

} // namespace

bool validateSampling(const SamplingOptions &options, std::string &error) {
  if (!std::isfinite(options.temperature) || options.temperature < 0) {
    error = "temperature " + number(options.temperature) +
            ": expected a finite number >= 0 (0: greedy decoding)";
    return false;
  }
  if (!(options.topP > 0 && options.topP <= 1)) {
    error = "top_p " + number(options.topP) +
            ": expected a number in (0, 1] (1: no nucleus truncation)";
    return false;
  }
  if (options.topK < 0) {
    error = "top_k " + std::to_string(options.topK) + ": expected an integer >= 0 (0: no limit)";
    return false;
  }
  return true;
}

SampledToken TokenSampler::sample(const float *logits, int64_t vocab, data::SplitMix64 &rng) {
  // One draw per token whatever the options, so a stream stays aligned
  // with the positions it decodes.
  const double u = uniformDouble(rng);
  SampledToken out;

  // The largest finite logit (the lowest id among equals: greedy's pick).
  int64_t best = -1;
  for (int64_t i = 0; i < vocab; ++i)
    if (std::isfinite(logits[i]) && (best < 0 || logits[i] > logits[best]))
      best = i;
  if (best < 0) {
    out.token = 0;
    out.logprob = std::numeric_limits<float>::quiet_NaN();
    return out;
  }
  const double top = double(logits[best]);
  const bool greedy = options_.temperature == 0;
  const double temperature = greedy ? 1.0 : options_.temperature;

  // weights[i] = exp((logits[i] - max) / T): the softmax numerators, scaled
  // so the largest is 1 (no overflow for any T > 0). The normaliser is
  // 1 + `others` (the rest, summed in id order), and its log is taken as
  // log1p(others), exact even when the top token has nearly all the mass
  // (log(1 + 1e-12) in double keeps only 4 digits).
  weights_.assign(size_t(vocab), 0.0);
  double others = 0;
  for (int64_t i = 0; i < vocab; ++i) {
    if (!std::isfinite(logits[i]))
      continue;
    weights_[size_t(i)] = std::exp((double(logits[i]) - top) / temperature);
    if (i != best)
      others += weights_[size_t(i)];
  }
  const double total = 1 + others, logTotal = std::log1p(others);
  auto logprobOf = [&](int64_t token) {
    return float((double(logits[token]) - top) / temperature - logTotal);
  };
  if (greedy) {
    out.token = int32_t(best);
    out.logprob = logprobOf(best);
    return out;
  }

  const bool topK = options_.topK > 0 && options_.topK < vocab;
  const bool topP = options_.topP < 1;
  if (!topK && !topP) {
    // The whole distribution, walked in id order.
    const double target = u * total;
    double cumulative = 0;
    int64_t pick = best;
    for (int64_t i = 0; i < vocab; ++i) {
      if (weights_[size_t(i)] == 0)
        continue;
      cumulative += weights_[size_t(i)];
      pick = i;
      if (target < cumulative)
        break;
    }
    out.token = int32_t(pick);
    out.logprob = logprobOf(pick);
    return out;
  }

  // Candidates most probable first, ties by lower id: top-k keeps a prefix,
  // then top-p a shorter prefix of that.
  order_.clear();
  for (int64_t i = 0; i < vocab; ++i)
    if (std::isfinite(logits[i]))
      order_.push_back(int32_t(i));
  auto before = [&](int32_t a, int32_t b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  };
  size_t kept = order_.size();
  if (topK && size_t(options_.topK) < kept) {
    kept = size_t(options_.topK);
    std::partial_sort(order_.begin(), order_.begin() + std::ptrdiff_t(kept), order_.end(), before);
  } else {
    std::sort(order_.begin(), order_.end(), before);
  }
  double keptTotal = 0;
  for (size_t j = 0; j < kept; ++j)
    keptTotal += weights_[size_t(order_[j])];
  if (topP) {
    // The smallest prefix whose share of the top-k mass reaches topP.
    const double threshold = options_.topP * keptTotal;
    double cumulative = 0;
    size_t j = 0;
    while (j < kept) {
      cumulative += weights_[size_t(order_[j++])];
      if (cumulative >= threshold)
        break;
    }
    kept = j;
    keptTotal = cumulative;
  }
  const double target = u * keptTotal;
  double cumulative = 0;
  int32_t pick = order_[0];
  for (size_t j = 0; j < kept; ++j) {
    const double w = weights_[size_t(order_[j])];
    if (w == 0)
      break; // sorted: only zeros follow
    cumulative += w;
    pick = order_[j];
    if (target < cumulative)
      break;
  }
  out.token = pick;
  out.logprob = logprobOf(pick);
  return out;
}

SampledToken sampleToken(const float *logits, int64_t vocab, const SamplingOptions &options,
                         data::SplitMix64 &rng) {
  TokenSampler sampler(options);
  return sampler.sample(logits, vocab, rng);
}

uint64_t sampleSeed(uint64_t seed, uint64_t step, uint64_t prompt, uint64_t sample) {
  // Distinct odd constants per lane, so (a, b) and (b, a) differ and a
  // zero in any lane is not a fixed point.
  uint64_t h = mix64(seed ^ 0x9e3779b97f4a7c15ULL);
  h = mix64(h + mix64(step ^ 0xd1b54a32d192ed03ULL));
  h = mix64(h + mix64(prompt ^ 0x8cb92ba72f3d8dd7ULL));
  return mix64(h + mix64(sample ^ 0xa0761d6478bd642fULL));
}

} // namespace kiln::driver
