//===- MpiCommunicator.h - Open MPI backend for multi-rank host programs -*- C++ -*-===//
//
// Wraps MPI_COMM_WORLD (and MPI_Comm_split for groups). Every MPI call is
// checked (MPI_ERRORS_RETURN; messages from MPI_Error_string), and every wait
// is a non-blocking MPI call polled with MPI_Test until the communicator's
// timeout, so a lost or stuck peer becomes an error message instead of a
// hang; the program then calls abortJob(), which is MPI_Abort.
//
// Algorithms (n ranks, B = bytes of the caller's buffer, "sends" = bytes one
// rank puts on the wire, as a bandwidth-optimal MPI moves them):
// - all_reduce: MPI_Ialltoallv of raw chunks (rank r gets chunk r of every
//   rank), a local reduction of the n chunks in rank order, then an in-place
//   MPI_Iallgatherv of the reduced chunks. Sends 2 (n-1)/n B, the same as a
//   ring all-reduce, in two collective latencies, with B of scratch. Chosen
//   over MPI_Allreduce because MPI fixes no summation order (Open MPI's
//   choice depends on size and rank count), so float sums would differ
//   between ranks' layouts and between MPI and LocalWorld.
// - reduce_scatter: MPI_Ialltoall of raw chunks, local reduction in rank
//   order. Sends (n-1)/n B with B of scratch.
// - all_gather, all_to_allv, send, recv: MPI_Iallgather, MPI_Ialltoallv,
//   MPI_Isend, MPI_Irecv; barrier: MPI_Ibarrier.
// - Call check (on by default, MpiOptions::verifyCalls): before each
//   collective the ranks exchange what they are about to do (kind, type,
//   reduction, count, sequence number: 40 bytes per rank, one MPI_Iallgather;
//   all_to_allv also its 2n counts), so that a mismatch is an error naming
//   both ranks and both calls on every rank, where MPI would truncate, read
//   garbage or hang. It costs one small collective's latency per call. A recv
//   checks the received count (MPI_Get_count), with or without it.
// MPI counts are ints: a call over more than 2^31 - 1 elements fails with a
// message saying so.
//
// Open MPI 4.1.4 behaviour, measured with mpirun (CommMpiCheck.cpp and its
// ctest cases): when a rank dies (SIGKILL) or exits with a non-zero code, or
// exits with 0 without MPI_Finalize, mpirun kills the other ranks, blocked
// in a collective or not, within about 1.5 s and exits non-zero (137 for
// SIGKILL, the rank's code for exit(n), 1 for a missing finalize); after
// MPI_Abort(code) it exits with that code. A rank that hangs is noticed only
// by its peers' timeouts, which is what the timeout and abortJob are for.
//
// The world finalizes MPI when the last communicator of this process is
// destroyed, unless an operation failed: then a peer may still wait for this
// rank, MPI_Finalize could wait forever, so it calls MPI_Abort(1) instead.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_COMM_MPICOMMUNICATOR_H
#define KILN_RUNTIME_COMM_MPICOMMUNICATOR_H

#include "runtime/comm/Communicator.h"

namespace kiln::comm {

struct MpiOptions {
  /// Exchange and compare every collective's signature first (see above).
  bool verifyCalls = true;
};

class MpiCommunicator {
public:
  /// Initialises MPI (MPI_THREAD_FUNNELED: only the main thread calls MPI)
  /// unless it already is, and returns the world ("world", MPI_COMM_WORLD).
  /// Returns null with `error` set if MPI fails.
  static std::unique_ptr<Communicator> initWorld(int *argc, char ***argv, std::string &error,
                                                 const MpiOptions &options = MpiOptions());
};

/// Whether an MPI launcher started this process (Open MPI's mpirun sets
/// OMPI_COMM_WORLD_SIZE, PMIx launchers PMIX_RANK, MPICH's hydra and Slurm's
/// PMI PMI_RANK). Reads only the environment and does not initialise MPI, so
/// a program built for 2 ranks and run alone can say "launch it with mpirun
/// -np 2" instead of running as a world of one.
bool launchedUnderMpi();

} // namespace kiln::comm

#endif // KILN_RUNTIME_COMM_MPICOMMUNICATOR_H
