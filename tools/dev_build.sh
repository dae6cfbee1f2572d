#!/usr/bin/env bash
# Developer build: compiles ember._core into build/dev and links it into python/ember, so that
# `PYTHONPATH=python pytest` runs against the working tree without reinstalling.
# Uses the python on PATH (which needs pybind11 and cmeel-eigen installed). Users run `pip install .`.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-build/dev}
PY=${PYTHON:-python}
if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DPython_EXECUTABLE="$(command -v "$PY")" \
    -Dpybind11_DIR="$("$PY" -c 'import pybind11; print(pybind11.get_cmake_dir())')" >/dev/null
fi
cmake --build "$BUILD" -- -j"${JOBS:-2}"
so=$(ls "$BUILD"/_core*.so)
ln -sf "$(realpath "$so")" python/ember/"$(basename "$so")"
