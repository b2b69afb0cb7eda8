// A fixed pool of worker threads running queued tasks in FIFO order. Each worker has an index
// (0..size-1) so callers can keep per-worker state (e.g. one Lua state per worker).
// Thread-safety: Submit from any thread. The destructor runs every task already submitted,
// then joins the workers.
//
// Example:
//   base::ThreadPool pool(2);
//   pool.Submit([](int worker) { Work(worker); });
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/thread_name.h"

namespace isthmus::base {

class ThreadPool {
 public:
  using Task = std::function<void(int worker)>;

  // Workers are named `name`-0, `name`-1, ... (base/thread_name.h).
  explicit ThreadPool(int threads, std::string_view name = "pool") {
    if (threads < 1) threads = 1;
    for (int i = 0; i < threads; ++i) {
      workers_.emplace_back([this, i, n = std::string(name) + "-" + std::to_string(i)] {
        SetThreadName(n);
        Loop(i);
      });
    }
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void Submit(Task task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

  int size() const { return static_cast<int>(workers_.size()); }

  size_t pending() const {
    std::lock_guard<std::mutex> lock(mu_);
    return tasks_.size();
  }

 private:
  void Loop(int index) {
    while (true) {
      Task task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
        if (tasks_.empty()) return;  // stopping and drained
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task(index);
    }
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> tasks_;  // guarded by mu_
  bool stopping_ = false;   // guarded by mu_
  std::vector<std::thread> workers_;
};

}  // namespace isthmus::base
