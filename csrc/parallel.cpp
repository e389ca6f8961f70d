// The thread pool behind onnxep::parallel_for (see parallel.hpp).
#include "onnxep/parallel.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
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

// One parallel region. Workers hold it through a shared_ptr, so one that wakes after the
// region has finished finds no task left (and never touches the caller's function).
struct Region {
  const std::function<void(std::int64_t)>* fn;
  std::int64_t n_tasks;
  int helpers;
  std::atomic<std::int64_t> next{0};
  std::atomic<std::int64_t> completed{0};
  std::mutex error_mutex;
  std::exception_ptr error;
};

class Pool {
 public:
  Pool() : pid_(getpid()) {}
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  pid_t pid() const { return pid_; }

  // False when another region is running: the caller then runs the tasks itself. The caller
  // works on the tasks too and waits only for tasks that were started, never for a worker
  // that has not woken up yet.
  bool run(std::int64_t n_tasks, int threads, const std::function<void(std::int64_t)>& fn) {
    std::unique_lock<std::mutex> region(dispatch_, std::try_to_lock);
    if (!region.owns_lock()) return false;
    const int helpers = static_cast<int>(std::min<std::int64_t>(threads - 1, n_tasks - 1));
    grow(helpers);
    auto r = std::make_shared<Region>();
    r->fn = &fn;
    r->n_tasks = n_tasks;
    r->helpers = helpers;
    {
      std::lock_guard<std::mutex> lock(m_);
      current_ = r;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    in_region = true;
    drain(*r);
    in_region = false;
    spin_until([&] { return r->completed.load(std::memory_order_acquire) == n_tasks; });
    {
      std::unique_lock<std::mutex> lock(m_);
      done_.wait(lock, [&] { return r->completed.load() == n_tasks; });
    }
    if (r->error) std::rethrow_exception(r->error);
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

  void drain(Region& r) {
    for (;;) {
      const std::int64_t task = r.next.fetch_add(1);
      if (task >= r.n_tasks) return;
      try {
        (*r.fn)(task);
      } catch (...) {
        std::lock_guard<std::mutex> lock(r.error_mutex);
        if (!r.error) r.error = std::current_exception();
      }
      if (r.completed.fetch_add(1, std::memory_order_acq_rel) + 1 == r.n_tasks) {
        std::lock_guard<std::mutex> lock(m_);  // no lost wake-up: the caller checks under m_
        done_.notify_all();
      }
    }
  }

  void loop(int index) {
    std::uint64_t seen = 0;
    in_region = true;  // a worker never starts a nested region
    for (;;) {
      spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; });
      std::shared_ptr<Region> r;
      {
        std::unique_lock<std::mutex> lock(m_);
        wake_.wait(lock, [&] { return generation_.load() != seen; });
        seen = generation_.load();
        if (index >= current_->helpers) continue;
        r = current_;
      }
      drain(*r);
    }
  }

  const pid_t pid_;
  std::mutex dispatch_;  // held for the length of one region
  std::mutex m_;         // guards current_ and the condition variables
  std::condition_variable wake_;
  std::condition_variable done_;
  std::vector<std::thread> workers_;
  std::shared_ptr<Region> current_;
  std::atomic<std::uint64_t> generation_{0};
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
