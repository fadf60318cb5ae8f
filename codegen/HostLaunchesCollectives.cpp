//===- HostLaunchesCollectives.cpp - spellings of the collectives ---------===//
//
// Host: a collective becomes a call into runtime/driver/StepComm.h on the
// group the step's driver set up for its axes ("dp"); a tensor's `dim` is
// passed as the [outer][inner] split StepComm.h describes. The host's
// collectives block where they are issued, so kiln-overlap-collectives'
// streams change nothing there: a collective's `stream` and `event` params
// are not read and its `stream_wait` is a comment.
//
// CUDA: all_reduce, all_gather, reduce_scatter and local_shard become the
// same calls in kiln::cuda (runtime/cuda/StepCollectives.cuh) with the
// compute stream first, over device buffers and the NCCL communicator's
// groups, and the `event` of kiln-overlap-collectives last (-1 for a
// collective the pass did not place: it then runs where it is issued); a
// `stream_wait` is `kiln::cuda::streamWait` with the collective's buffers,
// which it checks. all_to_all and the point-to-point transfers have no CUDA
// spelling yet (expert and pipeline parallelism are refused for the CUDA
// target).
//
//===----------------------------------------------------------------------===//

#include "codegen/HostLaunchEmitter.h"

namespace kiln::codegen::detail {

/// The group name of a launch's `axes` ("dp", "pp+dp"), quoted for C++.
static std::string groupLiteral(ArrayAttr axes) {
  std::string name;
  for (Attribute axis : axes)
    name += (name.empty() ? "" : "+") + cast<StringAttr>(axis).getValue().str();
  return "\"" + name + "\"";
}

/// Elements before `dim` of `shape` (outer) and from it on (inner).
static std::pair<int64_t, int64_t> splitAt(ArrayRef<int64_t> shape, int64_t dim) {
  return {product(shape.take_front(dim)), product(shape.drop_front(dim))};
}

// all_reduce(x) -> result, sum or max over the group
void LaunchEmitter::allReduce() {
  elements("f", "f");
  StringRef kind = str("kind");
  auto axes = dyn_cast_or_null<ArrayAttr>(param("axes", "array", false));
  if (failed)
    return;
  sameCount(inCount(0), outCount(0), "the sizes of x and the result");
  if (kind != "sum" && kind != "max")
    fail("kind '", kind, "' is not sum or max");
  if (failed)
    return;
  line("if (!" + collectiveCallee("allReduce") + groupLiteral(axes) + ", " + in(0) + ", " +
       out(0) + ", " + intLiteral(inCount(0)) + ", " + boolLiteral(kind == "max") +
       eventArgument() + ", &error)) return false;");
}

/// `kiln::driver::fn(io.comm, ` on the host; on CUDA
/// `kiln::cuda::fn(stream, io.comm, `.
std::string LaunchEmitter::collectiveCallee(StringRef fn) {
  return cuda() ? "kiln::cuda::" + fn.str() + "(stream, io.comm, "
                : "kiln::driver::" + fn.str() + "(io.comm, ";
}

/// CUDA: `, <event>` of kiln-overlap-collectives (-1: none, the collective
/// runs where it is issued); nothing on the host.
std::string LaunchEmitter::eventArgument() {
  if (!cuda())
    return "";
  auto stream = params.getAs<StringAttr>("stream");
  if (stream && stream.getValue() != "comm")
    fail("stream '", stream.getValue(), "' is not \"comm\" (kiln-overlap-collectives)");
  if (!stream)
    return ", -1";
  return ", " + intLiteral(i64("event"));
}

// stream_wait(in, out): the compute stream waits for the collective of
// `event` (kiln-overlap-collectives); out is left out when it is in.
void LaunchEmitter::streamWait() {
  int64_t event = i64("event");
  if (launch.getIns().size() > 2)
    fail("takes the collective's in and out, got ", launch.getIns().size(), " buffers");
  if (failed)
    return;
  if (!cuda()) {
    line("// stream_wait: the collective of event " + intLiteral(event) +
         " blocked where it was issued");
    std::string buffers;
    for (unsigned i = 0; i < launch.getIns().size(); ++i)
      buffers += (i ? " " : "") + ("(void)" + in(i) + ";");
    line(buffers);
    return;
  }
  // The buffers: the runtime checks that they are the posted collective's.
  line("if (!kiln::cuda::streamWait(stream, io.comm, " + intLiteral(event) + ", " + in(0) + ", " +
       in(launch.getIns().size() > 1 ? 1 : 0) + ", &error)) return false;");
}

/// all_gather, reduce_scatter and local_shard: `fn(io.comm, group, in, out,
/// outer, inner)` with the split taken at `dim` of the smaller side.
void LaunchEmitter::resizingCollective(StringRef fn, bool gather) {
  // f32 data, or the bytes of compressed-gradient messages (all_gather).
  if (gather && inType(0).getElementType().isSignlessInteger(8))
    elements("b", "b");
  else
    elements("f", "f");
  auto axes = dyn_cast_or_null<ArrayAttr>(param("axes", "array", false));
  int64_t dim = i64("dim");
  if (failed)
    return;
  ArrayRef<int64_t> piece = gather ? inShape(0) : outShape(0);
  if (dim < 0 || dim >= int64_t(piece.size())) {
    fail("dim ", dim, " is outside the operand's rank ", piece.size());
    return;
  }
  auto [outer, inner] = splitAt(piece, dim);
  // local_shard moves no data between ranks: no stream of its own.
  line("if (!" + collectiveCallee(fn) + groupLiteral(axes) + ", " + in(0) + ", " + out(0) +
       ", " + intLiteral(outer) + ", " + intLiteral(inner) +
       (fn == "localShard" ? std::string() : eventArgument()) + ", &error)) return false;");
}

// all_to_all(x, send_counts) -> (rows, recv_counts), rows of x's trailing dims
void LaunchEmitter::allToAll() {
  // Rows of f32 (activations) or i64 (expert parallelism's counts).
  if (inType(0).getElementType().isSignlessInteger(64))
    elements("ll", "ll");
  else
    elements("fl", "fl");
  auto axes = dyn_cast_or_null<ArrayAttr>(param("axes", "array", false));
  if (failed)
    return;
  minRank(true, 0, 1);
  if (failed)
    return;
  int64_t rowSize = product(inShape(0).drop_front());
  line("if (!kiln::driver::allToAll(io.comm, " + groupLiteral(axes) + ", " + in(0) + ", " +
       in(1) + ", " + out(0) + ", " + out(1) + ", " + intLiteral(inShape(0)[0]) + ", " +
       intLiteral(outShape(0)[0]) + ", " + intLiteral(rowSize) + ", &error)) return false;");
}

// send(x) to the rank at coordinate `peer` on `axis`; recv() -> x from it
void LaunchEmitter::pointToPoint(bool isSend) {
  elements(isSend ? "f" : "", isSend ? "" : "f");
  StringRef axis = str("axis");
  int64_t peer = i64("peer");
  if (failed)
    return;
  line(std::string("if (!kiln::driver::") + (isSend ? "send" : "recv") + "(io.comm, \"" +
       axis.str() + "\", " + intLiteral(peer) + ", " + (isSend ? in(0) : out(0)) + ", " +
       intLiteral(isSend ? inCount(0) : outCount(0)) + ", &error)) return false;");
}

void LaunchEmitter::send() { pointToPoint(/*isSend=*/true); }
void LaunchEmitter::recv() { pointToPoint(/*isSend=*/false); }

// send_start(x) / recv_start() -> x: the transfer posted under `ticket`
void LaunchEmitter::postPointToPoint(bool isSend) {
  elements(isSend ? "f" : "", isSend ? "" : "f");
  StringRef axis = str("axis");
  int64_t peer = i64("peer"), ticket = i64("ticket");
  if (failed)
    return;
  line(std::string("if (!kiln::driver::") + (isSend ? "sendStart" : "recvStart") + "(io.comm, \"" +
       axis.str() + "\", " + intLiteral(peer) + ", " + (isSend ? in(0) : out(0)) + ", " +
       intLiteral(isSend ? inCount(0) : outCount(0)) + ", " + intLiteral(ticket) +
       ", &error)) return false;");
}

void LaunchEmitter::sendStart() { postPointToPoint(/*isSend=*/true); }
void LaunchEmitter::recvStart() { postPointToPoint(/*isSend=*/false); }

// p2p_wait(x): the posted transfer `ticket` (of x) is over
void LaunchEmitter::p2pWait() {
  elements("f", "");
  int64_t ticket = i64("ticket");
  if (failed)
    return;
  line("if (!kiln::driver::p2pWait(io.comm, " + intLiteral(ticket) + ", " + in(0) +
       ", &error)) return false;");
}

void LaunchEmitter::allGather() { resizingCollective("allGather", /*gather=*/true); }
void LaunchEmitter::reduceScatter() { resizingCollective("reduceScatter", /*gather=*/false); }
void LaunchEmitter::localShard() { resizingCollective("localShard", /*gather=*/false); }

} // namespace kiln::codegen::detail
