//===- Pipeline.h - the pass pipelines kilnc runs for a spec --------------===//
//
// The driver is where a spec's recipe becomes pass options: passes never read
// a spec themselves.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TOOLS_KILNC_PIPELINE_H
#define KILN_TOOLS_KILNC_PIPELINE_H

#include "frontend/Spec.h"
#include "passes/Passes.h"

namespace kiln {

/// kiln-autodiff options for the spec's training recipe.
KilnAutodiffOptions autodiffOptionsFor(const frontend::Spec &spec);

} // namespace kiln

#endif // KILN_TOOLS_KILNC_PIPELINE_H
