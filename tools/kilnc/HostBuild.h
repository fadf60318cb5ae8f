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

#include <string>

namespace kiln {

bool buildHostExecutable(const std::string &dir, const std::string &source,
                         std::string &error);

} // namespace kiln

#endif // KILN_TOOLS_KILNC_HOSTBUILD_H
