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

/// The groups of a grid of ranks (row-major over `axes`, the last axis
/// fastest), as the kernel-level IR names them: "dp", "edp+ep", "ep". Every
/// non-empty subset of the axes gets its group, split from the world in one
/// fixed order on every rank, since splitting is a collective.
class GridComm : public StepComm {
public:
  GridComm(comm::Communicator &world, std::vector<std::string> axes, std::vector<int64_t> shape)
      : world_(world), axes_(std::move(axes)), shape_(std::move(shape)) {}

  /// Splits the groups; false (with the communicator's error) on failure.
  bool split(std::string &error) {
    const std::vector<int64_t> mine = coordinates(world_.rank());
    for (unsigned mask = 1; mask < (1u << axes_.size()); ++mask) {
      std::string name;
      int64_t color = 0, key = 0;
      for (size_t a = 0; a < axes_.size(); ++a) {
        if (mask & (1u << a)) {
          name += (name.empty() ? "" : "+") + axes_[a];
          key = key * shape_[a] + mine[a];
        } else {
          color = color * shape_[a] + mine[a];
        }
      }
      std::unique_ptr<comm::Communicator> group =
          mask == (1u << axes_.size()) - 1 ? nullptr : world_.split(int(color), int(key), name);
      if (mask != (1u << axes_.size()) - 1 && !group) {
        error = world_.error();
        return false;
      }
      groups_.emplace_back(name, std::move(group));
    }
    return true;
  }

  comm::Communicator *group(const char *axes) override {
    for (auto &[name, group] : groups_)
      if (name == axes)
        return group ? group.get() : &world_; // all axes: the whole world
    return nullptr;
  }
  comm::Communicator &world() override { return world_; }
  double commSeconds() override {
    double seconds = world_.stats().seconds;
    for (auto &[name, group] : groups_)
      seconds += group ? group->stats().seconds : 0.0;
    return seconds;
  }
  uint64_t commBytes() override {
    uint64_t bytes = world_.stats().inputBytes;
    for (auto &[name, group] : groups_)
      bytes += group ? group->stats().inputBytes : 0;
    return bytes;
  }
  void resetStats() override {
    allToAllBytes = 0;
    world_.resetStats();
    for (auto &[name, group] : groups_)
      if (group)
        group->resetStats();
  }
  int peerRank(const char *axis, int64_t coordinate) override {
    auto it = std::find(axes_.begin(), axes_.end(), axis);
    if (it == axes_.end())
      return -1;
    const size_t a = size_t(it - axes_.begin());
    if (coordinate < 0 || coordinate >= shape_[a])
      return -1;
    std::vector<int64_t> c = coordinates(world_.rank());
    c[a] = coordinate;
    int64_t rank = 0;
    for (size_t i = 0; i < axes_.size(); ++i)
      rank = rank * shape_[i] + c[i];
    return int(rank);
  }

private:
  std::vector<int64_t> coordinates(int64_t rank) const {
    std::vector<int64_t> c(axes_.size());
    for (size_t i = axes_.size(); i-- > 0;) {
      c[i] = rank % shape_[i];
      rank /= shape_[i];
    }
    return c;
  }

  comm::Communicator &world_;
  std::vector<std::string> axes_;
  std::vector<int64_t> shape_;
  std::vector<std::pair<std::string, std::unique_ptr<comm::Communicator>>> groups_;
};

} // namespace

std::unique_ptr<StepComm> dataParallelComm(comm::Communicator &world) {
  std::string error;
  auto grid = std::make_unique<GridComm>(world, std::vector<std::string>{"dp"},
                                         std::vector<int64_t>{world.size()});
  grid->split(error); // one axis: no group to split
  return grid;
}

std::unique_ptr<StepComm> gridComm(comm::Communicator &world, int64_t ep, int64_t pp,
                                   std::string &error) {
  if (ep <= 1 && pp <= 1)
    return dataParallelComm(world);
  auto grid = pp > 1 ? std::make_unique<GridComm>(world, std::vector<std::string>{"pp", "dp"},
                                                  std::vector<int64_t>{pp, world.size() / pp})
                     : std::make_unique<GridComm>(world, std::vector<std::string>{"edp", "ep"},
                                                  std::vector<int64_t>{world.size() / ep, ep});
  if (!grid->split(error))
    return nullptr;
  return grid;
}

bool setupRanks(const ModelDesc &model, int *argc, char ***argv, const std::string &program,
                double timeoutSeconds, Ranks &ranks, std::string &error) {
  const int64_t size = worldSize(model);
  if (size <= 1) {
    ranks.world = comm::WorldOfOne::create();
    return true;
  }
  const std::string launch = "mpirun -np " + std::to_string(size) + " " + program + " ...";
  const std::string layout =
      model.pp > 1 ? "pp " + std::to_string(model.pp) + " x dp " + std::to_string(model.dp) +
                         " = " + std::to_string(size) + " ranks"
                   : std::to_string(model.dp) + " data-parallel ranks";
#ifdef KILN_HAVE_MPI
  if (!comm::launchedUnderMpi()) {
    error = "spec '" + std::string(model.specName) + "' was built for " + layout +
            "; launch it with " + launch;
    return false;
  }
  ranks.world = comm::MpiCommunicator::initWorld(argc, argv, error);
  if (!ranks.world)
    return false;
  ranks.rank = ranks.world->rank();
  ranks.size = ranks.world->size();
  if (ranks.size != size) {
    error = "rank " + std::to_string(ranks.rank) + ": spec '" + model.specName +
            "' was built for " + layout + ", but the job has " + std::to_string(ranks.size) +
            "; launch it with " + launch + " (or compile the spec for " +
            std::to_string(ranks.size) + " ranks)";
    ranks.world->abortJob(1);
    return false;
  }
  ranks.world->setTimeoutSeconds(timeoutSeconds);
  if (model.ep > 1 && (model.ep > model.dp || model.dp % model.ep != 0)) {
    error = "model description: ep " + std::to_string(model.ep) + " does not divide dp " +
            std::to_string(model.dp) + "; regenerate with kilnc";
    ranks.world->abortJob(1);
    return false;
  }
  ranks.stepComm = gridComm(*ranks.world, model.ep, model.pp, error);
  if (!ranks.stepComm) {
    ranks.world->abortJob(1);
    return false;
  }
  return true;
#else
  (void)argc;
  (void)argv;
  (void)timeoutSeconds;
  error = "spec '" + std::string(model.specName) + "' was built for " + layout +
          ", but this runtime was built without MPI; install Open MPI and rebuild Kiln";
  return false;
#endif
}

void takeShard(const float *full, uint64_t n, int rank, int size, float *shard) {
  const uint64_t chunk = shardElements(n, size), begin = uint64_t(rank) * chunk;
  for (uint64_t i = 0; i < chunk; ++i)
    shard[i] = begin + i < n ? full[begin + i] : 0.0f;
}

} // namespace kiln::driver
