#include "config/config.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "base/str.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isthmus::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string Errors(std::string_view yaml) {
  auto c = LoadConfigFromString(yaml, "t.yaml");
  if (c.ok()) return "OK";
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(c.status().message());
}

TEST(ConfigTest, ExampleFileLoads) {
  auto c = LoadConfig(ISTHMUS_SOURCE_DIR "/examples/isthmus.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  const Config& cfg = **c;
  EXPECT_THAT(cfg.warnings, IsEmpty());
  ASSERT_EQ(cfg.listeners.size(), 2u);
  EXPECT_EQ(cfg.listeners[0].bind.port, 2575);
  EXPECT_EQ(cfg.listeners[0].allow.size(), 2u);
  EXPECT_EQ(cfg.listeners[0].max_connections, 200);
  EXPECT_EQ(cfg.listeners[1].ack_mode, AckMode::kAfterProcessing);
  EXPECT_EQ(cfg.listeners[1].max_frame_bytes, size_t{16} << 20);  // default
  EXPECT_EQ(cfg.listeners[1].idle_timeout, absl::Minutes(10));    // default
  ASSERT_EQ(cfg.channels.size(), 2u);
  const Channel* adt = cfg.FindChannel("adt");
  ASSERT_NE(adt, nullptr);
  ASSERT_NE(adt->filter, nullptr);
  EXPECT_EQ(adt->transformer.type, TransformerType::kFhir);
  ASSERT_EQ(adt->routes.size(), 3u);  // two routes, then the `destinations` shorthand
  EXPECT_THAT(adt->routes[2].to, ElementsAre("archive"));
  EXPECT_EQ(adt->routes[2].when, nullptr);
  EXPECT_EQ(cfg.destinations.size(), 5u);
  const Destination* fhir = cfg.FindDestination("fhir-store");
  ASSERT_NE(fhir, nullptr);
  EXPECT_EQ(fhir->parallelism, 4);
  EXPECT_EQ(fhir->partition_by->ToString(), "PID-3.1");
  EXPECT_EQ(cfg.FindDestination("archive")->batch_size, 500);
  const Destination* ris = cfg.FindDestination("ris");
  EXPECT_EQ(ris->retry.max_attempts, 20);
  EXPECT_EQ(ris->retry.max_backoff, absl::Minutes(10));
  EXPECT_EQ(std::get<MllpOptions>(ris->options).target.port, 6661);
  const Destination* hook = cfg.FindDestination("mpi-webhook");
  EXPECT_EQ(std::get<HttpOptions>(hook->options).headers.at("X-Source"), "isthmus");
  EXPECT_EQ(hook->retry.initial_backoff, absl::Seconds(1));  // default
  const Destination* archive = cfg.FindDestination("archive");
  EXPECT_EQ(std::get<FileOptions>(archive->options).directory,
            ISTHMUS_SOURCE_DIR "/examples/archive");
  EXPECT_EQ(cfg.server.data_dir, ISTHMUS_SOURCE_DIR "/examples/isthmus-data");

  // The routes do what the comments in the example say.
  auto adt_a01 = hl7v2::Message::Parse(
      "MSH|^~\\&|REG|HOSP|ISTHMUS|HOSP|202401011200||ADT^A01|1|P|2.5.1\r"
      "PID|1||1234567^^^HOSP^MR\rPV1|1|I\r");
  ASSERT_TRUE(adt_a01.ok());
  EXPECT_TRUE(adt->filter->Matches(*adt_a01));
  EXPECT_TRUE(adt->routes[0].when->Matches(*adt_a01));
  EXPECT_TRUE(adt->routes[1].when->Matches(*adt_a01));
  auto training = hl7v2::Message::Parse(
      "MSH|^~\\&|REGTRAIN|HOSP|ISTHMUS|HOSP|202401011200||ADT^A01|1|P|2.5.1\r");
  EXPECT_FALSE(adt->filter->Matches(*training));
}

TEST(ConfigTest, DefaultsOfAMinimalConfig) {
  auto c = LoadConfigFromString(
      "listeners:\n"
      "  - {name: in, channel: c}\n"
      "channels:\n"
      "  - {name: c, destinations: [d]}\n"
      "destinations:\n"
      "  - {name: d, type: fhir_local}\n");
  ASSERT_TRUE(c.ok()) << c.status();
  const Config& cfg = **c;
  EXPECT_EQ(cfg.server.data_dir, "isthmus-data");
  EXPECT_EQ(cfg.server.http_address, "127.0.0.1:8080");
  EXPECT_EQ(cfg.server.http.port, 8080);
  EXPECT_EQ(cfg.server.threads, 0);
  EXPECT_EQ(cfg.server.http_threads, 16);
  EXPECT_EQ(cfg.server.dedupe_window, absl::Hours(24));
  const Listener& l = cfg.listeners[0];
  EXPECT_EQ(l.type, "mllp");
  EXPECT_EQ(l.address, "127.0.0.1:2575");
  EXPECT_EQ(l.bind.port, 2575);
  EXPECT_EQ(l.ack_mode, AckMode::kAfterPersist);
  EXPECT_EQ(l.max_frame_bytes, size_t{16} << 20);
  EXPECT_EQ(l.idle_timeout, absl::Minutes(10));
  EXPECT_EQ(l.frame_timeout, absl::Seconds(60));
  EXPECT_EQ(l.max_connections, 1000);
  EXPECT_THAT(l.allow, IsEmpty());
  EXPECT_FALSE(l.tls.has_value());
  EXPECT_EQ(l.location.ToString(), "<string>:2:5");
  const Destination& d = cfg.destinations[0];
  EXPECT_EQ(d.parallelism, 1);
  EXPECT_EQ(d.batch_size, 100);
  EXPECT_FALSE(d.partition_by.has_value());
  EXPECT_EQ(d.retry.max_attempts, 10);
  EXPECT_EQ(d.retry.initial_backoff, absl::Seconds(1));
  EXPECT_EQ(d.retry.max_backoff, absl::Minutes(5));
  EXPECT_EQ(d.retry.multiplier, 2.0);
  EXPECT_EQ(d.retry.jitter, 0.2);
  EXPECT_EQ(d.retry.max_age, absl::Hours(24));
  EXPECT_EQ(cfg.channels[0].transformer.type, TransformerType::kNone);
}

TEST(ConfigTest, FileDestinationDefaults) {
  auto c = LoadConfigFromString(
      "destinations:\n"
      "  - {name: d, type: file, directory: /tmp/out}\n"
      "  - {name: m, type: mllp, address: 'ris:6661'}\n"
      "  - {name: h, type: http, url: 'http://x/y'}\n"
      "  - {name: h2, type: http, url: 'http://x/y', keep_alive: false, idle_timeout: 4s}\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(std::get<FileOptions>((*c)->destinations[0].options).filename,
            "${channel}-${message_id}.hl7");
  const auto& m = std::get<MllpOptions>((*c)->destinations[1].options);
  EXPECT_EQ(m.timeout, absl::Seconds(30));
  EXPECT_FALSE(m.retry_on_ae);
  const auto& h = std::get<HttpOptions>((*c)->destinations[2].options);
  EXPECT_EQ(h.content_type, "application/hl7-v2");
  EXPECT_EQ(h.timeout, absl::Seconds(30));
  EXPECT_TRUE(h.keep_alive);
  EXPECT_EQ(h.idle_timeout, absl::Seconds(30));
  const auto& h2 = std::get<HttpOptions>((*c)->destinations[3].options);
  EXPECT_FALSE(h2.keep_alive);
  EXPECT_EQ(h2.idle_timeout, absl::Seconds(4));
  // Unused destinations are warnings, not errors.
  EXPECT_THAT((*c)->warnings,
              ElementsAre("<string>:2:5: destination 'd' is not used by any route",
                          "<string>:3:5: destination 'm' is not used by any route",
                          "<string>:4:5: destination 'h' is not used by any route",
                          "<string>:5:5: destination 'h2' is not used by any route"));
}

struct ErrorCase {
  const char* name;
  const char* yaml;
  const char* expect;  // the exact error (one line)
};

class ConfigErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ConfigErrorTest, ReportsFileLineColumn) {
  EXPECT_EQ(Errors(GetParam().yaml), GetParam().expect);
}

// Each config below has exactly one mistake; TAIL completes a config that has listeners only.
#define TAIL                            \
  "channels:\n"                         \
  "  - {name: c, destinations: [d]}\n"  \
  "destinations:\n"                     \
  "  - {name: d, type: fhir_local}\n"

INSTANTIATE_TEST_SUITE_P(
    All, ConfigErrorTest,
    ::testing::Values(
        ErrorCase{"Empty", "", "t.yaml:1:1: the config is empty (expected the keys server, "
                               "listeners, channels, destinations; see docs/configuration.md)"},
        ErrorCase{"Syntax", "server:\n  threads: [1\n",
                  "t.yaml:3:1: end of sequence flow not found"},
        ErrorCase{"UnknownTopKey", "servr: {}\n",
                  "t.yaml:1:1: unknown key 'servr' in the top level (expected one of: server, "
                  "listeners, channels, destinations)"},
        ErrorCase{"UnknownListenerKey",
                  "listeners:\n  - name: in\n    channel: c\n    acks: none\n" TAIL,
                  "t.yaml:4:5: unknown key 'acks' in a listener (expected one of: name, type, "
                  "address, channel, ack_mode, max_frame_bytes, idle_timeout, frame_timeout, "
                  "max_connections, allow, tls)"},
        ErrorCase{"BadHttpThreads", "server:\n  http_threads: 0\n",
                  "t.yaml:2:17: 'http_threads' must be a whole number from 1 to 1024"},
        ErrorCase{"DuplicateKey", "server:\n  threads: 1\n  threads: 2\n",
                  "t.yaml:3:3: duplicate key 'threads' in server"},
        ErrorCase{"ListNotMap", "listeners: {name: x}\n",
                  "t.yaml:1:12: 'listeners' must be a list (expected entries starting with '- ')"},
        ErrorCase{"BadDuration", "server: {}\nlisteners:\n  - {name: in, channel: c, idle_timeout: 10}\n" TAIL,
                  "t.yaml:3:42: 'idle_timeout': '10' is not a duration (expected a number with a "
                  "unit: 500ms, 30s, 5m, 24h, 7d, 1h30m)"},
        ErrorCase{"BadSize", "listeners:\n  - {name: in, channel: c, max_frame_bytes: 16 MB}\n" TAIL,
                  "t.yaml:2:45: 'max_frame_bytes': '16 MB' is not a size (expected bytes or a "
                  "number with a unit: 4096, 512KiB, 16MiB, 1MB, 2GiB)"},
        ErrorCase{"BadAckMode", "listeners:\n  - {name: in, channel: c, ack_mode: always}\n" TAIL,
                  "t.yaml:2:38: unknown ack_mode 'always' (expected after-persist, "
                  "after-processing, enhanced or none)"},
        ErrorCase{"BadAddress", "listeners:\n  - {name: in, channel: c, address: 'localhost'}\n" TAIL,
                  "t.yaml:2:37: 'address': 'localhost' is not an address: no :port (expected "
                  "host:port, e.g. 127.0.0.1:2575, 0.0.0.0:2575, [::1]:2575, "
                  "lab.example:2575)"},
        ErrorCase{"BadCidr", "listeners:\n  - name: in\n    channel: c\n    allow: [10.0.0.0/8, 10.1.0.0/8]\n" TAIL,
                  "t.yaml:4:25: 'allow': '10.1.0.0/8' is not a network: address bits are set "
                  "beyond the prefix length (expected a CIDR like 10.0.0.0/8, 192.0.2.7, "
                  "2001:db8::/32)"},
        ErrorCase{"MissingTlsFile",
                  "listeners:\n  - name: in\n    channel: c\n    tls:\n      cert: /nonexistent/c.pem\n      key: /nonexistent/k.pem\n" TAIL,
                  "t.yaml:5:13: 'cert': /nonexistent/c.pem is not a readable file (expected a PEM "
                  "certificate chain file; relative paths start at the config file's "
                  "directory)\n"
                  "t.yaml:6:12: 'key': /nonexistent/k.pem is not a readable file (expected a PEM "
                  "private key file; relative paths start at the config file's directory)"},
        ErrorCase{"UnknownChannel", "listeners:\n  - {name: in, channel: adt}\n" TAIL,
                  "t.yaml:2:25: listener 'in': unknown channel 'adt' (expected one of: c)"},
        ErrorCase{"UnknownDestination",
                  "channels:\n  - name: x\n    routes:\n      - to: [d, nowhere]\n"
                  "destinations:\n  - {name: d, type: fhir_local}\n",
                  "t.yaml:4:17: unknown destination 'nowhere' (expected one of: d)"},
        ErrorCase{"DuplicateName",
                  "listeners:\n  - {name: in, channel: c, address: '127.0.0.1:1'}\n"
                  "  - {name: in, channel: c, address: '127.0.0.1:2'}\n" TAIL,
                  "t.yaml:3:12: duplicate listener name 'in' (first at t.yaml:2:12)"},
        ErrorCase{"DuplicateAddress",
                  "listeners:\n  - {name: a, channel: c}\n  - {name: b, channel: c}\n" TAIL,
                  "t.yaml:3:5: duplicate listener address '127.0.0.1:2575' (first at t.yaml:2:5)"},
        ErrorCase{"ParallelismWithoutPartition",
                  "destinations:\n  - {name: e, type: fhir_local, parallelism: 4}\n",
                  "t.yaml:2:46: 'parallelism' 4 needs 'partition_by' (expected e.g. "
                  "partition_by: PID-3, so that messages of one patient stay in order)"},
        ErrorCase{"BadPartitionPath",
                  "destinations:\n  - {name: e, type: fhir_local, partition_by: PID}\n",
                  "t.yaml:2:47: 'partition_by': 'PID' is not an HL7 field path (expected e.g. "
                  "PID-3, PID-3.1, PV1-3.1)"},
        ErrorCase{"KeyOfAnotherType",
                  "destinations:\n  - {name: e, type: fhir_local, url: 'http://x'}\n",
                  "t.yaml:2:33: unknown key 'url' in a fhir_local destination (expected one of: "
                  "name, type, partition_by, parallelism, batch_size, retry)"},
        ErrorCase{"BadExpression",
                  "channels:\n  - name: x\n    filter: PV1-2 in I\n",
                  "t.yaml:3:22: 'filter': expected '[' to start the list after 'in', found 'I' "
                  "(e.g. in [I, E, 'O'])"},
        ErrorCase{"BadExpressionQuoted",
                  "channels:\n  - name: x\n    filter: \"PV1-2 ==\"\n",
                  "t.yaml:3:22: 'filter': expected a value after '==', found end of expression "
                  "(a bare word like I or a quoted string like 'I' or '')"},
        ErrorCase{"BadRegex",
                  "channels:\n  - name: x\n    routes:\n      - when: PID-3.1 matches '(['\n        to: d\n"
                  "destinations:\n  - {name: d, type: fhir_local}\n",
                  "t.yaml:4:31: 'when': invalid regular expression '([': missing ]: [ "
                  "(RE2 syntax)"},
        ErrorCase{"BadTransformer", "channels:\n  - {name: x, transformer: xslt}\n",
                  "t.yaml:2:28: unknown transformer 'xslt' (expected none, fhir or lua)"},
        ErrorCase{"BadTimeZone",
                  "channels:\n  - {name: x, transformer: {type: fhir, timezone: Mars/Olympus}}\n",
                  "t.yaml:2:51: unknown time zone 'Mars/Olympus' (expected an IANA name such as "
                  "Europe/Paris or UTC)"},
        ErrorCase{"FhirKeyOnNone",
                  "channels:\n  - {name: x, transformer: {type: none, bundle: batch}}\n",
                  "t.yaml:2:49: 'bundle' applies only to transformer type fhir"},
        ErrorCase{"BadBundleType",
                  "channels:\n  - {name: x, transformer: {type: fhir, bundle: message}}\n",
                  "t.yaml:2:49: unknown bundle type 'message' (expected transaction or batch)"},
        ErrorCase{"BadRetry",
                  "destinations:\n  - name: e\n    type: fhir_local\n    retry: {jitter: 1.5}\n",
                  "t.yaml:4:21: 'jitter' must be a number from 0 to 1"},
        // 0 is "no limit" (RetryUnlimited below); below 0 means nothing.
        ErrorCase{"NegativeMaxAttempts",
                  "destinations:\n  - name: e\n    type: fhir_local\n    retry: {max_attempts: -1}\n",
                  "t.yaml:4:27: 'max_attempts' must be a whole number from 0 to 1000000"},
        ErrorCase{"NegativeMaxAge",
                  "destinations:\n  - name: e\n    type: fhir_local\n    retry: {max_age: -5m}\n",
                  "t.yaml:4:22: 'max_age': '-5m' is not a duration (expected a number with a "
                  "unit: 500ms, 30s, 5m, 24h, 7d, 1h30m)"},
        ErrorCase{"BadFilename",
                  "destinations:\n  - {name: e, type: file, directory: out, filename: '${date}.hl7'}\n",
                  "t.yaml:2:53: 'filename': unknown variable ${date} (expected one of: channel, "
                  "destination, message_id, control_id, type)"},
        ErrorCase{"MissingRequired", "destinations:\n  - {name: e, type: http}\n",
                  "t.yaml:2:5: http destination 'e' needs 'url' (http:// or https:// endpoint)"}),
    [](const ::testing::TestParamInfo<ErrorCase>& i) { return std::string(i.param.name); });

TEST(ConfigTest, AllErrorsAreReportedInOneGo) {
  std::string msg = Errors(
      "listeners:\n"
      "  - {name: in, channel: nope, ack_mode: maybe}\n"
      "channels:\n"
      "  - {name: c, filter: 'type =', destinations: [gone]}\n"
      "destinations:\n"
      "  - {name: d, type: ftp}\n");
  EXPECT_EQ(msg,
            "t.yaml:2:41: unknown ack_mode 'maybe' (expected after-persist, after-processing, "
            "enhanced or none)\n"
            "t.yaml:4:30: 'filter': expected a value after '=', found end of expression (a bare "
            "word like I or a quoted string like 'I' or '')\n"
            "t.yaml:6:21: unknown destination type 'ftp' (expected file, mllp, http or "
            "fhir_local)\n"
            "t.yaml:2:25: listener 'in': unknown channel 'nope' (expected one of: c)\n"
            "t.yaml:4:48: unknown destination 'gone' (expected one of: d)");
}

TEST(ConfigTest, DedupeWindow) {
  const std::string rest =
      "listeners:\n"
      "  - {name: in, channel: c}\n"
      "channels:\n"
      "  - {name: c, destinations: [d]}\n"
      "destinations:\n"
      "  - {name: d, type: fhir_local}\n";
  auto c = LoadConfigFromString("server:\n  dedupe_window: 90s\n" + rest);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->server.dedupe_window, absl::Seconds(90));
  c = LoadConfigFromString("server:\n  dedupe_window: 0s\n" + rest);  // detection off
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->server.dedupe_window, absl::ZeroDuration());
  EXPECT_THAT(Errors("server:\n  dedupe_window: a day\n" + rest),
              HasSubstr("t.yaml:2:18: 'dedupe_window': "));
}

// The dispatcher reads 0 as "no limit" for both (dispatch::RetryPolicy); docs/configuration.md:
// "0 = retry until max_age; with neither, forever".
TEST(ConfigTest, RetryUnlimited) {
  auto c = LoadConfigFromString(
      "destinations:\n"
      "  - {name: until_age, type: fhir_local, retry: {max_attempts: 0}}\n"
      "  - {name: forever, type: fhir_local, retry: {max_attempts: 0, max_age: 0s}}\n");
  ASSERT_TRUE(c.ok()) << c.status();
  const Destination* until_age = (*c)->FindDestination("until_age");
  EXPECT_EQ(until_age->retry.max_attempts, 0);
  EXPECT_EQ(until_age->retry.max_age, absl::Hours(24));  // the default still ends the retries
  const Destination* forever = (*c)->FindDestination("forever");
  EXPECT_EQ(forever->retry.max_attempts, 0);
  EXPECT_EQ(forever->retry.max_age, absl::ZeroDuration());
}

TEST(ConfigTest, ErrorsAreCappedAtTwenty) {
  std::string yaml = "listeners:\n";
  for (int i = 0; i < 25; ++i) yaml += "  - {name: l" + std::to_string(i) + ", chanel: c}\n";
  std::string msg = Errors(yaml);
  EXPECT_THAT(msg, HasSubstr("... and "));
  EXPECT_EQ(std::count(msg.begin(), msg.end(), '\n'), 20);
}

TEST(ConfigTest, DestinationTls) {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(testing::TempDir()) / "isthmus_config_dest_tls_test";
  fs::create_directories(dir / "tls");
  for (const char* f : {"tls/ca.pem", "tls/me.pem", "tls/me.key"}) std::ofstream(dir / f) << "x\n";
  std::ofstream(dir / "isthmus.yaml")
      << "channels:\n"
         "  - {name: c, destinations: [ris, hook, plain]}\n"
         "destinations:\n"
         "  - name: ris\n"
         "    type: mllp\n"
         "    address: ris.example:6661\n"
         "    tls: {ca: tls/ca.pem, cert: tls/me.pem, key: tls/me.key}\n"
         "  - name: hook\n"
         "    type: http\n"
         "    url: https://hook.example/hl7\n"
         "    tls: {verify: false, server_name: fhir.example.org, min_version: \"1.3\"}\n"
         "  - {name: plain, type: mllp, address: 10.0.0.1:2575}\n";
  auto c = LoadConfig((dir / "isthmus.yaml").string());
  ASSERT_TRUE(c.ok()) << c.status();
  const auto& m = std::get<MllpOptions>((*c)->destinations[0].options);
  ASSERT_TRUE(m.tls.has_value());
  EXPECT_EQ(m.tls->ca, (dir / "tls/ca.pem").string());
  EXPECT_EQ(m.tls->cert, (dir / "tls/me.pem").string());
  EXPECT_EQ(m.tls->key, (dir / "tls/me.key").string());
  EXPECT_TRUE(m.tls->verify);
  EXPECT_TRUE(m.tls->server_name.empty());
  EXPECT_FALSE(m.tls->tls13_only);
  const auto& h = std::get<HttpOptions>((*c)->destinations[1].options);
  ASSERT_TRUE(h.tls.has_value());
  EXPECT_FALSE(h.tls->verify);
  EXPECT_EQ(h.tls->server_name, "fhir.example.org");
  EXPECT_TRUE(h.tls->tls13_only);
  EXPECT_TRUE(h.tls->ca.empty());
  EXPECT_FALSE(std::get<MllpOptions>((*c)->destinations[2].options).tls.has_value());
  fs::remove_all(dir);
}

TEST(ConfigTest, DestinationTlsErrors) {
  const std::string head = "channels:\n  - {name: c, destinations: [d]}\ndestinations:\n";
  EXPECT_EQ(Errors(head + "  - name: d\n    type: mllp\n    address: h:1\n"
                          "    tls: {ca: /nonexistent/ca.pem}\n"),
            "t.yaml:7:15: 'ca': /nonexistent/ca.pem is not a readable file (expected a PEM CA "
            "bundle file; relative paths start at the config file's directory)");
  EXPECT_THAT(Errors(head + "  - name: d\n    type: mllp\n    address: h:1\n"
                            "    tls: {cert: /nonexistent/me.pem}\n"),
              HasSubstr("t.yaml:7:10: tls 'cert' needs 'key'"));
  EXPECT_THAT(Errors(head + "  - name: d\n    type: mllp\n    address: h:1\n"
                            "    tls: {verfy: false}\n"),
              HasSubstr("t.yaml:7:11: "));
  EXPECT_THAT(Errors(head + "  - name: d\n    type: http\n    url: http://h/\n"
                            "    tls: {verify: false}\n"),
              HasSubstr("t.yaml:7:10: 'tls' needs an https:// url"));
  EXPECT_THAT(Errors(head + "  - name: d\n    type: mllp\n    address: h:1\n"
                            "    tls: {verify: maybe}\n"),
              HasSubstr("'verify' must be true or false"));
  EXPECT_THAT(Errors(head + "  - name: d\n    type: mllp\n    address: h:1\n"
                            "    tls: {min_version: 1.1}\n"),
              HasSubstr("t.yaml:7:24: 'min_version' must be 1.2 or 1.3"));
  EXPECT_THAT(Errors(head + "  - name: d\n    type: mllp\n    address: h:1\n"
                            "    tls: {server_name: \"https://ris.example\"}\n"),
              HasSubstr("'server_name' must be a host name like ris.example"));
}

TEST(ConfigTest, TlsAndLuaFilesResolveAgainstTheConfigDirectory) {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(testing::TempDir()) / "isthmus_config_test";
  fs::create_directories(dir / "tls");
  for (const char* f : {"tls/cert.pem", "tls/key.pem", "tls/ca.pem", "fix.lua"}) {
    std::ofstream(dir / f) << "x\n";
  }
  std::ofstream(dir / "isthmus.yaml")
      << "listeners:\n"
         "  - name: in\n"
         "    channel: c\n"
         "    tls: {cert: tls/cert.pem, key: tls/key.pem, ca: tls/ca.pem, "
         "require_client_cert: true, min_version: 1.3}\n"
         "channels:\n"
         "  - name: c\n"
         "    transformer: {type: lua, script: fix.lua}\n"
         "    destinations: [d]\n"
         "destinations:\n"
         "  - {name: d, type: fhir_local}\n";
  auto c = LoadConfig((dir / "isthmus.yaml").string());
  ASSERT_TRUE(c.ok()) << c.status();
  const Listener& l = (*c)->listeners[0];
  ASSERT_TRUE(l.tls.has_value());
  EXPECT_EQ(l.tls->cert, (dir / "tls/cert.pem").string());
  EXPECT_TRUE(l.tls->require_client_cert);
  EXPECT_TRUE(l.tls->tls13_only);
  EXPECT_EQ((*c)->channels[0].transformer.type, TransformerType::kLua);
  EXPECT_EQ((*c)->channels[0].transformer.script, (dir / "fix.lua").string());

  fs::remove(dir / "fix.lua");
  c = LoadConfig((dir / "isthmus.yaml").string());
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(),
              HasSubstr(base::StrCat((dir / "isthmus.yaml").string(), ":7:38: 'script': ")));
  fs::remove_all(dir);
}

TEST(ConfigTest, FhirTransformerMapsIsADirectoryBesideTheConfig) {
  // `maps` names a directory of site maps (docs/mapping-guide.md), relative to the config file;
  // a file or a missing path is an error at the key's line and column.
  namespace fs = std::filesystem;
  fs::path dir = fs::path(testing::TempDir()) / "isthmus_config_maps_test";
  fs::create_directories(dir / "site-maps" / "lua");
  std::ofstream(dir / "notadir.yaml") << "x\n";
  auto write = [&](std::string_view maps) {
    std::ofstream(dir / "isthmus.yaml")
        << "channels:\n"
           "  - name: c\n"
           "    transformer: {type: fhir, maps: " << maps << "}\n"
           "    destinations: [d]\n"
           "destinations:\n"
           "  - {name: d, type: fhir_local}\n";
  };
  write("site-maps");
  auto c = LoadConfig((dir / "isthmus.yaml").string());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->channels[0].transformer.maps, (dir / "site-maps").string());
  // "    transformer: {type: fhir, maps: " is 36 characters: the value is at column 37.
  for (std::string_view bad : {"notadir.yaml", "missing"}) {
    write(bad);
    c = LoadConfig((dir / "isthmus.yaml").string());
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_THAT(std::string(c.status().message()),
                HasSubstr(base::StrCat((dir / "isthmus.yaml").string(), ":3:37: 'maps': ",
                                       (dir / bad).string(), " is not a directory")));
  }
  fs::remove_all(dir);
}

TEST(ConfigTest, UnreadableFileIsNotInvalid) {
  auto c = LoadConfig("/nonexistent/isthmus.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace isthmus::config

namespace isthmus::config {
namespace {

// docs/configuration.md shows examples/isthmus.yaml verbatim; the test above loads the file.
TEST(ConfigDocsTest, DocumentationQuotesTheExampleFile) {
  std::ifstream example(ISTHMUS_SOURCE_DIR "/examples/isthmus.yaml");
  std::ifstream docs(ISTHMUS_SOURCE_DIR "/docs/configuration.md");
  std::string e((std::istreambuf_iterator<char>(example)), std::istreambuf_iterator<char>());
  std::string d((std::istreambuf_iterator<char>(docs)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(e.empty());
  EXPECT_THAT(d, HasSubstr("```yaml\n" + e + "```")) << "update the example in docs/configuration.md";
}

}  // namespace
}  // namespace isthmus::config
