// RUN: kiln-opt %s -split-input-file -verify-diagnostics --pass-pipeline="builtin.module(func.func(kiln-overlap-collectives))"

// Streams are placed once: a step that already has them is an error.
func.func @twice(%g: memref<64xf32>, %r: memref<64xf32>) {
  // expected-error @below {{kiln-overlap-collectives: @twice already places launches on streams (kernel 'all_reduce'); run the pass once}}
  kiln_kernel.launch "all_reduce"(%g : memref<64xf32>) -> (%r : memref<64xf32>) {axes = ["dp"], event = 0 : i64, kind = "sum", stream = "comm"}
  return
}

// -----

func.func @waits(%g: memref<64xf32>, %r: memref<64xf32>) {
  // expected-error @below {{kiln-overlap-collectives: @waits already places launches on streams (kernel 'stream_wait'); run the pass once}}
  kiln_kernel.launch "stream_wait"(%g, %r : memref<64xf32>, memref<64xf32>) -> () {event = 0 : i64}
  return
}
