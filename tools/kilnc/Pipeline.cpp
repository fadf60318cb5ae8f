//===- Pipeline.cpp - the pass pipelines kilnc runs for a spec ------------===//

#include "tools/kilnc/Pipeline.h"

namespace kiln {

KilnAutodiffOptions autodiffOptionsFor(const frontend::Spec &spec) {
  const frontend::TrainConfig &t = spec.train;
  KilnAutodiffOptions o;
  o.mtpLossWeight = t.mtpLossWeight;
  o.auxLossAlpha = t.auxLossAlpha;
  o.biasUpdateSpeed = t.biasUpdateSpeed;
  o.lr = t.lr;
  o.minLr = t.minLr;
  o.warmupSteps = t.warmupSteps;
  o.totalSteps = t.steps;
  o.beta1 = t.beta1;
  o.beta2 = t.beta2;
  o.eps = t.eps;
  o.weightDecay = t.weightDecay;
  o.gradClip = t.gradClip;
  return o;
}

} // namespace kiln
