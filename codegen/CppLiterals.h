//===- CppLiterals.h - C++ spellings of float constants in emitted code ---===//
//
// Every float constant kilnc writes into C++ (kernel arguments, constants in
// fused loops, init standard deviations) goes through these, so one value
// is always spelled one way: the shortest decimal that reads back as the
// same value (an `f` suffix for f32), "123.0" for integral values, and
// std::numeric_limits for NaN and infinities (the emitted file includes
// <limits> through runtime/kernels/Copy.h).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CODEGEN_CPPLITERALS_H
#define KILN_CODEGEN_CPPLITERALS_H

#include <string>

namespace kiln::codegen {

/// A C++ float expression equal to `v` rounded to f32.
std::string floatLiteral(double v);

/// A C++ double expression equal to `v`.
std::string doubleLiteral(double v);

} // namespace kiln::codegen

#endif // KILN_CODEGEN_CPPLITERALS_H
