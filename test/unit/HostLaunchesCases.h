//===- HostLaunchesCases.h - one launch per catalog kernel, with expectations ===//
//
// The cases HostLaunchesTest emits, compiles and checks: each a small
// kernel-level function (buffers are the arguments %b0, %b1, ..., named b0,
// b1, ... in the C++) around one launch, and substrings its C++ must hold.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TEST_UNIT_HOSTLAUNCHESCASES_H
#define KILN_TEST_UNIT_HOSTLAUNCHESCASES_H

#include <string>
#include <vector>

namespace kiln::test {

struct Case {
  std::string kernel;
  /// Types of the function arguments b0, b1, ...
  std::vector<std::string> types;
  /// Which arguments are the launch's ins and outs.
  std::vector<int> ins, outs;
  /// The params dictionary, braces included.
  std::string params;
  /// Substrings the emitted C++ must contain (and must not, with a leading '!').
  std::vector<std::string> expect;
};

/// At least one case per kernel of the catalog (KernelCatalog.cpp).
std::vector<Case> launchCases();

} // namespace kiln::test

#endif // KILN_TEST_UNIT_HOSTLAUNCHESCASES_H
