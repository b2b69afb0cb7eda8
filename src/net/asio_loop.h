// Asio access to an EventLoop, for .cc files only (never include from a header).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/executor_work_guard.hpp>

#include "net/event_loop.h"

namespace isthmus::net {

struct EventLoop::Impl {
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
};

inline boost::asio::io_context& IoContext(EventLoop& loop) { return loop.impl().io; }

}  // namespace isthmus::net
