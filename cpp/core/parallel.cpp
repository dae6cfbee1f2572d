#include "core/parallel.h"

#include <atomic>

namespace ember {

namespace {
int initial_threads() {
  int n = omp_get_max_threads();
  return n > 0 ? n : 1;
}
std::atomic<int> g_threads{initial_threads()};
}  // namespace

int num_threads() { return g_threads.load(std::memory_order_relaxed); }

void set_num_threads(int n) {
  if (n < 1) n = 1;
  g_threads.store(n, std::memory_order_relaxed);
  omp_set_num_threads(n);
}

int measured_team_size() {
  std::atomic<int> team{1};
  parallel_for(1 << 20, 1 << 10, [&](int64_t, int64_t) {
    team.store(omp_in_parallel() ? omp_get_num_threads() : 1);
  });
  return team.load();
}

}  // namespace ember
