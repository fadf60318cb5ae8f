//===- HelpOptions.h - --help lists a tool's own options, not LLVM's ------===//
//
// Kiln's tools link libMLIR.so, which registers several hundred LLVM
// back-end flags (AMDGPU, ARM, BPF, ...) in the general category. --help
// should show the tool's own options, grouped by purpose, and MLIR's
// IR-printing and pass-manager options (--mlir-*) in a group of their own;
// everything else is hidden (it still parses; --help-hidden lists it).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TOOLS_COMMON_HELPOPTIONS_H
#define KILN_TOOLS_COMMON_HELPOPTIONS_H

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/CommandLine.h"

#include <initializer_list>

namespace kiln::tools {

/// The group MLIR's own --mlir-* options are shown in.
inline llvm::cl::OptionCategory &mlirOptionsCategory() {
  static llvm::cl::OptionCategory category("MLIR IR printing and pass manager options");
  return category;
}

/// Call after MLIR's options are registered and before parsing: moves the
/// --mlir-* options into mlirOptionsCategory() and hides every option outside
/// `toolCategories` and that group (--help and --version stay).
inline void showOnlyToolAndMlirOptions(
    std::initializer_list<const llvm::cl::OptionCategory *> toolCategories) {
  for (auto &entry : llvm::cl::getRegisteredOptions()) {
    llvm::cl::Option *option = entry.second;
    if (entry.first.starts_with("mlir-")) {
      option->addCategory(mlirOptionsCategory()); // replaces the general category
      continue;
    }
    const bool own = llvm::any_of(toolCategories, [&](const llvm::cl::OptionCategory *c) {
      return llvm::is_contained(option->Categories, c);
    });
    if (!own && entry.first != "help" && entry.first != "version")
      option->setHiddenFlag(llvm::cl::Hidden);
  }
}

} // namespace kiln::tools

#endif // KILN_TOOLS_COMMON_HELPOPTIONS_H
