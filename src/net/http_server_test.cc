#include "net/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace isthmus::net {
namespace {

// A plain POSIX client: one request, read until the server closes.
std::string RoundTrip(int port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return "connect failed";
  ::send(fd, request.data(), request.size(), 0);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HttpServerOptions o;
    o.max_body_bytes = 100;
    server_ = std::make_unique<HttpServer>(loop_, o);
    server_->Handle("GET", "/items/{id}", [](const HttpRequest& r) {
      return HttpResponse::Text(200, "item=" + r.PathParam("id") + " q=" + r.Query("q", "none") +
                                         " ua=" + r.Header("user-agent"));
    });
    server_->Handle("POST", "/echo", [](const HttpRequest& r) { return HttpResponse::Text(201, r.body); });
    ASSERT_TRUE(server_->Listen("127.0.0.1", 0).ok());
    thread_ = std::thread([this] { loop_.Run(); });
  }
  void TearDown() override {
    server_->Stop();
    loop_.Stop();
    thread_.join();
  }
  EventLoop loop_{2};
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

TEST_F(HttpServerTest, RoutesWithParamsAndQuery) {
  std::string r = RoundTrip(server_->port(),
                            "GET /items/a%20b?q=x+y HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n"
                            "Connection: close\r\n\r\n");
  EXPECT_NE(r.find("HTTP/1.1 200"), std::string::npos) << r;
  EXPECT_NE(r.find("item=a b q=x y ua=t"), std::string::npos) << r;
}

TEST_F(HttpServerTest, NotFoundAndMethodNotAllowedAreJson) {
  std::string r = RoundTrip(server_->port(), "GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_NE(r.find("HTTP/1.1 404"), std::string::npos) << r;
  EXPECT_NE(r.find("{\"error\":\"no resource at /nope\"}"), std::string::npos) << r;
  r = RoundTrip(server_->port(), "DELETE /items/1 HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_NE(r.find("HTTP/1.1 405"), std::string::npos) << r;
}

TEST_F(HttpServerTest, BodyLimitAndGarbage) {
  std::string r = RoundTrip(server_->port(),
                            "POST /echo HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
  EXPECT_NE(r.find("HTTP/1.1 201"), std::string::npos) << r;
  EXPECT_NE(r.find("hello"), std::string::npos);
  r = RoundTrip(server_->port(), "POST /echo HTTP/1.1\r\nContent-Length: 500\r\nConnection: close\r\n\r\n" +
                                     std::string(500, 'x'));
  EXPECT_NE(r.find("HTTP/1.1 413"), std::string::npos) << r;
  r = RoundTrip(server_->port(), "\x01\x02 garbage\r\n\r\n");
  EXPECT_NE(r.find("HTTP/1.1 400"), std::string::npos) << r;
}

// Asynchronous handlers answer later, from another thread, and do not hold a pool thread
// meanwhile: with a pool of one thread, three requests are all in the handler's hands at once
// (a blocking handler would see one at a time and this test would time out).
TEST(HttpServerAsyncTest, AnswersLaterFromAnotherThreadWithoutHoldingThePool) {
  EventLoop loop{1};
  HttpServerOptions o;
  o.handler_threads = 1;
  HttpServer server(loop, o);
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<std::string, HttpResponder>> pending;
  server.HandleAsync("GET", "/later/{n}", [&](const HttpRequest& r, HttpResponder respond) {
    std::lock_guard<std::mutex> lock(mu);
    pending.emplace_back(r.PathParam("n"), std::move(respond));
    cv.notify_all();
  });
  server.HandleAsync("GET", "/dropped", [](const HttpRequest&, HttpResponder) {});
  server.HandleAsync("GET", "/throws", [](const HttpRequest&, HttpResponder) {
    throw std::runtime_error("boom");
  });
  server.Handle("GET", "/sync", [](const HttpRequest&) { return HttpResponse::Text(200, "s"); });
  ASSERT_TRUE(server.Listen("127.0.0.1", 0).ok());
  std::thread loop_thread([&] { loop.Run(); });

  std::vector<std::string> answers(3);
  std::vector<std::thread> clients;
  for (int i = 0; i < 3; ++i) {
    clients.emplace_back([&, i] {
      answers[i] = RoundTrip(server.port(), "GET /later/" + std::to_string(i) +
                                                " HTTP/1.1\r\nConnection: close\r\n\r\n");
    });
  }
  std::thread answerer([&] {
    std::unique_lock<std::mutex> lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return pending.size() == 3; }))
        << pending.size() << " requests reached the handler at once";
    // Answer what came, newest first, then any latecomer (so that a failing server still ends).
    for (size_t answered = 0; answered < 3;) {
      for (auto it = pending.rbegin(); it != pending.rend(); ++it, ++answered) {
        std::move(it->second)(HttpResponse::Text(202, "answer " + it->first));
      }
      pending.clear();
      if (answered < 3) cv.wait_for(lock, std::chrono::seconds(10), [&] { return !pending.empty(); });
    }
  });
  answerer.join();
  for (std::thread& t : clients) t.join();
  for (int i = 0; i < 3; ++i) {
    EXPECT_NE(answers[i].find("HTTP/1.1 202"), std::string::npos) << answers[i];
    EXPECT_NE(answers[i].find("answer " + std::to_string(i)), std::string::npos) << answers[i];
  }
  // A responder dropped unanswered, or a handler that throws: 500, and the server still serves.
  std::string r = RoundTrip(server.port(), "GET /dropped HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_NE(r.find("HTTP/1.1 500"), std::string::npos) << r;
  r = RoundTrip(server.port(), "GET /throws HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_NE(r.find("HTTP/1.1 500"), std::string::npos) << r;
  r = RoundTrip(server.port(), "GET /sync HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_NE(r.find("HTTP/1.1 200"), std::string::npos) << r;

  server.Stop();
  loop.Stop();
  loop_thread.join();
}

TEST(UrlDecodeTest, Decodes) {
  EXPECT_EQ(UrlDecode("a%2Fb+c", true), "a/b c");
  EXPECT_EQ(UrlDecode("a+b", false), "a+b");
  EXPECT_EQ(UrlDecode("bad%2", false), "bad%2");
  EXPECT_EQ(UrlDecode("%zz", false), "%zz");
}

}  // namespace
}  // namespace isthmus::net
