//===- GradCompression.cpp - kiln-grad-compression: top-k + int8 + EF ------===//
//
// Replaces the data-parallel sum of each gradient (the kiln.all_reduce that
// kiln-data-parallel put before AdamW) by: top-k of gradient + residual on
// each rank (kiln.topk_compress, one message per tensor), an all_gather of
// the messages, and their sum (kiln.topk_decompress). The residual, what a
// rank computed but did not send yet, is step state like the AdamW moments
// (Passes.td has the contract).
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "runtime/kernels/GradCompressMath.h"

#include <cstdio>

#include <cmath>

namespace kiln {
#define GEN_PASS_DEF_KILNGRADCOMPRESSION
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

/// "0.05" for 0.05 (what the user wrote, not 5.000000e-02).
std::string shortest(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g", value);
  return text;
}

struct KilnGradCompression : impl::KilnGradCompressionBase<KilnGradCompression> {
  using Base::Base;

  void runOnOperation() override;

private:
  /// Compresses the sum `reduce` of the gradient AdamW `adam` reads.
  LogicalResult compress(func::FuncOp step, AllReduceOp reduce, AdamWOp adam, GridAttr grid);

  int64_t numTensors = 0, bytesSent = 0, bytesUncompressed = 0;
};

LogicalResult KilnGradCompression::compress(func::FuncOp step, AllReduceOp reduce, AdamWOp adam,
                                            GridAttr grid) {
  auto param = dyn_cast<BlockArgument>(adam.getParam());
  auto name = param ? step.getArgAttrOfType<StringAttr>(param.getArgNumber(), "kiln.param")
                    : StringAttr();
  if (!name)
    return adam.emitError() << "kiln-grad-compression: this AdamW updates no step argument "
                               "with a kiln.param name, so its gradient residual has no name";
  if (reduce.getKind() != "sum")
    return reduce.emitError() << "kiln-grad-compression: the gradient is reduced with '"
                              << reduce.getKind() << "'; only sums are compressed";
  auto type = cast<RankedTensorType>(reduce.getType());
  const int64_t n = type.getNumElements();
  const int64_t k = std::clamp<int64_t>(int64_t(std::ceil(ratio * double(n))), 1, n);
  const bool int8 = quantize == "int8";
  const int64_t bytes = kernels::topkMessageBytes(k, int8);
  const int64_t ranks = grid.groupSize(reduce.getAxes());
  MLIRContext *ctx = &getContext();
  OpBuilder b(reduce);
  Location loc = reduce.getLoc();

  // The residual: a step argument and result (kiln.state "grad_residual"),
  // or zeros without error feedback.
  Value residual;
  if (errorFeedback) {
    unsigned index = step.getNumArguments();
    NamedAttrList attrs;
    attrs.set("kiln.param", name);
    attrs.set("kiln.state", StringAttr::get(ctx, "grad_residual"));
    if (failed(step.insertArgument(index, type, attrs.getDictionary(ctx), loc)))
      return failure();
    residual = step.getArgument(index);
  } else {
    residual = arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(type, b.getZeroAttr(type.getElementType())));
  }
  auto compressed = TopkCompressOp::create(
      b, loc, RankedTensorType::get({bytes}, b.getI8Type()), type, reduce.getX(), residual,
      b.getI64IntegerAttr(k), b.getStringAttr(quantize));
  Value gathered = AllGatherOp::create(b, loc, RankedTensorType::get({ranks * bytes}, b.getI8Type()),
                                       compressed.getMessage(), reduce.getAxes(),
                                       b.getI64IntegerAttr(0));
  Value summed = TopkDecompressOp::create(b, loc, type, gathered, b.getI64IntegerAttr(k),
                                          b.getStringAttr(quantize));
  reduce.replaceAllUsesWith(summed);
  reduce.erase();

  if (errorFeedback) {
    auto ret = cast<func::ReturnOp>(step.getBody().front().getTerminator());
    unsigned index = step.getNumResults();
    NamedAttrList attrs;
    attrs.set("kiln.result", StringAttr::get(ctx, "grad_residual"));
    attrs.set("kiln.param", name);
    if (failed(step.insertResult(index, type, attrs.getDictionary(ctx))))
      return failure();
    ret->insertOperands(index, compressed.getNewResidual());
  }
  ++numTensors;
  bytesSent += bytes;
  bytesUncompressed += n * int64_t(type.getElementTypeBitWidth() / 8);
  return success();
}

void KilnGradCompression::runOnOperation() {
  ModuleOp module = getOperation();
  if (!(ratio > 0 && ratio <= 1) || (quantize != "int8" && quantize != "none")) {
    module.emitError() << "kiln-grad-compression: expected 0 < ratio <= 1 and quantize 'int8' "
                          "or 'none', got ratio "
                       << shortest(ratio) << ", quantize '"
                       << quantize << "'";
    return signalPassFailure();
  }
  auto step = module.lookupSymbol<func::FuncOp>(entry);
  if (!step || step.isExternal()) {
    module.emitError() << "kiln-grad-compression: no function @" << entry << " with a body";
    return signalPassFailure();
  }
  GridAttr grid = GridAttr::lookup(module);
  if (!grid || grid.numRanks() < 2) {
    module.emitError() << "kiln-grad-compression: compresses the data-parallel sum of the "
                          "gradients, and the module has "
                       << (grid ? "one rank" : "no grid")
                       << "; run it after kiln-data-parallel with dp > 1";
    return signalPassFailure();
  }
  SmallVector<std::pair<AllReduceOp, AdamWOp>> sums;
  for (auto adam : step.getOps<AdamWOp>()) {
    if (adam.getSkip()) {
      // The residuals would hold scaled gradients (whose scale changes) and,
      // after an overflow, inf or NaN for every later step.
      adam.emitError() << "kiln-grad-compression: this AdamW is skipped on overflow (dynamic "
                          "loss scaling, precision fp16); error feedback would carry scaled and "
                          "non-finite gradients across steps: use precision bf16 with "
                          "compression";
      return signalPassFailure();
    }
    Operation *def = adam.getGrad().getDefiningOp();
    if (isa_and_nonnull<ReduceScatterOp>(def)) {
      adam.emitError() << "kiln-grad-compression: this gradient is reduce-scattered (ZeRO-1); "
                          "compression is built for the all_reduce of replicated optimizer "
                          "state: use zero 0";
      return signalPassFailure();
    }
    auto reduce = dyn_cast_or_null<AllReduceOp>(def);
    if (!reduce) {
      adam.emitError() << "kiln-grad-compression: expected this AdamW's gradient to come from "
                          "the kiln.all_reduce kiln-data-parallel inserts";
      return signalPassFailure();
    }
    sums.push_back({reduce, adam});
  }
  if (sums.empty()) {
    step.emitError() << "kiln-grad-compression: @" << entry << " has no AdamW update to "
                     << "compress the gradients of";
    return signalPassFailure();
  }
  for (auto [reduce, adam] : sums)
    if (failed(compress(step, reduce, adam, grid)))
      return signalPassFailure();
  if (report)
    step.emitRemark() << "kiln-grad-compression: " << numTensors << " gradients, top-k "
                      << shortest(ratio) << " with " << quantize
                      << " values"
                      << (errorFeedback ? " and error feedback" : ", no error feedback")
                      << ": each rank sends " << bytesSent << " bytes per step where the "
                      << "all_reduce sent " << bytesUncompressed;
}

} // namespace
} // namespace kiln
