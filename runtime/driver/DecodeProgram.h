//===- DecodeProgram.h - The contract between generated decoding and the driver -*- C++ -*-===//
//
// Next to the training step, kilnc emits a decode program of the same model
// (frontend/DecodeGen.cpp): two straight-line functions over the same
// parameters, `prefill` (a chunk of promptLen tokens per row) and `step` (one
// token per row), each reading and updating the per-layer KV caches the
// driver owns. For MLA the caches hold the normalised compressed latent
// [rows, maxLen, kv_lora_rank] and the rotated key [rows, maxLen, 1,
// qk_rope_head_dim] (DeepSeek's absorbed inference); for GQA the keys and
// values [rows, maxLen, kv_heads, head_dim].
//
// Rows advance independently: positions[b] is the position of row b's first
// token in the chunk. A chunk writes the cache at positions[b] ..
// positions[b] + chunk - 1 and attends causally over the cache up to each
// token's position, so a row whose prompt is shorter than promptLen simply
// continues from its own length (what prefill wrote past it is overwritten
// before it is read). The driver keeps positions[b] + chunk <= maxLen.
//
// Logits are [rows, chunk, vocab] for every token of the chunk: the logits
// of the training forward on the same tokens, to f32 rounding.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DRIVER_DECODEPROGRAM_H
#define KILN_RUNTIME_DRIVER_DECODEPROGRAM_H

#include <cstdint>
#include <string>

namespace kiln::driver {

class KernelProfile;

/// One KV cache tensor: shape[0] is rows, shape[1] maxLen.
struct CacheDesc {
  const char *name; ///< e.g. "model.layers.0.self_attn.kv_latent"
  int64_t rank;
  int64_t shape[4];
};

/// The buffers of one call of prefill or step.
struct DecodeBuffers {
  /// Indexed like DecodeDesc::paramNames; read only.
  const float *const *params;
  const int32_t *tokens;    ///< [rows, chunk]
  const int32_t *positions; ///< [rows]
  float *const *caches;     ///< indexed like DecodeDesc::caches, updated in place
  float *logits;            ///< out: [rows, chunk, vocab]
  unsigned char *arena;     ///< the function's arena bytes, 64-byte aligned
  KernelProfile *profile = nullptr;
};

using DecodeFn = bool (*)(const DecodeBuffers &buffers, std::string &error);

struct DecodeDesc {
  /// The Hugging Face names of the parameters the program reads, each one
  /// of the training ModelDesc's parameters (the MTP modules are not read).
  const char *const *paramNames;
  int64_t numParams;
  const CacheDesc *caches;
  int64_t numCaches;
  int64_t rows;      ///< sequences decoded together
  int64_t promptLen; ///< prefill's chunk: the longest prompt it takes
  int64_t maxLen;    ///< prompt + completion tokens a row holds
  int64_t vocabSize;
  uint64_t prefillArenaBytes, stepArenaBytes;
  DecodeFn prefill; ///< chunk = promptLen
  DecodeFn step;    ///< chunk = 1
};

} // namespace kiln::driver

#endif // KILN_RUNTIME_DRIVER_DECODEPROGRAM_H
