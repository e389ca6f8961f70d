// The thread pool behind onnxep::parallel_for (see parallel.hpp).
#include "onnxep/parallel.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace onnxep {
namespace {

thread_local bool in_region = false;  // this thread runs a task of a parallel region

// Threads spin this long before sleeping on a condition variable: consecutive kernels (one
// ONNX node after another) then find the workers awake. Waking a sleeping thread costs tens
// of microseconds, much more when a virtual CPU has to be woken.
constexpr std::chrono::microseconds kSpin{200};

template <class Ready>
void spin_until(Ready ready) {
  const auto end = std::chrono::steady_clock::now() + kSpin;
  for (int i = 1; !ready(); ++i) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
    if (i % 64 == 0 && std::chrono::steady_clock::now() > end) return;
  }
}

class Pool {
 public:
  Pool() : pid_(getpid()) {}
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  pid_t pid() const { return pid_; }

  // False when another region is running: the caller then runs the tasks itself.
  bool run(std::int64_t n_tasks, int threads, const std::function<void(std::int64_t)>& fn) {
    std::unique_lock<std::mutex> region(dispatch_, std::try_to_lock);
    if (!region.owns_lock()) return false;
    const int helpers = static_cast<int>(std::min<std::int64_t>(threads - 1, n_tasks - 1));
    grow(helpers);
    {
      std::lock_guard<std::mutex> lock(m_);
      fn_ = &fn;
      n_tasks_ = n_tasks;
      next_.store(0);
      participants_ = helpers;
      finished_.store(0);
      error_ = nullptr;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    in_region = true;
    drain(fn);
    in_region = false;
    spin_until([&] { return finished_.load(std::memory_order_acquire) == helpers; });
    std::exception_ptr error;
    {
      std::unique_lock<std::mutex> lock(m_);
      done_.wait(lock, [this] { return finished_.load() == participants_; });
      fn_ = nullptr;
      error = error_;
    }
    if (error) std::rethrow_exception(error);
    return true;
  }

 private:
  void grow(int helpers) {
    while (static_cast<int>(workers_.size()) < helpers) {
      const int index = static_cast<int>(workers_.size());
      workers_.emplace_back([this, index] { loop(index); });
      workers_.back().detach();  // the pool lives as long as the process
    }
  }

  void drain(const std::function<void(std::int64_t)>& fn) {
    for (;;) {
      const std::int64_t task = next_.fetch_add(1);
      if (task >= n_tasks_) return;
      try {
        fn(task);
      } catch (...) {
        std::lock_guard<std::mutex> lock(m_);
        if (!error_) error_ = std::current_exception();
      }
    }
  }

  void loop(int index) {
    std::uint64_t seen = 0;
    in_region = true;  // a worker never starts a nested region
    for (;;) {
      spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; });
      std::unique_lock<std::mutex> lock(m_);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
      seen = generation_.load();
      if (index >= participants_) continue;
      const std::function<void(std::int64_t)>* fn = fn_;
      lock.unlock();
      drain(*fn);
      lock.lock();
      if (finished_.fetch_add(1) + 1 == participants_) done_.notify_one();
    }
  }

  const pid_t pid_;
  std::mutex dispatch_;  // held for the length of one region
  std::mutex m_;
  std::condition_variable wake_;
  std::condition_variable done_;
  std::vector<std::thread> workers_;
  const std::function<void(std::int64_t)>* fn_ = nullptr;
  std::int64_t n_tasks_ = 0;
  std::atomic<std::int64_t> next_{0};
  int participants_ = 0;
  std::atomic<int> finished_{0};
  std::atomic<std::uint64_t> generation_{0};
  std::exception_ptr error_;
};

Pool& pool() {
  static std::mutex guard;
  static Pool* current = nullptr;  // never freed: detached workers use it until exit
  std::lock_guard<std::mutex> lock(guard);
  if (current == nullptr || current->pid() != getpid()) current = new Pool();
  return *current;
}

}  // namespace

int default_threads() {
  static const int count = [] {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }();
  return count;
}

int resolve_threads(int requested) {
  if (requested <= 0) return default_threads();
  return std::min(requested, 256);
}

void parallel_for(std::int64_t n_tasks, int threads, const std::function<void(std::int64_t)>& fn) {
  if (n_tasks <= 0) return;
  if (threads > 1 && n_tasks > 1 && !in_region && pool().run(n_tasks, threads, fn)) return;
  for (std::int64_t task = 0; task < n_tasks; ++task) fn(task);
}

void parallel_range(std::int64_t n, std::int64_t grain, int threads,
                    const std::function<void(std::int64_t, std::int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<std::int64_t>(grain, 1);
  const std::int64_t chunks = std::max<std::int64_t>(
      1, std::min<std::int64_t>(resolve_threads(threads), n / grain));
  const std::int64_t step = (n + chunks - 1) / chunks;
  parallel_for(chunks, static_cast<int>(chunks), [&](std::int64_t c) {
    const std::int64_t begin = c * step;
    const std::int64_t end = std::min(n, begin + step);
    if (begin < end) fn(begin, end);
  });
}

}  // namespace onnxep
