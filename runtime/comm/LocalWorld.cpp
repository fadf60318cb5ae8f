//===- LocalWorld.cpp - N ranks as threads of one process -----------------===//
//
// The operations of LocalWorld's communicator; the state the ranks share and
// the deadlock test are in LocalRendezvous.h.
//
//===----------------------------------------------------------------------===//

#include "runtime/comm/LocalWorld.h"

#include "runtime/comm/LocalRendezvous.h"
#include "runtime/comm/Reduce.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

namespace kiln::comm {

namespace {

using namespace local;

class LocalCommunicator final : public Communicator {
public:
  LocalCommunicator(std::shared_ptr<World> world, std::shared_ptr<Group> group, std::string name,
                    int rank, std::shared_ptr<RankContext> context)
      : Communicator(std::move(name), rank, group->worldRanks, std::move(context)),
        world_(std::move(world)), group_(std::move(group)) {
    std::lock_guard<std::mutex> lock(world_->mutex);
    ++me().liveCommunicators;
  }

  ~LocalCommunicator() override {
    std::lock_guard<std::mutex> lock(world_->mutex);
    if (--me().liveCommunicators == 0)
      failIfDeadlocked(*world_);
    world_->changed.notify_all();
  }

  static std::vector<std::unique_ptr<Communicator>> createWorld(int size) {
    auto world = std::make_shared<World>();
    world->ranks.resize(static_cast<size_t>(size));
    auto group = std::make_shared<Group>();
    for (int r = 0; r < size; ++r)
      group->worldRanks.push_back(r);
    std::vector<std::unique_ptr<Communicator>> communicators;
    for (int r = 0; r < size; ++r)
      communicators.push_back(
          std::make_unique<LocalCommunicator>(world, group, "world", r, newRankContext()));
    return communicators;
  }

  void abortJob(int exitCode) override {
    std::lock_guard<std::mutex> lock(world_->mutex);
    stopWorld(rankName(rank()) + ": aborted the job (exit code " + std::to_string(exitCode) + ")");
  }

protected:
  bool allReduceImpl(void *buf, size_t count, DType dtype, ReduceOp op,
                     std::string &detail) override {
    Arrival mine;
    mine.recv = buf;
    return collective(
        {int(OpKind::AllReduce), dtype, op, count}, mine, nullptr,
        [=](std::vector<Arrival> &all) {
          size_t bytes = count * dtypeBytes(dtype);
          std::vector<unsigned char> result(bytes);
          std::vector<const void *> inputs;
          for (const Arrival &a : all)
            inputs.push_back(a.recv);
          reduction::inRankOrder(result.data(), inputs.data(), inputs.size(), count, dtype, op);
          for (Arrival &a : all)
            copy(a.recv, result.data(), bytes);
        },
        detail);
  }

  bool allGatherImpl(const void *send, void *recv, size_t countPerRank, DType dtype,
                     std::string &detail) override {
    Arrival mine;
    mine.send = send;
    mine.recv = recv;
    return collective(
        {int(OpKind::AllGather), dtype, ReduceOp::Sum, countPerRank}, mine, nullptr,
        [=](std::vector<Arrival> &all) {
          size_t chunk = countPerRank * dtypeBytes(dtype);
          for (Arrival &to : all)
            for (size_t r = 0; r < all.size(); ++r)
              copy(static_cast<char *>(to.recv) + r * chunk, all[r].send, chunk);
        },
        detail);
  }

  bool reduceScatterImpl(const void *send, void *recv, size_t countPerRank, DType dtype,
                         ReduceOp op, std::string &detail) override {
    Arrival mine;
    mine.send = send;
    mine.recv = recv;
    return collective(
        {int(OpKind::ReduceScatter), dtype, op, countPerRank}, mine, nullptr,
        [=](std::vector<Arrival> &all) {
          size_t chunk = countPerRank * dtypeBytes(dtype);
          std::vector<const void *> inputs(all.size());
          for (size_t to = 0; to < all.size(); ++to) {
            for (size_t r = 0; r < all.size(); ++r)
              inputs[r] = static_cast<const char *>(all[r].send) + to * chunk;
            reduction::inRankOrder(all[to].recv, inputs.data(), all.size(), countPerRank, dtype,
                                   op);
          }
        },
        detail);
  }

  bool allToAllVImpl(const void *send, const int64_t *sendCounts, void *recv,
                     const int64_t *recvCounts, DType dtype, std::string &detail) override {
    Arrival mine;
    mine.send = send;
    mine.recv = recv;
    mine.sendCounts = sendCounts;
    mine.recvCounts = recvCounts;
    auto countsAgree = [this, dtype](const std::vector<Arrival> &all) -> std::string {
      for (size_t from = 0; from < all.size(); ++from)
        for (size_t to = 0; to < all.size(); ++to) {
          int64_t sent = all[from].sendCounts[to], expected = all[to].recvCounts[from];
          if (sent != expected)
            return "count mismatch: " + rankName(int(from)) + " sends " + std::to_string(sent) +
                   " x " + dtypeName(dtype) + " to " + rankName(int(to)) + ", which expects " +
                   std::to_string(expected) + " from it";
        }
      return "";
    };
    return collective(
        {int(OpKind::AllToAllV), dtype, ReduceOp::Sum, 0}, mine, countsAgree,
        [=](std::vector<Arrival> &all) {
          size_t eb = dtypeBytes(dtype), n = all.size();
          // Displacements are prefix sums of the counts.
          std::vector<size_t> sendOffset(n, 0), recvOffset(n, 0);
          for (size_t from = 0; from < n; ++from)
            for (size_t to = 0; to < n; ++to) {
              size_t bytes = size_t(all[from].sendCounts[to]) * eb;
              copy(static_cast<char *>(all[to].recv) + recvOffset[to],
                   static_cast<const char *>(all[from].send) + sendOffset[from], bytes);
              sendOffset[from] += bytes;
              recvOffset[to] += bytes;
            }
        },
        detail);
  }

  bool barrierImpl(std::string &detail) override {
    return collective(
        {int(OpKind::Barrier), DType::F32, ReduceOp::Sum, 0}, Arrival(), nullptr,
        [](std::vector<Arrival> &) {}, detail);
  }

  std::unique_ptr<Communicator> splitImpl(int color, int key, const std::string &name,
                                          std::string &detail) override {
    Arrival mine;
    mine.color = color;
    mine.key = key;
    Arrival result;
    auto formGroups = [this](std::vector<Arrival> &all) {
      std::map<int, std::vector<int>> members;
      for (size_t r = 0; r < all.size(); ++r)
        members[all[r].color].push_back(static_cast<int>(r));
      for (auto &[color, ranks] : members) {
        (void)color;
        std::stable_sort(ranks.begin(), ranks.end(),
                         [&](int a, int b) { return all[size_t(a)].key < all[size_t(b)].key; });
        auto group = std::make_shared<Group>();
        for (size_t i = 0; i < ranks.size(); ++i) {
          group->worldRanks.push_back(worldRanks()[size_t(ranks[i])]);
          all[size_t(ranks[i])].newGroup = group;
          all[size_t(ranks[i])].newRank = static_cast<int>(i);
        }
      }
    };
    if (!collective({int(OpKind::Split), DType::F32, ReduceOp::Sum, 0}, mine, nullptr, formGroups,
                    detail, &result))
      return nullptr;
    return std::make_unique<LocalCommunicator>(world_, result.newGroup, name, result.newRank,
                                               context());
  }

  bool sendImpl(const void *buf, size_t count, DType dtype, int peer,
                std::string &detail) override {
    return transfer(true, buf, nullptr, count, dtype, peer, detail);
  }

  bool recvImpl(void *buf, size_t count, DType dtype, int peer, std::string &detail) override {
    return transfer(false, nullptr, buf, count, dtype, peer, detail);
  }

  void onFailure(const std::string &message) override {
    std::lock_guard<std::mutex> lock(world_->mutex);
    stopWorld(message);
  }

private:
  using Validate = std::function<std::string(const std::vector<Arrival> &)>;
  using Execute = std::function<void(std::vector<Arrival> &)>;

  RankState &me() { return world_->ranks[size_t(worldRank())]; }
  RankState &stateOf(int groupRank) {
    return world_->ranks[size_t(worldRanks()[size_t(groupRank)])];
  }

  static void copy(void *to, const void *from, size_t bytes) {
    if (bytes > 0 && to != from)
      std::memmove(to, from, bytes);
  }

  /// With the lock held: the first failure stops the world.
  void stopWorld(const std::string &message) {
    if (world_->failure.empty())
      world_->failure = message;
    world_->changed.notify_all();
  }

  std::string stoppedDetail() const {
    return "stopped because another rank failed first: " + world_->failure;
  }

  /// Waits, with the lock held by `lock`, until done(). Fails when another
  /// rank decides so (deadlock, mismatch), when the world stops, or at the
  /// timeout, except while finishing() says the data is being moved: then the
  /// peers' buffers are in use and it always waits for done().
  bool block(std::unique_lock<std::mutex> &lock, const std::function<bool()> &done,
             const std::function<bool()> &finishing, const std::function<std::string()> &waitingFor,
             const char *verb, std::string &detail) {
    RankState &state = me();
    state.blocked = true;
    state.blockedIn = currentCall();
    state.waitingFor = waitingFor;
    state.failure.clear();
    failIfDeadlocked(*world_);
    double timeout = timeoutSeconds();
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                        std::chrono::duration<double>(std::isinf(timeout) ? 1e9 : timeout));
    bool ok = false;
    for (;;) {
      if (done()) {
        ok = true;
        break;
      }
      if (finishing()) {
        world_->changed.wait(lock);
        continue;
      }
      if (!state.failure.empty()) {
        detail = state.failure;
        break;
      }
      if (!world_->failure.empty()) {
        detail = stoppedDetail();
        break;
      }
      if (world_->changed.wait_until(lock, deadline) == std::cv_status::timeout && !done() &&
          !finishing() && state.failure.empty() && world_->failure.empty()) {
        detail = waitingFor() + " " + verb + " within " + secondsText(timeout);
        stopWorld(messageFor(detail));
        break;
      }
    }
    state.blocked = false;
    state.waitingFor = nullptr;
    return ok;
  }

  bool collective(const Signature &signature, Arrival mine, const Validate &validate,
                  const Execute &execute, std::string &detail, Arrival *result = nullptr) {
    std::unique_lock<std::mutex> lock(world_->mutex);
    if (!world_->failure.empty()) {
      detail = stoppedDetail();
      return false;
    }
    uint64_t sequence = nextCollective_++;
    Collective &c = group_->collectives[sequence];
    int n = size();
    if (c.arrived == 0) {
      c.signature = signature;
      c.firstRank = rank();
      c.arrivals.resize(size_t(n));
      c.present.assign(size_t(n), false);
    } else if (!(c.signature == signature)) {
      std::string which = " as collective #" + std::to_string(sequence) + " of " + name();
      detail = "mismatch: " + rankName(c.firstRank) + " called " +
               c.arrivals[size_t(c.firstRank)].call + which;
      std::string theirs = "mismatch: " + rankName(rank()) + " called " + currentCall() + which;
      for (int r = 0; r < n; ++r)
        if (c.present[size_t(r)])
          stateOf(r).failure = theirs;
      stopWorld(messageFor(detail));
      return false;
    }
    mine.call = currentCall();
    c.arrivals[size_t(rank())] = std::move(mine);
    c.present[size_t(rank())] = true;
    ++c.arrived;
    if (c.arrived < n) {
      auto missing = [this, &c, n] {
        std::string list;
        for (int r = 0; r < n; ++r)
          if (!c.present[size_t(r)])
            list += (list.empty() ? "" : ", ") + rankName(r);
        return list;
      };
      if (!block(
              lock, [&c] { return c.done; }, [&c] { return c.executing; }, missing,
              "did not arrive", detail))
        return false;
    } else {
      std::string problem = validate ? validate(c.arrivals) : "";
      if (!problem.empty()) {
        for (int r = 0; r < n; ++r)
          stateOf(r).failure = problem;
        detail = problem;
        stopWorld(messageFor(detail));
        return false;
      }
      // Everyone is here: the others can no longer fail or leave, so their
      // buffers are safe to use without the lock.
      c.executing = true;
      for (int r = 0; r < n; ++r)
        stateOf(r).blocked = false;
      lock.unlock();
      execute(c.arrivals);
      lock.lock();
      c.done = true;
      world_->changed.notify_all();
    }
    if (result)
      *result = c.arrivals[size_t(rank())];
    if (++c.departed == n)
      group_->collectives.erase(sequence);
    return true;
  }

  /// A send or a recv. The second half of the pair to arrive copies the
  /// data, under the lock, while the first half waits.
  bool transfer(bool sending, const void *sendBuf, void *recvBuf, size_t count, DType dtype,
                int peer, std::string &detail) {
    std::unique_lock<std::mutex> lock(world_->mutex);
    if (!world_->failure.empty()) {
      detail = stoppedDetail();
      return false;
    }
    auto pair = sending ? std::make_pair(rank(), peer) : std::make_pair(peer, rank());
    auto it = group_->pending.find(pair);
    if (it != group_->pending.end()) {
      PendingTransfer &theirs = *it->second;
      if (theirs.count != count || theirs.dtype != dtype) {
        detail = "mismatch: " + rankName(peer) + " called " + theirs.call;
        stateOf(peer).failure = "mismatch: " + rankName(rank()) + " called " + currentCall();
        stopWorld(messageFor(detail));
        return false;
      }
      if (sending)
        copy(theirs.recvBuf, sendBuf, count * dtypeBytes(dtype));
      else
        copy(recvBuf, theirs.sendBuf, count * dtypeBytes(dtype));
      theirs.done = true;
      stateOf(peer).blocked = false;
      group_->pending.erase(it);
      world_->changed.notify_all();
      return true;
    }
    PendingTransfer mine{sendBuf, recvBuf, count, dtype, currentCall(), false};
    group_->pending[pair] = &mine;
    bool ok = block(
        lock, [&mine] { return mine.done; }, [] { return false; },
        [this, peer] { return rankName(peer); }, sending ? "did not receive" : "did not send",
        detail);
    auto left = group_->pending.find(pair);
    if (left != group_->pending.end() && left->second == &mine)
      group_->pending.erase(left);
    return ok;
  }

  std::shared_ptr<World> world_;
  std::shared_ptr<Group> group_;
  uint64_t nextCollective_ = 0;
};

} // namespace

std::vector<std::unique_ptr<Communicator>> LocalWorld::create(int size) {
  if (size <= 0)
    return {};
  return LocalCommunicator::createWorld(size);
}

void LocalWorld::run(int size, const std::function<void(Communicator &world)> &body) {
  std::vector<std::unique_ptr<Communicator>> communicators = create(size);
  std::vector<std::exception_ptr> errors(communicators.size());
  std::vector<std::thread> threads;
  for (size_t r = 0; r < communicators.size(); ++r)
    threads.emplace_back([&body, &errors, r, comm = std::move(communicators[r])]() mutable {
      try {
        body(*comm);
      } catch (...) {
        errors[r] = std::current_exception();
      }
      comm.reset();
    });
  for (std::thread &t : threads)
    t.join();
  for (std::exception_ptr &e : errors)
    if (e)
      std::rethrow_exception(e);
}

} // namespace kiln::comm
