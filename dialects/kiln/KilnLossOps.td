//===- KilnLossOps.td - training losses -----------------------------------===//

#ifndef KILN_LOSS_OPS_TD
#define KILN_LOSS_OPS_TD

include "dialects/kiln/KilnDialect.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Kiln_CrossEntropyOp : Kiln_Op<"cross_entropy", [Pure, DeclareOpInterfaceMethods<Kiln_DifferentiableOpInterface>]> {
  let summary = "Masked mean softmax cross-entropy with label smoothing";
  let description = [{
    `logits` is [i..., vocab], `targets` is [i...] (class ids in [0, vocab))
    and `mask` is [i...] (1 = counted, 0 = ignored; SFT masks prompt tokens,
    next-token losses mask the last position). With `p = softmax(logits[i])`
    and smoothing `eps` (`label_smoothing`, in [0, 1)):

    ```
    ce[i]  = (1 - eps) * -log p[targets[i]] + eps * mean_c(-log p[c])
    result = sum_i mask[i] * ce[i] / sum_i mask[i]     (0 when sum_i mask[i] = 0)
    ```

    This is `torch.nn.functional.cross_entropy(..., label_smoothing=eps)`
    over the unmasked positions. The result is a 0-d tensor.

    With the optional `count` (a 0-d float), the sum is divided by `count`
    instead of `sum_i mask[i]` (0 when count = 0): kiln-data-parallel passes
    the unmasked tokens of the whole global batch, so each rank's result is
    its share of the global mean and the shares add up to it.

    ```mlir
    %loss = kiln.cross_entropy %logits, %targets, %mask {label_smoothing = 0.0 : f64}
        : (tensor<4x32x256xf32>, tensor<4x32xi32>, tensor<4x32xf32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$logits, Kiln_IntTensor:$targets,
                       Kiln_FloatTensor:$mask, Optional<Kiln_Scalar>:$count,
                       DefaultValuedAttr<F64Attr, "0.0">:$label_smoothing);
  let results = (outs Kiln_Scalar:$result);
  let assemblyFormat = [{
    $logits `,` $targets `,` $mask (`count` $count^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

#endif // KILN_LOSS_OPS_TD
