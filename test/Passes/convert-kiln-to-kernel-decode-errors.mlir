// RUN: kiln-opt %s -split-input-file --convert-kiln-to-kernel=entry=decode -verify-diagnostics

// A decode program's cache read after its in-place update.
func.func @decode(%rows: tensor<2x1x4xf32> {kiln.input = "tokens"},
                  %start: tensor<2xi32> {kiln.input = "positions"},
                  %cache: tensor<2x8x4xf32> {kiln.cache = "c"})
    -> (tensor<2x8x4xf32> {kiln.result = "logits"},
        tensor<2x8x4xf32> {kiln.cache = "c", kiln.result = "kv_cache"}) {
  %c = kiln.cache_write %cache, %rows, %start
      : (tensor<2x8x4xf32>, tensor<2x1x4xf32>, tensor<2xi32>) -> tensor<2x8x4xf32>
  // expected-error @+1 {{reads argument #2 after 'kiln.cache_write' updated it in place; state must be read before its update}}
  %old = arith.addf %cache, %cache : tensor<2x8x4xf32>
  return %old, %c : tensor<2x8x4xf32>, tensor<2x8x4xf32>
}

// -----

// A kv_cache result that is not its cache argument's update.
func.func @decode(%rows: tensor<2x1x4xf32> {kiln.input = "tokens"},
                  %start: tensor<2xi32> {kiln.input = "positions"},
                  %cache: tensor<2x8x4xf32> {kiln.cache = "c"})
    -> (tensor<2x8x4xf32> {kiln.cache = "c", kiln.result = "kv_cache"}) {
  %y = arith.addf %cache, %cache : tensor<2x8x4xf32>
  // expected-error @+1 {{result #0 (kv_cache 'c') is not an in-place update of its cache argument}}
  return %y : tensor<2x8x4xf32>
}
