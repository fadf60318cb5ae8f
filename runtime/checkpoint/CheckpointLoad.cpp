//===- CheckpointLoad.cpp - resume from any layout's checkpoint -----------===//
//
// Reads the checkpoint `latest` names: a step directory (the index, the
// model files it maps, every rank's optimizer slices reassembled by name) or
// a single step file of older Kiln versions. Everything is checked before the
// caller sees a value: names, shapes, the spec fingerprint, that the
// optimizer slices tile each tensor exactly, and that every rank's file is of
// the same step and agrees on the RNG state and data position.
//
//===----------------------------------------------------------------------===//

#include "runtime/checkpoint/Checkpoint.h"
#include "runtime/io/OneLine.h"
#include "runtime/safetensors/Safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <memory>
#include <optional>
#include <stdexcept>
#include <sys/stat.h>
#include <tuple>

namespace kiln::checkpoint {

namespace {

constexpr const char *kIndexName = "model.safetensors.index.json";
/// An index lists names and file names; anything larger is not one.
constexpr uint64_t kMaxIndexBytes = 256ull << 20;

bool parseUnsigned(const std::map<std::string, std::string> &meta, const std::string &key,
                   const std::string &file, uint64_t &out, std::string &error) {
  auto it = meta.find(key);
  if (it == meta.end() || it->second.empty() ||
      it->second.find_first_not_of("0123456789") != std::string::npos) {
    error = file + ": metadata '" + key +
            "' is missing or not an unsigned integer; is this a "
            "Kiln training checkpoint?";
    return false;
  }
  errno = 0;
  out = std::strtoull(it->second.c_str(), nullptr, 10);
  if (errno == ERANGE) {
    error = file + ": metadata '" + key + "' is out of range";
    return false;
  }
  return true;
}

bool checkFingerprint(const std::string &file, const std::string &found,
                      const std::string &expected, std::string &error) {
  if (found == expected)
    return true;
  error = file + ": written by a run of another spec (fingerprint '" + found + "', this run is '" +
          expected + "'); resume with the spec that wrote it or use another checkpoint directory";
  return false;
}

bool isOptimizerName(const std::string &name) { return name.rfind("optimizer.", 0) == 0; }

/// A file name from the index: a plain name in the step directory.
bool isPlainFileName(const std::string &name) {
  return !name.empty() && name.find('/') == std::string::npos && name != "." && name != "..";
}

std::string notInModel(const std::string &file, const std::string &tensor) {
  return file + ": tensor '" + tensor +
         "' is not part of this model; is the checkpoint from another spec?";
}

/// "step-" followed by exactly 8 digits.
bool isStepStem(const std::string &name) {
  return name.size() == 13 && name.rfind("step-", 0) == 0 &&
         name.find_first_not_of("0123456789", 5) == std::string::npos;
}

/// Opens `path` and checks its metadata says it is a Kiln checkpoint file.
std::optional<safetensors::Reader> openKilnFile(const std::string &path, const char *whatItIs,
                                                std::string &error) {
  std::optional<safetensors::Reader> reader = safetensors::Reader::open(path, error);
  if (!reader)
    return std::nullopt;
  auto format = reader->metadata().find("format");
  if (format == reader->metadata().end() || format->second != "kiln-checkpoint") {
    error = path + ": not a Kiln " + whatItIs + " (metadata format is not 'kiln-checkpoint')";
    return std::nullopt;
  }
  return reader;
}

/// The loss scaler's state of an optimizer file: absent (a program without
/// loss scaling wrote it), or all three keys, the scale finite and > 0.
bool parseScaler(const std::map<std::string, std::string> &meta, const std::string &file,
                 LossScalerState &out, std::string &error) {
  auto scale = meta.find("loss_scale");
  if (scale == meta.end())
    return true;
  char *end = nullptr;
  errno = 0;
  out.scale = std::strtof(scale->second.c_str(), &end);
  if (scale->second.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(out.scale) ||
      !(out.scale > 0)) {
    error = file + ": metadata 'loss_scale' is '" + scale->second +
            "', not a finite f32 above 0";
    return false;
  }
  out.present = true;
  return parseUnsigned(meta, "growth_tracker", file, out.growthTracker, error) &&
         parseUnsigned(meta, "optimizer_updates", file, out.optimizerUpdates, error);
}

//===----------------------------------------------------------------------===//
// Older Kiln versions: one step-NNNNNNNN.safetensors file
//===----------------------------------------------------------------------===//

bool loadSingleFile(const std::string &path, const std::vector<Tensor> &layout,
                    const std::string &specFingerprint, Checkpoint &ckpt, std::string &error) {
  std::optional<safetensors::Reader> reader = openKilnFile(path, "training checkpoint", error);
  if (!reader)
    return false;
  const auto &meta = reader->metadata();
  Checkpoint loaded;
  if (!parseUnsigned(meta, "step", path, loaded.step, error) ||
      !parseUnsigned(meta, "rng_state", path, loaded.rngState, error) ||
      !parseUnsigned(meta, "data_position", path, loaded.dataPosition, error))
    return false;
  auto fingerprint = meta.find("spec_fingerprint");
  loaded.specFingerprint = fingerprint == meta.end() ? "" : fingerprint->second;
  if (!checkFingerprint(path, loaded.specFingerprint, specFingerprint, error))
    return false;
  std::map<std::string, size_t> wanted;
  for (const Tensor &want : layout) {
    std::vector<double> values;
    if (!reader->readAsDouble(want.name, values, error, &want.shape))
      return false;
    loaded.tensors.push_back(
        {want.name, want.shape, std::vector<float>(values.begin(), values.end())});
    wanted[want.name] = 0;
  }
  for (const safetensors::TensorInfo &info : reader->tensors())
    if (!wanted.count(info.name)) {
      error = notInModel(path, info.name);
      return false;
    }
  ckpt = std::move(loaded);
  return true;
}

//===----------------------------------------------------------------------===//
// Step directories
//===----------------------------------------------------------------------===//

/// The parts of the index the loader uses.
struct Index {
  uint64_t step = 0;
  std::string specFingerprint;
  std::map<std::string, std::string> weightMap;
  std::vector<std::string> optimizerFiles;
};

bool readIndex(const std::string &path, Index &index, std::string &error) {
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f) {
    error = path + ": cannot read: " + std::strerror(errno) +
            "; the step directory `latest` names is incomplete";
    return false;
  }
  std::string text;
  char buffer[65536];
  for (size_t n; (n = std::fread(buffer, 1, sizeof(buffer), f)) > 0;) {
    if (text.size() + n > kMaxIndexBytes) {
      std::fclose(f);
      error = path + ": larger than " + std::to_string(kMaxIndexBytes) + " bytes; not an index";
      return false;
    }
    text.append(buffer, n);
  }
  std::fclose(f);
  const std::string expected =
      "; expected Hugging Face's index with \"weight_map\" and Kiln's \"kiln\" object "
      "(format, step, spec_fingerprint, optimizer_files)";
  try {
    nlohmann::json doc = nlohmann::json::parse(text);
    const nlohmann::json &kiln = doc.at("kiln");
    if (kiln.at("format").get<std::string>() != "kiln-checkpoint") {
      error = path + ": kiln.format is not 'kiln-checkpoint'" + expected;
      return false;
    }
    index.step = kiln.at("step").get<uint64_t>();
    index.specFingerprint = kiln.at("spec_fingerprint").get<std::string>();
    for (const nlohmann::json &file : kiln.at("optimizer_files"))
      index.optimizerFiles.push_back(file.get<std::string>());
    for (const auto &[name, file] : doc.at("weight_map").items())
      index.weightMap[name] = file.get<std::string>();
  } catch (const std::exception &e) {
    error = path + ": not a valid checkpoint index (" + e.what() + ")" + expected;
    return false;
  }
  for (const auto &[name, file] : index.weightMap)
    if (!isPlainFileName(file)) {
      error = path + ": weight_map sends '" + name + "' to '" + file +
              "', which is not a file name in the step directory";
      return false;
    }
  for (const std::string &file : index.optimizerFiles)
    if (!isPlainFileName(file)) {
      error = path + ": optimizer file '" + file + "' is not a file name in the step directory";
      return false;
    }
  if (index.optimizerFiles.empty()) {
    error = path + ": lists no optimizer files" + expected;
    return false;
  }
  return true;
}

/// Where each element of an optimizer tensor came from, to prove the slices
/// of all ranks tile it exactly: (offset, count, file) of each slice.
using Coverage = std::vector<std::tuple<uint64_t, uint64_t, std::string>>;

bool checkCoverage(const std::string &stepDir, const std::string &name, uint64_t total,
                   Coverage &slices, std::string &error) {
  std::sort(slices.begin(), slices.end());
  uint64_t next = 0;
  for (const auto &[offset, count, file] : slices) {
    if (offset > next) {
      error = stepDir + ": optimizer state '" + name + "' is incomplete: elements [" +
              std::to_string(next) + ", " + std::to_string(offset) +
              ") are in no optimizer file; a rank's file is missing from the index";
      return false;
    }
    if (offset < next) {
      error = stepDir + "/" + file + ": its slice of '" + name + "' at element " +
              std::to_string(offset) + " overlaps another rank's (which ends at " +
              std::to_string(next) + ")";
      return false;
    }
    next = offset + count;
  }
  if (next != total) {
    error = stepDir + ": optimizer state '" + name + "' is incomplete: elements [" +
            std::to_string(next) + ", " + std::to_string(total) + ") are in no optimizer file";
    return false;
  }
  return true;
}

/// Reads one rank's optimizer file into the whole tensors of `loaded`
/// (indexed by `position`), recording coverage.
bool readOptimizerFile(const std::string &path, int rank, int ranks, const Index &index,
                       const std::map<std::string, size_t> &position, Checkpoint &loaded,
                       std::vector<uint64_t> &dataPositions, std::map<std::string, Coverage> &cover,
                       int rankStateOf, std::string &error) {
  std::optional<safetensors::Reader> reader = openKilnFile(path, "optimizer file", error);
  if (!reader)
    return false;
  const auto &meta = reader->metadata();
  uint64_t step, rngState, dataPosition, fileRank, fileRanks;
  if (!parseUnsigned(meta, "step", path, step, error) ||
      !parseUnsigned(meta, "rng_state", path, rngState, error) ||
      !parseUnsigned(meta, "data_position", path, dataPosition, error) ||
      !parseUnsigned(meta, "rank", path, fileRank, error) ||
      !parseUnsigned(meta, "ranks", path, fileRanks, error))
    return false;
  if (step != index.step || fileRank != uint64_t(rank) || fileRanks != uint64_t(ranks)) {
    error = path + ": holds rank " + std::to_string(fileRank) + " of " + std::to_string(fileRanks) +
            " at step " + std::to_string(step) + ", but the index lists it as rank " +
            std::to_string(rank) + " of " + std::to_string(ranks) + " at step " +
            std::to_string(index.step) + "; the step directory mixes files of different runs";
    return false;
  }
  auto fingerprint = meta.find("spec_fingerprint");
  if (!checkFingerprint(path, fingerprint == meta.end() ? "" : fingerprint->second,
                        index.specFingerprint, error))
    return false;
  if (rank == 0)
    loaded.rngState = rngState;
  else if (rngState != loaded.rngState) {
    error = path + ": RNG state " + std::to_string(rngState) + " differs from rank 0's " +
            std::to_string(loaded.rngState);
    return false;
  }
  LossScalerState scaler;
  if (!parseScaler(meta, path, scaler, error))
    return false;
  if (rank == 0) {
    loaded.scaler = scaler;
  } else if (scaler.present != loaded.scaler.present || scaler.scale != loaded.scaler.scale ||
             scaler.growthTracker != loaded.scaler.growthTracker ||
             scaler.optimizerUpdates != loaded.scaler.optimizerUpdates) {
    error = path + ": its loss scaler state differs from rank 0's; the step directory mixes "
                   "files of different runs";
    return false;
  }
  dataPositions.push_back(dataPosition);

  std::map<std::string, std::pair<uint64_t, std::vector<int64_t>>> slices;
  auto slicesText = meta.find("slices");
  try {
    if (slicesText == meta.end())
      throw std::runtime_error("no 'slices' metadata");
    const nlohmann::json parsed = nlohmann::json::parse(slicesText->second);
    for (const auto &[name, s] : parsed.items())
      slices[name] = {s.at("offset").get<uint64_t>(), s.at("shape").get<std::vector<int64_t>>()};
  } catch (const std::exception &e) {
    error = path + ": metadata 'slices' is not valid (" + e.what() +
            "); expected {name: {\"offset\": N, \"shape\": [...]}}";
    return false;
  }
  std::set<std::string> rankStateNames;
  if (auto listed = meta.find("rank_state"); listed != meta.end()) {
    try {
      for (const auto &name : nlohmann::json::parse(listed->second))
        rankStateNames.insert(name.get<std::string>());
    } catch (const std::exception &e) {
      error = path + ": metadata 'rank_state' is not valid (" + e.what() +
              "); expected a list of tensor names";
      return false;
    }
  }
  for (const safetensors::TensorInfo &info : reader->tensors()) {
    if (info.name.rfind("rank_state.", 0) == 0) {
      if (!rankStateNames.count(info.name)) {
        error = path + ": rank state '" + info.name + "' is not listed in the 'rank_state' metadata";
        return false;
      }
      if (rank != rankStateOf)
        continue;
      std::vector<double> values;
      if (!reader->readAsDouble(info.name, values, error))
        return false;
      loaded.rankState.push_back({info.name, info.shape, {values.begin(), values.end()}});
      continue;
    }
    auto where = position.find(info.name);
    if (where == position.end() || !isOptimizerName(info.name)) {
      error = notInModel(path, info.name);
      return false;
    }
    auto slice = slices.find(info.name);
    Tensor &whole = loaded.tensors[where->second];
    if (slice == slices.end() || info.shape.size() != 1) {
      error = path + ": tensor '" + info.name +
              "' is not a 1-D slice described in the 'slices' metadata";
      return false;
    }
    const auto &[offset, shape] = slice->second;
    const uint64_t count = uint64_t(info.shape[0]), total = elementCount(whole.shape);
    if (shape != whole.shape) {
      error = path + ": '" + info.name + "' is a slice of a " + safetensors::shapeToString(shape) +
              " tensor, but this model's is " + safetensors::shapeToString(whole.shape);
      return false;
    }
    if (offset > total || count > total - offset) {
      error = path + ": slice of '" + info.name + "' at element " + std::to_string(offset) +
              " with " + std::to_string(count) + " elements ends past the tensor's " +
              std::to_string(total);
      return false;
    }
    std::vector<double> values;
    if (!reader->readAsDouble(info.name, values, error))
      return false;
    std::copy(values.begin(), values.end(), whole.values.begin() + offset);
    cover[info.name].emplace_back(offset, count, path.substr(path.rfind('/') + 1));
  }
  return true;
}

bool loadStepDirectory(const std::string &stepDir, const std::vector<Tensor> &layout,
                       const std::string &specFingerprint, Checkpoint &ckpt, int rankStateOf,
                       std::string &error) {
  const std::string indexPath = stepDir + "/" + kIndexName;
  Index index;
  if (!readIndex(indexPath, index, error) ||
      !checkFingerprint(indexPath, index.specFingerprint, specFingerprint, error))
    return false;

  Checkpoint loaded;
  loaded.step = index.step;
  loaded.specFingerprint = index.specFingerprint;
  std::map<std::string, size_t> position;
  for (const Tensor &want : layout) {
    position[want.name] = loaded.tensors.size();
    loaded.tensors.push_back({want.name, want.shape, {}});
  }
  for (const auto &[name, file] : index.weightMap)
    if (!position.count(name) || isOptimizerName(name)) {
      error = notInModel(indexPath, name);
      return false;
    }

  // Model tensors, each from the file the index maps it to.
  std::map<std::string, std::unique_ptr<safetensors::Reader>> readers;
  for (Tensor &t : loaded.tensors) {
    if (isOptimizerName(t.name))
      continue;
    auto file = index.weightMap.find(t.name);
    if (file == index.weightMap.end()) {
      error = indexPath + ": no tensor '" + t.name +
              "' in weight_map; the checkpoint is of another model";
      return false;
    }
    std::unique_ptr<safetensors::Reader> &reader = readers[file->second];
    const std::string path = stepDir + "/" + file->second;
    if (!reader) {
      std::optional<safetensors::Reader> opened = safetensors::Reader::open(path, error);
      if (!opened)
        return false;
      uint64_t fileStep;
      if (!parseUnsigned(opened->metadata(), "kiln_step", path, fileStep, error))
        return false;
      if (fileStep != index.step) {
        error = path + ": of step " + std::to_string(fileStep) + ", but the index is of step " +
                std::to_string(index.step) + "; the step directory mixes files of different runs";
        return false;
      }
      reader = std::make_unique<safetensors::Reader>(std::move(*opened));
    }
    std::vector<double> values;
    if (!reader->readAsDouble(t.name, values, error, &t.shape))
      return false;
    t.values.assign(values.begin(), values.end());
  }

  // Optimizer state, reassembled from every rank's slices.
  std::map<std::string, Coverage> cover;
  for (Tensor &t : loaded.tensors)
    if (isOptimizerName(t.name))
      t.values.assign(elementCount(t.shape), 0.0f);
  std::vector<uint64_t> dataPositions;
  const int ranks = int(index.optimizerFiles.size());
  for (int r = 0; r < ranks; ++r)
    if (!readOptimizerFile(stepDir + "/" + index.optimizerFiles[r], r, ranks, index, position,
                           loaded, dataPositions, cover, rankStateOf, error))
      return false;
  loaded.rankStateRanks = ranks;
  for (Tensor &t : loaded.tensors)
    if (isOptimizerName(t.name) &&
        !checkCoverage(stepDir, t.name, elementCount(t.shape), cover[t.name], error))
      return false;
  for (int r = 1; r < ranks; ++r)
    if (dataPositions[r] != dataPositions[0]) {
      error = stepDir + "/" + index.optimizerFiles[r] + ": rank " + std::to_string(r) +
              " was at data position " + std::to_string(dataPositions[r]) + " but rank 0 at " +
              std::to_string(dataPositions[0]) +
              "; this runtime reads one global batch per step and cannot resume ranks that "
              "disagree";
      return false;
    }
  loaded.dataPosition = dataPositions[0];
  ckpt = std::move(loaded);
  return true;
}

} // namespace

bool hasLatest(const std::string &dir) {
  struct stat st;
  return ::stat((dir + "/latest").c_str(), &st) == 0;
}

/// The entry `<dir>/latest` names, without its line ending.
static bool readLatestName(const std::string &dir, std::string &name, std::string &error) {
  const std::string latestPath = dir + "/latest";
  FILE *f = std::fopen(latestPath.c_str(), "r");
  if (!f) {
    error = latestPath + ": cannot read: " + std::strerror(errno) +
            "; is this a checkpoint directory written by a Kiln run?";
    return false;
  }
  char buffer[256] = {0};
  size_t n = std::fread(buffer, 1, sizeof(buffer) - 1, f);
  std::fclose(f);
  name.assign(buffer, n);
  while (!name.empty() && (name.back() == '\n' || name.back() == '\r'))
    name.pop_back();
  return true;
}

bool loadLatest(const std::string &dir, const std::vector<Tensor> &layout,
                const std::string &specFingerprint, Checkpoint &ckpt, std::string &error,
                int rankStateOf) {
  std::string name;
  if (!readLatestName(dir, name, error))
    return false;
  const std::string singleFileSuffix = ".safetensors";
  if (isStepStem(name))
    return loadStepDirectory(dir + "/" + name, layout, specFingerprint, ckpt, rankStateOf, error);
  if (name.size() == 13 + singleFileSuffix.size() && isStepStem(name.substr(0, 13)) &&
      name.compare(13, std::string::npos, singleFileSuffix) == 0)
    return loadSingleFile(dir + "/" + name, layout, specFingerprint, ckpt, error);
  error = dir + "/latest" +
          ": expected the name of a step-NNNNNNNN checkpoint directory (or of an "
          "older step-NNNNNNNN.safetensors file), got '" +
          io::oneLine(name) + "'";
  return false;
}


bool loadLatestModelTensors(const std::string &dir, std::vector<Tensor> &out,
                            std::string &error) {
  std::string name;
  if (!readLatestName(dir, name, error))
    return false;
  if (!isStepStem(name)) {
    error = dir + "/latest: names '" + name +
            "', not a step-NNNNNNNN checkpoint directory; warm starts read those";
    return false;
  }
  const std::string stepDir = dir + "/" + name;
  Index index;
  if (!readIndex(stepDir + "/" + kIndexName, index, error))
    return false;
  std::map<std::string, std::vector<std::string>> byFile;
  for (const auto &[tensor, file] : index.weightMap)
    byFile[file].push_back(tensor);
  out.clear();
  for (const auto &[file, tensors] : byFile) {
    auto reader = safetensors::Reader::open(stepDir + "/" + file, error);
    if (!reader)
      return false;
    for (const std::string &tensor : tensors) {
      const safetensors::TensorInfo *info = reader->find(tensor);
      std::vector<double> values;
      if (!info) {
        error = stepDir + "/" + file + ": has no tensor '" + tensor + "', which " + kIndexName +
                " puts there";
        return false;
      }
      if (!reader->readAsDouble(tensor, values, error))
        return false;
      out.push_back({tensor, info->shape, std::vector<float>(values.begin(), values.end())});
    }
  }
  return true;
}

} // namespace kiln::checkpoint
