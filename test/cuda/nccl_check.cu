//===- nccl_check.cu - the NCCL communicator on GPUs, vs the MPI backend ---===//
//
// A standalone program, run as `mpirun -np N nccl_check` on N GPUs
// (scripts/gpu-check.sh does where the machine has two or more; ctest's
// NcclCheckBuildsWithNvcc runs it once without mpirun, a world of one):
//
//   nvcc -arch=sm_90a -std=c++17 -O2 -DKILN_HAVE_NCCL -I. test/cuda/nccl_check.cu
//       build/runtime/comm/libKilnCommMpi.a build/runtime/comm/libKilnComm.a
//       /usr/lib/x86_64-linux-gnu/openmpi/lib/libmpi.so -lnccl -lcudart -o nccl_check
//
// Each rank takes the GPU of its local rank (cuda::localRankDevice), builds
// the MPI world and the NCCL world over it (runtime/cuda/
// NcclCommunicator.cuh), and runs every operation twice on the same seeded
// inputs: NCCL over device buffers, MpiCommunicator over host copies. The
// results must be the same bits on every rank:
//   - the reduction kernel alone (orderedReduce on this GPU against
//     comm::reduction::inRankOrder, every dtype, Sum and Max);
//   - all_reduce sum and max, f32 and i64, at a count that splits unevenly
//     over the ranks (grouped send / recv) and one that splits evenly
//     (in-place ncclAllGather); Max inputs hold NaNs with payloads, i64 sums
//     wrap around;
//   - all_gather, reduce_scatter, all_to_allv with uneven (some zero)
//     counts, a send / recv ring, a split into two groups (keys reversed)
//     with an all_reduce in each, and a barrier.
// One line per operation on rank 0 (with the rank and element of the first
// difference, if any); exit status 1 if any differs. Last, the time of a
// 64 MiB f32 all_reduce, for the record. Without a CUDA device it prints
// "nccl_check: skipped: no CUDA device" and exits 0.
//
//===----------------------------------------------------------------------===//

#include "runtime/comm/MpiCommunicator.h"
#include "runtime/comm/Reduce.h"
#include "runtime/init/SeededRng.h"

#include "runtime/cuda/NcclCommunicator.cuh"
#include "test/cuda/DeviceCopies.cuh"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

using namespace kiln;
using comm::Communicator;
using comm::DType;
using comm::dtypeOf;
using comm::ReduceOp;

using test::toDevice;
using test::toHost;

namespace {

/// Rank `rank`'s `n` inputs: floats over twenty binades (so that the order
/// of a sum shows), integers of any bits (so that sums wrap). With
/// `nans`, every 97th element is a NaN with a payload on one of the ranks.
template <typename T>
std::vector<T> inputs(uint64_t seed, int rank, size_t n, bool nans = false, int ranks = 1) {
  init::SeededRng rng(seed * 1000 + uint64_t(rank), "nccl-check");
  std::vector<T> v(n);
  for (size_t i = 0; i < n; ++i) {
    if constexpr (std::is_floating_point_v<T>)
      v[i] = T(rng.normal() * std::exp2(rng.uniform() * 20 - 10));
    else
      v[i] = T(rng.next());
    if constexpr (std::is_floating_point_v<T>) {
      if (nans && i % 97 == 0 && int((i / 97) % size_t(ranks)) == rank) {
        const uint64_t bits = (sizeof(T) == 4 ? 0x7fc00000ull : 0x7ff8000000000000ull) | (i + 1);
        std::memcpy(&v[i], &bits, sizeof(T));
      }
    }
  }
  return v;
}


/// Compares one operation's results on every rank and prints its line.
class Checker {
public:
  explicit Checker(Communicator &world) : world(world) {}

  /// got (NCCL's) and want (the reference's: MPI's) of this rank, element
  /// by element; every rank of the world calls it, in the same order.
  template <typename T>
  void same(const std::string &what, const std::vector<T> &got, const std::vector<T> &want,
            const char *reference = "MPI") {
    int64_t first = got.size() == want.size() ? -1 : 0;
    for (size_t i = 0; first < 0 && i < got.size(); ++i)
      if (std::memcmp(&got[i], &want[i], sizeof(T)) != 0)
        first = int64_t(i);
    std::vector<int64_t> all(size_t(world.size()));
    must(world, world.allGather(&first, all.data(), 1, DType::I64));
    int bad = -1;
    for (int r = 0; r < world.size() && bad < 0; ++r)
      if (all[size_t(r)] >= 0)
        bad = r;
    if (bad >= 0)
      ++failures;
    if (world.rank() != 0)
      return;
    if (bad < 0)
      std::printf("nccl_check: %s: same bits as %s on %d rank(s)\n", what.c_str(), reference,
                  world.size());
    else
      std::printf("nccl_check: %s: DIFFERS from %s (rank %d, element %lld first)\n",
                  what.c_str(), reference, bad, (long long)all[size_t(bad)]);
    std::fflush(stdout);
  }

  /// A failed operation ends the job, as generated code does.
  static void must(Communicator &c, bool ok) {
    if (ok)
      return;
    std::printf("nccl_check: %s\n", c.error().c_str());
    std::fflush(stdout);
    c.abortJob(2);
    std::exit(2);
  }

  int failures = 0;

private:
  Communicator &world;
};

std::string label(const std::string &op, DType dtype, size_t count, const char *per = "") {
  return op + " " + comm::dtypeName(dtype) + ", " + std::to_string(count) + " x " +
         comm::dtypeName(dtype) + per;
}

/// orderedReduce on this GPU against inRankOrder: 5 chunks of 1001.
template <typename T> void checkKernel(Checker &check, ReduceOp op, uint64_t seed) {
  const int n = 5;
  const size_t count = 1001;
  std::vector<T> in;
  for (int r = 0; r < n; ++r) {
    std::vector<T> chunk = inputs<T>(seed, r, count, op == ReduceOp::Max, n);
    in.insert(in.end(), chunk.begin(), chunk.end());
  }
  std::vector<const void *> chunks(n);
  for (int r = 0; r < n; ++r)
    chunks[size_t(r)] = in.data() + size_t(r) * count;
  std::vector<T> want(count);
  comm::reduction::inRankOrder(want.data(), chunks.data(), n, count, dtypeOf<T>(), op);
  T *dIn = toDevice(in), *dOut = toDevice(std::vector<T>(count));
  cuda::orderedReduce(nullptr, dOut, dIn, int64_t(count), int64_t(count), n, dtypeOf<T>(), op);
  check.same(std::string("orderedReduce kernel ") + comm::reduceOpName(op) + " " +
                 comm::dtypeName(dtypeOf<T>()) + ", 5 chunks of 1001 on each rank's GPU",
             toHost(dOut, count), want, "inRankOrder");
  KILN_CUDA_CHECK(cudaFree(dIn));
  KILN_CUDA_CHECK(cudaFree(dOut));
}

template <typename T>
void checkAllReduce(Checker &check, Communicator &nccl, Communicator &mpi, size_t count,
                    ReduceOp op, uint64_t seed, const std::string &over = "") {
  std::vector<T> host = inputs<T>(seed, nccl.rank(), count, op == ReduceOp::Max, nccl.size());
  T *buf = toDevice(host);
  Checker::must(nccl, nccl.allReduce(buf, count, dtypeOf<T>(), op));
  Checker::must(mpi, mpi.allReduce(host.data(), count, dtypeOf<T>(), op));
  check.same(label(std::string("all_reduce ") + comm::reduceOpName(op), dtypeOf<T>(), count) + over,
             toHost(buf, count), host);
  KILN_CUDA_CHECK(cudaFree(buf));
}

void checkAllGather(Checker &check, Communicator &nccl, Communicator &mpi) {
  const size_t count = 777, n = size_t(nccl.size());
  std::vector<float> send = inputs<float>(20, nccl.rank(), count), want(count * n);
  float *dSend = toDevice(send), *dRecv = toDevice(std::vector<float>(count * n));
  Checker::must(nccl, nccl.allGather(dSend, dRecv, count, DType::F32));
  Checker::must(mpi, mpi.allGather(send.data(), want.data(), count, DType::F32));
  check.same(label("all_gather", DType::F32, count, " per rank"), toHost(dRecv, count * n), want);
  KILN_CUDA_CHECK(cudaFree(dSend));
  KILN_CUDA_CHECK(cudaFree(dRecv));
}

void checkReduceScatter(Checker &check, Communicator &nccl, Communicator &mpi) {
  const size_t count = 513, n = size_t(nccl.size());
  std::vector<float> send = inputs<float>(21, nccl.rank(), count * n), want(count);
  float *dSend = toDevice(send), *dRecv = toDevice(std::vector<float>(count));
  Checker::must(nccl, nccl.reduceScatter(dSend, dRecv, count, DType::F32, ReduceOp::Sum));
  Checker::must(mpi, mpi.reduceScatter(send.data(), want.data(), count, DType::F32,
                                       ReduceOp::Sum));
  check.same(label("reduce_scatter sum", DType::F32, count, " per rank"), toHost(dRecv, count),
             want);
  KILN_CUDA_CHECK(cudaFree(dSend));
  KILN_CUDA_CHECK(cudaFree(dRecv));
}

void checkAllToAllV(Checker &check, Communicator &nccl, Communicator &mpi) {
  const int n = nccl.size(), me = nccl.rank();
  // Rank s sends (s + 2 d) % 5 * 37 elements to rank d: uneven, some zero.
  auto sends = [](int s, int d) { return int64_t((s + 2 * d) % 5) * 37; };
  std::vector<int64_t> sendCounts(static_cast<size_t>(n)), recvCounts(static_cast<size_t>(n));
  size_t sent = 0, received = 0;
  for (int p = 0; p < n; ++p) {
    sendCounts[size_t(p)] = sends(me, p);
    recvCounts[size_t(p)] = sends(p, me);
    sent += size_t(sendCounts[size_t(p)]);
    received += size_t(recvCounts[size_t(p)]);
  }
  std::vector<float> send = inputs<float>(22, me, sent), want(received);
  float *dSend = toDevice(send), *dRecv = toDevice(std::vector<float>(received));
  Checker::must(nccl, nccl.allToAllV(dSend, sendCounts.data(), dRecv, recvCounts.data(),
                                     DType::F32));
  Checker::must(mpi, mpi.allToAllV(send.data(), sendCounts.data(), want.data(),
                                   recvCounts.data(), DType::F32));
  check.same("all_to_allv f32, uneven counts (37 x 0..4 per pair)", toHost(dRecv, received),
             want);
  KILN_CUDA_CHECK(cudaFree(dSend));
  KILN_CUDA_CHECK(cudaFree(dRecv));
}

/// Each rank sends to the next and receives from the previous; even ranks
/// send first, odd ones receive first, so that no blocking send waits on a
/// rank that is itself sending.
void checkRing(Checker &check, Communicator &nccl, Communicator &mpi) {
  const int n = nccl.size(), me = nccl.rank(), next = (me + 1) % n, prev = (me + n - 1) % n;
  const size_t count = 1000 + size_t(me); // each pair its own count
  const size_t incoming = 1000 + size_t(prev);
  std::vector<double> send = inputs<double>(23, me, count), want(incoming);
  double *dSend = toDevice(send), *dRecv = toDevice(std::vector<double>(incoming));
  auto ring = [&](Communicator &c, const void *out, void *in) {
    if (me % 2 == 0) {
      Checker::must(c, c.send(out, count, DType::F64, next));
      Checker::must(c, c.recv(in, incoming, DType::F64, prev));
    } else {
      Checker::must(c, c.recv(in, incoming, DType::F64, prev));
      Checker::must(c, c.send(out, count, DType::F64, next));
    }
  };
  ring(nccl, dSend, dRecv);
  ring(mpi, send.data(), want.data());
  check.same("send / recv ring f64, 1000 + rank x f64", toHost(dRecv, incoming), want);
  KILN_CUDA_CHECK(cudaFree(dSend));
  KILN_CUDA_CHECK(cudaFree(dRecv));
}

/// Two groups by rank parity, ordered by reversed world rank, each with an
/// all_reduce; MPI splits the same way.
void checkSplit(Checker &check, Communicator &nccl, Communicator &mpi) {
  const int color = nccl.rank() % 2, key = -nccl.rank();
  std::unique_ptr<Communicator> ncclGroup = nccl.split(color, key, "half");
  Checker::must(nccl, ncclGroup != nullptr);
  std::unique_ptr<Communicator> mpiGroup = mpi.split(color, key, "half");
  Checker::must(mpi, mpiGroup != nullptr);
  std::vector<int32_t> ranks = {ncclGroup->rank(), ncclGroup->size(), ncclGroup->worldRank()};
  check.same("split into two groups: rank, size, world rank",
             ranks, std::vector<int32_t>{mpiGroup->rank(), mpiGroup->size(),
                                         mpiGroup->worldRank()});
  checkAllReduce<float>(check, *ncclGroup, *mpiGroup, 1001, ReduceOp::Sum, 30 + uint64_t(color),
                        " over each half of a split");
}

/// The time of a 64 MiB f32 all_reduce (the median of 5, after one warm-up).
void timeAllReduce(Communicator &nccl) {
  const size_t count = size_t(16) << 20;
  float *buf = toDevice(std::vector<float>(count, 1.0f));
  std::vector<double> seconds;
  for (int i = 0; i < 6; ++i) {
    const auto start = std::chrono::steady_clock::now();
    Checker::must(nccl, nccl.allReduce(buf, count, DType::F32, ReduceOp::Sum));
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
                          .count());
  }
  std::sort(seconds.begin() + 1, seconds.end());
  const double median = seconds[3];
  if (nccl.rank() == 0)
    std::printf("nccl_check: all_reduce sum f32, 64 MiB on %d rank(s): %.3f ms, algorithm "
                "bandwidth %.1f GB/s (median of 5)\n",
                nccl.size(), median * 1e3, double(count * 4) / median / 1e9);
  KILN_CUDA_CHECK(cudaFree(buf));
}

} // namespace

int main(int argc, char **argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("nccl_check: skipped: no CUDA device\n");
    return 0;
  }
  std::string error;
  std::unique_ptr<Communicator> mpi = comm::MpiCommunicator::initWorld(&argc, &argv, error);
  if (!mpi) {
    std::printf("nccl_check: %s\n", error.c_str());
    return 1;
  }
  mpi->setTimeoutSeconds(120);
  const int device = cuda::localRankDevice();
  std::unique_ptr<Communicator> nccl = cuda::NcclCommunicator::initWorld(*mpi, device, error);
  if (!nccl) {
    std::printf("nccl_check: rank %d: %s\n", mpi->rank(), error.c_str());
    std::fflush(stdout);
    mpi->abortJob(1);
    return 1;
  }
  nccl->setTimeoutSeconds(120);
  if (mpi->rank() == 0)
    std::printf("nccl_check: %d rank(s), rank 0 on device %d of %d\n", mpi->size(), device,
                devices);

  Checker check(*mpi);
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max}) {
    checkKernel<float>(check, op, 1);
    checkKernel<double>(check, op, 2);
    checkKernel<int32_t>(check, op, 3);
    checkKernel<int64_t>(check, op, 4);
    checkKernel<int8_t>(check, op, 5);
  }
  const size_t uneven = 1001, even = size_t(768) * size_t(nccl->size());
  for (size_t count : {uneven, even})
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max}) {
      checkAllReduce<float>(check, *nccl, *mpi, count, op, 10 + count);
      checkAllReduce<int64_t>(check, *nccl, *mpi, count, op, 11 + count);
    }
  checkAllGather(check, *nccl, *mpi);
  checkReduceScatter(check, *nccl, *mpi);
  checkAllToAllV(check, *nccl, *mpi);
  if (nccl->size() > 1)
    checkRing(check, *nccl, *mpi);
  else
    std::printf("nccl_check: send / recv ring: not run (one rank)\n");
  checkSplit(check, *nccl, *mpi);
  Checker::must(*nccl, nccl->barrier());
  if (mpi->rank() == 0)
    std::printf("nccl_check: barrier: ok\n");
  timeAllReduce(*nccl);

  if (mpi->rank() == 0)
    std::printf("nccl_check: %s\n", check.failures ? "SOME OPERATIONS DIFFER" : "all same bits");
  nccl.reset(); // before the MPI world it stands on
  return check.failures ? 1 : 0;
}
