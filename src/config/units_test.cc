#include "config/config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isthmus::config {
namespace {

using ::testing::HasSubstr;

TEST(UnitsTest, Durations) {
  EXPECT_EQ(*ParseDuration("500ms"), absl::Milliseconds(500));
  EXPECT_EQ(*ParseDuration("30s"), absl::Seconds(30));
  EXPECT_EQ(*ParseDuration("5m"), absl::Minutes(5));
  EXPECT_EQ(*ParseDuration("24h"), absl::Hours(24));
  EXPECT_EQ(*ParseDuration("7d"), absl::Hours(168));
  EXPECT_EQ(*ParseDuration("1h30m"), absl::Minutes(90));
  EXPECT_EQ(*ParseDuration("1.5s"), absl::Milliseconds(1500));
  EXPECT_EQ(*ParseDuration("0"), absl::ZeroDuration());
  for (const char* bad : {"", "30", "s", "-1s", "10 s", "5min", "1x"}) {
    EXPECT_FALSE(ParseDuration(bad).ok()) << bad;
  }
  EXPECT_THAT(ParseDuration("30").status().message(), HasSubstr("expected a number with a unit"));
}

TEST(UnitsTest, Sizes) {
  EXPECT_EQ(*ParseByteSize("16MiB"), size_t{16} << 20);
  EXPECT_EQ(*ParseByteSize("1MB"), 1'000'000u);
  EXPECT_EQ(*ParseByteSize("512KiB"), 512u * 1024);
  EXPECT_EQ(*ParseByteSize("4096"), 4096u);
  EXPECT_EQ(*ParseByteSize("2GiB"), size_t{2} << 30);
  for (const char* bad : {"", "MiB", "16 MiB", "16mb", "-1", "1.5MiB", "99999999999999999999"}) {
    EXPECT_FALSE(ParseByteSize(bad).ok()) << bad;
  }
}

TEST(UnitsTest, HostPorts) {
  auto hp = ParseHostPort("127.0.0.1:2575");
  ASSERT_TRUE(hp.ok());
  EXPECT_EQ(hp->host, "127.0.0.1");
  EXPECT_EQ(hp->port, 2575);
  hp = ParseHostPort("[::1]:8080");
  ASSERT_TRUE(hp.ok());
  EXPECT_EQ(hp->host, "::1");
  EXPECT_EQ(hp->ToString(), "[::1]:8080");
  EXPECT_TRUE(ParseHostPort("lab-gw.example.org:2575").ok());
  EXPECT_TRUE(ParseHostPort("0.0.0.0:0").ok());
  EXPECT_THAT(ParseHostPort("::1:8080").status().message(), HasSubstr("brackets"));
  EXPECT_THAT(ParseHostPort("localhost").status().message(), HasSubstr("no :port"));
  EXPECT_THAT(ParseHostPort("localhost:70000").status().message(), HasSubstr("0-65535"));
  EXPECT_THAT(ParseHostPort("300.1.1.1:1").status().message(), HasSubstr("not an IPv4"));
  EXPECT_THAT(ParseHostPort(":2575").status().message(), HasSubstr("no host"));
  EXPECT_FALSE(ParseHostPort("a b:1").ok());
}

TEST(UnitsTest, Cidrs) {
  auto c = ParseCidr("10.0.0.0/8");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->Contains("10.1.2.3"));
  EXPECT_TRUE(c->Contains("::ffff:10.9.9.9"));
  EXPECT_FALSE(c->Contains("11.0.0.1"));
  EXPECT_FALSE(c->Contains("not an ip"));
  auto one = ParseCidr("192.0.2.7");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->prefix_length, 32);
  EXPECT_TRUE(one->Contains("192.0.2.7"));
  EXPECT_FALSE(one->Contains("192.0.2.8"));
  auto v6 = ParseCidr("2001:db8::/32");
  ASSERT_TRUE(v6.ok());
  EXPECT_TRUE(v6->Contains("2001:db8:1::5"));
  EXPECT_FALSE(v6->Contains("10.1.2.3"));
  EXPECT_TRUE(ParseCidr("0.0.0.0/0")->Contains("8.8.8.8"));
  EXPECT_THAT(ParseCidr("10.1.2.3/8").status().message(), HasSubstr("beyond the prefix"));
  EXPECT_THAT(ParseCidr("10.0.0.0/33").status().message(), HasSubstr("0-32"));
  EXPECT_FALSE(ParseCidr("10.0.0/8").ok());
}

}  // namespace
}  // namespace isthmus::config
