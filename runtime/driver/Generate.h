//===- Generate.h - Sampling completions with a decode program -*- C++ -*-===//
//
// `train --generate PROMPTS.jsonl` runs the decode program kilnc emits next
// to the training step (DecodeProgram.h) and writes the completions:
//
//   generate()      the loop, reusable by reinforcement learning: prompts x
//                   samples sequences, decoded DecodeDesc::rows at a time
//                   with a KV cache (one prefill, then one step per token),
//                   each sampled from its own stream (Sampling.h), so the
//                   completions do not depend on rows or on the batching;
//   parsePrompts()  the prompts file: jsonl, one object a line with
//                   "prompt": text (byte-level: token = byte, vocab >= 256)
//                   or "tokens": [ids]; other keys are ignored, blank lines
//                   skipped;
//   completionLine() one line of the output;
//   generateMain()  the mode itself, dispatched from trainMain: the
//                   parameters (seeded as at step 0 of training, or by name
//                   from the latest checkpoint of --checkpoint D), the
//                   prompts, generate(), the output (stdout, or --out
//                   written atomically), one summary line on stderr.
//
// A completion ends at the stop token (kept as its last token; "stop"),
// after maxNewTokens tokens, or when the row is full: prompt plus
// completion never exceed DecodeDesc::maxLen tokens ("length").
//
// Like the rest of runtime/, nothing here throws (generateMain catches
// std::bad_alloc too) and bad input is an error naming where it is.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DRIVER_GENERATE_H
#define KILN_RUNTIME_DRIVER_GENERATE_H

#include "runtime/driver/CommandLine.h"
#include "runtime/driver/DecodeProgram.h"
#include "runtime/driver/Sampling.h"
#include "runtime/driver/TrainStep.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::driver {

struct GenerateOptions {
  SamplingOptions sampling;
  int64_t samples = 1;       ///< completions per prompt, >= 1
  int64_t maxNewTokens = 1;  ///< >= 1; the row's maxLen also ends it
  int32_t stopToken = -1;    ///< -1: none; else in [0, vocab)
  uint64_t seed = 0;
  /// Which draw of the run this is (an RL step); part of every stream's seed.
  uint64_t step = 0;
  /// The index of prompts[0] among the step's prompts, for the streams'
  /// seeds: a data-parallel rank decoding prompts [first, first + n) of a
  /// GRPO step draws what one rank decoding them all would.
  uint64_t firstPrompt = 0;
};

struct Completion {
  int64_t prompt = 0, sample = 0;
  std::vector<int32_t> promptTokens;
  /// The new tokens, the stop token included when it ended the completion.
  std::vector<int32_t> tokens;
  /// logprobs[i]: log softmax(logits / T) of tokens[i] (Sampling.h).
  std::vector<float> logprobs;
  /// True: ended by the stop token; false: by maxNewTokens or maxLen.
  bool stopped = false;
};

/// Checks what the generated file describes (counts, shapes, functions): a
/// kilnc bug otherwise, but a clear message beats a crash.
bool checkDecodeDesc(const DecodeDesc &decode, std::string &error);

/// Decodes prompts.size() x options.samples completions into `out`, in
/// (prompt, sample) order. `params` is indexed like decode.paramNames.
/// Sequence (p, s) draws from SplitMix64(sampleSeed(seed, step, p, s)), one
/// draw per token in position order. Prompts must be non-empty, at most
/// decode.promptLen tokens, with ids in [0, vocabSize); an error names the
/// prompt, as does a failing prefill or step or non-finite logits.
bool generate(const DecodeDesc &decode, const float *const *params,
              const std::vector<std::vector<int32_t>> &prompts, const GenerateOptions &options,
              std::vector<Completion> &out, std::string &error);

/// Parses the prompts file `text` (named `name` in errors, as
/// "name:line: what is wrong"): every prompt non-empty, at most
/// `maxPromptTokens` tokens, ids in [0, vocab); "prompt" needs vocab >= 256.
bool parsePrompts(const std::string &name, const std::string &text, int64_t vocab,
                  int64_t maxPromptTokens, std::vector<std::vector<int32_t>> &prompts,
                  std::string &error);

/// Reads `path` and parses it as parsePrompts does.
bool readPrompts(const std::string &path, int64_t vocab, int64_t maxPromptTokens,
                 std::vector<std::vector<int32_t>> &prompts, std::string &error);

/// One output line (no newline), keys in this order: prompt_index, sample,
/// prompt (vocab 256 only: the prompt's bytes), prompt_tokens, tokens, text
/// (vocab 256 only: the completion's bytes, stop token included), logprobs
/// (each the float's shortest round-trip decimal), finish_reason ("stop" or
/// "length"). Bytes that are not UTF-8 become U+FFFD in the strings.
std::string completionLine(const Completion &completion, int64_t vocab);

/// `train --generate`: runs the mode `options` describe (parsed by
/// parseCommandLine, with generatePath set) with `model`'s parameters and
/// returns the exit code (TrainMain.h: 0, 1 runtime error, 2 usage error).
/// The caller sets the thread count.
int generateMain(const TrainOptions &options, const ModelDesc &model, const DecodeDesc &decode);

} // namespace kiln::driver

#endif // KILN_RUNTIME_DRIVER_GENERATE_H
