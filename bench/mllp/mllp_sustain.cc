// Sustained MLLP load for bench/mllp (the file-destination scenario): C connections, each a
// blocking thread that sends a message and waits for its ACK (window 1), for D seconds.
// Messages are the templates of a gen_hl7.py file (one per line) with MSH-10 rewritten to
// TAG + connection + sequence, so every message of a run is distinct however long it runs
// (mllp_load cycles through a fixed set, and a repeated control id is a duplicate the engine
// acknowledges without storing it again).
//
// Usage: mllp_sustain -p PORT -f FILE -d SECONDS [-c CONNS] [-t TAG] [-m MAX_TEMPLATES]
// Prints one JSON line: messages ACKed, msgs/s, latency p50/p99 (µs), AA/CA counts, other
// ACK codes (nacks), control-id mismatches, errors, and ACKs per second ("per_s"). SIGTERM ends
// the run early (the report is still printed).
#include <arpa/inet.h>
#include <csignal>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using Clock = std::chrono::steady_clock;

namespace {

std::atomic<bool> g_stop{false};  // SIGTERM/SIGINT: finish the messages in flight and report
extern "C" void OnSignal(int) { g_stop = true; }

struct Template {
  std::string head;  // VT + message up to MSH-10
  std::string tail;  // message after MSH-10 + FS CR
};

bool SplitAtMsh10(const std::string& m, Template* t) {
  size_t seg_end = m.find('\r');
  size_t pos = 0;
  for (int i = 0; i < 9; ++i) {
    pos = m.find('|', pos);
    if (pos == std::string::npos || pos > seg_end) return false;
    ++pos;
  }
  size_t end = m.find('|', pos);
  if (end == std::string::npos || end > seg_end) end = seg_end;
  t->head = "\x0b" + m.substr(0, pos);
  t->tail = m.substr(end) + "\x1c\r";
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1", file, tag = "S";
  int port = 0, conns = 16, max_templates = 10000;
  double seconds = 30;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "-p") port = std::stoi(v);
    else if (a == "-h") host = v;
    else if (a == "-c") conns = std::stoi(v);
    else if (a == "-d") seconds = std::stod(v);
    else if (a == "-f") file = v;
    else if (a == "-t") tag = v;
    else if (a == "-m") max_templates = std::stoi(v);
    else { fprintf(stderr, "bad arg %s\n", a.c_str()); return 2; }
  }
  if (!port || file.empty()) {
    fprintf(stderr, "usage: mllp_sustain -p PORT -f FILE -d SECONDS [-c CONNS] [-t TAG]\n");
    return 2;
  }
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  std::vector<Template> templates;
  {
    std::ifstream in(file, std::ios::binary);
    std::string line;
    while ((int)templates.size() < max_templates && std::getline(in, line, '\n')) {
      Template t;
      if (!line.empty() && SplitAtMsh10(line, &t)) templates.push_back(std::move(t));
    }
  }
  if (templates.empty()) { fprintf(stderr, "no messages in %s\n", file.c_str()); return 1; }

  const int secs_cap = static_cast<int>(seconds) + 2;
  std::vector<std::atomic<long>> per_second(secs_cap);
  std::atomic<long> ok{0}, aa{0}, ca{0}, nacks{0}, mismatched{0}, errors{0};
  std::vector<std::vector<uint32_t>> lat(conns);  // 0.1 µs units, sampled (every 8th)
  auto t_start = Clock::now();
  auto t_stop = t_start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));

  auto worker = [&](int id) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    inet_pton(AF_INET, host.c_str(), &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (sockaddr*)&sa, sizeof sa) != 0) { perror("connect"); errors++; return; }
    std::string rbuf, frame, ctrl;
    char tmp[65536];
    size_t next = (size_t)id * 7919 % templates.size();
    for (long seq = 0; Clock::now() < t_stop && !g_stop; ++seq) {
      const Template& t = templates[next];
      next = (next + 1) % templates.size();
      char idbuf[40];
      snprintf(idbuf, sizeof idbuf, "%s%02d%09ld", tag.c_str(), id, seq);
      ctrl = idbuf;
      frame.assign(t.head).append(ctrl).append(t.tail);
      auto t0 = Clock::now();
      const char* p = frame.data();
      size_t left = frame.size();
      while (left) {
        ssize_t w = send(fd, p, left, MSG_NOSIGNAL);
        if (w <= 0) { errors++; close(fd); return; }
        p += w; left -= w;
      }
      size_t fs;
      while ((fs = rbuf.find('\x1c')) == std::string::npos || fs + 1 >= rbuf.size()) {
        ssize_t r = recv(fd, tmp, sizeof tmp, 0);
        if (r <= 0) { errors++; close(fd); return; }
        rbuf.append(tmp, r);
      }
      auto now = Clock::now();
      std::string ack = rbuf.substr(0, fs);
      rbuf.erase(0, fs + 2);
      size_t msa = ack.find("MSA|");
      std::string code = msa == std::string::npos ? "" : ack.substr(msa + 4, 2);
      if (code == "AA" || code == "CA") {
        (code == "AA" ? aa : ca)++;
        size_t a = msa + 7, e = ack.find_first_of("|\r", a);
        if (ack.compare(a, e - a, ctrl) != 0) mismatched++;
        ok++;
        long s = std::chrono::duration_cast<std::chrono::seconds>(now - t_start).count();
        if (s < secs_cap) per_second[s]++;
      } else {
        nacks++;
      }
      if ((seq & 7) == 0)
        lat[id].push_back((uint32_t)(std::chrono::duration_cast<std::chrono::nanoseconds>(now - t0).count() / 100));
    }
    close(fd);
  };
  std::vector<std::thread> th;
  for (int i = 0; i < conns; ++i) th.emplace_back(worker, i);
  for (auto& t : th) t.join();
  double secs = std::chrono::duration<double>(Clock::now() - t_start).count();
  std::vector<uint32_t> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  auto pct = [&](double q) -> double {
    if (all.empty()) return 0;
    size_t k = std::min(all.size() - 1, (size_t)(q * all.size()));
    std::nth_element(all.begin(), all.begin() + k, all.end());
    return all[k] / 10.0;
  };
  double p50 = pct(0.5), p99 = pct(0.99);
  printf("{\"conns\":%d,\"msgs\":%ld,\"secs\":%.3f,\"msgs_per_s\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
         "\"aa\":%ld,\"ca\":%ld,\"nacks\":%ld,\"ack_mismatch\":%ld,\"errors\":%ld,\"per_s\":[",
         conns, ok.load(), secs, ok.load() / secs, p50, p99, aa.load(), ca.load(), nacks.load(),
         mismatched.load(), errors.load());
  int last = std::min(secs_cap, (int)secs + 1);
  for (int i = 0; i < last; ++i) printf("%s%ld", i ? "," : "", per_second[i].load());
  printf("]}\n");
  return errors.load() ? 1 : 0;
}
