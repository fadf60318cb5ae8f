// kiln-pipeline's plan (PipelinePlan.cpp) on pipeline-schedule.mlir's model:
// four equal blocks, the embedding before them and the tied head and loss
// after them.
// RUN: kiln-opt %S/pipeline-schedule.mlir --kiln-autodiff="lr=0.01 total-steps=10" --kiln-data-parallel="microbatches=4" --kiln-pipeline="pp=2 report=true" -mlir-print-op-on-diagnostic=false -o /dev/null 2>&1 | FileCheck %s --check-prefix=BALANCED
// RUN: kiln-opt %S/pipeline-schedule.mlir --kiln-autodiff="lr=0.01 total-steps=10" --kiln-data-parallel="microbatches=4" --kiln-pipeline="pp=2 layers-per-stage=1,3 report=true" -mlir-print-op-on-diagnostic=false -o /dev/null 2>&1 | FileCheck %s --check-prefix=BYHAND
// RUN: kiln-opt %S/pipeline-schedule.mlir --kiln-autodiff="lr=0.01 total-steps=10" --kiln-data-parallel="microbatches=4" --kiln-pipeline="pp=4 report=true" -mlir-print-op-on-diagnostic=false -o /dev/null 2>&1 | FileCheck %s --check-prefix=PP4
// RUN: kiln-opt %S/pipeline-schedule.mlir --kiln-autodiff="lr=0.01 total-steps=10" --kiln-data-parallel="microbatches=4" --kiln-pipeline="pp=2 schedule=zb-h1 report=true" -mlir-print-op-on-diagnostic=false -o /dev/null 2>&1 | FileCheck %s --check-prefix=SPLIT

// Balanced by FLOPs: the head and loss weigh on the last stage, so it gets
// one block and the first three. The costliest stage prices the uniform
// simulation; each stage's own FLOPs give the ranks different bubbles.
// BALANCED: remark: kiln-pipeline: pp 2 x 1 chunks, 1f1b, 4 micro-batches; first layer of each stage: 0 3; bytes per micro-batch forward up each edge: 256, backward down each edge: 256; FLOPs per micro-batch of the costliest stage: F 3648, B 6872; simulated bubble per rank: 20.0% 20.0%; with each stage's own FLOPs: 17.5% 23.7%

// By hand: one block, then three and the head; the last stage is now the
// costliest and the first waits most of the step.
// BYHAND: remark: kiln-pipeline: pp 2 x 1 chunks, 1f1b, 4 micro-batches; first layer of each stage: 0 1; bytes per micro-batch forward up each edge: 256, backward down each edge: 256; FLOPs per micro-batch of the costliest stage: F 5697, B 1.097e+04; simulated bubble per rank: 20.0% 20.0%; with each stage's own FLOPs: 79.5% 5.1%

// One block per stage: an activation crosses each of the three edges.
// PP4: remark: kiln-pipeline: pp 4 x 1 chunks, 1f1b, 4 micro-batches; first layer of each stage: 0 1 2 3; bytes per micro-batch forward up each edge: 256 256 256, backward down each edge: 256 256 256; FLOPs per micro-batch of the costliest stage: F 3265, B 6472; simulated bubble per rank: 42.9% 42.9% 42.9% 42.9%; with each stage's own FLOPs: 71.0% 72.0% 72.0% 21.3%

// With W actions the backward is split: the first stage's input gradient
// feeds no one, so all of its backward is weight work (I 0), which is why
// its W is the large one.
// SPLIT: remark: kiln-pipeline: pp 2 x 1 chunks, zb-h1, 4 micro-batches; first layer of each stage: 0 3; bytes per micro-batch forward up each edge: 256, backward down each edge: 256; FLOPs per micro-batch of the costliest stage: F 3648, I 0, W 6872; simulated bubble per rank: 8.0% 8.0%; with each stage's own FLOPs: 6.7% 13.6%
