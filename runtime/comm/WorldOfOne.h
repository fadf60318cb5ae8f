//===- WorldOfOne.h - The communicator of a single-rank program -*- C++ -*-===//
//
// A program partitioned for one rank still calls its collectives (the code is
// the same for every layout); here they are copies: all_reduce leaves the
// buffer as it is, all_gather, reduce_scatter and all_to_allv copy send to
// recv, and send/recv are errors (there is no peer). split gives another
// world of one.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_COMM_WORLDOFONE_H
#define KILN_RUNTIME_COMM_WORLDOFONE_H

#include "runtime/comm/Communicator.h"

namespace kiln::comm {

class WorldOfOne {
public:
  /// A world of size 1 named "world".
  static std::unique_ptr<Communicator> create();
};

} // namespace kiln::comm

#endif // KILN_RUNTIME_COMM_WORLDOFONE_H
