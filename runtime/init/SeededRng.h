//===- SeededRng.h - The seeded, platform-independent parameter init RNG --===//
//
// One SplitMix64 stream per (seed, tensor name): the state starts at
// seed * golden ^ fnv1a64(name), so a tensor's initial values depend only on
// the seed and its Hugging Face name, never on the order tensors are made in
// or on the platform. normal() is one Box-Muller pair per call with the sine
// half dropped.
//
// Shared, header-only, by the compiler's reference evaluator (kilnc
// --save-params) and every generated training executable, so both start
// from bit-identical f32 weights.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_INIT_SEEDEDRNG_H
#define KILN_RUNTIME_INIT_SEEDEDRNG_H

#include <cmath>
#include <cstdint>
#include <string_view>

namespace kiln::init {

inline uint64_t fnv1a64(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s)
    h = (h ^ c) * 1099511628211ull;
  return h;
}

class SeededRng {
public:
  SeededRng(uint64_t seed, std::string_view stream)
      : state(seed * 0x9E3779B97F4A7C15ull ^ fnv1a64(stream)) {}

  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  /// Uniform in (0, 1]: never 0, so log() in normal() is finite.
  double uniform() { return double((next() >> 11) + 1) * 0x1.0p-53; }

  double normal() {
    double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }

private:
  uint64_t state;
};

} // namespace kiln::init

#endif // KILN_RUNTIME_INIT_SEEDEDRNG_H
