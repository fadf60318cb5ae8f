//===- kiln-run.cpp - run a kiln function on the reference evaluator ------===//
//
//   kiln-run FILE.mlir --entry F [--seed S] [--params P.safetensors]
//            [--tokens T.json] [--rounding ideal|as-typed] [--print-limit N]
//
// Arguments marked kiln.param are initialised from the seed (or read from
// --params by HF name); kiln.input arguments get the seeded token batch (or
// --tokens); any other argument gets seeded N(0, 1) values (integers: 0).
// Each result is printed as `result #i [name] : type = [values...]` with 17
// significant digits, which lit tests check with FileCheck.
//
//===----------------------------------------------------------------------===//

#include "dialects/kiln/KilnDialect.h"
#include "dialects/kiln/reference/Batch.h"
#include "dialects/kiln/reference/Evaluator.h"
#include "dialects/kiln/reference/Parameters.h"
#include "tools/common/HelpOptions.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SourceMgr.h"

using namespace mlir;
using namespace kiln::reference;
namespace cl = llvm::cl;

/// What --help lists: these, not the LLVM flags libMLIR.so registers.
static cl::OptionCategory runOptions("kiln-run options");

static cl::opt<std::string> inputFile(cl::Positional, cl::desc("<file.mlir>"), cl::Required,
                                      cl::cat(runOptions));
static cl::opt<std::string> entry("entry", cl::desc("Function to run"), cl::init("main"),
                                  cl::cat(runOptions));
static cl::opt<uint64_t> seed("seed", cl::desc("Seed for parameters and inputs"), cl::init(0),
                              cl::cat(runOptions));
static cl::opt<std::string> paramsPath("params", cl::desc("Parameters (safetensors, HF names)"),
                                       cl::cat(runOptions));
static cl::opt<std::string> tokensPath("tokens", cl::desc("Token batch (JSON array of rows)"),
                                       cl::cat(runOptions));
static cl::opt<Rounding> rounding(
    "rounding", cl::desc("How element types are treated"), cl::init(Rounding::Ideal),
    cl::values(clEnumValN(Rounding::Ideal, "ideal", "f64 throughout (the math's ground truth)"),
               clEnumValN(Rounding::AsTyped, "as-typed",
                          "every value rounded to its declared element type as the kernels "
                          "store it")),
    cl::cat(runOptions));
static cl::opt<int64_t> printLimit("print-limit",
                                   cl::desc("Print at most this many values per result"),
                                   cl::init(64), cl::cat(runOptions));

static int fail(const std::string &message) {
  llvm::errs() << "kiln-run: error: " << message << "\n";
  return 1;
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  kiln::tools::showOnlyToolAndMlirOptions({&runOptions});
  cl::ParseCommandLineOptions(argc, argv, "Kiln reference evaluator\n");

  MLIRContext context;
  context.loadDialect<kiln::KilnDialect, func::FuncDialect, arith::ArithDialect,
                      tensor::TensorDialect, math::MathDialect>();
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(inputFile, sourceMgr, &context);
  if (!module)
    return 1;
  auto func = module->lookupSymbol<func::FuncOp>(entry);
  if (!func || func.isExternal())
    return fail("no function @" + entry + " with a body in " + inputFile);

  // Arguments: parameters and inputs by their attributes, the rest seeded.
  SmallVector<RefTensor> args(func.getNumArguments());
  Signature sig;
  sig.numArgs = func.getNumArguments();
  SeededRng rng(seed, "kiln-run.args");
  for (unsigned i = 0; i < func.getNumArguments(); ++i) {
    auto type = dyn_cast<RankedTensorType>(func.getArgument(i).getType());
    if (!type || !type.hasStaticShape())
      return fail("argument #" + std::to_string(i) + " of @" + entry +
                  " is not a static-shaped tensor");
    if (func.getArgAttr(i, "kiln.param") || func.getArgAttr(i, "kiln.input"))
      continue;
    RefTensor t(type.getElementType(), type.getShape());
    if (isa<FloatType>(type.getElementType()))
      for (double &v : t.data)
        v = rng.normal();
    args[i] = std::move(t);
  }
  bool annotated = llvm::any_of(llvm::seq(0u, func.getNumArguments()), [&](unsigned i) {
    return func.getArgAttr(i, "kiln.param") || func.getArgAttr(i, "kiln.input");
  });
  if (annotated) {
    // A Kiln @forward: every argument is a parameter or an input.
    FailureOr<Signature> read = readSignature(func);
    if (failed(read))
      return 1;
    sig = std::move(*read);
    std::string error;
    if (!paramsPath.empty()) {
      if (!loadParameters(paramsPath, sig, args, error))
        return fail(error);
    } else {
      for (const ParamSlot &p : sig.params)
        args[p.argIndex] = initParameter(p, seed);
    }
    if (const InputSlot *tokens = sig.input("tokens")) {
      auto vocab = func->getAttrOfType<IntegerAttr>("kiln.vocab_size");
      if (!vocab)
        return fail("@" + entry + " has token inputs but no kiln.vocab_size attribute");
      TokenBatch batch;
      if (!tokensPath.empty()) {
        if (!readBatchJson(tokensPath, tokens->shape[0], tokens->shape[1], vocab.getInt(),
                           batch, error))
          return fail(error);
      } else {
        batch = seededBatch(tokens->shape[0], tokens->shape[1], vocab.getInt(), seed);
      }
      if (!bindNextTokenInputs(batch, sig, args, error))
        return fail(error);
    }
  }

  Evaluator evaluator(*module, rounding);
  FailureOr<SmallVector<RefTensor>> results = evaluator.call(entry, args);
  if (failed(results))
    return 1;
  for (auto [i, r] : llvm::enumerate(*results)) {
    llvm::outs() << "result #" << i;
    if (auto name = func.getResultAttrOfType<StringAttr>(i, "kiln.result"))
      llvm::outs() << " " << name.getValue();
    llvm::outs() << " : " << func.getResultTypes()[i] << " = [";
    int64_t n = std::min<int64_t>(printLimit, r.numElements());
    for (int64_t j = 0; j < n; ++j)
      llvm::outs() << (j ? ", " : "") << llvm::format("%.17g", r.data[j]);
    if (n < r.numElements())
      llvm::outs() << ", ... (" << r.numElements() - n << " more)";
    llvm::outs() << "]\n";
  }
  return 0;
}
