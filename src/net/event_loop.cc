#include "net/event_loop.h"

#include <thread>
#include <vector>

#include "base/thread_name.h"
#include "net/asio_loop.h"

namespace isthmus::net {

EventLoop::EventLoop(int threads) : impl_(std::make_unique<Impl>()), threads_(threads < 1 ? 1 : threads) {}
EventLoop::~EventLoop() = default;

void EventLoop::Run() {
  std::vector<std::thread> others;
  for (int i = 1; i < threads_; ++i) {
    others.emplace_back([this, i] {
      base::SetThreadName("net-" + std::to_string(i));
      impl_->io.run();
    });
  }
  impl_->io.run();
  for (auto& t : others) t.join();
}

void EventLoop::Stop() {
  impl_->work.reset();
  impl_->io.stop();
}

}  // namespace isthmus::net
