// A small fork-join pool for the CPU path. The calling thread takes part, so a pool of size N
// starts N-1 workers. Workers spin briefly after each job (a push issues a few jobs in a row), then
// sleep on a condition variable, so an idle pool costs no CPU. A worker that wakes up late (the
// machine is busy) finds the job closed and skips it: the caller never waits for a worker that has
// not started, it only waits for items already running.
//
// Thread safety: ParallelFor may be called from any thread. A call made while another call is
// running (from a task inside the pool, or from a second thread) runs serially on its caller, so
// nesting never deadlocks.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace cmer_edge {

class ThreadPool {
 public:
  // num_threads: total threads including the caller; <= 0 picks std::thread::hardware_concurrency().
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(i) for every i in [0, n), items handed out one at a time; returns when all are done.
  // The first exception thrown by fn is rethrown on the caller after every item has finished.
  void ParallelFor(int64_t n, const std::function<void(int64_t)>& fn);

 private:
  void WorkerLoop();
  void RunItems();

  std::vector<std::thread> workers_;
  std::mutex call_mu_;  // one ParallelFor at a time uses the workers
  std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable done_;
  uint64_t generation_ = 0;            // guarded by mu_; bumped per job
  std::atomic<uint64_t> published_{0};  // mirrors generation_ for the spin phase
  bool stop_ = false;
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  std::atomic<int64_t> next_{0};
  bool job_open_ = false;              // guarded by mu_: workers may still join the job
  std::atomic<int> active_workers_{0};  // workers inside the current job (changed under mu_)
  std::exception_ptr error_;
  std::mutex error_mu_;
};

}  // namespace cmer_edge
