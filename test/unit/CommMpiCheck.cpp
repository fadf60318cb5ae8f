//===- CommMpiCheck.cpp - The MPI communicator under a real mpirun --------===//
//
// Run by ctest as `mpirun -np N comm_mpi_check MODE`:
//   collectives  every collective and type, checked bit for bit against the
//                rank-ordered reduction and against LocalWorld on the same
//                inputs; exits 0 when every rank passed.
//   unchecked    the same without the call check (MpiOptions::verifyCalls).
//   mismatch     rank 0 reduces 4 elements, the others 8: every rank must
//                report the mismatch naming both calls, then the job aborts.
//   kill         the last rank SIGKILLs itself mid-run while the others wait
//                in an all_reduce (60 s timeout): mpirun must end the job.
//   exit         the same with exit(4) instead of a signal.
//   hang         the last rank sleeps; the others' 2 s timeout fires and
//                they abortJob(5).
// The failure modes are judged by ExpectJobFailure.cmake: mpirun must exit
// non-zero, soon, with the expected lines in its output.
//
//===----------------------------------------------------------------------===//

#include "runtime/comm/LocalWorld.h"
#include "runtime/comm/MpiCommunicator.h"
#include "test/unit/CommSamples.h"

// The C API only: Open MPI's mpi.h otherwise pulls in its deprecated C++
// bindings, which need libmpi_cxx at link time.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <type_traits>

using namespace kiln::comm;

using kiln::test::sample;

namespace {

int failures = 0;

#define CHECK(condition, ...)                                                                      \
  do {                                                                                             \
    if (!(condition)) {                                                                            \
      ++failures;                                                                                  \
      std::printf("rank %d: CHECK FAILED %s:%d: %s\n", world.rank(), __FILE__, __LINE__,           \
                  #condition);                                                                     \
    }                                                                                              \
  } while (0)

/// A failed operation ends the job, as generated code does.
void orAbort(Communicator &c, bool ok) {
  if (ok)
    return;
  std::printf("%s\n", c.error().c_str());
  c.abortJob(2);
}

template <typename T> T rankOrderedSum(int n, size_t i) {
  T acc = sample<T>(0, i);
  for (int r = 1; r < n; ++r) {
    if constexpr (std::is_integral_v<T>)
      acc = T(std::make_unsigned_t<T>(acc) + std::make_unsigned_t<T>(sample<T>(r, i)));
    else
      acc += sample<T>(r, i);
  }
  return acc;
}

template <typename T> bool sameBits(const T &a, const T &b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

template <typename T> void checkCollectives(Communicator &world, size_t count) {
  int n = world.size(), me = world.rank();
  DType dtype = dtypeOf<T>();
  std::vector<T> buf(count);
  for (size_t i = 0; i < count; ++i)
    buf[i] = sample<T>(me, i);
  orAbort(world, world.allReduce(buf.data(), count, dtype, ReduceOp::Sum));
  for (size_t i = 0; i < count; ++i)
    CHECK(sameBits(buf[i], rankOrderedSum<T>(n, i)));

  // The same all_reduce in-process with LocalWorld: the same bits.
  std::vector<T> local(count);
  LocalWorld::run(n, [&](Communicator &c) {
    std::vector<T> mine(count);
    for (size_t i = 0; i < count; ++i)
      mine[i] = sample<T>(c.rank(), i);
    if (c.allReduce(mine.data(), count, dtype, ReduceOp::Sum) && c.rank() == me)
      local = mine;
  });
  CHECK(std::memcmp(local.data(), buf.data(), count * sizeof(T)) == 0);

  std::vector<T> send(count * size_t(n)), chunk(count), gathered(count * size_t(n));
  for (size_t i = 0; i < send.size(); ++i)
    send[i] = sample<T>(me, i);
  orAbort(world, world.reduceScatter(send.data(), chunk.data(), count, dtype, ReduceOp::Sum));
  for (size_t i = 0; i < count; ++i)
    CHECK(sameBits(chunk[i], rankOrderedSum<T>(n, size_t(me) * count + i)));
  orAbort(world, world.allGather(chunk.data(), gathered.data(), count, dtype));
  for (size_t i = 0; i < gathered.size(); ++i)
    CHECK(sameBits(gathered[i], rankOrderedSum<T>(n, i)));

  T largest = sample<T>(me, 0);
  orAbort(world, world.allReduce(&largest, 1, dtype, ReduceOp::Max));
  for (int r = 0; r < n; ++r)
    CHECK(!(sample<T>(r, 0) > largest));
}

void checkAllToAllV(Communicator &world) {
  // Rank r sends (r + 2p) % 3 elements to p, nothing to the last rank.
  int n = world.size(), me = world.rank();
  auto sends = [n](int from, int to) { return to == n - 1 ? 0 : (from + 2 * to) % 3; };
  std::vector<int64_t> sendCounts, recvCounts;
  std::vector<int32_t> send, recv;
  for (int p = 0; p < n; ++p) {
    sendCounts.push_back(sends(me, p));
    recvCounts.push_back(sends(p, me));
    for (int i = 0; i < sends(me, p); ++i)
      send.push_back(1000 * me + 100 * p + i);
    recv.resize(recv.size() + size_t(sends(p, me)), -1);
  }
  orAbort(world, world.allToAllV(send.data(), sendCounts.data(), recv.data(), recvCounts.data(),
                                 DType::I32));
  size_t at = 0;
  for (int p = 0; p < n; ++p)
    for (int i = 0; i < sends(p, me); ++i)
      CHECK(recv[at++] == 1000 * p + 100 * me + i);
}

void checkGroupsAndRing(Communicator &world) {
  int n = world.size(), me = world.rank();
  std::unique_ptr<Communicator> dp = world.split(me % 2, me, "dp");
  orAbort(world, dp != nullptr);
  double x = me;
  orAbort(*dp, dp->allReduce(&x, 1, DType::F64, ReduceOp::Sum));
  double expected = 0;
  for (int r = me % 2; r < n; r += 2)
    expected += r;
  CHECK(x == expected);
  CHECK(dp->worldRank() == me);

  // The token goes round the world; rank 0 starts it.
  int64_t token = 0;
  int next = (me + 1) % n, previous = (me + n - 1) % n;
  if (me == 0)
    orAbort(world, world.send(&token, 1, DType::I64, next));
  orAbort(world, world.recv(&token, 1, DType::I64, previous));
  if (me != 0) {
    token += me;
    orAbort(world, world.send(&token, 1, DType::I64, next));
  }
  if (me == 0)
    CHECK(token == int64_t(n) * (n - 1) / 2);

  // Posted transfers: every rank posts its receives from both neighbours,
  // then three sends to each (1 MiB ones too, past the eager limit, which
  // complete only once the peer takes them), and completes them in another
  // order than posted; the pieces arrive in posting order.
  constexpr size_t kBig = size_t(1) << 18;
  std::vector<std::vector<float>> in(6), out(6);
  std::vector<uint64_t> tickets;
  for (int k = 0; k < 6; ++k) {
    const size_t count = k % 3 == 2 ? kBig : size_t(k + 1);
    in[size_t(k)].assign(count, -1.0f);
    uint64_t ticket = 0;
    orAbort(world, world.postRecv(in[size_t(k)].data(), count, DType::F32,
                                  k < 3 ? previous : next, ticket));
    tickets.push_back(ticket);
  }
  for (int k = 0; k < 6; ++k) {
    const size_t count = k % 3 == 2 ? kBig : size_t(k + 1);
    out[size_t(k)].assign(count, float(1000 * me + k));
    uint64_t ticket = 0;
    orAbort(world, world.postSend(out[size_t(k)].data(), count, DType::F32,
                                  k < 3 ? next : previous, ticket));
    tickets.push_back(ticket);
  }
  // Progress lets them finish before their completion, which then reports
  // what progress saw (the received counts included).
  for (int i = 0; i < 100; ++i)
    orAbort(world, world.progress());
  for (auto it = tickets.rbegin(); it != tickets.rend(); ++it)
    orAbort(world, world.complete(*it));
  for (int k = 0; k < 6; ++k) {
    const int from = k < 3 ? previous : next;
    CHECK(in[size_t(k)].front() == float(1000 * from + k) &&
          in[size_t(k)].back() == float(1000 * from + k));
  }
}

int runCollectives(Communicator &world) {
  for (size_t count : {size_t(1), size_t(3), size_t(1000)}) {
    checkCollectives<float>(world, count);
    checkCollectives<double>(world, count);
    checkCollectives<int32_t>(world, count);
    checkCollectives<int64_t>(world, count);
  }
  checkAllToAllV(world);
  checkGroupsAndRing(world);
  const CommStats &stats = world.stats();
  CHECK(stats.calls > 0 && stats.inputBytes > 0);
  int32_t total = failures;
  orAbort(world, world.allReduce(&total, 1, DType::I32, ReduceOp::Sum));
  if (world.rank() == 0)
    std::printf("comm_mpi_check: %d ranks, %llu calls on rank 0 (%.3f s, %llu bytes in), %d "
                "failed checks\n",
                world.size(), (unsigned long long)stats.calls, stats.seconds,
                (unsigned long long)stats.inputBytes, total);
  return total == 0 ? 0 : 1;
}

void runMismatch(Communicator &world) {
  double x[8] = {};
  bool ok = world.allReduce(x, world.rank() == 0 ? 4 : 8, DType::F64, ReduceOp::Sum);
  const std::string &e = world.error();
  bool named = !ok && e.find("mismatch: rank ") != std::string::npos &&
               e.find("all_reduce sum over world (") != std::string::npos &&
               e.find(world.rank() == 0 ? "(8 x f64) as collective #0"
                                        : "(4 x f64) as collective #0") != std::string::npos;
  std::printf("%s\nrank %d: mismatch %s\n", e.c_str(), world.rank(),
              named ? "reported" : "NOT reported as expected");
  std::fflush(stdout);
  // Everyone has printed before the first abort kills the job.
  MPI_Barrier(MPI_COMM_WORLD);
  world.abortJob(3);
}

void runLostRank(Communicator &world, const std::string &mode) {
  float x = 1;
  orAbort(world, world.allReduce(&x, 1, DType::F32, ReduceOp::Sum));
  bool last = world.rank() == world.size() - 1;
  if (last) {
    std::printf("rank %d: going away (%s)\n", world.rank(), mode.c_str());
    std::fflush(stdout);
    if (mode == "kill")
      std::raise(SIGKILL);
    if (mode == "exit")
      std::exit(4);
    std::this_thread::sleep_for(std::chrono::seconds(60)); // hang
  }
  world.setTimeoutSeconds(mode == "hang" ? 2 : 60);
  if (!world.allReduce(&x, 1, DType::F32, ReduceOp::Sum)) {
    std::printf("%s\n", world.error().c_str());
    world.abortJob(5);
  }
  std::printf("rank %d: all_reduce returned although rank %d is gone\n", world.rank(),
              world.size() - 1);
}

} // namespace

int main(int argc, char **argv) {
  std::string mode = argc > 1 ? argv[1] : "collectives";
  if (!launchedUnderMpi()) {
    std::fprintf(stderr, "comm_mpi_check: run it under MPI: mpirun -np 2 %s %s\n", argv[0],
                 mode.c_str());
    return 2;
  }
  std::string error;
  MpiOptions options;
  options.verifyCalls = mode != "unchecked";
  std::unique_ptr<Communicator> world = MpiCommunicator::initWorld(&argc, &argv, error, options);
  if (!world) {
    std::fprintf(stderr, "comm_mpi_check: %s\n", error.c_str());
    return 1;
  }
  world->setTimeoutSeconds(30);
  if (mode == "collectives" || mode == "unchecked")
    return runCollectives(*world);
  if (mode == "mismatch")
    runMismatch(*world);
  else
    runLostRank(*world, mode);
  return 1;
}
