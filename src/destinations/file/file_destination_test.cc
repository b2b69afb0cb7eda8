#include "destinations/file/file_destination.h"

#include <sys/resource.h>

#include <cerrno>
#include <filesystem>

#include "base/file.h"
#include "base/str.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isthmus::destinations {
namespace {

namespace fs = std::filesystem;

// Every test runs twice: with unnamed files (O_TMPFILE, linked into place) and with named
// temporaries (the path taken where the file system has no O_TMPFILE).
class FileDestinationTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("filedest_" + std::to_string(GetParam()) + "_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  FileDestinationOptions Opts(std::string filename) {
    FileDestinationOptions o;
    o.name = "archive";
    o.directory = (dir_ / "out").string();
    o.filename = std::move(filename);
    o.clock = &clock_;
    o.unnamed_files = GetParam();
    return o;
  }
  static core::Delivery D(std::string_view control_id, std::string_view payload) {
    core::Delivery d;
    d.queue_id = 7;
    d.message_id = 42;
    d.channel = "lab";
    d.control_id = control_id;
    d.message_type = "ORU^R01";
    d.payload = payload;
    return d;
  }
  std::vector<std::string> Files() const {
    std::vector<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dir_)) {
      if (e.is_regular_file()) out.push_back(fs::relative(e.path(), dir_).string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  fs::path dir_;
  base::FakeClock clock_{absl::FromUnixMicros(1'700'000'000'123'456)};
};

using ::testing::ElementsAre;

TEST_P(FileDestinationTest, WritesTheExpandedNameAtomically) {
  auto d = FileDestination::Create(Opts("${channel}/${type}-${control_id}-${message_id}.hl7"));
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_TRUE((*d)->Deliver(D("C1", "MSH|first\r")).ok());
  EXPECT_THAT(Files(), ElementsAre("out/lab/ORU_R01-C1-42.hl7"));
  EXPECT_EQ(base::ReadFile((dir_ / "out/lab/ORU_R01-C1-42.hl7").string()).value(), "MSH|first\r");
  // A redelivery overwrites the same file.
  ASSERT_TRUE((*d)->Deliver(D("C1", "MSH|second\r")).ok());
  EXPECT_THAT(Files(), ElementsAre("out/lab/ORU_R01-C1-42.hl7"));
  EXPECT_EQ(base::ReadFile((dir_ / "out/lab/ORU_R01-C1-42.hl7").string()).value(), "MSH|second\r");
}

TEST_P(FileDestinationTest, TimestampAndQueueId) {
  auto d = FileDestination::Create(Opts("${timestamp}_${queue_id}.txt"));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ((*d)->FileName(D("C1", "")), "20231114221320123456_7.txt");
}

TEST_P(FileDestinationTest, ValuesCannotEscapeTheDirectory) {
  auto d = FileDestination::Create(Opts("${control_id}.hl7"));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ((*d)->FileName(D("../../etc/passwd", "")), ".._.._etc_passwd.hl7");
  EXPECT_EQ((*d)->FileName(D("..", "")), "_.hl7");
  EXPECT_EQ((*d)->FileName(D("", "")), "_.hl7");
  ASSERT_TRUE((*d)->Deliver(D("../x", "p")).ok());
  EXPECT_THAT(Files(), ElementsAre("out/.._x.hl7"));
}

TEST_P(FileDestinationTest, BadTemplatesAreRejectedAtCreate) {
  for (const char* t : {"${nope}.hl7", "${channel", "/abs/${message_id}", "../${message_id}",
                        "a//b", "dir/", ""}) {
    auto d = FileDestination::Create(Opts(t));
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << t;
  }
  FileDestinationOptions o = Opts("x");
  o.directory.clear();
  EXPECT_EQ(FileDestination::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(FileDestinationTest, DiskFullIsRetryableAndLeavesNoTemporaryFile) {
  FileDestinationOptions o = Opts("${message_id}.hl7");
  o.fault_for_test = [](std::string_view step) { return step == "write" ? ENOSPC : 0; };
  auto d = FileDestination::Create(o);
  ASSERT_TRUE(d.ok());
  absl::Status s = (*d)->Deliver(D("C1", "payload"));
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_TRUE(core::IsRetryable(s));
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("No space left on device"));
  EXPECT_TRUE(Files().empty());
}

TEST_P(FileDestinationTest, PermissionDeniedIsNotRetryable) {
  FileDestinationOptions o = Opts("${message_id}.hl7");
  o.fault_for_test = [](std::string_view step) { return step == "open" ? EACCES : 0; };
  auto d = FileDestination::Create(o);
  ASSERT_TRUE(d.ok());
  absl::Status s = (*d)->Deliver(D("C1", "payload"));
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_FALSE(core::IsRetryable(s));
}

TEST_P(FileDestinationTest, FailedRenameOrFsyncLeavesNoFile) {
  for (const char* step : {"fsync", "rename"}) {
    FileDestinationOptions o = Opts("${message_id}.hl7");
    o.fault_for_test = [step](std::string_view s) { return s == step ? EIO : 0; };
    auto d = FileDestination::Create(o);
    ASSERT_TRUE(d.ok());
    absl::Status s = (*d)->Deliver(D("C1", "payload"));
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << step << ": " << s;
    EXPECT_TRUE(Files().empty()) << step;
  }
}

TEST_P(FileDestinationTest, MissingDirectoryWithoutCreateIsAPrecondition) {
  FileDestinationOptions o = Opts("${message_id}.hl7");
  o.create_directories = false;
  auto d = FileDestination::Create(o);
  ASSERT_TRUE(d.ok());
  absl::Status s = (*d)->Deliver(D("C1", "payload"));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_FALSE(core::IsRetryable(s));
}

TEST_P(FileDestinationTest, DirectoryIsAFileIsNotRetryable) {
  ASSERT_TRUE(base::WriteFileAtomic((dir_ / "out").string(), "not a directory").ok());
  auto d = FileDestination::Create(Opts("${message_id}.hl7"));
  ASSERT_TRUE(d.ok());
  absl::Status s = (*d)->Deliver(D("C1", "payload"));
  EXPECT_FALSE(core::IsRetryable(s)) << s;
}

TEST_P(FileDestinationTest, ARunWritesEveryFileInOrder) {
  auto d = FileDestination::Create(Opts("${control_id}.hl7"));
  ASSERT_TRUE(d.ok());
  std::vector<core::Delivery> run = {D("C1", "one"), D("C2", "two"), D("C3", "three")};
  std::vector<absl::Status> r = (*d)->DeliverBatch(run);
  ASSERT_EQ(r.size(), 3u);
  for (const auto& s : r) EXPECT_TRUE(s.ok()) << s;
  EXPECT_THAT(Files(), ElementsAre("out/C1.hl7", "out/C2.hl7", "out/C3.hl7"));
  EXPECT_EQ(base::ReadFile((dir_ / "out/C3.hl7").string()).value(), "three");
}

TEST_P(FileDestinationTest, ARunCreatesEachOfItsDirectories) {
  FileDestinationOptions o = Opts("${channel}/${control_id}.hl7");
  o.create_directories = true;
  auto d = FileDestination::Create(o);
  ASSERT_TRUE(d.ok()) << d.status();
  std::vector<core::Delivery> run = {D("C1", "one"), D("C2", "two"), D("C3", "three")};
  run[1].channel = "adt";  // lab, adt, lab: the directory changes twice within the run
  std::vector<absl::Status> r = (*d)->DeliverBatch(run);
  for (const auto& s : r) EXPECT_TRUE(s.ok()) << s;
  EXPECT_THAT(Files(), ElementsAre("out/adt/C2.hl7", "out/lab/C1.hl7", "out/lab/C3.hl7"));
}

TEST_P(FileDestinationTest, ARunStopsAtTheFirstFailureAndLeavesNoTemporaryFile) {
  for (const char* step : {"write", "rename"}) {
    fs::remove_all(dir_ / "out");
    int calls = 0;
    FileDestinationOptions o = Opts("${control_id}.hl7");
    // The second file fails at `step`.
    o.fault_for_test = [step, &calls](std::string_view s) {
      return s == step && ++calls == 2 ? EIO : 0;
    };
    auto d = FileDestination::Create(o);
    ASSERT_TRUE(d.ok());
    std::vector<core::Delivery> run = {D("C1", "one"), D("C2", "two"), D("C3", "three")};
    std::vector<absl::Status> r = (*d)->DeliverBatch(run);
    ASSERT_EQ(r.size(), 2u) << step;
    EXPECT_TRUE(r[0].ok()) << step << ": " << r[0];
    EXPECT_EQ(r[1].code(), absl::StatusCode::kUnavailable) << step << ": " << r[1];
    EXPECT_THAT(Files(), ElementsAre("out/C1.hl7")) << step;
  }
}

TEST_P(FileDestinationTest, ARunWhoseDataSyncFailsDeliversNothing) {
  FileDestinationOptions o = Opts("${control_id}.hl7");
  o.fault_for_test = [](std::string_view s) { return s == "fsync" ? EIO : 0; };
  auto d = FileDestination::Create(o);
  ASSERT_TRUE(d.ok());
  std::vector<core::Delivery> run = {D("C1", "one"), D("C2", "two")};
  std::vector<absl::Status> r = (*d)->DeliverBatch(run);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].code(), absl::StatusCode::kUnavailable) << r[0];
  EXPECT_TRUE(Files().empty());
}

TEST_P(FileDestinationTest, NoNamedTemporaryWithUnnamedFiles) {
  // Just before the first file is named, the directory holds a named temporary only when
  // unnamed files are off.
  std::vector<std::string> seen;
  bool looked = false;
  FileDestinationOptions o = Opts("${control_id}.hl7");
  o.fault_for_test = [&](std::string_view s) {
    if (s == "rename" && !looked) seen = Files();
    looked = looked || s == "rename";
    return 0;
  };
  auto d = FileDestination::Create(o);
  ASSERT_TRUE(d.ok());
  std::vector<core::Delivery> run = {D("C1", "one"), D("C2", "two")};
  for (const auto& s : (*d)->DeliverBatch(run)) EXPECT_TRUE(s.ok()) << s;
  ASSERT_TRUE(looked);
  if (GetParam()) {
    EXPECT_THAT(seen, ::testing::IsEmpty());
  } else {
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_THAT(seen[0], ::testing::StartsWith("out/.C1.hl7.tmp."));
  }
  EXPECT_THAT(Files(), ElementsAre("out/C1.hl7", "out/C2.hl7"));
}

TEST_P(FileDestinationTest, ARunReplacesFilesOfTheSameName) {
  auto d = FileDestination::Create(Opts("${control_id}.hl7"));
  ASSERT_TRUE(d.ok());
  std::vector<core::Delivery> first = {D("C1", "one"), D("C2", "two")};
  for (const auto& s : (*d)->DeliverBatch(first)) EXPECT_TRUE(s.ok()) << s;
  // A redelivery of both (at least once) and a new one.
  std::vector<core::Delivery> again = {D("C1", "one again"), D("C2", "two again"), D("C3", "3")};
  for (const auto& s : (*d)->DeliverBatch(again)) EXPECT_TRUE(s.ok()) << s;
  EXPECT_THAT(Files(), ElementsAre("out/C1.hl7", "out/C2.hl7", "out/C3.hl7"));
  EXPECT_EQ(base::ReadFile((dir_ / "out/C1.hl7").string()).value(), "one again");
  EXPECT_EQ(base::ReadFile((dir_ / "out/C2.hl7").string()).value(), "two again");
}

// 150 files: three chunks (64 + 64 + 22) of writes, a data sync each, and names.
std::vector<core::Delivery> LongRun(std::vector<std::string>& ids) {
  ids.clear();
  for (int i = 0; i < 150; ++i) ids.push_back(base::StrCat("M", 1000 + i));
  std::vector<core::Delivery> run;
  for (const std::string& id : ids) {
    core::Delivery d;
    d.queue_id = 1;
    d.channel = "lab";
    d.control_id = id;
    d.payload = id;
    run.push_back(d);
  }
  return run;
}

TEST_P(FileDestinationTest, ARunLongerThanAChunkWritesEveryFile) {
  int syncs = 0;
  FileDestinationOptions o = Opts("${control_id}.hl7");
  o.max_open_files = 64;
  o.fault_for_test = [&](std::string_view s) { return (syncs += s == "fsync"), 0; };
  auto d = FileDestination::Create(o);
  ASSERT_TRUE(d.ok());
  std::vector<std::string> ids;
  std::vector<core::Delivery> run = LongRun(ids);
  std::vector<absl::Status> r = (*d)->DeliverBatch(run);
  ASSERT_EQ(r.size(), 150u);
  for (const auto& s : r) EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(syncs, 3);
  std::vector<std::string> want;
  for (const std::string& id : ids) want.push_back(base::StrCat("out/", id, ".hl7"));
  EXPECT_EQ(Files(), want);
  EXPECT_EQ(base::ReadFile((dir_ / "out/M1149.hl7").string()).value(), "M1149");
}

TEST_P(FileDestinationTest, AFailureInALaterChunkKeepsTheEarlierChunksDelivered) {
  for (const char* step : {"fsync", "write"}) {
    fs::remove_all(dir_ / "out");
    int calls = 0;
    // "fsync": the second chunk's data sync fails (nothing of it is named); "write": the
    // 71st file's write fails (the 70 before it are named).
    const int fail_at = std::string_view(step) == "fsync" ? 2 : 71;
    FileDestinationOptions o = Opts("${control_id}.hl7");
    o.max_open_files = 64;
    o.fault_for_test = [&](std::string_view s) { return s == step && ++calls == fail_at ? EIO : 0; };
    auto d = FileDestination::Create(o);
    ASSERT_TRUE(d.ok());
    std::vector<std::string> ids;
    std::vector<core::Delivery> run = LongRun(ids);
    std::vector<absl::Status> r = (*d)->DeliverBatch(run);
    const size_t ok = std::string_view(step) == "fsync" ? 64 : 70;
    ASSERT_EQ(r.size(), ok + 1) << step;
    for (size_t i = 0; i < ok; ++i) EXPECT_TRUE(r[i].ok()) << step << " " << i << ": " << r[i];
    EXPECT_EQ(r[ok].code(), absl::StatusCode::kUnavailable) << step << ": " << r[ok];
    std::vector<std::string> want;
    for (size_t i = 0; i < ok; ++i) want.push_back(base::StrCat("out/", ids[i], ".hl7"));
    EXPECT_EQ(Files(), want) << step;
  }
}

// Out of descriptors in the middle of a chunk: the files already open are synced and named, and
// the one that could not be opened starts the next chunk (9 + 64 + 64 + 13 files, four syncs).
TEST_P(FileDestinationTest, RunningOutOfDescriptorsEndsTheChunkEarly) {
  int syncs = 0, opens = 0;
  FileDestinationOptions o = Opts("${control_id}.hl7");
  o.max_open_files = 64;
  o.fault_for_test = [&](std::string_view s) {
    syncs += s == "fsync";
    return s == "open" && ++opens == 10 ? EMFILE : 0;
  };
  auto d = FileDestination::Create(o);
  ASSERT_TRUE(d.ok());
  std::vector<std::string> ids;
  std::vector<absl::Status> r = (*d)->DeliverBatch(LongRun(ids));
  ASSERT_EQ(r.size(), 150u);
  for (const auto& s : r) EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(syncs, 4);
  EXPECT_EQ(Files().size(), 150u);
  EXPECT_EQ(base::ReadFile((dir_ / "out/M1009.hl7").string()).value(), "M1009");
}

// ... but out of descriptors with nothing open in the run is the delivery's failure (retried).
TEST_P(FileDestinationTest, OutOfDescriptorsForTheFirstFileFailsTheRun) {
  FileDestinationOptions o = Opts("${control_id}.hl7");
  o.fault_for_test = [](std::string_view s) { return s == "open" ? EMFILE : 0; };
  auto d = FileDestination::Create(o);
  ASSERT_TRUE(d.ok());
  std::vector<std::string> ids;
  std::vector<absl::Status> r = (*d)->DeliverBatch(LongRun(ids));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].code(), absl::StatusCode::kResourceExhausted) << r[0];
  EXPECT_TRUE(Files().empty());
}

// Without a configured size a chunk is a quarter of the descriptor limit: with the soft limit at
// 160 when the destination is made, a run of 150 is four chunks of 40 or fewer (four data syncs).
TEST_P(FileDestinationTest, TheDefaultChunkFollowsTheDescriptorLimit) {
  struct rlimit saved {};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  struct rlimit low = saved;
  low.rlim_cur = 160;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  int syncs = 0;
  FileDestinationOptions o = Opts("${control_id}.hl7");
  o.fault_for_test = [&](std::string_view s) { return (syncs += s == "fsync"), 0; };
  auto d = FileDestination::Create(o);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_TRUE(d.ok());
  std::vector<std::string> ids;
  std::vector<absl::Status> r = (*d)->DeliverBatch(LongRun(ids));
  ASSERT_EQ(r.size(), 150u);
  for (const auto& s : r) EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(syncs, 4);
  EXPECT_EQ(Files().size(), 150u);
}

INSTANTIATE_TEST_SUITE_P(Unnamed, FileDestinationTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? "UnnamedFiles" : "NamedTemporaries";
                         });

}  // namespace
}  // namespace isthmus::destinations
