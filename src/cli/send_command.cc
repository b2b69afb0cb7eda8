// `isthmus send`: an MLLP sender for tests, loads and migrations. Sends every message of the
// given files (or directories) over N connections, waits for each ACK, and reports what came back.
#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "base/file.h"
#include "base/str.h"
#include "cli/commands.h"
#include "hl7v2/batch.h"
#include "hl7v2/message.h"
#include "net/mllp_codec.h"
#include "net/tls_client.h"

namespace isthmus::cli {
namespace {

using SteadyClock = std::chrono::steady_clock;

struct TlsClientOptions {
  bool enabled = false;
  std::string ca_file;    // trusted CAs for the server's certificate; "" = the system's
  std::string cert_file;  // client certificate, for mutual TLS
  std::string key_file;
  bool insecure = false;  // no server certificate verification (tests only)
};

struct SendOptions {
  std::string to = "127.0.0.1:2575";
  TlsClientOptions tls;
  int connections = 1;
  double rate = 0;  // messages per second over all connections; 0 = as fast as ACKs allow
  int timeout_seconds = 30;
  bool quiet = false;
  std::vector<std::string> inputs;
};

// A blocking MLLP connection, plain or TLS (net/tls_client.h).
class Connection {
 public:
  explicit Connection(const net::TlsClientContext* tls) : tls_(tls) {}
  ~Connection() { Close(); }
  bool Open(const std::string& host, const std::string& port, std::string* err) {
    if (!OpenTcp(host, port, err)) return false;
    if (tls_ == nullptr) return true;
    auto stream = net::TlsStream::Handshake(*tls_, fd_, host, net::kNoTlsDeadline);
    if (!stream.ok()) {
      *err = base::StrCat(std::string(stream.status().message()), " (port ", port, ")");
      Close();
      return false;
    }
    ssl_ = *std::move(stream);
    return true;
  }

 private:
  bool OpenTcp(const std::string& host, const std::string& port, std::string* err) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0) {
      *err = base::StrCat("cannot resolve ", host, ": ", gai_strerror(rc));
      return false;
    }
    for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
      fd_ = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
      if (fd_ >= 0 && ::connect(fd_, a->ai_addr, a->ai_addrlen) == 0) break;
      if (fd_ >= 0) ::close(fd_);
      fd_ = -1;
    }
    ::freeaddrinfo(res);
    if (fd_ < 0) *err = base::StrCat("cannot connect to ", host, ":", port, ": ", std::strerror(errno));
    return fd_ >= 0;
  }

 public:
  void Close() {
    if (ssl_ != nullptr) {
      ssl_->Shutdown();
      ssl_.reset();
    }
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // Sends one framed message and waits for one framed reply; "" on timeout or close.
  std::string Exchange(std::string_view message, int timeout_ms) {
    std::string framed = net::MllpEncode(message);
    if (ssl_ != nullptr) {
      if (!ssl_->Write(framed, net::kNoTlsDeadline).ok()) return "";
    } else {
      size_t off = 0;
      while (off < framed.size()) {
        ssize_t n = ::send(fd_, framed.data() + off, framed.size() - off, MSG_NOSIGNAL);
        if (n <= 0) return "";
        off += static_cast<size_t>(n);
      }
    }
    auto deadline = SteadyClock::now() + std::chrono::milliseconds(timeout_ms);
    std::vector<net::MllpEvent> events;
    char buf[65536];
    while (true) {
      if (!pending_.empty()) {
        std::string r = std::move(pending_.front());
        pending_.erase(pending_.begin());
        return r;
      }
      int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      deadline - SteadyClock::now()).count());
      if (left <= 0) return "";
      if (ssl_ == nullptr || !ssl_->HasBuffered()) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, left) <= 0) return "";
      }
      ssize_t n;
      if (ssl_ != nullptr) {
        absl::StatusOr<size_t> r = ssl_->Read(buf, sizeof buf, deadline);
        n = r.ok() ? static_cast<ssize_t>(*r) : -1;
        if (!r.ok()) {
          // E.g. the server's alert that it requires a client certificate (TLS 1.3 reports it
          // after the handshake).
          std::string why(r.status().message());
          if (why.starts_with("TLS receive: ")) why.erase(0, 13);
          last_error_ = base::StrCat("TLS: ", why);
        }
      } else {
        n = ::recv(fd_, buf, sizeof buf, 0);
      }
      if (n <= 0) return "";
      events.clear();
      decoder_.Feed(std::string_view(buf, static_cast<size_t>(n)), &events);
      for (auto& e : events) {
        if (e.kind == net::MllpEvent::kFrame) pending_.push_back(std::move(e.payload));
      }
    }
  }

  // The last transport error seen, if any (for the summary).
  const std::string& last_error() const { return last_error_; }

 private:
  std::string last_error_;
  const net::TlsClientContext* tls_;
  std::unique_ptr<net::TlsStream> ssl_;
  int fd_ = -1;
  net::MllpDecoder decoder_{64u << 20};
  std::vector<std::string> pending_;
};

struct Results {
  std::mutex mu;
  std::vector<double> latencies_ms;  // guarded by mu
  std::atomic<uint64_t> sent{0}, aa{0}, ae{0}, ar{0}, ca{0}, ce{0}, cr{0}, no_reply{0}, other{0};
};

void Classify(const std::string& reply, Results& r) {
  auto msg = hl7v2::Message::Parse(reply);
  std::string_view code = msg.ok() ? msg->Get("MSA-1") : std::string_view();
  if (code == "AA") r.aa++;
  else if (code == "AE") r.ae++;
  else if (code == "AR") r.ar++;
  else if (code == "CA") r.ca++;
  else if (code == "CE") r.ce++;
  else if (code == "CR") r.cr++;
  else r.other++;
}

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t k = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  std::nth_element(v.begin(), v.begin() + static_cast<ptrdiff_t>(k), v.end());
  return v[k];
}

void DrawProgress(uint64_t done, uint64_t total, double elapsed_s) {
  constexpr int kWidth = 30;
  int filled = total == 0 ? kWidth : static_cast<int>(kWidth * done / total);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '.');
  double rate = elapsed_s > 0 ? static_cast<double>(done) / elapsed_s : 0;
  std::fprintf(stderr, "\r[%s] %llu/%llu  %.0f msg/s ", bar.c_str(),
               static_cast<unsigned long long>(done), static_cast<unsigned long long>(total), rate);
}

int RunSend(const SendOptions& o) {
  size_t colon = o.to.rfind(':');
  if (colon == std::string::npos) {
    std::fprintf(stderr, "isthmus send: --to wants HOST:PORT\n");
    return 2;
  }
  std::string host = o.to.substr(0, colon), port = o.to.substr(colon + 1);
  // Collect files, expanding directories (sorted, so runs are repeatable).
  std::vector<std::string> files;
  for (const std::string& in : o.inputs) {
    std::error_code ec;
    if (std::filesystem::is_directory(in, ec)) {
      std::vector<std::string> found;
      for (auto& e : std::filesystem::recursive_directory_iterator(in, ec)) {
        if (e.is_regular_file()) found.push_back(e.path().string());
      }
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else {
      files.push_back(in);
    }
  }
  // Split into messages; each message is sent as its own frame.
  std::vector<std::string> messages;
  int unreadable = 0;
  for (const std::string& f : files) {
    auto bytes = base::ReadFile(f);
    if (!bytes.ok()) {
      std::fprintf(stderr, "isthmus send: %s\n", std::string(bytes.status().message()).c_str());
      ++unreadable;
      continue;
    }
    auto batch = hl7v2::SplitBatch(*bytes);
    if (!batch.ok()) {
      std::fprintf(stderr, "isthmus send: %s: skipped: %s\n", f.c_str(),
                   std::string(batch.status().message()).c_str());
      continue;
    }
    for (const auto& m : batch->messages) messages.emplace_back(m.bytes);
  }
  if (messages.empty()) {
    std::fprintf(stderr, "isthmus send: no HL7 v2 messages to send\n");
    return unreadable > 0 ? 2 : 1;
  }

  std::shared_ptr<const net::TlsClientContext> tls;
  if (o.tls.enabled) {
    net::TlsClientSettings settings;
    settings.ca_file = o.tls.ca_file;  // "" = the system's trust store
    settings.cert_file = o.tls.cert_file;
    settings.key_file = o.tls.key_file;  // "" = in the certificate file
    settings.verify = !o.tls.insecure;
    auto made = net::TlsClientContext::Create(std::move(settings));
    if (!made.ok()) {
      std::fprintf(stderr, "isthmus send: %s\n", std::string(made.status().message()).c_str());
      return 2;
    }
    tls = *std::move(made);
  }
  Results results;
  std::atomic<size_t> next{0};
  std::atomic<bool> connect_failed{false};
  std::string connect_error;
  std::mutex err_mu;
  const int conns = std::max(1, std::min<int>(o.connections, static_cast<int>(messages.size())));
  const auto start = SteadyClock::now();
  const double interval_s = o.rate > 0 ? 1.0 / o.rate : 0;
  std::vector<std::thread> workers;
  for (int c = 0; c < conns; ++c) {
    workers.emplace_back([&] {
      Connection conn(tls.get());
      std::string err;
      if (!conn.Open(host, port, &err)) {
        std::lock_guard<std::mutex> lock(err_mu);
        connect_failed = true;
        connect_error = err;
        return;
      }
      std::vector<double> local;
      while (true) {
        size_t i = next.fetch_add(1);
        if (i >= messages.size()) break;
        if (interval_s > 0) {  // pace: message i leaves at start + i * interval
          auto due = start + std::chrono::duration_cast<SteadyClock::duration>(
                                 std::chrono::duration<double>(interval_s * static_cast<double>(i)));
          std::this_thread::sleep_until(due);
        }
        auto t0 = SteadyClock::now();
        std::string reply = conn.Exchange(messages[i], o.timeout_seconds * 1000);
        local.push_back(std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count());
        results.sent++;
        if (reply.empty()) {
          results.no_reply++;
          if (!conn.last_error().empty()) {
            std::lock_guard<std::mutex> lock(err_mu);
            if (connect_error.empty()) connect_error = conn.last_error();
          }
          // Reconnect: the peer may have closed the connection.
          conn.Close();
          if (!conn.Open(host, port, &err)) break;
        } else {
          Classify(reply, results);
        }
      }
      std::lock_guard<std::mutex> lock(results.mu);
      results.latencies_ms.insert(results.latencies_ms.end(), local.begin(), local.end());
    });
  }
  bool tty = !o.quiet && ::isatty(STDERR_FILENO);
  while (tty) {
    double elapsed = std::chrono::duration<double>(SteadyClock::now() - start).count();
    DrawProgress(results.sent, messages.size(), elapsed);
    if (results.sent >= messages.size() || connect_failed) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (auto& t : workers) t.join();
  double elapsed = std::chrono::duration<double>(SteadyClock::now() - start).count();
  if (tty) {
    DrawProgress(results.sent, messages.size(), elapsed);
    std::fprintf(stderr, "\n");
  }
  if (connect_failed && results.sent == 0) {
    std::fprintf(stderr, "isthmus send: %s\n", connect_error.c_str());
    return 2;
  }
  double p50 = Percentile(results.latencies_ms, 0.50);
  double p99 = Percentile(results.latencies_ms, 0.99);
  std::printf(
      "sent %llu messages in %.2f s (%.0f msg/s) over %d connection(s)\n"
      "AA %llu  AE %llu  AR %llu  CA %llu  CE %llu  CR %llu  no reply %llu  unreadable reply %llu\n"
      "latency p50 %.2f ms  p99 %.2f ms\n",
      static_cast<unsigned long long>(results.sent.load()), elapsed,
      elapsed > 0 ? static_cast<double>(results.sent) / elapsed : 0.0, conns,
      static_cast<unsigned long long>(results.aa.load()), static_cast<unsigned long long>(results.ae.load()),
      static_cast<unsigned long long>(results.ar.load()), static_cast<unsigned long long>(results.ca.load()),
      static_cast<unsigned long long>(results.ce.load()), static_cast<unsigned long long>(results.cr.load()),
      static_cast<unsigned long long>(results.no_reply.load()),
      static_cast<unsigned long long>(results.other.load()), p50, p99);
  if (results.no_reply > 0 && !connect_error.empty()) {
    std::printf("first transport error: %s\n", connect_error.c_str());
  }
  bool all_accepted = results.aa + results.ca == results.sent && results.sent == messages.size();
  return all_accepted && unreadable == 0 ? 0 : 1;
}

}  // namespace

Run AddSendCommand(CLI::App& app) {
  auto o = std::make_shared<SendOptions>();
  CLI::App* sub = app.add_subcommand(
      "send",
      "Send HL7 v2 messages over MLLP and report the acknowledgements: a client for tests,\n"
      "load runs and migrations. Files may hold several messages or batches; directories are\n"
      "read recursively in name order. A progress bar shows on a terminal.\n\n"
      "Examples:\n"
      "  isthmus send adt.hl7\n"
      "  isthmus send --to 10.0.0.5:2575 --connections 8 archive/\n"
      "  isthmus send --rate 200 feed.hl7             at most 200 messages per second\n"
      "  isthmus send --tls --ca ca.pem --cert me.pem --key me.key --to host:2576 a.hl7\n\n"
      "Prints: sent, AA/AE/AR (CA/CE/CR), messages without a reply, latency p50/p99.\n"
      "Exit status: 0 every message accepted (AA/CA), 1 otherwise, 2 cannot connect or read.");
  sub->add_option("--to", o->to, "receiver HOST:PORT")->capture_default_str();
  sub->add_flag("--tls", o->tls.enabled, "MLLP over TLS (1.2+); the server's certificate is verified");
  sub->add_option("--ca", o->tls.ca_file, "CA file to verify the server (default: the system's)");
  sub->add_option("--cert", o->tls.cert_file, "client certificate (PEM) for mutual TLS");
  sub->add_option("--key", o->tls.key_file, "client private key (PEM) for mutual TLS");
  sub->add_flag("--insecure", o->tls.insecure, "do not verify the server's certificate (tests only)");
  sub->add_option("--connections", o->connections, "parallel connections")->capture_default_str();
  sub->add_option("--rate", o->rate, "messages per second over all connections (0 = no limit)");
  sub->add_option("--timeout", o->timeout_seconds, "seconds to wait for each ACK")->capture_default_str();
  sub->add_flag("--quiet", o->quiet, "no progress bar");
  sub->add_option("FILE", o->inputs, "files or directories")->required();
  return [o] { return RunSend(*o); };
}

}  // namespace isthmus::cli
