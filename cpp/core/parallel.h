// ember/core/parallel: the one owner of OpenMP in ember.
//
// Rules every kernel follows:
//  * parallelism is one level deep: a kernel either runs a parallel_for or calls gemm() (which runs
//    its own parallel_for over fixed blocks) -- never both nested. A parallel_for inside another
//    runs serially on its thread, so a kernel may hand whole gemm() calls to threads (run_pair,
//    below, does at two threads);
//  * work is split only over independent outputs, and how it is split never changes the order of
//    any floating-point reduction, so results are bitwise identical at any thread count;
//  * below kParallelWork (an estimate of flops) a loop stays on the calling thread: a parallel
//    region costs a few microseconds, more than small ops take in total;
//  * compute threads run with denormals flushed to zero (restored afterwards on the caller).
#pragma once

#include <algorithm>
#include <cstdint>
#include <omp.h>
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define EMBER_HAVE_MXCSR 1
#endif

namespace ember {

int num_threads();
void set_num_threads(int n);
// The size of the OpenMP team a parallel_for of ample work gets now (for tests and diagnostics).
int measured_team_size();

constexpr int64_t kParallelWork = 1 << 16;
// Each busy thread of a parallel_for gets at least this much work (rough flops), so a loop of
// W work keeps min(threads, W / kWorkPerThread) threads busy. At two threads that is the rule
// above (two threads from kParallelWork on). The rest of the team joins the region idle.
constexpr int64_t kWorkPerThread = kParallelWork / 2;

// Sets flush-to-zero and denormals-are-zero for the current thread; restores on destruction.
struct DenormalGuard {
#ifdef EMBER_HAVE_MXCSR
  unsigned int saved;
  DenormalGuard() : saved(_mm_getcsr()) { _mm_setcsr(saved | 0x8040u); }
  ~DenormalGuard() { _mm_setcsr(saved); }
#endif
};

// Runs f(begin, end) over [0, n) in contiguous chunks, one chunk per busy thread.
// cost_per_item: rough flops per item, used only against the work thresholds.
//
// The region always has the whole team (num_threads()), even when fewer threads get a chunk
// (n or the work is small): libgomp rebuilds its team whenever a region asks for a different
// size, and that is what cost, not the idle threads. On a 16-core machine (device run, C++
// loop of regions) a region of 16 threads cost 6.4 us, but alternating 16 and 2 threads cost
// 443 us a region (92 us for 8 and 2); an LSTM step (W6) mixes regions of n < 16 items with
// larger ones and ran 3x slower at 16 threads than at 8. With the fixed team, at 16 threads:
// W6 2,989 -> 12,663 samples/s, W2 22,176 -> 97,493, W1 59,419 -> 109,011, W5 41,593 ->
// 72,897 (ember alone, one process each). At two threads nothing changes (n >= 2 there).
template <class F>
void parallel_for(int64_t n, int64_t cost_per_item, F&& f) {
  if (n <= 0) return;
  const int nt = num_threads();
  const int64_t work = n * std::max<int64_t>(cost_per_item, 1);
  const int64_t busy = std::min<int64_t>({int64_t(nt), n, work / kWorkPerThread});
  if (busy <= 1 || omp_in_parallel()) {
    DenormalGuard guard;
    f(int64_t(0), n);
    return;
  }
  // One chunk per busy thread; the split affects only who computes an output, not how.
#pragma omp parallel num_threads(nt)
  {
    const int64_t t = omp_get_thread_num();
    const int64_t T = std::min<int64_t>(busy, omp_get_num_threads());
    if (t < T) {
      DenormalGuard guard;
      const int64_t b = n * t / T, e = n * (t + 1) / T;
      if (b < e) f(b, e);
    }
  }
}

// Runs a() and b(), two independent tasks of about the same cost (cost: rough flops of each,
// for the work threshold). With exactly two threads they run one per thread, each serially
// (a parallel_for inside them stays on its thread): no uneven split of each task between the
// threads and no barrier inside them. Otherwise a() then b(), each free to use every thread
// (with more threads, one each would leave the rest idle). The callers' results do not depend
// on which way they ran.
template <class A, class B>
void run_pair(int64_t cost, A&& a, B&& b) {
  if (num_threads() == 2 && !omp_in_parallel()) {
    parallel_for(2, cost, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) i == 0 ? a() : b();
    });
  } else {
    a();
    b();
  }
}

}  // namespace ember
