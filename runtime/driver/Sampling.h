//===- Sampling.h - Drawing a token from a row of logits -------*- C++ -*-===//
//
// The sampler `train --generate` (Generate.h) and reinforcement learning
// share: temperature, then top-k, then top-p (nucleus), in the order Hugging
// Face's generate() applies them, with one uniform draw of a SplitMix64 per
// token. Everything is computed in double and the order of every tie is
// fixed (lower token id first), so a seed gives the same tokens on every
// machine and thread count.
//
// The log-probability returned with a token is that of the model's
// distribution at the given temperature over the FULL vocabulary,
// log softmax(logits / T)[token] (T = 0: log softmax(logits)[token]) — not
// of the truncated distribution it was drawn from — which is what a policy
// gradient needs.
//
// Streams: sampleSeed(seed, step, prompt, sample) gives every completion its
// own generator, so a completion does not depend on which other completions
// were decoded with it or in what batch, and a run (or a resumed RL run) is
// reproducible.
//
// Like the rest of runtime/, nothing here throws (except std::bad_alloc).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DRIVER_SAMPLING_H
#define KILN_RUNTIME_DRIVER_SAMPLING_H

#include "runtime/data/SplitMix64.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::driver {

struct SamplingOptions {
  /// Divides the logits; 0 is greedy (argmax, the lowest id on ties).
  double temperature = 1.0;
  /// Nucleus: keep the smallest set of most probable tokens whose
  /// probability adds up to at least topP (always at least one); 1: all.
  double topP = 1.0;
  /// Keep only the topK most probable tokens; 0: all.
  int64_t topK = 0;
};

/// Checks temperature >= 0 and finite, 0 < topP <= 1, topK >= 0; on failure
/// `error` names the option, its value and what would be right.
bool validateSampling(const SamplingOptions &options, std::string &error);

struct SampledToken {
  int32_t token = 0;
  /// log softmax(logits / temperature)[token] over the whole vocabulary
  /// (temperature 0: of the logits themselves).
  float logprob = 0;
};

/// A sampler with its scratch space, reused across tokens (the vocabulary
/// may be 10^5 wide). Options are taken as valid (validateSampling).
class TokenSampler {
public:
  explicit TokenSampler(const SamplingOptions &options) : options_(options) {}

  /// Draws one token from `logits` [vocab] (vocab >= 1), consuming exactly
  /// one draw of `rng`. Logits of -inf (and NaN) have probability 0; when no
  /// logit is finite the result is token 0 with a NaN logprob, which the
  /// caller should have ruled out (Generate.cpp reports non-finite logits).
  SampledToken sample(const float *logits, int64_t vocab, data::SplitMix64 &rng);

  const SamplingOptions &options() const { return options_; }

private:
  SamplingOptions options_;
  std::vector<double> weights_;  ///< exp(logit / T - max), 0 for non-finite
  std::vector<int32_t> order_;   ///< candidate ids, most probable first
};

/// One token with a temporary sampler (tests and one-off draws).
SampledToken sampleToken(const float *logits, int64_t vocab, const SamplingOptions &options,
                         data::SplitMix64 &rng);

/// A uniform double in [0, 1) from the top 53 bits of one draw.
inline double uniformDouble(data::SplitMix64 &rng) {
  return double(rng.next() >> 11) * (1.0 / 9007199254740992.0);
}

/// The seed of completion `sample` of prompt `prompt` at (RL) step `step`
/// of a run seeded with `seed`: the four mixed with SplitMix64's finalizer,
/// each into its own lane, so that nearby tuples give unrelated streams.
uint64_t sampleSeed(uint64_t seed, uint64_t step, uint64_t prompt, uint64_t sample);

} // namespace kiln::driver

#endif // KILN_RUNTIME_DRIVER_SAMPLING_H
