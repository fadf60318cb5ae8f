//===- KernelOps.td - kiln_kernel ops: buffers, launches, fused loops ------===//

#ifndef KILN_KERNEL_OPS_TD
#define KILN_KERNEL_OPS_TD

include "dialects/kernel/KernelDialect.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/RegionKindInterface.td"

//===----------------------------------------------------------------------===//
// Buffers
//===----------------------------------------------------------------------===//

def Kernel_AllocOp : Kernel_Op<"alloc"> {
  let summary = "A temporary buffer whose place in the arena is not planned yet";
  let description = [{
    Made by `convert-kiln-to-kernel` for every tensor value that is not a
    function argument; `kiln-plan-arena` replaces each with a
    `kiln_kernel.buffer` at a planned offset. Its contents start undefined.

    ```mlir
    %0 = kiln_kernel.alloc : memref<4x32x64xf32>
    ```
  }];
  let results = (outs Kernel_Buffer:$result);
  let assemblyFormat = "attr-dict `:` type($result)";
}

def Kernel_BufferOp : Kernel_Op<"buffer", [Pure]> {
  let summary = "A view of the step's arena at a planned byte offset";
  let description = [{
    The enclosing function's `kiln_kernel.arena_bytes` attribute is the
    arena's size; `offset` is 64-byte aligned and the view fits inside it.
    Two buffers may overlap only if the planner proved their lifetimes
    disjoint.

    ```mlir
    %0 = kiln_kernel.buffer offset 8192 : memref<4x32x64xf32>
    ```
  }];
  let arguments = (ins I64Attr:$offset);
  let results = (outs Kernel_Buffer:$result);
  let assemblyFormat = "`offset` $offset attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Kernel_ReshapeOp : Kernel_Op<"reshape", [Pure]> {
  let summary = "The same bytes seen with another shape";
  let description = [{
    An alias, not a copy: `result` is `source` reinterpreted in row-major
    order, with the same element type and element count. Writing through
    either writes both.

    ```mlir
    %1 = kiln_kernel.reshape %0 : memref<4x32x64xf32> to memref<128x64xf32>
    ```
  }];
  let arguments = (ins Kernel_Buffer:$source);
  let results = (outs Kernel_Buffer:$result);
  let assemblyFormat = "$source attr-dict `:` type($source) `to` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Kernels
//===----------------------------------------------------------------------===//

def Kernel_LaunchOp : Kernel_Op<"launch", [AttrSizedOperandSegments]> {
  let summary = "Runs one library kernel";
  let description = [{
    `kernel` names a kernel of Kiln's kernel library (runtime/kernels/ on the
    host). For a kernel made from a kiln op the name is the op's name
    without the dialect (`linear`, `rms_norm_grad`), `ins` are the op's
    operands and `outs` its results, in order, and `params` holds the op's
    attributes. Kernels that update state in place (`adamw`,
    `bias_update`) list the updated buffers both as ins and as outs. Besides
    those, `fill` (out = `value` everywhere), `extract_slice`,
    `insert_slice` and `concat` move data. Collectives (`all_reduce`,
    `all_gather`, `reduce_scatter`, `local_shard`, `all_to_all`, `send` with
    no outs, `recv` with no ins) exchange data with other ranks through the
    runtime's communicator; `send_start` and `recv_start` post a transfer
    that the `p2p_wait` with the same `ticket` param completes
    (kiln-overlap-send-recv). A collective whose params say
    `stream = "comm"` runs on the communication stream, and the compute
    stream waits for it at the `stream_wait` with the same `event` param,
    which takes the collective's buffers (kiln-overlap-collectives). The verifier checks the name and the number of
    ins and outs against the kernel catalog.

    ```mlir
    kiln_kernel.launch "linear"(%x, %w : memref<128x64xf32>, memref<32x64xf32>)
        -> (%y : memref<128x32xf32>) {}
    ```
  }];
  let arguments = (ins StrAttr:$kernel, Variadic<Kernel_Buffer>:$ins,
                   Variadic<Kernel_Buffer>:$outs, DictionaryAttr:$params);
  let assemblyFormat = [{
    $kernel `(` ($ins^ `:` type($ins))? `)` `->` `(` ($outs^ `:` type($outs))? `)` $params attr-dict
  }];
  let hasVerifier = 1;
}

def Kernel_ElementwiseOp : Kernel_Op<"elementwise", [AttrSizedOperandSegments]> {
  let summary = "One loop over equally sized buffers, computing outs from ins per element";
  let description = [{
    For every linear index i (all operands have the same element count and
    are read in row-major order), the body receives `ins[k][i]` as its k-th
    argument and yields `outs[j][i]` as its j-th value. The body holds
    scalar `arith` and `math` ops only. `origin` lists the ops the loop was
    made from, in order, for reports and for comments in emitted code.
    `kiln-fuse-elementwise` merges chains of these into one loop.

    ```mlir
    kiln_kernel.elementwise (%a, %b : memref<64xf32>, memref<64xf32>)
        -> (%c : memref<64xf32>) origin ["arith.addf"] {
    ^bb0(%x: f32, %y: f32):
      %s = arith.addf %x, %y : f32
      kiln_kernel.yield %s : f32
    }
    ```
  }];
  let arguments = (ins Variadic<Kernel_Buffer>:$ins, Variadic<Kernel_Buffer>:$outs,
                   StrArrayAttr:$origin);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    `(` ($ins^ `:` type($ins))? `)` `->` `(` $outs `:` type($outs) `)` `origin` $origin
    attr-dict-with-keyword $body
  }];
  let hasVerifier = 1;
}

def Kernel_YieldOp : Kernel_Op<"yield", [Pure, Terminator, HasParent<"ElementwiseOp">]> {
  let summary = "The per-element results of a kiln_kernel.elementwise body";
  let arguments = (ins Variadic<AnyType>:$values);
  let assemblyFormat = "($values^ `:` type($values))? attr-dict";
}

#endif // KILN_KERNEL_OPS_TD
