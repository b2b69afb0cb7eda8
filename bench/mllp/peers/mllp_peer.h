// Shared by the two C++ baseline servers of bench/mllp (echo_server.cc, fsync_server.cc).
// Measurement baselines, not product code: a blocking thread per connection, MLLP framing
// (VT ... FS CR), an ACK with MSA|AA|<MSH-10>. They show what the loopback and the disk allow.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <thread>

namespace mllp_peer {

// MSH-10 of a message (fields split on '|' in the first segment).
inline std::string_view ControlId(std::string_view msg) {
  std::string_view msh = msg.substr(0, msg.find('\r'));
  size_t pos = 0;
  for (int i = 0; i < 9; ++i) {
    pos = msh.find('|', pos);
    if (pos == std::string_view::npos) return {};
    ++pos;
  }
  size_t end = msh.find('|', pos);
  return msh.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
}

inline std::string AckFrame(std::string_view msg) {
  std::string_view id = ControlId(msg);
  std::string ack = "\x0bMSH|^~\\&|PEER|BENCH|||20240101000000||ACK|";
  ack.append(id).append("|P|2.5\rMSA|AA|").append(id).append("\r\x1c\r");
  return ack;
}

inline bool WriteAll(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t w = send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (w <= 0) return false;
    s.remove_prefix(static_cast<size_t>(w));
  }
  return true;
}

// Listens on 127.0.0.1:port (0 = any), writes "PORT" to ready_file, and runs on_frame(frame)
// for every complete frame of every connection, on that connection's thread; on_frame returns
// the bytes to send back.
inline int Serve(int port, const char* ready_file,
                 const std::function<std::string(std::string_view)>& on_frame) {
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(lfd, 512) != 0) {
    perror("bind/listen");
    return 1;
  }
  socklen_t len = sizeof sa;
  getsockname(lfd, reinterpret_cast<sockaddr*>(&sa), &len);
  if (ready_file) {
    std::string tmp = std::string(ready_file) + ".tmp";
    FILE* f = fopen(tmp.c_str(), "w");
    fprintf(f, "%d\n", ntohs(sa.sin_port));
    fclose(f);
    rename(tmp.c_str(), ready_file);
  }
  for (;;) {
    int fd = accept(lfd, nullptr, nullptr);
    if (fd < 0) continue;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::thread([fd, &on_frame] {
      std::string buf;
      char tmp[65536];
      for (;;) {
        ssize_t r = recv(fd, tmp, sizeof tmp, 0);
        if (r <= 0) break;
        buf.append(tmp, static_cast<size_t>(r));
        size_t start = 0, fs;
        std::string out;
        while ((fs = buf.find('\x1c', start)) != std::string::npos && fs + 1 < buf.size()) {
          size_t vt = buf.find('\x0b', start);
          size_t body = (vt != std::string::npos && vt < fs) ? vt + 1 : start;
          out += on_frame(std::string_view(buf).substr(body, fs - body));
          start = fs + 2;
        }
        buf.erase(0, start);
        if (!out.empty() && !WriteAll(fd, out)) break;
      }
      close(fd);
    }).detach();
  }
}

inline int PortArg(int argc, char** argv, const char** ready) {
  int port = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--ready-file")) *ready = argv[i + 1];
  }
  return port;
}

}  // namespace mllp_peer
