// How a file destination's run of files reaches its names, two ways, interleaved run by run in
// one process so both see the same disk and the same neighbours (docs/PERFORMANCE.md, "MLLP ->
// file: the file destination's cost per file"):
//   named:   open(".name.tmp.N", O_CREAT) + write + close, syncfs, rename, fsync(dir)
//   unnamed: open(dir, O_TMPFILE) + write, syncfs, linkat(/proc/self/fd/N), close, fsync(dir)
// (the two ways destinations/file/file_destination.cc can take). Wall time per file of whole runs
// (write, data sync, names, directory sync) and the same without the two syncs (the CPU-bound
// part: creating, writing and naming files, mostly kernel time), min / p25 / median over the
// runs: the syncs wait for the disk, whose latency on a shared host moves run to run.
//
//   file_publish_bench DIR [runs=400] [files_per_run=100] [bytes=2048]
// DIR must be on the file system under test; the bench creates and removes DIR/named and
// DIR/unnamed (runs x files_per_run files each).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// One run of `n` files into `dir`; adds the time spent in the syncs (syncfs, directory fsync) to
// `*sync_seconds`. Returns false on any failed call.
bool Run(bool unnamed, const std::string& dir, int first, int n, const std::string& body,
         double* sync_seconds) {
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return false;
  std::vector<int> fds;
  std::vector<std::string> temps;
  bool ok = true;
  for (int i = 0; i < n && ok; ++i) {
    const std::string name = std::to_string(first + i) + ".hl7";
    int fd;
    if (unnamed) {
      fd = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0640);
    } else {
      temps.push_back(dir + "/." + name + ".tmp.7." + std::to_string(first + i));
      fd = ::open(temps.back().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    }
    ok = fd >= 0 && ::write(fd, body.data(), body.size()) == static_cast<ssize_t>(body.size());
    if (unnamed) {
      fds.push_back(fd);
    } else if (fd >= 0) {
      ::close(fd);
    }
  }
  double t = Now();
  ok = ok && ::syncfs(dfd) == 0;
  *sync_seconds += Now() - t;
  for (int i = 0; i < n && ok; ++i) {
    const std::string target = dir + "/" + std::to_string(first + i) + ".hl7";
    if (unnamed) {
      char proc[40];
      std::snprintf(proc, sizeof proc, "/proc/self/fd/%d", fds[i]);
      ok = ::linkat(AT_FDCWD, proc, AT_FDCWD, target.c_str(), AT_SYMLINK_FOLLOW) == 0;
    } else {
      ok = ::rename(temps[i].c_str(), target.c_str()) == 0;
    }
  }
  for (int fd : fds) ::close(fd);
  t = Now();
  ok = ok && ::fsync(dfd) == 0;
  *sync_seconds += Now() - t;
  ::close(dfd);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR [runs=400] [files_per_run=100] [bytes=2048]\n", argv[0]);
    return 2;
  }
  const std::filesystem::path base = argv[1];
  const int runs = argc > 2 ? std::atoi(argv[2]) : 400;
  const int per_run = argc > 3 ? std::atoi(argv[3]) : 100;
  const std::string body(argc > 4 ? std::atoi(argv[4]) : 2048, 'x');
  const char* names[2] = {"named", "unnamed"};
  std::vector<double> per_file[2], ops_per_file[2];
  for (int m = 0; m < 2; ++m) {
    std::filesystem::remove_all(base / names[m]);
    std::filesystem::create_directories(base / names[m]);
  }
  for (int r = 0; r < runs; ++r) {
    for (int m = 0; m < 2; ++m) {
      const double t0 = Now();
      double sync = 0;
      if (!Run(m == 1, (base / names[m]).string(), r * per_run, per_run, body, &sync)) {
        std::perror(names[m]);
        return 1;
      }
      const double all = Now() - t0;
      per_file[m].push_back(all / per_run * 1e6);
      ops_per_file[m].push_back((all - sync) / per_run * 1e6);
    }
  }
  for (int m = 0; m < 2; ++m) {
    for (auto* v : {&per_file[m], &ops_per_file[m]}) {
      std::sort(v->begin(), v->end());
      std::printf("%-8s %-22s us per file: min %6.1f  p25 %6.1f  median %6.1f\n", names[m],
                  v == &per_file[m] ? "whole run" : "without the two syncs", (*v)[0],
                  (*v)[v->size() / 4], (*v)[v->size() / 2]);
    }
    std::filesystem::remove_all(base / names[m]);
  }
  std::printf("(%d runs of %d files of %zu bytes each way, interleaved)\n", runs, per_run,
              body.size());
  return 0;
}
