// Baseline (a): an MLLP server that only answers AA, no persistence. The loopback/syscall floor
// of request-response MLLP on this machine.
// Usage: echo_server [--port N] [--ready-file FILE]
#include "mllp_peer.h"

int main(int argc, char** argv) {
  const char* ready = nullptr;
  int port = mllp_peer::PortArg(argc, argv, &ready);
  return mllp_peer::Serve(port, ready, [](std::string_view m) { return mllp_peer::AckFrame(m); });
}
