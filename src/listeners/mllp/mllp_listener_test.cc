#include "listeners/mllp/mllp_listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "gtest/gtest.h"
#include "net/mllp_codec.h"

namespace isthmus::listeners {
namespace {

// A blocking MLLP client over POSIX sockets.
class Client {
 public:
  explicit Client(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~Client() { ::close(fd_); }
  bool connected() const { return connected_; }
  void SendRaw(std::string_view bytes) { ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL); }
  // Next framed reply, or "" on timeout / close.
  std::string Reply(int timeout_ms = 5000) {
    while (true) {
      std::vector<net::MllpEvent> ev;
      if (!pending_.empty()) {
        std::string p = std::move(pending_.front());
        pending_.erase(pending_.begin());
        return p;
      }
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, timeout_ms) <= 0) return "";
      char buf[65536];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return "";
      decoder_.Feed(std::string_view(buf, static_cast<size_t>(n)), &ev);
      for (auto& e : ev) pending_.push_back(std::move(e.payload));
    }
  }
  std::string Send(std::string_view msg) {
    SendRaw(net::MllpEncode(msg));
    return Reply();
  }

 private:
  int fd_;
  bool connected_;
  net::MllpDecoder decoder_{1 << 24};
  std::vector<std::string> pending_;
};

std::string Adt(std::string control_id) {
  return "MSH|^~\\&|LAB|HOSP|ISTHMUS|HOSP|20240101||ADT^A01^ADT_A01|" + control_id +
         "|P|2.5.1\rPID|1||123^^^HOSP^MR||DOE^JANE\r";
}

class MllpListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = std::filesystem::path(::testing::TempDir()) /
               ("mllp_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    writer_ = std::move(store::Writer::Open((dir / "isthmus.db").string())).value();
    journal_ = std::move(store::Journal::Open(*writer_, {})).value();
  }
  void StartListener(MllpListenerOptions o) {
    o.port = 0;
    auto l = MllpListener::Start(loop_, o, *journal_);
    ASSERT_TRUE(l.ok()) << l.status();
    listener_ = std::move(l).value();
    thread_ = std::thread([this] { loop_.Run(); });
  }
  void TearDown() override {
    if (listener_) listener_->Stop();
    loop_.Stop();
    if (thread_.joinable()) thread_.join();
    listener_.reset();
  }
  int64_t Count(std::string state = "") {
    int64_t total = 0;
    store::MessageQuery q;
    q.state = state;
    EXPECT_TRUE(journal_->List(q, &total).ok());
    return total;
  }
  net::EventLoop loop_{2};
  std::unique_ptr<store::Writer> writer_;
  std::unique_ptr<store::Journal> journal_;
  std::unique_ptr<MllpListener> listener_;
  std::thread thread_;
};

TEST_F(MllpListenerTest, AcksAfterJournalingAndDeduplicates) {
  StartListener({});
  Client c(listener_->port());
  ASSERT_TRUE(c.connected());
  std::string ack = c.Send(Adt("C1"));
  EXPECT_NE(ack.find("\rMSA|AA|C1\r"), std::string::npos) << ack;
  EXPECT_EQ(ack.rfind("MSH|^~\\&|ISTHMUS|HOSP|LAB|HOSP|", 0), 0u) << ack;
  // The ACK came after the commit: the message is in the journal now.
  EXPECT_EQ(Count("received"), 1);
  ack = c.Send(Adt("C1"));  // retransmission
  EXPECT_NE(ack.find("MSA|AA|C1"), std::string::npos);
  EXPECT_EQ(Count(), 1);
  EXPECT_EQ(listener_->stats().duplicates.load(), 1u);
}

TEST_F(MllpListenerTest, EnhancedModeGetsCommitAck) {
  StartListener({});
  Client c(listener_->port());
  std::string msg = "MSH|^~\\&|A|B|C|D|20240101||ADT^A04|E1|P|2.5|||AL|NE\rPID|1\r";
  EXPECT_NE(c.Send(msg).find("MSA|CA|E1"), std::string::npos);
}

TEST_F(MllpListenerTest, MalformedMessageIsNakedAndKept) {
  StartListener({});
  Client c(listener_->port());
  std::string nak = c.Send("MSH|^~\\&|A|B|C|D|x||ADT^A01|M1|P|2.5.1\rthis is not a segment\r");
  EXPECT_NE(nak.find("MSA|AR|M1"), std::string::npos) << nak;
  EXPECT_NE(nak.find("ERR|||100^Segment sequence error^HL70357|E"), std::string::npos) << nak;
  EXPECT_EQ(Count("rejected"), 1);
  // The connection is still usable.
  EXPECT_NE(c.Send(Adt("C2")).find("MSA|AA|C2"), std::string::npos);
}

TEST_F(MllpListenerTest, GarbageAndOversizedFramesGetNaksWithoutDroppingTheConnection) {
  MllpListenerOptions o;
  o.max_frame_bytes = 1000;
  StartListener(o);
  Client c(listener_->port());
  c.SendRaw("GET / HTTP/1.1\r\n\r\n");
  c.SendRaw(net::MllpEncode(Adt("C3")));
  std::string first = c.Reply();
  EXPECT_NE(first.find("MSA|AR|"), std::string::npos) << first;
  EXPECT_NE(first.find("outside an MLLP frame"), std::string::npos) << first;
  EXPECT_NE(c.Reply().find("MSA|AA|C3"), std::string::npos);
  std::string big = Adt("BIG") + "NTE|1||" + std::string(5000, 'x') + "\r";
  std::string nak = c.Send(big);
  EXPECT_NE(nak.find("exceeds the limit of 1000 bytes"), std::string::npos) << nak;
  EXPECT_NE(c.Send(Adt("C4")).find("MSA|AA|C4"), std::string::npos);
}

TEST_F(MllpListenerTest, ManyConcurrentConnections) {
  StartListener({});
  constexpr int kClients = 16, kEach = 20;
  std::vector<std::thread> threads;
  std::atomic<int> acked{0};
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      Client c(listener_->port());
      for (int i = 0; i < kEach; ++i) {
        std::string id = "T" + std::to_string(t) + "-" + std::to_string(i);
        if (c.Send(Adt(id)).find("MSA|AA|" + id + "\r") != std::string::npos) ++acked;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(acked.load(), kClients * kEach);
  EXPECT_EQ(Count(), kClients * kEach);
}

TEST_F(MllpListenerTest, TruncatedFrameTimesOutWithNak) {
  MllpListenerOptions o;
  o.frame_timeout = absl::Milliseconds(200);
  StartListener(o);
  Client c(listener_->port());
  c.SendRaw("\x0bMSH|^~\\&|A|B");
  std::string nak = c.Reply();
  EXPECT_NE(nak.find("not completed within"), std::string::npos) << nak;
}

TEST_F(MllpListenerTest, ConnectionLimit) {
  MllpListenerOptions o;
  o.max_connections = 1;
  StartListener(o);
  Client a(listener_->port());
  EXPECT_NE(a.Send(Adt("L1")).find("MSA|AA"), std::string::npos);
  Client b(listener_->port());
  EXPECT_EQ(b.Send(Adt("L2")), "");  // closed at once
  EXPECT_NE(a.Send(Adt("L3")).find("MSA|AA"), std::string::npos);
}

}  // namespace
}  // namespace isthmus::listeners
