// Same-process A/B of two builds of ember's GEMM (core/gemm.cpp + core/parallel.cpp), for kernel
// changes worth a few percent on a machine whose speed drifts by much more between minutes.
// Variant A is compiled as namespace ember, variant B with -Dember=emberB; calls alternate
// A, B, A, B ... on the same operands, and each pair's time ratio is recorded, so a slow minute
// slows both sides of the pairs it falls on. Built and run by bench/ab/gemm_ab.sh.
//
//   gemm_ab M K N threads [ta tb]   (C (M x N) = op(A) (M x K) op(B) (K x N); REPS pairs, def. 41;
//                                   EPI=1: gemm_bias_act with bias and ReLU)
//
// Prints both medians in GFLOP/s, the median B/A speed ratio with its quartiles, and whether the
// two results are bitwise equal (a pure speed change should keep `same=1`).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace ember {
template <class T>
void gemm(bool, bool, int64_t, int64_t, int64_t, const T*, const T*, T*, bool);
template <class T>
void gemm_bias_act(bool, bool, int64_t, int64_t, int64_t, const T*, const T*, T*, const T*, bool);
void set_num_threads(int);
}  // namespace ember
namespace emberB {
template <class T>
void gemm(bool, bool, int64_t, int64_t, int64_t, const T*, const T*, T*, bool);
template <class T>
void gemm_bias_act(bool, bool, int64_t, int64_t, int64_t, const T*, const T*, T*, const T*, bool);
void set_num_threads(int);
}  // namespace emberB

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s M K N threads [ta tb]\n", argv[0]);
    return 2;
  }
  const int64_t M = std::atoll(argv[1]), K = std::atoll(argv[2]), N = std::atoll(argv[3]);
  const int nt = std::atoi(argv[4]);
  const bool ta = argc > 5 && std::atoi(argv[5]), tb = argc > 6 && std::atoi(argv[6]);
  const int reps = std::getenv("REPS") ? std::atoi(std::getenv("REPS")) : 41;
  // The thread count is ember's own setting (it starts from omp_get_max_threads() when the
  // library loads); omp_set_num_threads alone would leave it unchanged.
  ember::set_num_threads(nt);
  emberB::set_num_threads(nt);
  // EPI=1: gemm_bias_act with a bias and ReLU instead of the plain product.
  const bool epi = std::getenv("EPI") && std::atoi(std::getenv("EPI"));
  std::vector<float> A(M * K), B(K * N), C(M * N), C2(M * N), bias(N);
  uint32_t s = 1;
  for (auto* v : {&A, &B, &bias})
    for (float& x : *v) {
      s = s * 1664525u + 1013904223u;
      x = static_cast<float>(s >> 9) * (1.f / 8388608.f) - 1.f;
    }
  std::vector<double> ta_s, tb_s, ratio;
  for (int r = 0; r < reps + 2; ++r) {  // the first two pairs warm up
    const auto t0 = std::chrono::steady_clock::now();
    if (epi) ember::gemm_bias_act<float>(ta, tb, M, N, K, A.data(), B.data(), C.data(), bias.data(), true);
    else ember::gemm<float>(ta, tb, M, N, K, A.data(), B.data(), C.data(), false);
    const auto t1 = std::chrono::steady_clock::now();
    if (epi) emberB::gemm_bias_act<float>(ta, tb, M, N, K, A.data(), B.data(), C2.data(), bias.data(), true);
    else emberB::gemm<float>(ta, tb, M, N, K, A.data(), B.data(), C2.data(), false);
    const auto t2 = std::chrono::steady_clock::now();
    if (r < 2) continue;
    ta_s.push_back(std::chrono::duration<double>(t1 - t0).count());
    tb_s.push_back(std::chrono::duration<double>(t2 - t1).count());
    ratio.push_back(ta_s.back() / tb_s.back());
  }
  std::sort(ta_s.begin(), ta_s.end());
  std::sort(tb_s.begin(), tb_s.end());
  std::sort(ratio.begin(), ratio.end());
  const size_t n = ratio.size();
  const double gf = 2.0 * M * N * K / 1e9;
  std::printf("%lldx%lldx%lld threads=%d ta=%d tb=%d: A %.1f B %.1f GFLOP/s (medians); "
              "B/A speed %.3f [quartiles %.3f %.3f]; same=%d\n",
              static_cast<long long>(M), static_cast<long long>(K), static_cast<long long>(N), nt,
              ta, tb, gf / ta_s[n / 2], gf / tb_s[n / 2], ratio[n / 2], ratio[n / 4],
              ratio[3 * n / 4], std::memcmp(C.data(), C2.data(), C.size() * 4) == 0);
  return 0;
}
