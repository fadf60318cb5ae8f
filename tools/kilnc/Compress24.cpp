//===- Compress24.cpp - kilnc --compress-2-4 ------------------------------===//

#include "tools/kilnc/Compress24.h"
#include "runtime/kernels/Sparsity24.h"
#include "runtime/safetensors/Safetensors.h"

#include <cstring>
#include <filesystem>
#include <map>
#include <numeric>
#include <vector>

namespace kiln {

namespace {
constexpr const char *kMaskPrefix = "optimizer.sparsity_mask.";
} // namespace

bool writeCompressed24(const std::string &dir, std::string &error) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    error = dir + ": not a checkpoint directory (expected e.g. CKPT/step-00000300)";
    return false;
  }
  std::vector<safetensors::Reader> models;
  std::vector<std::string> sparse;
  std::vector<std::string> files;
  for (const fs::directory_entry &entry : fs::directory_iterator(dir, ec))
    if (entry.path().extension() == ".safetensors")
      files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  for (const std::string &path : files) {
    const std::string file = fs::path(path).filename().string();
    if (file == "sparse-2of4.safetensors")
      continue; // a previous run's output
    std::optional<safetensors::Reader> reader = safetensors::Reader::open(path, error);
    if (!reader)
      return false;
    if (file.rfind("optimizer", 0) == 0) {
      for (const safetensors::TensorInfo &t : reader->tensors())
        if (t.name.rfind(kMaskPrefix, 0) == 0)
          sparse.push_back(t.name.substr(std::strlen(kMaskPrefix)));
    } else if (file.rfind("model", 0) == 0) {
      models.push_back(std::move(*reader));
    }
  }
  if (sparse.empty()) {
    error = dir + ": no 2:4 masks (optimizer.sparsity_mask.*) in the checkpoint; it was not "
                  "trained with train.sparsity";
    return false;
  }
  safetensors::Writer writer;
  for (const std::string &name : sparse) {
    const safetensors::Reader *holder = nullptr;
    const safetensors::TensorInfo *info = nullptr;
    for (const safetensors::Reader &r : models)
      if ((info = r.find(name))) {
        holder = &r;
        break;
      }
    if (!info) {
      error = dir + ": the 2:4 weight '" + name + "' has a mask but no tensor in the model files";
      return false;
    }
    std::vector<double> values;
    if (!holder->readAsDouble(name, values, error))
      return false;
    const std::vector<int64_t> &shape = info->shape;
    const int64_t cols = shape.empty() ? 0 : shape.back();
    const int64_t rows =
        std::accumulate(shape.begin(), shape.end() - (shape.empty() ? 0 : 1), int64_t(1),
                        std::multiplies<int64_t>());
    if (shape.size() < 2 || cols % 4 != 0) {
      error = dir + ": '" + name + "' of shape " + safetensors::shapeToString(shape) +
              " cannot be 2:4 compressed (rank >= 2, last dimension divisible by 4)";
      return false;
    }
    std::vector<float> dense(values.begin(), values.end()), packed(size_t(rows * cols / 2));
    const int64_t words = kernels::metadataWordsPerRow(cols);
    std::vector<uint32_t> metadata(size_t(rows * words));
    if (!kernels::compress24(dense.data(), rows, cols, packed.data(), metadata.data(), error)) {
      error = dir + ": '" + name + "': " + error;
      return false;
    }
    std::vector<uint8_t> bits(metadata.size() * sizeof(uint32_t));
    std::memcpy(bits.data(), metadata.data(), bits.size());
    if (!writer.add(name + ".values", safetensors::DType::F32, {rows, cols / 2},
                    std::vector<double>(packed.begin(), packed.end()), error) ||
        !writer.addRaw(name + ".metadata", safetensors::DType::I32, {rows, words},
                       std::move(bits), error))
      return false;
  }
  if (!writer.setMetadata("format", "kiln 2:4: values + mma.sp metadata words", error))
    return false;
  return writer.writeAtomic(dir + "/sparse-2of4.safetensors", error);
}

} // namespace kiln
