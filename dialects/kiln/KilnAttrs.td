//===- KilnAttrs.td - kiln dialect attributes ----------------------------===//

#ifndef KILN_ATTRS_TD
#define KILN_ATTRS_TD

include "dialects/kiln/KilnDialect.td"

// An f64 attribute parameter printed and parsed as a plain float literal.
class Kiln_F64Param<string desc> : AttrOrTypeParameter<"::llvm::APFloat", desc> {
  let comparator = "$_lhs.bitwiseIsEqual($_rhs)";
  let parser = "::kiln::parseF64Parameter($_parser)";
  let printer = "$_printer.printFloat($_self)";
}

def Kiln_YarnAttr : Kiln_Attr<"Yarn", "yarn"> {
  let summary = "YaRN rotary-embedding scaling parameters";
  let description = [{
    The `rope_scaling: {"type": "yarn", ...}` block of a DeepSeek-V3 config.
    With head dimension `d` (the rotated part), base `theta` and
    `i` in [0, d/2):

    ```
    extra[i] = theta^(-2i/d)            inter[i] = extra[i] / factor
    corr(r)  = d * ln(original_max_position_embeddings / (2*pi*r)) / (2 ln theta)
    low      = max(floor(corr(beta_fast)), 0)
    high     = min(ceil(corr(beta_slow)), d - 1)      (high = low + 0.001 if equal)
    ramp[i]  = clamp((i - low) / (high - low), 0, 1)
    inv_freq = inter * ramp + extra * (1 - ramp)
    m(s, k)  = s <= 1 ? 1 : 0.1 * k * ln(s) + 1
    ```

    cos and sin are multiplied by `m(factor, mscale) / m(factor, mscale_all_dim)`.
    The attention softmax scale is multiplied by `m(factor, mscale_all_dim)^2`
    by the frontend (it is the attention op's `scale`, not part of rope).

    Example: `#kiln.yarn<factor = 40.0, original_max_position_embeddings = 4096,
    beta_fast = 32.0, beta_slow = 1.0, mscale = 1.0, mscale_all_dim = 1.0>`
  }];
  let parameters = (ins Kiln_F64Param<"">:$factor,
                        "int64_t":$original_max_position_embeddings,
                        Kiln_F64Param<"">:$beta_fast, Kiln_F64Param<"">:$beta_slow,
                        Kiln_F64Param<"">:$mscale, Kiln_F64Param<"">:$mscale_all_dim);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

#endif // KILN_ATTRS_TD
