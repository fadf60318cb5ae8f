//===- HostLaunchEmitter.h - The emitter behind emitHostLaunch -*- C++ -*-===//
//
// Private to codegen/: the LaunchEmitter class that HostLaunches.cpp (checks,
// attributes, dispatch) and the per-family HostLaunches*.cpp files (one
// emitter method per catalog kernel) share, and the literal helpers they use.
//
// One emitter per kernel of the catalog (KernelCatalog.cpp). Each checks the
// element types and ranks it relies on, reads its attributes from `params`
// (applying the ODS default of the kiln op where the attribute may be
// absent), and writes the call into a buffer that reaches `os` only when
// every check passed, so a failed launch emits nothing.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CODEGEN_HOSTLAUNCHEMITTER_H
#define KILN_CODEGEN_HOSTLAUNCHEMITTER_H

#include "codegen/CppLiterals.h"
#include "codegen/HostLaunches.h"
#include "runtime/kernels/Copy.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>

namespace kiln::codegen::detail {

using namespace mlir;

using kernels::kMaxCopyRank;

inline std::string boolLiteral(bool b) { return b ? "true" : "false"; }

inline std::string intLiteral(int64_t v) { return std::to_string(v); }

/// "{4, 32, 64}" (a kiln::kernels::Dims, or an array initialiser).
inline std::string braced(ArrayRef<int64_t> values) {
  std::string s = "{";
  llvm::ListSeparator sep;
  for (int64_t v : values)
    (s += sep) += std::to_string(v);
  return s + "}";
}

inline std::string braced(ArrayRef<std::string> values) {
  return "{" + llvm::join(values, ", ") + "}";
}

inline int64_t product(ArrayRef<int64_t> dims) {
  int64_t p = 1;
  for (int64_t d : dims)
    p *= d;
  return p;
}

/// Emits the C++ of one launch. Checks and attribute reads record the first
/// error on the launch and make later reads return placeholders; `finish`
/// then fails without writing anything.
class LaunchEmitter {
public:
  LaunchEmitter(kernel::LaunchOp launch, const LaunchArgs &args, StringRef indent,
                LaunchTarget target)
      : launch(launch), args(args), params(launch.getParams()), indent(indent.str()),
        target(target), stream(text) {}

  LogicalResult run(raw_ostream &os);

private:
  using EmitFn = void (LaunchEmitter::*)();
  static const std::pair<StringRef, EmitFn> kEmitters[];

  // Kernels.
  void embedding();
  void embeddingGrad();
  void linear();
  void linearDgrad();
  void linearWgrad();
  void rmsNorm();
  void rmsNormGrad();
  void broadcast();
  void unbroadcast();
  void rope();
  void attention();
  void attentionGrad();
  void cacheWrite();
  void cachedAttention();
  void headMatmul();
  void router();
  void routerGrad();
  void dispatch();
  void dispatchGrad();
  void combine();
  void combineGrad();
  void groupedMatmul();
  void groupedMatmulDgrad();
  void groupedMatmulWgrad();
  void expertLoad();
  void expertCapacity();
  void topkCompress();
  void topkDecompress();
  void balanceLoss();
  void balanceLossGrad();
  void expertCounts();
  void segmentTranspose();
  void crossEntropy();
  void crossEntropyGrad();
  void tokenLogprobs();
  void grpoLoss();
  void grpoLossGrad();
  void lrSchedule();
  void sparsityMask24();
  void globalNorm();
  void clipScale();
  void gradScaler();
  void adamw();
  void biasUpdate();
  void fill();
  void extractSlice();
  void insertSlice();
  void concat();
  void allReduce();
  void allGather();
  void reduceScatter();
  void localShard();
  void allToAll();
  void send();
  void recv();
  void sendStart();
  void recvStart();
  void p2pWait();
  void streamWait();
  void quantizeFp8();
  void dequantizeFp8();
  void scaledMatmul();
  void quantizeFp8Grouped();
  void scaledGroupedMatmul();
  void scaledGroupedMatmulWgrad();
  void pointToPoint(bool isSend);
  void postPointToPoint(bool isSend);
  void resizingCollective(StringRef fn, bool gather);
  /// The start of a collective's call (HostLaunchesCollectives.cpp).
  std::string collectiveCallee(StringRef fn);
  /// kiln-overlap-collectives' event as the CUDA call's last argument.
  std::string eventArgument();
  void globalSequences(std::vector<std::string> callArgs);
  /// grpo_loss's and grpo_loss_grad's ins 0-5 checked; their sizes
  /// {rows, seq, vocab}.
  std::vector<std::string> grpoOperands();
  /// Their attributes as the kernels' trailing arguments (temperature,
  /// clip_low, clip_high, beta, aggregation, max_tokens), ODS defaults for
  /// absent ones.
  std::vector<std::string> grpoAttributes();

  // Errors.
  InFlightDiagnostic error() {
    failed = true;
    return launch.emitOpError() << "kernel '" << launch.getKernel() << "': ";
  }
  /// Records an error unless one was already reported (later checks may
  /// fail only because of the first).
  template <typename... Parts> void fail(const Parts &...parts) {
    if (failed)
      return;
    InFlightDiagnostic diag = error();
    (diag << ... << parts);
  }

  // Operands.
  MemRefType inType(unsigned i) { return cast<MemRefType>(launch.getIns()[i].getType()); }
  MemRefType outType(unsigned i) { return cast<MemRefType>(launch.getOuts()[i].getType()); }
  ArrayRef<int64_t> inShape(unsigned i) { return inType(i).getShape(); }
  ArrayRef<int64_t> outShape(unsigned i) { return outType(i).getShape(); }
  int64_t inCount(unsigned i) { return inType(i).getNumElements(); }
  int64_t outCount(unsigned i) { return outType(i).getNumElements(); }
  const std::string &in(unsigned i) { return args.ins[i]; }
  const std::string &out(unsigned i) { return args.outs[i]; }
  bool cuda() const { return target == LaunchTarget::Cuda; }
  /// A scalar buffer's value as a kernel argument: `*p` on the host; on
  /// CUDA the device pointer `p`, which the launcher's kernel reads.
  std::string deref(const std::string &p) { return cuda() ? p : "*" + p; }

  /// Checks element types: one letter per in and per out, 'f' f32, 'w' f32
  /// or bf16 or f16, 'q' f8E4M3FN, 'i' i32, 'b' i8, 'l' i64. A single letter
  /// stands for every operand of a variadic list.
  void elements(StringRef ins, StringRef outs);
  void checkElement(Type type, char want, StringRef what, unsigned index);
  /// Checks that every operand has the same element type, f32 or i32;
  /// returns "float" or "int32_t".
  std::string sameElements();
  /// Checks that the float operands all have one element type (a GEMM that
  /// kiln-mixed-precision lowered reads and writes one narrow type).
  void sameFloatElements();
  /// Checks that the operand has rank `rank` (or at least `minRank`).
  void rank(bool isIn, unsigned i, int64_t rank);
  void minRank(bool isIn, unsigned i, int64_t rank);
  void scalar(bool isIn, unsigned i);
  void sameCount(int64_t a, int64_t b, StringRef what);

  // Attributes.
  Attribute param(StringRef name, StringRef kind, bool hasDefault);
  double f64(StringRef name, std::optional<double> dflt = std::nullopt);
  bool flag(StringRef name, std::optional<bool> dflt = std::nullopt);
  int64_t i64(StringRef name);
  StringRef str(StringRef name);
  SmallVector<int64_t> i64Array(StringRef name, int64_t size);
  /// scoring = "softmax" (true) or "sigmoid" (false).
  bool softmaxScoring();
  /// `kiln::kernels::Fp8Tiles{...}` for a buffer of `shape` quantized in
  /// tiles of the `blockName` attribute, after checking that the scales
  /// buffer `scales` has one entry per tile.
  std::string fp8Tiles(ArrayRef<int64_t> shape, StringRef blockName, MemRefType scales);

  // Output.
  void line(const Twine &s) { stream << indent << s << "\n"; }
  void open() {
    line("{");
    indent += "  ";
  }
  void close() {
    indent.resize(indent.size() - 2);
    line("}");
  }
  /// `kiln::kernels::fn(` on the host, `kiln::cuda::fn(stream, ` on CUDA:
  /// the start of a call whose arguments follow.
  std::string callee(StringRef fn, bool hasArgs = true) {
    return cuda() ? "kiln::cuda::" + fn.str() + (hasArgs ? "(stream, " : "(stream")
                  : "kiln::kernels::" + fn.str() + "(";
  }
  /// `kiln::kernels::fn(args);` (CUDA: `kiln::cuda::fn(stream, args);`).
  void call(StringRef fn, ArrayRef<std::string> callArgs) {
    line(callee(fn, !callArgs.empty()) + llvm::join(callArgs, ", ") + ");");
  }
  /// `if (!kiln::kernels::fn(args, &error)) return false;` (CUDA: the
  /// launcher checks what it knows on the host the same way; what a kernel
  /// finds in the data it records as a device error).
  void checkedCall(StringRef fn, ArrayRef<std::string> callArgs, StringRef trailing = "") {
    line("if (!" + callee(fn) + llvm::join(callArgs, ", ") + ", &error" +
         (trailing.empty() ? "" : ", " + trailing.str()) + ")) return false;");
  }
  /// `*result = kiln::kernels::fn(args);` on the host; on CUDA
  /// `kiln::cuda::fn(stream, result, args);`, written on the device.
  void callInto(const std::string &result, StringRef fn, ArrayRef<std::string> callArgs) {
    if (cuda()) {
      SmallVector<std::string> all = {result};
      all.append(callArgs.begin(), callArgs.end());
      return call(fn, all);
    }
    line("*" + result + " = kiln::kernels::" + fn + "(" + llvm::join(callArgs, ", ") + ");");
  }
  /// Copies in `i` to out `o` unless they are the same buffer (for kernels
  /// that update in place).
  void copyInPlace(unsigned i, unsigned o) {
    if (launch.getIns()[i] != launch.getOuts()[o])
      call("copy", {out(o), in(i), intLiteral(inCount(i))});
  }

  kernel::LaunchOp launch;
  const LaunchArgs &args;
  DictionaryAttr params;
  std::string indent;
  LaunchTarget target;
  std::string text;
  llvm::raw_string_ostream stream;
  bool failed = false;
};

} // namespace kiln::codegen::detail

#endif // KILN_CODEGEN_HOSTLAUNCHEMITTER_H
