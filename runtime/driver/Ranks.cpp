//===- Ranks.cpp - The ranks a training executable runs on ----------------===//

#include "runtime/driver/Ranks.h"

#include "runtime/comm/WorldOfOne.h"
#ifdef KILN_HAVE_MPI
#include "runtime/comm/MpiCommunicator.h"
#endif

#include <algorithm>
#include <vector>

namespace kiln::driver {
namespace {

/// A data-parallel grid: the "dp" group is the whole world.
class DataParallelComm : public StepComm {
public:
  explicit DataParallelComm(comm::Communicator &world) : world_(world) {}
  comm::Communicator *group(const char *axes) override {
    return std::string(axes) == "dp" ? &world_ : nullptr;
  }
  comm::Communicator &world() override { return world_; }
  int peerRank(const char *axis, int64_t coordinate) override {
    return std::string(axis) == "dp" && coordinate >= 0 && coordinate < world_.size()
               ? int(coordinate)
               : -1;
  }

private:
  comm::Communicator &world_;
};

} // namespace

std::unique_ptr<StepComm> dataParallelComm(comm::Communicator &world) {
  return std::make_unique<DataParallelComm>(world);
}

bool setupRanks(const ModelDesc &model, int *argc, char ***argv, const std::string &program,
                double timeoutSeconds, Ranks &ranks, std::string &error) {
  if (model.dp <= 1) {
    ranks.world = comm::WorldOfOne::create();
    return true;
  }
  const std::string launch = "mpirun -np " + std::to_string(model.dp) + " " + program + " ...";
#ifdef KILN_HAVE_MPI
  if (!comm::launchedUnderMpi()) {
    error = "spec '" + std::string(model.specName) + "' was built for " +
            std::to_string(model.dp) + " data-parallel ranks; launch it with " + launch;
    return false;
  }
  ranks.world = comm::MpiCommunicator::initWorld(argc, argv, error);
  if (!ranks.world)
    return false;
  ranks.rank = ranks.world->rank();
  ranks.size = ranks.world->size();
  if (ranks.size != model.dp) {
    error = "rank " + std::to_string(ranks.rank) + ": spec '" + model.specName +
            "' was built for dp " + std::to_string(model.dp) + " ranks, but the job has " +
            std::to_string(ranks.size) + "; launch it with " + launch +
            " (or compile the spec for dp " + std::to_string(ranks.size) + ")";
    ranks.world->abortJob(1);
    return false;
  }
  ranks.world->setTimeoutSeconds(timeoutSeconds);
  ranks.stepComm = dataParallelComm(*ranks.world);
  return true;
#else
  (void)argc;
  (void)argv;
  (void)timeoutSeconds;
  error = "spec '" + std::string(model.specName) + "' was built for " + std::to_string(model.dp) +
          " ranks, but this runtime was built without MPI; install Open MPI and rebuild Kiln";
  return false;
#endif
}

void takeShard(const float *full, uint64_t n, int rank, int size, float *shard) {
  const uint64_t chunk = shardElements(n, size), begin = uint64_t(rank) * chunk;
  for (uint64_t i = 0; i < chunk; ++i)
    shard[i] = begin + i < n ? full[begin + i] : 0.0f;
}

} // namespace kiln::driver
