//===- GoldenHparams.h - a training golden's recipe as autodiff options ---===//
//
// models/reference/make_train_goldens.py writes the hyperparameters it
// trained with under "hparams"; the tests that replay a golden build their
// step with the same ones.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TEST_UNIT_GOLDENHPARAMS_H
#define KILN_TEST_UNIT_GOLDENHPARAMS_H

#include "passes/Passes.h"

#include <nlohmann/json.hpp>

namespace kiln::test {

/// kiln-autodiff options for a golden's "hparams".
inline KilnAutodiffOptions autodiffOptionsOf(const nlohmann::json &h) {
  KilnAutodiffOptions o;
  o.lr = h["lr"];
  o.minLr = h["min_lr"];
  o.warmupSteps = h["warmup_steps"];
  o.totalSteps = h["total_steps"];
  o.beta1 = h["beta1"];
  o.beta2 = h["beta2"];
  o.eps = h["eps"];
  o.weightDecay = h["weight_decay"];
  o.gradClip = h["grad_clip"];
  o.biasUpdateSpeed = h["bias_update_speed"];
  o.auxLossAlpha = h["aux_loss_alpha"];
  o.mtpLossWeight = h["mtp_loss_weight"];
  return o;
}

} // namespace kiln::test

#endif // KILN_TEST_UNIT_GOLDENHPARAMS_H
