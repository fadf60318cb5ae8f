//===- KernelDialect.td - The kernel level: launches over planned buffers --===//
//
// The kiln_kernel dialect is Kiln's kernel level, the last IR before code is
// emitted. A training step here is one function of straight-line launches
// over memrefs: no tensors, no value semantics. State (parameters, optimizer
// moments), the batch and the step's outputs are function arguments; every
// temporary is a view into one arena whose layout was planned at compile
// time.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_KERNEL_DIALECT_TD
#define KILN_KERNEL_DIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def Kernel_Dialect : Dialect {
  let name = "kiln_kernel";
  let cppNamespace = "::kiln::kernel";
  let summary = "Kernel launches over statically planned buffers";
  let description = [{
    Produced from the kiln dialect by `convert-kiln-to-kernel`, rewritten by
    `kiln-fuse-elementwise` and `kiln-plan-arena`, and consumed by the C++
    (host) emitter. Each op's operands are static-shaped, identity-layout
    memrefs. A kernel reads its `ins` and writes its `outs`; an out may also
    be read (the optimizer updates parameters in place), never an in.
  }];
  let dependentDialects = ["::mlir::memref::MemRefDialect", "::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect", "::mlir::func::FuncDialect"];
}

class Kernel_Op<string mnemonic, list<Trait> traits = []>
    : Op<Kernel_Dialect, mnemonic, traits>;

def Kernel_Buffer : StaticShapeMemRefOf<[AnyType]>;

#endif // KILN_KERNEL_DIALECT_TD
