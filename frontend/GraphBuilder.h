//===- GraphBuilder.h - helpers for emitting kiln IR from a model config --===//
//
// MLIRGen builds @forward out of block functions (one func.func per distinct
// block kind, called once per layer). A block declares its parameters as
// ParamDecls (name relative to the layer, HF shape, initialiser); @forward
// gets one argument per (layer, parameter) carrying the full HF name, and
// passes them to the block call. Graph wraps an OpBuilder with the few
// shape-manipulating helpers the model code needs, each op located at the HF
// module it comes from.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_FRONTEND_GRAPHBUILDER_H
#define KILN_FRONTEND_GRAPHBUILDER_H

#include "dialects/kiln/KilnDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

#include <functional>
#include <string>
#include <vector>

namespace kiln::frontend {

struct ParamDecl {
  std::string name; ///< relative to the layer ("self_attn.o_proj.weight"); "*" = expert
  llvm::SmallVector<int64_t, 3> shape; ///< IR shape (stacked experts: [E, out, in])
  std::string init = "normal";         ///< normal | ones | zeros
  bool trainable = true;
};

/// The values of a block function's parameters, by relative name.
class ParamScope {
public:
  void bind(const std::string &name, mlir::Value v) { values[name] = v; }
  mlir::Value operator[](llvm::StringRef name) const;

private:
  llvm::StringMap<mlir::Value> values;
};

class Graph {
public:
  Graph(mlir::OpBuilder &builder, double initStd) : b(builder), initStd(initStd) {}

  mlir::OpBuilder &builder() { return b; }
  mlir::Location loc(llvm::StringRef hfModule);
  mlir::RankedTensorType f32(llvm::ArrayRef<int64_t> shape);
  mlir::RankedTensorType i32(llvm::ArrayRef<int64_t> shape);
  static llvm::ArrayRef<int64_t> shape(mlir::Value v);

  mlir::Value linear(mlir::Value x, mlir::Value w, llvm::StringRef where);
  mlir::Value rmsNorm(mlir::Value x, mlir::Value gamma, double eps, llvm::StringRef where);
  /// down_proj(swiglu(gate_proj(x), up_proj(x))), params under `prefix`.
  mlir::Value mlp(mlir::Value x, const ParamScope &p, llvm::StringRef prefix);
  mlir::Value add(mlir::Value a, mlir::Value b, llvm::StringRef where);
  /// x[..., offset : offset + size, ...] along `dim`.
  mlir::Value slice(mlir::Value x, int64_t dim, int64_t offset, int64_t size,
                    llvm::StringRef where);
  mlir::Value concat(mlir::ValueRange parts, int64_t dim, llvm::StringRef where);
  /// [B, S, n*d] -> [B, S, n, d]
  mlir::Value splitHeads(mlir::Value x, int64_t heads, llvm::StringRef where);
  /// [B, S, n, d] -> [B, S, n*d]
  mlir::Value mergeHeads(mlir::Value x, llvm::StringRef where);
  /// [a*b, c] -> [a, b, c] (a weight's rows, e.g. per head).
  mlir::Value splitRows(mlir::Value x, int64_t a, llvm::StringRef where);
  /// [B, S, H] <-> [B*S, H]
  mlir::Value flattenTokens(mlir::Value x, llvm::StringRef where);
  mlir::Value unflattenTokens(mlir::Value x, int64_t batch, llvm::StringRef where);
  /// Along dim 1: y[:, i] = x[:, (i + k) % S].
  mlir::Value rollLeft(mlir::Value x, int64_t k, llvm::StringRef where);
  /// Along dim 1: y[:, i] = x[:, i + k] for i + k < S, else 0.
  mlir::Value shiftLeftZeroFill(mlir::Value x, int64_t k, llvm::StringRef where);

  /// Defines `func.func private @name(inputs..., params...) -> results` whose
  /// body `build` fills from the input values and the parameter scope.
  mlir::func::FuncOp defineBlock(
      mlir::ModuleOp module, llvm::StringRef name, mlir::TypeRange inputs,
      llvm::ArrayRef<ParamDecl> params, mlir::TypeRange results,
      const std::function<llvm::SmallVector<mlir::Value>(mlir::ValueRange inputs,
                                                         const ParamScope &)> &build);

  /// Sets kiln.param / kiln.init / kiln.init_std on argument `i` of `func`.
  void annotateParam(mlir::func::FuncOp func, unsigned i, const ParamDecl &decl,
                     llvm::StringRef fullName);

private:
  mlir::OpBuilder &b;
  double initStd;
};

} // namespace kiln::frontend

#endif // KILN_FRONTEND_GRAPHBUILDER_H
