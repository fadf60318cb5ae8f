# Sourced by build.sh and test.sh: the build directory, and the sanitizer
# runtime options when KILN_SANITIZE asks for a sanitized build.
build=${KILN_BUILD_DIR:-$root/build${KILN_SANITIZE:+-sanitize}}
if [[ -n "${KILN_SANITIZE:-}" ]]; then
  # Open MPI and OpenBLAS keep allocations to process exit; their leaks are
  # theirs (suppressed by library), Kiln's own still fail the run.
  # Open MPI unloads its components (mca_*.so) before LeakSanitizer runs,
  # leaving their leaks as "<unknown module>" no suppression can name; kept
  # loaded, they are suppressed by library like the rest of Open MPI.
  export OMPI_MCA_mca_base_component_disable_dlclose=1
  export LSAN_OPTIONS="suppressions=$root/scripts/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
  # LLVM's BumpPtrAllocator poisons slabs from inline code that is
  # instrumented in Kiln's objects but not in Debian's libMLIR.so, which then
  # never unpoisons them: a use-after-poison in every MLIR context, and no
  # bug (test/fuzz/AsanWithMlir.h says the same for the fuzzers).
  export ASAN_OPTIONS="allow_user_poisoning=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
fi
