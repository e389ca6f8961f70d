// Threads for the onnxep C++ kernels: a small persistent pool of std::threads.
//
// One parallel region runs at a time; a region started while another is running (from a
// second Python thread, or nested inside a task) runs serially on its caller instead of
// waiting, so kernels never deadlock. Workers are created lazily, up to the largest thread
// count asked for, and a forked child process starts a fresh pool.
#pragma once

#include <cstdint>
#include <functional>

namespace onnxep {

// The number of CPUs this process may run on (sched_getaffinity), at least 1.
int default_threads();

// 0 or less means default_threads(); otherwise the value clamped to [1, 256].
int resolve_threads(int requested);

// Runs fn(task) for every task in [0, n_tasks) on up to `threads` threads, the caller
// included, and returns when all are done. The first exception a task throws is rethrown.
void parallel_for(std::int64_t n_tasks, int threads, const std::function<void(std::int64_t)>& fn);

// Splits [0, n) into at most `threads` contiguous chunks of at least `grain` items and runs
// fn(begin, end) on each.
void parallel_range(std::int64_t n, std::int64_t grain, int threads,
                    const std::function<void(std::int64_t, std::int64_t)>& fn);

}  // namespace onnxep
