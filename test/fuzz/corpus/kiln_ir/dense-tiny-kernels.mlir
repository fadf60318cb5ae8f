module {
  func.func @train_step(%arg0: memref<256x64xf32> {kiln.init = "normal", kiln.init_std = 2.000000e-02 : f64, kiln.param = "model.embed_tokens.weight"}, %arg1: memref<64xf32> {kiln.init = "ones", kiln.param = "model.layers.0.input_layernorm.weight"}, %arg2: memref<64x64xf32> {kiln.init = "normal", kiln.init_std = 2.000000e-02 : f64, kiln.param = "model.layers.0.self_attn.q_proj.weight"}, %arg3: memref<32x64xf32> {kiln.init = "normal", kiln.init_std = 2.000000e-02 : f64, kiln.param = "model.layers.0.self_attn.k_proj.weight"}, %arg4: memref<32x64xf32> {kiln.init = "normal", kiln.init_std = 2.000000e-02 : f64, kiln.param = "model.layers.0.self_attn.v_proj.weight"}, %arg5: memref<64x64xf32> {kiln.init = "normal", kiln.init_std = 2.000000e-02 : f64, kiln.param = "model.layers.0.self_attn.o_proj.weight"}, %arg6: memref<64xf32> {kiln.init = "ones", kiln.param = "model.layers.0.post_attention_layernorm.weight"}, %arg7: memref<160x64xf32> {kiln.init = "normal", kiln.init_std = 2.000000e-02 : f64, kiln.param = "model.layers.0.mlp.gate_proj.weight"}, %arg8: memref<160x64xf32> {kiln.init = "normal", kiln.init_std = 2.000000e-02 : f64, kiln.param = "model.layers.0.mlp.up_proj.weight"}, %arg9: memref<64x160xf32> {kiln.init = "normal", kiln.init_std = 2.000000e-02 : f64, kiln.param = "model.layers.0.mlp.down_proj.weight"}, %arg10: memref<64xf32> {kiln.init = "ones", kiln.param = "model.layers.1.input_layernorm.weight"}, %arg11: memref<64x64xf32> {kiln.init = "normal", kiln.init_std = 2.000000e-02 : f64, kiln.param = "model.layers.1.self_attn.q_proj.weight"}, %arg12: memref<32x64xf32> {kiln.init = "normal", kiln.init_std = 2.000000e-02 : f64, kiln.param = "model.layers.1.self_attn.k_proj.weight"}, %arg13: memref<32x64xf32> {kiln.init = "normal", kiln.init_std = 2.000000e-02 : f64, kiln.param = "model.layers.1.self_attn.v_proj.weight"}, %arg14: memref<64x64xf32> {kiln.init = "normal", kiln.init_std = 2.000000e-02 : f64, kiln.param = "model.layers.1.self_attn.o_proj.weight"}, %arg15: memref<64xf32> {kiln.init = "ones", kiln.param = "model.layers.1.post_attention_layernorm.weight"}, %arg16: memref<160x64xf32> {kiln.init = "normal", kiln.init_std = 2.000000e-02 : f64, kiln.param = "model.layers.1.mlp.gate_proj.weight"}, %arg17: memref<160x64xf32> {kiln.init = "normal", kiln.init_std = 2.000000e-02 : f64, kiln.param = "model.layers.1.mlp.up_proj.weight"}, %arg18: memref<64x160xf32> {kiln.init = "normal", kiln.init_std = 2.000000e-02 : f64, kiln.param = "model.layers.1.mlp.down_proj.weight"}, %arg19: memref<64xf32> {kiln.init = "ones", kiln.param = "model.norm.weight"}, %arg20: memref<256x64xf32> {kiln.param = "model.embed_tokens.weight", kiln.state = "exp_avg"}, %arg21: memref<64xf32> {kiln.param = "model.layers.0.input_layernorm.weight", kiln.state = "exp_avg"}, %arg22: memref<64x64xf32> {kiln.param = "model.layers.0.self_attn.q_proj.weight", kiln.state = "exp_avg"}, %arg23: memref<32x64xf32> {kiln.param = "model.layers.0.self_attn.k_proj.weight", kiln.state = "exp_avg"}, %arg24: memref<32x64xf32> {kiln.param = "model.layers.0.self_attn.v_proj.weight", kiln.state = "exp_avg"}, %arg25: memref<64x64xf32> {kiln.param = "model.layers.0.self_attn.o_proj.weight", kiln.state = "exp_avg"}, %arg26: memref<64xf32> {kiln.param = "model.layers.0.post_attention_layernorm.weight", kiln.state = "exp_avg"}, %arg27: memref<160x64xf32> {kiln.param = "model.layers.0.mlp.gate_proj.weight", kiln.state = "exp_avg"}, %arg28: memref<160x64xf32> {kiln.param = "model.layers.0.mlp.up_proj.weight", kiln.state = "exp_avg"}, %arg29: memref<64x160xf32> {kiln.param = "model.layers.0.mlp.down_proj.weight", kiln.state = "exp_avg"}, %arg30: memref<64xf32> {kiln.param = "model.layers.1.input_layernorm.weight", kiln.state = "exp_avg"}, %arg31: memref<64x64xf32> {kiln.param = "model.layers.1.self_attn.q_proj.weight", kiln.state = "exp_avg"}, %arg32: memref<32x64xf32> {kiln.param = "model.layers.1.self_attn.k_proj.weight", kiln.state = "exp_avg"}, %arg33: memref<32x64xf32> {kiln.param = "model.layers.1.self_attn.v_proj.weight", kiln.state = "exp_avg"}, %arg34: memref<64x64xf32> {kiln.param = "model.layers.1.self_attn.o_proj.weight", kiln.state = "exp_avg"}, %arg35: memref<64xf32> {kiln.param = "model.layers.1.post_attention_layernorm.weight", kiln.state = "exp_avg"}, %arg36: memref<160x64xf32> {kiln.param = "model.layers.1.mlp.gate_proj.weight", kiln.state = "exp_avg"}, %arg37: memref<160x64xf32> {kiln.param = "model.layers.1.mlp.up_proj.weight", kiln.state = "exp_avg"}, %arg38: memref<64x160xf32> {kiln.param = "model.layers.1.mlp.down_proj.weight", kiln.state = "exp_avg"}, %arg39: memref<64xf32> {kiln.param = "model.norm.weight", kiln.state = "exp_avg"}, %arg40: memref<256x64xf32> {kiln.param = "model.embed_tokens.weight", kiln.state = "exp_avg_sq"}, %arg41: memref<64xf32> {kiln.param = "model.layers.0.input_layernorm.weight", kiln.state = "exp_avg_sq"}, %arg42: memref<64x64xf32> {kiln.param = "model.layers.0.self_attn.q_proj.weight", kiln.state = "exp_avg_sq"}, %arg43: memref<32x64xf32> {kiln.param = "model.layers.0.self_attn.k_proj.weight", kiln.state = "exp_avg_sq"}, %arg44: memref<32x64xf32> {kiln.param = "model.layers.0.self_attn.v_proj.weight", kiln.state = "exp_avg_sq"}, %arg45: memref<64x64xf32> {kiln.param = "model.layers.0.self_attn.o_proj.weight", kiln.state = "exp_avg_sq"}, %arg46: memref<64xf32> {kiln.param = "model.layers.0.post_attention_layernorm.weight", kiln.state = "exp_avg_sq"}, %arg47: memref<160x64xf32> {kiln.param = "model.layers.0.mlp.gate_proj.weight", kiln.state = "exp_avg_sq"}, %arg48: memref<160x64xf32> {kiln.param = "model.layers.0.mlp.up_proj.weight", kiln.state = "exp_avg_sq"}, %arg49: memref<64x160xf32> {kiln.param = "model.layers.0.mlp.down_proj.weight", kiln.state = "exp_avg_sq"}, %arg50: memref<64xf32> {kiln.param = "model.layers.1.input_layernorm.weight", kiln.state = "exp_avg_sq"}, %arg51: memref<64x64xf32> {kiln.param = "model.layers.1.self_attn.q_proj.weight", kiln.state = "exp_avg_sq"}, %arg52: memref<32x64xf32> {kiln.param = "model.layers.1.self_attn.k_proj.weight", kiln.state = "exp_avg_sq"}, %arg53: memref<32x64xf32> {kiln.param = "model.layers.1.self_attn.v_proj.weight", kiln.state = "exp_avg_sq"}, %arg54: memref<64x64xf32> {kiln.param = "model.layers.1.self_attn.o_proj.weight", kiln.state = "exp_avg_sq"}, %arg55: memref<64xf32> {kiln.param = "model.layers.1.post_attention_layernorm.weight", kiln.state = "exp_avg_sq"}, %arg56: memref<160x64xf32> {kiln.param = "model.layers.1.mlp.gate_proj.weight", kiln.state = "exp_avg_sq"}, %arg57: memref<160x64xf32> {kiln.param = "model.layers.1.mlp.up_proj.weight", kiln.state = "exp_avg_sq"}, %arg58: memref<64x160xf32> {kiln.param = "model.layers.1.mlp.down_proj.weight", kiln.state = "exp_avg_sq"}, %arg59: memref<64xf32> {kiln.param = "model.norm.weight", kiln.state = "exp_avg_sq"}, %arg60: memref<i64> {kiln.input = "step"}, %arg61: memref<4x32xi32> {kiln.input = "tokens"}, %arg62: memref<4x32xi32> {kiln.input = "targets"}, %arg63: memref<4x32xf32> {kiln.input = "loss_mask"}, %arg64: memref<f32> {kiln.output = "loss"}, %arg65: memref<f32> {kiln.output = "main_loss"}, %arg66: memref<f32> {kiln.output = "grad_norm"}, %arg67: memref<f32> {kiln.output = "lr"}) attributes {kiln.model_type = "llama", kiln.vocab_size = 256 : i64, kiln_kernel.arena_bytes = 1351936 : i64} {
    %0 = kiln_kernel.buffer offset 860160 : memref<4x32x64xf32>
    kiln_kernel.launch "embedding"(%arg0, %arg61 : memref<256x64xf32>, memref<4x32xi32>) -> (%0 : memref<4x32x64xf32>) {}
    %1 = kiln_kernel.buffer offset 892928 : memref<4x32x64xf32>
    kiln_kernel.launch "rms_norm"(%0, %arg1 : memref<4x32x64xf32>, memref<64xf32>) -> (%1 : memref<4x32x64xf32>) {epsilon = 9.9999999999999995E-7 : f64}
    %2 = kiln_kernel.buffer offset 0 : memref<4x32x64xf32>
    kiln_kernel.launch "linear"(%1, %arg2 : memref<4x32x64xf32>, memref<64x64xf32>) -> (%2 : memref<4x32x64xf32>) {}
    %3 = kiln_kernel.reshape %2 : memref<4x32x64xf32> to memref<4x32x4x16xf32>
    %4 = kiln_kernel.buffer offset 32768 : memref<4x32x32xf32>
    kiln_kernel.launch "linear"(%1, %arg3 : memref<4x32x64xf32>, memref<32x64xf32>) -> (%4 : memref<4x32x32xf32>) {}
    %5 = kiln_kernel.reshape %4 : memref<4x32x32xf32> to memref<4x32x2x16xf32>
    %6 = kiln_kernel.buffer offset 1286144 : memref<4x32x32xf32>
    kiln_kernel.launch "linear"(%1, %arg4 : memref<4x32x64xf32>, memref<32x64xf32>) -> (%6 : memref<4x32x32xf32>) {}
    %7 = kiln_kernel.reshape %6 : memref<4x32x32xf32> to memref<4x32x2x16xf32>
    %8 = kiln_kernel.buffer offset 925696 : memref<4x32x4x16xf32>
    kiln_kernel.launch "rope"(%3 : memref<4x32x4x16xf32>) -> (%8 : memref<4x32x4x16xf32>) {interleaved = false, theta = 1.000000e+04 : f64, transpose = false}
    %9 = kiln_kernel.buffer offset 1302528 : memref<4x32x2x16xf32>
    kiln_kernel.launch "rope"(%5 : memref<4x32x2x16xf32>) -> (%9 : memref<4x32x2x16xf32>) {interleaved = false, theta = 1.000000e+04 : f64, transpose = false}
    %10 = kiln_kernel.buffer offset 958464 : memref<4x32x4x16xf32>
    kiln_kernel.launch "attention"(%8, %9, %7 : memref<4x32x4x16xf32>, memref<4x32x2x16xf32>, memref<4x32x2x16xf32>) -> (%10 : memref<4x32x4x16xf32>) {causal = true, scale = 2.500000e-01 : f64}
    %11 = kiln_kernel.reshape %10 : memref<4x32x4x16xf32> to memref<4x32x64xf32>
    %12 = kiln_kernel.buffer offset 0 : memref<4x32x64xf32>
    kiln_kernel.launch "linear"(%11, %arg5 : memref<4x32x64xf32>, memref<64x64xf32>) -> (%12 : memref<4x32x64xf32>) {}
    %13 = kiln_kernel.buffer offset 991232 : memref<4x32x64xf32>
    kiln_kernel.elementwise(%0, %12 : memref<4x32x64xf32>, memref<4x32x64xf32>) -> (%13 : memref<4x32x64xf32>) origin ["arith.addf"] {
    ^bb0(%arg68: f32, %arg69: f32):
      %116 = arith.addf %arg68, %arg69 : f32
      kiln_kernel.yield %116 : f32
    }
    %14 = kiln_kernel.buffer offset 1024000 : memref<4x32x64xf32>
    kiln_kernel.launch "rms_norm"(%13, %arg6 : memref<4x32x64xf32>, memref<64xf32>) -> (%14 : memref<4x32x64xf32>) {epsilon = 9.9999999999999995E-7 : f64}
    %15 = kiln_kernel.buffer offset 262144 : memref<4x32x160xf32>
    kiln_kernel.launch "linear"(%14, %arg7 : memref<4x32x64xf32>, memref<160x64xf32>) -> (%15 : memref<4x32x160xf32>) {}
    %16 = kiln_kernel.buffer offset 344064 : memref<4x32x160xf32>
    kiln_kernel.launch "linear"(%14, %arg8 : memref<4x32x64xf32>, memref<160x64xf32>) -> (%16 : memref<4x32x160xf32>) {}
    %17 = kiln_kernel.buffer offset 425984 : memref<4x32x160xf32>
    kiln_kernel.elementwise(%15, %16 : memref<4x32x160xf32>, memref<4x32x160xf32>) -> (%17 : memref<4x32x160xf32>) origin ["kiln.swiglu"] {
    ^bb0(%arg68: f32, %arg69: f32):
      %cst = arith.constant 1.000000e+00 : f32
      %116 = arith.negf %arg68 : f32
      %117 = math.exp %116 : f32
      %118 = arith.addf %cst, %117 : f32
      %119 = arith.divf %cst, %118 : f32
      %120 = arith.mulf %arg68, %119 : f32
      %121 = arith.mulf %120, %arg69 : f32
      kiln_kernel.yield %121 : f32
    }
    %18 = kiln_kernel.buffer offset 0 : memref<4x32x64xf32>
    kiln_kernel.launch "linear"(%17, %arg9 : memref<4x32x160xf32>, memref<64x160xf32>) -> (%18 : memref<4x32x64xf32>) {}
    %19 = kiln_kernel.buffer offset 1056768 : memref<4x32x64xf32>
    kiln_kernel.elementwise(%13, %18 : memref<4x32x64xf32>, memref<4x32x64xf32>) -> (%19 : memref<4x32x64xf32>) origin ["arith.addf"] {
    ^bb0(%arg68: f32, %arg69: f32):
      %116 = arith.addf %arg68, %arg69 : f32
      kiln_kernel.yield %116 : f32
    }
    %20 = kiln_kernel.buffer offset 1089536 : memref<4x32x64xf32>
    kiln_kernel.launch "rms_norm"(%19, %arg10 : memref<4x32x64xf32>, memref<64xf32>) -> (%20 : memref<4x32x64xf32>) {epsilon = 9.9999999999999995E-7 : f64}
    %21 = kiln_kernel.buffer offset 0 : memref<4x32x64xf32>
    kiln_kernel.launch "linear"(%20, %arg11 : memref<4x32x64xf32>, memref<64x64xf32>) -> (%21 : memref<4x32x64xf32>) {}
    %22 = kiln_kernel.reshape %21 : memref<4x32x64xf32> to memref<4x32x4x16xf32>
    %23 = kiln_kernel.buffer offset 32768 : memref<4x32x32xf32>
    kiln_kernel.launch "linear"(%20, %arg12 : memref<4x32x64xf32>, memref<32x64xf32>) -> (%23 : memref<4x32x32xf32>) {}
    %24 = kiln_kernel.reshape %23 : memref<4x32x32xf32> to memref<4x32x2x16xf32>
    %25 = kiln_kernel.buffer offset 1318912 : memref<4x32x32xf32>
    kiln_kernel.launch "linear"(%20, %arg13 : memref<4x32x64xf32>, memref<32x64xf32>) -> (%25 : memref<4x32x32xf32>) {}
    %26 = kiln_kernel.reshape %25 : memref<4x32x32xf32> to memref<4x32x2x16xf32>
    %27 = kiln_kernel.buffer offset 1122304 : memref<4x32x4x16xf32>
    kiln_kernel.launch "rope"(%22 : memref<4x32x4x16xf32>) -> (%27 : memref<4x32x4x16xf32>) {interleaved = false, theta = 1.000000e+04 : f64, transpose = false}
    %28 = kiln_kernel.buffer offset 1335296 : memref<4x32x2x16xf32>
    kiln_kernel.launch "rope"(%24 : memref<4x32x2x16xf32>) -> (%28 : memref<4x32x2x16xf32>) {interleaved = false, theta = 1.000000e+04 : f64, transpose = false}
    %29 = kiln_kernel.buffer offset 1155072 : memref<4x32x4x16xf32>
    kiln_kernel.launch "attention"(%27, %28, %26 : memref<4x32x4x16xf32>, memref<4x32x2x16xf32>, memref<4x32x2x16xf32>) -> (%29 : memref<4x32x4x16xf32>) {causal = true, scale = 2.500000e-01 : f64}
    %30 = kiln_kernel.reshape %29 : memref<4x32x4x16xf32> to memref<4x32x64xf32>
    %31 = kiln_kernel.buffer offset 0 : memref<4x32x64xf32>
    kiln_kernel.launch "linear"(%30, %arg14 : memref<4x32x64xf32>, memref<64x64xf32>) -> (%31 : memref<4x32x64xf32>) {}
    %32 = kiln_kernel.buffer offset 1187840 : memref<4x32x64xf32>
    kiln_kernel.elementwise(%19, %31 : memref<4x32x64xf32>, memref<4x32x64xf32>) -> (%32 : memref<4x32x64xf32>) origin ["arith.addf"] {
    ^bb0(%arg68: f32, %arg69: f32):
      %116 = arith.addf %arg68, %arg69 : f32
      kiln_kernel.yield %116 : f32
    }
    %33 = kiln_kernel.buffer offset 1220608 : memref<4x32x64xf32>
    kiln_kernel.launch "rms_norm"(%32, %arg15 : memref<4x32x64xf32>, memref<64xf32>) -> (%33 : memref<4x32x64xf32>) {epsilon = 9.9999999999999995E-7 : f64}
    %34 = kiln_kernel.buffer offset 507904 : memref<4x32x160xf32>
    kiln_kernel.launch "linear"(%33, %arg16 : memref<4x32x64xf32>, memref<160x64xf32>) -> (%34 : memref<4x32x160xf32>) {}
    %35 = kiln_kernel.buffer offset 589824 : memref<4x32x160xf32>
    kiln_kernel.launch "linear"(%33, %arg17 : memref<4x32x64xf32>, memref<160x64xf32>) -> (%35 : memref<4x32x160xf32>) {}
    %36 = kiln_kernel.buffer offset 671744 : memref<4x32x160xf32>
    kiln_kernel.elementwise(%34, %35 : memref<4x32x160xf32>, memref<4x32x160xf32>) -> (%36 : memref<4x32x160xf32>) origin ["kiln.swiglu"] {
    ^bb0(%arg68: f32, %arg69: f32):
      %cst = arith.constant 1.000000e+00 : f32
      %116 = arith.negf %arg68 : f32
      %117 = math.exp %116 : f32
      %118 = arith.addf %cst, %117 : f32
      %119 = arith.divf %cst, %118 : f32
      %120 = arith.mulf %arg68, %119 : f32
      %121 = arith.mulf %120, %arg69 : f32
      kiln_kernel.yield %121 : f32
    }
    %37 = kiln_kernel.buffer offset 0 : memref<4x32x64xf32>
    kiln_kernel.launch "linear"(%36, %arg18 : memref<4x32x160xf32>, memref<64x160xf32>) -> (%37 : memref<4x32x64xf32>) {}
    %38 = kiln_kernel.buffer offset 819200 : memref<4x32x64xf32>
    kiln_kernel.elementwise(%32, %37 : memref<4x32x64xf32>, memref<4x32x64xf32>) -> (%38 : memref<4x32x64xf32>) origin ["arith.addf"] {
    ^bb0(%arg68: f32, %arg69: f32):
      %116 = arith.addf %arg68, %arg69 : f32
      kiln_kernel.yield %116 : f32
    }
    %39 = kiln_kernel.buffer offset 1253376 : memref<4x32x64xf32>
    kiln_kernel.launch "rms_norm"(%38, %arg19 : memref<4x32x64xf32>, memref<64xf32>) -> (%39 : memref<4x32x64xf32>) {epsilon = 9.9999999999999995E-7 : f64}
    %40 = kiln_kernel.buffer offset 0 : memref<4x32x256xf32>
    kiln_kernel.launch "linear"(%39, %arg0 : memref<4x32x64xf32>, memref<256x64xf32>) -> (%40 : memref<4x32x256xf32>) {}
    kiln_kernel.launch "cross_entropy"(%40, %arg62, %arg63 : memref<4x32x256xf32>, memref<4x32xi32>, memref<4x32xf32>) -> (%arg64 : memref<f32>) {label_smoothing = 0.000000e+00 : f64}
    %41 = kiln_kernel.buffer offset 753664 : memref<f32>
    kiln_kernel.launch "fill"() -> (%41 : memref<f32>) {value = 1.000000e+00 : f64}
    %42 = kiln_kernel.buffer offset 131072 : memref<4x32x256xf32>
    kiln_kernel.launch "cross_entropy_grad"(%40, %arg62, %arg63, %41 : memref<4x32x256xf32>, memref<4x32xi32>, memref<4x32xf32>, memref<f32>) -> (%42 : memref<4x32x256xf32>) {label_smoothing = 0.000000e+00 : f64}
    %43 = kiln_kernel.buffer offset 0 : memref<4x32x64xf32>
    kiln_kernel.launch "linear_dgrad"(%42, %arg0 : memref<4x32x256xf32>, memref<256x64xf32>) -> (%43 : memref<4x32x64xf32>) {}
    %44 = kiln_kernel.buffer offset 753664 : memref<256x64xf32>
    kiln_kernel.launch "linear_wgrad"(%42, %39 : memref<4x32x256xf32>, memref<4x32x64xf32>) -> (%44 : memref<256x64xf32>) {}
    %45 = kiln_kernel.buffer offset 1253376 : memref<4x32x64xf32>
    %46 = kiln_kernel.buffer offset 1351680 : memref<64xf32>
    kiln_kernel.launch "rms_norm_grad"(%43, %38, %arg19 : memref<4x32x64xf32>, memref<4x32x64xf32>, memref<64xf32>) -> (%45, %46 : memref<4x32x64xf32>, memref<64xf32>) {epsilon = 9.9999999999999995E-7 : f64}
    %47 = kiln_kernel.buffer offset 0 : memref<4x32x160xf32>
    kiln_kernel.launch "linear_dgrad"(%45, %arg18 : memref<4x32x64xf32>, memref<64x160xf32>) -> (%47 : memref<4x32x160xf32>) {}
    %48 = kiln_kernel.buffer offset 819200 : memref<64x160xf32>
    kiln_kernel.launch "linear_wgrad"(%45, %36 : memref<4x32x64xf32>, memref<4x32x160xf32>) -> (%48 : memref<64x160xf32>) {}
    %49 = kiln_kernel.buffer offset 81920 : memref<4x32x160xf32>
    %50 = kiln_kernel.buffer offset 163840 : memref<4x32x160xf32>
    kiln_kernel.elementwise(%47, %34, %35 : memref<4x32x160xf32>, memref<4x32x160xf32>, memref<4x32x160xf32>) -> (%49, %50 : memref<4x32x160xf32>, memref<4x32x160xf32>) origin ["kiln.swiglu_grad"] {
    ^bb0(%arg68: f32, %arg69: f32, %arg70: f32):
      %cst = arith.constant 1.000000e+00 : f32
      %116 = arith.negf %arg69 : f32
      %117 = math.exp %116 : f32
      %118 = arith.addf %cst, %117 : f32
      %119 = arith.divf %cst, %118 : f32
      %cst_0 = arith.constant 1.000000e+00 : f32
      %120 = arith.subf %cst_0, %119 : f32
      %121 = arith.mulf %arg69, %120 : f32
      %cst_1 = arith.constant 1.000000e+00 : f32
      %122 = arith.addf %cst_1, %121 : f32
      %123 = arith.mulf %arg68, %arg70 : f32
      %124 = arith.mulf %123, %119 : f32
      %125 = arith.mulf %124, %122 : f32
      %126 = arith.mulf %arg68, %arg69 : f32
      %127 = arith.mulf %126, %119 : f32
      kiln_kernel.yield %125, %127 : f32, f32
    }
    %51 = kiln_kernel.buffer offset 0 : memref<4x32x64xf32>
    kiln_kernel.launch "linear_dgrad"(%50, %arg17 : memref<4x32x160xf32>, memref<160x64xf32>) -> (%51 : memref<4x32x64xf32>) {}
    %52 = kiln_kernel.buffer offset 507904 : memref<160x64xf32>
    kiln_kernel.launch "linear_wgrad"(%50, %33 : memref<4x32x160xf32>, memref<4x32x64xf32>) -> (%52 : memref<160x64xf32>) {}
    %53 = kiln_kernel.buffer offset 32768 : memref<4x32x64xf32>
    kiln_kernel.launch "linear_dgrad"(%49, %arg16 : memref<4x32x160xf32>, memref<160x64xf32>) -> (%53 : memref<4x32x64xf32>) {}
    %54 = kiln_kernel.buffer offset 548864 : memref<160x64xf32>
    kiln_kernel.launch "linear_wgrad"(%49, %33 : memref<4x32x160xf32>, memref<4x32x64xf32>) -> (%54 : memref<160x64xf32>) {}
    %55 = kiln_kernel.buffer offset 65536 : memref<4x32x64xf32>
    kiln_kernel.elementwise(%51, %53 : memref<4x32x64xf32>, memref<4x32x64xf32>) -> (%55 : memref<4x32x64xf32>) origin ["arith.addf"] {
    ^bb0(%arg68: f32, %arg69: f32):
      %116 = arith.addf %arg68, %arg69 : f32
      kiln_kernel.yield %116 : f32
    }
    %56 = kiln_kernel.buffer offset 0 : memref<4x32x64xf32>
    %57 = kiln_kernel.buffer offset 712704 : memref<64xf32>
    kiln_kernel.launch "rms_norm_grad"(%55, %32, %arg15 : memref<4x32x64xf32>, memref<4x32x64xf32>, memref<64xf32>) -> (%56, %57 : memref<4x32x64xf32>, memref<64xf32>) {epsilon = 9.9999999999999995E-7 : f64}
    %58 = kiln_kernel.buffer offset 32768 : memref<4x32x64xf32>
    kiln_kernel.elementwise(%45, %56 : memref<4x32x64xf32>, memref<4x32x64xf32>) -> (%58 : memref<4x32x64xf32>) origin ["arith.addf"] {
    ^bb0(%arg68: f32, %arg69: f32):
      %116 = arith.addf %arg68, %arg69 : f32
      kiln_kernel.yield %116 : f32
    }
    %59 = kiln_kernel.buffer offset 0 : memref<4x32x64xf32>
    kiln_kernel.launch "linear_dgrad"(%58, %arg14 : memref<4x32x64xf32>, memref<64x64xf32>) -> (%59 : memref<4x32x64xf32>) {}
    %60 = kiln_kernel.buffer offset 663552 : memref<64x64xf32>
    kiln_kernel.launch "linear_wgrad"(%58, %30 : memref<4x32x64xf32>, memref<4x32x64xf32>) -> (%60 : memref<64x64xf32>) {}
    %61 = kiln_kernel.reshape %59 : memref<4x32x64xf32> to memref<4x32x4x16xf32>
    %62 = kiln_kernel.buffer offset 65536 : memref<4x32x4x16xf32>
    %63 = kiln_kernel.buffer offset 98304 : memref<4x32x2x16xf32>
    %64 = kiln_kernel.buffer offset 114688 : memref<4x32x2x16xf32>
    kiln_kernel.launch "attention_grad"(%27, %28, %26, %61 : memref<4x32x4x16xf32>, memref<4x32x2x16xf32>, memref<4x32x2x16xf32>, memref<4x32x4x16xf32>) -> (%62, %63, %64 : memref<4x32x4x16xf32>, memref<4x32x2x16xf32>, memref<4x32x2x16xf32>) {causal = true, scale = 2.500000e-01 : f64}
    %65 = kiln_kernel.buffer offset 131072 : memref<4x32x2x16xf32>
    kiln_kernel.launch "rope"(%63 : memref<4x32x2x16xf32>) -> (%65 : memref<4x32x2x16xf32>) {interleaved = false, theta = 1.000000e+04 : f64, transpose = true}
    %66 = kiln_kernel.buffer offset 0 : memref<4x32x4x16xf32>
    kiln_kernel.launch "rope"(%62 : memref<4x32x4x16xf32>) -> (%66 : memref<4x32x4x16xf32>) {interleaved = false, theta = 1.000000e+04 : f64, transpose = true}
    %67 = kiln_kernel.reshape %64 : memref<4x32x2x16xf32> to memref<4x32x32xf32>
    %68 = kiln_kernel.buffer offset 65536 : memref<4x32x64xf32>
    kiln_kernel.launch "linear_dgrad"(%67, %arg13 : memref<4x32x32xf32>, memref<32x64xf32>) -> (%68 : memref<4x32x64xf32>) {}
    %69 = kiln_kernel.buffer offset 696320 : memref<32x64xf32>
    kiln_kernel.launch "linear_wgrad"(%67, %20 : memref<4x32x32xf32>, memref<4x32x64xf32>) -> (%69 : memref<32x64xf32>) {}
    %70 = kiln_kernel.reshape %65 : memref<4x32x2x16xf32> to memref<4x32x32xf32>
    %71 = kiln_kernel.buffer offset 98304 : memref<4x32x64xf32>
    kiln_kernel.launch "linear_dgrad"(%70, %arg12 : memref<4x32x32xf32>, memref<32x64xf32>) -> (%71 : memref<4x32x64xf32>) {}
    %72 = kiln_kernel.buffer offset 704512 : memref<32x64xf32>
    kiln_kernel.launch "linear_wgrad"(%70, %20 : memref<4x32x32xf32>, memref<4x32x64xf32>) -> (%72 : memref<32x64xf32>) {}
    %73 = kiln_kernel.reshape %66 : memref<4x32x4x16xf32> to memref<4x32x64xf32>
    %74 = kiln_kernel.buffer offset 131072 : memref<4x32x64xf32>
    kiln_kernel.launch "linear_dgrad"(%73, %arg11 : memref<4x32x64xf32>, memref<64x64xf32>) -> (%74 : memref<4x32x64xf32>) {}
    %75 = kiln_kernel.buffer offset 679936 : memref<64x64xf32>
    kiln_kernel.launch "linear_wgrad"(%73, %20 : memref<4x32x64xf32>, memref<4x32x64xf32>) -> (%75 : memref<64x64xf32>) {}
    %76 = kiln_kernel.buffer offset 0 : memref<4x32x64xf32>
    kiln_kernel.elementwise(%68, %71, %74 : memref<4x32x64xf32>, memref<4x32x64xf32>, memref<4x32x64xf32>) -> (%76 : memref<4x32x64xf32>) origin ["arith.addf", "arith.addf"] {
    ^bb0(%arg68: f32, %arg69: f32, %arg70: f32):
      %116 = arith.addf %arg68, %arg69 : f32
      %117 = arith.addf %116, %arg70 : f32
      kiln_kernel.yield %117 : f32
    }
    %77 = kiln_kernel.buffer offset 65536 : memref<4x32x64xf32>
    %78 = kiln_kernel.buffer offset 712960 : memref<64xf32>
    kiln_kernel.launch "rms_norm_grad"(%76, %19, %arg10 : memref<4x32x64xf32>, memref<4x32x64xf32>, memref<64xf32>) -> (%77, %78 : memref<4x32x64xf32>, memref<64xf32>) {epsilon = 9.9999999999999995E-7 : f64}
    %79 = kiln_kernel.buffer offset 630784 : memref<4x32x64xf32>
    kiln_kernel.elementwise(%58, %77 : memref<4x32x64xf32>, memref<4x32x64xf32>) -> (%79 : memref<4x32x64xf32>) origin ["arith.addf"] {
    ^bb0(%arg68: f32, %arg69: f32):
      %116 = arith.addf %arg68, %arg69 : f32
      kiln_kernel.yield %116 : f32
    }
    %80 = kiln_kernel.buffer offset 0 : memref<4x32x160xf32>
    kiln_kernel.launch "linear_dgrad"(%79, %arg9 : memref<4x32x64xf32>, memref<64x160xf32>) -> (%80 : memref<4x32x160xf32>) {}
    %81 = kiln_kernel.buffer offset 589824 : memref<64x160xf32>
    kiln_kernel.launch "linear_wgrad"(%79, %17 : memref<4x32x64xf32>, memref<4x32x160xf32>) -> (%81 : memref<64x160xf32>) {}
    %82 = kiln_kernel.buffer offset 81920 : memref<4x32x160xf32>
    %83 = kiln_kernel.buffer offset 163840 : memref<4x32x160xf32>
    kiln_kernel.elementwise(%80, %15, %16 : memref<4x32x160xf32>, memref<4x32x160xf32>, memref<4x32x160xf32>) -> (%82, %83 : memref<4x32x160xf32>, memref<4x32x160xf32>) origin ["kiln.swiglu_grad"] {
    ^bb0(%arg68: f32, %arg69: f32, %arg70: f32):
      %cst = arith.constant 1.000000e+00 : f32
      %116 = arith.negf %arg69 : f32
      %117 = math.exp %116 : f32
      %118 = arith.addf %cst, %117 : f32
      %119 = arith.divf %cst, %118 : f32
      %cst_0 = arith.constant 1.000000e+00 : f32
      %120 = arith.subf %cst_0, %119 : f32
      %121 = arith.mulf %arg69, %120 : f32
      %cst_1 = arith.constant 1.000000e+00 : f32
      %122 = arith.addf %cst_1, %121 : f32
      %123 = arith.mulf %arg68, %arg70 : f32
      %124 = arith.mulf %123, %119 : f32
      %125 = arith.mulf %124, %122 : f32
      %126 = arith.mulf %arg68, %arg69 : f32
      %127 = arith.mulf %126, %119 : f32
      kiln_kernel.yield %125, %127 : f32, f32
    }
    %84 = kiln_kernel.buffer offset 0 : memref<4x32x64xf32>
    kiln_kernel.launch "linear_dgrad"(%83, %arg8 : memref<4x32x160xf32>, memref<160x64xf32>) -> (%84 : memref<4x32x64xf32>) {}
    %85 = kiln_kernel.buffer offset 245760 : memref<160x64xf32>
    kiln_kernel.launch "linear_wgrad"(%83, %14 : memref<4x32x160xf32>, memref<4x32x64xf32>) -> (%85 : memref<160x64xf32>) {}
    %86 = kiln_kernel.buffer offset 32768 : memref<4x32x64xf32>
    kiln_kernel.launch "linear_dgrad"(%82, %arg7 : memref<4x32x160xf32>, memref<160x64xf32>) -> (%86 : memref<4x32x64xf32>) {}
    %87 = kiln_kernel.buffer offset 163840 : memref<160x64xf32>
    kiln_kernel.launch "linear_wgrad"(%82, %14 : memref<4x32x160xf32>, memref<4x32x64xf32>) -> (%87 : memref<160x64xf32>) {}
    %88 = kiln_kernel.buffer offset 65536 : memref<4x32x64xf32>
    kiln_kernel.elementwise(%84, %86 : memref<4x32x64xf32>, memref<4x32x64xf32>) -> (%88 : memref<4x32x64xf32>) origin ["arith.addf"] {
    ^bb0(%arg68: f32, %arg69: f32):
      %116 = arith.addf %arg68, %arg69 : f32
      kiln_kernel.yield %116 : f32
    }
    %89 = kiln_kernel.buffer offset 0 : memref<4x32x64xf32>
    %90 = kiln_kernel.buffer offset 294912 : memref<64xf32>
    kiln_kernel.launch "rms_norm_grad"(%88, %13, %arg6 : memref<4x32x64xf32>, memref<4x32x64xf32>, memref<64xf32>) -> (%89, %90 : memref<4x32x64xf32>, memref<64xf32>) {epsilon = 9.9999999999999995E-7 : f64}
    %91 = kiln_kernel.buffer offset 32768 : memref<4x32x64xf32>
    kiln_kernel.elementwise(%79, %89 : memref<4x32x64xf32>, memref<4x32x64xf32>) -> (%91 : memref<4x32x64xf32>) origin ["arith.addf"] {
    ^bb0(%arg68: f32, %arg69: f32):
      %116 = arith.addf %arg68, %arg69 : f32
      kiln_kernel.yield %116 : f32
    }
    %92 = kiln_kernel.buffer offset 0 : memref<4x32x64xf32>
    kiln_kernel.launch "linear_dgrad"(%91, %arg5 : memref<4x32x64xf32>, memref<64x64xf32>) -> (%92 : memref<4x32x64xf32>) {}
    %93 = kiln_kernel.buffer offset 204800 : memref<64x64xf32>
    kiln_kernel.launch "linear_wgrad"(%91, %11 : memref<4x32x64xf32>, memref<4x32x64xf32>) -> (%93 : memref<64x64xf32>) {}
    %94 = kiln_kernel.reshape %92 : memref<4x32x64xf32> to memref<4x32x4x16xf32>
    %95 = kiln_kernel.buffer offset 65536 : memref<4x32x4x16xf32>
    %96 = kiln_kernel.buffer offset 98304 : memref<4x32x2x16xf32>
    %97 = kiln_kernel.buffer offset 114688 : memref<4x32x2x16xf32>
    kiln_kernel.launch "attention_grad"(%8, %9, %7, %94 : memref<4x32x4x16xf32>, memref<4x32x2x16xf32>, memref<4x32x2x16xf32>, memref<4x32x4x16xf32>) -> (%95, %96, %97 : memref<4x32x4x16xf32>, memref<4x32x2x16xf32>, memref<4x32x2x16xf32>) {causal = true, scale = 2.500000e-01 : f64}
    %98 = kiln_kernel.buffer offset 131072 : memref<4x32x2x16xf32>
    kiln_kernel.launch "rope"(%96 : memref<4x32x2x16xf32>) -> (%98 : memref<4x32x2x16xf32>) {interleaved = false, theta = 1.000000e+04 : f64, transpose = true}
    %99 = kiln_kernel.buffer offset 0 : memref<4x32x4x16xf32>
    kiln_kernel.launch "rope"(%95 : memref<4x32x4x16xf32>) -> (%99 : memref<4x32x4x16xf32>) {interleaved = false, theta = 1.000000e+04 : f64, transpose = true}
    %100 = kiln_kernel.reshape %97 : memref<4x32x2x16xf32> to memref<4x32x32xf32>
    %101 = kiln_kernel.buffer offset 65536 : memref<4x32x64xf32>
    kiln_kernel.launch "linear_dgrad"(%100, %arg4 : memref<4x32x32xf32>, memref<32x64xf32>) -> (%101 : memref<4x32x64xf32>) {}
    %102 = kiln_kernel.buffer offset 237568 : memref<32x64xf32>
    kiln_kernel.launch "linear_wgrad"(%100, %1 : memref<4x32x32xf32>, memref<4x32x64xf32>) -> (%102 : memref<32x64xf32>) {}
    %103 = kiln_kernel.reshape %98 : memref<4x32x2x16xf32> to memref<4x32x32xf32>
    %104 = kiln_kernel.buffer offset 98304 : memref<4x32x64xf32>
    kiln_kernel.launch "linear_dgrad"(%103, %arg3 : memref<4x32x32xf32>, memref<32x64xf32>) -> (%104 : memref<4x32x64xf32>) {}
    %105 = kiln_kernel.buffer offset 286720 : memref<32x64xf32>
    kiln_kernel.launch "linear_wgrad"(%103, %1 : memref<4x32x32xf32>, memref<4x32x64xf32>) -> (%105 : memref<32x64xf32>) {}
    %106 = kiln_kernel.reshape %99 : memref<4x32x4x16xf32> to memref<4x32x64xf32>
    %107 = kiln_kernel.buffer offset 131072 : memref<4x32x64xf32>
    kiln_kernel.launch "linear_dgrad"(%106, %arg2 : memref<4x32x64xf32>, memref<64x64xf32>) -> (%107 : memref<4x32x64xf32>) {}
    %108 = kiln_kernel.buffer offset 221184 : memref<64x64xf32>
    kiln_kernel.launch "linear_wgrad"(%106, %1 : memref<4x32x64xf32>, memref<4x32x64xf32>) -> (%108 : memref<64x64xf32>) {}
    %109 = kiln_kernel.buffer offset 0 : memref<4x32x64xf32>
    kiln_kernel.elementwise(%101, %104, %107 : memref<4x32x64xf32>, memref<4x32x64xf32>, memref<4x32x64xf32>) -> (%109 : memref<4x32x64xf32>) origin ["arith.addf", "arith.addf"] {
    ^bb0(%arg68: f32, %arg69: f32, %arg70: f32):
      %116 = arith.addf %arg68, %arg69 : f32
      %117 = arith.addf %116, %arg70 : f32
      kiln_kernel.yield %117 : f32
    }
    %110 = kiln_kernel.buffer offset 65536 : memref<4x32x64xf32>
    %111 = kiln_kernel.buffer offset 131072 : memref<64xf32>
    kiln_kernel.launch "rms_norm_grad"(%109, %0, %arg1 : memref<4x32x64xf32>, memref<4x32x64xf32>, memref<64xf32>) -> (%110, %111 : memref<4x32x64xf32>, memref<64xf32>) {epsilon = 9.9999999999999995E-7 : f64}
    %112 = kiln_kernel.buffer offset 98304 : memref<4x32x64xf32>
    kiln_kernel.elementwise(%91, %110 : memref<4x32x64xf32>, memref<4x32x64xf32>) -> (%112 : memref<4x32x64xf32>) origin ["arith.addf"] {
    ^bb0(%arg68: f32, %arg69: f32):
      %116 = arith.addf %arg68, %arg69 : f32
      kiln_kernel.yield %116 : f32
    }
    %113 = kiln_kernel.buffer offset 0 : memref<256x64xf32>
    kiln_kernel.launch "embedding_grad"(%112, %arg61 : memref<4x32x64xf32>, memref<4x32xi32>) -> (%113 : memref<256x64xf32>) {}
    %114 = kiln_kernel.buffer offset 65536 : memref<256x64xf32>
    kiln_kernel.elementwise(%44, %113 : memref<256x64xf32>, memref<256x64xf32>) -> (%114 : memref<256x64xf32>) origin ["arith.addf"] {
    ^bb0(%arg68: f32, %arg69: f32):
      %116 = arith.addf %arg68, %arg69 : f32
      kiln_kernel.yield %116 : f32
    }
    kiln_kernel.launch "global_norm"(%114, %111, %108, %105, %102, %93, %90, %87, %85, %81, %78, %75, %72, %69, %60, %57, %54, %52, %48, %46 : memref<256x64xf32>, memref<64xf32>, memref<64x64xf32>, memref<32x64xf32>, memref<32x64xf32>, memref<64x64xf32>, memref<64xf32>, memref<160x64xf32>, memref<160x64xf32>, memref<64x160xf32>, memref<64xf32>, memref<64x64xf32>, memref<32x64xf32>, memref<32x64xf32>, memref<64x64xf32>, memref<64xf32>, memref<160x64xf32>, memref<160x64xf32>, memref<64x160xf32>, memref<64xf32>) -> (%arg66 : memref<f32>) {}
    %115 = kiln_kernel.buffer offset 0 : memref<f32>
    kiln_kernel.launch "clip_scale"(%arg66 : memref<f32>) -> (%115 : memref<f32>) {max_norm = 1.000000e+00 : f64}
    kiln_kernel.launch "lr_schedule"(%arg60 : memref<i64>) -> (%arg67 : memref<f32>) {lr = 3.000000e-03 : f64, min_lr = 3.000000e-04 : f64, total_steps = 300 : i64, warmup_steps = 20 : i64}
    kiln_kernel.launch "adamw"(%arg0, %114, %arg20, %arg40, %arg67, %arg60, %115 : memref<256x64xf32>, memref<256x64xf32>, memref<256x64xf32>, memref<256x64xf32>, memref<f32>, memref<i64>, memref<f32>) -> (%arg0, %arg20, %arg40 : memref<256x64xf32>, memref<256x64xf32>, memref<256x64xf32>) {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64, weight_decay = 1.000000e-01 : f64}
    kiln_kernel.launch "adamw"(%arg1, %111, %arg21, %arg41, %arg67, %arg60, %115 : memref<64xf32>, memref<64xf32>, memref<64xf32>, memref<64xf32>, memref<f32>, memref<i64>, memref<f32>) -> (%arg1, %arg21, %arg41 : memref<64xf32>, memref<64xf32>, memref<64xf32>) {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64, weight_decay = 0.000000e+00 : f64}
    kiln_kernel.launch "adamw"(%arg2, %108, %arg22, %arg42, %arg67, %arg60, %115 : memref<64x64xf32>, memref<64x64xf32>, memref<64x64xf32>, memref<64x64xf32>, memref<f32>, memref<i64>, memref<f32>) -> (%arg2, %arg22, %arg42 : memref<64x64xf32>, memref<64x64xf32>, memref<64x64xf32>) {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64, weight_decay = 1.000000e-01 : f64}
    kiln_kernel.launch "adamw"(%arg3, %105, %arg23, %arg43, %arg67, %arg60, %115 : memref<32x64xf32>, memref<32x64xf32>, memref<32x64xf32>, memref<32x64xf32>, memref<f32>, memref<i64>, memref<f32>) -> (%arg3, %arg23, %arg43 : memref<32x64xf32>, memref<32x64xf32>, memref<32x64xf32>) {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64, weight_decay = 1.000000e-01 : f64}
    kiln_kernel.launch "adamw"(%arg4, %102, %arg24, %arg44, %arg67, %arg60, %115 : memref<32x64xf32>, memref<32x64xf32>, memref<32x64xf32>, memref<32x64xf32>, memref<f32>, memref<i64>, memref<f32>) -> (%arg4, %arg24, %arg44 : memref<32x64xf32>, memref<32x64xf32>, memref<32x64xf32>) {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64, weight_decay = 1.000000e-01 : f64}
    kiln_kernel.launch "adamw"(%arg5, %93, %arg25, %arg45, %arg67, %arg60, %115 : memref<64x64xf32>, memref<64x64xf32>, memref<64x64xf32>, memref<64x64xf32>, memref<f32>, memref<i64>, memref<f32>) -> (%arg5, %arg25, %arg45 : memref<64x64xf32>, memref<64x64xf32>, memref<64x64xf32>) {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64, weight_decay = 1.000000e-01 : f64}
    kiln_kernel.launch "adamw"(%arg6, %90, %arg26, %arg46, %arg67, %arg60, %115 : memref<64xf32>, memref<64xf32>, memref<64xf32>, memref<64xf32>, memref<f32>, memref<i64>, memref<f32>) -> (%arg6, %arg26, %arg46 : memref<64xf32>, memref<64xf32>, memref<64xf32>) {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64, weight_decay = 0.000000e+00 : f64}
    kiln_kernel.launch "adamw"(%arg7, %87, %arg27, %arg47, %arg67, %arg60, %115 : memref<160x64xf32>, memref<160x64xf32>, memref<160x64xf32>, memref<160x64xf32>, memref<f32>, memref<i64>, memref<f32>) -> (%arg7, %arg27, %arg47 : memref<160x64xf32>, memref<160x64xf32>, memref<160x64xf32>) {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64, weight_decay = 1.000000e-01 : f64}
    kiln_kernel.launch "adamw"(%arg8, %85, %arg28, %arg48, %arg67, %arg60, %115 : memref<160x64xf32>, memref<160x64xf32>, memref<160x64xf32>, memref<160x64xf32>, memref<f32>, memref<i64>, memref<f32>) -> (%arg8, %arg28, %arg48 : memref<160x64xf32>, memref<160x64xf32>, memref<160x64xf32>) {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64, weight_decay = 1.000000e-01 : f64}
    kiln_kernel.launch "adamw"(%arg9, %81, %arg29, %arg49, %arg67, %arg60, %115 : memref<64x160xf32>, memref<64x160xf32>, memref<64x160xf32>, memref<64x160xf32>, memref<f32>, memref<i64>, memref<f32>) -> (%arg9, %arg29, %arg49 : memref<64x160xf32>, memref<64x160xf32>, memref<64x160xf32>) {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64, weight_decay = 1.000000e-01 : f64}
    kiln_kernel.launch "adamw"(%arg10, %78, %arg30, %arg50, %arg67, %arg60, %115 : memref<64xf32>, memref<64xf32>, memref<64xf32>, memref<64xf32>, memref<f32>, memref<i64>, memref<f32>) -> (%arg10, %arg30, %arg50 : memref<64xf32>, memref<64xf32>, memref<64xf32>) {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64, weight_decay = 0.000000e+00 : f64}
    kiln_kernel.launch "adamw"(%arg11, %75, %arg31, %arg51, %arg67, %arg60, %115 : memref<64x64xf32>, memref<64x64xf32>, memref<64x64xf32>, memref<64x64xf32>, memref<f32>, memref<i64>, memref<f32>) -> (%arg11, %arg31, %arg51 : memref<64x64xf32>, memref<64x64xf32>, memref<64x64xf32>) {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64, weight_decay = 1.000000e-01 : f64}
    kiln_kernel.launch "adamw"(%arg12, %72, %arg32, %arg52, %arg67, %arg60, %115 : memref<32x64xf32>, memref<32x64xf32>, memref<32x64xf32>, memref<32x64xf32>, memref<f32>, memref<i64>, memref<f32>) -> (%arg12, %arg32, %arg52 : memref<32x64xf32>, memref<32x64xf32>, memref<32x64xf32>) {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64, weight_decay = 1.000000e-01 : f64}
    kiln_kernel.launch "adamw"(%arg13, %69, %arg33, %arg53, %arg67, %arg60, %115 : memref<32x64xf32>, memref<32x64xf32>, memref<32x64xf32>, memref<32x64xf32>, memref<f32>, memref<i64>, memref<f32>) -> (%arg13, %arg33, %arg53 : memref<32x64xf32>, memref<32x64xf32>, memref<32x64xf32>) {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64, weight_decay = 1.000000e-01 : f64}
    kiln_kernel.launch "adamw"(%arg14, %60, %arg34, %arg54, %arg67, %arg60, %115 : memref<64x64xf32>, memref<64x64xf32>, memref<64x64xf32>, memref<64x64xf32>, memref<f32>, memref<i64>, memref<f32>) -> (%arg14, %arg34, %arg54 : memref<64x64xf32>, memref<64x64xf32>, memref<64x64xf32>) {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64, weight_decay = 1.000000e-01 : f64}
    kiln_kernel.launch "adamw"(%arg15, %57, %arg35, %arg55, %arg67, %arg60, %115 : memref<64xf32>, memref<64xf32>, memref<64xf32>, memref<64xf32>, memref<f32>, memref<i64>, memref<f32>) -> (%arg15, %arg35, %arg55 : memref<64xf32>, memref<64xf32>, memref<64xf32>) {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64, weight_decay = 0.000000e+00 : f64}
    kiln_kernel.launch "adamw"(%arg16, %54, %arg36, %arg56, %arg67, %arg60, %115 : memref<160x64xf32>, memref<160x64xf32>, memref<160x64xf32>, memref<160x64xf32>, memref<f32>, memref<i64>, memref<f32>) -> (%arg16, %arg36, %arg56 : memref<160x64xf32>, memref<160x64xf32>, memref<160x64xf32>) {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64, weight_decay = 1.000000e-01 : f64}
    kiln_kernel.launch "adamw"(%arg17, %52, %arg37, %arg57, %arg67, %arg60, %115 : memref<160x64xf32>, memref<160x64xf32>, memref<160x64xf32>, memref<160x64xf32>, memref<f32>, memref<i64>, memref<f32>) -> (%arg17, %arg37, %arg57 : memref<160x64xf32>, memref<160x64xf32>, memref<160x64xf32>) {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64, weight_decay = 1.000000e-01 : f64}
    kiln_kernel.launch "adamw"(%arg18, %48, %arg38, %arg58, %arg67, %arg60, %115 : memref<64x160xf32>, memref<64x160xf32>, memref<64x160xf32>, memref<64x160xf32>, memref<f32>, memref<i64>, memref<f32>) -> (%arg18, %arg38, %arg58 : memref<64x160xf32>, memref<64x160xf32>, memref<64x160xf32>) {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64, weight_decay = 1.000000e-01 : f64}
    kiln_kernel.launch "adamw"(%arg19, %46, %arg39, %arg59, %arg67, %arg60, %115 : memref<64xf32>, memref<64xf32>, memref<64xf32>, memref<64xf32>, memref<f32>, memref<i64>, memref<f32>) -> (%arg19, %arg39, %arg59 : memref<64xf32>, memref<64xf32>, memref<64xf32>) {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64, weight_decay = 0.000000e+00 : f64}
    kiln_kernel.elementwise(%arg64 : memref<f32>) -> (%arg65 : memref<f32>) origin ["copy"] {
    ^bb0(%arg68: f32):
      kiln_kernel.yield %arg68 : f32
    }
    return
  }
}
