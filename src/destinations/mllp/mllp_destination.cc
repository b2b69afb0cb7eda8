#include "destinations/mllp/mllp_destination.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "base/str.h"
#include "hl7v2/message.h"
#include "net/mllp_codec.h"

namespace isthmus::destinations {
namespace {

using Steady = std::chrono::steady_clock;

int MillisLeft(Steady::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now());
  return left.count() <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left.count(), 1 << 30));
}

Steady::time_point DeadlineAfter(absl::Duration d) {
  return Steady::now() + std::chrono::microseconds(absl::ToInt64Microseconds(d));
}

}  // namespace

absl::StatusOr<std::unique_ptr<MllpDestination>> MllpDestination::Create(
    MllpDestinationOptions opts) {
  if (opts.name.empty()) return absl::InvalidArgumentError("mllp destination: empty name");
  if (opts.host.empty() || opts.port < 1 || opts.port > 65535) {
    return absl::InvalidArgumentError(
        base::StrCat("mllp destination ", opts.name, ": needs a host and a port in 1..65535"));
  }
  if (opts.connect_timeout <= absl::ZeroDuration() || opts.ack_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        base::StrCat("mllp destination ", opts.name, ": timeouts must be positive"));
  }
  std::shared_ptr<const net::TlsClientContext> tls_ctx;
  if (opts.tls.has_value()) {
    auto made = net::TlsClientContext::Create(*opts.tls);
    if (!made.ok()) {
      return absl::Status(made.status().code(),
                          base::StrCat("mllp destination ", opts.name, ": ",
                                       std::string(made.status().message())));
    }
    tls_ctx = *std::move(made);
  }
  return std::unique_ptr<MllpDestination>(new MllpDestination(std::move(opts), std::move(tls_ctx)));
}

MllpDestination::~MllpDestination() {
  std::lock_guard<std::mutex> lock(mu_);
  CloseLocked();
}

int MllpDestination::connects() const {
  std::lock_guard<std::mutex> lock(mu_);
  return connects_;
}

void MllpDestination::CloseLocked() {
  if (tls_ != nullptr) tls_->Shutdown();
  tls_.reset();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

absl::Status MllpDestination::ConnectLocked() {
  const std::string where = base::StrCat(opts_.host, ":", opts_.port);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port = base::StrCat(opts_.port);
  int rc = ::getaddrinfo(opts_.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    return absl::UnavailableError(base::StrCat("mllp destination ", opts_.name, ": resolve ",
                                               opts_.host, ": ", gai_strerror(rc)));
  }
  const Steady::time_point deadline = DeadlineAfter(opts_.connect_timeout);
  int last_err = 0;
  bool timed_out = false;
  for (addrinfo* a = res; a != nullptr && fd_ < 0; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last_err = errno;
      continue;
    }
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        last_err = errno;
        ::close(fd);
        continue;
      }
      pollfd p{fd, POLLOUT, 0};
      int n = ::poll(&p, 1, MillisLeft(deadline));
      int so_error = 0;
      socklen_t len = sizeof so_error;
      if (n <= 0) {
        timed_out = n == 0;
        last_err = n == 0 ? ETIMEDOUT : errno;
        ::close(fd);
        continue;
      }
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
      if (so_error != 0) {
        last_err = so_error;
        ::close(fd);
        continue;
      }
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fd_ = fd;
  }
  ::freeaddrinfo(res);
  if (fd_ >= 0 && tls_ctx_ != nullptr) {
    auto tls = net::TlsStream::Handshake(*tls_ctx_, fd_, opts_.host, deadline);
    if (!tls.ok()) {
      CloseLocked();
      return absl::Status(tls.status().code(), base::StrCat("mllp destination ", opts_.name, ": ",
                                                            std::string(tls.status().message())));
    }
    tls_ = *std::move(tls);
  }
  if (fd_ >= 0) {
    ++connects_;
    return absl::OkStatus();
  }
  std::string msg = base::StrCat("mllp destination ", opts_.name, ": connect ", where, ": ",
                                 std::strerror(last_err));
  return timed_out ? absl::DeadlineExceededError(msg) : absl::UnavailableError(msg);
}

absl::StatusOr<std::string> MllpDestination::ExchangeLocked(std::string_view framed,
                                                            bool* before_reply) {
  *before_reply = true;
  const std::string prefix = base::StrCat("mllp destination ", opts_.name, ": ");
  Steady::time_point deadline = DeadlineAfter(opts_.ack_timeout);
  if (tls_ != nullptr) return ExchangeTlsLocked(framed, before_reply);
  size_t off = 0;
  while (off < framed.size()) {
    ssize_t n = ::send(fd_, framed.data() + off, framed.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd_, POLLOUT, 0};
      int r = ::poll(&p, 1, MillisLeft(deadline));
      if (r == 0) return absl::DeadlineExceededError(prefix + "send timed out");
      continue;
    }
    return absl::UnavailableError(base::StrCat(prefix, "send: ", std::strerror(errno)));
  }
  deadline = DeadlineAfter(opts_.ack_timeout);
  net::MllpDecoder decoder(opts_.max_ack_bytes);
  std::vector<net::MllpEvent> events;
  char buf[16384];
  while (true) {
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, MillisLeft(deadline));
    if (r == 0) {
      return absl::DeadlineExceededError(base::StrCat(
          prefix, "no ACK within ", absl::FormatDuration(opts_.ack_timeout)));
    }
    if (r < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(base::StrCat(prefix, "poll: ", std::strerror(errno)));
    }
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) {
      return absl::UnavailableError(base::StrCat(prefix, "receive: ", std::strerror(errno)));
    }
    if (n == 0) return absl::UnavailableError(prefix + "connection closed before the ACK");
    *before_reply = false;
    events.clear();
    decoder.Feed(std::string_view(buf, static_cast<size_t>(n)), &events);
    for (auto& e : events) {
      if (e.kind == net::MllpEvent::kFrame) return std::move(e.payload);
      if (e.kind == net::MllpEvent::kOversized) {
        return absl::UnavailableError(prefix + "ACK larger than max_ack_bytes");
      }
    }
  }
}

absl::StatusOr<std::string> MllpDestination::ExchangeTlsLocked(std::string_view framed,
                                                               bool* before_reply) {
  const std::string prefix = base::StrCat("mllp destination ", opts_.name, ": ");
  auto with_prefix = [&](const absl::Status& s) {
    return absl::Status(s.code(), prefix + std::string(s.message()));
  };
  if (absl::Status s = tls_->Write(framed, DeadlineAfter(opts_.ack_timeout)); !s.ok()) {
    return with_prefix(s);
  }
  const Steady::time_point deadline = DeadlineAfter(opts_.ack_timeout);
  net::MllpDecoder decoder(opts_.max_ack_bytes);
  std::vector<net::MllpEvent> events;
  char buf[16384];
  while (true) {
    absl::StatusOr<size_t> n = tls_->Read(buf, sizeof buf, deadline);
    if (!n.ok()) {
      if (n.status().code() == absl::StatusCode::kDeadlineExceeded) {
        return absl::DeadlineExceededError(base::StrCat(
            prefix, "no ACK within ", absl::FormatDuration(opts_.ack_timeout)));
      }
      return with_prefix(n.status());
    }
    if (*n == 0) return absl::UnavailableError(prefix + "connection closed before the ACK");
    *before_reply = false;
    events.clear();
    decoder.Feed(std::string_view(buf, *n), &events);
    for (auto& e : events) {
      if (e.kind == net::MllpEvent::kFrame) return std::move(e.payload);
      if (e.kind == net::MllpEvent::kOversized) {
        return absl::UnavailableError(prefix + "ACK larger than max_ack_bytes");
      }
    }
  }
}

absl::Status MllpDestination::Deliver(const core::Delivery& d) {
  const std::string prefix = base::StrCat("mllp destination ", opts_.name, ": ");
  std::string expected_id;
  if (opts_.check_control_id) {
    auto msg = hl7v2::Message::Parse(d.payload);
    if (msg.ok()) expected_id = std::string(msg->Get("MSH-10"));
  }
  const std::string framed = net::MllpEncode(d.payload);

  std::lock_guard<std::mutex> lock(mu_);
  std::string reply;
  for (int round = 0;; ++round) {
    if (fd_ >= 0 && tls_ != nullptr) {
      // TLS housekeeping (session tickets) may arrive on an idle connection; anything else
      // means it is stale.
      if (tls_->IdleConnectionBroken()) CloseLocked();
    } else if (fd_ >= 0) {
      // A kept connection must be quiet: EOF, an error or stray bytes mean it is stale.
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 0) != 0) CloseLocked();
    }
    const bool fresh = fd_ < 0;
    if (fresh) {
      absl::Status s = ConnectLocked();
      if (!s.ok()) return s;
    }
    bool before_reply = true;
    absl::StatusOr<std::string> r = ExchangeLocked(framed, &before_reply);
    if (r.ok()) {
      reply = std::move(*r);
      break;
    }
    CloseLocked();
    // The peer dropped a kept connection before answering: it has not processed the message,
    // so one immediate retry on a new connection is safe.
    if (!fresh && before_reply && round == 0 && r.status().code() == absl::StatusCode::kUnavailable) {
      continue;
    }
    return r.status();
  }

  auto ack = hl7v2::Message::Parse(reply);
  if (!ack.ok()) {
    CloseLocked();
    return absl::UnavailableError(prefix + "the reply is not an HL7 message");
  }
  const std::string_view code = ack->Get("MSA-1");
  const std::string_view echoed = ack->Get("MSA-2");
  if (!expected_id.empty() && echoed != expected_id) {
    CloseLocked();  // out of step (e.g. a late ACK of an earlier message)
    return absl::UnavailableError(base::StrCat(prefix, "ACK for control id '", echoed,
                                               "', expected '", expected_id, "'"));
  }
  if (code == "AA" || code == "CA") return absl::OkStatus();
  std::string detail = base::StrCat("peer answered ", code, " (MSA-2 ", echoed);
  if (std::string_view err = ack->Get("ERR-3.1"); !err.empty()) {
    base::StrAppend(&detail, ", ERR-3 ", err);
  }
  detail += ")";
  if (code == "AE" || code == "CE") {
    return opts_.retry_on_ae ? absl::UnavailableError(prefix + detail)
                             : absl::InvalidArgumentError(prefix + detail);
  }
  if (code == "AR" || code == "CR") return absl::InvalidArgumentError(prefix + detail);
  CloseLocked();
  return absl::UnavailableError(base::StrCat(prefix, "reply without a known MSA-1 ('", code, "')"));
}

}  // namespace isthmus::destinations
