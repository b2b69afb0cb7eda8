#include "destinations/mllp/mllp_destination.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hl7v2/ack.h"
#include "hl7v2/message.h"
#include "net/mllp_codec.h"

namespace isthmus::destinations {
namespace {

// A tiny MLLP peer on 127.0.0.1:0, one connection at a time. `reply` maps each received
// message to what to do: an ACK code to answer with, "hang" (no answer), "close" (drop the
// connection), "wrong-id" (AA for another control id), "garbage".
class TinyMllpServer {
 public:
  explicit TinyMllpServer(std::function<std::string(const std::string&)> reply)
      : reply_(std::move(reply)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(fd_, 8);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  ~TinyMllpServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  std::vector<std::string> received() const {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }
  int accepted() const { return accepted_; }
  int closed() const { return closed_; }
  // Closes the current connection from the server side (as an idle timeout would).
  void DropConnection() { drop_ = true; }

 private:
  bool WaitReadable(int fd) {
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 20) > 0) return true;
      if (drop_) return false;
    }
    return false;
  }
  void Run() {
    while (WaitReadable(fd_)) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      accepted_++;
      Serve(c);
      ::close(c);
      drop_ = false;
      closed_++;
    }
  }
  void Serve(int c) {
    net::MllpDecoder dec(1 << 20);
    std::vector<net::MllpEvent> events;
    char buf[4096];
    while (WaitReadable(c)) {
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) return;
      events.clear();
      dec.Feed(std::string_view(buf, static_cast<size_t>(n)), &events);
      for (auto& e : events) {
        if (e.kind != net::MllpEvent::kFrame) continue;
        {
          std::lock_guard<std::mutex> lock(mu_);
          received_.push_back(e.payload);
        }
        std::string what = reply_(e.payload);
        if (what == "hang") continue;
        if (what == "close") return;
        std::string out;
        if (what == "garbage") {
          out = "not hl7";
        } else {
          auto msg = hl7v2::Message::Parse(e.payload);
          hl7v2::AckOptions o;
          o.code = what == "AE"   ? hl7v2::AckCode::kAE
                   : what == "AR" ? hl7v2::AckCode::kAR
                   : what == "CA" ? hl7v2::AckCode::kCA
                                  : hl7v2::AckCode::kAA;
          out = hl7v2::BuildAck(*msg, o);
          if (what == "wrong-id") {
            std::string copy = out;
            auto parsed = hl7v2::Message::Parse(copy);
            (void)parsed->Set("MSA-2", "OTHER");
            out = parsed->Encode();
          }
        }
        std::string framed = net::MllpEncode(out);
        ::send(c, framed.data(), framed.size(), MSG_NOSIGNAL);
      }
    }
  }

  std::function<std::string(const std::string&)> reply_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false}, drop_{false};
  std::atomic<int> accepted_{0}, closed_{0};
  mutable std::mutex mu_;
  std::vector<std::string> received_;
  std::thread thread_;
};

std::string Msg(std::string_view control_id) {
  return "MSH|^~\\&|ISTHMUS|HOSP|RIS|HOSP|20240101120000||ORU^R01|" + std::string(control_id) +
         "|P|2.5\rPID|1||123\r";
}

core::Delivery D(const std::string& payload) {
  core::Delivery d;
  d.queue_id = 1;
  d.message_id = 1;
  d.payload = payload;
  return d;
}

MllpDestinationOptions Opts(int port) {
  MllpDestinationOptions o;
  o.name = "ris";
  o.host = "127.0.0.1";
  o.port = port;
  o.ack_timeout = absl::Milliseconds(300);  // real sockets: the hang test waits this long
  o.connect_timeout = absl::Seconds(5);
  return o;
}

TEST(MllpDestinationTest, AaIsDeliveredOverOneKeptConnection) {
  TinyMllpServer server([](const std::string&) { return "AA"; });
  auto d = MllpDestination::Create(Opts(server.port()));
  ASSERT_TRUE(d.ok()) << d.status();
  const std::string m1 = Msg("C1"), m2 = Msg("C2");
  EXPECT_TRUE((*d)->Deliver(D(m1)).ok());
  EXPECT_TRUE((*d)->Deliver(D(m2)).ok());
  EXPECT_EQ((*d)->connects(), 1);
  EXPECT_THAT(server.received(), ::testing::ElementsAre(m1, m2));
}

TEST(MllpDestinationTest, CommitAcceptIsDelivered) {
  TinyMllpServer server([](const std::string&) { return "CA"; });
  auto d = MllpDestination::Create(Opts(server.port()));
  const std::string m = Msg("C1");
  EXPECT_TRUE((*d)->Deliver(D(m)).ok());
}

TEST(MllpDestinationTest, AeIsDeadLetteredUnlessRetryOnAe) {
  TinyMllpServer server([](const std::string&) { return "AE"; });
  auto d = MllpDestination::Create(Opts(server.port()));
  const std::string m = Msg("C1");
  absl::Status s = (*d)->Deliver(D(m));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("peer answered AE (MSA-2 C1"));
  EXPECT_FALSE(core::IsRetryable(s));

  d->reset();  // the tiny server serves one connection at a time
  MllpDestinationOptions o = Opts(server.port());
  o.retry_on_ae = true;
  auto retrying = MllpDestination::Create(o);
  s = (*retrying)->Deliver(D(m));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
}

TEST(MllpDestinationTest, ArIsNeverRetried) {
  TinyMllpServer server([](const std::string&) { return "AR"; });
  MllpDestinationOptions o = Opts(server.port());
  o.retry_on_ae = true;
  auto d = MllpDestination::Create(o);
  const std::string m = Msg("C1");
  absl::Status s = (*d)->Deliver(D(m));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

TEST(MllpDestinationTest, NoAckTimesOutThenReconnects) {
  std::atomic<bool> hang{true};
  TinyMllpServer server([&](const std::string&) { return hang ? "hang" : "AA"; });
  auto d = MllpDestination::Create(Opts(server.port()));
  const std::string m = Msg("C1");
  absl::Status s = (*d)->Deliver(D(m));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_TRUE(core::IsRetryable(s));
  hang = false;
  EXPECT_TRUE((*d)->Deliver(D(m)).ok());
  EXPECT_EQ((*d)->connects(), 2);  // the timed-out connection was not reused
}

TEST(MllpDestinationTest, ConnectionRefusedIsRetryable) {
  int port;
  {
    TinyMllpServer server([](const std::string&) { return "AA"; });
    port = server.port();
  }  // closed: nothing listens there now
  auto d = MllpDestination::Create(Opts(port));
  const std::string m = Msg("C1");
  absl::Status s = (*d)->Deliver(D(m));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("Connection refused"));
}

TEST(MllpDestinationTest, PeerClosingAnIdleConnectionIsRepairedTransparently) {
  TinyMllpServer server([](const std::string&) { return "AA"; });
  auto d = MllpDestination::Create(Opts(server.port()));
  const std::string m1 = Msg("C1"), m2 = Msg("C2");
  ASSERT_TRUE((*d)->Deliver(D(m1)).ok());
  server.DropConnection();
  while (server.closed() < 1) std::this_thread::yield();  // the server hung up
  EXPECT_TRUE((*d)->Deliver(D(m2)).ok());
  EXPECT_EQ((*d)->connects(), 2);
  EXPECT_THAT(server.received(), ::testing::ElementsAre(m1, m2));
}

TEST(MllpDestinationTest, AckForAnotherMessageIsRetryable) {
  TinyMllpServer server([](const std::string&) { return "wrong-id"; });
  auto d = MllpDestination::Create(Opts(server.port()));
  const std::string m = Msg("C1");
  absl::Status s = (*d)->Deliver(D(m));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("expected 'C1'"));
}

TEST(MllpDestinationTest, GarbageReplyIsRetryable) {
  TinyMllpServer server([](const std::string&) { return "garbage"; });
  auto d = MllpDestination::Create(Opts(server.port()));
  const std::string m = Msg("C1");
  EXPECT_EQ((*d)->Deliver(D(m)).code(), absl::StatusCode::kUnavailable);
}

TEST(MllpDestinationTest, RejectsBadOptions) {
  EXPECT_FALSE(MllpDestination::Create(Opts(0)).ok());
  MllpDestinationOptions o = Opts(2575);
  o.host.clear();
  EXPECT_FALSE(MllpDestination::Create(o).ok());
}

}  // namespace
}  // namespace isthmus::destinations
