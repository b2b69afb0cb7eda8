// An IP allowlist: CIDR blocks, IPv4 and IPv6, checked once per accepted connection. An empty
// list allows every address. IPv4 blocks also match IPv4-mapped IPv6 peers (::ffff:a.b.c.d), which
// is how a dual-stack socket bound to "::" sees IPv4 clients.
// Thread-safety: immutable after Parse(); Allows() from any thread.
//
// Example:
//   ISTHMUS_ASSIGN_OR_RETURN(net::IpAllowlist allow,
//                            net::IpAllowlist::Parse({"10.0.0.0/8", "192.168.1.7", "fd00::/8"}));
//   if (!allow.Allows(peer_bytes)) Close();
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace isthmus::net {

class IpAllowlist {
 public:
  IpAllowlist() = default;  // allows everything

  // Parses "a.b.c.d/n", "a.b.c.d" (one host), "v6addr/n" or "v6addr" (one host). Errors
  // (InvalidArgument) name the entry: unparsable address, prefix out of range, host bits set
  // ("10.1.0.0/8": did you mean 10.0.0.0/8?), or an IPv6 zone id.
  static absl::StatusOr<IpAllowlist> Parse(const std::vector<std::string>& cidrs);

  bool empty() const { return blocks_.empty(); }
  // `address` in network byte order: 4 bytes (IPv4) or 16 (IPv6). Any other size is refused
  // unless the list is empty.
  bool Allows(std::span<const uint8_t> address) const;
  // A textual address ("127.0.0.1", "::1"); an unparsable one is refused unless the list is empty.
  bool Allows(std::string_view address) const;

 private:
  // IPv4 blocks are stored as IPv4-mapped IPv6 (prefix + 96), so one comparison covers both.
  struct Block {
    std::array<uint8_t, 16> bytes;
    int prefix;
  };
  std::vector<Block> blocks_;
};

}  // namespace isthmus::net
