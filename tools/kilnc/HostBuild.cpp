//===- HostBuild.cpp - Compile an emitted host program into DIR/train -----===//

#include "tools/kilnc/HostBuild.h"
#include "frontend/Spec.h"
#include "frontend/Summary.h"
#include "runtime/io/AtomicFile.h"
#include "runtime/io/SystemMemory.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"

#include <unistd.h>

using namespace llvm;

namespace kiln {

// Baked in by CMake: where the runtime headers and static libraries are.
static const char kSourceDir[] = KILN_SOURCE_DIR;
static const char kRuntimeLibs[] = KILN_RUNTIME_LIBS; // ':'-separated, link order
// ':'-separated; empty unless Kiln was configured with KILN_SANITIZE.
static const char kSanitizeFlags[] = KILN_SANITIZE_FLAGS;
// Debian's libopenblas0-openmp (scripts/install-deps.sh installs it).
static const char kOpenBlasOpenMPDir[] = "/usr/lib/x86_64-linux-gnu/openblas-openmp";

/// The CUDA toolkit kilnc builds GPU programs with.
static const char kCudaDir[] = "/usr/local/cuda";

/// nvcc's -arch for `sm` (the arch-specific `a` targets where Kiln's kernels
/// use them: wgmma and the block-scaled FP8 GEMMs on 90 and 100).
static std::string cudaArch(int64_t sm) {
  return "sm_" + std::to_string(sm) + (sm >= 90 ? "a" : "");
}

static std::vector<std::string> compileCommand(const std::string &cxx, const std::string &src,
                                               const std::string &out, int64_t cudaSm) {
  if (cudaSm) {
    // --fmad=false: every arith op of the IR is one rounding on the GPU too
    // (as -ffp-contract=off on the host); cuBLASLt's GEMMs are not affected.
    std::vector<std::string> args = {cxx, "-arch=" + cudaArch(cudaSm), "-std=c++17", "-O3",
                                     "--fmad=false", "-Xcompiler", "-fopenmp",
                                     "-I" + std::string(kSourceDir), src, "-o", out};
    SmallVector<StringRef> libs;
    StringRef(kRuntimeLibs).split(libs, ':', -1, false);
    for (StringRef lib : libs) {
      // nvcc takes .a and .so inputs by their suffix; a versioned shared
      // library (libdnnl.so.2.6) goes to the linker directly.
      if (!lib.ends_with(".a") && !lib.ends_with(".so") && !lib.starts_with("-"))
        args.push_back("-Xlinker");
      args.push_back(lib.str());
    }
    // Data-parallel programs call NCCL (runtime/cuda/StepCollectives.cuh);
    // where the toolkit has it, every CUDA program is built with it.
    const bool nccl = sys::fs::exists(std::string(kCudaDir) + "/include/nccl.h");
    if (nccl)
      args.insert(args.begin() + 1, "-DKILN_HAVE_NCCL");
    for (const char *lib : {"-lcublasLt", "-lcudart", "-lopenblas", "-lpthread"})
      args.push_back(lib);
    if (nccl)
      args.push_back("-lnccl");
    args.push_back("-L" + std::string(kCudaDir) + "/lib");
    args.push_back("-Xlinker");
    args.push_back("-rpath," + std::string(kCudaDir) + "/lib");
    return args;
  }
  // -ffp-contract=off: every arith op of the IR is one rounding, as the
  // reference semantics say; a fused multiply-add would round once for two,
  // and differently in a fused loop than in two separate ones.
  std::vector<std::string> args = {cxx,         "-std=c++17", "-O3", "-march=native",
                                   "-ffp-contract=off", "-fopenmp",
                                   "-I" + std::string(kSourceDir), src, "-o", out};
  SmallVector<StringRef> sanitizeFlags;
  StringRef(kSanitizeFlags).split(sanitizeFlags, ':', -1, false);
  for (StringRef flag : sanitizeFlags)
    args.push_back(flag.str());
  SmallVector<StringRef> libs;
  StringRef(kRuntimeLibs).split(libs, ':', -1, false);
  for (StringRef lib : libs)
    args.push_back(lib.str());
  // OpenBLAS's OpenMP build runs its GEMMs on the program's own OpenMP
  // threads. The default (pthread) build brings a second pool that spins
  // against the OpenMP one on every core; bench/RESULTS.md measured the cost.
  if (llvm::sys::fs::exists(std::string(kOpenBlasOpenMPDir) + "/libopenblas.so.0")) {
    args.push_back(std::string(kOpenBlasOpenMPDir) + "/libopenblas.so.0");
    args.push_back("-Wl,-rpath," + std::string(kOpenBlasOpenMPDir));
  } else {
    args.push_back("-lopenblas");
  }
  args.push_back("-lpthread");
  return args;
}

static std::string shellQuote(const std::string &s) {
  if (s.find_first_of(" '\"$\\`") == std::string::npos)
    return s;
  std::string q = "'";
  for (char c : s)
    q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

bool buildHostExecutable(const std::string &dir, const std::string &source,
                         std::string &error, int64_t cudaSm) {
  const std::string sourceName = cudaSm ? "train.cu" : "train.cpp";
  if (std::error_code ec = sys::fs::create_directories(dir)) {
    error = "cannot create output directory '" + dir + "': " + ec.message();
    return false;
  }
  SmallString<256> absDir(dir);
  sys::fs::make_absolute(absDir);
  std::string srcPath = (absDir + "/" + sourceName).str();
  std::string exePath = (absDir + "/train").str();
  std::string tmpSrc = srcPath + ".tmp." + std::to_string(getpid()) + (cudaSm ? ".cu" : ".cpp");
  std::string tmpExe = exePath + ".tmp." + std::to_string(getpid());
  auto cleanup = [&] {
    sys::fs::remove(tmpSrc);
    sys::fs::remove(tmpExe);
  };
  if (!io::writeFileAtomic(tmpSrc, {{source.data(), source.size()}}, error))
    return false;

  const char *cxxEnv = std::getenv(cudaSm ? "NVCC" : "CXX");
  std::string cxx = cxxEnv && *cxxEnv ? cxxEnv : cudaSm ? "nvcc" : "c++";
  ErrorOr<std::string> cxxPath =
      cudaSm ? sys::findProgramByName(cxx, {std::string(kCudaDir) + "/bin"})
             : sys::findProgramByName(cxx);
  if (!cxxPath) {
    cleanup();
    error = cudaSm ? "no CUDA compiler '" + cxx + "' on PATH or in " + std::string(kCudaDir) +
                         "/bin (set NVCC to one; the CUDA target needs the CUDA toolkit)"
                   : "no C++ compiler '" + cxx + "' on PATH (set CXX to one)";
    return false;
  }
  std::vector<std::string> args = compileCommand(*cxxPath, tmpSrc, tmpExe, cudaSm);
  SmallVector<StringRef> argRefs(args.begin(), args.end());
  std::string message;
  int rc = sys::ExecuteAndWait(*cxxPath, argRefs, std::nullopt, {}, 0, 0, &message);
  if (rc != 0) {
    cleanup();
    error = "compiling the generated program failed (" +
            (message.empty() ? "exit code " + std::to_string(rc) : message) +
            "); this is a kilnc bug, please report it with the spec";
    return false;
  }

  // build.sh: the same command on the final names.
  std::vector<std::string> final = compileCommand(cudaSm ? *cxxPath : cxx, sourceName, "train",
                                                  cudaSm);
  std::string script = "#!/bin/sh\n# Rebuilds ./train from " + sourceName +
                       " (written by kilnc).\n"
                       "set -e\ncd \"$(dirname \"$0\")\"\n";
  for (size_t i = 0; i < final.size(); ++i)
    script += (i ? " " : "") + shellQuote(final[i]);
  script += "\n";
  std::string scriptPath = (absDir + "/build.sh").str();
  if (!io::writeFileAtomic(scriptPath, {{script.data(), script.size()}}, error)) {
    cleanup();
    return false;
  }
  sys::fs::setPermissions(scriptPath, sys::fs::all_read | sys::fs::owner_write |
                                          sys::fs::all_exe);
  if (std::error_code ec = sys::fs::rename(tmpSrc, srcPath)) {
    cleanup();
    error = "cannot write '" + srcPath + "': " + ec.message();
    return false;
  }
  if (std::error_code ec = sys::fs::rename(tmpExe, exePath)) {
    cleanup();
    error = "cannot write '" + exePath + "': " + ec.message();
    return false;
  }
  return true;
}

void warnIfTooBigForThisMachine(const frontend::Spec &spec, uint64_t arenaBytes,
                                const std::string &dir) {
  std::optional<io::AvailableMemory> available = io::availableMemory();
  if (!available)
    return;
  const frontend::ModelSummary summary = frontend::summarize(spec);
  const uint64_t ranks = uint64_t(summary.worldSize);
  const uint64_t perRank = uint64_t(summary.memoryPerRankBytes) + arenaBytes;
  // Past 2^64 bytes it fits nowhere; the product only needs to compare.
  uint64_t total;
  if (__builtin_mul_overflow(perRank, ranks, &total))
    total = UINT64_MAX;
  if (total <= available->bytes)
    return;
  errs() << "kilnc: warning: " << dir << "/train needs about " << io::formatBytes(total)
         << (ranks > 1 ? " for its " + std::to_string(ranks) + " ranks" : std::string())
         << " (model state " << io::formatBytes(uint64_t(summary.memoryPerRankBytes))
         << " and an arena of " << io::formatBytes(arenaBytes)
         << (ranks > 1 ? " per rank" : "") << ") and this machine has "
         << io::formatBytes(available->bytes) << " available (" << available->source
         << "); it will refuse to start here\n";
}

} // namespace kiln
