//===- UpstreamGrads.h - gradient rules of the upstream ops Kiln IR uses --===//

#ifndef KILN_UPSTREAMGRADS_H
#define KILN_UPSTREAMGRADS_H

#include "mlir/IR/DialectRegistry.h"

namespace kiln {

/// Attaches DifferentiableOpInterface to arith.addf/subf/mulf/divf/negf and
/// tensor.extract_slice/insert_slice/concat/expand_shape/collapse_shape.
void registerUpstreamGradientModels(mlir::DialectRegistry &registry);

} // namespace kiln

#endif // KILN_UPSTREAMGRADS_H
