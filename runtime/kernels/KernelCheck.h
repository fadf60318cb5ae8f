//===- KernelCheck.h - argument checks of the host kernel launchers -------===//
//
// KILN_KERNEL_CHECK(cond, fmt, ...) prints "file:line: kernel: message" and
// exits with status 1 when cond is false, as llm.c's cudaCheck stops: a
// launcher handed a wrong size or an out-of-range id is a compiler bug, not a
// user error, and it must stop with a message rather than read out of bounds.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_KERNELCHECK_H
#define KILN_RUNTIME_KERNELCHECK_H

#include <cstdio>
#include <cstdlib>

#define KILN_KERNEL_CHECK(cond, ...)                                                       \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      std::fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__, __func__);                  \
      std::fprintf(stderr, __VA_ARGS__);                                                   \
      std::fprintf(stderr, "\n");                                                          \
      std::exit(EXIT_FAILURE);                                                             \
    }                                                                                      \
  } while (0)

#endif // KILN_RUNTIME_KERNELCHECK_H
