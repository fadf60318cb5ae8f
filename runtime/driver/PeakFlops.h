//===- PeakFlops.h - a GPU's dense peak FLOP/s, for MFU -------------------===//
//
// MFU (model FLOPs utilization, PaLM's definition) = the model's FLOPs per
// token x tokens per second / (ranks x one device's peak). The peak here is
// the dense (no 2:4 sparsity) rate of the units the step's precision runs
// its GEMMs on: tensor cores for bf16 / fp16 (f32 accumulation) and fp8,
// the FP32 cores for fp32 (Kiln's fp32 GEMMs use no TF32). It is streaming
// multiprocessors x clock x FLOPs per SM per clock:
//
//   sm     | fp32 | bf16, fp16 | fp8   | datasheet check (SMs x clock)
//   8.0    | 128  | 2048       | -     | A100: 108 x 1.41 GHz -> 19.5, 312 TF
//   8.9    | 256  | 1024       | 2048  | L40S: 142 x 2.52 GHz -> 91.6, 366, 733 TF
//   9.0    | 256  | 4096       | 8192  | H100 SXM: 132 x 1.83 GHz -> 61.8, 989, 1979 TF
//   10.0   | 256  | 8192       | 16384 | B200: 148 x 1.86 GHz -> 70, 2255, 4510 TF
//
// The runtime passes the clock the device reports as its maximum, which is
// higher than the clock NVIDIA quotes its tensor peaks at (H100 SXM: 1.98
// against 1.83 GHz), so Kiln's MFU errs low, never high. Other devices
// have no entry: 0, and the program prints no MFU rather than a guess.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_DRIVER_PEAKFLOPS_H
#define KILN_RUNTIME_DRIVER_PEAKFLOPS_H

namespace kiln::driver {

/// The precision a step's GEMMs run in (train.precision).
enum class GemmPrecision { F32, Bf16, F16, Fp8 };

/// Dense FLOPs per SM per clock of compute capability major.minor in
/// `precision` (the table above); 0 where there is no entry.
double denseFlopsPerSmPerClock(int major, int minor, GemmPrecision precision);

/// sms x clockHz x denseFlopsPerSmPerClock; 0 where that is 0.
double densePeakFlops(int major, int minor, int sms, double clockHz, GemmPrecision precision);

/// MFU in [0, ...): flopsPerToken x tokensPerSec / (ranks x peak); NaN
/// where a factor is unknown (peak or FLOPs 0, no ranks).
double modelFlopsUtilization(double flopsPerToken, double tokensPerSec, int ranks,
                             double peakFlops);

} // namespace kiln::driver

#endif // KILN_RUNTIME_DRIVER_PEAKFLOPS_H
