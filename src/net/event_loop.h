// The network event loop: one Asio io_context run by N threads. Public headers see only this
// opaque wrapper; code that needs Asio includes net/asio_loop.h in its .cc (ARCHITECTURE.md §5:
// keep Asio out of widely included headers).
// Thread-safety: Run() from one thread (it starts the others); Stop() from any thread.
#pragma once

#include <memory>

namespace isthmus::net {

class EventLoop {
 public:
  explicit EventLoop(int threads);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Runs the loop on `threads` threads (the caller's included) until Stop().
  void Run();
  // Makes Run() return once handlers in progress finish.
  void Stop();

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
  int threads_;
};

}  // namespace isthmus::net
