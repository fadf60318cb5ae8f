//===- DecodeGen.h - validated spec -> the decode program (kiln IR) -------===//

#ifndef KILN_FRONTEND_DECODEGEN_H
#define KILN_FRONTEND_DECODEGEN_H

#include "frontend/Spec.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"

namespace kiln::frontend {

/// The name of the entry function buildDecodeModule builds.
inline constexpr const char *kDecodeEntry = "decode";

/// Builds the decode module of `spec` for chunks of `chunk` tokens per row
/// (prefill: train.generate.max_prompt_len; a decode step: 1):
///
///   func.func @decode(params..., %tokens [rows, chunk] i32, %start [rows] i32,
///                     caches...) -> (logits [rows, chunk, vocab], caches...)
///
/// over train.generate's rows and max_len. Parameters carry kiln.param (HF
/// names, the training forward's, without the MTP modules), %tokens and
/// %start kiln.input ("tokens", "positions"), each cache kiln.cache (its
/// name, e.g. "model.layers.0.self_attn.kv_latent") on the argument and on
/// its updated result (kiln.result = "kv_cache"); logits have kiln.result =
/// "logits". The layers are the training forward's block builders with a
/// DecodeState (ModelGen.h), routed experts dropless, so the logits equal
/// the forward's on the same tokens.
mlir::OwningOpRef<mlir::ModuleOp> buildDecodeModule(mlir::MLIRContext &context,
                                                    const Spec &spec, int64_t chunk);

} // namespace kiln::frontend

#endif // KILN_FRONTEND_DECODEGEN_H
