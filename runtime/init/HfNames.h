//===- HfNames.h - Hugging Face names of a stacked expert tensor ----------===//
//
// Inside Kiln a layer's routed experts are one stacked tensor named with a
// '*' where the expert number goes ("model.layers.1.mlp.experts.*.up_proj.
// weight"); checkpoints and the seeded init use one Hugging Face tensor per
// expert. The reference evaluator (kilnc --save-params) and the training
// driver both name expert e with this, so their initial weights agree.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_INIT_HFNAMES_H
#define KILN_RUNTIME_INIT_HFNAMES_H

#include <cstdint>
#include <string>
#include <string_view>

namespace kiln::init {

/// `stackedName` with its '*' replaced by `expert`; a name without '*' is
/// returned as is.
inline std::string expertTensorName(std::string_view stackedName, int64_t expert) {
  size_t star = stackedName.find('*');
  if (star == std::string_view::npos)
    return std::string(stackedName);
  return std::string(stackedName.substr(0, star)) + std::to_string(expert) +
         std::string(stackedName.substr(star + 1));
}

} // namespace kiln::init

#endif // KILN_RUNTIME_INIT_HFNAMES_H
