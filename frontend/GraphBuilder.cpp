//===- GraphBuilder.cpp - helpers for emitting kiln IR --------------------===//

#include "frontend/GraphBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;

namespace kiln::frontend {

Value ParamScope::operator[](StringRef name) const {
  auto it = values.find(name);
  // A missing name is a bug in MLIRGen (decls and body disagree), not a user
  // error; fail loudly in every build type.
  if (it == values.end())
    llvm::report_fatal_error(llvm::Twine("MLIRGen: no parameter '") + name + "'");
  return it->second;
}

Location Graph::loc(StringRef hfModule) {
  return NameLoc::get(b.getStringAttr(hfModule));
}

RankedTensorType Graph::f32(ArrayRef<int64_t> shape) {
  return RankedTensorType::get(shape, b.getF32Type());
}

RankedTensorType Graph::i32(ArrayRef<int64_t> shape) {
  return RankedTensorType::get(shape, b.getI32Type());
}

ArrayRef<int64_t> Graph::shape(Value v) {
  return cast<RankedTensorType>(v.getType()).getShape();
}

Value Graph::linear(Value x, Value w, StringRef where) {
  SmallVector<int64_t> out(shape(x));
  out.back() = shape(w)[0];
  return LinearOp::create(b, loc(where), f32(out), x, w);
}

Value Graph::rmsNorm(Value x, Value gamma, double eps, StringRef where) {
  return RMSNormOp::create(b, loc(where), x.getType(), x, gamma, b.getF64FloatAttr(eps));
}

Value Graph::mlp(Value x, const ParamScope &p, StringRef prefix) {
  std::string pre = prefix.str();
  Value gate = linear(x, p[pre + ".gate_proj.weight"], pre + ".gate_proj");
  Value up = linear(x, p[pre + ".up_proj.weight"], pre + ".up_proj");
  Value act = SwigluOp::create(b, loc(pre + ".act_fn"), gate.getType(), gate, up);
  return linear(act, p[pre + ".down_proj.weight"], pre + ".down_proj");
}

Value Graph::add(Value x, Value y, StringRef where) {
  return arith::AddFOp::create(b, loc(where), x, y);
}

Value Graph::slice(Value x, int64_t dim, int64_t offset, int64_t size, StringRef where) {
  ArrayRef<int64_t> s = shape(x);
  SmallVector<OpFoldResult> offsets, sizes, strides;
  for (int64_t d = 0; d < (int64_t)s.size(); ++d) {
    offsets.push_back(b.getIndexAttr(d == dim ? offset : 0));
    sizes.push_back(b.getIndexAttr(d == dim ? size : s[d]));
    strides.push_back(b.getIndexAttr(1));
  }
  return tensor::ExtractSliceOp::create(b, loc(where), x, offsets, sizes, strides);
}

Value Graph::concat(ValueRange parts, int64_t dim, StringRef where) {
  return tensor::ConcatOp::create(b, loc(where), dim, parts);
}

Value Graph::splitHeads(Value x, int64_t heads, StringRef where) {
  ArrayRef<int64_t> s = shape(x);
  auto type = RankedTensorType::get({s[0], s[1], heads, s[2] / heads},
                                    cast<RankedTensorType>(x.getType()).getElementType());
  SmallVector<ReassociationIndices> groups{{0}, {1}, {2, 3}};
  return tensor::ExpandShapeOp::create(b, loc(where), type, x, groups);
}

Value Graph::splitRows(Value x, int64_t a, StringRef where) {
  ArrayRef<int64_t> s = shape(x);
  auto type = RankedTensorType::get({a, s[0] / a, s[1]},
                                    cast<RankedTensorType>(x.getType()).getElementType());
  SmallVector<ReassociationIndices> groups{{0, 1}, {2}};
  return tensor::ExpandShapeOp::create(b, loc(where), type, x, groups);
}

Value Graph::mergeHeads(Value x, StringRef where) {
  SmallVector<ReassociationIndices> groups{{0}, {1}, {2, 3}};
  return tensor::CollapseShapeOp::create(b, loc(where), x, groups);
}

Value Graph::flattenTokens(Value x, StringRef where) {
  SmallVector<ReassociationIndices> groups{{0, 1}, {2}};
  return tensor::CollapseShapeOp::create(b, loc(where), x, groups);
}

Value Graph::unflattenTokens(Value x, int64_t batch, StringRef where) {
  ArrayRef<int64_t> s = shape(x);
  auto type = RankedTensorType::get({batch, s[0] / batch, s[1]},
                                    cast<RankedTensorType>(x.getType()).getElementType());
  SmallVector<ReassociationIndices> groups{{0, 1}, {2}};
  return tensor::ExpandShapeOp::create(b, loc(where), type, x, groups);
}

Value Graph::rollLeft(Value x, int64_t k, StringRef where) {
  int64_t seq = shape(x)[1];
  Value head = slice(x, 1, k, seq - k, where);
  Value tail = slice(x, 1, 0, k, where);
  return concat({head, tail}, 1, where);
}

Value Graph::shiftLeftZeroFill(Value x, int64_t k, StringRef where) {
  ArrayRef<int64_t> s = shape(x);
  auto type = cast<RankedTensorType>(x.getType());
  auto zerosType = RankedTensorType::get({s[0], k}, type.getElementType());
  Value zeros = arith::ConstantOp::create(
      b, loc(where), zerosType,
      DenseElementsAttr::get(zerosType, b.getZeroAttr(type.getElementType())));
  return concat({slice(x, 1, k, s[1] - k, where), zeros}, 1, where);
}

func::FuncOp Graph::defineBlock(
    ModuleOp module, StringRef name, TypeRange inputs, ArrayRef<ParamDecl> params,
    TypeRange results,
    const std::function<SmallVector<Value>(ValueRange, const ParamScope &)> &build) {
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToEnd(module.getBody());
  SmallVector<Type> argTypes(inputs.begin(), inputs.end());
  for (const ParamDecl &p : params)
    argTypes.push_back(f32(p.shape));
  auto func = func::FuncOp::create(b, loc(name), name,
                                   b.getFunctionType(argTypes, results));
  func.setPrivate();
  for (auto [i, p] : llvm::enumerate(params))
    func.setArgAttr(inputs.size() + i, "kiln.param", b.getStringAttr(p.name));
  Block *entry = func.addEntryBlock();
  b.setInsertionPointToStart(entry);
  ParamScope scope;
  for (auto [i, p] : llvm::enumerate(params))
    scope.bind(p.name, entry->getArgument(inputs.size() + i));
  SmallVector<Value> out =
      build(entry->getArguments().take_front(inputs.size()), scope);
  func::ReturnOp::create(b, loc(name), out);
  return func;
}

void Graph::annotateParam(func::FuncOp func, unsigned i, const ParamDecl &decl,
                          StringRef fullName) {
  func.setArgAttr(i, "kiln.param", b.getStringAttr(fullName));
  func.setArgAttr(i, "kiln.init", b.getStringAttr(decl.init));
  if (decl.init == "normal")
    func.setArgAttr(i, "kiln.init_std", b.getF64FloatAttr(initStd));
  if (!decl.trainable)
    func.setArgAttr(i, "kiln.trainable", b.getBoolAttr(false));
}

} // namespace kiln::frontend
