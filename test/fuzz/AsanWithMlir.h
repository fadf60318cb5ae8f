//===- AsanWithMlir.h - ASan options for harnesses that link libMLIR.so ---===//
//
// LLVM's BumpPtrAllocator poisons and unpoisons its slabs for ASan from
// inline code. Here that code is compiled twice: instrumented in the
// harness's own translation units (which poison a slab they start) and not
// in Debian's libMLIR.so (which never unpoisons what it then hands out), so
// every MLIR context reports a use-after-poison that is no bug. Ignoring
// manual poisoning loses nothing of ours: Kiln never poisons memory itself,
// and every other ASan check stays on. Include from exactly one file of a
// harness.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TEST_FUZZ_ASANWITHMLIR_H
#define KILN_TEST_FUZZ_ASANWITHMLIR_H

extern "C" const char *__asan_default_options() { return "allow_user_poisoning=0"; }

#endif // KILN_TEST_FUZZ_ASANWITHMLIR_H
