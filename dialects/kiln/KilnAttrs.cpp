//===- KilnAttrs.cpp - kiln attribute verifiers and shape-check helpers ---===//

#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/ShapeCheck.h"

#include "llvm/Support/raw_ostream.h"

using namespace mlir;

namespace kiln {

std::string formatShape(llvm::ArrayRef<int64_t> shape) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << "[";
  llvm::interleaveComma(shape, os);
  os << "]";
  return s;
}

LogicalResult expectShape(Operation *op, StringRef name,
                          ArrayRef<int64_t> actual, ArrayRef<int64_t> expected) {
  if (actual == expected)
    return success();
  return op->emitOpError() << "expects " << name << " of shape "
                           << formatShape(expected) << ", got "
                           << formatShape(actual);
}

LogicalResult expectRank(Operation *op, StringRef name, ArrayRef<int64_t> shape,
                         int64_t rank) {
  if ((int64_t)shape.size() == rank)
    return success();
  return op->emitOpError() << "expects " << name << " of rank " << rank
                           << ", got rank " << shape.size() << " (shape "
                           << formatShape(shape) << ")";
}

LogicalResult expectSameElementType(Operation *op, StringRef aName, Value a,
                                    StringRef bName, Value b) {
  Type ta = cast<ShapedType>(a.getType()).getElementType();
  Type tb = cast<ShapedType>(b.getType()).getElementType();
  if (ta == tb)
    return success();
  return op->emitOpError() << "expects " << bName << " to have the element type of "
                           << aName << " (" << ta << "), got " << tb;
}

FailureOr<llvm::APFloat> parseF64Parameter(AsmParser &parser) {
  double value;
  if (parser.parseFloat(value))
    return failure();
  return llvm::APFloat(value);
}

LogicalResult YarnAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                               llvm::APFloat factorAP, int64_t originalMaxPositions,
                               llvm::APFloat betaFastAP, llvm::APFloat betaSlowAP,
                               llvm::APFloat, llvm::APFloat) {
  double factor = factorAP.convertToDouble();
  double betaFast = betaFastAP.convertToDouble(), betaSlow = betaSlowAP.convertToDouble();
  if (!(factor > 0))
    return emitError() << "expects yarn factor > 0, got " << factor;
  if (originalMaxPositions <= 0)
    return emitError() << "expects yarn original_max_position_embeddings > 0, got "
                       << originalMaxPositions;
  if (!(betaFast > 0) || !(betaSlow > 0))
    return emitError() << "expects yarn beta_fast and beta_slow > 0, got "
                       << betaFast << " and " << betaSlow;
  return success();
}

} // namespace kiln
