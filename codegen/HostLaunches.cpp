//===- HostLaunches.cpp - C++ for one kiln_kernel.launch on the host ------===//
//
// emitHostLaunch: the checks and attribute reads every kernel's emitter
// shares, and the dispatch from kernel name to emitter method. The emitters
// themselves are in HostLaunches{Dense,Attention,Decode,MoE,Optimizer,Copy,
// Collectives,Precision,Grpo}.cpp.
//
// Literals: float arguments are the shortest decimal that reads back as the
// same float, with an `f` suffix; double arguments the shortest that reads
// back as the same double; sizes are plain integers.
//
//===----------------------------------------------------------------------===//

#include "codegen/HostLaunchEmitter.h"

#include "dialects/kernel/KernelCatalog.h"
#include "dialects/kiln/KilnDialect.h"

namespace kiln::codegen {

namespace detail {


//===----------------------------------------------------------------------===//
// Checks and attributes
//===----------------------------------------------------------------------===//

void LaunchEmitter::checkElement(Type type, char want, StringRef what, unsigned index) {
  bool ok = want == 'f'   ? type.isF32()
            : want == 'w' ? type.isF32() || type.isBF16() || type.isF16()
            : want == 'q' ? isa<Float8E4M3FNType>(type)
            : want == 'i' ? type.isSignlessInteger(32)
            : want == 'b' ? type.isSignlessInteger(8)
            : want == 'k' ? type.isSignlessInteger(1)
                          : type.isSignlessInteger(64);
  if (ok)
    return;
  StringRef wanted = want == 'f'   ? "f32"
                     : want == 'w' ? "f32, bf16 or f16"
                     : want == 'q' ? "f8E4M3FN"
                     : want == 'i' ? "i32"
                     : want == 'b' ? "i8"
                     : want == 'k' ? "i1"
                                   : "i64";
  StringRef role = want == 'f'   ? "data"
                   : want == 'w' ? "data a kernel reads or writes in any wide float type"
                   : want == 'q' ? "FP8 values"
                   : want == 'i' ? "ids, indices, offsets and sources"
                   : want == 'b' ? "a compressed-gradient message"
                   : want == 'k' ? "the skip flag of a step kiln.grad_scaler skips"
                                 : "the step, loss-scaling counters or all_to_all row counts";
  fail(what, " #", index, " has element type ", type, ", but the host target expects ",
       wanted, " here (this operand is ", role, ")");
}

void LaunchEmitter::elements(StringRef ins, StringRef outs) {
  auto check = [&](ValueRange values, StringRef letters, StringRef what) {
    for (auto [i, v] : llvm::enumerate(values)) {
      char want = letters.size() == 1 ? letters[0] : letters[i];
      checkElement(cast<MemRefType>(v.getType()).getElementType(), want, what, i);
    }
  };
  check(launch.getIns(), ins, "in");
  check(launch.getOuts(), outs, "out");
}

std::string LaunchEmitter::sameElements() {
  Type first = outType(0).getElementType();
  if (!first.isF32() && !first.isSignlessInteger(32)) {
    fail("out #0 has element type ", first,
         "; the host target moves f32 and i32 buffers only");
    return "float";
  }
  for (auto [i, v] : llvm::enumerate(launch.getIns()))
    if (cast<MemRefType>(v.getType()).getElementType() != first)
      fail("in #", i, " has element type ", cast<MemRefType>(v.getType()).getElementType(),
           ", but the out has ", first, " (the host target moves f32 and i32 buffers)");
  return first.isF32() ? "float" : "int32_t";
}

void LaunchEmitter::sameFloatElements() {
  Type first;
  auto check = [&](ValueRange values, StringRef what) {
    for (auto [i, v] : llvm::enumerate(values)) {
      Type t = cast<MemRefType>(v.getType()).getElementType();
      if (!isa<FloatType>(t))
        continue;
      if (!first)
        first = t;
      else if (t != first)
        fail(what, " #", i, " has element type ", t, ", but the other float operands have ",
             first, " (the host target's GEMMs read and write one element type)");
    }
  };
  check(launch.getIns(), "in");
  check(launch.getOuts(), "out");
}

void LaunchEmitter::rank(bool isIn, unsigned i, int64_t r) {
  MemRefType t = isIn ? inType(i) : outType(i);
  if (t.getRank() != r)
    fail(isIn ? "in" : "out", " #", i, " must have rank ", r, ", got ", t);
}

void LaunchEmitter::minRank(bool isIn, unsigned i, int64_t r) {
  MemRefType t = isIn ? inType(i) : outType(i);
  if (t.getRank() < r)
    fail(isIn ? "in" : "out", " #", i, " must have rank >= ", r, ", got ", t);
}

void LaunchEmitter::scalar(bool isIn, unsigned i) {
  MemRefType t = isIn ? inType(i) : outType(i);
  if (t.getNumElements() != 1)
    fail(isIn ? "in" : "out", " #", i, " must be a scalar (one element), got ", t);
}

void LaunchEmitter::sameCount(int64_t a, int64_t b, StringRef what) {
  if (a != b)
    fail("expects ", what, " to agree, got ", a, " and ", b);
}

Attribute LaunchEmitter::param(StringRef name, StringRef kind, bool hasDefault) {
  Attribute attr = params.get(name);
  if (!attr && !hasDefault)
    fail("expects a '", name, "' ", kind, " attribute in params");
  return attr;
}

double LaunchEmitter::f64(StringRef name, std::optional<double> dflt) {
  Attribute attr = param(name, "float", dflt.has_value());
  if (!attr)
    return dflt.value_or(0.0);
  if (auto f = dyn_cast<FloatAttr>(attr))
    return f.getValueAsDouble();
  fail("expects '", name, "' to be a float attribute, got ", attr);
  return 0.0;
}

bool LaunchEmitter::flag(StringRef name, std::optional<bool> dflt) {
  Attribute attr = param(name, "bool", dflt.has_value());
  if (!attr)
    return dflt.value_or(false);
  if (auto b = dyn_cast<BoolAttr>(attr))
    return b.getValue();
  fail("expects '", name, "' to be a bool attribute, got ", attr);
  return false;
}

int64_t LaunchEmitter::i64(StringRef name) {
  Attribute attr = param(name, "integer", false);
  if (!attr)
    return 1;
  if (auto i = dyn_cast<IntegerAttr>(attr))
    return i.getInt();
  fail("expects '", name, "' to be an integer attribute, got ", attr);
  return 1;
}

StringRef LaunchEmitter::str(StringRef name) {
  Attribute attr = param(name, "string", false);
  if (!attr)
    return "";
  if (auto s = dyn_cast<StringAttr>(attr))
    return s.getValue();
  fail("expects '", name, "' to be a string attribute, got ", attr);
  return "";
}

SmallVector<int64_t> LaunchEmitter::i64Array(StringRef name, int64_t size) {
  Attribute attr = param(name, "dense i64 array", false);
  auto array = dyn_cast_or_null<DenseI64ArrayAttr>(attr);
  if (attr && !array)
    fail("expects '", name, "' to be a dense i64 array attribute, got ", attr);
  if (!array)
    return SmallVector<int64_t>(size, 1);
  if (int64_t(array.size()) != size) {
    fail("expects '", name, "' to have ", size, " entries, got ", array.size());
    return SmallVector<int64_t>(size, 1);
  }
  if (llvm::any_of(array.asArrayRef(), ShapedType::isDynamic))
    fail("expects static '", name, "', got dynamic entries");
  return SmallVector<int64_t>(array.asArrayRef());
}

bool LaunchEmitter::softmaxScoring() {
  StringRef scoring = str("scoring");
  if (scoring == "softmax")
    return true;
  if (scoring != "sigmoid")
    fail("expects scoring \"sigmoid\" or \"softmax\", got \"", scoring, "\"");
  return false;
}

//===----------------------------------------------------------------------===//
// Dispatch
//===----------------------------------------------------------------------===//

const std::pair<StringRef, LaunchEmitter::EmitFn> LaunchEmitter::kEmitters[] = {
    {"embedding", &LaunchEmitter::embedding},
    {"embedding_grad", &LaunchEmitter::embeddingGrad},
    {"linear", &LaunchEmitter::linear},
    {"linear_dgrad", &LaunchEmitter::linearDgrad},
    {"linear_wgrad", &LaunchEmitter::linearWgrad},
    {"rms_norm", &LaunchEmitter::rmsNorm},
    {"rms_norm_grad", &LaunchEmitter::rmsNormGrad},
    {"broadcast", &LaunchEmitter::broadcast},
    {"unbroadcast", &LaunchEmitter::unbroadcast},
    {"rope", &LaunchEmitter::rope},
    {"attention", &LaunchEmitter::attention},
    {"attention_grad", &LaunchEmitter::attentionGrad},
    {"cache_write", &LaunchEmitter::cacheWrite},
    {"cached_attention", &LaunchEmitter::cachedAttention},
    {"head_matmul", &LaunchEmitter::headMatmul},
    {"router", &LaunchEmitter::router},
    {"router_grad", &LaunchEmitter::routerGrad},
    {"dispatch", &LaunchEmitter::dispatch},
    {"dispatch_grad", &LaunchEmitter::dispatchGrad},
    {"combine", &LaunchEmitter::combine},
    {"combine_grad", &LaunchEmitter::combineGrad},
    {"grouped_matmul", &LaunchEmitter::groupedMatmul},
    {"grouped_matmul_dgrad", &LaunchEmitter::groupedMatmulDgrad},
    {"grouped_matmul_wgrad", &LaunchEmitter::groupedMatmulWgrad},
    {"expert_load", &LaunchEmitter::expertLoad},
    {"expert_capacity", &LaunchEmitter::expertCapacity},
    {"topk_compress", &LaunchEmitter::topkCompress},
    {"topk_decompress", &LaunchEmitter::topkDecompress},
    {"balance_loss", &LaunchEmitter::balanceLoss},
    {"balance_loss_grad", &LaunchEmitter::balanceLossGrad},
    {"expert_counts", &LaunchEmitter::expertCounts},
    {"segment_transpose", &LaunchEmitter::segmentTranspose},
    {"cross_entropy", &LaunchEmitter::crossEntropy},
    {"cross_entropy_grad", &LaunchEmitter::crossEntropyGrad},
    {"token_logprobs", &LaunchEmitter::tokenLogprobs},
    {"grpo_loss", &LaunchEmitter::grpoLoss},
    {"grpo_loss_grad", &LaunchEmitter::grpoLossGrad},
    {"lr_schedule", &LaunchEmitter::lrSchedule},
    {"sparsity_mask_2_4", &LaunchEmitter::sparsityMask24},
    {"global_norm", &LaunchEmitter::globalNorm},
    {"clip_scale", &LaunchEmitter::clipScale},
    {"grad_scaler", &LaunchEmitter::gradScaler},
    {"adamw", &LaunchEmitter::adamw},
    {"bias_update", &LaunchEmitter::biasUpdate},
    {"fill", &LaunchEmitter::fill},
    {"extract_slice", &LaunchEmitter::extractSlice},
    {"insert_slice", &LaunchEmitter::insertSlice},
    {"concat", &LaunchEmitter::concat},
    {"all_reduce", &LaunchEmitter::allReduce},
    {"all_gather", &LaunchEmitter::allGather},
    {"reduce_scatter", &LaunchEmitter::reduceScatter},
    {"local_shard", &LaunchEmitter::localShard},
    {"all_to_all", &LaunchEmitter::allToAll},
    {"send", &LaunchEmitter::send},
    {"recv", &LaunchEmitter::recv},
    {"send_start", &LaunchEmitter::sendStart},
    {"recv_start", &LaunchEmitter::recvStart},
    {"p2p_wait", &LaunchEmitter::p2pWait},
    {"stream_wait", &LaunchEmitter::streamWait},
    {"quantize_fp8", &LaunchEmitter::quantizeFp8},
    {"dequantize_fp8", &LaunchEmitter::dequantizeFp8},
    {"scaled_matmul", &LaunchEmitter::scaledMatmul},
    {"quantize_fp8_grouped", &LaunchEmitter::quantizeFp8Grouped},
    {"scaled_grouped_matmul", &LaunchEmitter::scaledGroupedMatmul},
    {"scaled_grouped_matmul_wgrad", &LaunchEmitter::scaledGroupedMatmulWgrad},
};

LogicalResult LaunchEmitter::run(raw_ostream &os) {
  StringRef name = launch.getKernel();
  if (args.ins.size() != launch.getIns().size() ||
      args.outs.size() != launch.getOuts().size())
    return launch.emitOpError() << "was given " << args.ins.size() << " in and "
                                << args.outs.size() << " out expressions for "
                                << launch.getIns().size() << " ins and "
                                << launch.getOuts().size() << " outs";
  const auto *entry =
      llvm::find_if(kEmitters, [&](const auto &e) { return e.first == name; });
  if (entry == std::end(kEmitters))
    return launch.emitOpError() << "kernel '" << name
                                << "' has no host code (runtime/kernels/ has no "
                                   "launcher for it)";
  // all_reduce, all_gather, reduce_scatter and local_shard have CUDA
  // spellings over the NCCL communicator (data parallelism); these not yet.
  static const StringRef kHostOnly[] = {"all_to_all", "send",       "recv",
                                        "send_start", "recv_start", "p2p_wait"};
  if (cuda() && llvm::is_contained(kHostOnly, name))
    return launch.emitOpError()
           << "kernel '" << name
           << "': the CUDA target runs data-parallel steps over NCCL (all_reduce, all_gather, "
              "reduce_scatter); all_to_all and send/recv (expert and pipeline parallelism) "
              "are not built for it yet (build the spec with ep and pp 1, or for the host "
              "target)";
  (this->*entry->second)();
  if (failed)
    return failure();
  os << text;
  return success();
}

} // namespace detail

mlir::LogicalResult emitHostLaunch(kernel::LaunchOp launch, const LaunchArgs &args,
                                   llvm::StringRef indent, llvm::raw_ostream &os,
                                   LaunchTarget target) {
  return detail::LaunchEmitter(launch, args, indent, target).run(os);
}

} // namespace kiln::codegen
