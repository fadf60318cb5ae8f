//===- TrainStep.h - The contract between a generated step and the driver -*- C++ -*-===//
//
// kilnc emits, per spec, one C++ file holding a ModelDesc (what the model's
// state looks like: parameters, their init, the batch shape, the arena size)
// and a straight-line `bool trainStep(const StepBuffers &, std::string &)`.
// The driver (TrainMain.h) owns every buffer: it initialises or resumes the
// state, feeds batches, runs the step, and writes metrics and checkpoints.
//
// All buffers are f32 unless noted and row-major; the step reads and writes
// only the buffers named here plus the arena, so two runs with the same
// inputs and thread count are bit-identical.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DRIVER_TRAINSTEP_H
#define KILN_RUNTIME_DRIVER_TRAINSTEP_H

#include <cstddef>
#include <cstdint>
#include <string>

namespace kiln::kernels {
struct Bf16; // runtime/kernels/PrecisionMath.h
} // namespace kiln::kernels

namespace kiln::driver {

class ActionTrace;
class KernelProfile;
class StepComm;

struct BatchRampup;

enum class InitKind { Normal, Ones, Zeros };

/// One parameter tensor of the step, in the step's argument order.
struct ParamDesc {
  /// Hugging Face name. A stacked expert tensor has one '*' where the expert
  /// index goes ("model.layers.1.mlp.experts.*.gate_proj.weight"); its
  /// shape's first dimension is the expert count and it is initialised and
  /// checkpointed as that many HF tensors, expert e under the name with '*'
  /// replaced by e.
  const char *name;
  int64_t rank;
  int64_t shape[4];
  InitKind init;
  double initStd;   ///< for InitKind::Normal
  bool trainable;   ///< false: no gradient, no Adam state (expert biases)
  /// Expert parallelism (kiln.split): a stacked expert tensor of which this
  /// rank holds shape[0] experts, those of its ep coordinate c (experts
  /// [c * shape[0], (c + 1) * shape[0]) of shape[0] x ModelDesc::ep).
  bool expertSplit = false;
  /// train.sparsity: the step keeps a 2:4 mask of this parameter
  /// (StepBuffers::sparsityMask), all ones in a fresh run.
  bool sparse = false;
};

/// One stage of train.curriculum (frontend/Spec.h): the built-in corpus'
/// and GRPO's problems' difficulty up to step `untilStep` (0: to the end).
struct CurriculumStage {
  uint64_t untilStep;
  int maxDigits, maxOps;
};

/// What the generated file describes.
struct ModelDesc {
  const char *specName;        ///< e.g. "r1-tiny" (the spec file's stem)
  const char *specFingerprint; ///< hex hash of the spec's model section
  const ParamDesc *params;
  int64_t numParams;
  int64_t batch;               ///< rows per step on this rank (microbatches x micro_batch)
  int64_t seqLen;
  int64_t vocabSize;
  bool sft;                    ///< train.stage == "sft": loss only on answers
  int64_t numExpertLoads;      ///< expert_load outputs (MoE layers incl. MTP)
  int64_t numExperts;          ///< experts per MoE layer (0 when dense)
  uint64_t arenaBytes;         ///< the planned arena (64-byte aligned offsets)
  uint64_t defaultSteps;       ///< train.steps
  uint64_t defaultSeed;        ///< train.seed
  /// Data-parallel ranks the step was built for (kiln-data-parallel): each
  /// trains `batch` rows of a global batch of dp x batch rows. 1: one rank.
  int64_t dp = 1;
  /// ZeRO-1: each rank's expAvg/expAvgSq hold its shard of every moment,
  /// ceil(numel / dp) elements (Ranks.h), not the whole tensor; for an
  /// expertSplit parameter, its shard over the dp / ep ranks holding the
  /// same experts.
  bool shardedState = false;
  /// Expert parallelism (kiln-expert-parallel): the grid is edp x ep, ep
  /// ranks per group; rank r has ep coordinate r % ep and edp coordinate
  /// r / ep. 1: experts replicated.
  int64_t ep = 1;
  /// expert_kept outputs (parallel.expert_capacity): one per MoE layer, in
  /// the order of the expert_load outputs, holding the pairs each expert
  /// kept; routed minus kept is what capacity dropped. 0: dropless.
  int64_t numExpertKept = 0;
  /// parallel.grad_compression with error feedback: every trainable
  /// parameter has a residual (StepBuffers::gradResidual), this rank's own,
  /// of the parameter's shape on this rank, zero at the start.
  bool gradResiduals = false;
  /// Gradient compression: bytes of this rank's messages per step, and of
  /// the gradient all_reduce they replace.
  uint64_t gradBytesSent = 0;
  uint64_t gradBytesUncompressed = 0;
  /// Expert parallelism: what the compiler predicts every rank together
  /// passes to the all_to_alls of one step, dropless (kiln-expert-parallel's
  /// kiln.all_to_all_bytes per MoE layer call, times the calls and the ep
  /// groups); under expert capacity each dropped row is 4 rows fewer (out
  /// and back, forward and backward).
  uint64_t allToAllBytesPerStep = 0;
  /// Dynamic loss scaling (fp16; kiln-autodiff loss-scale=dynamic): the
  /// scale a run starts with; the step then keeps StepBuffers::lossScale,
  /// growthTracker and optimizerUpdates. 0: the step has no loss scaling.
  double initialLossScale = 0;
  /// train.optimizer.state_dtype "bf16": the step reads and writes the AdamW
  /// moments through StepBuffers::expAvgBf16 / expAvgSqBf16, not expAvg /
  /// expAvgSq.
  bool bf16Moments = false;
  /// Pipeline parallelism (kiln-pipeline): the model is cut into `pp`
  /// stages, one program each, and this description is stage `stage`'s. The
  /// world is pp x dp ranks, rank r at stage r / dp and data-parallel
  /// coordinate r % dp; `params` are the stage's own. A parameter two stages
  /// hold (a tied or shared embedding) is whole on both, and both apply the
  /// same update to it. 1: one program holds the whole model.
  int64_t pp = 1;
  int64_t stage = 0;
  /// The whole model's training FLOPs per token, 3x its forward as
  /// frontend/Summary.h counts it (main model and MTP modules; no
  /// recomputation): MFU's numerator (PeakFlops.h). 0: not counted.
  double modelFlopsPerToken = 0;
  /// train.curriculum's stages, in order; none: the corpus defaults.
  const CurriculumStage *curriculum = nullptr;
  int64_t numCurriculum = 0;
  /// train.batch_rampup: the step programs of the smaller global batches
  /// and the schedule (BatchRampup.h); null: every step trains `batch` rows
  /// on each rank.
  const BatchRampup *rampup = nullptr;
  /// The CUDA target (runtime/cuda/DeviceStep.cuh): the step keeps the
  /// state on the GPU, and this copies it into the driver's buffers, which
  /// the driver calls before it reads them (a checkpoint). Null on the host,
  /// where the step updates the driver's buffers themselves.
  bool (*syncStateToHost)(std::string &error) = nullptr;
  /// The device's dense peak FLOP/s for the step's precision (PeakFlops.h),
  /// which the CUDA target reads from the GPU; null on the host, whose
  /// progress line then shows no MFU.
  double (*peakFlops)() = nullptr;
};

/// Called inside the step with every trainable parameter's gradient (in
/// ModelDesc::params order, skipping non-trainable ones), after the
/// backward pass and before the optimizer reads them.
using GradSink = void (*)(void *context, const float *const *grads);

/// The buffers of one step. Pointers to arrays are indexed like
/// ModelDesc::params (params) or like the trainable parameters in that
/// order (expAvg, expAvgSq).
struct StepBuffers {
  float *const *params;        ///< updated in place
  float *const *expAvg;        ///< AdamW first moments, updated in place
  float *const *expAvgSq;      ///< AdamW second moments, updated in place
  const int64_t *step;         ///< 1-based number of this step
  const int32_t *tokens;       ///< [batch, seqLen]
  const int32_t *targets;      ///< [batch, seqLen]
  const float *lossMask;       ///< [batch, seqLen], 0 or 1
  float *loss;                 ///< out: total loss (main + MTP + balance)
  float *mainLoss;             ///< out: next-token loss alone
  float *gradNorm;             ///< out: global gradient norm before clipping
  float *lr;                   ///< out: learning rate used by this step
  float *const *expertLoads;   ///< out: [numExpertLoads][numExperts] token counts
  unsigned char *arena;        ///< arenaBytes, 64-byte aligned
  GradSink gradSink;           ///< may be null
  void *gradSinkContext;
  /// The groups a multi-rank step's collectives run on (StepComm.h); null
  /// for a single-rank step, which has no collectives.
  StepComm *comm = nullptr;
  /// out: [numExpertKept][numExperts] pairs kept under capacity; null when
  /// numExpertKept is 0.
  float *const *expertKept = nullptr;
  /// Error-feedback residuals, indexed like expAvg, updated in place; null
  /// unless ModelDesc::gradResiduals.
  float *const *gradResidual = nullptr;
  /// 2:4 sparsity masks (0 or 1), indexed like expAvg, updated in place; the
  /// entry of a parameter that is not ParamDesc::sparse is null.
  float *const *sparsityMask = nullptr;
  /// --profile: every launch adds its time to its kernel's row; null: no
  /// timing (KernelProfile.h).
  KernelProfile *profile = nullptr;
  /// --trace: a pipeline stage's step marks where each schedule action
  /// begins (ActionTrace.h); null: no trace.
  ActionTrace *trace = nullptr;
  /// Dynamic loss scaling's state, updated in place (null unless
  /// ModelDesc::initialLossScale): the scale this step's backward is seeded
  /// with, the finite steps since the scale last changed, and the AdamW
  /// updates applied so far. A step that leaves optimizerUpdates unchanged
  /// was skipped (its gradients overflowed).
  float *lossScale = nullptr;
  int64_t *growthTracker = nullptr;
  int64_t *optimizerUpdates = nullptr;
  /// The AdamW moments when ModelDesc::bf16Moments (indexed like expAvg).
  kernels::Bf16 *const *expAvgBf16 = nullptr;
  kernels::Bf16 *const *expAvgSqBf16 = nullptr;
  /// GRPO (train.stage "grpo"): an advantage per row [batch], and the
  /// sampling policy's and the reference model's log-prob of each target
  /// [batch, seqLen]; null for other stages.
  const float *advantages = nullptr;
  const float *oldLogprobs = nullptr;
  const float *refLogprobs = nullptr;
};

using TrainStepFn = bool (*)(const StepBuffers &buffers, std::string &error);

/// train.batch_rampup (Megatron's --rampup-batch-size): the global batch
/// starts at `startRows` and grows by `incrementRows` every
/// samples / ((global - start) / increment) consumed samples, up to the
/// global batch of the ModelDesc that points here, reached after `samples`
/// samples. `programs` are the steps of the smaller sizes, ascending: each a
/// ModelDesc whose `batch` is its rows per rank, with the same parameters.
struct RampupProgram {
  const ModelDesc *model;
  TrainStepFn step;
};
struct BatchRampup {
  int64_t startRows, incrementRows;
  uint64_t samples;
  const RampupProgram *programs;
  int64_t numPrograms;
};

/// The program of one pipeline stage: a generated file built with pp > 1
/// hands trainMain one per stage, in stage order.
struct StageProgram {
  const ModelDesc *model;
  TrainStepFn step;
};

} // namespace kiln::driver

#endif // KILN_RUNTIME_DRIVER_TRAINSTEP_H
