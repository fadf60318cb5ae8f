// RUN: kiln-opt %s -split-input-file -verify-diagnostics -allow-unregistered-dialect --kiln-verify-collectives

// A dropped collective: rank 1 runs one all_reduce fewer, so rank 0 waits in
// its second for a rank that has ended.

module attributes {kiln.grid = #kiln.grid<axes = ["dp"], shape = [2]>} {
  func.func @rank0(%x: tensor<4xf32>) -> tensor<4xf32>
      attributes {kiln.program = "train_step", kiln.ranks = array<i64: 0>} {
    %a = kiln.all_reduce %x {kind = "sum", axes = ["dp"]} : tensor<4xf32>
    // expected-error @+1 {{kiln-verify-collectives: rank 1 ends its program while rank 0 waits in kiln.all_reduce over dp (#2 of that group)}}
    %b = kiln.all_reduce %a {kind = "sum", axes = ["dp"]} : tensor<4xf32>
    return %b : tensor<4xf32>
  }
  func.func @rank1(%x: tensor<4xf32>) -> tensor<4xf32>
      attributes {kiln.program = "train_step", kiln.ranks = array<i64: 1>} {
    %a = kiln.all_reduce %x {kind = "sum", axes = ["dp"]} : tensor<4xf32>
    // expected-note @+1 {{rank 1's program @rank1 ends here}}
    return %a : tensor<4xf32>
  }
}

// -----

// Two collectives swapped on one rank.

module attributes {kiln.grid = #kiln.grid<axes = ["dp"], shape = [2]>} {
  func.func @rank0(%x: tensor<4xf32>) -> (tensor<4xf32>, tensor<8xf32>)
      attributes {kiln.program = "train_step", kiln.ranks = array<i64: 0>} {
    // expected-error @+1 {{kiln-verify-collectives: rank 0 and rank 1 disagree on collective #1 of group dp [0, 1]: rank 0 runs kiln.all_reduce sum of 4 x f32, rank 1 runs kiln.all_gather of 4 x f32 along dim 0}}
    %a = kiln.all_reduce %x {kind = "sum", axes = ["dp"]} : tensor<4xf32>
    %b = kiln.all_gather %x {axes = ["dp"], dim = 0 : i64} : (tensor<4xf32>) -> tensor<8xf32>
    return %a, %b : tensor<4xf32>, tensor<8xf32>
  }
  func.func @rank1(%x: tensor<4xf32>) -> (tensor<4xf32>, tensor<8xf32>)
      attributes {kiln.program = "train_step", kiln.ranks = array<i64: 1>} {
    // expected-note @+1 {{rank 1 is here}}
    %b = kiln.all_gather %x {axes = ["dp"], dim = 0 : i64} : (tensor<4xf32>) -> tensor<8xf32>
    %a = kiln.all_reduce %x {kind = "sum", axes = ["dp"]} : tensor<4xf32>
    return %a, %b : tensor<4xf32>, tensor<8xf32>
  }
}

// -----

// A changed element count in the second collective of the group.

module attributes {kiln.grid = #kiln.grid<axes = ["dp"], shape = [2]>} {
  func.func @rank0(%x: tensor<4096xf32>) -> tensor<4096xf32>
      attributes {kiln.program = "train_step", kiln.ranks = array<i64: 0>} {
    %a = kiln.all_reduce %x {kind = "sum", axes = ["dp"]} : tensor<4096xf32>
    // expected-error @+1 {{kiln-verify-collectives: rank 0 and rank 1 disagree on collective #2 of group dp [0, 1]: rank 0 runs kiln.all_reduce sum of 4096 x f32, rank 1 runs kiln.all_reduce sum of 2048 x f32}}
    %b = kiln.all_reduce %a {kind = "sum", axes = ["dp"]} : tensor<4096xf32>
    return %b : tensor<4096xf32>
  }
  func.func @rank1(%x: tensor<4096xf32>) -> tensor<2048xf32>
      attributes {kiln.program = "train_step", kiln.ranks = array<i64: 1>} {
    %a = kiln.all_reduce %x {kind = "sum", axes = ["dp"]} : tensor<4096xf32>
    %h = tensor.extract_slice %a[0] [2048] [1] : tensor<4096xf32> to tensor<2048xf32>
    // expected-note @+1 {{rank 1 is here}}
    %b = kiln.all_reduce %h {kind = "sum", axes = ["dp"]} : tensor<2048xf32>
    return %b : tensor<2048xf32>
  }
}

// -----

// A send nobody receives.

module attributes {kiln.grid = #kiln.grid<axes = ["pp"], shape = [2]>} {
  func.func @stage0(%x: tensor<4xf32>) attributes {kiln.program = "train_step", kiln.ranks = array<i64: 0>} {
    // expected-error @+1 {{kiln-verify-collectives: rank 0's kiln.send to rank 1 (4 x f32) has no matching kiln.recv: rank 1 has ended its program}}
    kiln.send %x {axis = "pp", peer = 1 : i64} : tensor<4xf32>
    return
  }
  func.func @stage1() attributes {kiln.program = "train_step", kiln.ranks = array<i64: 1>} {
    // expected-note @+1 {{rank 1's program @stage1 ends here}}
    return
  }
}

// -----

// Both ranks receive first: a cycle of waits.

module attributes {kiln.grid = #kiln.grid<axes = ["pp"], shape = [2]>} {
  func.func @stage0(%x: tensor<4xf32>) -> tensor<4xf32>
      attributes {kiln.program = "train_step", kiln.ranks = array<i64: 0>} {
    // expected-error @+1 {{kiln-verify-collectives: deadlock: rank 0 waits in kiln.recv from rank 1, rank 1 waits in kiln.recv from rank 0}}
    %y = kiln.recv {axis = "pp", peer = 1 : i64} : tensor<4xf32>
    kiln.send %x {axis = "pp", peer = 1 : i64} : tensor<4xf32>
    return %y : tensor<4xf32>
  }
  func.func @stage1(%x: tensor<4xf32>) -> tensor<4xf32>
      attributes {kiln.program = "train_step", kiln.ranks = array<i64: 1>} {
    // expected-note @+1 {{rank 1 waits here}}
    %y = kiln.recv {axis = "pp", peer = 0 : i64} : tensor<4xf32>
    kiln.send %x {axis = "pp", peer = 0 : i64} : tensor<4xf32>
    return %y : tensor<4xf32>
  }
}

// -----

// A recv whose peer sends another element type.

module attributes {kiln.grid = #kiln.grid<axes = ["pp"], shape = [2]>} {
  func.func @stage0(%x: tensor<4xbf16>) attributes {kiln.program = "train_step", kiln.ranks = array<i64: 0>} {
    // expected-error @+1 {{kiln-verify-collectives: rank 0 and rank 1 disagree on a send/recv: rank 0 runs kiln.send to rank 1 of 4 x bf16, rank 1 runs kiln.recv from rank 0 of 4 x f32}}
    kiln.send %x {axis = "pp", peer = 1 : i64} : tensor<4xbf16>
    return
  }
  func.func @stage1() -> tensor<4xf32> attributes {kiln.program = "train_step", kiln.ranks = array<i64: 1>} {
    // expected-note @+1 {{rank 1 is here}}
    %y = kiln.recv {axis = "pp", peer = 0 : i64} : tensor<4xf32>
    return %y : tensor<4xf32>
  }
}

// -----

// A send waiting for a rank that waits in a collective for the sender: the
// cycle names the collective and whom it waits for.

module attributes {kiln.grid = #kiln.grid<axes = ["pp"], shape = [2]>} {
  func.func @stage0(%x: tensor<4xf32>) -> tensor<4xf32>
      attributes {kiln.program = "train_step", kiln.ranks = array<i64: 0>} {
    // expected-error @+1 {{kiln-verify-collectives: deadlock: rank 0 waits in kiln.send to rank 1, rank 1 waits in kiln.all_reduce over pp (#1 of that group) for rank 0}}
    kiln.send %x {axis = "pp", peer = 1 : i64} : tensor<4xf32>
    %s = kiln.all_reduce %x {kind = "sum", axes = ["pp"]} : tensor<4xf32>
    return %s : tensor<4xf32>
  }
  func.func @stage1(%x: tensor<4xf32>) -> tensor<4xf32>
      attributes {kiln.program = "train_step", kiln.ranks = array<i64: 1>} {
    // expected-note @+1 {{rank 1 waits here}}
    %s = kiln.all_reduce %x {kind = "sum", axes = ["pp"]} : tensor<4xf32>
    %y = kiln.recv {axis = "pp", peer = 0 : i64} : tensor<4xf32>
    return %y : tensor<4xf32>
  }
}

// -----

// Calls are followed: ranks 0 and 2 reduce with "sum" inside @block, ranks 1
// and 3 with "max", so each tp group disagrees; rank 0's group comes first.

module attributes {kiln.grid = #kiln.grid<axes = ["dp", "tp"], shape = [2, 2]>} {
  func.func private @block(%x: tensor<4xf32>) -> tensor<4xf32> {
    // expected-error @+1 {{kiln-verify-collectives: rank 0 and rank 1 disagree on collective #1 of group tp [0, 1]: rank 0 runs kiln.all_reduce sum of 4 x f32, rank 1 runs kiln.all_reduce max of 4 x f32}}
    %y = kiln.all_reduce %x {kind = "sum", axes = ["tp"]} : tensor<4xf32>
    return %y : tensor<4xf32>
  }
  func.func @even(%x: tensor<4xf32>) -> tensor<4xf32>
      attributes {kiln.program = "train_step", kiln.ranks = array<i64: 0, 2>} {
    %y = call @block(%x) : (tensor<4xf32>) -> tensor<4xf32>
    return %y : tensor<4xf32>
  }
  func.func @odd(%x: tensor<4xf32>) -> tensor<4xf32>
      attributes {kiln.program = "train_step", kiln.ranks = array<i64: 1, 3>} {
    // expected-note @+1 {{rank 1 is here}}
    %y = kiln.all_reduce %x {kind = "max", axes = ["tp"]} : tensor<4xf32>
    return %y : tensor<4xf32>
  }
}

// -----

// Every rank must run exactly one program.

// expected-error @+1 {{kiln-verify-collectives: rank 1 runs no program: no function with kiln.program = "train_step" lists it in kiln.ranks}}
module attributes {kiln.grid = #kiln.grid<axes = ["dp"], shape = [2]>} {
  func.func @rank0() attributes {kiln.program = "train_step", kiln.ranks = array<i64: 0>} {
    return
  }
}

// -----

module attributes {kiln.grid = #kiln.grid<axes = ["dp"], shape = [2]>} {
  func.func @a() attributes {kiln.program = "train_step", kiln.ranks = array<i64: 0, 1>} {
    return
  }
  // expected-error @+1 {{kiln-verify-collectives: rank 1 is listed in kiln.ranks of both @a and @b; expected each rank to run one program}}
  func.func @b() attributes {kiln.program = "train_step", kiln.ranks = array<i64: 1>} {
    return
  }
}

// -----

// expected-error @+1 {{kiln-verify-collectives: no function @train_step with a body and no function with kiln.program = "train_step"; expected one of them (or set entry=<name>)}}
module attributes {kiln.grid = #kiln.grid<axes = ["dp"], shape = [2]>} {
  func.func @forward() {
    return
  }
}

// -----

// Inside a loop the number of events would depend on data.

module attributes {kiln.grid = #kiln.grid<axes = ["dp"], shape = [2]>} {
  func.func @train_step(%x: tensor<4xf32>) {
    "test.loop"() ({
      // expected-error @+1 {{kiln-verify-collectives: cannot put 'kiln.all_reduce' in program order: expected communication and calls only in the single block of @train_step, found it inside 'test.loop'}}
      %y = kiln.all_reduce %x {kind = "sum", axes = ["dp"]} : tensor<4xf32>
      "test.yield"() : () -> ()
    }) : () -> ()
    return
  }
}

// -----

module attributes {kiln.grid = #kiln.grid<axes = ["dp"], shape = [2]>} {
  func.func @train_step(%x: tensor<4xf32>) -> tensor<4xf32> {
    // expected-error @+1 {{kiln-verify-collectives: recursive call to @train_step; expected a fixed, finite sequence of communication per rank}}
    %y = call @train_step(%x) : (tensor<4xf32>) -> tensor<4xf32>
    return %y : tensor<4xf32>
  }
}
