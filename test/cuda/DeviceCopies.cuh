//===- DeviceCopies.cuh - host vectors to and from the GPU, for the checks -===//
//
// What the GPU check programs (gemm_check.cu, nccl_check.cu) move between
// host vectors and device buffers: toDevice allocates (at least one
// element, so an empty vector still has a pointer) and copies; toHost waits
// for all the device's work first, then copies back. Every call checked.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TEST_CUDA_DEVICECOPIES_CUH
#define KILN_TEST_CUDA_DEVICECOPIES_CUH

#include "runtime/kernels/cuda/Check.cuh"

#include <algorithm>
#include <cstddef>
#include <vector>

namespace kiln::test {

template <typename T> T *toDevice(const std::vector<T> &host) {
  T *p = nullptr;
  KILN_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(host.size(), 1) * sizeof(T)));
  KILN_CUDA_CHECK(cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  return p;
}

template <typename T> std::vector<T> toHost(const T *p, size_t n) {
  std::vector<T> host(n);
  KILN_CUDA_CHECK(cudaDeviceSynchronize());
  KILN_CUDA_CHECK(cudaMemcpy(host.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
  return host;
}

} // namespace kiln::test

#endif // KILN_TEST_CUDA_DEVICECOPIES_CUH
