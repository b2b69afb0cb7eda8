#include "listeners/mllp/mllp_listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>

#include "gtest/gtest.h"
#include "hl7v2/message.h"
#include "base/str.h"
#include "net/mllp_codec.h"
#include "net/test_tls.h"

namespace isthmus::listeners {
namespace {

// A blocking MLLP client over POSIX sockets.
class Client {
 public:
  explicit Client(int port, bool ipv6 = false) {
    if (ipv6) {
      fd_ = ::socket(AF_INET6, SOCK_STREAM, 0);
      sockaddr_in6 addr{};
      addr.sin6_family = AF_INET6;
      addr.sin6_port = htons(static_cast<uint16_t>(port));
      addr.sin6_addr = in6addr_loopback;
      connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
      return;
    }
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  // True when the server closes the connection within the timeout (reading and discarding).
  bool ClosedByServer(int timeout_ms = 5000) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < end) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return true;
    }
    return false;
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

// One MLLP exchange over TLS: the framed reply, or "" when the connection failed or closed.
std::string TlsSend(net::TlsClient& c, std::string_view msg) {
  if (!c.Write(net::MllpEncode(msg))) return "";
  net::MllpDecoder decoder(1 << 24);
  std::vector<net::MllpEvent> events;
  while (events.empty()) {
    std::string bytes = c.Read();
    if (bytes.empty()) return "";
    decoder.Feed(bytes, &events);
  }
  return events.front().payload;
}

// Polls `done` for up to 5 s (stats are updated on the loop threads).
bool Eventually(const std::function<bool()>& done) {
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

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
    dir_ = dir;
    writer_ = std::move(store::Writer::Open((dir / "isthmus.db").string())).value();
    journal_ = std::move(store::Journal::Open(*writer_, {})).value();
  }
  void StartListener(MllpListenerOptions o) {
    o.port = 0;
    o.log = [this](std::string_view line) {
      std::lock_guard<std::mutex> lock(log_mu_);
      log_.emplace_back(line);
    };
    auto l = MllpListener::Start(loop_, o, *journal_);
    ASSERT_TRUE(l.ok()) << l.status();
    listener_ = std::move(l).value();
    thread_ = std::thread([this] { loop_.Run(); });
  }
  void CheckParse(bool needs_body);
  void StopListener() {
    if (listener_) listener_->Stop();
    loop_.Stop();
    if (thread_.joinable()) thread_.join();
    listener_.reset();
  }
  void TearDown() override { StopListener(); }
  // Declared right after a test's own sink: stops the listener before the sink goes, since a
  // session may still call it (e.g. its back-pressure check after the last ACK went out;
  // UBSan caught a call on the destroyed sink, 1 run in ~30 under ASan).
  struct StopListenerFirst {
    MllpListenerTest* test;
    ~StopListenerFirst() { test->StopListener(); }
  };
  int64_t Count(std::string state = "") {
    int64_t total = 0;
    store::MessageQuery q;
    q.state = state;
    EXPECT_TRUE(journal_->List(q, &total).ok());
    return total;
  }
  std::vector<std::string> Log() {
    std::lock_guard<std::mutex> lock(log_mu_);
    return log_;
  }
  bool Logged(std::string_view fragment) {
    for (const std::string& l : Log()) {
      if (l.find(fragment) != std::string::npos) return true;
    }
    return false;
  }
  net::TestPki Pki(std::string_view name) {
    auto pki = net::MakeTestPki(dir_, name);
    EXPECT_TRUE(pki.ok()) << pki.status();
    return pki.ok() ? *pki : net::TestPki{};
  }
  static net::TlsServerOptions ServerTls(const net::TestPki& pki) {
    net::TlsServerOptions t;
    t.cert_file = pki.server_cert;
    t.key_file = pki.server_key;
    return t;
  }
  std::filesystem::path dir_;
  std::mutex log_mu_;
  std::vector<std::string> log_;
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
  // The kept copy can be found by the control id and sender its MSH line gives.
  int64_t total = 0;
  store::MessageQuery q;
  q.control_id = "M1";
  auto found = journal_->List(q, &total);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(total, 1);
  EXPECT_EQ((*found)[0].state, "rejected");
  EXPECT_EQ((*found)[0].sender, "A|B");
  EXPECT_EQ((*found)[0].message_type, "ADT^A01");
  // The connection is still usable.
  EXPECT_NE(c.Send(Adt("C2")).find("MSA|AA|C2"), std::string::npos);
  // A corrected retransmission with the same control id is processed, not a duplicate of the
  // rejected copy.
  EXPECT_NE(c.Send("MSH|^~\\&|A|B|C|D|x||ADT^A01|M1|P|2.5.1\rPID|1\r").find("MSA|AA|M1"),
            std::string::npos);
  EXPECT_EQ(Count("received"), 2);
  EXPECT_EQ(listener_->stats().duplicates.load(), 0u);
}

// Frames that do not parse are reported to on_rejected (the engine counts them as the channel's
// `errored`), once each; other NAKs (bytes outside a frame, an oversized frame) are not messages
// of the channel and are only `nacked`. A frame whose MSH itself is unusable is kept with no
// header columns: there is nothing to read them from.
TEST_F(MllpListenerTest, RejectedFramesAreReportedOnce) {
  std::atomic<int> reported{0};
  MllpListenerOptions o;
  o.max_frame_bytes = 1000;
  o.on_rejected = [&reported] { reported++; };
  StartListener(o);
  Client c(listener_->port());
  EXPECT_NE(c.Send(Adt("G1")).find("MSA|AA|G1"), std::string::npos);
  // 1: a segment without a name (MSH parses: the row has its header).
  EXPECT_NE(c.Send("MSH|^~\\&|A|B|C|D|x||ADT^A01|R1|P|2.5.1\rnot a segment\r").find("MSA|AR|R1"),
            std::string::npos);
  // 2: no MSH at all.
  std::string nak = c.Send("PID|1||123\r");
  EXPECT_NE(nak.find("MSA|AR|"), std::string::npos) << nak;
  // 3: MSH-2 repeats a delimiter.
  nak = c.Send("MSH|^~^&|A|B|C|D|x||ADT^A01|R3|P|2.5.1\rPID|1\r");
  EXPECT_NE(nak.find("MSA|AR|"), std::string::npos) << nak;
  EXPECT_NE(nak.find("MSH-2"), std::string::npos) << nak;
  // Not rejected messages: bytes outside a frame, an oversized frame.
  c.SendRaw("garbage\r");
  EXPECT_NE(c.Reply().find("outside an MLLP frame"), std::string::npos);
  EXPECT_NE(c.Send(Adt("BIG") + std::string(2000, 'x')).find("exceeds the limit"), std::string::npos);

  EXPECT_EQ(reported.load(), 3);
  EXPECT_EQ(listener_->stats().messages_rejected.load(), 3u);
  EXPECT_EQ(listener_->stats().messages_nacked.load(), 5u);
  EXPECT_EQ(Count("rejected"), 3);
  int64_t total = 0;
  store::MessageQuery q;
  q.state = "rejected";
  auto rows = journal_->List(q, &total);  // newest first
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_EQ((*rows)[2].control_id, "R1");
  EXPECT_EQ((*rows)[2].sender, "A|B");
  for (int i : {0, 1}) {  // MSH-2 unusable; no MSH
    EXPECT_EQ((*rows)[i].control_id, "") << i;
    EXPECT_EQ((*rows)[i].sender, "") << i;
    EXPECT_EQ((*rows)[i].message_type, "") << i;
  }
  auto reason = [&](int i) {
    auto m = journal_->Get((*rows)[i].id);
    EXPECT_TRUE(m.ok() && !m->events.empty());
    return m.ok() && !m->events.empty() ? m->events[0].reason : "";
  };
  EXPECT_NE(reason(0).find("MSH-2"), std::string::npos) << reason(0);
  EXPECT_NE(reason(1).find("does not start with an MSH segment"), std::string::npos) << reason(1);
}

// A sender in enhanced mode (MSH-15 valued) is answered at the commit level: CA when the
// message is stored, so CR, not AR, when it is refused (in enhanced acknowledgment mode the commit
// ACK answers "was it accepted", CA/CE/CR; AR belongs to original mode). An `enhanced` listener
// refuses everything with CR.
TEST_F(MllpListenerTest, EnhancedModeSendersGetCommitRejects) {
  StartListener({});
  Client c(listener_->port());
  std::string nak = c.Send("MSH|^~\\&|A|B|C|D|x||ADT^A01|E2|P|2.5|||AL|NE\rnot a segment\r");
  EXPECT_NE(nak.find("\rMSA|CR|E2|"), std::string::npos) << nak;
  EXPECT_NE(nak.find("ERR|||100^Segment sequence error^HL70357|E"), std::string::npos) << nak;
  // Without MSH-15: original mode, AR (MalformedMessageIsNakedAndKept); garbage: AR.
  EXPECT_NE(c.Send("MSH|^~\\&|A|B|C|D|x||ADT^A01|E3|P|2.5\rnot a segment\r").find("MSA|AR|E3"),
            std::string::npos);
  c.SendRaw("garbage\r");
  EXPECT_NE(c.Reply().find("MSA|AR|"), std::string::npos);
}

TEST_F(MllpListenerTest, EnhancedListenerRefusesWithCommitRejects) {
  MllpListenerOptions o;
  o.ack_mode = AckMode::kEnhanced;
  o.max_frame_bytes = 1000;
  StartListener(o);
  Client c(listener_->port());
  std::string nak = c.Send("MSH|^~\\&|A|B|C|D|x||ADT^A01|E4|P|2.5\rnot a segment\r");
  EXPECT_NE(nak.find("\rMSA|CR|E4|"), std::string::npos) << nak;
  c.SendRaw("garbage\r");
  nak = c.Reply();
  EXPECT_NE(nak.find("MSA|CR|"), std::string::npos) << nak;
  EXPECT_NE(nak.find("outside an MLLP frame"), std::string::npos) << nak;
  nak = c.Send(Adt("BIG") + std::string(2000, 'x'));
  EXPECT_NE(nak.find("MSA|CR|"), std::string::npos) << nak;
  EXPECT_NE(nak.find("exceeds the limit"), std::string::npos) << nak;
}

// Up to v2.4 the ERR segment is ERR-1 (segment^sequence^field^code&text&table) with no room
// for the reason: a v2.3 sender reads it in MSA-3. From v2.5 the reason is also in ERR-8.
TEST_F(MllpListenerTest, NakTextIsInMsa3) {
  StartListener({});
  Client c(listener_->port());
  std::string nak = c.Send("MSH|^~\\&|A|B|C|D|x||ADT^A01|V3|P|2.3\rnot a segment\r");
  EXPECT_NE(nak.find("\rMSA|AR|V3|segment 2 has no valid segment name"), std::string::npos) << nak;
  EXPECT_NE(nak.find("\rERR|^^^100&Segment sequence error&HL70357\r"), std::string::npos) << nak;
  nak = c.Send("MSH|^~\\&|A|B|C|D|x||ADT^A01|V5|P|2.5.1\rnot a segment\r");
  EXPECT_NE(nak.find("\rMSA|AR|V5|segment 2 has no valid segment name"), std::string::npos) << nak;
  EXPECT_NE(nak.find("|E||||segment 2 has no valid segment name"), std::string::npos) << nak;
  c.SendRaw("garbage\r");
  nak = c.Reply();
  EXPECT_NE(nak.find("\rMSA|AR||"), std::string::npos) << nak;  // no control id to echo
  EXPECT_LT(nak.find("bytes arrived outside an MLLP frame"), nak.find("\rERR|")) << nak;
}

TEST_F(MllpListenerTest, AckModeNoneJournalsWithoutAnswering) {
  MllpListenerOptions o;
  o.ack_mode = AckMode::kNone;
  o.max_frame_bytes = 1000;
  StartListener(o);
  Client c(listener_->port());
  c.SendRaw(net::MllpEncode(Adt("N1")));
  c.SendRaw(net::MllpEncode("MSH|^~\\&|A|B|C|D|x||ADT^A01|N2|P|2.5.1\rnot a segment\r"));
  EXPECT_EQ(c.Reply(500), "");  // neither an ACK nor a NAK
  EXPECT_TRUE(Eventually([&] { return Count() == 2; }));
  EXPECT_EQ(Count("received"), 1);
  EXPECT_EQ(Count("rejected"), 1);
  // Nor for input that is no message (bytes outside a frame, an oversized frame): refused and
  // counted, not answered.
  c.SendRaw("garbage\r");
  c.SendRaw(net::MllpEncode(Adt("BIG") + std::string(o.max_frame_bytes, 'x')));
  EXPECT_EQ(c.Reply(500), "");
  EXPECT_TRUE(Eventually([&] { return listener_->stats().messages_nacked.load() == 3; }));
  c.SendRaw(net::MllpEncode(Adt("N3")));  // the connection still works
  EXPECT_TRUE(Eventually([&] { return Count("received") == 2; }));
}

TEST_F(MllpListenerTest, IdleConnectionIsClosedAfterIdleTimeout) {
  MllpListenerOptions o;
  o.idle_timeout = absl::Milliseconds(200);
  StartListener(o);
  Client idle(listener_->port());
  Client busy(listener_->port());
  ASSERT_NE(busy.Send(Adt("B1")).find("MSA|AA|B1"), std::string::npos);
  EXPECT_TRUE(idle.ClosedByServer());
  EXPECT_TRUE(busy.ClosedByServer());  // idle since its ACK
  EXPECT_TRUE(Eventually([&] { return listener_->stats().connections_open.load() == 0; }));
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

// A pipeline stand-in: records what it was given and answers with a fixed outcome.
class FakeSink : public core::MessageSink {
 public:
  void Accept(int64_t id, std::string channel, std::shared_ptr<const std::string> raw,
              core::ProcessingDone done) override {
    if (count_backlog) backlog++;
    {
      std::lock_guard<std::mutex> lock(mu);
      accepted.push_back(id);
      channels.push_back(channel);
      (void)raw;
    }
    if (done) {
      core::ProcessingResult r = result;
      r.message_id = id;
      std::move(done)(std::move(r));
    }
  }
  void AcceptParsed(int64_t id, std::string channel, std::shared_ptr<const std::string> raw,
                    std::shared_ptr<hl7v2::Message> parsed, core::ProcessingDone done) override {
    {
      std::lock_guard<std::mutex> lock(mu);
      parsed_header_only.push_back(parsed->header_only());
    }
    Accept(id, std::move(channel), std::move(raw), std::move(done));
  }
  bool NeedsMessageBody(const std::string&) const override { return needs_body; }
  std::optional<core::PreCommitOutcome> DecideBeforeCommit(const std::string&,
                                                           hl7v2::Message& msg) override {
    std::lock_guard<std::mutex> lock(mu);
    decided_header_only.push_back(msg.header_only());
    decided_pid3.push_back(msg.GetText("PID-3.1"));
    return std::nullopt;
  }
  size_t Backlog() const override { return backlog.load(); }
  std::mutex mu;
  bool needs_body = true;
  std::vector<bool> decided_header_only;  // per DecideBeforeCommit: was only MSH parsed?
  std::vector<std::string> decided_pid3;
  std::vector<bool> parsed_header_only;   // per AcceptParsed
  std::vector<int64_t> accepted;
  std::vector<std::string> channels;
  core::ProcessingResult result;
  std::atomic<size_t> backlog{0};
  bool count_backlog = false;
};

TEST_F(MllpListenerTest, BackPressureHoldsReadsWhileTheSinkIsBehind) {
  FakeSink sink;
  StopListenerFirst stop_first{this};
  sink.count_backlog = true;  // every accepted message stays in the backlog until cleared
  MllpListenerOptions o;
  o.sink = &sink;
  o.max_backlog = 0;
  StartListener(o);
  Client c(listener_->port());
  // B1 is accepted (backlog 1) and ACKed; then the listener sees the backlog and stops reading.
  EXPECT_NE(c.Send(Adt("B1")).find("MSA|AA|B1"), std::string::npos);
  c.SendRaw(net::MllpEncode(Adt("B2")));
  EXPECT_EQ(c.Reply(300), "");
  EXPECT_GE(listener_->stats().backpressure_pauses.load(), 1u);
  sink.backlog = 0;  // the pipeline caught up
  EXPECT_NE(c.Reply().find("MSA|AA|B2"), std::string::npos);
}

TEST_F(MllpListenerTest, AfterPersistHandsMessagesToTheSinkOnce) {
  FakeSink sink;
  StopListenerFirst stop_first{this};
  MllpListenerOptions o;
  o.sink = &sink;
  o.channel = "adt";
  StartListener(o);
  Client c(listener_->port());
  EXPECT_NE(c.Send(Adt("S1")).find("MSA|AA|S1"), std::string::npos);
  EXPECT_NE(c.Send(Adt("S1")).find("MSA|AA|S1"), std::string::npos);  // retransmission
  EXPECT_NE(c.Send(Adt("S2")).find("MSA|AA|S2"), std::string::npos);
  std::lock_guard<std::mutex> lock(sink.mu);
  EXPECT_EQ(sink.accepted.size(), 2u);  // the duplicate is not processed twice
  EXPECT_EQ(sink.channels, (std::vector<std::string>{"adt", "adt"}));
}

// The listener parses only MSH when the sink reads nothing more (needs_body false), and then
// never hands that parse over; otherwise the whole message.
void MllpListenerTest::CheckParse(bool needs_body) {
  FakeSink sink;
  StopListenerFirst stop_first{this};
  sink.needs_body = needs_body;
  MllpListenerOptions o;
  o.sink = &sink;
  o.channel = "adt";
  StartListener(o);
  Client c(listener_->port());
  EXPECT_NE(c.Send(Adt("N1")).find("MSA|AA|N1"), std::string::npos);
  std::lock_guard<std::mutex> lock(sink.mu);
  ASSERT_EQ(sink.decided_header_only.size(), 1u);
  EXPECT_EQ(sink.decided_header_only[0], !needs_body);
  // The body's fields are there only when the sink said it reads them.
  EXPECT_EQ(sink.decided_pid3[0], needs_body ? "123" : "");
  EXPECT_EQ(sink.accepted.size(), 1u);
  // A header-only parse is never handed over: the sink parses the raw bytes itself.
  EXPECT_EQ(sink.parsed_header_only, needs_body ? std::vector<bool>{false} : std::vector<bool>{});
}

TEST_F(MllpListenerTest, ParsesTheWholeMessageWhenTheSinkReadsTheBody) { CheckParse(true); }

TEST_F(MllpListenerTest, ParsesOnlyTheHeaderWhenTheSinkReadsNothingMore) { CheckParse(false); }

TEST_F(MllpListenerTest, AfterProcessingAcksReflectTheOutcome) {
  FakeSink sink;
  StopListenerFirst stop_first{this};
  MllpListenerOptions o;
  o.sink = &sink;
  o.ack_mode = AckMode::kAfterProcessing;
  StartListener(o);
  Client c(listener_->port());
  sink.result.state = "queued";
  EXPECT_NE(c.Send(Adt("P1")).find("MSA|AA|P1"), std::string::npos);
  sink.result.state = "filtered";
  EXPECT_NE(c.Send(Adt("P2")).find("MSA|AA|P2"), std::string::npos);
  sink.result.state = "invalid";
  hl7v2::Issue missing;
  missing.code = hl7v2::ErrorCode::kRequiredFieldMissing;
  missing.location = *hl7v2::Path::Parse("PID-3");
  missing.message = "PID-3 (Patient Identifier List) is required but missing";
  sink.result.issues = {missing};
  std::string ae = c.Send(Adt("P3"));
  EXPECT_NE(ae.find("MSA|AE|P3"), std::string::npos) << ae;
  EXPECT_NE(ae.find("ERR||PID^1^3^1|101^Required field missing^HL70357|E"), std::string::npos) << ae;
  sink.result.state = "error";
  sink.result.issues.clear();
  sink.result.reason = "transformer: t.lua:3: boom";
  ae = c.Send(Adt("P4"));
  EXPECT_NE(ae.find("MSA|AE|P4"), std::string::npos) << ae;
  EXPECT_NE(ae.find("207^Application internal error^HL70357|E||||transformer: t.lua:3: boom"),
            std::string::npos)
      << ae;
}

TEST_F(MllpListenerTest, EnhancedModeSendsCommitThenApplicationAckAsMsh16Asks) {
  FakeSink sink;
  StopListenerFirst stop_first{this};
  sink.result.state = "queued";
  MllpListenerOptions o;
  o.sink = &sink;
  o.ack_mode = AckMode::kEnhanced;
  StartListener(o);
  Client c(listener_->port());
  // MSH-16 empty or AL: both ACKs.
  EXPECT_NE(c.Send(Adt("E1")).find("MSA|CA|E1"), std::string::npos);
  EXPECT_NE(c.Reply().find("MSA|AA|E1"), std::string::npos);
  // MSH-16 = ER and a success: the commit ACK only.
  std::string er = "MSH|^~\\&|LAB|HOSP|ISTHMUS|HOSP|20240101||ADT^A01|E2|P|2.5.1|||AL|ER\rPID|1\r";
  EXPECT_NE(c.Send(er).find("MSA|CA|E2"), std::string::npos);
  EXPECT_EQ(c.Reply(300), "");
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

// ---- TLS -------------------------------------------------------------------------------------

TEST_F(MllpListenerTest, AckOverTls) {
  net::TestPki pki = Pki("a");
  MllpListenerOptions o;
  o.tls = ServerTls(pki);
  StartListener(o);
  auto c = net::TlsClient::Connect("127.0.0.1", listener_->port(), {.ca_file = pki.ca_cert});
  ASSERT_TRUE(c.ok()) << c.status();
  std::string ack = TlsSend(**c, Adt("T1"));
  EXPECT_NE(ack.find("\rMSA|AA|T1\r"), std::string::npos) << ack;
  EXPECT_NE(TlsSend(**c, Adt("T2")).find("MSA|AA|T2"), std::string::npos);
  EXPECT_EQ(Count("received"), 2);
  (*c)->Shutdown();
  EXPECT_TRUE(Eventually([&] { return listener_->stats().connections_open.load() == 0; }));
  EXPECT_EQ(listener_->stats().tls_handshake_failures.load(), 0u);
}

TEST_F(MllpListenerTest, ManyConcurrentTlsConnections) {
  net::TestPki pki = Pki("many");
  MllpListenerOptions o;
  o.tls = ServerTls(pki);
  o.tls->ca_file = pki.ca_cert;
  o.tls->require_client_cert = true;
  StartListener(o);
  constexpr int kClients = 8, kEach = 10;
  std::vector<std::thread> threads;
  std::atomic<int> acked{0};
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      auto c = net::TlsClient::Connect(
          "127.0.0.1", listener_->port(),
          {.ca_file = pki.ca_cert, .cert_file = pki.client_cert, .key_file = pki.client_key});
      if (!c.ok()) return;
      for (int i = 0; i < kEach; ++i) {
        std::string id = "S" + std::to_string(t) + "-" + std::to_string(i);
        if (TlsSend(**c, Adt(id)).find("MSA|AA|" + id + "\r") != std::string::npos) ++acked;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(acked.load(), kClients * kEach);
  EXPECT_EQ(Count(), kClients * kEach);
}

TEST_F(MllpListenerTest, MutualTlsAcceptsOnlyClientsWithACertificateFromTheCa) {
  net::TestPki pki = Pki("good");
  net::TestPki other = Pki("other");
  MllpListenerOptions o;
  o.tls = ServerTls(pki);
  o.tls->ca_file = pki.ca_cert;
  o.tls->require_client_cert = true;
  StartListener(o);
  int port = listener_->port();

  // With TLS 1.3 the client may finish its side of the handshake before the server has checked
  // the client certificate; the server's alert then ends the first read. Either way: no ACK.
  auto refused = [&](const net::TlsClientOptions& co) {
    auto c = net::TlsClient::Connect("127.0.0.1", port, co);
    if (!c.ok()) return true;
    return TlsSend(**c, Adt("NO")) == "";
  };
  EXPECT_TRUE(refused({.ca_file = pki.ca_cert}));  // no client certificate
  EXPECT_TRUE(refused({.ca_file = pki.ca_cert,
                       .cert_file = other.client_cert,
                       .key_file = other.client_key}));  // a certificate from another CA
  auto good = net::TlsClient::Connect(
      "127.0.0.1", port,
      {.ca_file = pki.ca_cert, .cert_file = pki.client_cert, .key_file = pki.client_key});
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_NE(TlsSend(**good, Adt("M1")).find("MSA|AA|M1"), std::string::npos);
  EXPECT_TRUE(Eventually([&] { return listener_->stats().tls_handshake_failures.load() == 2; }));
  EXPECT_EQ(Count(), 1);  // nothing from the refused clients
  EXPECT_TRUE(Logged("TLS handshake failed")) << ::testing::PrintToString(Log());
  // The log names the peer address and the reason, nothing the client sent.
  for (const std::string& line : Log()) EXPECT_EQ(line.rfind("127.0.0.1:", 0), 0u) << line;
}

TEST_F(MllpListenerTest, MinimumTlsVersionIsEnforced) {
  net::TestPki pki = Pki("v");
  MllpListenerOptions o;
  o.tls = ServerTls(pki);
  o.tls->min_version = net::TlsVersion::kTls13;
  StartListener(o);
  auto old = net::TlsClient::Connect("127.0.0.1", listener_->port(),
                                     {.ca_file = pki.ca_cert, .max_version = TLS1_2_VERSION});
  EXPECT_FALSE(old.ok());
  auto c = net::TlsClient::Connect("127.0.0.1", listener_->port(), {.ca_file = pki.ca_cert});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_NE(TlsSend(**c, Adt("V1")).find("MSA|AA|V1"), std::string::npos);
  EXPECT_TRUE(Eventually([&] { return listener_->stats().tls_handshake_failures.load() == 1; }));
}

TEST_F(MllpListenerTest, Tls12StillWorksByDefault) {
  net::TestPki pki = Pki("v12");
  MllpListenerOptions o;
  o.tls = ServerTls(pki);
  o.tls->ca_file = pki.ca_cert;
  o.tls->require_client_cert = true;
  StartListener(o);
  auto c = net::TlsClient::Connect("127.0.0.1", listener_->port(),
                                   {.ca_file = pki.ca_cert,
                                    .cert_file = pki.client_cert,
                                    .key_file = pki.client_key,
                                    .max_version = TLS1_2_VERSION});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_NE(TlsSend(**c, Adt("V2")).find("MSA|AA|V2"), std::string::npos);
  // Without a certificate, TLS 1.2 fails in the handshake itself.
  auto anon = net::TlsClient::Connect("127.0.0.1", listener_->port(),
                                      {.ca_file = pki.ca_cert, .max_version = TLS1_2_VERSION});
  EXPECT_FALSE(anon.ok());
}

TEST_F(MllpListenerTest, PlainClientsOnATlsPortDoNotHangIt) {
  net::TestPki pki = Pki("p");
  MllpListenerOptions o;
  o.tls = ServerTls(pki);
  o.frame_timeout = absl::Milliseconds(300);
  StartListener(o);
  int port = listener_->port();

  Client silent(port);  // connects and never says anything
  ASSERT_TRUE(silent.connected());
  Client http(port);    // speaks something else entirely
  http.SendRaw("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  Client plain(port);   // speaks plain MLLP: told why, in plain text
  std::string nak = plain.Send(Adt("P1"));
  EXPECT_NE(nak.find("MSA|AR|"), std::string::npos) << nak;
  EXPECT_NE(nak.find("requires TLS"), std::string::npos) << nak;
  EXPECT_TRUE(plain.ClosedByServer());

  // Meanwhile a TLS client is served.
  auto c = net::TlsClient::Connect("127.0.0.1", port, {.ca_file = pki.ca_cert});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_NE(TlsSend(**c, Adt("P2")).find("MSA|AA|P2"), std::string::npos);

  EXPECT_TRUE(http.ClosedByServer());
  EXPECT_TRUE(silent.ClosedByServer());  // after frame_timeout
  EXPECT_TRUE(Eventually([&] { return listener_->stats().tls_handshake_timeouts.load() == 1; }));
  EXPECT_EQ(listener_->stats().tls_handshake_failures.load(), 3u);
  EXPECT_TRUE(Logged("not completed within 300ms")) << ::testing::PrintToString(Log());
  EXPECT_TRUE(Logged("plain MLLP sent to a TLS port"));
  // The TLS client is still served after all that.
  EXPECT_NE(TlsSend(**c, Adt("P3")).find("MSA|AA|P3"), std::string::npos);
  EXPECT_EQ(Count(), 2);
}

TEST_F(MllpListenerTest, BadTlsConfigurationFailsAtStartNamingTheFile) {
  net::TestPki a = Pki("ka");
  net::TestPki b = Pki("kb");
  auto start_error = [&](net::TlsServerOptions t) {
    MllpListenerOptions o;
    o.port = 0;
    o.tls = t;
    auto l = MllpListener::Start(loop_, o, *journal_);
    EXPECT_FALSE(l.ok());
    EXPECT_EQ(l.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(l.status().message());
  };
  net::TlsServerOptions t = ServerTls(a);
  t.cert_file = (dir_ / "missing.pem").string();
  std::string e = start_error(t);
  EXPECT_NE(e.find("missing.pem' does not exist"), std::string::npos) << e;

  t = ServerTls(a);
  t.key_file = b.server_key;  // another certificate's key
  e = start_error(t);
  EXPECT_NE(e.find(base::StrCat("key file '", b.server_key, "' does not match the certificate")),
            std::string::npos) << e;

  t = ServerTls(a);
  t.cert_file = a.server_key;  // a key where the certificate belongs
  e = start_error(t);
  EXPECT_NE(e.find(base::StrCat("certificate file '", a.server_key, "'")), std::string::npos) << e;

  t = ServerTls(a);
  t.key_file = a.server_key_encrypted;  // refused, never a password prompt on the terminal
  e = start_error(t);
  EXPECT_NE(e.find(base::StrCat("key file '", a.server_key_encrypted, "'")), std::string::npos) << e;
  EXPECT_NE(e.find("encrypted key is not supported"), std::string::npos) << e;

  t = ServerTls(a);
  t.require_client_cert = true;
  e = start_error(t);
  EXPECT_NE(e.find("require_client_cert needs ca_file"), std::string::npos) << e;

  t = ServerTls(a);
  t.ca_file = a.server_key;  // no certificates in it
  e = start_error(t);
  EXPECT_NE(e.find(base::StrCat("CA file '", a.server_key, "'")), std::string::npos) << e;
}

// A peer nobody here wrote: Python's ssl module (default context: verifies the server for
// "localhost", modern protocol versions) as an mTLS MLLP client.
TEST_F(MllpListenerTest, PythonSslClientGetsAckOverMutualTls) {
  if (!std::filesystem::exists("/usr/bin/python3")) GTEST_SKIP() << "no /usr/bin/python3";
  net::TestPki pki = Pki("py");
  MllpListenerOptions o;
  o.tls = ServerTls(pki);
  o.tls->ca_file = pki.ca_cert;
  o.tls->require_client_cert = true;
  StartListener(o);
  std::string script = (dir_ / "client.py").string();
  {
    std::ofstream out(script);
    out << R"(import socket, ssl, sys
port, ca, cert, key, control_id = sys.argv[1:]
ctx = ssl.create_default_context(cafile=ca)
if cert:
    ctx.load_cert_chain(cert, key)
msg = ("MSH|^~\\&|PY|HOSP|ISTHMUS|HOSP|20240101||ADT^A01|" + control_id + "|P|2.5.1\rPID|1\r")
try:
    with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            t.sendall(b"\x0b" + msg.encode() + b"\x1c\r")
            data = b""
            while not data.endswith(b"\x1c\r"):
                chunk = t.recv(65536)
                if not chunk:
                    break
                data += chunk
            print(t.version(), data.strip(b"\x0b\x1c\r").decode().replace("\r", "\n"))
except (ssl.SSLError, OSError) as e:
    print("refused:", type(e).__name__)
)";
  }
  auto run = [&](bool with_cert, std::string control_id) {
    std::string cmd = base::StrCat("/usr/bin/python3 ", script, " ", listener_->port(), " ",
                                   pki.ca_cert, " '", with_cert ? pki.client_cert : "", "' '",
                                   with_cert ? pki.client_key : "", "' ", control_id, " 2>&1");
    std::string out;
    if (FILE* p = ::popen(cmd.c_str(), "r")) {
      char buf[4096];
      while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
      ::pclose(p);
    }
    return out;
  };
  std::string out = run(true, "PY1");
  EXPECT_NE(out.find("TLSv1.3 MSH|"), std::string::npos) << out;
  EXPECT_NE(out.find("\nMSA|AA|PY1"), std::string::npos) << out;
  out = run(false, "PY2");
  EXPECT_NE(out.find("refused:"), std::string::npos) << out;
  EXPECT_EQ(Count(), 1);
}

// ---- IP allowlist ----------------------------------------------------------------------------

TEST_F(MllpListenerTest, AllowlistAdmitsListedAddresses) {
  MllpListenerOptions o;
  o.allow = {"127.0.0.1/32"};
  StartListener(o);
  Client c(listener_->port());
  EXPECT_NE(c.Send(Adt("A1")).find("MSA|AA|A1"), std::string::npos);
  EXPECT_EQ(listener_->stats().connections_denied.load(), 0u);
}

TEST_F(MllpListenerTest, AllowlistClosesOtherAddressesAtOnce) {
  MllpListenerOptions o;
  o.allow = {"10.0.0.0/8", "::1/128"};
  StartListener(o);
  Client c(listener_->port());
  ASSERT_TRUE(c.connected());
  c.SendRaw(net::MllpEncode(Adt("D1")));
  EXPECT_TRUE(c.ClosedByServer());
  EXPECT_TRUE(Eventually([&] { return listener_->stats().connections_denied.load() == 1; }));
  EXPECT_EQ(listener_->stats().connections_open.load(), 0);
  EXPECT_EQ(listener_->stats().messages_received.load(), 0u);
  EXPECT_EQ(Count(), 0);
  std::vector<std::string> log = Log();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].rfind("127.0.0.1:", 0), 0u) << log[0];
  EXPECT_NE(log[0].find("not in the IP allowlist"), std::string::npos) << log[0];
}

TEST_F(MllpListenerTest, BadAllowlistFailsAtStart) {
  MllpListenerOptions o;
  o.port = 0;
  o.allow = {"127.0.0.1/32", "10.0.0.0/40"};
  auto l = MllpListener::Start(loop_, o, *journal_);
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(l.status().message().find("10.0.0.0/40"), std::string::npos) << l.status();
}

TEST_F(MllpListenerTest, Ipv6LoopbackWithAllowlistAndTls) {
  net::TestPki pki = Pki("six");
  for (bool allowed : {true, false}) {
    SCOPED_TRACE(allowed);
    MllpListenerOptions o;
    o.host = "::1";
    o.port = 0;
    o.allow = {allowed ? "::1/128" : "127.0.0.0/8"};
    o.tls = ServerTls(pki);
    o.log = [](std::string_view) {};
    auto l = MllpListener::Start(loop_, o, *journal_);
    if (!l.ok() && l.status().code() == absl::StatusCode::kUnavailable) {
      GTEST_SKIP() << "no IPv6 loopback here: " << l.status();
    }
    ASSERT_TRUE(l.ok()) << l.status();
    if (!thread_.joinable()) thread_ = std::thread([this] { loop_.Run(); });
    int port = (*l)->port();
    if (allowed) {
      auto c = net::TlsClient::Connect("::1", port, {.ca_file = pki.ca_cert});
      ASSERT_TRUE(c.ok()) << c.status();
      EXPECT_NE(TlsSend(**c, Adt("S1")).find("MSA|AA|S1"), std::string::npos);
    } else {
      Client c(port, /*ipv6=*/true);
      ASSERT_TRUE(c.connected());
      EXPECT_TRUE(c.ClosedByServer());
      EXPECT_TRUE(Eventually([&] { return (*l)->stats().connections_denied.load() == 1; }));
    }
    (*l)->Stop();
  }
}

}  // namespace
}  // namespace isthmus::listeners
