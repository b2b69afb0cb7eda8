#include "destinations/http/http_destination.h"

#include <poll.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "net/asio_tls.h"
#include "net/http_server.h"
#include "net/test_tls.h"

namespace isthmus::destinations {
namespace {

class HttpDestinationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<net::HttpServer>(loop_, net::HttpServerOptions{});
    server_->Handle("POST", "/ok", [this](const net::HttpRequest& r) {
      std::lock_guard<std::mutex> lock(mu_);
      last_ = r;
      return net::HttpResponse::Json(201, "{}");
    });
    server_->Handle("PUT", "/ok", [](const net::HttpRequest&) {
      return net::HttpResponse::Json(204, "");
    });
    server_->Handle("POST", "/status/{code}", [](const net::HttpRequest& r) {
      return net::HttpResponse::Text(std::stoi(r.PathParam("code")), "no PHI here");
    });
    server_->Handle("POST", "/slow", [](const net::HttpRequest&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(600));  // the peer is slow
      return net::HttpResponse::Json(200, "{}");
    });
    ASSERT_TRUE(server_->Listen("127.0.0.1", 0).ok());
    thread_ = std::thread([this] { loop_.Run(); });
  }
  void TearDown() override {
    server_->Stop();
    loop_.Stop();
    thread_.join();
  }
  std::string Url(std::string_view path) {
    return "http://127.0.0.1:" + std::to_string(server_->port()) + std::string(path);
  }
  HttpDestinationOptions Opts(std::string_view path) {
    HttpDestinationOptions o;
    o.name = "webhook";
    o.url = Url(path);
    o.timeout = absl::Milliseconds(300);
    return o;
  }
  static core::Delivery D(std::string_view payload) {
    core::Delivery d;
    d.queue_id = 3;
    d.message_id = 42;
    d.attempt = 2;
    d.payload = payload;
    return d;
  }

  net::EventLoop loop_{2};
  std::unique_ptr<net::HttpServer> server_;
  std::thread thread_;
  std::mutex mu_;
  net::HttpRequest last_;
};

TEST_F(HttpDestinationTest, PostsWithHeadersAndContentType) {
  HttpDestinationOptions o = Opts("/ok?x=1");
  o.headers["X-Api-Key"] = "secret";
  o.content_type = "x-application/hl7-v2+er7";
  auto d = HttpDestination::Create(o);
  ASSERT_TRUE(d.ok()) << d.status();
  absl::Status s = (*d)->Deliver(D("MSH|^~\\&|A\r"));
  ASSERT_TRUE(s.ok()) << s;
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_EQ(last_.body, "MSH|^~\\&|A\r");
  EXPECT_EQ(last_.Query("x"), "1");
  EXPECT_EQ(last_.Header("content-type"), "x-application/hl7-v2+er7");
  EXPECT_EQ(last_.Header("x-api-key"), "secret");
  EXPECT_EQ(last_.Header("x-isthmus-message-id"), "42");
  EXPECT_EQ(last_.Header("x-isthmus-attempt"), "2");
}

TEST_F(HttpDestinationTest, PutIsSupported) {
  HttpDestinationOptions o = Opts("/ok");
  o.method = "PUT";
  auto d = HttpDestination::Create(o);
  EXPECT_TRUE((*d)->Deliver(D("x")).ok());
}

TEST_F(HttpDestinationTest, ServerErrorsAndThrottlingAreRetried) {
  for (int code : {500, 502, 503, 429, 408}) {
    auto d = HttpDestination::Create(Opts("/status/" + std::to_string(code)));
    absl::Status s = (*d)->Deliver(D("x"));
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << code << " " << s;
    EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("HTTP " + std::to_string(code)));
  }
}

TEST_F(HttpDestinationTest, ClientErrorsAreDeadLetteredWithTheCode) {
  for (int code : {400, 401, 404, 422, 301}) {
    auto d = HttpDestination::Create(Opts("/status/" + std::to_string(code)));
    absl::Status s = (*d)->Deliver(D("x"));
    EXPECT_FALSE(core::IsRetryable(s)) << code << " " << s;
    EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("HTTP " + std::to_string(code)));
    EXPECT_THAT(std::string(s.message()), ::testing::Not(::testing::HasSubstr("PHI")));
  }
  auto d = HttpDestination::Create(Opts("/no/such/route"));
  absl::Status s = (*d)->Deliver(D("x"));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("HTTP 404 Not Found"));
}

TEST_F(HttpDestinationTest, SlowPeerTimesOut) {
  auto d = HttpDestination::Create(Opts("/slow"));
  absl::Status s = (*d)->Deliver(D("x"));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_TRUE(core::IsRetryable(s));
}

TEST_F(HttpDestinationTest, ConnectionRefusedIsRetried) {
  std::string url;
  {
    net::EventLoop loop(1);
    net::HttpServer other(loop, {});
    ASSERT_TRUE(other.Listen("127.0.0.1", 0).ok());
    url = "http://127.0.0.1:" + std::to_string(other.port()) + "/x";
    other.Stop();
  }
  auto d = HttpDestination::Create({.name = "w", .url = url});
  ASSERT_TRUE(d.ok());
  absl::Status s = (*d)->Deliver(D("x"));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
}

TEST(HttpDestinationCreateTest, ValidatesTheUrl) {
  EXPECT_TRUE(HttpDestination::Create({.name = "w", .url = "https://example.org/"}).ok());
  EXPECT_EQ(HttpDestination::Create(
                {.name = "w", .url = "http://example.org/", .tls = net::TlsClientSettings{}})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  for (const char* url : {"ftp://x/", "http://", "http://host:0/", "http://host:99999/",
                          "http://u@host/", "http://[::1/"}) {
    EXPECT_EQ(HttpDestination::Create({.name = "w", .url = url}).status().code(),
              absl::StatusCode::kInvalidArgument)
        << url;
  }
  EXPECT_TRUE(HttpDestination::Create({.name = "w", .url = "http://[::1]:8080"}).ok());
  EXPECT_TRUE(HttpDestination::Create({.name = "w", .url = "http://host?x=1"}).ok());
  EXPECT_FALSE(
      HttpDestination::Create({.name = "w", .url = "http://host/", .method = "GET"}).ok());
}

// ---- persistent connections ------------------------------------------------------------------

// A plain HTTP/1.1 server (Beast, synchronous, one connection at a time) that counts the
// connections it accepted and the requests it read. `answer_per_connection` requests are
// answered on a connection (keep-alive unless `say_close`); the next one is read and the
// connection closed without an answer, as a server whose idle timeout fires just as a kept
// connection is reused.
class CountingHttpServer {
 public:
  explicit CountingHttpServer(int answer_per_connection = 1000, bool say_close = false)
      : answer_(answer_per_connection), say_close_(say_close), acceptor_(ioc_) {
    boost::asio::ip::tcp::endpoint ep(boost::asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { Run(); });
  }
  ~CountingHttpServer() {
    stop_ = true;
    thread_.join();
  }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hl7"; }
  int connections() const { return connections_; }
  int requests() const { return requests_; }

 private:
  static bool Readable(int fd, int ms) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, ms) > 0;
  }
  void Run() {
    namespace bhttp = boost::beast::http;
    while (!stop_) {
      if (!Readable(acceptor_.native_handle(), 20)) continue;
      boost::beast::error_code ec;
      boost::asio::ip::tcp::socket socket(ioc_);
      acceptor_.accept(socket, ec);
      if (ec) continue;
      connections_++;
      boost::beast::flat_buffer buffer;
      for (int answered = 0; !stop_;) {
        // Wait for the next request (or the client closing), checking stop_ now and then.
        if (buffer.size() == 0 && !Readable(socket.native_handle(), 20)) continue;
        bhttp::request<bhttp::string_body> req;
        bhttp::read(socket, buffer, req, ec);
        if (ec) break;
        requests_++;
        if (answered == answer_) break;  // closes without an answer
        ++answered;
        bhttp::response<bhttp::string_body> res(bhttp::status::ok, 11);
        res.body() = "{}";
        res.keep_alive(!say_close_);
        res.prepare_payload();
        bhttp::write(socket, res, ec);
        if (ec || say_close_) break;
      }
    }
  }

  const int answer_;
  const bool say_close_;
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0}, requests_{0};
  std::thread thread_;
};

core::Delivery Message(int64_t id) {
  core::Delivery d;
  d.queue_id = id;
  d.message_id = id;
  d.attempt = 1;
  d.payload = "MSH|^~\\&|A\r";
  return d;
}

TEST(HttpDestinationKeepAliveTest, ManyRequestsShareOneConnection) {
  CountingHttpServer server;
  auto d = HttpDestination::Create({.name = "w", .url = server.Url()});
  ASSERT_TRUE(d.ok()) << d.status();
  for (int i = 1; i <= 20; ++i) ASSERT_TRUE((*d)->Deliver(Message(i)).ok()) << i;
  EXPECT_EQ(server.requests(), 20);
  EXPECT_EQ(server.connections(), 1);
}

TEST(HttpDestinationKeepAliveTest, KeepAliveOffOpensOneConnectionPerRequest) {
  CountingHttpServer server;
  auto d = HttpDestination::Create({.name = "w", .url = server.Url(), .keep_alive = false});
  ASSERT_TRUE(d.ok()) << d.status();
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE((*d)->Deliver(Message(i)).ok()) << i;
  EXPECT_EQ(server.requests(), 3);
  EXPECT_EQ(server.connections(), 3);
}

TEST(HttpDestinationKeepAliveTest, ConnectionCloseFromThePeerIsHonoured) {
  CountingHttpServer server(1000, /*say_close=*/true);
  auto d = HttpDestination::Create({.name = "w", .url = server.Url()});
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE((*d)->Deliver(Message(i)).ok()) << i;
  EXPECT_EQ(server.connections(), 3);
}

TEST(HttpDestinationKeepAliveTest, PeerClosingAKeptConnectionBeforeAnsweringIsRetriedOnce) {
  // Every connection answers one request, then reads the next and hangs up: each reuse fails
  // with nothing received and the request goes again on a fresh connection.
  CountingHttpServer server(/*answer_per_connection=*/1);
  auto d = HttpDestination::Create({.name = "w", .url = server.Url()});
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE((*d)->Deliver(Message(i)).ok()) << i;
  EXPECT_EQ(server.connections(), 3);
  EXPECT_EQ(server.requests(), 5);  // 1, then 2 twice, then 3 twice
}

TEST(HttpDestinationKeepAliveTest, IdleConnectionsAreDroppedAfterIdleTimeout) {
  CountingHttpServer server;
  auto d = HttpDestination::Create(
      {.name = "w", .url = server.Url(), .idle_timeout = absl::Milliseconds(50)});
  ASSERT_TRUE((*d)->Deliver(Message(1)).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  ASSERT_TRUE((*d)->Deliver(Message(2)).ok());
  EXPECT_EQ(server.connections(), 2);
  EXPECT_EQ(server.requests(), 2);
}

TEST(HttpDestinationKeepAliveTest, ConcurrentDeliveriesEachUseTheirOwnConnection) {
  net::EventLoop loop(2);
  net::HttpServer server(loop, {});
  std::atomic<int> seen{0};
  server.Handle("POST", "/hl7", [&](const net::HttpRequest&) {
    seen++;
    return net::HttpResponse::Json(200, "{}");
  });
  ASSERT_TRUE(server.Listen("127.0.0.1", 0).ok());
  std::thread loop_thread([&] { loop.Run(); });
  auto d = HttpDestination::Create(
      {.name = "w", .url = "http://127.0.0.1:" + std::to_string(server.port()) + "/hl7"});
  std::vector<std::thread> senders;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) ok += (*d)->Deliver(Message(t * 100 + i)).ok() ? 1 : 0;
    });
  }
  for (auto& s : senders) s.join();
  server.Stop();
  loop.Stop();
  loop_thread.join();
  EXPECT_EQ(ok.load(), 100);
  EXPECT_EQ(seen.load(), 100);
}

// ---- https:// --------------------------------------------------------------------------------

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;

// A tiny synchronous HTTPS server (Beast) on 127.0.0.1:0, one connection at a time: answers
// 200 to every request and remembers the last one. Counts failed handshakes.
class TinyHttpsServer {
 public:
  explicit TinyHttpsServer(const net::TlsServerOptions& tls) : acceptor_(ioc_) {
    auto ctx = net::MakeTlsServerContext(tls);
    EXPECT_TRUE(ctx.ok()) << ctx.status();
    ctx_ = std::move(ctx).value();
    asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { Run(); });
  }
  ~TinyHttpsServer() {
    stop_ = true;
    thread_.join();
  }
  int port() const { return port_; }
  int requests() const { return requests_; }
  int failed_handshakes() const { return failed_; }
  std::string last_host() const {
    std::lock_guard<std::mutex> lock(mu_);
    return last_host_;
  }
  std::string last_body() const {
    std::lock_guard<std::mutex> lock(mu_);
    return last_body_;
  }

 private:
  void Run() {
    while (!stop_) {
      pollfd p{acceptor_.native_handle(), POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      beast::error_code ec;
      asio::ip::tcp::socket socket(ioc_);
      acceptor_.accept(socket, ec);
      if (ec) continue;
      beast::ssl_stream<asio::ip::tcp::socket> stream(std::move(socket), *ctx_);
      stream.handshake(asio::ssl::stream_base::server, ec);
      if (ec) {
        failed_++;
        continue;
      }
      beast::flat_buffer buffer;
      bhttp::request<bhttp::string_body> req;
      bhttp::read(stream, buffer, req, ec);
      if (ec) continue;  // e.g. TLS 1.3: the client certificate is checked after the handshake
      {
        std::lock_guard<std::mutex> lock(mu_);
        last_host_ = std::string(req[bhttp::field::host]);
        last_body_ = req.body();
      }
      requests_++;
      bhttp::response<bhttp::string_body> res(bhttp::status::ok, 11);
      res.body() = "{}";
      res.keep_alive(false);
      res.prepare_payload();
      bhttp::write(stream, res, ec);
      stream.shutdown(ec);
    }
  }

  asio::io_context ioc_;
  asio::ip::tcp::acceptor acceptor_;
  std::unique_ptr<asio::ssl::context> ctx_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0}, failed_{0};
  mutable std::mutex mu_;
  std::string last_host_, last_body_;
  std::thread thread_;
};

class HttpsDestinationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("https_dest_" + std::to_string(::getpid()) + "_" +
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
  static HttpDestinationOptions Opts(int port, net::TlsClientSettings tls,
                                     std::string_view host = "127.0.0.1") {
    HttpDestinationOptions o;
    o.name = "secure";
    o.url = "https://" + std::string(host) + ":" + std::to_string(port) + "/hl7";
    o.timeout = absl::Seconds(5);
    o.tls = std::move(tls);
    return o;
  }
  static core::Delivery D(std::string_view payload) {
    core::Delivery d;
    d.queue_id = 1;
    d.message_id = 7;
    d.attempt = 1;
    d.payload = payload;
    return d;
  }

  std::filesystem::path dir_;
  net::TestPki pki_, other_;
};

TEST_F(HttpsDestinationTest, PostsOverTls) {
  TinyHttpsServer server(Server(false));
  auto d = HttpDestination::Create(Opts(server.port(), {.ca_file = pki_.ca_cert}));
  ASSERT_TRUE(d.ok()) << d.status();
  absl::Status s = (*d)->Deliver(D("MSH|^~\\&|TLS\r"));
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(server.requests(), 1);
  EXPECT_EQ(server.last_body(), "MSH|^~\\&|TLS\r");
  EXPECT_EQ(server.last_host(), "127.0.0.1:" + std::to_string(server.port()));
}

TEST_F(HttpsDestinationTest, MutualTlsWithClientCertificate) {
  TinyHttpsServer server(Server(true));
  auto d = HttpDestination::Create(Opts(
      server.port(),
      {.ca_file = pki_.ca_cert, .cert_file = pki_.client_cert, .key_file = pki_.client_key}));
  ASSERT_TRUE(d.ok()) << d.status();
  absl::Status s = (*d)->Deliver(D("x"));
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(server.requests(), 1);
}

TEST_F(HttpsDestinationTest, MutualTlsWithoutClientCertificateIsRefused) {
  TinyHttpsServer server(Server(true));
  auto d = HttpDestination::Create(Opts(server.port(), {.ca_file = pki_.ca_cert}));
  ASSERT_TRUE(d.ok()) << d.status();
  absl::Status s = (*d)->Deliver(D("x"));
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(core::IsRetryable(s)) << s;
  EXPECT_EQ(server.requests(), 0);
}

TEST_F(HttpsDestinationTest, WrongCaIsDeadLetteredWithAClearReason) {
  TinyHttpsServer server(Server(false));
  auto d = HttpDestination::Create(Opts(server.port(), {.ca_file = other_.ca_cert}));
  ASSERT_TRUE(d.ok()) << d.status();
  absl::Status s = (*d)->Deliver(D("x"));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_FALSE(core::IsRetryable(s));
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("certificate verification failed"));
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("http destination secure"));
  EXPECT_EQ(server.requests(), 0);
}

TEST_F(HttpsDestinationTest, HostNameMismatchIsRefused) {
  TinyHttpsServer server(Server(false));
  auto d = HttpDestination::Create(
      Opts(server.port(), {.ca_file = pki_.ca_cert, .server_name = "fhir.example.org"}));
  ASSERT_TRUE(d.ok()) << d.status();
  absl::Status s = (*d)->Deliver(D("x"));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("mismatch"));
  EXPECT_EQ(server.requests(), 0);
  // The name in the certificate (localhost) verifies, sent as SNI over 127.0.0.1.
  auto ok = HttpDestination::Create(
      Opts(server.port(), {.ca_file = pki_.ca_cert, .server_name = "localhost"}));
  s = (*ok)->Deliver(D("x"));
  EXPECT_TRUE(s.ok()) << s;
}

TEST_F(HttpsDestinationTest, PlainHttpPeerIsRetried) {
  net::EventLoop loop(1);
  net::HttpServer plain(loop, net::HttpServerOptions{});
  ASSERT_TRUE(plain.Listen("127.0.0.1", 0).ok());
  std::thread t([&] { loop.Run(); });
  auto d = HttpDestination::Create(Opts(plain.port(), {.ca_file = pki_.ca_cert}));
  absl::Status s = (*d)->Deliver(D("x"));
  EXPECT_TRUE(core::IsRetryable(s)) << s;
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("TLS handshake"));
  plain.Stop();
  loop.Stop();
  t.join();
}

TEST_F(HttpsDestinationTest, MissingTlsFilesFailAtCreate) {
  auto d = HttpDestination::Create(Opts(443, {.ca_file = (dir_ / "nope.pem").string()}));
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(d.status().message()), ::testing::HasSubstr("nope.pem"));
}

}  // namespace
}  // namespace isthmus::destinations
