// RUN: kiln-opt %S/activation-checkpointing.mlir --kiln-autodiff="lr=0.01 total-steps=10" --kiln-kernel-lowering | FileCheck %s
// RUN: kiln-opt %S/activation-checkpointing.mlir --kiln-autodiff="lr=0.01 total-steps=10" --kiln-activation-checkpointing="policy=full" --kiln-kernel-lowering | FileCheck %s --check-prefix=FULL

// kiln-kernel-lowering (passes/KernelLowering.cpp) is the tail kilnc runs
// after its kiln-level passes and the pricing kiln-activation-checkpointing's
// budget policy plans with: the block functions are inlined into one
// straight-line step of kernel launches over buffers placed in one arena.
// Its arena here is the 4096 bytes activation-checkpointing-budget.mlir
// names for this model without recomputation, and 2688 with policy full.

// CHECK-NOT: func.func private
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: kiln_kernel.arena_bytes = 4096 : i64
// CHECK-NOT: call @
// CHECK: kiln_kernel.launch "embedding"
// CHECK: kiln_kernel.launch "cross_entropy"
// CHECK: kiln_kernel.launch "adamw"
// CHECK-NOT: kiln_kernel.alloc

// FULL: kiln_kernel.arena_bytes = 2688 : i64
