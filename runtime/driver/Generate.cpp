//===- Generate.cpp - Sampling completions with a decode program ----------===//
//
// Top to bottom: the decode program's checks, the generation loop, the
// prompts file, the output line, and generateMain (the --generate mode).
//
//===----------------------------------------------------------------------===//

#include "runtime/driver/Generate.h"

#include "runtime/checkpoint/Checkpoint.h"
#include "runtime/driver/Metrics.h"
#include "runtime/driver/Timer.h"
#include "runtime/driver/TrainState.h"
#include "runtime/io/AtomicFile.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/stat.h>
#include <unistd.h>

namespace kiln::driver {

namespace {

using detail::AlignedArray;

constexpr int kExitRuntimeError = 1;
constexpr int kExitUsageError = 2;

int fail(const std::string &message, int code = kExitRuntimeError) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return code;
}

std::string sequenceName(uint64_t sequence, int64_t samples) {
  return "prompt " + std::to_string(sequence / uint64_t(samples)) + " sample " +
         std::to_string(sequence % uint64_t(samples));
}

/// No NaN or +inf, and at least one finite logit (-inf is a masked token).
bool usableLogits(const float *row, int64_t vocab) {
  bool anyFinite = false;
  for (int64_t i = 0; i < vocab; ++i) {
    if (std::isnan(row[i]) || (std::isinf(row[i]) && row[i] > 0))
      return false;
    anyFinite = anyFinite || std::isfinite(row[i]);
  }
  return anyFinite;
}

} // namespace

//===----------------------------------------------------------------------===//
// The decode program
//===----------------------------------------------------------------------===//

bool checkDecodeDesc(const DecodeDesc &d, std::string &error) {
  if (d.rows < 1 || d.promptLen < 1 || d.maxLen <= d.promptLen ||
      d.maxLen > int64_t(kMaxTokenId) || d.vocabSize < 1 ||
      d.vocabSize > int64_t(kMaxTokenId) + 1 || d.numParams < 0 || d.numCaches < 0 ||
      (d.numParams > 0 && !d.paramNames) || (d.numCaches > 0 && !d.caches) || !d.prefill ||
      !d.step) {
    error = "decode program: rows " + std::to_string(d.rows) + ", prompt_len " +
            std::to_string(d.promptLen) + ", max_len " + std::to_string(d.maxLen) + ", vocab " +
            std::to_string(d.vocabSize) + ", " + std::to_string(d.numParams) + " params, " +
            std::to_string(d.numCaches) +
            " caches; expected rows, prompt_len and vocab >= 1, max_len > prompt_len (positions "
            "are int32), and prefill and step functions; regenerate with kilnc";
    return false;
  }
  for (int64_t i = 0; i < d.numParams; ++i)
    if (!d.paramNames[i] || !*d.paramNames[i]) {
      error = "decode program: parameter " + std::to_string(i) +
              " has no name; regenerate with kilnc";
      return false;
    }
  for (int64_t i = 0; i < d.numCaches; ++i) {
    const CacheDesc &c = d.caches[i];
    const std::string where = "decode program: cache " + std::to_string(i) + " '" +
                              (c.name ? c.name : "") + "'";
    if (!c.name || c.rank < 2 || c.rank > 4 || c.shape[0] != d.rows || c.shape[1] != d.maxLen) {
      error = where + ": rank " + std::to_string(c.rank) +
              ", expected a named tensor of rank 2 to 4 shaped [rows " + std::to_string(d.rows) +
              ", max_len " + std::to_string(d.maxLen) + ", ...]; regenerate with kilnc";
      return false;
    }
    uint64_t count = 1;
    for (int64_t k = 0; k < c.rank; ++k)
      if (c.shape[k] < 1 || __builtin_mul_overflow(count, uint64_t(c.shape[k]), &count)) {
        error = where + ": dimension " + std::to_string(k) + " is " + std::to_string(c.shape[k]) +
                ", expected a positive size whose product fits in memory; regenerate with kilnc";
        return false;
      }
  }
  return true;
}

//===----------------------------------------------------------------------===//
// The generation loop
//===----------------------------------------------------------------------===//

bool generate(const DecodeDesc &decode, const float *const *params,
              const std::vector<std::vector<int32_t>> &prompts, const GenerateOptions &options,
              std::vector<Completion> &out, std::string &error) {
  out.clear();
  if (!checkDecodeDesc(decode, error))
    return false;
  if (!validateSampling(options.sampling, error))
    return false;
  const int64_t vocab = decode.vocabSize, R = decode.rows, P = decode.promptLen,
                maxLen = decode.maxLen;
  if (options.samples < 1 || options.maxNewTokens < 1 || options.stopToken < -1 ||
      options.stopToken >= vocab) {
    error = "generate: " + std::to_string(options.samples) + " samples, max_new_tokens " +
            std::to_string(options.maxNewTokens) + ", stop token " +
            std::to_string(options.stopToken) +
            "; expected samples and max_new_tokens >= 1 and a stop token in [0, " +
            std::to_string(vocab) + ") or -1";
    return false;
  }
  for (int64_t i = 0; i < decode.numParams; ++i)
    if (!params || !params[i]) {
      error = std::string("generate: no buffer for parameter '") + decode.paramNames[i] + "'";
      return false;
    }
  for (size_t p = 0; p < prompts.size(); ++p) {
    const std::vector<int32_t> &prompt = prompts[p];
    if (prompt.empty() || int64_t(prompt.size()) > P) {
      error = "prompt " + std::to_string(p) + ": " + std::to_string(prompt.size()) +
              " tokens; expected 1 to " + std::to_string(P) +
              " (the decode program's prompt_len)";
      return false;
    }
    for (size_t t = 0; t < prompt.size(); ++t)
      if (prompt[t] < 0 || prompt[t] >= vocab) {
        error = "prompt " + std::to_string(p) + ": token " + std::to_string(t) + " is " +
                std::to_string(prompt[t]) + "; expected an id from 0 to " +
                std::to_string(vocab - 1);
        return false;
      }
  }
  uint64_t total = 0;
  if (__builtin_mul_overflow(uint64_t(prompts.size()), uint64_t(options.samples), &total) ||
      total > (uint64_t(1) << 40)) {
    error = "generate: " + std::to_string(prompts.size()) + " prompts x " +
            std::to_string(options.samples) + " samples is too many completions";
    return false;
  }
  out.resize(size_t(total));
  if (total == 0)
    return true;

  // The buffers, allocated once: caches, tokens [R, P] (a step uses the
  // first R), positions, logits [R, P, vocab], one arena for both calls.
  std::vector<AlignedArray<float>> caches(size_t(decode.numCaches));
  std::vector<float *> cachePtrs;
  for (int64_t i = 0; i < decode.numCaches; ++i) {
    const CacheDesc &c = decode.caches[i];
    uint64_t count = 1;
    for (int64_t k = 0; k < c.rank; ++k)
      count *= uint64_t(c.shape[k]); // checkDecodeDesc ruled out overflow
    if (!caches[size_t(i)].allocate(count)) {
      error = "out of memory for the KV cache '" + std::string(c.name) + "' (" +
              std::to_string(count) + " floats)";
      return false;
    }
    cachePtrs.push_back(caches[size_t(i)].data());
  }
  uint64_t logitCount = 0;
  AlignedArray<int32_t> tokens, positions;
  AlignedArray<float> logits;
  AlignedArray<unsigned char> arena;
  if (__builtin_mul_overflow(uint64_t(R) * uint64_t(P), uint64_t(vocab), &logitCount) ||
      !tokens.allocate(uint64_t(R) * uint64_t(P)) || !positions.allocate(uint64_t(R)) ||
      !logits.allocate(logitCount) ||
      !arena.allocate(std::max(decode.prefillArenaBytes, decode.stepArenaBytes))) {
    error = "out of memory for the decode buffers (logits of " + std::to_string(R) + " x " +
            std::to_string(P) + " x " + std::to_string(vocab) + " floats, arena of " +
            std::to_string(std::max(decode.prefillArenaBytes, decode.stepArenaBytes)) +
            " bytes)";
    return false;
  }
  DecodeBuffers buffers{};
  buffers.params = params;
  buffers.tokens = tokens.data();
  buffers.positions = positions.data();
  buffers.caches = cachePtrs.data();
  buffers.logits = logits.data();
  buffers.arena = arena.data();

  struct Row {
    Completion *completion = nullptr; // null: a padding row
    uint64_t sequence = 0;
    int64_t length = 0; // tokens in the row: prompt + completion
    bool active = false;
    data::SplitMix64 rng{0};
  };
  std::vector<Row> rows(static_cast<size_t>(R));
  TokenSampler sampler(options.sampling);

  // Samples row b's next token from `row` (its logits) and decides whether
  // the row goes on.
  auto accept = [&](Row &r, const float *row) {
    Completion &c = *r.completion;
    if (!usableLogits(row, vocab)) {
      error = sequenceName(r.sequence, options.samples) + ": the logits at position " +
              std::to_string(r.length - 1) +
              " are not finite (NaN or infinity); the parameters have diverged or overflow";
      return false;
    }
    const SampledToken t = sampler.sample(row, vocab, r.rng);
    c.tokens.push_back(t.token);
    c.logprobs.push_back(t.logprob);
    ++r.length;
    if (t.token == options.stopToken) {
      c.stopped = true;
      r.active = false;
    } else if (int64_t(c.tokens.size()) >= options.maxNewTokens || r.length >= maxLen) {
      r.active = false; // the next token's position would reach maxLen
    }
    return true;
  };

  for (uint64_t first = 0; first < total; first += uint64_t(R)) {
    const uint64_t count = std::min(uint64_t(R), total - first);
    const std::string batch =
        sequenceName(first, options.samples) +
        (count > 1 ? " to " + sequenceName(first + count - 1, options.samples) : std::string());
    // A fresh cache per batch, so nothing of another batch can leak in.
    for (size_t i = 0; i < caches.size(); ++i)
      std::memset(caches[i].data(), 0, size_t(caches[i].size()) * sizeof(float));
    std::fill(tokens.data(), tokens.data() + R * P, 0);
    std::fill(positions.data(), positions.data() + R, 0);
    for (int64_t b = 0; b < R; ++b) {
      Row &r = rows[size_t(b)];
      if (uint64_t(b) >= count) { // padding: the 1-token prompt [0], dropped
        r = Row{};
        continue;
      }
      r.sequence = first + uint64_t(b);
      r.completion = &out[size_t(r.sequence)];
      Completion &c = *r.completion;
      c.prompt = int64_t(r.sequence / uint64_t(options.samples));
      c.sample = int64_t(r.sequence % uint64_t(options.samples));
      c.promptTokens = prompts[size_t(c.prompt)];
      std::copy(c.promptTokens.begin(), c.promptTokens.end(), tokens.data() + b * P);
      r.length = int64_t(c.promptTokens.size());
      r.active = true;
      r.rng = data::SplitMix64(
          sampleSeed(options.seed, options.step, options.firstPrompt + uint64_t(c.prompt),
                     uint64_t(c.sample)));
    }
    std::string callError;
    if (!decode.prefill(buffers, callError)) {
      error = "decode prefill of " + batch + ": " + callError;
      return false;
    }
    bool anyActive = false;
    for (int64_t b = 0; b < R; ++b) {
      Row &r = rows[size_t(b)];
      if (!r.active)
        continue;
      if (!accept(r, logits.data() + uint64_t(b * P + r.length - 1) * uint64_t(vocab)))
        return false;
      anyActive = anyActive || r.active;
    }
    while (anyActive) {
      // Each active row feeds its last token at its position; a finished or
      // padding row feeds token 0 at position 0 (of its own cache, no longer
      // read), so no row ever writes past maxLen.
      for (int64_t b = 0; b < R; ++b) {
        const Row &r = rows[size_t(b)];
        tokens.data()[b] = r.active ? r.completion->tokens.back() : 0;
        positions.data()[b] = r.active ? int32_t(r.length - 1) : 0;
      }
      if (!decode.step(buffers, callError)) {
        error = "decode step of " + batch + ": " + callError;
        return false;
      }
      anyActive = false;
      for (int64_t b = 0; b < R; ++b) {
        Row &r = rows[size_t(b)];
        if (!r.active)
          continue;
        if (!accept(r, logits.data() + uint64_t(b) * uint64_t(vocab)))
          return false;
        anyActive = anyActive || r.active;
      }
    }
  }
  return true;
}

//===----------------------------------------------------------------------===//
// The prompts file
//===----------------------------------------------------------------------===//

bool parsePrompts(const std::string &name, const std::string &text, int64_t vocab,
                  int64_t maxPromptTokens, std::vector<std::vector<int32_t>> &prompts,
                  std::string &error) {
  using nlohmann::json;
  prompts.clear();
  const std::string expected =
      "expected an object like {\"prompt\": \"text\"} or {\"tokens\": [1, 2, 3]}";
  const std::string idRange = "an integer id from 0 to " + std::to_string(vocab - 1);
  uint64_t lineNumber = 0;
  for (size_t begin = 0; begin < text.size();) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos)
      end = text.size();
    ++lineNumber;
    const std::string where = name + ":" + std::to_string(lineNumber) + ": ";
    std::string line = text.substr(begin, end - begin);
    begin = end + 1;
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    if (line.find_first_not_of(" \t\r\f\v") == std::string::npos)
      continue; // blank
    if (line.find('\0') != std::string::npos) {
      error = where + "contains a NUL byte; " + expected;
      return false;
    }
    const json j = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      error = where + "not valid JSON (or not UTF-8); " + expected;
      return false;
    }
    if (!j.is_object()) {
      error = where + "a JSON " + j.type_name() + "; " + expected;
      return false;
    }
    const auto prompt = j.find("prompt"), ids = j.find("tokens");
    if (prompt != j.end() && ids != j.end()) {
      error = where + "has both \"prompt\" and \"tokens\"; give one of them";
      return false;
    }
    if (prompt == j.end() && ids == j.end()) {
      error = where + "has neither \"prompt\" nor \"tokens\"; " + expected;
      return false;
    }
    std::vector<int32_t> tokens;
    if (prompt != j.end()) {
      if (!prompt->is_string()) {
        error = where + "\"prompt\" is a " + prompt->type_name() + "; expected a string";
        return false;
      }
      if (vocab < 256) {
        error = where + "\"prompt\" text is tokenized byte-level (a token per byte), which "
                        "needs a vocabulary of at least 256 ids, and this model has " +
                std::to_string(vocab) + "; give \"tokens\": [ids] instead";
        return false;
      }
      for (unsigned char byte : prompt->get_ref<const std::string &>())
        tokens.push_back(int32_t(byte));
    } else {
      if (!ids->is_array()) {
        error = where + "\"tokens\" is a " + ids->type_name() + "; expected an array of ids";
        return false;
      }
      for (size_t k = 0; k < ids->size(); ++k) {
        const json &v = (*ids)[k];
        int64_t id = -1;
        bool ok = false;
        if (v.is_number_unsigned()) {
          const uint64_t u = v.get<uint64_t>();
          ok = u < uint64_t(vocab);
          id = ok ? int64_t(u) : -1;
        } else if (v.is_number_integer()) {
          id = v.get<int64_t>();
          ok = id >= 0 && id < vocab;
        }
        if (!ok) {
          error = where + "\"tokens\"[" + std::to_string(k) + "] is " + v.dump() +
                  "; expected " + idRange;
          return false;
        }
        tokens.push_back(int32_t(id));
      }
    }
    if (tokens.empty()) {
      error = where + "the prompt is empty; give at least one token";
      return false;
    }
    if (int64_t(tokens.size()) > maxPromptTokens) {
      error = where + "the prompt has " + std::to_string(tokens.size()) +
              " tokens, but the decode program takes at most " +
              std::to_string(maxPromptTokens) + " (its prompt_len); shorten it";
      return false;
    }
    prompts.push_back(std::move(tokens));
  }
  if (prompts.empty()) {
    error = name + ": no prompts (the file is empty or blank); " + expected + " per line";
    return false;
  }
  return true;
}

bool readPrompts(const std::string &path, int64_t vocab, int64_t maxPromptTokens,
                 std::vector<std::vector<int32_t>> &prompts, std::string &error) {
  struct stat info;
  if (::stat(path.c_str(), &info) != 0) {
    error = "--generate " + path + ": cannot read the prompts file: " + std::strerror(errno);
    return false;
  }
  if (S_ISDIR(info.st_mode)) {
    error = "--generate " + path + ": is a directory; pass the prompts jsonl file";
    return false;
  }
  std::FILE *file = std::fopen(path.c_str(), "rb");
  if (!file) {
    error = "--generate " + path + ": cannot open the prompts file: " + std::strerror(errno);
    return false;
  }
  std::string text;
  char chunk[1 << 16];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), file)) > 0)
    text.append(chunk, n);
  const bool failed = std::ferror(file) != 0;
  const int savedErrno = errno;
  std::fclose(file);
  if (failed) {
    error = "--generate " + path + ": error reading the prompts file: " +
            std::strerror(savedErrno);
    return false;
  }
  return parsePrompts(path, text, vocab, maxPromptTokens, prompts, error);
}

//===----------------------------------------------------------------------===//
// Output
//===----------------------------------------------------------------------===//

namespace {

/// The double whose shortest decimal is `value`'s shortest round-trip
/// decimal as a float, so the JSON shows "-1.2345678", not the float's
/// exact 17-digit double expansion.
double shortFloat(float value) {
  if (!std::isfinite(value))
    return double(value); // nlohmann writes null
  char text[32];
  for (int digits = 1; digits <= 9; ++digits) {
    std::snprintf(text, sizeof(text), "%.*g", digits, double(value));
    if (std::strtof(text, nullptr) == value)
      return std::strtod(text, nullptr);
  }
  return double(value);
}

std::string bytesOf(const std::vector<int32_t> &tokens) {
  std::string bytes;
  for (int32_t t : tokens)
    bytes.push_back(char(static_cast<unsigned char>(t)));
  return bytes;
}

} // namespace

std::string completionLine(const Completion &c, int64_t vocab) {
  nlohmann::ordered_json j;
  const bool bytes = vocab == 256;
  j["prompt_index"] = c.prompt;
  j["sample"] = c.sample;
  if (bytes)
    j["prompt"] = bytesOf(c.promptTokens);
  j["prompt_tokens"] = c.promptTokens;
  j["tokens"] = c.tokens;
  if (bytes)
    j["text"] = bytesOf(c.tokens);
  nlohmann::ordered_json logprobs = nlohmann::ordered_json::array();
  for (float l : c.logprobs)
    logprobs.push_back(shortFloat(l));
  j["logprobs"] = std::move(logprobs);
  j["finish_reason"] = c.stopped ? "stop" : "length";
  return j.dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::ordered_json::error_handler_t::replace);
}

//===----------------------------------------------------------------------===//
// --generate
//===----------------------------------------------------------------------===//

namespace {

/// The size of the MPI job this process was started in (1 alone).
int launchedRanks() {
  for (const char *name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
    if (const char *value = std::getenv(name)) {
      const int n = std::atoi(value);
      if (n > 1)
        return n;
    }
  return 1;
}

int runGenerate(const TrainOptions &options, const ModelDesc &model, const DecodeDesc &decode) {
  // 1. One process: the decode program is not split over ranks.
  if (const int ranks = launchedRanks(); ranks > 1)
    return fail("--generate runs in one process, but this one was started as one of " +
                std::to_string(ranks) + " ranks (mpirun); run it without mpirun");

  // 2. The programs and the options against them.
  std::string error;
  if (!checkDecodeDesc(decode, error))
    return fail(error);
  if (decode.vocabSize != model.vocabSize || model.pp != 1)
    return fail("decode program: vocab " + std::to_string(decode.vocabSize) +
                " for a training program of vocab " + std::to_string(model.vocabSize) +
                " and pp " + std::to_string(model.pp) +
                "; expected the same vocab and one training program; regenerate with kilnc");
  const uint64_t longest = uint64_t(decode.maxLen - 1);
  if (options.maxNewTokens > longest)
    return fail("--max-new-tokens " + std::to_string(options.maxNewTokens) +
                ": this program's decode holds " + std::to_string(decode.maxLen) +
                " tokens per row, prompt included, so at most " + std::to_string(longest) +
                " new ones; pass at most that",
                kExitUsageError);
  if (options.stopToken >= decode.vocabSize)
    return fail("--stop-token " + std::to_string(options.stopToken) + ": the vocabulary has " +
                    std::to_string(decode.vocabSize) + " ids; pass one from 0 to " +
                    std::to_string(decode.vocabSize - 1) + ", or -1 for none",
                kExitUsageError);
  GenerateOptions generateOptions;
  generateOptions.sampling.temperature = options.temperature;
  generateOptions.sampling.topP = options.topP;
  generateOptions.sampling.topK = int64_t(options.topK);
  generateOptions.samples = int64_t(options.samples);
  generateOptions.maxNewTokens = options.maxNewTokens ? int64_t(options.maxNewTokens)
                                                      : int64_t(longest);
  generateOptions.stopToken = int32_t(options.stopToken);
  generateOptions.seed = options.seed;
  if (!validateSampling(generateOptions.sampling, error))
    return fail(error, kExitUsageError);

  // 3. The prompts, and where the completions go.
  std::vector<std::vector<int32_t>> prompts;
  if (!readPrompts(options.generatePath, decode.vocabSize, decode.promptLen, prompts, error))
    return fail(error);
  if (!options.outPath.empty() && !io::checkWritablePath("--out", options.outPath, error))
    return fail(error);

  // 4. The parameters: the whole model, seeded as at step 0 of training or
  // loaded by name from the checkpoint (its AdamW moments are dropped).
  std::vector<detail::ParamLayout> layouts;
  if (!detail::describeParams(model, detail::Placement{}, layouts, error))
    return fail(error);
  detail::TrainState state;
  const std::string &ckptDir = options.loadCheckpoint;
  if (!detail::initState(layouts, options.seed, /*seeded=*/ckptDir.empty(), state, error))
    return fail(error);
  std::string source = "the initial model (seed " + std::to_string(options.seed) + ")";
  if (!ckptDir.empty()) {
    if (!checkpoint::hasLatest(ckptDir))
      return fail("--checkpoint " + ckptDir + ": no " + ckptDir +
                  "/latest to load; pass the --checkpoint-dir of a training run that saved "
                  "a checkpoint");
    checkpoint::Checkpoint ckpt;
    if (!detail::resumeState(ckptDir, model, layouts, state, /*rank=*/0, ckpt, error))
      return fail(error);
    state.expAvg.clear();
    state.expAvgSq.clear();
    source = ckptDir + "/" + checkpoint::stepDirName(ckpt.step);
  }
  std::vector<size_t> indices;
  std::string missing;
  if (!detail::layoutIndicesByName(decode.paramNames, decode.numParams, layouts, indices,
                                   missing))
    return fail("decode program: parameter '" + missing +
                "' is not one of the training program's; regenerate both with kilnc");
  std::vector<const float *> params;
  for (size_t i : indices)
    params.push_back(state.params[i].data());

  // 5. Generate.
  std::vector<Completion> completions;
  Timer timer;
  if (!generate(decode, params.data(), prompts, generateOptions, completions, error))
    return fail(error);
  const double seconds = timer.seconds();

  // 6. The completions, then one summary line.
  std::string text;
  uint64_t generated = 0, stopped = 0;
  for (const Completion &c : completions) {
    text += completionLine(c, decode.vocabSize);
    text += '\n';
    generated += c.tokens.size();
    stopped += c.stopped;
  }
  if (!options.outPath.empty()) {
    if (!io::writeFileAtomic(options.outPath, {{text.data(), text.size()}}, error))
      return fail("--out " + error);
  } else if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() ||
             std::fflush(stdout) != 0) {
    return fail(std::string("writing the completions to stdout: ") + std::strerror(errno));
  }
  std::fprintf(stderr,
               "generated %llu completion%s (%zu prompt%s x %llu) from %s | %llu tokens, %llu "
               "stopped, %llu at the length limit | %.2f s | %s tok/s%s%s\n",
               (unsigned long long)completions.size(), completions.size() == 1 ? "" : "s",
               prompts.size(), prompts.size() == 1 ? "" : "s",
               (unsigned long long)options.samples, source.c_str(),
               (unsigned long long)generated, (unsigned long long)stopped,
               (unsigned long long)(completions.size() - stopped), seconds,
               formatRate(seconds > 0 ? double(generated) / seconds : 0).c_str(),
               options.outPath.empty() ? "" : " | ", options.outPath.c_str());
  return 0;
}

} // namespace

int generateMain(const TrainOptions &options, const ModelDesc &model, const DecodeDesc &decode) {
  // The one net for what slips through (std::bad_alloc).
  try {
    return runGenerate(options, model, decode);
  } catch (const std::exception &e) {
    return fail(std::string("unexpected failure: ") + e.what());
  } catch (...) {
    return fail("unexpected failure");
  }
}

} // namespace kiln::driver
