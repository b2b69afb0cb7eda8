#include "destinations/mllp/mllp_destination.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hl7v2/ack.h"
#include "hl7v2/message.h"
#include "net/asio_tls.h"
#include "net/mllp_codec.h"
#include "net/test_tls.h"

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
          // Random bytes (e.g. a TLS ClientHello sent to this plain peer) can happen to look
          // like a frame: answer those the way a real receiver would, with a NAK.
          out = msg.ok() ? hl7v2::BuildAck(*msg, o) : hl7v2::BuildNakForUnparsable(e.payload, o);
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

// ---- TLS -----------------------------------------------------------------------------------

// A tiny MLLP-over-TLS peer on 127.0.0.1:0 (blocking OpenSSL, one connection at a time) that
// answers AA to every message. Counts handshakes that failed.
class TinyTlsMllpServer {
 public:
  explicit TinyTlsMllpServer(const net::TlsServerOptions& tls) {
    auto ctx = net::MakeTlsServerContext(tls);
    EXPECT_TRUE(ctx.ok()) << ctx.status();
    ctx_ = std::move(ctx).value();
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
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
  ~TinyTlsMllpServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  int handshakes_ok() const { return ok_; }
  int handshakes_failed() const { return failed_; }
  std::vector<std::string> received() const {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }

 private:
  bool WaitReadable(int fd) {
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 20) > 0) return true;
    }
    return false;
  }
  void Run() {
    while (WaitReadable(fd_)) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      timeval tv{2, 0};
      ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      SSL* ssl = SSL_new(ctx_->native_handle());
      SSL_set_fd(ssl, c);
      if (SSL_accept(ssl) == 1) {
        ok_++;
        Serve(ssl, c);
        SSL_shutdown(ssl);
      } else {
        failed_++;
      }
      ERR_clear_error();
      SSL_free(ssl);
      ::close(c);
    }
  }
  void Serve(SSL* ssl, int c) {
    net::MllpDecoder dec(1 << 20);
    std::vector<net::MllpEvent> events;
    char buf[4096];
    while (SSL_pending(ssl) > 0 || WaitReadable(c)) {
      int n = SSL_read(ssl, buf, sizeof buf);
      if (n <= 0) return;  // closed, or a TLS 1.3 client certificate refused after the handshake
      events.clear();
      dec.Feed(std::string_view(buf, static_cast<size_t>(n)), &events);
      for (auto& e : events) {
        if (e.kind != net::MllpEvent::kFrame) continue;
        {
          std::lock_guard<std::mutex> lock(mu_);
          received_.push_back(e.payload);
        }
        auto msg = hl7v2::Message::Parse(e.payload);
        std::string framed = net::MllpEncode(hl7v2::BuildAck(*msg, hl7v2::AckOptions{}));
        SSL_write(ssl, framed.data(), static_cast<int>(framed.size()));
      }
    }
  }

  std::unique_ptr<boost::asio::ssl::context> ctx_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> ok_{0}, failed_{0};
  mutable std::mutex mu_;
  std::vector<std::string> received_;
  std::thread thread_;
};

class MllpDestinationTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("mllp_tls_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    auto good = net::MakeTestPki(dir_, "good");
    ASSERT_TRUE(good.ok()) << good.status();
    pki_ = *good;
    auto other = net::MakeTestPki(dir_, "other");
    ASSERT_TRUE(other.ok()) << other.status();
    other_ = *other;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  net::TlsServerOptions Server(bool require_client_cert) const {
    net::TlsServerOptions o;
    o.cert_file = pki_.server_cert;
    o.key_file = pki_.server_key;
    if (require_client_cert) {
      o.ca_file = pki_.ca_cert;
      o.require_client_cert = true;
    }
    return o;
  }
  MllpDestinationOptions TlsOpts(int port, net::TlsClientSettings tls) const {
    MllpDestinationOptions o = Opts(port);
    o.ack_timeout = absl::Seconds(5);
    o.tls = std::move(tls);
    return o;
  }

  std::filesystem::path dir_;
  net::TestPki pki_, other_;
};

TEST_F(MllpDestinationTlsTest, AaOverTlsOnOneKeptConnection) {
  TinyTlsMllpServer server(Server(false));
  auto d = MllpDestination::Create(TlsOpts(server.port(), {.ca_file = pki_.ca_cert}));
  ASSERT_TRUE(d.ok()) << d.status();
  const std::string m1 = Msg("T1"), m2 = Msg("T2");
  absl::Status s = (*d)->Deliver(D(m1));
  EXPECT_TRUE(s.ok()) << s;
  s = (*d)->Deliver(D(m2));  // TLS 1.3 session tickets on the idle connection are not "stale"
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ((*d)->connects(), 1);
  EXPECT_THAT(server.received(), ::testing::ElementsAre(m1, m2));
}

TEST_F(MllpDestinationTlsTest, MutualTlsWithClientCertificate) {
  TinyTlsMllpServer server(Server(true));
  auto d = MllpDestination::Create(TlsOpts(
      server.port(),
      {.ca_file = pki_.ca_cert, .cert_file = pki_.client_cert, .key_file = pki_.client_key}));
  ASSERT_TRUE(d.ok()) << d.status();
  const std::string m = Msg("M1");
  absl::Status s = (*d)->Deliver(D(m));
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_THAT(server.received(), ::testing::ElementsAre(m));
}

TEST_F(MllpDestinationTlsTest, MutualTlsWithoutClientCertificateIsRefused) {
  TinyTlsMllpServer server(Server(true));
  auto d = MllpDestination::Create(TlsOpts(server.port(), {.ca_file = pki_.ca_cert}));
  ASSERT_TRUE(d.ok()) << d.status();
  const std::string m = Msg("M2");
  absl::Status s = (*d)->Deliver(D(m));
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(core::IsRetryable(s)) << s;  // the peer's refusal: not our verification
  EXPECT_TRUE(server.received().empty());
}

TEST_F(MllpDestinationTlsTest, WrongCaIsDeadLetteredWithAClearReason) {
  TinyTlsMllpServer server(Server(false));
  auto d = MllpDestination::Create(TlsOpts(server.port(), {.ca_file = other_.ca_cert}));
  ASSERT_TRUE(d.ok()) << d.status();
  const std::string m = Msg("W1");
  absl::Status s = (*d)->Deliver(D(m));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_FALSE(core::IsRetryable(s));
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("certificate verification failed"));
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("mllp destination ris"));
  EXPECT_TRUE(server.received().empty());
}

TEST_F(MllpDestinationTlsTest, HostNameMismatchIsRefused) {
  TinyTlsMllpServer server(Server(false));
  auto d = MllpDestination::Create(
      TlsOpts(server.port(), {.ca_file = pki_.ca_cert, .server_name = "ris.example.org"}));
  ASSERT_TRUE(d.ok()) << d.status();
  const std::string m = Msg("H1");
  absl::Status s = (*d)->Deliver(D(m));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("certificate verification failed"));
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("mismatch"));
  EXPECT_TRUE(server.received().empty());

  // The certificate names localhost: connecting by that name verifies.
  MllpDestinationOptions o = TlsOpts(server.port(), {.ca_file = pki_.ca_cert});
  o.host = "localhost";
  auto by_name = MllpDestination::Create(o);
  if (!(*by_name)->Deliver(D(m)).ok()) {
    // localhost may resolve to ::1 first where nothing listens; the IPv4 name must still pass.
    o.host = "127.0.0.1";
    o.tls->server_name = "localhost";
    auto pinned = MllpDestination::Create(o);
    s = (*pinned)->Deliver(D(m));
    EXPECT_TRUE(s.ok()) << s;
  }
}

TEST_F(MllpDestinationTlsTest, PlainPeerIsAHandshakeFailureThatIsRetried) {
  TinyMllpServer plain([](const std::string&) { return "AA"; });
  MllpDestinationOptions o = TlsOpts(plain.port(), {.ca_file = pki_.ca_cert});
  o.connect_timeout = absl::Milliseconds(500);
  auto d = MllpDestination::Create(o);
  absl::Status s = (*d)->Deliver(D(Msg("P1")));
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(core::IsRetryable(s)) << s;
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("TLS handshake"));
}

TEST_F(MllpDestinationTlsTest, MissingTlsFilesFailAtCreate) {
  auto d = MllpDestination::Create(TlsOpts(2575, {.ca_file = (dir_ / "nope.pem").string()}));
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(d.status().message()), ::testing::HasSubstr("nope.pem"));
  d = MllpDestination::Create(TlsOpts(
      2575, {.cert_file = pki_.client_cert, .key_file = pki_.server_key}));
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(d.status().message()), ::testing::HasSubstr("does not match"));
}

}  // namespace
}  // namespace isthmus::destinations
