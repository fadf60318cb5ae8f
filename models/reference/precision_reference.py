"""Independent reference for Kiln's narrow float formats (runtime/kernels/PrecisionMath.h).

Written from the format definitions, not from Kiln's code: the OCP 8-bit floating point specification (OFP8,
rev. 1.0) for E4M3 and IEEE 754 binary16 / bfloat16 for the 16-bit formats. Every representable value is built
as an exact rational (fractions.Fraction); rounding picks the nearest representable value and, on a tie, the one
whose mantissa is even, over exact arithmetic, so nothing here depends on a float's own rounding. (PyTorch 1.13
has no float8 and numpy is not needed: exact rationals make the reference independent of any float library.)

Overflow, as Kiln documents it: bf16 and f16 round past their largest finite value to +-inf (IEEE); E4M3 has
no infinity and saturates, so every finite value past 448 and +-inf become +-448 (cvt.rn.satfinite). NaN stays
NaN with its sign.

Run as a check of a probe program:

    python3 precision_reference.py PROBE

PROBE reads lines "<format> <f32 bits in hex>" and "<format>-decode <bits in hex>" on stdin and prints, per
line, the encoded bits (hex) or the decoded f32 bits (hex). The script feeds it every representable value of
each format, every tie between neighbours, the f32 values just beside each tie (all of them for E4M3, every
STRIDE-th for the 16-bit formats), the overflow and underflow boundaries, infinities, NaNs and seeded random f32
values, and every bit pattern to decode, and prints one line per format with the count of
cases and mismatches; it exits 1 on any mismatch.
"""

import random
import struct
import subprocess
import sys
from fractions import Fraction

# name: (exponent bits, mantissa bits, bias, has infinity)
FORMATS = {
    "bf16": (8, 7, 127, True),
    "f16": (5, 10, 15, True),
    "e4m3": (4, 3, 7, False),
}


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def f32_exact(bits):
    """The exact rational value of a finite f32 bit pattern."""
    sign = -1 if bits >> 31 else 1
    e = (bits >> 23) & 0xFF
    m = bits & 0x7FFFFF
    if e == 0:
        return sign * Fraction(m, 1 << 149)
    return sign * Fraction((1 << 23) | m) * Fraction(2) ** (e - 150)


class Format:
    def __init__(self, name):
        self.name = name
        self.ebits, self.mbits, self.bias, self.has_inf = FORMATS[name]
        self.width = 1 + self.ebits + self.mbits
        top = (1 << self.ebits) - 1
        # Finite, non-negative bit patterns in increasing order (the encoding is monotonic for them).
        self.finite = []
        for bits in range(1 << (self.width - 1)):
            e, m = bits >> self.mbits, bits & ((1 << self.mbits) - 1)
            if self.has_inf and e == top:
                continue  # inf and NaN
            if not self.has_inf and e == top and m == (1 << self.mbits) - 1:
                continue  # E4M3's only NaN pattern, S.1111.111
            self.finite.append(bits)
        self.finite_set = set(self.finite)
        self.values = [self.value(b) for b in self.finite]
        self.max_finite = self.values[-1]

    def value(self, bits):
        """Exact value of a finite pattern (OCP / IEEE: subnormals at exponent field 0)."""
        sign = -1 if bits >> (self.width - 1) else 1
        e = (bits >> self.mbits) & ((1 << self.ebits) - 1)
        m = bits & ((1 << self.mbits) - 1)
        if e == 0:
            return sign * Fraction(m) * Fraction(2) ** (1 - self.bias - self.mbits)
        return sign * (1 + Fraction(m, 1 << self.mbits)) * Fraction(2) ** (e - self.bias)

    def nan_bits(self, negative):
        sign = 1 << (self.width - 1) if negative else 0
        if self.has_inf:
            return sign | (((1 << self.ebits) - 1) << self.mbits) | (1 << (self.mbits - 1))
        return sign | ((1 << (self.width - 1)) - 1)

    def inf_or_max_bits(self, negative):
        sign = 1 << (self.width - 1) if negative else 0
        if self.has_inf:
            return sign | (((1 << self.ebits) - 1) << self.mbits)
        return sign | self.finite[-1]

    def encode(self, f32bits):
        """Round-to-nearest-even of the f32 value with bit pattern f32bits."""
        negative = bool(f32bits >> 31)
        sign = 1 << (self.width - 1) if negative else 0
        if (f32bits >> 23) & 0xFF == 0xFF:
            if f32bits & 0x7FFFFF:
                return self.nan_bits(negative)
            return self.inf_or_max_bits(negative)
        x = abs(f32_exact(f32bits))
        if x > self.max_finite:
            # Past the top: IEEE rounds to inf only from the midpoint to the next (virtual) step up;
            # below it the nearest value is still the largest finite one.
            step = self.values[-1] - self.values[-2]
            if not self.has_inf or x < self.max_finite + step / 2:
                return sign | self.finite[-1]
            if x == self.max_finite + step / 2 and (self.finite[-1] & 1) == 0:
                return sign | self.finite[-1]
            return self.inf_or_max_bits(negative)
        lo, hi = 0, len(self.values) - 1
        while hi - lo > 1:  # values[lo] <= x <= values[hi]
            mid = (lo + hi) // 2
            if self.values[mid] <= x:
                lo = mid
            else:
                hi = mid
        a, b = self.values[lo], self.values[hi]
        if x - a < b - x or (x - a == b - x and self.finite[lo] % 2 == 0):
            return sign | self.finite[lo]
        return sign | self.finite[hi]

    def decode(self, bits):
        """f32 bit pattern of the value (NaN: the quiet NaN with the sign)."""
        negative = bool(bits >> (self.width - 1))
        magnitude = bits & ((1 << (self.width - 1)) - 1)
        if magnitude not in self.finite_set:
            e = magnitude >> self.mbits
            if self.has_inf and e == (1 << self.ebits) - 1 and magnitude & ((1 << self.mbits) - 1) == 0:
                return 0xFF800000 if negative else 0x7F800000
            return 0xFFC00000 if negative else 0x7FC00000
        v = self.value(magnitude)
        out = f32_bits(float(v))  # every value here is an f32 exactly (checked below)
        assert f32_exact(out) == v
        return out | (0x80000000 if negative else 0)


def f32_neighbours(v):
    """Bit patterns of the f32 values nearest to the exact rational v >= 0 on each side (and v itself when
    it is an f32): the double nearest v, packed to f32, and two patterns each way from it."""
    b = f32_bits(float(v))
    out = {b}
    for d in (-2, -1, 1, 2):
        nb = b + d
        if 0 <= nb < 0x7F800000:
            out.add(nb)
    return out


# Every representable value and tie of E4M3; of the 16-bit formats every STRIDE-th (still every binade, with
# both ends whole), which keeps the exact-rational reference to seconds.
STRIDE = {"e4m3": 1, "f16": 4, "bf16": 16}


def encode_cases(fmt, rng):
    vals = fmt.values
    n = len(vals)
    picked = set(range(0, n, STRIDE[fmt.name])) | set(range(min(40, n))) | set(range(max(0, n - 40), n))
    inputs = set()
    for i in sorted(picked):
        inputs |= f32_neighbours(vals[i])
        if i + 1 < n:
            inputs |= f32_neighbours((vals[i] + vals[i + 1]) / 2)  # the tie between neighbours
    inputs |= f32_neighbours(vals[-1] + (vals[-1] - vals[-2]) / 2)  # where overflow starts
    inputs |= {0, 1, 0x7F7FFFFF, 0x7F800000, 0x7FC00000, 0x7F800001, 0x7FFFFFFF}
    inputs |= {rng.getrandbits(32) & 0x7FFFFFFF for _ in range(4000)}
    return sorted(inputs | {b | 0x80000000 for b in inputs})


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: precision_reference.py PROBE")
    rng = random.Random(20261206)
    failed = False
    for name in FORMATS:
        fmt = Format(name)
        encode_inputs = encode_cases(fmt, rng)
        decode_inputs = list(range(1 << fmt.width))
        lines = [f"{name} {b:08x}" for b in encode_inputs] + [f"{name}-decode {b:x}" for b in decode_inputs]
        probe = subprocess.run([sys.argv[1]], input="\n".join(lines) + "\n", capture_output=True, text=True,
                               check=True)
        got = probe.stdout.split()
        if len(got) != len(lines):
            print(f"{name}: the probe printed {len(got)} results for {len(lines)} lines")
            failed = True
            continue
        mismatches = []
        for line, result in zip(lines, got):
            kind, arg = line.split()
            arg = int(arg, 16)
            want = fmt.decode(arg) if kind.endswith("-decode") else fmt.encode(arg)
            if int(result, 16) != want:
                mismatches.append(f"{line}: probe {result}, reference {want:x}")
        print(f"{name}: {len(encode_inputs)} encodes, {len(decode_inputs)} decodes, {len(mismatches)} mismatches")
        for m in mismatches[:10]:
            print("  " + m)
        failed |= bool(mismatches)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
