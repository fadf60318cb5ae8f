//===- KilnCollectiveOps.cpp - the device grid and collective verifiers ---===//

#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/ShapeCheck.h"

#include "mlir/IR/BuiltinOps.h"

#include "llvm/ADT/StringSet.h"

using namespace mlir;

namespace kiln {

//===----------------------------------------------------------------------===//
// GridAttr
//===----------------------------------------------------------------------===//

LogicalResult GridAttr::verify(function_ref<InFlightDiagnostic()> emitError, ArrayAttr axes,
                               ArrayRef<int64_t> shape) {
  if (axes.size() != shape.size())
    return emitError() << "expects one size per grid axis, got " << axes.size() << " axes and "
                       << shape.size() << " sizes";
  llvm::StringSet<> seen;
  for (auto [axis, size] : llvm::zip(axes, shape)) {
    auto name = dyn_cast<StringAttr>(axis);
    if (!name || name.getValue().empty())
      return emitError() << "expects grid axes to be non-empty strings, got " << axis;
    if (!seen.insert(name.getValue()).second)
      return emitError() << "expects distinct grid axes, got \"" << name.getValue()
                         << "\" twice";
    if (size < 1)
      return emitError() << "expects grid axis \"" << name.getValue()
                         << "\" to have size >= 1, got " << size;
  }
  return success();
}

GridAttr GridAttr::lookup(Operation *op) {
  auto module = isa<ModuleOp>(op) ? cast<ModuleOp>(op) : op->getParentOfType<ModuleOp>();
  return module ? module->getAttrOfType<GridAttr>("kiln.grid") : GridAttr();
}

int64_t GridAttr::axisIndex(StringRef name) const {
  for (auto [i, axis] : llvm::enumerate(getAxes()))
    if (cast<StringAttr>(axis).getValue() == name)
      return int64_t(i);
  return -1;
}

int64_t GridAttr::numRanks() const {
  int64_t n = 1;
  for (int64_t size : getShape())
    n *= size;
  return n;
}

SmallVector<int64_t> GridAttr::coordinates(int64_t rank) const {
  ArrayRef<int64_t> shape = getShape();
  SmallVector<int64_t> coords(shape.size());
  for (int64_t i = int64_t(shape.size()) - 1; i >= 0; --i) {
    coords[i] = rank % shape[i];
    rank /= shape[i];
  }
  return coords;
}

int64_t GridAttr::rankOf(ArrayRef<int64_t> coords) const {
  int64_t rank = 0;
  for (auto [c, size] : llvm::zip(coords, getShape()))
    rank = rank * size + c;
  return rank;
}

SmallVector<int64_t> GridAttr::group(int64_t rank, ArrayAttr groupAxes) const {
  SmallVector<int64_t> base = coordinates(rank);
  SmallVector<int64_t> inGroup; // grid indices of the group's axes, grid order
  for (auto [i, axis] : llvm::enumerate(getAxes()))
    if (llvm::is_contained(groupAxes, axis))
      inGroup.push_back(int64_t(i));
  SmallVector<int64_t> ranks;
  int64_t size = groupSize(groupAxes);
  for (int64_t index = 0; index < size; ++index) {
    SmallVector<int64_t> coords = base;
    int64_t rest = index;
    for (int64_t j = int64_t(inGroup.size()) - 1; j >= 0; --j) {
      coords[inGroup[j]] = rest % getShape()[inGroup[j]];
      rest /= getShape()[inGroup[j]];
    }
    ranks.push_back(rankOf(coords));
  }
  return ranks;
}

int64_t GridAttr::groupSize(ArrayAttr groupAxes) const {
  int64_t n = 1;
  for (Attribute axis : groupAxes)
    n *= getShape()[axisIndex(cast<StringAttr>(axis).getValue())];
  return n;
}

//===----------------------------------------------------------------------===//
// Shared checks
//===----------------------------------------------------------------------===//

/// The module's grid; an error naming `op` when there is none.
static FailureOr<GridAttr> requireGrid(Operation *op) {
  if (GridAttr grid = GridAttr::lookup(op))
    return grid;
  return op->emitOpError() << "needs a device grid: expected the enclosing module to have "
                              "a kiln.grid attribute (e.g. #kiln.grid<axes = [\"dp\"], "
                              "shape = [2]>)";
}

static std::string listAxes(GridAttr grid) {
  std::string s;
  for (auto [i, axis] : llvm::enumerate(grid.getAxes()))
    s += (i ? ", \"" : "\"") + cast<StringAttr>(axis).getValue().str() + "\"";
  return s;
}

/// `axes` are distinct axes of the grid, in grid order, at least one; returns
/// the group size.
static FailureOr<int64_t> verifyGroupAxes(Operation *op, ArrayAttr axes) {
  FailureOr<GridAttr> grid = requireGrid(op);
  if (failed(grid))
    return failure();
  if (axes.empty())
    return op->emitOpError() << "expects at least one grid axis in 'axes'";
  int64_t previous = -1;
  for (Attribute axis : axes) {
    StringRef name = cast<StringAttr>(axis).getValue();
    int64_t index = grid->axisIndex(name);
    if (index < 0)
      return op->emitOpError() << "expects axes of the grid (" << listAxes(*grid) << "), got \""
                               << name << "\"";
    if (index <= previous)
      return op->emitOpError() << "expects distinct axes in grid order (" << listAxes(*grid)
                               << "), got \"" << name << "\" out of place";
    previous = index;
  }
  return grid->groupSize(axes);
}

static LogicalResult verifyKind(Operation *op, StringRef kind, bool allowMax) {
  if (kind == "sum" || (allowMax && kind == "max"))
    return success();
  return op->emitOpError() << "expects kind \"sum\"" << (allowMax ? " or \"max\"" : "")
                           << ", got \"" << kind << "\"";
}

/// `result` is `x` with dimension `dim` multiplied (gather) or divided
/// (scatter, shard) by `groupSize`.
static LogicalResult verifyResized(Operation *op, Value x, Value result, int64_t dim,
                                   int64_t groupSize, bool grow) {
  ArrayRef<int64_t> in = shapeOf(x);
  if (dim < 0 || dim >= int64_t(in.size()))
    return op->emitOpError() << "expects dim in [0, " << in.size() << ") for x of shape "
                             << formatShape(in) << ", got " << dim;
  SmallVector<int64_t> expected(in);
  if (grow) {
    expected[dim] *= groupSize;
  } else {
    if (in[dim] % groupSize != 0)
      return op->emitOpError() << "expects dimension " << dim << " of x " << formatShape(in)
                               << " to be divisible by the group size " << groupSize;
    expected[dim] /= groupSize;
  }
  if (failed(expectShape(op, "result", shapeOf(result), expected)))
    return failure();
  return expectSameElementType(op, "x", x, "result", result);
}

static LogicalResult verifyPeer(Operation *op, StringRef axis, int64_t peer) {
  FailureOr<GridAttr> grid = requireGrid(op);
  if (failed(grid))
    return failure();
  int64_t index = grid->axisIndex(axis);
  if (index < 0)
    return op->emitOpError() << "expects an axis of the grid (" << listAxes(*grid) << "), got \""
                             << axis << "\"";
  int64_t size = grid->getShape()[index];
  if (peer < 0 || peer >= size)
    return op->emitOpError() << "expects peer in [0, " << size << ") on axis \"" << axis
                             << "\", got " << peer;
  return success();
}

//===----------------------------------------------------------------------===//
// Verifiers
//===----------------------------------------------------------------------===//

LogicalResult AllReduceOp::verify() {
  if (failed(verifyGroupAxes(*this, getAxes())))
    return failure();
  return verifyKind(*this, getKind(), /*allowMax=*/true);
}

LogicalResult AllGatherOp::verify() {
  FailureOr<int64_t> size = verifyGroupAxes(*this, getAxes());
  if (failed(size))
    return failure();
  return verifyResized(*this, getX(), getResult(), int64_t(getDim()), *size, /*grow=*/true);
}

LogicalResult ReduceScatterOp::verify() {
  FailureOr<int64_t> size = verifyGroupAxes(*this, getAxes());
  if (failed(size) || failed(verifyKind(*this, getKind(), /*allowMax=*/false)))
    return failure();
  return verifyResized(*this, getX(), getResult(), int64_t(getDim()), *size, /*grow=*/false);
}

LogicalResult LocalShardOp::verify() {
  FailureOr<int64_t> size = verifyGroupAxes(*this, getAxes());
  if (failed(size))
    return failure();
  return verifyResized(*this, getX(), getResult(), int64_t(getDim()), *size, /*grow=*/false);
}

LogicalResult AllToAllOp::verify() {
  FailureOr<int64_t> size = verifyGroupAxes(*this, getAxes());
  if (failed(size))
    return failure();
  ArrayRef<int64_t> in = shapeOf(getX()), out = shapeOf(getResult());
  if (in.empty())
    return emitOpError() << "expects x of rank >= 1 ([rows, ...]), got a 0-d tensor";
  if (out.size() != in.size() || !llvm::equal(in.drop_front(), out.drop_front())) {
    SmallVector<int64_t> rows(in);
    rows[0] = out.empty() ? 0 : out[0];
    return emitOpError() << "expects result rows shaped like x's rows (" << formatShape(rows)
                         << "), got " << formatShape(out);
  }
  if (failed(expectSameElementType(*this, "x", getX(), "result", getResult())))
    return failure();
  if (failed(expectShape(*this, "send_counts", shapeOf(getSendCounts()), {*size})) ||
      failed(expectShape(*this, "recv_counts", shapeOf(getRecvCounts()), {*size})))
    return failure();
  return expectSameElementType(*this, "send_counts", getSendCounts(), "recv_counts",
                               getRecvCounts());
}

LogicalResult SendOp::verify() { return verifyPeer(*this, getAxis(), int64_t(getPeer())); }

LogicalResult RecvOp::verify() { return verifyPeer(*this, getAxis(), int64_t(getPeer())); }

} // namespace kiln
