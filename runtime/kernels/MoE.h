//===- MoE.h - host kernels of routing, dispatch/combine and grouped GEMM -===//
//
// f32 host launchers for the kiln dialect's MoE ops (KilnMoEOps.td), their
// backward ops (KilnGradOps.td) and the balancing ops (expert_load,
// balance_loss[_grad] of KilnTrainOps.td). Buffers are row-major; indices,
// offsets and source are int32. Every launcher checks its sizes and the
// index values it reads, and returns false with a message in `*error` (when
// non-null) instead of crashing; outputs are then unspecified.
//
// Determinism: static OpenMP schedules, no floating-point atomics, every sum
// in a fixed order (scatter-adds go through a counting sort by destination,
// summed in row order), so two runs give bit-identical results.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_MOE_H
#define KILN_RUNTIME_MOE_H

#include <cstdint>
#include <string>

namespace kiln::kernels {

/// kiln.router's attributes.
struct RouterConfig {
  bool softmax = false; ///< scoring = "softmax" (else "sigmoid")
  bool top2Sum = true;  ///< group_score = "top2_sum" (else "max")
  int64_t nGroup = 1, topkGroup = 1, topK = 1;
  bool normTopkProb = true;
  float routedScalingFactor = 1.0f;
};

/// logits [tokens, experts], bias [experts] -> indices, weights [tokens, topK].
bool router(const float *logits, const float *bias, int64_t tokens, int64_t experts,
            const RouterConfig &config, int32_t *indices, float *weights,
            std::string *error = nullptr);

/// dlogits [tokens, experts] from dweights [tokens, topK].
bool routerGrad(const float *logits, const int32_t *indices, const float *dweights,
                int64_t tokens, int64_t experts, int64_t topK, bool softmax,
                bool normTopkProb, float routedScalingFactor, float *dlogits,
                std::string *error = nullptr);

/// kept [tokens, topK] = indices with the pairs over `capacity` per expert
/// in each group of `groupTokens` tokens (the first in token-major order
/// stay) replaced by -1.
bool expertCapacity(const int32_t *indices, int64_t tokens, int64_t topK, int64_t experts,
                    int64_t groupTokens, int64_t capacity, int32_t *kept,
                    std::string *error = nullptr);

/// load [experts] = count of each expert among indices[0..count) (-1, a
/// dropped pair, counts for none).
bool expertLoad(const int32_t *indices, int64_t count, int64_t experts, float *load,
                std::string *error = nullptr);

/// x [tokens, hidden], indices [tokens, topK] -> rows [tokens*topK, hidden],
/// offsets [experts + 1], source [tokens*topK] (stable counting sort; pairs
/// with index -1 go after every expert, from offsets[experts] on).
bool dispatch(const float *x, const int32_t *indices, int64_t tokens, int64_t hidden,
              int64_t topK, int64_t experts, float *rows, int32_t *offsets,
              int32_t *source, std::string *error = nullptr);

/// drows [tokens*topK, hidden], source -> dx [tokens, hidden].
bool dispatchGrad(const float *drows, const int32_t *source, int64_t tokens,
                  int64_t topK, int64_t hidden, float *dx, std::string *error = nullptr);

/// rows [tokens*topK, hidden], weights [tokens, topK], source -> out [tokens, hidden].
bool combine(const float *rows, const float *weights, const int32_t *source,
             int64_t tokens, int64_t topK, int64_t hidden, float *out,
             std::string *error = nullptr);

/// -> drows [tokens*topK, hidden], dweights [tokens, topK].
bool combineGrad(const float *rows, const float *weights, const int32_t *source,
                 const float *dy, int64_t tokens, int64_t topK, int64_t hidden,
                 float *drows, float *dweights, std::string *error = nullptr);

/// x [rows, K], weight [experts, N, K], offsets [experts + 1] -> out [rows, N].
bool groupedMatmul(const float *x, const float *weight, const int32_t *offsets,
                   int64_t rows, int64_t k, int64_t experts, int64_t n, float *out,
                   std::string *error = nullptr);

/// dy [rows, N], weight [experts, N, K] -> dx [rows, K].
bool groupedMatmulDgrad(const float *dy, const float *weight, const int32_t *offsets,
                        int64_t rows, int64_t n, int64_t experts, int64_t k, float *dx,
                        std::string *error = nullptr);

/// dy [rows, N], x [rows, K] -> dweight [experts, N, K] (zero for empty experts).
bool groupedMatmulWgrad(const float *dy, const float *x, const int32_t *offsets,
                        int64_t rows, int64_t n, int64_t k, int64_t experts,
                        float *dweight, std::string *error = nullptr);

/// Sequence-wise balance loss (without alpha) -> *loss.
/// With totalSequences > 0 (data parallelism: the global batch's sequences)
/// the sum over sequences is divided by it instead of numSequences.
bool balanceLoss(const float *logits, const int32_t *indices, int64_t tokens,
                 int64_t experts, int64_t topK, int64_t numSequences, bool softmax,
                 float *loss, std::string *error = nullptr, int64_t totalSequences = 0);

/// Its gradient with respect to the logits, for the scalar loss gradient dloss.
bool balanceLossGrad(const float *logits, const int32_t *indices, float dloss,
                     int64_t tokens, int64_t experts, int64_t topK, int64_t numSequences,
                     bool softmax, float *dlogits, std::string *error = nullptr,
                     int64_t totalSequences = 0);

} // namespace kiln::kernels

#endif // KILN_RUNTIME_MOE_H
