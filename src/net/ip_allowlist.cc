#include "net/ip_allowlist.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "base/str.h"

namespace isthmus::net {
namespace {

// Parses a textual IPv4 or IPv6 address into IPv6 form (IPv4 mapped); `bits` is 32 or 128.
bool ParseAddress(std::string_view text, std::array<uint8_t, 16>* out, int* bits) {
  std::string s(text);  // inet_pton wants a NUL-terminated string
  uint8_t v4[4];
  if (::inet_pton(AF_INET, s.c_str(), v4) == 1) {
    *out = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, v4[0], v4[1], v4[2], v4[3]};
    *bits = 32;
    return true;
  }
  if (::inet_pton(AF_INET6, s.c_str(), out->data()) == 1) {
    *bits = 128;
    return true;
  }
  return false;
}

bool Matches(const std::array<uint8_t, 16>& a, const std::array<uint8_t, 16>& net, int prefix) {
  int full = prefix / 8;
  if (std::memcmp(a.data(), net.data(), static_cast<size_t>(full)) != 0) return false;
  int rest = prefix % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[full] & mask) == (net[full] & mask);
}

}  // namespace

absl::StatusOr<IpAllowlist> IpAllowlist::Parse(const std::vector<std::string>& cidrs) {
  IpAllowlist list;
  for (const std::string& entry : cidrs) {
    std::string_view e = entry;
    auto bad = [&](std::string_view why) {
      return absl::InvalidArgumentError(
          base::StrCat("bad IP allowlist entry '", entry, "': ", why));
    };
    if (e.find('%') != std::string_view::npos) return bad("IPv6 zone ids are not supported");
    size_t slash = e.find('/');
    std::string_view addr = e.substr(0, slash);
    Block b;
    int bits = 0;
    if (!ParseAddress(addr, &b.bytes, &bits)) {
      return bad("not an IPv4 or IPv6 address (expected e.g. 10.0.0.0/8 or fd00::/8)");
    }
    int prefix = bits;
    if (slash != std::string_view::npos &&
        (!base::ParseInt(e.substr(slash + 1), &prefix) || prefix < 0 || prefix > bits ||
         e.substr(slash + 1).front() == '+' || e.substr(slash + 1).front() == '-')) {
      return bad(base::StrCat("prefix length must be a number from 0 to ", bits));
    }
    b.prefix = bits == 32 ? prefix + 96 : prefix;
    // Host bits set is almost always a typo for a different network: refuse, and say which.
    Block masked = b;
    for (int i = 0; i < 16; ++i) {
      int keep = std::clamp(b.prefix - i * 8, 0, 8);
      masked.bytes[i] &= static_cast<uint8_t>(keep == 0 ? 0 : 0xff << (8 - keep));
    }
    if (masked.bytes != b.bytes) {
      char text[INET6_ADDRSTRLEN];
      if (bits == 32) {
        ::inet_ntop(AF_INET, masked.bytes.data() + 12, text, sizeof text);
      } else {
        ::inet_ntop(AF_INET6, masked.bytes.data(), text, sizeof text);
      }
      return bad(base::StrCat("host bits are set; did you mean ", text, "/", prefix, "?"));
    }
    list.blocks_.push_back(b);
  }
  return list;
}

bool IpAllowlist::Allows(std::span<const uint8_t> address) const {
  if (blocks_.empty()) return true;
  std::array<uint8_t, 16> a{};
  if (address.size() == 4) {
    a[10] = a[11] = 0xff;
    std::memcpy(a.data() + 12, address.data(), 4);
  } else if (address.size() == 16) {
    std::memcpy(a.data(), address.data(), 16);
  } else {
    return false;
  }
  for (const Block& b : blocks_) {
    if (Matches(a, b.bytes, b.prefix)) return true;
  }
  return false;
}

bool IpAllowlist::Allows(std::string_view address) const {
  if (blocks_.empty()) return true;
  std::array<uint8_t, 16> a;
  int bits = 0;
  if (!ParseAddress(address, &a, &bits)) return false;
  return Allows(std::span<const uint8_t>(a));
}

}  // namespace isthmus::net
