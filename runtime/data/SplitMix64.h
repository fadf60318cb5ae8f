//===- SplitMix64.h - Seeded, platform-independent random numbers -*- C++ -*-===//
//
// Steele, Lea and Flood's SplitMix64 (the generator Java's SplittableRandom
// and the xoshiro authors' seeding use): a 64-bit counter stepped by the
// golden ratio and passed through a mixing function. Every draw is defined
// by 64-bit unsigned arithmetic only, so a seed gives the same stream on
// every compiler, standard library and platform -- unlike
// std::uniform_int_distribution, whose algorithm the standard leaves open.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DATA_SPLITMIX64_H
#define KILN_RUNTIME_DATA_SPLITMIX64_H

#include <cstdint>

namespace kiln::data {

class SplitMix64 {
public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  /// The next 64 random bits.
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  /// Uniform in [0, n) for n >= 1, without modulo bias: draws below
  /// 2^64 mod n are rejected, so every residue has the same number of
  /// accepted draws.
  uint64_t below(uint64_t n) {
    const uint64_t threshold = (0 - n) % n; // 2^64 mod n.
    for (;;) {
      const uint64_t r = next();
      if (r >= threshold)
        return r % n;
    }
  }

private:
  uint64_t state_;
};

} // namespace kiln::data

#endif // KILN_RUNTIME_DATA_SPLITMIX64_H
