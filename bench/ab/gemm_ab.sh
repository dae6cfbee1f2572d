#!/usr/bin/env bash
# Same-process A/B of ember's GEMM between two source trees (see gemm_ab.cpp).
#
#   bench/ab/gemm_ab.sh A B "M K N threads [ta tb]" ["M K N threads" ...]
#
# A and B are each a git revision of this repository (e.g. HEAD, main~3) or a directory holding
# a cpp/ tree; "." is the working tree. Extra compiler flags for B only: B_FLAGS="-DX=1".
# Eigen comes from EIGEN_INCLUDE, else the cmeel-eigen wheel of the python on PATH, else
# /usr/include/eigen3. A null A/B (the same tree twice) reads about 1.00 [0.99, 1.02] on a noisy
# 2-core VM for large products, so differences inside a few percent are not resolved; for small
# hot ones (64x120x400) it read 0.95 [0.92, 0.99]: run those both ways round. EPI=1 times
# gemm_bias_act (bias + ReLU) instead of gemm.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
[ $# -ge 3 ] || { sed -n 2,11p "$0"; exit 2; }
a=$1; b=$2; shift 2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree() {  # tree SPEC DEST: a directory with cpp/ for SPEC
  if [ -d "$1/cpp" ]; then (cd "$1" && pwd); else
    mkdir -p "$2" && git -C "$root" archive "$1" cpp | tar -x -C "$2" && echo "$2"; fi
}
ta=$(tree "$a" "$work/a")
tb=$(tree "$b" "$work/b")
inc=${EIGEN_INCLUDE:-$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' \
  2>/dev/null)/cmeel.prefix/include/eigen3}
[ -d "$inc" ] || inc=/usr/include/eigen3
F=(-O3 -march=native -fopenmp -std=c++17 -DEIGEN_DONT_PARALLELIZE -DEIGEN_NO_DEBUG -I"$inc")
pids=()
for f in gemm parallel; do
  g++ "${F[@]}" -I"$ta/cpp" -c "$ta/cpp/core/$f.cpp" -o "$work/a_$f.o" & pids+=($!)
  g++ "${F[@]}" -I"$tb/cpp" -Dember=emberB ${B_FLAGS:-} -c "$tb/cpp/core/$f.cpp" -o "$work/b_$f.o" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done  # set -e: a failed compile stops here
g++ "${F[@]}" "$root/bench/ab/gemm_ab.cpp" "$work"/a_*.o "$work"/b_*.o -o "$work/gemm_ab"
for shape in "$@"; do "$work/gemm_ab" $shape; done
