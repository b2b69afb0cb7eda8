// Baseline (b): an MLLP server that appends every message to one file and fdatasyncs it before
// answering AA, with group commit: connections queue their frames, one writer thread writes
// everything queued since its last flush with one write() + fdatasync(), then releases every
// connection whose frame was in that batch. The disk's durable-ACK limit without a database.
// Usage: fsync_server --file PATH [--port N] [--ready-file FILE]
#include <fcntl.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "mllp_peer.h"

namespace {
std::mutex mu;
std::condition_variable cv_writer, cv_done;
std::string pending;
uint64_t taken = 0;      // batches taken by the writer
uint64_t committed = 0;  // batches durable
}  // namespace

int main(int argc, char** argv) {
  const char* ready = nullptr;
  const char* path = nullptr;
  int port = mllp_peer::PortArg(argc, argv, &ready);
  for (int i = 1; i + 1 < argc; i += 2)
    if (!strcmp(argv[i], "--file")) path = argv[i + 1];
  if (!path) { fprintf(stderr, "usage: fsync_server --file PATH [--port N] [--ready-file F]\n"); return 2; }
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC, 0644);
  if (fd < 0) { perror(path); return 1; }
  std::thread([fd] {
    std::string batch;
    for (;;) {
      uint64_t b;
      {
        std::unique_lock<std::mutex> lk(mu);
        cv_writer.wait(lk, [] { return !pending.empty(); });
        batch.swap(pending);
        b = ++taken;
      }
      if (write(fd, batch.data(), batch.size()) != static_cast<ssize_t>(batch.size()) ||
          fdatasync(fd) != 0) {
        perror("write/fdatasync");
        std::abort();
      }
      batch.clear();
      {
        std::lock_guard<std::mutex> lk(mu);
        committed = b;
      }
      cv_done.notify_all();
    }
  }).detach();
  return mllp_peer::Serve(port, ready, [](std::string_view m) {
    std::unique_lock<std::mutex> lk(mu);
    pending.append(m).push_back('\n');
    uint64_t mine = taken + 1;  // the batch being filled
    cv_writer.notify_one();
    cv_done.wait(lk, [mine] { return committed >= mine; });
    lk.unlock();
    return mllp_peer::AckFrame(m);
  });
}
