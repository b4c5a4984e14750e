#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>

namespace cmer_edge {
namespace {

thread_local bool tls_in_pool = false;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// How long a worker polls for the next job, and the caller for running items, before sleeping.
constexpr auto kSpin = std::chrono::microseconds(50);

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    ++generation_;
    published_.store(generation_, std::memory_order_release);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::RunItems() {
  for (;;) {
    const int64_t i = next_.fetch_add(1, std::memory_order_relaxed);
    if (i >= n_) return;
    try {
      (*fn_)(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mu_);
      if (!error_) error_ = std::current_exception();
    }
  }
}

void ThreadPool::WorkerLoop() {
  tls_in_pool = true;
  uint64_t seen = 0;
  for (;;) {
    const auto spin_until = std::chrono::steady_clock::now() + kSpin;
    while (published_.load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() < spin_until) {
      CpuRelax();
    }
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return generation_ != seen; });
      seen = generation_;
      if (stop_) return;
      if (!job_open_) continue;  // woke too late: the caller finished this job alone
      active_workers_.fetch_add(1, std::memory_order_relaxed);
    }
    RunItems();
    std::lock_guard<std::mutex> lock(mu_);
    if (active_workers_.fetch_sub(1, std::memory_order_acq_rel) == 1) done_.notify_one();
  }
}

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t)>& fn) {
  if (n <= 0) return;
  std::unique_lock<std::mutex> call(call_mu_, std::defer_lock);
  if (workers_.empty() || n == 1 || tls_in_pool || !call.try_lock()) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = &fn;
    n_ = n;
    next_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    job_open_ = true;
    ++generation_;
    published_.store(generation_, std::memory_order_release);
  }
  wake_.notify_all();
  tls_in_pool = true;
  RunItems();
  tls_in_pool = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_open_ = false;  // every item is claimed: no late worker joins now
  }
  const auto spin_until = std::chrono::steady_clock::now() + kSpin;
  while (active_workers_.load(std::memory_order_acquire) != 0 && std::chrono::steady_clock::now() < spin_until) {
    CpuRelax();
  }
  {
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [&] { return active_workers_.load(std::memory_order_acquire) == 0; });
    fn_ = nullptr;
  }
  if (error_) std::rethrow_exception(error_);
}

}  // namespace cmer_edge
