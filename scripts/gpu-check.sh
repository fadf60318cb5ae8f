#!/usr/bin/env bash
# The one prepared GPU check of the CUDA target (issue 16), under 8 minutes on
# one H100: the GEMM launchers against the host kernels and their TFLOPS,
# r1-tiny trained 20 steps on the GPU against the host program (fp32, bf16,
# fp8), r1-mini tokens/s and MFU. Appends its numbers, the date, the device
# and this command to bench/RESULTS-gpu.md. Without a GPU it says so and
# exits 0. Builds Kiln first if build/ has no kilnc.
# Where the machine has two or more GPUs, gpu_check.py also trains r1-tiny
# dp 2 over NCCL (`mpirun -np 2`, one GPU per rank) 20 steps against the host
# dp 2 program (fp32 within 1e-4; with fewer GPUs it records "not run: needs
# 2 GPUs"), and this script then runs the NCCL communicator check
# (test/cuda/nccl_check.cu: every operation on NCCL against the MPI backend,
# bit for bit) under `mpirun -np <gpus>` and appends its lines too.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/build-dir.sh"
[[ -x "$build/bin/kilnc" ]] || "$root/scripts/build.sh"
status=0
python3 "$root/bench/gpu_check.py" --root "$root" --build "$build" "$@" || status=$?

gpus=$( (nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || true) | grep -c . || true)
if (( gpus >= 2 )); then
  # The results file gpu_check.py wrote to (its --results, if given).
  results=$root/bench/RESULTS-gpu.md
  args=("$@")
  for ((i = 0; i < ${#args[@]}; ++i)); do
    case ${args[i]} in
      --results) results=${args[i + 1]:-$results} ;;
      --results=*) results=${args[i]#--results=} ;;
    esac
  done
  work=$(mktemp -d /tmp/kiln-nccl-check-XXXXXX)
  nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
  # The libmpi the build found (generated programs link the same).
  libmpi=$(sed -n 's/^MPI_mpi_LIBRARY:FILEPATH=//p' "$build/CMakeCache.txt")
  section=$work/section.md
  echo "### NCCL communicator, $gpus GPUs (test/cuda/nccl_check.cu under mpirun -np $gpus)" \
    > "$section"
  echo >> "$section"
  echo "+ nvcc ... test/cuda/nccl_check.cu -o $work/nccl_check"
  if "$nvcc" -arch=sm_90a -std=c++17 -O2 -DKILN_HAVE_NCCL -I"$root" \
       "$root/test/cuda/nccl_check.cu" "$build/runtime/comm/libKilnCommMpi.a" \
       "$build/runtime/comm/libKilnComm.a" "${libmpi:-/usr/lib/x86_64-linux-gnu/openmpi/lib/libmpi.so}" \
       -lnccl -lcudart -o "$work/nccl_check" > "$work/build.log" 2>&1; then
    echo "+ mpirun -np $gpus $work/nccl_check"
    code=0
    timeout 300 mpirun --allow-run-as-root -np "$gpus" "$work/nccl_check" \
      > "$work/run.log" 2>&1 || code=$?
    {
      echo '```'
      grep '^nccl_check:' "$work/run.log" || true
      if (( code != 0 )); then
        echo "(exit status $code; the last lines of the job's output:)"
        tail -n 20 "$work/run.log"
      fi
      echo '```'
    } >> "$section"
    (( code == 0 )) || status=1
  else
    { echo "NCCL check: did not build:"; echo '```'; tail -c 3000 "$work/build.log"; echo '```'; } \
      >> "$section"
    status=1
  fi
  echo >> "$section"
  cat "$section"
  cat "$section" >> "$results"
  echo "gpu-check: NCCL check appended to $results$( ((status == 0)) || echo '; some checks FAILED')"
fi
exit "$status"
