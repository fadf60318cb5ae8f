//===- KilnCollectiveOps.td - communication between ranks -----------------===//
//
// Kiln's own collectives over named axes of the module's device grid
// (`kiln.grid`). MLIR 22's `shard` dialect has a grid too, but its
// `shard.all_to_all` splits evenly (MoE dispatch needs per-rank counts), its
// partitioner needs every op to implement ShardingInterface, and
// `convert-shard-to-mpi` lowers only all_reduce; so the ops live here, each
// with a verifier, a gradient rule (KilnCollectiveGrads.cpp), an evaluator
// rule (reference/CollectiveRules.cpp, run by the multi-rank evaluator) and a
// kernel-level form (a `kiln_kernel.launch` of the same name that the
// emitted program turns into a runtime/comm call).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_COLLECTIVE_OPS_TD
#define KILN_COLLECTIVE_OPS_TD

include "dialects/kiln/KilnDialect.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Kiln_GridAttr : Kiln_Attr<"Grid", "grid"> {
  let summary = "The device grid of a multi-rank program: named axes and their sizes";
  let description = [{
    Attached to the module as `kiln.grid`. Ranks are numbered row-major over
    the axes (the last axis varies fastest), so with
    `#kiln.grid<axes = ["pp", "dp"], shape = [2, 4]>` rank 5 is pp 1, dp 1.
    A collective's `axes` name the axes its group spans: the group of a rank
    is every rank that agrees with it on all other axes, and a rank's index
    in its group is its row-major coordinate over `axes` (in grid order).
  }];
  let parameters = (ins "::mlir::ArrayAttr":$axes, ArrayRefParameter<"int64_t">:$shape);
  let assemblyFormat = "`<` `axes` `=` $axes `,` `shape` `=` `[` $shape `]` `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// The grid of the module enclosing `op` (its `kiln.grid`), or null.
    static GridAttr lookup(::mlir::Operation *op);
    /// Index of axis `name` in the grid, or -1.
    int64_t axisIndex(::llvm::StringRef name) const;
    int64_t numRanks() const;
    /// Row-major coordinates of `rank`.
    ::llvm::SmallVector<int64_t> coordinates(int64_t rank) const;
    int64_t rankOf(::llvm::ArrayRef<int64_t> coordinates) const;
    /// Ranks in the group of `rank` over `groupAxes`, in group order.
    ::llvm::SmallVector<int64_t> group(int64_t rank, ::mlir::ArrayAttr groupAxes) const;
    /// Product of the sizes of `groupAxes` (all must be in the grid).
    int64_t groupSize(::mlir::ArrayAttr groupAxes) const;
  }];
}

// Collectives read and write the network: never removed, merged or reordered
// across one another, whatever their results' uses.
class Kiln_CollectiveOp<string mnemonic, list<Trait> traits = []>
    : Kiln_Op<mnemonic, !listconcat(traits, [MemoryEffects<[MemRead, MemWrite]>])> {
  let hasVerifier = 1;
}

def Kiln_AllReduceOp : Kiln_CollectiveOp<"all_reduce", [SameOperandsAndResultType,
    DeclareOpInterfaceMethods<Kiln_DifferentiableOpInterface>]> {
  let summary = "Elementwise sum or max of a tensor over the ranks of a group";
  let description = [{
    Every rank of the group over `axes` contributes `x` of the same shape and
    receives `result[i] = reduce over ranks r of x_r[i]`, with `kind` "sum"
    (accumulated in group order 0, 1, ..., so every rank gets the same bits)
    or "max".

    Gradient: for "sum" the gradient of `x` is the all_reduce sum of the
    result's gradient (every rank's loss depends on every x). For "max" it
    is that sum where `x` equals the maximum, divided by the number of ranks
    holding it (ties share, as torch.amax does), 0 elsewhere.

    ```mlir
    %g = kiln.all_reduce %grad {kind = "sum", axes = ["dp"]} : tensor<64x64xf32>
    ```
  }];
  let arguments = (ins AnyStaticShapeTensor:$x, StrAttr:$kind, StrArrayAttr:$axes);
  let results = (outs AnyStaticShapeTensor:$result);
  let assemblyFormat = "$x attr-dict `:` type($x)";
}

def Kiln_AllGatherOp : Kiln_CollectiveOp<"all_gather", [
    DeclareOpInterfaceMethods<Kiln_DifferentiableOpInterface>]> {
  let summary = "Concatenates every rank's tensor along one dimension";
  let description = [{
    With G ranks in the group over `axes`, `x` of shape [..., n, ...] (`n`
    at dimension `dim`) gives [..., G*n, ...]: rank r's `x` at positions
    [r*n, (r+1)*n) of `dim`, on every rank.

    Gradient: reduce_scatter (sum) of the result's gradient along `dim`.

    ```mlir
    %p = kiln.all_gather %shard {axes = ["dp"], dim = 0 : i64} : (tensor<2048xf32>) -> tensor<4096xf32>
    ```
  }];
  let arguments = (ins AnyStaticShapeTensor:$x, StrArrayAttr:$axes, I64Attr:$dim);
  let results = (outs AnyStaticShapeTensor:$result);
  let assemblyFormat = "$x attr-dict `:` functional-type(operands, results)";
}

def Kiln_ReduceScatterOp : Kiln_CollectiveOp<"reduce_scatter", [
    DeclareOpInterfaceMethods<Kiln_DifferentiableOpInterface>]> {
  let summary = "Sums tensors over a group and gives each rank one slice of the sum";
  let description = [{
    With G ranks in the group over `axes`, `x` of shape [..., G*n, ...]
    (dimension `dim`) gives [..., n, ...]: rank r receives positions
    [r*n, (r+1)*n) of the elementwise sum over ranks (in group order) of `x`.
    `kind` is "sum" (the only reduction ZeRO needs).

    Gradient: all_gather of the result's gradient along `dim`.

    ```mlir
    %s = kiln.reduce_scatter %grad {kind = "sum", axes = ["dp"], dim = 0 : i64}
        : (tensor<4096xf32>) -> tensor<2048xf32>
    ```
  }];
  let arguments = (ins AnyStaticShapeTensor:$x, StrAttr:$kind, StrArrayAttr:$axes,
                       I64Attr:$dim);
  let results = (outs AnyStaticShapeTensor:$result);
  let assemblyFormat = "$x attr-dict `:` functional-type(operands, results)";
}

def Kiln_AllToAllOp : Kiln_CollectiveOp<"all_to_all", [
    DeclareOpInterfaceMethods<Kiln_DifferentiableOpInterface>]> {
  let summary = "Exchanges variable numbers of rows between every pair of ranks";
  let description = [{
    The exchange of MoE dispatch. `x` is [send_capacity, ...] whose first
    rows are grouped by destination: `send_counts[p]` rows (a [G] integer
    tensor) go to group rank p, in order. The op first exchanges the counts,
    then the rows: `recv_counts[p]` is how many rows came from rank p, and
    `result` [recv_capacity, ...] holds them grouped by source in rank order,
    zeros after the last. Capacities are static bounds (dropless worst case
    or a capacity factor, chosen by the pass that builds the exchange); more
    rows than `x` holds, or than `result` can hold, is a run-time error that
    names both ranks.

    Gradient: the reverse all_to_all of the result's gradient with
    `recv_counts` as its send counts, back to `x`'s shape.

    ```mlir
    %rows, %counts = kiln.all_to_all %send, %send_counts {axes = ["ep"]}
        : (tensor<64x16xf32>, tensor<4xi64>) -> (tensor<96x16xf32>, tensor<4xi64>)
    ```
  }];
  let arguments = (ins AnyStaticShapeTensor:$x, Kiln_IntTensor:$send_counts,
                       StrArrayAttr:$axes);
  let results = (outs AnyStaticShapeTensor:$result, Kiln_IntTensor:$recv_counts);
  let assemblyFormat = "$x `,` $send_counts attr-dict `:` functional-type(operands, results)";
}

def Kiln_SendOp : Kiln_CollectiveOp<"send", [
    DeclareOpInterfaceMethods<Kiln_DifferentiableOpInterface>]> {
  let summary = "Sends a tensor to one rank along a grid axis (blocking)";
  let description = [{
    Sends `x` to the rank whose coordinate on grid axis `axis` is `peer` and
    whose other coordinates equal this rank's. It returns when the matching
    `kiln.recv` (same axis, this rank as its peer, same type) has the data;
    `kiln-verify-collectives` proves every send meets its recv with no cycle
    of waits.

    Gradient: a `kiln.recv` of x's gradient from the same peer (the peer's
    recv sends its result's gradient back).

    ```mlir
    kiln.send %act {axis = "pp", peer = 1 : i64} : tensor<4x32x64xf32>
    ```
  }];
  let arguments = (ins AnyStaticShapeTensor:$x, StrAttr:$axis, I64Attr:$peer);
  let assemblyFormat = "$x attr-dict `:` type($x)";
}

def Kiln_RecvOp : Kiln_CollectiveOp<"recv", [
    DeclareOpInterfaceMethods<Kiln_DifferentiableOpInterface>]> {
  let summary = "Receives a tensor from one rank along a grid axis (blocking)";
  let description = [{
    The other half of `kiln.send`: waits for the tensor that the rank with
    coordinate `peer` on `axis` (other coordinates equal) sends to this one.

    Gradient: a `kiln.send` of the result's gradient back to the peer.

    ```mlir
    %act = kiln.recv {axis = "pp", peer = 0 : i64} : tensor<4x32x64xf32>
    ```
  }];
  let arguments = (ins StrAttr:$axis, I64Attr:$peer);
  let results = (outs AnyStaticShapeTensor:$result);
  let assemblyFormat = "attr-dict `:` type($result)";
}

def Kiln_LocalShardOp : Kiln_Op<"local_shard", [Pure]> {
  let summary = "This rank's slice of a tensor split evenly over a group";
  let description = [{
    With G ranks in the group over `axes` and this rank's group index r,
    `x` [..., G*n, ...] (dimension `dim`) gives positions [r*n, (r+1)*n) of
    `dim`. No data moves: ZeRO-1 uses it to pick the parameter slice whose
    optimizer state this rank holds, matching what `kiln.reduce_scatter`
    gives it of the gradient. It runs after kiln-autodiff and has no
    gradient rule.

    ```mlir
    %mine = kiln.local_shard %param {axes = ["dp"], dim = 0 : i64} : (tensor<4096xf32>) -> tensor<2048xf32>
    ```
  }];
  let arguments = (ins AnyStaticShapeTensor:$x, StrArrayAttr:$axes, I64Attr:$dim);
  let results = (outs AnyStaticShapeTensor:$result);
  let assemblyFormat = "$x attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

#endif // KILN_COLLECTIVE_OPS_TD
