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

It then checks Kiln's FP8 block quantization (runtime/kernels/Precision.h, the semantics of kiln.quantize_fp8 and
kiln.dequantize_fp8) with lines "quantize TR TC R C x..." (an R x C f32 matrix in TR x TC tiles), to which the
probe answers with the e4m3 values, the f32 scales, and the matrix dequantized to f32 and to bf16. The reference
arithmetic, as Kiln documents it (DeepGEMM's): amax = max |x| over the tile, floored at f32(1e-4); factor =
f32(448 / amax); q = e4m3(f32(x * factor)); scale = f32(amax / 448); dequantized = f32(e4m3 value * scale), and
bf16 of that. Every E4M3 value and tie goes through a tile whose amax is 448 (factor 1, so q is the plain
encoding), and seeded random tiles of [1, 128], [128, 128] and [128, 1], partial ones, all-zero and tiny ones
exercise the factor's rounding.
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


def round_f32(v):
    """The f32 bit pattern nearest the rational v: ties to even, gradual underflow, inf from the overflow
    midpoint up (IEEE 754 binary32, from its definition)."""
    sign = 0x80000000 if v < 0 else 0
    a = abs(v)
    if a == 0:
        return sign
    e = a.numerator.bit_length() - a.denominator.bit_length()  # 2^e <= a < 2^(e+1), after the fix-up
    while Fraction(2) ** e > a:
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    e = max(e, -126)  # subnormals have the smallest normal exponent's spacing
    ulp = Fraction(2) ** (e - 23)
    q = a // ulp
    rest = a - q * ulp
    if rest > ulp / 2 or (rest == ulp / 2 and q % 2 == 1):
        q += 1
    if e == -126 and q < (1 << 23):
        return sign | int(q)  # subnormal (or the carry into the smallest normal, q == 2^23, below)
    if q == 1 << 24:  # the rounding carried into the next binade
        q, e = 1 << 23, e + 1
    if e > 127:
        return sign | 0x7F800000
    return sign | ((e + 127) << 23) | (int(q) - (1 << 23))


def quantize_reference(xbits, tile_rows, tile_cols, rows, cols, e4m3, bf16):
    """(values, scale bits, dequantized f32 bits, dequantized bf16 bits) for finite inputs."""
    floor = f32_exact(round_f32(Fraction(1, 10000)))
    scale_cols = -(-cols // tile_cols)
    factors, scales = {}, {}
    for tr in range(-(-rows // tile_rows)):
        for tc in range(scale_cols):
            tile = [abs(f32_exact(xbits[r * cols + c]))
                    for r in range(tr * tile_rows, min(rows, (tr + 1) * tile_rows))
                    for c in range(tc * tile_cols, min(cols, (tc + 1) * tile_cols))]
            amax = max(max(tile), floor)
            factors[tr, tc] = f32_exact(round_f32(448 / amax))
            scales[tr, tc] = round_f32(amax / 448)
    values, wide, narrow = [], [], []
    for r in range(rows):
        for c in range(cols):
            key = (r // tile_rows, c // tile_cols)
            # Signs apart: a Fraction has no -0, and -0 * factor is -0. Factors and scales are positive.
            x = xbits[r * cols + c]
            q = e4m3.encode((x & 0x80000000) | round_f32(abs(f32_exact(x)) * factors[key]))
            values.append(q)
            w = ((q & 0x80) << 24) | round_f32(e4m3.value(q & 0x7F) * f32_exact(scales[key]))
            wide.append(w)
            narrow.append(bf16.encode(w))
    ordered_scales = [scales[tr, tc] for tr in range(-(-rows // tile_rows)) for tc in range(scale_cols)]
    return values, ordered_scales, wide, narrow


def random_f32(rng, lo_exp, hi_exp):
    """A finite f32 pattern with a random sign, exponent in [lo_exp, hi_exp] and mantissa."""
    e = rng.randint(lo_exp, hi_exp)
    return (rng.getrandbits(1) << 31) | ((e + 127) << 23) | rng.getrandbits(23)


def quantize_cases(rng, e4m3):
    """(name, TR, TC, R, C, x bits) cases."""
    cases = []
    # Every value and tie of E4M3 (and their f32 neighbours) in [1, 128] tiles led by 448: factor 1.
    finite = [b for b in encode_cases(e4m3, rng)
              if (b >> 23) & 0xFF != 0xFF and abs(f32_exact(b)) <= 448]
    rows = [[0x43E00000] + finite[i:i + 127] for i in range(0, len(finite), 127)]
    rows[-1] += [0] * (128 - len(rows[-1]))
    cases.append(("every e4m3 value and tie", 1, 128, len(rows), 128, [b for row in rows for b in row]))
    # Random magnitudes: the factor 448 / amax is inexact and x * factor rounds twice (f32, then e4m3).
    for name, tr, tc, r, c, lo, hi in [
        ("[1, 128] activations, partial last tile", 1, 128, 6, 300, -12, 6),
        ("[128, 128] weights, partial tiles", 128, 128, 130, 200, -20, 2),
        ("[128, 1] transposed activations", 128, 1, 256, 3, -8, 12),
        ("tiny values under the amax floor", 1, 128, 2, 128, -40, -16),
    ]:
        cases.append((name, tr, tc, r, c, [random_f32(rng, lo, hi) for _ in range(r * c)]))
    cases.append(("all-zero tiles", 1, 128, 2, 256, [0, 0x80000000] * 256))
    return cases


def check_quantize(probe_path, rng):
    e4m3, bf16 = Format("e4m3"), Format("bf16")
    failed = False
    for name, tr, tc, r, c, xbits in quantize_cases(rng, e4m3):
        line = f"quantize {tr} {tc} {r} {c} " + " ".join(f"{b:x}" for b in xbits)
        probe = subprocess.run([probe_path], input=line + "\n", capture_output=True, text=True, check=True)
        got = [int(t, 16) for t in probe.stdout.split()]
        values, scales, wide, narrow = quantize_reference(xbits, tr, tc, r, c, e4m3, bf16)
        want = values + scales + wide + narrow
        parts = [("value", len(values)), ("scale", len(scales)), ("f32", len(wide)), ("bf16", len(narrow))]
        mismatches = []
        if len(got) != len(want):
            mismatches.append(f"the probe printed {len(got)} numbers, expected {len(want)}")
        else:
            at = 0
            for part, count in parts:
                for i in range(count):
                    if got[at + i] != want[at + i]:
                        mismatches.append(f"{part} #{i}: probe {got[at + i]:x}, reference {want[at + i]:x}")
                at += count
        print(f"quantize ({name}): [{r}, {c}] in [{tr}, {tc}] tiles, {len(mismatches)} mismatches")
        for m in mismatches[:10]:
            print("  " + m)
        failed |= bool(mismatches)
    return failed


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
    failed |= check_quantize(sys.argv[1], rng)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
