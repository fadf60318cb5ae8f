//===- PrecisionProbe.cpp - PrecisionMath.h and the FP8 kernels on stdin --===//
//
// The program models/reference/precision_reference.py checks (ctest
// PrecisionMatchesIndependentReference). Commands, numbers in hex:
//
//   <format> <f32 bits>         the format's bits of the rounded value
//   <format>-decode <bits>      the f32 bits of the value
//   quantize TR TC R C x...     runtime/kernels/Precision.h's quantizeFp8
//                               of the R x C f32 matrix x (row-major) in
//                               TR x TC tiles, then dequantizeFp8 of the
//                               result to f32 and to bf16; prints the e4m3
//                               values, the scales' f32 bits, the f32 and the
//                               bf16 bits of the dequantized matrix
//
// where format is bf16, f16 or e4m3 (TR, TC, R, C are decimal).
//
//===----------------------------------------------------------------------===//

#include "runtime/kernels/Precision.h"

#include <cstdio>
#include <cstring>
#include <vector>

using namespace kiln::kernels;

static int quantize() {
  long long tileRows, tileCols, rows, cols;
  if (std::scanf("%lld %lld %lld %lld", &tileRows, &tileCols, &rows, &cols) != 4 ||
      tileRows < 1 || tileCols < 1 || rows < 0 || cols < 0) {
    std::fprintf(stderr, "precision-probe: quantize needs TR TC R C\n");
    return 2;
  }
  std::vector<float> x(rows * cols);
  for (float &v : x) {
    unsigned bits;
    if (std::scanf("%x", &bits) != 1) {
      std::fprintf(stderr, "precision-probe: quantize needs R x C values\n");
      return 2;
    }
    v = floatOfBits(bits);
  }
  Fp8Tiles tiles{rows, cols, tileRows, tileCols};
  std::vector<E4m3> values(x.size());
  std::vector<float> scales(((rows + tileRows - 1) / tileRows) * ((cols + tileCols - 1) / tileCols));
  quantizeFp8(values.data(), scales.data(), x.data(), tiles);
  std::vector<float> wide(x.size());
  std::vector<Bf16> narrow(x.size());
  dequantizeFp8(wide.data(), values.data(), scales.data(), tiles);
  dequantizeFp8(narrow.data(), values.data(), scales.data(), tiles);
  for (E4m3 q : values)
    std::printf("%x\n", q.bits);
  for (float s : scales)
    std::printf("%x\n", bitsOfFloat(s));
  for (float w : wide)
    std::printf("%x\n", bitsOfFloat(w));
  for (Bf16 b : narrow)
    std::printf("%x\n", b.bits);
  return 0;
}

int main() {
  char command[32];
  while (std::scanf("%31s", command) == 1) {
    if (std::strcmp(command, "quantize") == 0) {
      if (int rc = quantize())
        return rc;
      continue;
    }
    unsigned bits;
    if (std::scanf("%x", &bits) != 1) {
      std::fprintf(stderr, "precision-probe: '%s' needs a hex argument\n", command);
      return 2;
    }
    char *dash = std::strchr(command, '-');
    const bool decode = dash && std::strcmp(dash, "-decode") == 0;
    if (dash)
      *dash = '\0';
    NarrowFormat f;
    if (std::strcmp(command, "bf16") == 0)
      f = bf16Format();
    else if (std::strcmp(command, "f16") == 0)
      f = f16Format();
    else if (std::strcmp(command, "e4m3") == 0)
      f = e4m3Format();
    else {
      std::fprintf(stderr, "precision-probe: unknown command '%s'\n", command);
      return 2;
    }
    if (decode)
      std::printf("%x\n", bitsOfFloat(floatOfNarrowBits(bits, f)));
    else
      std::printf("%x\n", narrowBitsOf(floatOfBits(bits), f));
  }
  return 0;
}
