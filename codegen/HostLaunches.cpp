//===- HostLaunches.cpp - C++ for one kiln_kernel.launch on the host ------===//
//
// One emitter per kernel of the catalog (KernelCatalog.cpp). Each checks the
// element types and ranks it relies on, reads its attributes from `params`
// (applying the ODS default of the kiln op where the attribute may be
// absent), and writes the call into a buffer that reaches `os` only when
// every check passed, so a failed launch emits nothing.
//
// Literals: float arguments are the shortest decimal that reads back as the
// same float, with an `f` suffix; double arguments the shortest that reads
// back as the same double; sizes are plain integers.
//
//===----------------------------------------------------------------------===//

#include "codegen/HostLaunches.h"

#include "dialects/kernel/KernelCatalog.h"
#include "dialects/kiln/KilnDialect.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>

using namespace mlir;

namespace kiln::codegen {

namespace {

constexpr int64_t kMaxCopyRank = 6; // kiln::kernels::kMaxCopyRank (Copy.h)

/// The shortest `%g` rendering of `v` with at most `maxDigits` significant
/// digits that `parse` reads back as `v`; integral values of moderate size
/// are written as "123.0".
template <typename T>
std::string shortestDecimal(T v, int maxDigits, T (*parse)(const char *, char **)) {
  char buf[64];
  if (v == std::trunc(v) && std::fabs(v) < T(1e15)) {
    std::snprintf(buf, sizeof buf, "%.1f", double(v));
    return buf;
  }
  for (int digits = 1; digits <= maxDigits; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, double(v));
    if (parse(buf, nullptr) == v)
      break;
  }
  std::string s = buf;
  if (s.find_first_of(".e") == std::string::npos)
    s += ".0";
  return s;
}

float parseFloat(const char *s, char **end) { return std::strtof(s, end); }
double parseDouble(const char *s, char **end) { return std::strtod(s, end); }

/// A C++ float expression equal to `v` rounded to f32.
std::string floatLiteral(double v) {
  float f = float(v);
  if (std::isnan(f))
    return "std::numeric_limits<float>::quiet_NaN()";
  if (std::isinf(f))
    return f < 0 ? "-std::numeric_limits<float>::infinity()"
                 : "std::numeric_limits<float>::infinity()";
  return shortestDecimal<float>(f, 9, parseFloat) + "f";
}

/// A C++ double expression equal to `v`.
std::string doubleLiteral(double v) {
  if (std::isnan(v))
    return "std::numeric_limits<double>::quiet_NaN()";
  if (std::isinf(v))
    return v < 0 ? "-std::numeric_limits<double>::infinity()"
                 : "std::numeric_limits<double>::infinity()";
  return shortestDecimal<double>(v, 17, parseDouble);
}

std::string boolLiteral(bool b) { return b ? "true" : "false"; }

std::string intLiteral(int64_t v) { return std::to_string(v); }

/// "{4, 32, 64}" (a kiln::kernels::Dims, or an array initialiser).
std::string braced(ArrayRef<int64_t> values) {
  std::string s = "{";
  llvm::ListSeparator sep;
  for (int64_t v : values)
    (s += sep) += std::to_string(v);
  return s + "}";
}

std::string braced(ArrayRef<std::string> values) {
  return "{" + llvm::join(values, ", ") + "}";
}

int64_t product(ArrayRef<int64_t> dims) {
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
  LaunchEmitter(kernel::LaunchOp launch, const LaunchArgs &args, StringRef indent)
      : launch(launch), args(args), params(launch.getParams()), indent(indent.str()),
        stream(text) {}

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
  void balanceLoss();
  void balanceLossGrad();
  void crossEntropy();
  void crossEntropyGrad();
  void lrSchedule();
  void globalNorm();
  void clipScale();
  void adamw();
  void biasUpdate();
  void fill();
  void extractSlice();
  void insertSlice();
  void concat();

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
  /// `*p`: the value of a scalar buffer.
  std::string deref(const std::string &p) { return "*" + p; }

  /// Checks element types: one letter per in and per out, 'f' f32, 'i' i32,
  /// 'l' i64. A single letter stands for every operand of a variadic list.
  void elements(StringRef ins, StringRef outs);
  void checkElement(Type type, char want, StringRef what, unsigned index);
  /// Checks that every operand has the same element type, f32 or i32;
  /// returns "float" or "int32_t".
  std::string sameElements();
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
  /// `kiln::kernels::fn(args);`
  void call(StringRef fn, ArrayRef<std::string> callArgs) {
    line("kiln::kernels::" + fn + "(" + llvm::join(callArgs, ", ") + ");");
  }
  /// `if (!kiln::kernels::fn(args, &error)) return false;`
  void checkedCall(StringRef fn, ArrayRef<std::string> callArgs) {
    line("if (!kiln::kernels::" + fn + "(" + llvm::join(callArgs, ", ") +
         ", &error)) return false;");
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
  std::string text;
  llvm::raw_string_ostream stream;
  bool failed = false;
};

//===----------------------------------------------------------------------===//
// Checks and attributes
//===----------------------------------------------------------------------===//

void LaunchEmitter::checkElement(Type type, char want, StringRef what, unsigned index) {
  bool ok = want == 'f'   ? type.isF32()
            : want == 'i' ? type.isSignlessInteger(32)
                          : type.isSignlessInteger(64);
  if (ok)
    return;
  StringRef wanted = want == 'f' ? "f32" : want == 'i' ? "i32" : "i64";
  StringRef role = want == 'f'   ? "data"
                   : want == 'i' ? "ids, indices, offsets and sources"
                                 : "the step";
  fail(what, " #", index, " has element type ", type, ", but the host target expects ",
       wanted, " here (it supports f32 data, i32 ids/indices/offsets/sources and an i64 "
               "step; this operand is ",
       role, ")");
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
// Dense
//===----------------------------------------------------------------------===//

// embedding(table [vocab, hidden], ids [...]) -> [..., hidden]
void LaunchEmitter::embedding() {
  elements("fi", "f");
  rank(true, 0, 2);
  if (failed)
    return;
  call("embeddingForward", {out(0), in(0), in(1), intLiteral(inCount(1)),
                            intLiteral(inShape(0)[0]), intLiteral(inShape(0)[1])});
}

// embedding_grad(dy [..., hidden], ids [...]) -> [vocab, hidden]
void LaunchEmitter::embeddingGrad() {
  elements("fi", "f");
  rank(false, 0, 2);
  if (failed)
    return;
  call("embeddingBackward", {out(0), in(0), in(1), intLiteral(inCount(1)),
                             intLiteral(outShape(0)[0]), intLiteral(outShape(0)[1])});
}

// linear(x [rows, in], w [out, in]) -> [rows, out]
void LaunchEmitter::linear() {
  elements("ff", "f");
  minRank(true, 0, 1);
  rank(true, 1, 2);
  if (failed)
    return;
  int64_t k = inShape(1)[1], n = inShape(1)[0];
  sameCount(inShape(0).back(), k, "x's last dimension and the weight's in dimension");
  if (failed)
    return;
  int64_t rows = product(inShape(0).drop_back());
  call("linearForward",
       {out(0), in(0), in(1), intLiteral(rows), intLiteral(k), intLiteral(n)});
}

// linear_dgrad(dy [rows, out], w [out, in]) -> dx [rows, in]
void LaunchEmitter::linearDgrad() {
  elements("ff", "f");
  minRank(true, 0, 1);
  rank(true, 1, 2);
  if (failed)
    return;
  int64_t k = inShape(1)[1], n = inShape(1)[0];
  sameCount(inShape(0).back(), n, "dy's last dimension and the weight's out dimension");
  if (failed)
    return;
  int64_t rows = product(inShape(0).drop_back());
  call("linearDgrad", {out(0), in(0), in(1), intLiteral(rows), intLiteral(k), intLiteral(n)});
}

// linear_wgrad(dy [rows, out], x [rows, in]) -> dw [out, in]
void LaunchEmitter::linearWgrad() {
  elements("ff", "f");
  minRank(true, 0, 1);
  minRank(true, 1, 1);
  rank(false, 0, 2);
  if (failed)
    return;
  int64_t n = outShape(0)[0], k = outShape(0)[1];
  int64_t rows = product(inShape(0).drop_back());
  sameCount(rows, product(inShape(1).drop_back()), "the rows of dy and x");
  if (failed)
    return;
  call("linearWgrad", {out(0), in(0), in(1), intLiteral(rows), intLiteral(k), intLiteral(n)});
}

// rms_norm(x [rows, hidden], gamma [hidden]) -> y
void LaunchEmitter::rmsNorm() {
  elements("ff", "f");
  minRank(true, 0, 1);
  rank(true, 1, 1);
  double eps = f64("epsilon");
  if (failed)
    return;
  int64_t hidden = inShape(0).back();
  call("rmsNormForward", {out(0), in(0), in(1), intLiteral(product(inShape(0).drop_back())),
                          intLiteral(hidden), floatLiteral(eps)});
}

// rms_norm_grad(dy, x, gamma) -> (dx, dgamma)
void LaunchEmitter::rmsNormGrad() {
  elements("fff", "ff");
  minRank(true, 1, 1);
  rank(true, 2, 1);
  double eps = f64("epsilon");
  if (failed)
    return;
  int64_t hidden = inShape(1).back();
  call("rmsNormBackward",
       {out(0), out(1), in(0), in(1), in(2), intLiteral(product(inShape(1).drop_back())),
        intLiteral(hidden), floatLiteral(eps)});
}

// broadcast(x) -> result, same rank, x's dims equal or 1.
void LaunchEmitter::broadcast() {
  elements("f", "f");
  rank(false, 0, inType(0).getRank());
  if (inType(0).getRank() > kMaxCopyRank)
    fail("supports rank <= ", kMaxCopyRank, " on the host, got ", inType(0));
  if (failed)
    return;
  for (auto [x, y] : llvm::zip(inShape(0), outShape(0)))
    if (x != y && x != 1)
      fail("cannot broadcast ", inType(0), " to ", outType(0));
  if (failed)
    return;
  call("broadcast", {out(0), in(0), braced(inShape(0)), braced(outShape(0))});
}

// unbroadcast(x) -> result, summing where result's dim is 1 and x's larger.
void LaunchEmitter::unbroadcast() {
  elements("f", "f");
  rank(false, 0, inType(0).getRank());
  if (inType(0).getRank() > kMaxCopyRank)
    fail("supports rank <= ", kMaxCopyRank, " on the host, got ", inType(0));
  if (failed)
    return;
  for (auto [x, y] : llvm::zip(inShape(0), outShape(0)))
    if (x != y && y != 1)
      fail("cannot sum ", inType(0), " to ", outType(0));
  if (failed)
    return;
  call("unbroadcast", {out(0), in(0), braced(inShape(0)), braced(outShape(0))});
}

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

// rope(x [batch, seq, heads, dim]) -> y
void LaunchEmitter::rope() {
  elements("f", "f");
  rank(true, 0, 4);
  double theta = f64("theta");
  bool interleaved = flag("interleaved");
  bool transpose = flag("transpose", false);
  Attribute yarnAttr = params.get("yarn");
  auto yarn = dyn_cast_or_null<kiln::YarnAttr>(yarnAttr);
  if (yarnAttr && !yarn)
    fail("expects 'yarn' to be a #kiln.yarn attribute, got ", yarnAttr);
  if (failed)
    return;
  ArrayRef<int64_t> s = inShape(0);
  SmallVector<std::string> callArgs = {
      out(0),           in(0),           intLiteral(s[0]),     intLiteral(s[1]),
      intLiteral(s[2]), intLiteral(s[3]), doubleLiteral(theta), boolLiteral(interleaved),
      yarn ? "&yarn" : "nullptr", boolLiteral(transpose)};
  if (!yarn) {
    call("ropeForward", callArgs);
    return;
  }
  open();
  line("const kiln::kernels::YarnConfig yarn = {/*factor=*/" +
       doubleLiteral(yarn.getFactor().convertToDouble()) + ", /*originalMaxPositions=*/" +
       doubleLiteral(double(yarn.getOriginalMaxPositionEmbeddings())) +
       ", /*betaFast=*/" + doubleLiteral(yarn.getBetaFast().convertToDouble()) +
       ", /*betaSlow=*/" + doubleLiteral(yarn.getBetaSlow().convertToDouble()) +
       ", /*mscale=*/" + doubleLiteral(yarn.getMscale().convertToDouble()) +
       ", /*mscaleAllDim=*/" + doubleLiteral(yarn.getMscaleAllDim().convertToDouble()) +
       "};");
  call("ropeForward", callArgs);
  close();
}

// attention(q [b, s, h, dqk], k [b, s, kvh, dqk], v [b, s, kvh, dv]) -> [b, s, h, dv]
void LaunchEmitter::attention() {
  elements("fff", "f");
  for (unsigned i = 0; i < 3; ++i)
    rank(true, i, 4);
  double scale = f64("scale");
  bool causal = flag("causal", true);
  if (failed)
    return;
  ArrayRef<int64_t> q = inShape(0), k = inShape(1), v = inShape(2);
  call("attentionForward",
       {out(0), in(0), in(1), in(2), intLiteral(q[0]), intLiteral(q[1]), intLiteral(q[2]),
        intLiteral(k[2]), intLiteral(q[3]), intLiteral(v[3]), floatLiteral(scale),
        boolLiteral(causal)});
}

// attention_grad(q, k, v, dout) -> (dq, dk, dv)
void LaunchEmitter::attentionGrad() {
  elements("ffff", "fff");
  for (unsigned i = 0; i < 4; ++i)
    rank(true, i, 4);
  double scale = f64("scale");
  bool causal = flag("causal", true);
  if (failed)
    return;
  ArrayRef<int64_t> q = inShape(0), k = inShape(1), v = inShape(2);
  call("attentionBackward",
       {out(0), out(1), out(2), in(0), in(1), in(2), in(3), intLiteral(q[0]),
        intLiteral(q[1]), intLiteral(q[2]), intLiteral(k[2]), intLiteral(q[3]),
        intLiteral(v[3]), floatLiteral(scale), boolLiteral(causal)});
}

//===----------------------------------------------------------------------===//
// Mixture of experts
//===----------------------------------------------------------------------===//

// router(logits [tokens, experts], bias [experts]) -> (indices, weights [tokens, top_k])
void LaunchEmitter::router() {
  elements("ff", "if");
  rank(true, 0, 2);
  rank(true, 1, 1);
  rank(false, 0, 2);
  rank(false, 1, 2);
  bool softmax = softmaxScoring();
  StringRef groupScore = str("group_score");
  if (groupScore != "top2_sum" && groupScore != "max")
    fail("expects group_score \"top2_sum\" or \"max\", got \"", groupScore, "\"");
  int64_t nGroup = i64("n_group"), topkGroup = i64("topk_group"), topK = i64("top_k");
  bool norm = flag("norm_topk_prob");
  double scaling = f64("routed_scaling_factor");
  if (failed)
    return;
  sameCount(topK, outShape(0)[1], "top_k and the indices' second dimension");
  if (failed)
    return;
  open();
  line("kiln::kernels::RouterConfig config;");
  line("config.softmax = " + boolLiteral(softmax) + ";");
  line("config.top2Sum = " + boolLiteral(groupScore == "top2_sum") + ";");
  line("config.nGroup = " + intLiteral(nGroup) + ";");
  line("config.topkGroup = " + intLiteral(topkGroup) + ";");
  line("config.topK = " + intLiteral(topK) + ";");
  line("config.normTopkProb = " + boolLiteral(norm) + ";");
  line("config.routedScalingFactor = " + floatLiteral(scaling) + ";");
  checkedCall("router", {in(0), in(1), intLiteral(inShape(0)[0]), intLiteral(inShape(0)[1]),
                         "config", out(0), out(1)});
  close();
}

// router_grad(logits [tokens, experts], indices [tokens, k], dweights) -> dlogits
void LaunchEmitter::routerGrad() {
  elements("fif", "f");
  rank(true, 0, 2);
  rank(true, 1, 2);
  bool softmax = softmaxScoring();
  bool norm = flag("norm_topk_prob");
  double scaling = f64("routed_scaling_factor");
  if (failed)
    return;
  checkedCall("routerGrad",
              {in(0), in(1), in(2), intLiteral(inShape(0)[0]), intLiteral(inShape(0)[1]),
               intLiteral(inShape(1)[1]), boolLiteral(softmax), boolLiteral(norm),
               floatLiteral(scaling), out(0)});
}

// dispatch(x [tokens, hidden], indices [tokens, k]) -> (rows, offsets, source)
void LaunchEmitter::dispatch() {
  elements("fi", "fii");
  rank(true, 0, 2);
  rank(true, 1, 2);
  int64_t experts = i64("num_experts");
  if (failed)
    return;
  sameCount(experts + 1, outCount(1), "num_experts + 1 and the offsets' size");
  if (failed)
    return;
  checkedCall("dispatch", {in(0), in(1), intLiteral(inShape(0)[0]), intLiteral(inShape(0)[1]),
                           intLiteral(inShape(1)[1]), intLiteral(experts), out(0), out(1),
                           out(2)});
}

// dispatch_grad(drows [tokens*k, hidden], source) -> dx [tokens, hidden]
void LaunchEmitter::dispatchGrad() {
  elements("fi", "f");
  rank(true, 0, 2);
  rank(false, 0, 2);
  int64_t topK = i64("top_k");
  if (failed)
    return;
  checkedCall("dispatchGrad", {in(0), in(1), intLiteral(outShape(0)[0]), intLiteral(topK),
                               intLiteral(outShape(0)[1]), out(0)});
}

// combine(rows [tokens*k, hidden], weights [tokens, k], source) -> [tokens, hidden]
void LaunchEmitter::combine() {
  elements("ffi", "f");
  rank(true, 0, 2);
  rank(true, 1, 2);
  if (failed)
    return;
  checkedCall("combine", {in(0), in(1), in(2), intLiteral(inShape(1)[0]),
                          intLiteral(inShape(1)[1]), intLiteral(inShape(0)[1]), out(0)});
}

// combine_grad(rows, weights, source, dy) -> (drows, dweights)
void LaunchEmitter::combineGrad() {
  elements("ffif", "ff");
  rank(true, 0, 2);
  rank(true, 1, 2);
  if (failed)
    return;
  checkedCall("combineGrad",
              {in(0), in(1), in(2), in(3), intLiteral(inShape(1)[0]),
               intLiteral(inShape(1)[1]), intLiteral(inShape(0)[1]), out(0), out(1)});
}

// grouped_matmul(x [rows, K], weight [E, N, K], offsets [E + 1]) -> [rows, N]
void LaunchEmitter::groupedMatmul() {
  elements("ffi", "f");
  rank(true, 0, 2);
  rank(true, 1, 3);
  if (failed)
    return;
  ArrayRef<int64_t> w = inShape(1);
  checkedCall("groupedMatmul", {in(0), in(1), in(2), intLiteral(inShape(0)[0]),
                                intLiteral(w[2]), intLiteral(w[0]), intLiteral(w[1]), out(0)});
}

// grouped_matmul_dgrad(dy [rows, N], weight [E, N, K], offsets) -> dx [rows, K]
void LaunchEmitter::groupedMatmulDgrad() {
  elements("ffi", "f");
  rank(true, 0, 2);
  rank(true, 1, 3);
  if (failed)
    return;
  ArrayRef<int64_t> w = inShape(1);
  checkedCall("groupedMatmulDgrad",
              {in(0), in(1), in(2), intLiteral(inShape(0)[0]), intLiteral(w[1]),
               intLiteral(w[0]), intLiteral(w[2]), out(0)});
}

// grouped_matmul_wgrad(dy [rows, N], x [rows, K], offsets) -> dweight [E, N, K]
void LaunchEmitter::groupedMatmulWgrad() {
  elements("ffi", "f");
  rank(true, 0, 2);
  rank(false, 0, 3);
  if (failed)
    return;
  ArrayRef<int64_t> w = outShape(0);
  checkedCall("groupedMatmulWgrad",
              {in(0), in(1), in(2), intLiteral(inShape(0)[0]), intLiteral(w[1]),
               intLiteral(w[2]), intLiteral(w[0]), out(0)});
}

// expert_load(indices [...]) -> load [experts]
void LaunchEmitter::expertLoad() {
  elements("i", "f");
  int64_t experts = i64("num_experts");
  if (failed)
    return;
  sameCount(experts, outCount(0), "num_experts and the load's size");
  if (failed)
    return;
  checkedCall("expertLoad", {in(0), intLiteral(inCount(0)), intLiteral(experts), out(0)});
}

// balance_loss(logits [tokens, experts], indices [tokens, k]) -> scalar
void LaunchEmitter::balanceLoss() {
  elements("fi", "f");
  rank(true, 0, 2);
  rank(true, 1, 2);
  scalar(false, 0);
  bool softmax = softmaxScoring();
  int64_t sequences = i64("num_sequences");
  if (failed)
    return;
  checkedCall("balanceLoss", {in(0), in(1), intLiteral(inShape(0)[0]),
                              intLiteral(inShape(0)[1]), intLiteral(inShape(1)[1]),
                              intLiteral(sequences), boolLiteral(softmax), out(0)});
}

// balance_loss_grad(logits, indices, dloss) -> dlogits
void LaunchEmitter::balanceLossGrad() {
  elements("fif", "f");
  rank(true, 0, 2);
  rank(true, 1, 2);
  scalar(true, 2);
  bool softmax = softmaxScoring();
  int64_t sequences = i64("num_sequences");
  if (failed)
    return;
  checkedCall("balanceLossGrad",
              {in(0), in(1), deref(in(2)), intLiteral(inShape(0)[0]),
               intLiteral(inShape(0)[1]), intLiteral(inShape(1)[1]), intLiteral(sequences),
               boolLiteral(softmax), out(0)});
}

//===----------------------------------------------------------------------===//
// Loss
//===----------------------------------------------------------------------===//

// cross_entropy(logits [positions, vocab], targets, mask) -> scalar
void LaunchEmitter::crossEntropy() {
  elements("fif", "f");
  minRank(true, 0, 1);
  scalar(false, 0);
  double smoothing = f64("label_smoothing", 0.0);
  if (failed)
    return;
  int64_t positions = inCount(1), vocab = inShape(0).back();
  sameCount(positions * vocab, inCount(0), "the logits' size and positions * vocab");
  sameCount(positions, inCount(2), "the targets' and the mask's sizes");
  if (failed)
    return;
  line(deref(out(0)) + " = kiln::kernels::crossEntropyForward(" +
       llvm::join(ArrayRef<std::string>{in(0), in(1), in(2), intLiteral(positions),
                                        intLiteral(vocab), floatLiteral(smoothing)},
                  ", ") +
       ");");
}

// cross_entropy_grad(logits, targets, mask, dloss) -> dlogits
void LaunchEmitter::crossEntropyGrad() {
  elements("fiff", "f");
  minRank(true, 0, 1);
  scalar(true, 3);
  double smoothing = f64("label_smoothing", 0.0);
  if (failed)
    return;
  int64_t positions = inCount(1), vocab = inShape(0).back();
  sameCount(positions * vocab, inCount(0), "the logits' size and positions * vocab");
  if (failed)
    return;
  call("crossEntropyBackward", {out(0), in(0), in(1), in(2), intLiteral(positions),
                                intLiteral(vocab), floatLiteral(smoothing), deref(in(3))});
}

//===----------------------------------------------------------------------===//
// Optimizer
//===----------------------------------------------------------------------===//

// lr_schedule(step: i64 scalar) -> lr scalar
void LaunchEmitter::lrSchedule() {
  elements("l", "f");
  scalar(true, 0);
  scalar(false, 0);
  double lr = f64("lr"), minLr = f64("min_lr");
  int64_t warmup = i64("warmup_steps"), total = i64("total_steps");
  if (failed)
    return;
  checkedCall("lrSchedule", {deref(in(0)), floatLiteral(lr), floatLiteral(minLr),
                             intLiteral(warmup), intLiteral(total), out(0)});
}

// global_norm(tensors...) -> scalar
void LaunchEmitter::globalNorm() {
  elements("f", "f");
  scalar(false, 0);
  if (failed)
    return;
  SmallVector<std::string> sizes;
  for (unsigned i = 0, e = launch.getIns().size(); i < e; ++i)
    sizes.push_back(intLiteral(inCount(i)));
  open();
  line("const float *ptrs[] = " + braced(args.ins) + ";");
  line("const int64_t sizes[] = " + braced(sizes) + ";");
  checkedCall("globalNorm", {"ptrs", "sizes", intLiteral(sizes.size()), out(0)});
  close();
}

// clip_scale(norm scalar) -> scale scalar
void LaunchEmitter::clipScale() {
  elements("f", "f");
  scalar(true, 0);
  scalar(false, 0);
  double maxNorm = f64("max_norm");
  if (failed)
    return;
  line(deref(out(0)) + " = kiln::kernels::clipScale(" + deref(in(0)) + ", " +
       floatLiteral(maxNorm) + ");");
}

// adamw(param, grad, m, v, lr, step, grad_scale) -> (param, m, v), in place.
void LaunchEmitter::adamw() {
  elements("ffffflf", "fff");
  for (unsigned i : {4u, 5u, 6u})
    scalar(true, i);
  int64_t size = inCount(0);
  for (unsigned i : {1u, 2u, 3u})
    sameCount(size, inCount(i), "the sizes of param, grad and the moments");
  for (unsigned o : {0u, 1u, 2u})
    sameCount(size, outCount(o), "the sizes of param and the updated state");
  double beta1 = f64("beta1"), beta2 = f64("beta2"), eps = f64("eps"),
         weightDecay = f64("weight_decay");
  if (failed)
    return;
  copyInPlace(0, 0);
  copyInPlace(2, 1);
  copyInPlace(3, 2);
  checkedCall("adamw", {out(0), in(1), out(1), out(2), intLiteral(size), deref(in(4)),
                        deref(in(5)), deref(in(6)), floatLiteral(beta1), floatLiteral(beta2),
                        floatLiteral(eps), floatLiteral(weightDecay)});
}

// bias_update(bias [experts], load [experts]) -> new bias (may be bias itself)
void LaunchEmitter::biasUpdate() {
  elements("ff", "f");
  double speed = f64("speed");
  if (failed)
    return;
  sameCount(inCount(0), inCount(1), "the sizes of bias and load");
  sameCount(inCount(0), outCount(0), "the sizes of bias and the new bias");
  if (failed)
    return;
  checkedCall("biasUpdate",
              {in(0), in(1), intLiteral(inCount(0)), floatLiteral(speed), out(0)});
}

//===----------------------------------------------------------------------===//
// Data movement
//===----------------------------------------------------------------------===//

// fill() -> out = value
void LaunchEmitter::fill() {
  std::string type = sameElements();
  double value = f64("value");
  if (failed)
    return;
  std::string literal;
  if (type == "float") {
    literal = floatLiteral(value);
  } else {
    if (value != std::trunc(value) || value < -2147483648.0 || value > 2147483647.0)
      fail("cannot fill an i32 buffer with ", value);
    if (failed)
      return;
    literal = value == -2147483648.0 ? "INT32_MIN" : intLiteral(int64_t(value));
  }
  call("fill", {out(0), intLiteral(outCount(0)), literal});
}

// extract_slice(source) -> result
void LaunchEmitter::extractSlice() {
  sameElements();
  int64_t r = inType(0).getRank();
  if (r > kMaxCopyRank)
    fail("supports rank <= ", kMaxCopyRank, " on the host, got ", inType(0));
  SmallVector<int64_t> offsets = i64Array("static_offsets", r),
                       sizes = i64Array("static_sizes", r),
                       strides = i64Array("static_strides", r);
  if (failed)
    return;
  sameCount(product(sizes), outCount(0), "the slice's and the result's element counts");
  if (failed)
    return;
  call("extractSlice", {out(0), in(0), braced(inShape(0)), braced(offsets), braced(sizes),
                        braced(strides)});
}

// insert_slice(source, dest) -> dest with source written at the slice
void LaunchEmitter::insertSlice() {
  sameElements();
  int64_t r = inType(1).getRank();
  if (r > kMaxCopyRank)
    fail("supports rank <= ", kMaxCopyRank, " on the host, got ", inType(1));
  SmallVector<int64_t> offsets = i64Array("static_offsets", r),
                       sizes = i64Array("static_sizes", r),
                       strides = i64Array("static_strides", r);
  if (failed)
    return;
  sameCount(product(sizes), inCount(0), "the slice's and the source's element counts");
  sameCount(inCount(1), outCount(0), "the dest's and the result's element counts");
  if (failed)
    return;
  call("insertSlice", {out(0), in(1), in(0), braced(inShape(1)), braced(offsets),
                       braced(sizes), braced(strides)});
}

// concat(parts...) -> result, along `dim`
void LaunchEmitter::concat() {
  std::string type = sameElements();
  int64_t dim = i64("dim");
  if (failed)
    return;
  ArrayRef<int64_t> shape = outShape(0);
  if (dim < 0 || dim >= int64_t(shape.size()))
    fail("expects dim in [0, ", shape.size(), "), got ", dim);
  if (failed)
    return;
  SmallVector<std::string> partDims;
  int64_t total = 0;
  for (auto [i, v] : llvm::enumerate(launch.getIns())) {
    ArrayRef<int64_t> part = cast<MemRefType>(v.getType()).getShape();
    bool ok = part.size() == shape.size();
    for (size_t k = 0; ok && k < shape.size(); ++k)
      ok = int64_t(k) == dim || part[k] == shape[k];
    if (!ok)
      fail("in #", i, " ", v.getType(), " does not fit the result ", outType(0),
           " along dim ", dim);
    else {
      partDims.push_back(intLiteral(part[dim]));
      total += part[dim];
    }
  }
  if (failed)
    return;
  sameCount(total, shape[dim], "the parts' sizes along dim and the result's");
  if (failed)
    return;
  open();
  line("const " + type + " *parts[] = " + braced(args.ins) + ";");
  line("const int64_t partDims[] = " + braced(partDims) + ";");
  call("concat", {out(0), "parts", "partDims", intLiteral(partDims.size()),
                  intLiteral(product(shape.take_front(dim))),
                  intLiteral(product(shape.drop_front(dim + 1)))});
  close();
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
    {"balance_loss", &LaunchEmitter::balanceLoss},
    {"balance_loss_grad", &LaunchEmitter::balanceLossGrad},
    {"cross_entropy", &LaunchEmitter::crossEntropy},
    {"cross_entropy_grad", &LaunchEmitter::crossEntropyGrad},
    {"lr_schedule", &LaunchEmitter::lrSchedule},
    {"global_norm", &LaunchEmitter::globalNorm},
    {"clip_scale", &LaunchEmitter::clipScale},
    {"adamw", &LaunchEmitter::adamw},
    {"bias_update", &LaunchEmitter::biasUpdate},
    {"fill", &LaunchEmitter::fill},
    {"extract_slice", &LaunchEmitter::extractSlice},
    {"insert_slice", &LaunchEmitter::insertSlice},
    {"concat", &LaunchEmitter::concat},
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
  (this->*entry->second)();
  if (failed)
    return failure();
  os << text;
  return success();
}

} // namespace

LogicalResult emitHostLaunch(kernel::LaunchOp launch, const LaunchArgs &args,
                             StringRef indent, raw_ostream &os) {
  return LaunchEmitter(launch, args, indent).run(os);
}

} // namespace kiln::codegen
