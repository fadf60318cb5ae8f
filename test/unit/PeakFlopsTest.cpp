//===- PeakFlopsTest.cpp - the GPU peak table and MFU ---------------------===//
//
// runtime/driver/PeakFlops.h against NVIDIA's datasheet figures (dense, at
// the clocks NVIDIA quotes them at): each within 2%; devices without an
// entry give 0; the MFU formula and its unknown cases.
//
//===----------------------------------------------------------------------===//

#include "runtime/driver/PeakFlops.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace kiln::driver;

namespace {

void expectNear(double got, double datasheet, const char *what) {
  EXPECT_NEAR(got / datasheet, 1.0, 0.02) << what << ": " << got / 1e12 << " TFLOP/s against "
                                          << datasheet / 1e12;
}

TEST(PeakFlops, MatchesTheDatasheets) {
  expectNear(densePeakFlops(8, 0, 108, 1.41e9, GemmPrecision::F32), 19.5e12, "A100 fp32");
  expectNear(densePeakFlops(8, 0, 108, 1.41e9, GemmPrecision::Bf16), 312e12, "A100 bf16");
  expectNear(densePeakFlops(9, 0, 132, 1.83e9, GemmPrecision::Bf16), 989.4e12, "H100 SXM bf16");
  expectNear(densePeakFlops(9, 0, 132, 1.83e9, GemmPrecision::F16), 989.4e12, "H100 SXM fp16");
  expectNear(densePeakFlops(9, 0, 132, 1.83e9, GemmPrecision::Fp8), 1978.9e12, "H100 SXM fp8");
  expectNear(densePeakFlops(8, 9, 142, 2.52e9, GemmPrecision::Bf16), 362.05e12, "L40S bf16");
  expectNear(densePeakFlops(8, 9, 142, 2.52e9, GemmPrecision::F32), 91.6e12, "L40S fp32");
}

TEST(PeakFlops, UnknownDevicesAndPrecisionsHaveNoPeak) {
  EXPECT_EQ(densePeakFlops(7, 0, 80, 1.53e9, GemmPrecision::Bf16), 0.0); // V100: no entry
  EXPECT_EQ(densePeakFlops(8, 0, 108, 1.41e9, GemmPrecision::Fp8), 0.0); // no fp8 on A100
  EXPECT_EQ(densePeakFlops(9, 0, 0, 1.83e9, GemmPrecision::Bf16), 0.0);
  EXPECT_EQ(densePeakFlops(9, 0, 132, 0.0, GemmPrecision::Bf16), 0.0);
}

TEST(PeakFlops, ModelFlopsUtilization) {
  // 6 GFLOP per token at 50k tokens/s on 2 GPUs of 1 PFLOP/s: 15%.
  EXPECT_DOUBLE_EQ(modelFlopsUtilization(6e9, 5e4, 2, 1e15), 0.15);
  EXPECT_TRUE(std::isnan(modelFlopsUtilization(6e9, 5e4, 2, 0)));   // no peak (host)
  EXPECT_TRUE(std::isnan(modelFlopsUtilization(0, 5e4, 2, 1e15)));  // FLOPs not counted
  EXPECT_TRUE(std::isnan(modelFlopsUtilization(6e9, 5e4, 0, 1e15)));
  EXPECT_TRUE(std::isnan(modelFlopsUtilization(6e9, std::nan(""), 1, 1e15)));
}

} // namespace
