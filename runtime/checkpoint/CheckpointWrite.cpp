//===- CheckpointWrite.cpp - a step's checkpoint: rank files, then commit -===//
//
// Phase one (writeShard) runs on every rank and touches only files of its
// own; phase two (commit) runs on one rank once all of them succeeded, and
// is the only writer of the index and of `latest`. nlohmann::json builds the
// index; its exceptions (invalid UTF-8, allocation) are caught here because
// callers are built without exceptions.
//
//===----------------------------------------------------------------------===//

#include "runtime/checkpoint/Checkpoint.h"
#include "runtime/io/AtomicFile.h"
#include "runtime/safetensors/Safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sys/stat.h>

namespace kiln::checkpoint {

std::string stepDirName(uint64_t step) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "step-%08llu", static_cast<unsigned long long>(step));
  return buffer;
}

namespace {

std::string shardFileName(const char *stem, int index, int count) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%s-%05d-of-%05d.safetensors", stem, index + 1, count);
  return buffer;
}

bool makeDirectory(const std::string &dir, std::string &error) {
  if (::mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST) {
    struct stat st;
    if (::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
      return true;
    error = dir + ": exists but is not a directory; pass another --checkpoint-dir";
    return false;
  }
  error = dir + ": cannot create the checkpoint directory: " + std::strerror(errno);
  return false;
}

/// Adds `count` f32 values as tensor `name` of `shape` (little-endian, as
/// on every host Kiln builds for).
bool addF32(safetensors::Writer &writer, const std::string &name, std::vector<int64_t> shape,
            const float *values, uint64_t count, std::string &error) {
  std::vector<uint8_t> bytes(count * sizeof(float));
  if (count)
    std::memcpy(bytes.data(), values, bytes.size());
  return writer.addRaw(name, safetensors::DType::F32, std::move(shape), std::move(bytes), error);
}

/// Writes `writer`'s file atomically at `path`; `bytes` gets its size.
bool writeFile(const safetensors::Writer &writer, const std::string &path, uint64_t &bytes,
               std::string &error) {
  std::vector<uint8_t> file;
  if (!writer.serialize(file, error) ||
      !io::writeFileAtomic(path, {{file.data(), file.size()}}, error))
    return false;
  bytes = file.size();
  return true;
}

bool writeModelFile(const std::string &path, const StepInfo &info, const RankShard &shard,
                    uint64_t &bytes, std::string &error) {
  safetensors::Writer writer;
  // Hugging Face's loaders require format "pt" in every shard.
  if (!writer.setMetadata("format", "pt", error) ||
      !writer.setMetadata("kiln_step", std::to_string(info.step), error))
    return false;
  for (const SliceRef &t : shard.model) {
    if (t.offset != 0 || t.count != elementCount(*t.shape)) {
      error = path + ": model tensor '" + t.name + "' must be written whole";
      return false;
    }
    if (!addF32(writer, t.name, *t.shape, t.values, t.count, error))
      return false;
  }
  return writeFile(writer, path, bytes, error);
}

bool writeOptimizerFile(const std::string &path, const StepInfo &info, const RankShard &shard,
                        uint64_t &bytes, std::string &error) {
  safetensors::Writer writer;
  nlohmann::json slices = nlohmann::json::object();
  for (const SliceRef &s : shard.optimizer) {
    if (s.offset + s.count > elementCount(*s.shape)) {
      error = path + ": slice of '" + s.name + "' ends past the tensor";
      return false;
    }
    slices[s.name] = {{"offset", s.offset}, {"shape", *s.shape}};
    if (!addF32(writer, s.name, {int64_t(s.count)}, s.values, s.count, error))
      return false;
  }
  nlohmann::json rankState = nlohmann::json::array();
  for (const SliceRef &s : shard.rankState) {
    if (s.name.rfind("rank_state.", 0) != 0 || s.offset != 0 || s.count != elementCount(*s.shape)) {
      error = path + ": rank state '" + s.name + "' must be a whole tensor named rank_state.*";
      return false;
    }
    rankState.push_back(s.name);
    if (!addF32(writer, s.name, *s.shape, s.values, s.count, error))
      return false;
  }
  if (!writer.setMetadata("format", "kiln-checkpoint", error) ||
      !writer.setMetadata("step", std::to_string(info.step), error) ||
      !writer.setMetadata("rng_state", std::to_string(info.rngState), error) ||
      !writer.setMetadata("data_position", std::to_string(info.dataPosition), error) ||
      !writer.setMetadata("spec_fingerprint", info.specFingerprint, error) ||
      !writer.setMetadata("rank", std::to_string(shard.rank), error) ||
      !writer.setMetadata("ranks", std::to_string(shard.ranks), error) ||
      !writer.setMetadata("slices", slices.dump(), error) ||
      (!shard.rankState.empty() && !writer.setMetadata("rank_state", rankState.dump(), error)))
    return false;
  if (info.scaler.present) {
    char scale[32];
    std::snprintf(scale, sizeof(scale), "%.9g", double(info.scaler.scale)); // round-trips f32
    if (!writer.setMetadata("loss_scale", scale, error) ||
        !writer.setMetadata("growth_tracker", std::to_string(info.scaler.growthTracker), error) ||
        !writer.setMetadata("optimizer_updates", std::to_string(info.scaler.optimizerUpdates),
                            error))
      return false;
  }
  return writeFile(writer, path, bytes, error);
}

bool checkSize(const std::string &path, uint64_t want, std::string &error) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    error = path + ": missing at commit: " + std::strerror(errno) +
            "; does every rank see the same --checkpoint-dir (a shared filesystem)?";
    return false;
  }
  if (uint64_t(st.st_size) != want) {
    error = path + ": " + std::to_string(st.st_size) + " bytes at commit, but its writer wrote " +
            std::to_string(want) + "; another process is writing this checkpoint directory";
    return false;
  }
  return true;
}

} // namespace

std::string modelFileName(int index, int files) { return shardFileName("model", index, files); }

std::string optimizerFileName(int rank, int ranks) {
  return shardFileName("optimizer", rank, ranks);
}

std::vector<int> assignModelFiles(const std::vector<uint64_t> &bytes, int ranks) {
  const int n = int(bytes.size());
  const int files = std::max(1, std::min(ranks, n));
  double total = 0;
  for (uint64_t b : bytes)
    total += double(b);
  std::vector<int> file(bytes.size());
  double before = 0;
  int previous = -1;
  for (int i = 0; i < n; ++i) {
    // The file the middle of tensor i falls in, if the bytes were cut into
    // `files` equal parts; clamped so that files stay contiguous and every
    // file gets at least one tensor.
    const double middle = before + double(bytes[i]) / 2;
    int raw = total > 0 ? int(std::floor(middle * files / total)) : i * files / n;
    const int lowest = std::max(previous, files - (n - i)),
              highest = std::min(previous + 1, files - 1);
    file[i] = std::clamp(raw, lowest, highest);
    previous = file[i];
    before += double(bytes[i]);
  }
  return file;
}

bool writeShard(const std::string &dir, const StepInfo &info, const RankShard &shard,
                ShardBytes &written, std::string &error) {
  const std::string stepDir = dir + "/" + stepDirName(info.step);
  if (!makeDirectory(dir, error) || !makeDirectory(stepDir, error))
    return false;
  written = ShardBytes{};
  if (shard.rank < shard.modelFiles &&
      !writeModelFile(stepDir + "/" + modelFileName(shard.rank, shard.modelFiles), info, shard,
                      written.model, error))
    return false;
  return writeOptimizerFile(stepDir + "/" + optimizerFileName(shard.rank, shard.ranks), info, shard,
                            written.optimizer, error);
}

bool commit(const std::string &dir, const StepInfo &info, const Manifest &manifest,
            std::string &error) {
  const std::string name = stepDirName(info.step), stepDir = dir + "/" + name;
  if (int(manifest.written.size()) != manifest.ranks) {
    error = stepDir + ": commit needs the sizes of all " + std::to_string(manifest.ranks) +
            " ranks' files";
    return false;
  }
  uint64_t totalSize = 0;
  std::vector<std::string> optimizerFiles;
  for (int r = 0; r < manifest.ranks; ++r) {
    if (r < manifest.modelFiles && !checkSize(stepDir + "/" + modelFileName(r, manifest.modelFiles),
                                              manifest.written[r].model, error))
      return false;
    optimizerFiles.push_back(optimizerFileName(r, manifest.ranks));
    if (!checkSize(stepDir + "/" + optimizerFiles.back(), manifest.written[r].optimizer, error))
      return false;
  }
  std::string index;
  try {
    nlohmann::json weightMap = nlohmann::json::object();
    for (const Manifest::Entry &entry : manifest.weightMap) {
      weightMap[entry.name] = modelFileName(entry.file, manifest.modelFiles);
      totalSize += entry.bytes;
    }
    nlohmann::json doc = {{"metadata", {{"total_size", totalSize}}},
                          {"weight_map", std::move(weightMap)},
                          {"kiln",
                           {{"format", "kiln-checkpoint"},
                            {"step", info.step},
                            {"spec_fingerprint", info.specFingerprint},
                            {"optimizer_files", optimizerFiles}}}};
    index = doc.dump(2) + "\n";
  } catch (const std::exception &e) {
    error = stepDir + "/model.safetensors.index.json: cannot build the index: " + e.what();
    return false;
  }
  if (!io::writeFileAtomic(stepDir + "/model.safetensors.index.json",
                           {{index.data(), index.size()}}, error))
    return false;
  const std::string pointer = name + "\n";
  return io::writeFileAtomic(dir + "/latest", {{pointer.data(), pointer.size()}}, error);
}

bool save(const std::string &dir, const Checkpoint &ckpt, std::string &error) {
  const StepInfo info{ckpt.step, ckpt.rngState, ckpt.dataPosition, ckpt.specFingerprint,
                      ckpt.scaler};
  RankShard shard;
  Manifest manifest;
  for (const Tensor &t : ckpt.tensors) {
    SliceRef ref{t.name, &t.shape, 0, uint64_t(t.values.size()), t.values.data()};
    if (t.values.size() != elementCount(t.shape)) {
      error = t.name + ": " + std::to_string(t.values.size()) + " values for shape " +
              safetensors::shapeToString(t.shape);
      return false;
    }
    if (t.name.rfind("optimizer.", 0) == 0) {
      shard.optimizer.push_back(ref);
    } else {
      shard.model.push_back(ref);
      manifest.weightMap.push_back({t.name, 0, ref.count * sizeof(float)});
    }
  }
  manifest.written.resize(1);
  return writeShard(dir, info, shard, manifest.written[0], error) &&
         commit(dir, info, manifest, error);
}

} // namespace kiln::checkpoint
