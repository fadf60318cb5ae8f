//===- KilnInterfaces.td - interfaces of kiln ops -------------------------===//

#ifndef KILN_INTERFACES_TD
#define KILN_INTERFACES_TD

include "mlir/IR/OpBase.td"

def Kiln_DifferentiableOpInterface : OpInterface<"DifferentiableOpInterface"> {
  let cppNamespace = "::kiln";
  let description = [{
    An op whose reverse-mode gradient kiln-autodiff can build. The rule reads
    the gradients of the op's results from a GradientContext (null when a
    result has no gradient), emits backward ops with the builder, and sets
    the gradient of each differentiable operand. Forward values are read
    through `context.forward(v)`, because the backward may live in another
    function than the forward (a block's backward function receives the
    values saved for it as arguments).

    Rules live with their op family (KilnDenseGrads.cpp, ...); upstream ops
    that Kiln IR uses get the interface as external models
    (UpstreamGrads.cpp).
  }];
  let methods = [
    InterfaceMethod<"Builds the gradients of the operands from those of the results.",
      "::llvm::LogicalResult", "buildGradients",
      (ins "::mlir::OpBuilder &":$builder, "::kiln::GradientContext &":$context)>
  ];
}

#endif // KILN_INTERFACES_TD
