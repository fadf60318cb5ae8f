//===- HostBuild.h - Compile an emitted host program into DIR/train -------===//
//
// `kilnc SPEC -o DIR` writes DIR/train.cpp (the emitted program), DIR/build.sh
// (the exact compile command, so a user can edit and rebuild) and DIR/train,
// built with the system C++ compiler ($CXX, else c++) against Kiln's runtime
// libraries from this build. Every file is written under a temporary name and
// renamed into place only when the compile succeeded, so a failed build
// leaves DIR as it was.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TOOLS_KILNC_HOSTBUILD_H
#define KILN_TOOLS_KILNC_HOSTBUILD_H

#include <cstdint>
#include <string>

namespace kiln {
namespace frontend {
struct Spec;
} // namespace frontend

/// With `cudaSm` (the CUDA target, `target.sm`), DIR/train.cu built with
/// nvcc for that GPU generation (--fmad=false), linked with cuBLASLt and the
/// CUDA runtime.
bool buildHostExecutable(const std::string &dir, const std::string &source,
                         std::string &error, int64_t cudaSm = 0);

/// Warns on stderr when the built program will not fit this machine: every
/// rank of the spec's layout runs here (mpirun on one host), each holding
/// its model state (the summary's memory_per_rank, which also counts the
/// gradients the arena holds, so this errs high) and the `arenaBytes` arena.
/// `DIR/train` checks exactly before it allocates and refuses to start.
void warnIfTooBigForThisMachine(const frontend::Spec &spec, uint64_t arenaBytes,
                                const std::string &dir);

} // namespace kiln

#endif // KILN_TOOLS_KILNC_HOSTBUILD_H
