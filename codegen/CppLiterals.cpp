//===- CppLiterals.cpp - C++ spellings of float constants in emitted code -===//

#include "codegen/CppLiterals.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace kiln::codegen {

/// The shortest `%g` rendering of `v` with at most `maxDigits` significant
/// digits that `parse` reads back as `v`; integral values of moderate size
/// are written as "123.0".
template <typename T>
static std::string shortestDecimal(T v, int maxDigits, T (*parse)(const char *, char **)) {
  char buf[64];
  if (v == std::trunc(v) && std::fabs(v) < T(1e15)) {
    std::snprintf(buf, sizeof buf, "%.1f", double(v));
    return buf;
  }
  for (int digits = 1; digits <= maxDigits; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, double(v));
    if (parse(buf, nullptr) == v)
      break;
  }
  std::string s = buf;
  if (s.find_first_of(".e") == std::string::npos)
    s += ".0";
  return s;
}

static float parseFloat(const char *s, char **end) { return std::strtof(s, end); }
static double parseDouble(const char *s, char **end) { return std::strtod(s, end); }

/// A C++ float expression equal to `v` rounded to f32.
std::string floatLiteral(double v) {
  float f = float(v);
  if (std::isnan(f))
    return "std::numeric_limits<float>::quiet_NaN()";
  if (std::isinf(f))
    return f < 0 ? "-std::numeric_limits<float>::infinity()"
                 : "std::numeric_limits<float>::infinity()";
  return shortestDecimal<float>(f, 9, parseFloat) + "f";
}

/// A C++ double expression equal to `v`.
std::string doubleLiteral(double v) {
  if (std::isnan(v))
    return "std::numeric_limits<double>::quiet_NaN()";
  if (std::isinf(v))
    return v < 0 ? "-std::numeric_limits<double>::infinity()"
                 : "std::numeric_limits<double>::infinity()";
  return shortestDecimal<double>(v, 17, parseDouble);
}

} // namespace kiln::codegen
