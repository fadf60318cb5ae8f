//===- LocalRendezvous.cpp - LocalWorld's deadlock test -------------------===//

#include "runtime/comm/LocalRendezvous.h"

namespace kiln::comm::local {

void failIfDeadlocked(World &world) {
  // Once the world has stopped, the blocked ranks are failing already (and
  // may not have woken up yet): keep the message that stopped them.
  if (!world.failure.empty())
    return;
  std::vector<int> blocked, left;
  for (size_t r = 0; r < world.ranks.size(); ++r) {
    const RankState &state = world.ranks[r];
    if (state.liveCommunicators == 0)
      left.push_back(static_cast<int>(r));
    else if (!state.blocked)
      return;
    else
      blocked.push_back(static_cast<int>(r));
  }
  if (blocked.empty())
    return;
  // Enough to see the cycle without a 64-rank wall of text.
  constexpr size_t kListed = 8;
  std::string summary = "deadlock: every rank still running is blocked: ";
  for (size_t i = 0; i < blocked.size() && i < kListed; ++i) {
    const RankState &state = world.ranks[static_cast<size_t>(blocked[i])];
    summary += (i ? "; rank " : "rank ") + std::to_string(blocked[i]) + " in " + state.blockedIn;
    if (state.waitingFor)
      summary += ", waiting for " + state.waitingFor();
  }
  if (blocked.size() > kListed)
    summary += "; and " + std::to_string(blocked.size() - kListed) + " more";
  if (!left.empty()) {
    summary += "; finished (all communicators destroyed):";
    for (size_t i = 0; i < left.size(); ++i)
      summary += (i ? ", rank " : " rank ") + std::to_string(left[i]);
  }
  for (int r : blocked)
    world.ranks[static_cast<size_t>(r)].failure = summary;
  world.failure = summary;
  world.changed.notify_all();
}

} // namespace kiln::comm::local
