//===- StepComm.cpp - The collectives a generated step calls -------------===//

#include "runtime/driver/StepComm.h"

#include "runtime/comm/Communicator.h"

#include <algorithm>
#include <vector>

namespace kiln::driver {

using comm::Communicator;
using comm::DType;

static Communicator *groupOf(StepComm *stepComm, const char *axes, const char *what,
                             std::string *error) {
  Communicator *group = stepComm ? stepComm->group(axes) : nullptr;
  if (!group)
    *error = std::string(what) + " over " + axes +
             ": this program has no such group (it was built for one rank, or the driver "
             "did not set up the grid)";
  return group;
}

static bool failedIn(Communicator &group, std::string *error) {
  *error = group.error();
  return false;
}

/// [outer][size][piece] -> [size][outer][piece]: rank r's pieces contiguous.
static std::vector<float> piecesByRank(const float *in, int64_t outer, int64_t size,
                                       int64_t piece) {
  std::vector<float> byRank(size_t(outer * size * piece));
  for (int64_t r = 0; r < size; ++r)
    for (int64_t o = 0; o < outer; ++o)
      std::copy_n(in + (o * size + r) * piece, piece, byRank.data() + (r * outer + o) * piece);
  return byRank;
}

bool allReduce(StepComm *stepComm, const char *axes, const float *in, float *out, int64_t n,
               bool max, std::string *error) {
  Communicator *group = groupOf(stepComm, axes, "all_reduce", error);
  if (!group)
    return false;
  if (in != out)
    std::copy_n(in, n, out);
  if (!group->allReduce(out, size_t(n), DType::F32,
                        max ? comm::ReduceOp::Max : comm::ReduceOp::Sum))
    return failedIn(*group, error);
  return true;
}

bool allGather(StepComm *stepComm, const char *axes, const float *in, float *out, int64_t outer,
               int64_t inner, std::string *error) {
  Communicator *group = groupOf(stepComm, axes, "all_gather", error);
  if (!group)
    return false;
  int64_t size = group->size();
  if (outer == 1) // the pieces are already in rank order
    return group->allGather(in, out, size_t(inner), DType::F32) || failedIn(*group, error);
  std::vector<float> byRank(size_t(size * outer * inner));
  if (!group->allGather(in, byRank.data(), size_t(outer * inner), DType::F32))
    return failedIn(*group, error);
  for (int64_t r = 0; r < size; ++r)
    for (int64_t o = 0; o < outer; ++o)
      std::copy_n(byRank.data() + (r * outer + o) * inner, inner, out + (o * size + r) * inner);
  return true;
}

bool reduceScatter(StepComm *stepComm, const char *axes, const float *in, float *out,
                   int64_t outer, int64_t inner, std::string *error) {
  Communicator *group = groupOf(stepComm, axes, "reduce_scatter", error);
  if (!group)
    return false;
  int64_t size = group->size();
  const float *send = in;
  std::vector<float> byRank;
  if (outer != 1) {
    byRank = piecesByRank(in, outer, size, inner);
    send = byRank.data();
  }
  if (!group->reduceScatter(send, out, size_t(outer * inner), DType::F32, comm::ReduceOp::Sum))
    return failedIn(*group, error);
  return true;
}

bool localShard(StepComm *stepComm, const char *axes, const float *in, float *out, int64_t outer,
                int64_t inner, std::string *error) {
  Communicator *group = groupOf(stepComm, axes, "local_shard", error);
  if (!group)
    return false;
  int64_t size = group->size(), rank = group->rank();
  for (int64_t o = 0; o < outer; ++o)
    std::copy_n(in + (o * size + rank) * inner, inner, out + o * inner);
  return true;
}

} // namespace kiln::driver
