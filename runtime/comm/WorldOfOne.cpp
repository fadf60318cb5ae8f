//===- WorldOfOne.cpp - The communicator of a single-rank program ---------===//

#include "runtime/comm/WorldOfOne.h"

#include <cstring>

namespace kiln::comm {

namespace {

class SingleRankCommunicator final : public Communicator {
public:
  SingleRankCommunicator(std::string name, std::vector<int> worldRanks,
                         std::shared_ptr<RankContext> context)
      : Communicator(std::move(name), 0, std::move(worldRanks), std::move(context)) {}

  static std::unique_ptr<Communicator> world() {
    return std::make_unique<SingleRankCommunicator>("world", std::vector<int>{0}, newRankContext());
  }

  void abortJob(int) override {}

protected:
  bool allReduceImpl(void *, size_t, DType, ReduceOp, std::string &) override { return true; }

  bool allGatherImpl(const void *send, void *recv, size_t countPerRank, DType dtype,
                     std::string &) override {
    copy(recv, send, countPerRank, dtype);
    return true;
  }

  bool reduceScatterImpl(const void *send, void *recv, size_t countPerRank, DType dtype, ReduceOp,
                         std::string &) override {
    copy(recv, send, countPerRank, dtype);
    return true;
  }

  bool allToAllVImpl(const void *send, const int64_t *sendCounts, void *recv,
                     const int64_t *recvCounts, DType dtype, std::string &detail) override {
    if (sendCounts[0] != recvCounts[0]) {
      detail = "this rank sends itself " + std::to_string(sendCounts[0]) +
               " elements but expects " + std::to_string(recvCounts[0]);
      return false;
    }
    copy(recv, send, static_cast<size_t>(sendCounts[0]), dtype);
    return true;
  }

  // The base class rejects every peer of a group of one ("the peer is this
  // rank itself" or "not a rank"), so these are never reached.
  bool sendImpl(const void *, size_t, DType, int, std::string &detail) override {
    detail = "a world of one has no peer";
    return false;
  }
  bool recvImpl(void *, size_t, DType, int, std::string &detail) override {
    detail = "a world of one has no peer";
    return false;
  }

  bool barrierImpl(std::string &) override { return true; }

  std::unique_ptr<Communicator> splitImpl(int, int, const std::string &name,
                                          std::string &) override {
    return std::make_unique<SingleRankCommunicator>(name, worldRanks(), context());
  }

private:
  static void copy(void *to, const void *from, size_t count, DType dtype) {
    if (count > 0)
      std::memcpy(to, from, count * dtypeBytes(dtype));
  }
};

} // namespace

std::unique_ptr<Communicator> WorldOfOne::create() { return SingleRankCommunicator::world(); }

} // namespace kiln::comm
