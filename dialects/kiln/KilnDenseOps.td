//===- KilnDenseOps.td - embedding, linear, matmul, norms, activations ---===//

#ifndef KILN_DENSE_OPS_TD
#define KILN_DENSE_OPS_TD

include "dialects/kiln/KilnDialect.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Kiln_EmbeddingOp : Kiln_Op<"embedding", [Pure, DeclareOpInterfaceMethods<Kiln_DifferentiableOpInterface>]> {
  let summary = "Row lookup of token ids in an embedding table";
  let description = [{
    `result[i..., h] = table[ids[i...], h]`. The table is [vocab, hidden]
    (HF `model.embed_tokens.weight`); ids of any rank give a result of that
    rank plus one. Every id must lie in [0, vocab): the evaluator and the
    runtime reject out-of-range ids rather than read outside the table.

    ```mlir
    %h = kiln.embedding %table, %tokens
        : (tensor<256x64xf32>, tensor<4x32xi32>) -> tensor<4x32x64xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$table, Kiln_IntTensor:$ids);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = "$table `,` $ids attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_LinearOp : Kiln_Op<"linear", [Pure, DeclareOpInterfaceMethods<Kiln_DifferentiableOpInterface>]> {
  let summary = "x @ weight^T with a Hugging Face [out, in] weight";
  let description = [{
    `result[i..., n] = sum_k x[i..., k] * weight[n, k]`: an `nn.Linear` with
    no bias. `x` has any rank >= 1; `weight` is [N, K]. Autodiff splits this op
    into its input gradient (a linear with the transposed weight) and its
    weight gradient (a matmul), kept as separate ops.

    ```mlir
    %y = kiln.linear %x, %w
        : (tensor<4x32x64xf32>, tensor<128x64xf32>) -> tensor<4x32x128xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$x, Kiln_FloatTensor:$weight);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = "$x `,` $weight attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_MatmulOp : Kiln_Op<"matmul", [Pure, DeclareOpInterfaceMethods<Kiln_DifferentiableOpInterface>]> {
  let summary = "Batched matrix product with optional transposes";
  let description = [{
    `lhs` is [batch..., M, K] ([batch..., K, M] with `transpose_lhs`), `rhs`
    is [batch..., K, N] ([batch..., N, K] with `transpose_rhs`); the batch
    dimensions must be equal (no broadcasting) and the result is
    [batch..., M, N]: `result[b, m, n] = sum_k lhs'[b, m, k] * rhs'[b, k, n]`.

    ```mlir
    %c = kiln.matmul %a, %b {transpose_rhs = true}
        : (tensor<8x16x32xf32>, tensor<8x24x32xf32>) -> tensor<8x16x24xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$lhs, Kiln_FloatTensor:$rhs,
                       DefaultValuedAttr<BoolAttr, "false">:$transpose_lhs,
                       DefaultValuedAttr<BoolAttr, "false">:$transpose_rhs);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_RMSNormOp : Kiln_Op<"rms_norm", [Pure, DeclareOpInterfaceMethods<Kiln_DifferentiableOpInterface>]> {
  let summary = "Root-mean-square normalisation over the last dimension";
  let description = [{
    `result[i..., h] = x[i..., h] / sqrt(mean_h(x[i..., :]^2) + epsilon) * gamma[h]`
    (HF `LlamaRMSNorm` / `DeepseekV3RMSNorm`; the statistics are computed in
    at least f32 whatever the element type).

    ```mlir
    %y = kiln.rms_norm %x, %gamma {epsilon = 1.0e-06 : f64}
        : (tensor<4x32x64xf32>, tensor<64xf32>) -> tensor<4x32x64xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$x, Kiln_FloatTensor:$gamma, F64Attr:$epsilon);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = "$x `,` $gamma attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Kiln_SiluOp : Kiln_Op<"silu", [Pure, DeclareOpInterfaceMethods<Kiln_DifferentiableOpInterface>, SameOperandsAndResultType]> {
  let summary = "x * sigmoid(x), elementwise";
  let description = [{
    ```mlir
    %y = kiln.silu %x : tensor<4x128xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$x);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = "$x attr-dict `:` type($x)";
}

def Kiln_SwigluOp : Kiln_Op<"swiglu", [Pure, DeclareOpInterfaceMethods<Kiln_DifferentiableOpInterface>, SameOperandsAndResultType]> {
  let summary = "silu(gate) * up, elementwise (the SwiGLU gate of an MLP)";
  let description = [{
    `result = gate * sigmoid(gate) * up`; `gate` and `up` have the same type.
    An MLP is `linear(swiglu(linear(x, gate_proj), linear(x, up_proj)), down_proj)`.

    ```mlir
    %a = kiln.swiglu %gate, %up : tensor<4x32x128xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$gate, Kiln_FloatTensor:$up);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = "$gate `,` $up attr-dict `:` type($result)";
}

def Kiln_ScaleOp : Kiln_Op<"scale", [Pure, SameOperandsAndResultType,
                                      DeclareOpInterfaceMethods<Kiln_DifferentiableOpInterface>]> {
  let summary = "x * factor, with the factor an f64 attribute";
  let description = [{
    Multiplies every element by `factor`. The factor is an f64 attribute
    rather than an `arith.constant` of the element type, so that a loss
    weight such as 0.3 is exact in the reference evaluator (an f32 constant
    would be 0.30000001); kernels round it to the element type.

    ```mlir
    %w = kiln.scale %mtp_loss {factor = 3.0e-01 : f64} : tensor<f32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$x, F64Attr:$factor);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = "$x attr-dict `:` type($x)";
}

def Kiln_BroadcastOp : Kiln_Op<"broadcast", [Pure, DeclareOpInterfaceMethods<Kiln_DifferentiableOpInterface>]> {
  let summary = "Repeats size-1 dimensions to a larger shape of the same rank";
  let description = [{
    Each dimension of `x` is either equal to the result's or 1, in which case
    it is repeated: `result[i] = x[i with size-1 dims set to 0]`. MLA uses it
    to share the single rotary key head across all attention heads. Its
    gradient sums over the repeated dimensions.

    ```mlir
    %k = kiln.broadcast %k_pe : (tensor<4x32x1x8xf32>) -> tensor<4x32x16x8xf32>
    ```
  }];
  let arguments = (ins Kiln_FloatTensor:$x);
  let results = (outs Kiln_FloatTensor:$result);
  let assemblyFormat = "$x attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

#endif // KILN_DENSE_OPS_TD
