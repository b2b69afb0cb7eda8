#include "net/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

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

TEST(UrlDecodeTest, Decodes) {
  EXPECT_EQ(UrlDecode("a%2Fb+c", true), "a/b c");
  EXPECT_EQ(UrlDecode("a+b", false), "a+b");
  EXPECT_EQ(UrlDecode("bad%2", false), "bad%2");
  EXPECT_EQ(UrlDecode("%zz", false), "%zz");
}

}  // namespace
}  // namespace isthmus::net
