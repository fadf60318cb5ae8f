//===- PrecisionProbe.cpp - PrecisionMath.h on lines from stdin -----------===//
//
// The program models/reference/precision_reference.py checks (ctest
// PrecisionMatchesIndependentReference): each line "<format> <f32 bits>"
// prints the format's bits of the rounded value, each "<format>-decode
// <bits>" the f32 bits of the value; format is bf16, f16 or e4m3, numbers
// are hex.
//
//===----------------------------------------------------------------------===//

#include "runtime/kernels/PrecisionMath.h"

#include <cstdio>
#include <cstring>

using namespace kiln::kernels;

int main() {
  char format[32];
  unsigned bits;
  while (std::scanf("%31s %x", format, &bits) == 2) {
    const char *dash = std::strchr(format, '-');
    const bool decode = dash && std::strcmp(dash, "-decode") == 0;
    if (dash)
      *const_cast<char *>(dash) = '\0';
    NarrowFormat f;
    if (std::strcmp(format, "bf16") == 0)
      f = bf16Format();
    else if (std::strcmp(format, "f16") == 0)
      f = f16Format();
    else if (std::strcmp(format, "e4m3") == 0)
      f = e4m3Format();
    else {
      std::fprintf(stderr, "precision-probe: unknown format '%s'\n", format);
      return 2;
    }
    if (decode)
      std::printf("%x\n", bitsOfFloat(floatOfNarrowBits(bits, f)));
    else
      std::printf("%x\n", narrowBitsOf(floatOfBits(bits), f));
  }
  return 0;
}
