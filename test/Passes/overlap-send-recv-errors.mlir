// RUN: kiln-opt %s -split-input-file -verify-diagnostics --pass-pipeline="builtin.module(func.func(kiln-overlap-send-recv))"

// A receive straight into an argument has no buffer of its own to post early.
func.func @into_argument(%x: memref<256xf32>) {
  // expected-error @below {{kiln-overlap-send-recv: a recv into <block argument> of type 'memref<256xf32>' at index: 0 (not a kiln_kernel.alloc) cannot be posted early}}
  kiln_kernel.launch "recv"() -> (%x : memref<256xf32>) {axis = "pp", peer = 0 : i64}
  return
}
