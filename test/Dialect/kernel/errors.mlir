// RUN: kiln-opt %s -split-input-file -verify-diagnostics

func.func @unknown_kernel(%x: memref<4xf32>, %y: memref<4xf32>) {
  // expected-error @+1 {{names no kernel of the catalog: 'gelu'}}
  kiln_kernel.launch "gelu"(%x : memref<4xf32>) -> (%y : memref<4xf32>) {}
  return
}

// -----

func.func @wrong_ins(%x: memref<4x8xf32>, %y: memref<4x16xf32>) {
  // expected-error @+1 {{kernel 'linear' expects 2 ins, got 1}}
  kiln_kernel.launch "linear"(%x : memref<4x8xf32>) -> (%y : memref<4x16xf32>) {}
  return
}

// -----

func.func @wrong_outs(%x: memref<4x8xf32>, %w: memref<16x8xf32>) {
  // expected-error @+1 {{kernel 'linear' expects 1 outs, got 2}}
  kiln_kernel.launch "linear"(%x, %w : memref<4x8xf32>, memref<16x8xf32>) -> (%x, %w : memref<4x8xf32>, memref<16x8xf32>) {}
  return
}

// -----

func.func @variadic_needs_one(%n: memref<f32>) {
  // expected-error @+1 {{kernel 'global_norm' expects one or more ins, got 0}}
  kiln_kernel.launch "global_norm"() -> (%n : memref<f32>) {}
  return
}

// -----

func.func @strided(%x: memref<4x8xf32, strided<[16, 1]>>, %y: memref<4x8xf32>) {
  // expected-error @+1 {{expects identity-layout memrefs}}
  kiln_kernel.launch "rope"(%x : memref<4x8xf32, strided<[16, 1]>>) -> (%y : memref<4x8xf32>) {}
  return
}

// -----

func.func @unaligned() attributes {kiln_kernel.arena_bytes = 1024 : i64} {
  // expected-error @+1 {{expects an offset that is a non-negative multiple of 64, got 8}}
  %b = kiln_kernel.buffer offset 8 : memref<4xf32>
  return
}

// -----

func.func @past_the_arena() attributes {kiln_kernel.arena_bytes = 128 : i64} {
  // expected-error @+1 {{ends at byte 192, past the arena's 128 bytes}}
  %b = kiln_kernel.buffer offset 64 : memref<32xf32>
  return
}

// -----

func.func @no_arena() {
  // expected-error @+1 {{must be inside a function with a 'kiln_kernel.arena_bytes' attribute}}
  %b = kiln_kernel.buffer offset 0 : memref<4xf32>
  return
}

// -----

func.func @reshape_count(%x: memref<4x8xf32>) {
  // expected-error @+1 {{expects the same element type and count}}
  %r = kiln_kernel.reshape %x : memref<4x8xf32> to memref<30xf32>
  return
}

// -----

func.func @elementwise_sizes(%x: memref<4xf32>, %y: memref<8xf32>) {
  // expected-error @+1 {{expects every operand to have 8 elements}}
  kiln_kernel.elementwise (%x : memref<4xf32>) -> (%y : memref<8xf32>) origin ["copy"] {
  ^bb0(%v: f32):
    kiln_kernel.yield %v : f32
  }
  return
}

// -----

func.func @elementwise_args(%x: memref<4xf32>, %y: memref<4xf32>) {
  // expected-error @+1 {{expects the body to take 1 arguments (one per in), got 2}}
  kiln_kernel.elementwise (%x : memref<4xf32>) -> (%y : memref<4xf32>) origin ["copy"] {
  ^bb0(%v: f32, %w: f32):
    kiln_kernel.yield %v : f32
  }
  return
}

// -----

func.func @elementwise_arg_type(%x: memref<4xi32>, %y: memref<4xf32>) {
  // expected-error @+1 {{expects body argument #0 of type 'i32', got 'f32'}}
  kiln_kernel.elementwise (%x : memref<4xi32>) -> (%y : memref<4xf32>) origin ["copy"] {
  ^bb0(%v: f32):
    kiln_kernel.yield %v : f32
  }
  return
}

// -----

func.func @elementwise_yield_count(%x: memref<4xf32>, %y: memref<4xf32>, %z: memref<4xf32>) {
  // expected-error @+1 {{expects the body to yield 2 values (one per out)}}
  kiln_kernel.elementwise (%x : memref<4xf32>) -> (%y, %z : memref<4xf32>, memref<4xf32>) origin ["copy"] {
  ^bb0(%v: f32):
    kiln_kernel.yield %v : f32
  }
  return
}

// -----

func.func @elementwise_body_op(%x: memref<4xf32>, %y: memref<4xf32>) {
  kiln_kernel.elementwise (%x : memref<4xf32>) -> (%y : memref<4xf32>) origin ["copy"] {
  ^bb0(%v: f32):
    // expected-error @+1 {{is not allowed in a kiln_kernel.elementwise body}}
    %b = kiln_kernel.alloc : memref<4xf32>
    kiln_kernel.yield %v : f32
  }
  return
}

// -----

func.func @elementwise_no_outs(%x: memref<4xf32>) {
  // expected-error @+1 {{expects at least one out}}
  "kiln_kernel.elementwise"(%x) <{operandSegmentSizes = array<i32: 1, 0>, origin = ["copy"]}> ({
  ^bb0(%v: f32):
    kiln_kernel.yield
  }) : (memref<4xf32>) -> ()
  return
}
