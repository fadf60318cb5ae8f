//===- PollBackoff.h - How a backend waits between polls -------*- C++ -*-===//
//
// Backends whose operations complete asynchronously (MPI requests, NCCL
// streams) poll them until done or until the communicator's timeout. Most
// waits are microseconds, so a waiter spins at first; then it yields; after
// 10 ms it sleeps, doubling from 10 us up to a millisecond, so that with
// more ranks than cores a waiting rank does not take the CPU from the rank
// it waits for.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_COMM_POLLBACKOFF_H
#define KILN_RUNTIME_COMM_POLLBACKOFF_H

#include <algorithm>
#include <chrono>
#include <sched.h>
#include <thread>

namespace kiln::comm {

class PollBackoff {
public:
  /// Called after each poll that found the operation still running, with
  /// the seconds waited so far.
  void pause(double waitedSeconds) {
    if (polls_++ < 200)
      return;
    if (waitedSeconds < 0.01) {
      sched_yield();
      return;
    }
    std::this_thread::sleep_for(sleep_);
    sleep_ = std::min(sleep_ * 2, std::chrono::microseconds(1000));
  }

private:
  long polls_ = 0;
  std::chrono::microseconds sleep_{10};
};

} // namespace kiln::comm

#endif // KILN_RUNTIME_COMM_POLLBACKOFF_H
