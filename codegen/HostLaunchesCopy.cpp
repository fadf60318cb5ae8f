//===- HostLaunchesCopy.cpp - host launches: data movement ------------------===//
//
// The LaunchEmitter methods (HostLaunchEmitter.h) for these catalog kernels:
// each checks its operands, reads its attributes and spells the call into
// runtime/kernels/.
//
//===----------------------------------------------------------------------===//

#include "codegen/HostLaunchEmitter.h"

#include "dialects/kiln/KilnDialect.h"

namespace kiln::codegen::detail {

//===----------------------------------------------------------------------===//
// Data movement
//===----------------------------------------------------------------------===//

// fill() -> out = value
void LaunchEmitter::fill() {
  // i64 buffers hold row counts (all_to_all's): small whole numbers.
  if (outType(0).getElementType().isSignlessInteger(64)) {
    double value = f64("value");
    if (!failed && (value != std::trunc(value) || std::fabs(value) > 9007199254740992.0))
      fail("cannot fill an i64 buffer with ", value);
    if (!failed)
      call("fill", {out(0), intLiteral(outCount(0)), "int64_t(" + intLiteral(int64_t(value)) + ")"});
    return;
  }
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

} // namespace kiln::codegen::detail
