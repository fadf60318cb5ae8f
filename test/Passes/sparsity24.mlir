// RUN: kiln-opt %S/activation-checkpointing-budget.mlir --kiln-autodiff="lr=0.01 total-steps=10" --kiln-sparsity-2-4="targets=layers.0.proj.weight start-step=3 report=true" -mlir-print-op-on-diagnostic=false 2>%t.remarks | FileCheck %s
// RUN: FileCheck %s --check-prefix=REPORT < %t.remarks
// RUN: kiln-opt %S/activation-checkpointing-budget.mlir --kiln-autodiff="lr=0.01 total-steps=10" --kiln-sparsity-2-4="targets=layers.1.proj.weight method=sr-ste decay=0.5 mask-every=4" | FileCheck %s --check-prefix=SRSTE
// RUN: kiln-opt %S/activation-checkpointing-budget.mlir --kiln-autodiff="lr=0.01 total-steps=10" --kiln-sparsity-2-4="report=true" -mlir-print-op-on-diagnostic=false 2>&1 >/dev/null | FileCheck %s --check-prefix=DEFAULT

// The step of activation-checkpointing-budget.mlir's model (two layers of
// a norm and an 8x8 projection, an outer block, a tied 16x8 embedding).

// magnitude: the mask is state (argument and result), updated first; every
// use of the weight but AdamW's reads weight * mask; the gradient is masked
// where the backward returns it (the global norm sees it too), and AdamW
// takes the mask to update the weight and its moments masked, in place.
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[W:arg2]]: tensor<8x8xf32> {kiln.param = "layers.0.proj.weight"}
// CHECK-SAME: %[[M1:arg9]]: tensor<8x8xf32> {kiln.param = "layers.0.proj.weight", kiln.state = "exp_avg"}
// CHECK-SAME: %[[M2:arg16]]: tensor<8x8xf32> {kiln.param = "layers.0.proj.weight", kiln.state = "exp_avg_sq"}
// CHECK-SAME: %[[STEP:arg21]]: tensor<i64> {kiln.input = "step"}
// CHECK-SAME: %[[MASK:arg25]]: tensor<8x8xf32> {kiln.param = "layers.0.proj.weight", kiln.state = "sparsity_mask"})
// CHECK-SAME: tensor<8x8xf32> {kiln.param = "layers.0.proj.weight", kiln.result = "sparsity_mask"})
// CHECK-NEXT: %[[NEW:.*]] = kiln.sparsity_mask_2_4 %[[W]], %[[MASK]], %[[STEP]] {mask_every = 0 : i64, start_step = 3 : i64}
// CHECK-NEXT: %[[EFF:.*]] = arith.mulf %[[W]], %[[NEW]]
// CHECK-NOT: %[[W]]{{[,)]}}
// CHECK: call @block_fwd(%{{.*}}, %arg1, %[[EFF]])
// CHECK: %[[G:.*]]:3 = call @block_bwd(%{{.*}}, %arg1, %[[EFF]],
// CHECK-NEXT: %[[GM:.*]] = arith.mulf %[[G]]#2, %[[NEW]]
// CHECK: kiln.global_norm {{.*}}%[[GM]]
// CHECK: kiln.adamw %[[W]], %[[GM]], %[[M1]], %[[M2]], %{{[^ ]*}}, %[[STEP]], %{{[^ ]*}} mask %[[NEW]] {
// CHECK: return {{.*}}, %[[NEW]] :

// REPORT: remark: kiln-sparsity-2-4: "layers.0.proj.weight" 'tensor<8x8xf32>' trains 2:4 sparse (magnitude, from step 3, mask frozen)
// REPORT: remark: kiln-sparsity-2-4: 1 weights train 2:4 sparse

// sr-ste: AdamW updates the dense weight with the straight-through gradient
// plus decay * (W - W * mask); the moments are not masked.
// SRSTE-LABEL: func.func @train_step(
// SRSTE: %[[NEW:.*]] = kiln.sparsity_mask_2_4 %arg4, %arg25, %arg21 {mask_every = 4 : i64, start_step = 1 : i64}
// SRSTE-NEXT: %[[EFF:.*]] = arith.mulf %arg4, %[[NEW]]
// SRSTE: %[[PRUNED:.*]] = arith.subf %arg4, %[[EFF]]
// SRSTE-NEXT: %[[RATE:.*]] = arith.constant dense<5.000000e-01> : tensor<8x8xf32>
// SRSTE-NEXT: %[[DECAY:.*]] = arith.mulf %[[PRUNED]], %[[RATE]]
// SRSTE-NEXT: %[[G:.*]] = arith.addf %{{.*}}, %[[DECAY]]
// SRSTE-NEXT: kiln.adamw %arg4, %[[G]], %arg11, %arg18,

// Default targets: every matrix but the embedding and lm_head; here the
// tied embedding is named embed.weight, so it is a target too.
// DEFAULT-DAG: "embed.weight" 'tensor<16x8xf32>' trains 2:4 sparse
// DEFAULT-DAG: "layers.0.proj.weight" 'tensor<8x8xf32>' trains 2:4 sparse
// DEFAULT-DAG: "layers.1.proj.weight" 'tensor<8x8xf32>' trains 2:4 sparse
// DEFAULT-DAG: "mtp.proj.weight" 'tensor<8x8xf32>' trains 2:4 sparse
// DEFAULT: kiln-sparsity-2-4: 4 weights train 2:4 sparse
