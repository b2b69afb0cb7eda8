#include "listeners/mllp/mllp_listener.h"

#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <cstdio>
#include <list>
#include <mutex>
#include <span>
#include <type_traits>

#include "base/str.h"
#include "hl7v2/ack.h"
#include "hl7v2/issue.h"
#include "hl7v2/message.h"
#include "net/asio_loop.h"
#include "net/asio_tls.h"
#include "net/ip_allowlist.h"
#include "net/mllp_codec.h"

namespace isthmus::listeners {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

std::chrono::steady_clock::duration ToChrono(absl::Duration d) {
  return std::chrono::microseconds(absl::ToInt64Microseconds(d));
}

hl7v2::Issue MakeIssue(hl7v2::ErrorCode code, std::string message) {
  hl7v2::Issue i;
  i.code = code;
  i.message = std::move(message);
  return i;
}

// State shared by a session, its watchdog and Stop(), whatever the stream type.
struct ConnectionBase {
  explicit ConnectionBase(const tcp::socket::executor_type& ex) : timer(ex) {}
  tcp::socket* socket = nullptr;  // the TCP layer of the stream; set by Connection
  asio::steady_timer timer;
  Clock::time_point deadline;
  bool timed_out = false;
};

// A session's stream: tcp::socket for plain MLLP, TlsStream for MLLP over TLS. Sessions are
// templates over it, so the plain path has no TLS branches or virtual calls per read.
template <typename Stream>
struct Connection : ConnectionBase {
  template <typename... Args>
  explicit Connection(tcp::socket s, Args&... args)
      : ConnectionBase(s.get_executor()), stream(std::move(s), args...) {
    if constexpr (std::is_same_v<Stream, tcp::socket>) {
      socket = &stream;
    } else {
      socket = &stream.next_layer();
    }
  }
  Stream stream;
};

using TlsStream = asio::ssl::stream<tcp::socket>;
template <typename Stream>
constexpr bool kIsTls = std::is_same_v<Stream, TlsStream>;

std::string PeerOf(const tcp::socket& s) {
  boost::system::error_code ec;
  auto ep = s.remote_endpoint(ec);
  if (ec) return "unknown peer";
  if (ep.address().is_v6()) {
    return base::StrCat("[", ep.address().to_string(), "]:", static_cast<int>(ep.port()));
  }
  return base::StrCat(ep.address().to_string(), ":", static_cast<int>(ep.port()));
}

}  // namespace

struct MllpListener::Impl : std::enable_shared_from_this<MllpListener::Impl> {
  Impl(asio::io_context& io, MllpListenerOptions o, store::Journal& j)
      : io(io), opts(std::move(o)), journal(j), acceptor(io) {}

  asio::io_context& io;
  MllpListenerOptions opts;
  store::Journal& journal;
  tcp::acceptor acceptor;
  net::IpAllowlist allow;
  std::unique_ptr<asio::ssl::context> tls;  // set when opts.tls is
  MllpListenerStats stats;
  std::atomic<int> port{0};
  std::atomic<bool> stopping{false};
  std::mutex conns_mu;
  std::list<std::weak_ptr<ConnectionBase>> conns;  // guarded by conns_mu

  void Log(std::string_view line) {
    if (opts.log) {
      opts.log(line);
    } else {
      std::fprintf(stderr, "isthmus mllp[%s]: %.*s\n", opts.channel.c_str(),
                   static_cast<int>(line.size()), line.data());
    }
  }

  // Runs `start(callback)` and resumes the coroutine on its own executor when the callback is
  // called (from another thread, e.g. the store writer or a pipeline worker).
  // Note: GCC 12 can destroy temporaries inside a co_await expression twice, so coroutine code
  // here passes named lvalues (never temporaries with destructors) into co_await expressions.
  template <typename T, typename Start>
  asio::awaitable<T> AwaitCallback(Start& start) {
    auto initiation = [&start](auto handler) {
      auto ex = asio::get_associated_executor(handler);
      start([handler = std::move(handler), ex](T r) mutable {
        asio::post(ex, [handler = std::move(handler), r = std::move(r)]() mutable {
          std::move(handler)(std::move(r));
        });
      });
    };
    T result = co_await asio::async_initiate<decltype(asio::use_awaitable), void(T)>(
        initiation, asio::use_awaitable);
    co_return result;
  }

  // Journals `m`; resumes once the commit is durable.
  asio::awaitable<absl::StatusOr<store::AppendResult>> Journal(store::IncomingMessage& m) {
    auto start = [this, &m](store::AppendCallback cb) { journal.Append(std::move(m), std::move(cb)); };
    absl::StatusOr<store::AppendResult> r = co_await AwaitCallback<absl::StatusOr<store::AppendResult>>(start);
    co_return r;
  }

  // Hands a journaled message to the sink and waits for its outcome.
  asio::awaitable<core::ProcessingResult> Process(int64_t id, std::shared_ptr<const std::string>& raw) {
    auto start = [this, id, &raw](core::ProcessingDone cb) {
      opts.sink->Accept(id, opts.channel, raw, std::move(cb));
    };
    core::ProcessingResult r = co_await AwaitCallback<core::ProcessingResult>(start);
    co_return r;
  }

  // A refusal: AR (CR when `enhanced`) with the finding in ERR, and its text in MSA-3 too: up to
  // v2.4 ERR-1 holds only the location and code, so MSA-3 is where such a sender reads why
  // (BuildAck leaves MSA-3 out from v2.7, where it was withdrawn).
  std::string Nak(std::string_view bytes, bool enhanced, hl7v2::Issue issue) {
    hl7v2::AckOptions a;
    a.code = enhanced ? hl7v2::AckCode::kCR : hl7v2::AckCode::kAR;
    a.sending_application = opts.application;
    a.text = issue.message;
    a.issues.push_back(std::move(issue));
    return hl7v2::BuildNakForUnparsable(bytes, a);
  }

  // The application ACK for a processing outcome: AA when the message was accepted (including
  // filtered / unrouted, which are decisions, not failures), AE with the findings otherwise.
  std::string ApplicationAck(const hl7v2::Message& msg, const core::ProcessingResult& r) {
    hl7v2::AckOptions a;
    a.sending_application = opts.application;
    bool failed = r.state == "invalid" || r.state == "error";
    a.code = failed ? hl7v2::AckCode::kAE : hl7v2::AckCode::kAA;
    if (failed) {
      for (const hl7v2::Issue& i : r.issues) {
        if (i.severity == hl7v2::Severity::kError) a.issues.push_back(i);
      }
      if (a.issues.empty()) {
        a.issues.push_back(MakeIssue(hl7v2::ErrorCode::kApplicationInternalError, r.reason));
      }
    }
    return hl7v2::BuildAck(msg, a);
  }

  // The journal row's header columns: sender (MSH-3|MSH-4), control id, type^trigger.
  static void FillHeader(const hl7v2::Message& msg, store::IncomingMessage* m) {
    m->sender = base::StrCat(msg.Header(3, 0), "|", msg.Header(4, 0));
    m->control_id = std::string(msg.control_id());
    m->message_type = base::StrCat(msg.message_type(), msg.trigger_event().empty() ? "" : "^",
                                   msg.trigger_event());
  }

  // A frame that did not parse: its journal row (state "rejected") and how to refuse it.
  struct Rejected {
    store::IncomingMessage row;
    bool commit_reject = false;  // CR rather than AR: the sender uses enhanced mode
  };

  // `why` is the frame parse's finding. The MSH line is read once, alone, for the row's header
  // columns (so the rejected copy can be found by its control id and sender; a rejected row is
  // never a duplicate's original: the corrected retransmission is processed) and for MSH-15: a
  // sender asking for enhanced mode gets a commit reject (CR), as an accepted message would get
  // CA. It is read only when the frame's parse got past MSH: when MSH itself was the problem (no
  // MSH first, unusable delimiters: location MSH, no repetition), the line alone fails the same
  // way. An `enhanced` listener always answers CR.
  Rejected Reject(const std::string& frame, const std::string& peer, const hl7v2::Issue& why) const {
    Rejected r;
    r.row.channel = opts.channel;
    r.row.peer = peer;
    r.row.state = "rejected";
    r.commit_reject = opts.ack_mode == AckMode::kEnhanced;
    const bool msh_failed = why.location.segment == "MSH" && why.location.segment_index == 0;
    if (!msh_failed) {
      hl7v2::ParseOptions header;
      header.header_only = true;
      const std::string_view msh_line = std::string_view(frame).substr(0, frame.find_first_of("\r\n"));
      if (auto h = hl7v2::Message::Parse(msh_line, header); h.ok()) {
        FillHeader(*h, &r.row);
        if (opts.ack_mode == AckMode::kAfterPersist && !h->Header(15, 0).empty()) r.commit_reject = true;
      }
    }
    r.row.reason = why.location.segment.empty()
                       ? why.message
                       : base::StrCat(why.location.ToString(), ": ", why.message);
    r.row.raw = frame;
    return r;
  }

  // NAKs for input that is not a message (bytes outside a frame, an oversized or unfinished
  // frame, plain MLLP on a TLS port): CR on an `enhanced` listener, AR otherwise.
  bool CommitLevelNaks() const { return opts.ack_mode == AckMode::kEnhanced; }

  // The responses to one framed message (none, one, or a commit ACK then an application ACK).
  asio::awaitable<std::vector<std::string>> HandleFrame(const std::string& frame, const std::string& peer) {
    std::vector<std::string> replies;
    stats.messages_received++;
    // Parsed from the copy that travels to the pipeline, so the pipeline can reuse the parse.
    std::shared_ptr<const std::string> raw = std::make_shared<const std::string>(frame);
    // Only the header is parsed when nothing here reads more: the ACK, duplicate detection and
    // the journal row read MSH; a channel decided before the commit reads the rest only if the
    // sink says so; after-processing and enhanced modes hand the sink the raw bytes. (Splitting
    // every field of every segment was a third of a network thread's work per message.)
    const bool decide_now =
        opts.ack_mode == AckMode::kAfterPersist || opts.ack_mode == AckMode::kNone;
    hl7v2::ParseOptions parse;
    parse.header_only =
        opts.sink == nullptr || !decide_now || !opts.sink->NeedsMessageBody(opts.channel);
    auto parsed = hl7v2::Message::Parse(*raw, parse);
    if (!parsed.ok()) {
      std::optional<hl7v2::Issue> issue = hl7v2::IssueFromStatus(parsed.status());
      hl7v2::Issue i = issue.value_or(
          MakeIssue(hl7v2::ErrorCode::kSegmentSequenceError, std::string(parsed.status().message())));
      // Keep the rejected bytes: nothing is silently dropped.
      Rejected rejected = Reject(frame, peer, i);
      absl::StatusOr<store::AppendResult> stored = co_await Journal(rejected.row);
      (void)stored;  // the NAK goes out whether or not the rejected copy was stored
      stats.messages_nacked++;
      stats.messages_rejected++;
      if (opts.on_rejected) opts.on_rejected();
      if (opts.ack_mode != AckMode::kNone) {
        replies.push_back(Nak(frame, rejected.commit_reject, std::move(i)));
      }
      co_return replies;
    }
    const hl7v2::Message& msg = *parsed;
    const bool enhanced = opts.ack_mode == AckMode::kEnhanced ||
                          (opts.ack_mode == AckMode::kAfterPersist && !msg.Header(15, 0).empty());
    store::IncomingMessage m;
    m.channel = opts.channel;
    FillHeader(msg, &m);
    m.peer = peer;
    m.shared_raw = raw;
    // A channel the sink can decide now has its outcome written with the message: one commit.
    std::optional<core::PreCommitOutcome> decided;
    if (opts.sink != nullptr &&
        (opts.ack_mode == AckMode::kAfterPersist || opts.ack_mode == AckMode::kNone)) {
      decided = opts.sink->DecideBeforeCommit(opts.channel, *parsed);
      if (decided) {
        m.then = std::move(decided->write);
        m.then_state = decided->state;
      }
    }
    absl::StatusOr<store::AppendResult> stored = co_await Journal(m);
    hl7v2::AckOptions a;
    a.sending_application = opts.application;
    if (!stored.ok()) {
      stats.messages_nacked++;
      a.code = enhanced ? hl7v2::AckCode::kCR : hl7v2::AckCode::kAR;
      a.issues.push_back(MakeIssue(
          hl7v2::ErrorCode::kApplicationInternalError,
          base::StrCat("the message could not be stored (", absl::StatusCodeToString(stored.status().code()),
                       "); send it again")));
      a.text = a.issues.back().message;  // MSA-3, as in Nak()
      if (opts.ack_mode != AckMode::kNone) replies.push_back(hl7v2::BuildAck(msg, a));
      co_return replies;
    }
    if (stored->duplicate) stats.duplicates++;
    stats.messages_acked++;
    // A retransmission was processed the first time: acknowledge it again, do not process twice.
    const bool process = opts.sink != nullptr && !stored->duplicate;
    switch (opts.ack_mode) {
      case AckMode::kNone:
      case AckMode::kAfterPersist:
        if (opts.ack_mode == AckMode::kAfterPersist) {
          a.code = enhanced ? hl7v2::AckCode::kCA : hl7v2::AckCode::kAA;
          replies.push_back(hl7v2::BuildAck(msg, a));
        }
        if (process && decided) {
          decided->committed();
        } else if (process && parsed->header_only()) {
          opts.sink->Accept(stored->id, opts.channel, raw, nullptr);  // the sink parses it all
        } else if (process) {
          // The ACK is built: the parsed message goes with the raw bytes it views.
          opts.sink->AcceptParsed(stored->id, opts.channel, raw,
                                  std::make_shared<hl7v2::Message>(std::move(*parsed)), nullptr);
        }
        co_return replies;
      case AckMode::kAfterProcessing: {
        core::ProcessingResult r;
        r.state = "processed";
        if (process) r = co_await Process(stored->id, raw);
        replies.push_back(ApplicationAck(msg, r));
        co_return replies;
      }
      case AckMode::kEnhanced: {
        a.code = hl7v2::AckCode::kCA;
        replies.push_back(hl7v2::BuildAck(msg, a));
        core::ProcessingResult r;
        r.state = "processed";
        if (process) r = co_await Process(stored->id, raw);
        std::string_view want = msg.Header(16, 0);
        bool failed = r.state == "invalid" || r.state == "error";
        bool send = want.empty() || want == "AL" || (want == "ER" && failed) || (want == "SU" && !failed);
        if (send) replies.push_back(ApplicationAck(msg, r));
        co_return replies;
      }
    }
    co_return replies;
  }

  asio::awaitable<void> Watchdog(std::shared_ptr<ConnectionBase> c) {
    while (c->socket->is_open()) {
      c->timer.expires_at(c->deadline);
      boost::system::error_code ec;
      co_await c->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (!c->socket->is_open()) co_return;
      if (c->deadline <= Clock::now()) {
        c->timed_out = true;
        c->socket->cancel(ec);
        co_return;
      }
    }
  }

  // Reads, frames, journals and answers until the peer leaves, a timeout, an error or Stop().
  // Returns the error that ended the reads (eof when the peer closed cleanly).
  template <typename Stream>
  asio::awaitable<boost::system::error_code> Serve(Connection<Stream>& c, const std::string& peer) {
    boost::system::error_code ec;
    net::MllpDecoder decoder(opts.max_frame_bytes);
    std::vector<net::MllpEvent> events;
    std::vector<char> buf(64 * 1024);

    std::string framed;
    auto send = [&](const std::string& reply) -> asio::awaitable<bool> {
      if (reply.empty()) co_return true;
      framed = net::MllpEncode(reply);
      boost::system::error_code wec;
      co_await asio::async_write(c.stream, asio::buffer(framed),
                                 asio::redirect_error(asio::use_awaitable, wec));
      co_return !wec;
    };

    asio::steady_timer pause(c.stream.get_executor());
    while (!stopping) {
      // Back-pressure: while the pipeline is behind, do not read (the sender waits for its ACK)
      // rather than let accepted messages pile up in memory.
      if (opts.sink != nullptr && opts.sink->Backlog() > opts.max_backlog) {
        stats.backpressure_pauses++;
        while (!stopping && opts.sink->Backlog() > opts.max_backlog) {
          pause.expires_after(std::chrono::milliseconds(2));
          co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
          c.deadline = Clock::now() + ToChrono(opts.idle_timeout);
        }
        ec.clear();
      }
      size_t n = co_await c.stream.async_read_some(asio::buffer(buf),
                                                   asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      stats.bytes_received += n;
      events.clear();
      decoder.Feed(std::string_view(buf.data(), n), &events);
      c.deadline = Clock::now() + ToChrono(decoder.in_frame() ? opts.frame_timeout : opts.idle_timeout);
      // Wake the watchdog to re-arm when the deadline moved earlier (idle -> in a frame).
      if (c.deadline < c.timer.expiry()) c.timer.cancel();
      bool ok = true;
      for (net::MllpEvent& e : events) {
        std::vector<std::string> replies;
        std::string reply;
        switch (e.kind) {
          case net::MllpEvent::kFrame:
            replies = co_await HandleFrame(e.payload, peer);
            break;
          case net::MllpEvent::kOversized:
            stats.messages_nacked++;
            reply = Nak("", CommitLevelNaks(), MakeIssue(hl7v2::ErrorCode::kApplicationInternalError,
                                             base::StrCat("frame of ", e.bytes, " bytes exceeds the limit of ",
                                                          opts.max_frame_bytes, " bytes")));
            break;
          case net::MllpEvent::kGarbage:
            stats.messages_nacked++;
            reply = Nak("", CommitLevelNaks(), MakeIssue(hl7v2::ErrorCode::kSegmentSequenceError,
                                             base::StrCat(e.bytes, " bytes arrived outside an MLLP frame "
                                                                   "(expected VT ... FS CR)")));
            break;
          case net::MllpEvent::kUnterminated:
            stats.messages_nacked++;
            reply = Nak(e.payload, CommitLevelNaks(),
                        MakeIssue(hl7v2::ErrorCode::kSegmentSequenceError,
                                  "MLLP frame not terminated: a new frame began before FS CR"));
            break;
        }
        // ack_mode none answers nothing, refusals included (counted all the same).
        if (!reply.empty() && opts.ack_mode != AckMode::kNone) replies.push_back(std::move(reply));
        for (const std::string& r : replies) {
          ok = co_await send(r);
          if (!ok) break;
        }
        if (!ok) break;
      }
      if (!ok) break;
    }
    if (c.timed_out && decoder.in_frame() && !stopping) {
      stats.messages_nacked++;
      std::string nak = Nak("", CommitLevelNaks(), MakeIssue(hl7v2::ErrorCode::kApplicationInternalError,
                                                 base::StrCat("MLLP frame not completed within ",
                                                              absl::FormatDuration(opts.frame_timeout))));
      if (opts.ack_mode != AckMode::kNone) co_await send(nak);
    }
    co_return ec;
  }

  // The TLS handshake, bounded by the deadline the caller set. True when MLLP may start.
  asio::awaitable<bool> Handshake(Connection<TlsStream>& c, const std::string& peer) {
    boost::system::error_code ec;
    // Peek at the first byte: a TLS client starts with a handshake record (0x16), a plain MLLP
    // sender with VT. The latter gets told why in plain text instead of a silent close.
    char first = 0;
    co_await c.socket->async_receive(asio::buffer(&first, 1), tcp::socket::message_peek,
                                     asio::redirect_error(asio::use_awaitable, ec));
    if (ec && !c.timed_out) co_return false;  // closed before a byte: a TCP health check, say
    if (!ec && first == net::kMllpStart) {
      stats.tls_handshake_failures++;
      stats.messages_nacked++;
      Log(base::StrCat(peer, ": plain MLLP sent to a TLS port; answered with a plaintext NAK"));
      // Consume what was sent, so closing sends FIN rather than a reset that could discard the NAK.
      std::vector<char> sink(64 * 1024);
      co_await c.socket->async_read_some(asio::buffer(sink),
                                         asio::redirect_error(asio::use_awaitable, ec));
      std::string framed = net::MllpEncode(Nak(
          "", CommitLevelNaks(),
          MakeIssue(hl7v2::ErrorCode::kApplicationInternalError,
                    "this MLLP port requires TLS: connect with TLS (MLLP over TLS)")));
      co_await asio::async_write(*c.socket, asio::buffer(framed),
                                 asio::redirect_error(asio::use_awaitable, ec));
      co_return false;
    }
    if (!ec) {
      co_await c.stream.async_handshake(TlsStream::server,
                                        asio::redirect_error(asio::use_awaitable, ec));
    }
    if (ec && stopping) co_return false;  // Stop() cancelled it: not the client's failure
    if (ec) {
      stats.tls_handshake_failures++;
      if (c.timed_out) {
        stats.tls_handshake_timeouts++;
        Log(base::StrCat(peer, ": TLS handshake not completed within ",
                         absl::FormatDuration(opts.frame_timeout), "; closed"));
      } else {
        Log(base::StrCat(peer, ": TLS handshake failed: ", ec.message()));
      }
      co_return false;
    }
    c.deadline = Clock::now() + ToChrono(opts.idle_timeout);  // the watchdog re-arms by itself
    co_return true;
  }

  template <typename Stream>
  asio::awaitable<void> Session(std::shared_ptr<Connection<Stream>> c) {
    auto self = shared_from_this();
    std::string peer = PeerOf(*c->socket);
    // A TLS client must finish its handshake as fast as a sender must finish a frame.
    c->deadline = Clock::now() + ToChrono(kIsTls<Stream> ? opts.frame_timeout : opts.idle_timeout);
    std::shared_ptr<ConnectionBase> watched = c;
    asio::co_spawn(c->socket->get_executor(), Watchdog(watched), asio::detached);

    boost::system::error_code ec;
    bool ready = true;
    if constexpr (kIsTls<Stream>) ready = co_await Handshake(*c, peer);
    if (ready) ec = co_await Serve(*c, peer);
    if constexpr (kIsTls<Stream>) {
      if (ready && ec == asio::error::eof && !c->timed_out && !stopping) {
        // The client sent close_notify: answer it (bounded by the watchdog).
        c->deadline = Clock::now() + std::min(ToChrono(opts.frame_timeout),
                                              Clock::duration(std::chrono::seconds(5)));
        if (c->deadline < c->timer.expiry()) c->timer.cancel();
        co_await c->stream.async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
      }
    }
    c->timer.cancel();
    c->socket->shutdown(tcp::socket::shutdown_both, ec);
    c->socket->close(ec);
    stats.connections_open--;
  }

  template <typename Stream>
  void Spawn(std::shared_ptr<Connection<Stream>> conn) {
    {
      std::lock_guard<std::mutex> lock(conns_mu);
      conns.remove_if([](const std::weak_ptr<ConnectionBase>& w) { return w.expired(); });
      conns.push_back(conn);
    }
    asio::co_spawn(conn->socket->get_executor(), Session(conn), asio::detached);
  }

  bool Allowed(const tcp::socket& socket) const {
    boost::system::error_code ec;
    auto ep = socket.remote_endpoint(ec);
    if (ec) return false;
    const asio::ip::address a = ep.address();
    if (a.is_v4()) {
      auto bytes = a.to_v4().to_bytes();
      return allow.Allows(std::span<const uint8_t>(bytes.data(), bytes.size()));
    }
    auto bytes = a.to_v6().to_bytes();
    return allow.Allows(std::span<const uint8_t>(bytes.data(), bytes.size()));
  }

  asio::awaitable<void> AcceptLoop() {
    auto self = shared_from_this();
    while (!stopping) {
      boost::system::error_code ec;
      // Named, not a temporary: see the note on GCC 12 and co_await temporaries.
      auto strand = asio::make_strand(io);
      tcp::socket socket = co_await acceptor.async_accept(
          strand, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (ec == asio::error::operation_aborted || stopping) break;
        continue;  // e.g. out of file descriptors: keep serving the connections we have
      }
      stats.connections_total++;
      if (!allow.empty() && !Allowed(socket)) {
        stats.connections_denied++;
        Log(base::StrCat(PeerOf(socket), ": not in the IP allowlist; closed"));
        socket.close(ec);
        continue;
      }
      if (stats.connections_open.load() >= opts.max_connections) {
        stats.connections_refused++;
        socket.close(ec);
        continue;
      }
      stats.connections_open++;
      if (tls) {
        Spawn(std::make_shared<Connection<TlsStream>>(std::move(socket), *tls));
      } else {
        Spawn(std::make_shared<Connection<tcp::socket>>(std::move(socket)));
      }
    }
  }
};

absl::StatusOr<std::unique_ptr<MllpListener>> MllpListener::Start(net::EventLoop& loop,
                                                                  MllpListenerOptions opts,
                                                                  store::Journal& journal) {
  auto impl = std::make_shared<Impl>(net::IoContext(loop), std::move(opts), journal);
  auto allow = net::IpAllowlist::Parse(impl->opts.allow);
  if (!allow.ok()) return allow.status();
  impl->allow = *std::move(allow);
  if (impl->opts.tls.has_value()) {
    auto ctx = net::MakeTlsServerContext(*impl->opts.tls);
    if (!ctx.ok()) return ctx.status();
    impl->tls = *std::move(ctx);
  }
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(impl->opts.host, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        base::StrCat("bad MLLP listen address '", impl->opts.host, "'"));
  }
  tcp::endpoint ep(addr, static_cast<unsigned short>(impl->opts.port));
  impl->acceptor.open(ep.protocol(), ec);
  if (!ec) impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(ep, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(base::StrCat("cannot listen for MLLP on ", impl->opts.host, ":",
                                               impl->opts.port, ": ", ec.message()));
  }
  impl->port = impl->acceptor.local_endpoint().port();
  asio::co_spawn(impl->io, impl->AcceptLoop(), asio::detached);
  return std::unique_ptr<MllpListener>(new MllpListener(std::move(impl)));
}

MllpListener::~MllpListener() { Stop(); }

int MllpListener::port() const { return impl_->port; }
const MllpListenerOptions& MllpListener::options() const { return impl_->opts; }
const MllpListenerStats& MllpListener::stats() const { return impl_->stats; }

void MllpListener::Stop() {
  if (impl_->stopping.exchange(true)) return;
  asio::post(impl_->io, [impl = impl_] {
    boost::system::error_code ec;
    impl->acceptor.close(ec);
  });
  // Wake sessions blocked in a read; one in the middle of journaling still sends its ACK.
  std::lock_guard<std::mutex> lock(impl_->conns_mu);
  for (auto& w : impl_->conns) {
    if (auto c = w.lock()) {
      asio::post(c->socket->get_executor(), [c] {
        boost::system::error_code ec;
        c->socket->cancel(ec);
      });
    }
  }
}

}  // namespace isthmus::listeners
