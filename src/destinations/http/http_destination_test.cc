#include "destinations/http/http_destination.h"

#include <atomic>
#include <mutex>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "net/http_server.h"

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
  EXPECT_EQ(HttpDestination::Create({.name = "w", .url = "https://example.org/"}).status().code(),
            absl::StatusCode::kUnimplemented);
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

}  // namespace
}  // namespace isthmus::destinations
