#include "net/ip_allowlist.h"

#include "gtest/gtest.h"

namespace isthmus::net {
namespace {

TEST(IpAllowlistTest, EmptyAllowsEverything) {
  IpAllowlist a;
  EXPECT_TRUE(a.empty());
  EXPECT_TRUE(a.Allows(std::string_view("203.0.113.9")));
  EXPECT_TRUE(a.Allows(std::string_view("not an address")));
}

TEST(IpAllowlistTest, Ipv4BlocksAndHosts) {
  auto a = IpAllowlist::Parse({"10.0.0.0/8", "192.168.1.7", "172.16.0.0/12"});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(a->Allows(std::string_view("10.255.0.1")));
  EXPECT_TRUE(a->Allows(std::string_view("192.168.1.7")));
  EXPECT_FALSE(a->Allows(std::string_view("192.168.1.8")));
  EXPECT_TRUE(a->Allows(std::string_view("172.31.255.255")));
  EXPECT_FALSE(a->Allows(std::string_view("172.32.0.0")));
  EXPECT_FALSE(a->Allows(std::string_view("11.0.0.1")));
  const uint8_t bytes[4] = {10, 1, 2, 3};
  EXPECT_TRUE(a->Allows(std::span<const uint8_t>(bytes)));
  // A dual-stack socket sees IPv4 peers as IPv4-mapped IPv6.
  EXPECT_TRUE(a->Allows(std::string_view("::ffff:10.1.2.3")));
  EXPECT_FALSE(a->Allows(std::string_view("::ffff:11.1.2.3")));
  EXPECT_FALSE(a->Allows(std::string_view("garbage")));
}

TEST(IpAllowlistTest, Ipv6Blocks) {
  auto a = IpAllowlist::Parse({"::1/128", "fd00::/8", "2001:db8:abcc::/47"});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(a->Allows(std::string_view("::1")));
  EXPECT_FALSE(a->Allows(std::string_view("::2")));
  EXPECT_TRUE(a->Allows(std::string_view("fdff:1::9")));
  EXPECT_FALSE(a->Allows(std::string_view("fe80::1")));
  EXPECT_TRUE(a->Allows(std::string_view("2001:db8:abcd:1::1")));
  EXPECT_FALSE(a->Allows(std::string_view("2001:db8:abce::1")));
  EXPECT_FALSE(a->Allows(std::string_view("127.0.0.1")));  // IPv4 is not ::1
}

TEST(IpAllowlistTest, ZeroPrefixAllowsItsFamily) {
  auto v4 = IpAllowlist::Parse({"0.0.0.0/0"});
  ASSERT_TRUE(v4.ok());
  EXPECT_TRUE(v4->Allows(std::string_view("8.8.8.8")));
  EXPECT_FALSE(v4->Allows(std::string_view("2001:db8::1")));
  auto v6 = IpAllowlist::Parse({"::/0"});
  ASSERT_TRUE(v6.ok());
  EXPECT_TRUE(v6->Allows(std::string_view("2001:db8::1")));
}

TEST(IpAllowlistTest, ClearErrors) {
  auto expect_error = [](std::string entry, std::string_view fragment) {
    auto a = IpAllowlist::Parse({"10.0.0.0/8", entry});
    ASSERT_FALSE(a.ok()) << entry;
    EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
    std::string msg(a.status().message());
    EXPECT_NE(msg.find("'" + entry + "'"), std::string::npos) << msg;
    EXPECT_NE(msg.find(fragment), std::string::npos) << msg;
  };
  expect_error("10.0.0.0/33", "from 0 to 32");
  expect_error("::/129", "from 0 to 128");
  expect_error("10.0.0.0/", "prefix length");
  expect_error("10.0.0.0/-1", "prefix length");
  expect_error("10.0.0.0/+8", "prefix length");
  expect_error("10.0.0.0/8x", "prefix length");
  expect_error("localhost", "not an IPv4 or IPv6 address");
  expect_error("10.0.0/8", "not an IPv4 or IPv6 address");
  expect_error("", "not an IPv4 or IPv6 address");
  expect_error("10.1.2.3/8", "did you mean 10.0.0.0/8?");
  expect_error("2001:db8::1/32", "did you mean 2001:db8::/32?");
  expect_error("fe80::1%eth0", "zone");
}

}  // namespace
}  // namespace isthmus::net
