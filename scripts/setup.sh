#!/usr/bin/env bash
# README command 1: install what is missing, build, run the main job
# (compile models/r1-tiny.json, print its summary and its forward loss).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${KILN_BUILD_DIR:-$root/build}
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
cd "$root"
"$build/bin/kilnc" models/r1-tiny.json
"$build/bin/kilnc" models/r1-tiny.json --eval
