//===- KilnOps.td - all kiln ops, one file per op family ------------------===//

#ifndef KILN_OPS_TD
#define KILN_OPS_TD

include "dialects/kiln/KilnDenseOps.td"
include "dialects/kiln/KilnAttentionOps.td"
include "dialects/kiln/KilnDecodeOps.td"
include "dialects/kiln/KilnMoEOps.td"
include "dialects/kiln/KilnLossOps.td"
include "dialects/kiln/KilnGradOps.td"
include "dialects/kiln/KilnTrainOps.td"
include "dialects/kiln/KilnPrecisionOps.td"
include "dialects/kiln/KilnCollectiveOps.td"

#endif // KILN_OPS_TD
