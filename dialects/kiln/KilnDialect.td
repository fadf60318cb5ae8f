//===- KilnDialect.td - The kiln dialect and its base classes ------------===//
//
// The kiln dialect is Kiln's graph level: ops with static-shaped tensor value
// semantics that mean what a model author means (embedding, linear, rms_norm,
// rope, attention, router, dispatch/combine, grouped_matmul, cross_entropy).
// Reshapes, slices, concatenation and plain elementwise arithmetic use the
// upstream tensor and arith dialects.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_DIALECT_TD
#define KILN_DIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "dialects/kiln/KilnInterfaces.td"

def Kiln_Dialect : Dialect {
  let name = "kiln";
  let cppNamespace = "::kiln";
  let summary = "Graph-level ops for training DeepSeek-V3 and Llama models";
  let description = [{
    Ops over static-shaped tensors. Every op's semantics is exact enough that
    its gradient and its kernels can be derived from the description alone;
    the reference evaluator (dialects/kiln/reference/) is the executable form
    of these descriptions. Element types are MLIR builtin floats (f32, bf16,
    f16, f8E4M3FN, f8E5M2); integer operands (token ids, expert indices,
    offsets) are i32 or i64.

    Weights use the Hugging Face layout: a linear layer's weight is
    [out_features, in_features], and a layer's routed experts are stacked
    into one [experts, out_features, in_features] tensor.
  }];
  let useDefaultAttributePrinterParser = 1;
  let dependentDialects = ["::mlir::tensor::TensorDialect", "::mlir::arith::ArithDialect"];
}

class Kiln_Op<string mnemonic, list<Trait> traits = []>
    : Op<Kiln_Dialect, mnemonic, traits>;

class Kiln_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Kiln_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

// Static-shaped tensors: shapes come from the spec, so every kiln value has a
// fully known shape and the memory planner can price it at compile time.
def Kiln_FloatTensor : StaticShapeTensorOf<[AnyFloat]>;
def Kiln_IntTensor : StaticShapeTensorOf<[I32, I64]>;
def Kiln_Scalar : 0DTensorOf<[AnyFloat]>;

#endif // KILN_DIALECT_TD
