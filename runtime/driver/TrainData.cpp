//===- TrainData.cpp - The token stream a training run reads --------------===//

#include "runtime/driver/TrainData.h"
#include "runtime/data/LlmcShard.h"
#include "runtime/data/SyntheticCorpus.h"
#include "runtime/driver/Curriculum.h"
#include "runtime/driver/TrainMain.h"

#include <algorithm>
#include <fstream>
#include <iterator>

namespace kiln::driver {

std::optional<data::TokenLoader> openTrainingData(const TrainOptions &options,
                                                  const ModelDesc &model,
                                                  const BatchSchedule &schedule, uint64_t seed,
                                                  int ranks, std::string &error) {
  const uint64_t rows = uint64_t(model.batch) * uint64_t(ranks),
                 seqLen = uint64_t(model.seqLen);
  const uint64_t vocab = uint64_t(model.vocabSize);
  if (!options.dataPath.empty()) {
    if (model.sft) {
      // SFT reads its answer mask from FILE.mask (one 0/1 byte per token;
      // kiln-corpus --distill writes both), and holds the data in memory.
      const std::string maskPath = options.dataPath + ".mask";
      std::optional<data::LlmcShard> shard = data::LlmcShard::open(options.dataPath, error, vocab);
      if (!shard)
        return std::nullopt;
      std::ifstream maskFile(maskPath, std::ios::binary);
      if (!maskFile) {
        error = "--data " + options.dataPath + ": spec '" + model.specName +
                "' is SFT (loss only on answer tokens) and needs the answer mask in " + maskPath +
                " (one 0/1 byte per token, as kiln-corpus --distill writes); run without --data "
                "to train on the built-in synthetic corpus";
        return std::nullopt;
      }
      std::vector<uint8_t> mask((std::istreambuf_iterator<char>(maskFile)),
                                std::istreambuf_iterator<char>());
      if (mask.size() != shard->numTokens() ||
          std::any_of(mask.begin(), mask.end(), [](uint8_t m) { return m > 1; })) {
        error = maskPath + ": expected " + std::to_string(shard->numTokens()) +
                " bytes of 0 or 1 (one per token of " + options.dataPath + "), got " +
                std::to_string(mask.size()) + " bytes" +
                (mask.size() == shard->numTokens() ? " with other values" : "");
        return std::nullopt;
      }
      std::vector<uint16_t> tokens(shard->numTokens());
      for (uint64_t i = 0; i < tokens.size(); ++i)
        tokens[i] = shard->token(i);
      return data::TokenLoader::fromMemory(options.dataPath + " (with " + maskPath + ")",
                                           std::move(tokens), std::move(mask), rows, seqLen,
                                           error, vocab);
    }
    return data::TokenLoader::open(options.dataPath, rows, seqLen, error, vocab);
  }
  if (vocab < data::kCorpusVocabSize) {
    error = "spec '" + std::string(model.specName) + "' has a vocabulary of " +
            std::to_string(vocab) + ", but the built-in synthetic corpus is byte-level (" +
            std::to_string(data::kCorpusVocabSize) + " ids); pass --data FILE";
    return std::nullopt;
  }
  data::CorpusTokens corpus;
  data::AnswerFormat format;
  if (!data::parseAnswerFormat(options.corpusFormat, format, error) ||
      !curriculumCorpus(
          model, seed, [&](uint64_t step) { return schedule.consumedBefore(step) * seqLen; },
          kSyntheticTokens, format, corpus, error))
    return std::nullopt;
  return data::TokenLoader::fromMemory(
      "synthetic arithmetic corpus (seed " + std::to_string(seed) +
          (options.corpusFormat != "plain" ? ", " + options.corpusFormat + " answers"
                                           : std::string()) +
          (model.numCurriculum ? ", a curriculum of " + std::to_string(model.numCurriculum) +
                                     " stages"
                               : std::string()) +
          ")",
      std::move(corpus.tokens),
      std::move(corpus.answerMask), rows, seqLen, error, vocab);
}

} // namespace kiln::driver
