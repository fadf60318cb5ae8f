//===- StepComm.h - The collectives a generated step calls -----*- C++ -*-===//
//
// A generated multi-rank step names each collective's group by its grid axes
// ("dp"), as the kernel-level IR does; the driver hands the step a StepComm
// that maps those names to the communicators it split from the world
// (runtime/comm). Data is f32. A collective along dimension `dim` of a
// row-major tensor sees it as [outer][inner] with outer the product of the
// dimensions before `dim`: the ranks' pieces interleave at `dim`, exactly as
// the reference evaluator does it (dialects/kiln/reference/CollectiveRules.cpp),
// so the generated program and the evaluator agree bit for bit.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DRIVER_STEPCOMM_H
#define KILN_RUNTIME_DRIVER_STEPCOMM_H

#include <cstdint>
#include <string>

namespace kiln::comm {
class Communicator;
} // namespace kiln::comm

namespace kiln::driver {

class StepComm {
public:
  virtual ~StepComm() = default;
  /// The communicator of the group over `axes` ("dp", "pp+dp"), or null.
  virtual comm::Communicator *group(const char *axes) = 0;
};

/// out = the sum (or max) over the group of every rank's `in` (n values).
bool allReduce(StepComm *comm, const char *axes, const float *in, float *out, int64_t n,
               bool max, std::string *error);

/// `in` is [outer][inner]; out is [outer][size * inner] with rank r's piece at
/// [r * inner, (r + 1) * inner) of each outer row.
bool allGather(StepComm *comm, const char *axes, const float *in, float *out, int64_t outer,
               int64_t inner, std::string *error);

/// `in` is [outer][size * inner]; out ([outer][inner]) is this rank's piece of
/// the sum over the group.
bool reduceScatter(StepComm *comm, const char *axes, const float *in, float *out,
                   int64_t outer, int64_t inner, std::string *error);

/// This rank's piece of `in` ([outer][size * inner] -> [outer][inner]), no
/// data moved: the slice whose reduce_scatter result this rank holds.
bool localShard(StepComm *comm, const char *axes, const float *in, float *out, int64_t outer,
                int64_t inner, std::string *error);

} // namespace kiln::driver

#endif // KILN_RUNTIME_DRIVER_STEPCOMM_H
