#!/usr/bin/env bash
# Installs the Debian 12 packages Kiln needs, and only those that are absent.
# python3-torch is not installed: only regenerating goldens needs it
# (pass --with-torch to add it).
set -euo pipefail

packages=(cmake ninja-build ccache g++ libmlir-22-dev mlir-22-tools llvm-22-dev llvm-22-tools
          libgtest-dev nlohmann-json3-dev libopenblas-dev libopenblas0-openmp libdnnl-dev openmpi-bin libopenmpi-dev
          clang-22 libclang-rt-22-dev)
[[ "${1:-}" == "--with-torch" ]] && packages+=(python3-torch)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
