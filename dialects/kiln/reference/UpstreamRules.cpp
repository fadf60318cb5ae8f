//===- UpstreamRules.cpp - evaluation of the arith and tensor ops Kiln uses ===//
//
// Kiln IR reuses upstream ops for constants, elementwise arithmetic and data
// movement (slices, concatenation, reshapes). Only the static-shaped forms
// are supported; anything else is reported, never guessed.
//
//===----------------------------------------------------------------------===//

#include "dialects/kiln/reference/Evaluator.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinAttributes.h"

#include <cmath>
#include <limits>

using namespace mlir;

namespace kiln::reference {

static RefTensor resultLike(Operation *op, double fill = 0.0) {
  Type type = op->getResult(0).getType();
  if (auto shaped = dyn_cast<ShapedType>(type))
    return RefTensor(shaped.getElementType(), shaped.getShape(), fill);
  return RefTensor(type, {}, fill);
}

template <typename Fn>
static void addBinary(RuleTable &table, StringRef name, Fn fn) {
  table.add(name, [fn](Operation *op, ArrayRef<const RefTensor *> in,
                       SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    RefTensor r = resultLike(op);
    for (int64_t i = 0; i < r.numElements(); ++i)
      r.data[i] = fn(in[0]->data[i], in[1]->data[i]);
    out.push_back(std::move(r));
    return success();
  });
}

template <typename Fn>
static void addUnary(RuleTable &table, StringRef name, Fn fn) {
  table.add(name, [fn](Operation *op, ArrayRef<const RefTensor *> in,
                       SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    RefTensor r = resultLike(op);
    for (int64_t i = 0; i < r.numElements(); ++i)
      r.data[i] = fn(in[0]->data[i]);
    out.push_back(std::move(r));
    return success();
  });
}

/// Visits, in row-major order, the flat index into a tensor of `shape` of
/// every element of the box offsets + i * strides, i < sizes.
template <typename Fn>
static void forEachInBox(ArrayRef<int64_t> shape, ArrayRef<int64_t> offsets,
                         ArrayRef<int64_t> sizes, ArrayRef<int64_t> strides, Fn fn) {
  int64_t rank = shape.size(), count = RefTensor::numElementsOf(sizes);
  SmallVector<int64_t> tensorStrides(rank, 1), idx(rank, 0);
  for (int64_t d = rank - 2; d >= 0; --d)
    tensorStrides[d] = tensorStrides[d + 1] * shape[d + 1];
  for (int64_t n = 0; n < count; ++n) {
    int64_t flat = 0;
    for (int64_t d = 0; d < rank; ++d)
      flat += (offsets[d] + idx[d] * strides[d]) * tensorStrides[d];
    fn(n, flat);
    for (int64_t d = rank - 1; d >= 0 && ++idx[d] == sizes[d]; --d)
      idx[d] = 0;
  }
}

static LogicalResult requireStatic(Operation *op, ArrayRef<int64_t> a,
                                   ArrayRef<int64_t> b, ArrayRef<int64_t> c) {
  for (ArrayRef<int64_t> v : {a, b, c})
    if (llvm::any_of(v, ShapedType::isDynamic))
      return op->emitError("reference evaluator: only static offsets, sizes and "
                           "strides are supported");
  return success();
}

void addUpstreamRules(RuleTable &table) {
  table.add("arith.constant", [](Operation *op, ArrayRef<const RefTensor *>,
                                 SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    Attribute value = cast<arith::ConstantOp>(op).getValue();
    RefTensor r = resultLike(op);
    auto toDouble = [](Attribute a) -> double {
      if (auto f = dyn_cast<FloatAttr>(a))
        return f.getValueAsDouble();
      return double(cast<IntegerAttr>(a).getValue().getSExtValue());
    };
    if (auto dense = dyn_cast<DenseElementsAttr>(value)) {
      int64_t i = 0;
      for (Attribute element : dense.getValues<Attribute>())
        r.data[i++] = toDouble(element);
    } else if (isa<FloatAttr, IntegerAttr>(value)) {
      r.data[0] = toDouble(value);
    } else {
      return op->emitError() << "reference evaluator: unsupported constant " << value;
    }
    out.push_back(std::move(r));
    return success();
  });

  addBinary(table, "arith.addf", [](double a, double b) { return a + b; });
  addBinary(table, "arith.subf", [](double a, double b) { return a - b; });
  addBinary(table, "arith.mulf", [](double a, double b) { return a * b; });
  addBinary(table, "arith.divf", [](double a, double b) { return a / b; });
  addBinary(table, "arith.maximumf", [](double a, double b) {
    return std::isnan(a) || std::isnan(b) ? std::numeric_limits<double>::quiet_NaN()
                                          : std::max(a, b);
  });
  addBinary(table, "arith.minimumf", [](double a, double b) {
    return std::isnan(a) || std::isnan(b) ? std::numeric_limits<double>::quiet_NaN()
                                          : std::min(a, b);
  });
  addBinary(table, "arith.addi", [](double a, double b) { return a + b; });
  addBinary(table, "arith.subi", [](double a, double b) { return a - b; });
  addBinary(table, "arith.muli", [](double a, double b) { return a * b; });
  addUnary(table, "arith.negf", [](double a) { return -a; });
  // Conversions between float types keep the f64 value; in as-typed mode the
  // evaluator then rounds it to the result type, as for every op.
  for (StringRef name : {"arith.extf", "arith.truncf", "arith.sitofp", "arith.uitofp"})
    addUnary(table, name, [](double a) { return a; });
  addUnary(table, "math.sqrt", [](double a) { return std::sqrt(a); });
  // Comparisons give i1 tensors (0 or 1). The predicates Kiln emits: the
  // ordered ones (false when either side is NaN).
  table.add("arith.cmpf", [](Operation *op, ArrayRef<const RefTensor *> in,
                             SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto predicate = cast<arith::CmpFOp>(op).getPredicate();
    RefTensor r = resultLike(op);
    for (int64_t i = 0; i < r.numElements(); ++i) {
      double a = in[0]->data[i], b = in[1]->data[i];
      bool holds;
      switch (predicate) {
      case arith::CmpFPredicate::OEQ: holds = a == b; break;
      case arith::CmpFPredicate::OLT: holds = a < b; break;
      case arith::CmpFPredicate::OLE: holds = a <= b; break;
      case arith::CmpFPredicate::OGT: holds = a > b; break;
      case arith::CmpFPredicate::OGE: holds = a >= b; break;
      default:
        return op->emitError() << "reference evaluator: unsupported predicate "
                               << arith::stringifyCmpFPredicate(predicate);
      }
      r.data[i] = holds ? 1.0 : 0.0;
    }
    out.push_back(std::move(r));
    return success();
  });

  table.add("tensor.empty", [](Operation *op, ArrayRef<const RefTensor *>,
                               SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    // Its contents are undefined: NaN makes any read of them visible.
    out.push_back(resultLike(op, std::numeric_limits<double>::quiet_NaN()));
    return success();
  });

  table.add("tensor.splat", [](Operation *op, ArrayRef<const RefTensor *> in,
                               SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    out.push_back(resultLike(op, in[0]->data[0]));
    return success();
  });

  table.add("tensor.from_elements", [](Operation *op, ArrayRef<const RefTensor *> in,
                                       SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    RefTensor r = resultLike(op);
    for (auto [i, v] : llvm::enumerate(in))
      r.data[i] = v->data[0];
    out.push_back(std::move(r));
    return success();
  });

  auto reshape = [](Operation *op, ArrayRef<const RefTensor *> in,
                    SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    RefTensor r = resultLike(op);
    r.data = in[0]->data; // row-major data is unchanged by a reshape
    out.push_back(std::move(r));
    return success();
  };
  table.add("tensor.expand_shape", reshape);
  table.add("tensor.collapse_shape", reshape);
  table.add("tensor.cast", reshape);

  table.add("tensor.extract_slice", [](Operation *op, ArrayRef<const RefTensor *> in,
                                       SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto slice = cast<tensor::ExtractSliceOp>(op);
    if (failed(requireStatic(op, slice.getStaticOffsets(), slice.getStaticSizes(),
                             slice.getStaticStrides())))
      return failure();
    RefTensor r = resultLike(op); // possibly rank-reduced: same elements, same order
    forEachInBox(in[0]->shape, slice.getStaticOffsets(), slice.getStaticSizes(),
                 slice.getStaticStrides(),
                 [&](int64_t n, int64_t flat) { r.data[n] = in[0]->data[flat]; });
    out.push_back(std::move(r));
    return success();
  });

  table.add("tensor.insert_slice", [](Operation *op, ArrayRef<const RefTensor *> in,
                                      SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    auto insert = cast<tensor::InsertSliceOp>(op);
    if (failed(requireStatic(op, insert.getStaticOffsets(), insert.getStaticSizes(),
                             insert.getStaticStrides())))
      return failure();
    RefTensor r = *in[1];
    forEachInBox(r.shape, insert.getStaticOffsets(), insert.getStaticSizes(),
                 insert.getStaticStrides(),
                 [&](int64_t n, int64_t flat) { r.data[flat] = in[0]->data[n]; });
    out.push_back(std::move(r));
    return success();
  });

  table.add("tensor.concat", [](Operation *op, ArrayRef<const RefTensor *> in,
                                SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    int64_t dim = cast<tensor::ConcatOp>(op).getDim();
    RefTensor r = resultLike(op);
    int64_t outer = 1;
    for (int64_t d = 0; d < dim; ++d)
      outer *= r.shape[d];
    int64_t rowOut = r.numElements() / outer, at = 0;
    for (const RefTensor *t : in) {
      int64_t rowIn = t->numElements() / outer;
      for (int64_t o = 0; o < outer; ++o)
        std::copy_n(&t->data[o * rowIn], rowIn, &r.data[o * rowOut + at]);
      at += rowIn;
    }
    out.push_back(std::move(r));
    return success();
  });

  table.add("tensor.extract", [](Operation *op, ArrayRef<const RefTensor *> in,
                                 SmallVectorImpl<RefTensor> &out) -> LogicalResult {
    const RefTensor &t = *in[0];
    auto strides = t.strides();
    int64_t flat = 0;
    for (int64_t d = 0; d < t.rank(); ++d) {
      int64_t i = int64_t(in[1 + d]->data[0]);
      if (i < 0 || i >= t.shape[d])
        return op->emitError() << "reference evaluator: index " << i
                               << " out of range for dimension " << d
                               << " of size " << t.shape[d];
      flat += i * strides[d];
    }
    RefTensor r = resultLike(op);
    r.data[0] = t.data[flat];
    out.push_back(std::move(r));
    return success();
  });
}

} // namespace kiln::reference
