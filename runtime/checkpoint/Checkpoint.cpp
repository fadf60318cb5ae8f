//===- Checkpoint.cpp - training checkpoints: atomic, strict, resumable ---===//

#include "runtime/checkpoint/Checkpoint.h"
#include "runtime/io/AtomicFile.h"
#include "runtime/safetensors/Safetensors.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <optional>
#include <sys/stat.h>
#include <unistd.h>

namespace kiln::checkpoint {

namespace {

std::string fileName(uint64_t step) {
  char buffer[40];
  std::snprintf(buffer, sizeof(buffer), "step-%08llu.safetensors",
                static_cast<unsigned long long>(step));
  return buffer;
}

bool parseUnsigned(const std::map<std::string, std::string> &meta, const std::string &key,
                   const std::string &file, uint64_t &out, std::string &error) {
  auto it = meta.find(key);
  if (it == meta.end() || it->second.empty() ||
      it->second.find_first_not_of("0123456789") != std::string::npos) {
    error = file + ": metadata '" + key + "' is missing or not an unsigned integer; is this a "
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

} // namespace

bool save(const std::string &dir, const Checkpoint &ckpt, std::string &error) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    error = dir + ": cannot create the checkpoint directory: " + std::strerror(errno);
    return false;
  }
  safetensors::Writer writer;
  if (!writer.setMetadata("format", "kiln-checkpoint", error) ||
      !writer.setMetadata("step", std::to_string(ckpt.step), error) ||
      !writer.setMetadata("rng_state", std::to_string(ckpt.rngState), error) ||
      !writer.setMetadata("data_position", std::to_string(ckpt.dataPosition), error) ||
      !writer.setMetadata("spec_fingerprint", ckpt.specFingerprint, error))
    return false;
  for (const Tensor &t : ckpt.tensors)
    if (!writer.add(t.name, safetensors::DType::F32, t.shape,
                    std::vector<double>(t.values.begin(), t.values.end()), error))
      return false;
  std::string name = fileName(ckpt.step);
  if (!writer.writeAtomic(dir + "/" + name, error))
    return false;
  std::string pointer = name + "\n";
  return io::writeFileAtomic(dir + "/latest", {{pointer.data(), pointer.size()}}, error);
}

bool hasLatest(const std::string &dir) {
  struct stat st;
  return ::stat((dir + "/latest").c_str(), &st) == 0;
}

bool loadLatest(const std::string &dir, const std::vector<Tensor> &layout,
                const std::string &specFingerprint, Checkpoint &ckpt, std::string &error) {
  std::string latestPath = dir + "/latest";
  FILE *f = std::fopen(latestPath.c_str(), "r");
  if (!f) {
    error = latestPath + ": cannot read: " + std::strerror(errno) +
            "; is this a checkpoint directory written by a Kiln run?";
    return false;
  }
  char buffer[256] = {0};
  size_t n = std::fread(buffer, 1, sizeof(buffer) - 1, f);
  std::fclose(f);
  std::string name(buffer, n);
  while (!name.empty() && (name.back() == '\n' || name.back() == '\r'))
    name.pop_back();
  if (name.empty() || name.find('/') != std::string::npos || name.rfind("step-", 0) != 0) {
    error = latestPath + ": expected the name of a step-NNNNNNNN.safetensors file, got '" +
            name + "'";
    return false;
  }
  std::string path = dir + "/" + name;
  std::optional<safetensors::Reader> reader = safetensors::Reader::open(path, error);
  if (!reader)
    return false;
  const auto &meta = reader->metadata();
  auto format = meta.find("format");
  if (format == meta.end() || format->second != "kiln-checkpoint") {
    error = path + ": not a Kiln training checkpoint (metadata format is not "
                   "'kiln-checkpoint'); to start from weights only, pass them as parameters";
    return false;
  }
  Checkpoint loaded;
  if (!parseUnsigned(meta, "step", path, loaded.step, error) ||
      !parseUnsigned(meta, "rng_state", path, loaded.rngState, error) ||
      !parseUnsigned(meta, "data_position", path, loaded.dataPosition, error))
    return false;
  auto fingerprint = meta.find("spec_fingerprint");
  loaded.specFingerprint = fingerprint == meta.end() ? "" : fingerprint->second;
  if (loaded.specFingerprint != specFingerprint) {
    error = path + ": written by a run of another spec (fingerprint '" +
            loaded.specFingerprint + "', this run is '" + specFingerprint +
            "'); resume with the spec that wrote it or use another checkpoint directory";
    return false;
  }
  for (const Tensor &want : layout) {
    std::vector<double> values;
    if (!reader->readAsDouble(want.name, values, error, &want.shape))
      return false;
    loaded.tensors.push_back({want.name, want.shape,
                              std::vector<float>(values.begin(), values.end())});
  }
  if (reader->tensors().size() != layout.size()) {
    for (const safetensors::TensorInfo &info : reader->tensors()) {
      bool known = false;
      for (const Tensor &want : layout)
        known = known || want.name == info.name;
      if (!known) {
        error = path + ": tensor '" + info.name +
                "' is not part of this model; is the checkpoint from another spec?";
        return false;
      }
    }
  }
  ckpt = std::move(loaded);
  return true;
}

} // namespace kiln::checkpoint
