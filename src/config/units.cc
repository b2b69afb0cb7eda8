// Value parsers of config/config.h: durations, byte sizes, host:port, CIDRs.
#include <arpa/inet.h>

#include <cctype>
#include <cstring>
#include <limits>

#include "base/str.h"
#include "config/config.h"

namespace isthmus::config {

std::string Location::ToString() const {
  if (line <= 0) return file;
  return base::StrCat(file, ":", line, ":", column);
}

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return base::StrCat("[", host, "]:", port);
  return base::StrCat(host, ":", port);
}

absl::StatusOr<HostPort> ParseHostPort(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(base::StrCat(
        "'", text, "' is not an address: ", why,
        " (expected host:port, e.g. 127.0.0.1:2575, 0.0.0.0:2575, [::1]:2575, lab.example:2575)"));
  };
  HostPort hp;
  std::string_view port;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return bad("no ']' after the IPv6 address");
    hp.host = std::string(text.substr(1, close - 1));
    unsigned char buf[16];
    if (inet_pton(AF_INET6, hp.host.c_str(), buf) != 1) return bad("not an IPv6 address");
    if (close + 1 >= text.size() || text[close + 1] != ':') return bad("no :port");
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("no :port");
    hp.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
    if (hp.host.find(':') != std::string::npos) return bad("write IPv6 addresses in brackets");
    if (hp.host.empty()) return bad("no host");
    bool numeric = true;
    for (char c : hp.host) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') {
        return bad(base::StrCat("'", c, "' cannot appear in a host name"));
      }
      numeric &= std::isdigit(static_cast<unsigned char>(c)) || c == '.';
    }
    unsigned char buf[4];
    if (numeric && inet_pton(AF_INET, hp.host.c_str(), buf) != 1) return bad("not an IPv4 address");
  }
  int p = 0;
  if (!base::ParseInt(port, &p) || p < 0 || p > 65535) return bad("the port must be 0-65535");
  hp.port = static_cast<uint16_t>(p);
  return hp;
}

namespace {

// Parses an IPv4 or IPv6 literal; IPv4 lands in bytes[0..3] with *v6 = false.
bool ParseIp(std::string_view text, std::array<uint8_t, 16>* bytes, bool* v6) {
  std::string s(text);
  bytes->fill(0);
  if (inet_pton(AF_INET, s.c_str(), bytes->data()) == 1) {
    *v6 = false;
    return true;
  }
  if (inet_pton(AF_INET6, s.c_str(), bytes->data()) == 1) {
    *v6 = true;
    return true;
  }
  return false;
}

bool PrefixEqual(const uint8_t* a, const uint8_t* b, int bits) {
  int full = bits / 8;
  if (std::memcmp(a, b, static_cast<size_t>(full)) != 0) return false;
  int rest = bits % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xFF << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

}  // namespace

absl::StatusOr<Cidr> ParseCidr(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(base::StrCat(
        "'", text, "' is not a network: ", why,
        " (expected a CIDR like 10.0.0.0/8, 192.0.2.7, 2001:db8::/32)"));
  };
  Cidr c;
  c.text = std::string(text);
  size_t slash = text.find('/');
  if (!ParseIp(text.substr(0, slash), &c.bytes, &c.ipv6)) return bad("not an IP address");
  int max = c.ipv6 ? 128 : 32;
  c.prefix_length = max;
  if (slash != std::string_view::npos) {
    if (!base::ParseInt(text.substr(slash + 1), &c.prefix_length) || c.prefix_length < 0 ||
        c.prefix_length > max) {
      return bad(base::StrCat("the prefix length must be 0-", max));
    }
  }
  // Host bits set (10.1.2.3/8) usually means a typo in the prefix length.
  for (int bit = c.prefix_length; bit < max; ++bit) {
    if (c.bytes[static_cast<size_t>(bit / 8)] & (0x80 >> (bit % 8))) {
      return bad("address bits are set beyond the prefix length");
    }
  }
  return c;
}

bool Cidr::Contains(std::string_view address) const {
  std::array<uint8_t, 16> a;
  bool v6;
  if (!ParseIp(address, &a, &v6)) return false;
  if (v6 && !ipv6) {
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    if (std::memcmp(a.data(), kMapped, 12) != 0) return false;
    std::memmove(a.data(), a.data() + 12, 4);
    v6 = false;
  }
  if (v6 != ipv6) return false;
  return PrefixEqual(a.data(), bytes.data(), prefix_length);
}

absl::StatusOr<absl::Duration> ParseDuration(std::string_view text) {
  auto bad = [&]() {
    return absl::InvalidArgumentError(base::StrCat(
        "'", text, "' is not a duration (expected a number with a unit: 500ms, 30s, 5m, 24h, 7d, "
                   "1h30m)"));
  };
  if (text == "0") return absl::ZeroDuration();
  if (text.empty()) return bad();
  absl::Duration total = absl::ZeroDuration();
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
    if (i == start) return bad();
    double n = 0;
    std::string num(text.substr(start, i - start));
    char* end = nullptr;
    n = std::strtod(num.c_str(), &end);
    if (end != num.c_str() + num.size()) return bad();
    size_t u = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
    std::string_view unit = text.substr(u, i - u);
    absl::Duration d;
    if (unit == "ms") {
      d = absl::Milliseconds(n);
    } else if (unit == "s") {
      d = absl::Seconds(n);
    } else if (unit == "m") {
      d = absl::Minutes(n);
    } else if (unit == "h") {
      d = absl::Hours(n);
    } else if (unit == "d") {
      d = absl::Hours(24 * n);
    } else {
      return bad();
    }
    total += d;
  }
  return total;
}

absl::StatusOr<size_t> ParseByteSize(std::string_view text) {
  auto bad = [&]() {
    return absl::InvalidArgumentError(base::StrCat(
        "'", text, "' is not a size (expected bytes or a number with a unit: 4096, 512KiB, "
                   "16MiB, 1MB, 2GiB)"));
  };
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  uint64_t n = 0;
  if (!base::ParseInt(text.substr(0, i), &n)) return bad();
  std::string_view unit = text.substr(i);
  uint64_t mult;
  if (unit.empty() || unit == "B") {
    mult = 1;
  } else if (unit == "KB" || unit == "kB") {
    mult = 1000;
  } else if (unit == "MB") {
    mult = 1000 * 1000;
  } else if (unit == "GB") {
    mult = 1000 * 1000 * 1000;
  } else if (unit == "KiB") {
    mult = 1024;
  } else if (unit == "MiB") {
    mult = 1024 * 1024;
  } else if (unit == "GiB") {
    mult = 1024 * 1024 * 1024;
  } else {
    return bad();
  }
  if (n > std::numeric_limits<size_t>::max() / mult) return bad();
  return static_cast<size_t>(n * mult);
}

}  // namespace isthmus::config
