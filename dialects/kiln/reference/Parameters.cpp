//===- Parameters.cpp - signature, seeded init, HF-named safetensors I/O --===//

#include "dialects/kiln/reference/Parameters.h"
#include "dialects/kiln/ShapeCheck.h"
#include "runtime/init/HfNames.h"
#include "runtime/safetensors/Safetensors.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"

#include <cmath>
#include <set>

using namespace mlir;

namespace kiln::reference {
//===----------------------------------------------------------------------===//
// Signature
//===----------------------------------------------------------------------===//

std::string ParamSlot::hfName(int64_t e) const {
  return stacked ? init::expertTensorName(name, e) : name;
}

std::vector<int64_t> ParamSlot::hfShape() const {
  return std::vector<int64_t>(shape.begin() + (stacked ? 1 : 0), shape.end());
}

const InputSlot *Signature::input(StringRef role) const {
  for (const InputSlot &in : inputs)
    if (in.role == role)
      return &in;
  return nullptr;
}

FailureOr<Signature> readSignature(func::FuncOp func) {
  Signature sig;
  sig.numArgs = func.getNumArguments();
  std::set<std::string> seen;
  for (unsigned i = 0; i < sig.numArgs; ++i) {
    auto type = dyn_cast<RankedTensorType>(func.getArgument(i).getType());
    if (!type || !type.hasStaticShape())
      return func.emitError() << "argument #" << i << " of @" << func.getSymName()
                              << " is not a static-shaped tensor",
             failure();
    if (auto name = func.getArgAttrOfType<StringAttr>(i, "kiln.param")) {
      ParamSlot p;
      p.argIndex = i;
      p.name = name.str();
      p.stacked = StringRef(p.name).count('*') == 1;
      p.shape.assign(type.getShape().begin(), type.getShape().end());
      p.elementType = type.getElementType();
      if (StringRef(p.name).count('*') > 1 || (p.stacked && p.shape.empty()))
        return func.emitError() << "argument #" << i << ": parameter name '" << p.name
                                << "' must have at most one '*' (the expert number), "
                                   "and a stacked parameter needs an expert dimension",
               failure();
      if (auto init = func.getArgAttrOfType<StringAttr>(i, "kiln.init"))
        p.init = init.str();
      if (p.init != "normal" && p.init != "ones" && p.init != "zeros")
        return func.emitError() << "argument #" << i << " ('" << p.name
                                << "'): kiln.init must be normal, ones or zeros, got '"
                                << p.init << "'",
               failure();
      if (auto std = func.getArgAttrOfType<FloatAttr>(i, "kiln.init_std"))
        p.initStd = std.getValueAsDouble();
      if (func.getArgAttrOfType<BoolAttr>(i, "kiln.trainable"))
        p.trainable = func.getArgAttrOfType<BoolAttr>(i, "kiln.trainable").getValue();
      if (!seen.insert(p.name).second)
        return func.emitError() << "parameter '" << p.name << "' appears twice",
               failure();
      sig.params.push_back(std::move(p));
    } else if (auto role = func.getArgAttrOfType<StringAttr>(i, "kiln.input")) {
      InputSlot in;
      in.argIndex = i;
      in.role = role.str();
      in.shape.assign(type.getShape().begin(), type.getShape().end());
      in.elementType = type.getElementType();
      sig.inputs.push_back(std::move(in));
    } else {
      return func.emitError() << "argument #" << i << " of @" << func.getSymName()
                              << " has neither kiln.param nor kiln.input",
             failure();
    }
  }
  return sig;
}

/// Rounds to the nearest value of `type` (round-to-nearest-even), so that an
/// f32 parameter holds an f32 value and survives a checkpoint unchanged.
static double roundTo(Type type, double value) {
  auto floatType = dyn_cast<FloatType>(type);
  if (!floatType || floatType.getWidth() == 64)
    return value;
  if (floatType.isF32())
    return double(static_cast<float>(value));
  llvm::APFloat v(value);
  bool lost;
  v.convert(floatType.getFloatSemantics(), llvm::APFloat::rmNearestTiesToEven, &lost);
  v.convert(llvm::APFloat::IEEEdouble(), llvm::APFloat::rmNearestTiesToEven, &lost);
  return v.convertToDouble();
}

RefTensor initParameter(const ParamSlot &param, uint64_t seed) {
  RefTensor t(param.elementType, param.shape,
              param.init == "ones" ? 1.0 : 0.0);
  if (param.init != "normal")
    return t;
  int64_t perTensor = t.numElements() / param.numStored();
  for (int64_t e = 0; e < param.numStored(); ++e) {
    SeededRng rng(seed, param.hfName(e));
    for (int64_t i = 0; i < perTensor; ++i)
      t.data[e * perTensor + i] = roundTo(param.elementType, rng.normal() * param.initStd);
  }
  return t;
}

//===----------------------------------------------------------------------===//
// safetensors
//===----------------------------------------------------------------------===//

bool saveParameters(const std::string &path, const Signature &sig,
                    ArrayRef<RefTensor> args, std::string &error) {
  safetensors::Writer writer;
  writer.setMetadata("format", "pt", error);
  for (const ParamSlot &p : sig.params) {
    const RefTensor &t = args[p.argIndex];
    int64_t perTensor = t.numElements() / p.numStored();
    for (int64_t e = 0; e < p.numStored(); ++e) {
      std::vector<double> values(t.data.begin() + e * perTensor,
                                 t.data.begin() + (e + 1) * perTensor);
      if (!writer.add(p.hfName(e), safetensors::DType::F32, p.hfShape(), values, error))
        return false;
    }
  }
  return writer.writeAtomic(path, error);
}

bool loadParameters(const std::string &path, const Signature &sig,
                    MutableArrayRef<RefTensor> args, std::string &error) {
  std::optional<safetensors::Reader> reader = safetensors::Reader::open(path, error);
  if (!reader)
    return false;
  std::set<std::string> expected;
  for (const ParamSlot &p : sig.params) {
    RefTensor t(p.elementType, p.shape);
    int64_t perTensor = t.numElements() / p.numStored();
    std::vector<int64_t> hfShape = p.hfShape();
    for (int64_t e = 0; e < p.numStored(); ++e) {
      std::string name = p.hfName(e);
      expected.insert(name);
      std::vector<double> values;
      if (!reader->readAsDouble(name, values, error, &hfShape))
        return false;
      std::copy(values.begin(), values.end(), t.data.begin() + e * perTensor);
    }
    args[p.argIndex] = std::move(t);
  }
  std::vector<std::string> extra;
  for (const safetensors::TensorInfo &info : reader->tensors())
    if (!expected.count(info.name))
      extra.push_back(info.name);
  if (!extra.empty()) {
    error = path + ": " + std::to_string(extra.size()) +
            " tensor(s) that this model does not have, e.g. '" + extra.front() +
            "'; is this checkpoint from another spec?";
    return false;
  }
  return true;
}

} // namespace kiln::reference
