#include "pipeline/pipeline.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <map>
#include <thread>

#include "gtest/gtest.h"

namespace isthmus::pipeline {
namespace {

std::string Adt(std::string id, std::string patient_class = "I", std::string mrn = "123") {
  return "MSH|^~\\&|LAB|HOSP|ISTHMUS|HOSP|20240101120000||ADT^A01^ADT_A01|" + id +
         "|P|2.5.1\rEVN|A01|20240101120000\rPID|1||" + mrn + "^^^HOSP^MR||DOE^JANE\rPV1|1|" +
         patient_class + "\r";
}

// Uppercases PID-5.1, or filters messages whose PID-5.1 is "TEST", or fails on "BOOM".
class FakeTransformer : public core::Transformer {
 public:
  absl::StatusOr<core::TransformOutcome> Run(hl7v2::Message& msg) override {
    std::string family = msg.GetText("PID-5.1");
    if (family == "BOOM") return absl::InvalidArgumentError("script.lua:3: boom");
    if (family == "TEST") return core::TransformOutcome{core::TransformOutcome::kFilter, "test patient", ""};
    if (family == "JSON") return core::TransformOutcome{core::TransformOutcome::kReplace, "", "{\"x\":1}"};
    absl::Status s = msg.SetText("PID-5.1", "ROE");
    if (!s.ok()) return s;
    return core::TransformOutcome{};
  }
};

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = std::filesystem::path(::testing::TempDir()) /
               ("pipeline_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    writer_ = std::move(store::Writer::Open((dir / "isthmus.db").string())).value();
    journal_ = std::move(store::Journal::Open(*writer_, {})).value();
    queue_ = std::move(store::Queue::Open(*writer_)).value();
  }

  void Start(std::vector<ChannelPlan> channels) {
    std::vector<DestinationPlan> dests = {{"all", std::nullopt},
                                          {"inpatient", hl7v2::Path::Parse("PID-3.1").value()}};
    PipelineOptions o;
    o.counters = &counters_;
    auto p = Pipeline::Create(*writer_, *journal_, std::move(channels), std::move(dests),
                              [this](const std::string& d) {
                                std::lock_guard<std::mutex> lock(mu_);
                                notified_.push_back(d);
                              },
                              o);
    ASSERT_TRUE(p.ok()) << p.status();
    pipeline_ = std::move(p).value();
  }

  // Journals and processes one message; returns the pipeline's result.
  // (Journaled with control id `control_id`: the same one twice is a duplicate of the first.)
  PipelineResult Run(const std::string& raw, std::string channel = "adt",
                     std::string control_id = "x") {
    auto id = journal_->AppendAndWait(
        store::IncomingMessage{channel, "LAB|HOSP", control_id, "ADT^A01", "peer", raw});
    EXPECT_TRUE(id.ok());
    std::promise<PipelineResult> done;
    pipeline_->Submit(id->id, channel, std::make_shared<const std::string>(raw),
                      [&done](PipelineResult r) { done.set_value(std::move(r)); });
    return done.get_future().get();
  }

  static ChannelPlan AdtChannel() {
    ChannelPlan c;
    c.name = "adt";
    c.routes.push_back(RoutePlan{nullptr, {"all"}});
    c.routes.push_back(RoutePlan{[](const hl7v2::Message& m) { return m.GetText("PV1-2") == "I"; },
                                 {"inpatient", "all"}});
    return c;
  }

  std::unique_ptr<store::Writer> writer_;
  std::unique_ptr<store::Journal> journal_;
  std::unique_ptr<store::Queue> queue_;
  ChannelCounterRegistry counters_;  // before pipeline_: outlives it
  std::unique_ptr<Pipeline> pipeline_;
  std::mutex mu_;
  std::vector<std::string> notified_;
};

TEST_F(PipelineTest, RoutesToEveryMatchingDestinationOnceWithPartitionKey) {
  Start({AdtChannel()});
  PipelineResult r = Run(Adt("M1", "I", "MRN7"));
  EXPECT_EQ(r.state, "queued");
  EXPECT_EQ(r.destinations, (std::vector<std::string>{"all", "inpatient"}));
  auto rec = journal_->Get(r.message_id);
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->state, "queued");
  EXPECT_EQ(rec->events.back().reason, "to all, inpatient");
  auto items = queue_->Claim("inpatient", "test", 10, absl::Minutes(1));
  ASSERT_TRUE(items.ok());
  ASSERT_EQ(items->size(), 1u);
  EXPECT_EQ((*items)[0].partition_key, "MRN7");
  EXPECT_EQ((*items)[0].payload, Adt("M1", "I", "MRN7"));  // untransformed: the raw bytes
  EXPECT_EQ(notified_, (std::vector<std::string>{"all", "inpatient"}));

  r = Run(Adt("M2", "O"));
  EXPECT_EQ(r.destinations, (std::vector<std::string>{"all"}));
}

TEST_F(PipelineTest, FilterUnroutedAndUnknownChannel) {
  ChannelPlan c = AdtChannel();
  c.filter = [](const hl7v2::Message& m) { return m.trigger_event() == "A01"; };
  ChannelPlan only_inpatient;
  only_inpatient.name = "picky";
  only_inpatient.routes.push_back(RoutePlan{[](const hl7v2::Message& m) { return m.GetText("PV1-2") == "E"; }, {"all"}});
  Start({c, only_inpatient});
  std::string a04 = Adt("F1");
  a04.replace(a04.find("ADT^A01^ADT_A01"), 15, "ADT^A04^ADT_A01");
  EXPECT_EQ(Run(a04).state, "filtered");
  EXPECT_EQ(Run(Adt("U1"), "picky").state, "unrouted");
  PipelineResult r = Run(Adt("X1"), "nope");
  EXPECT_EQ(r.state, "error");
  EXPECT_EQ(r.reason, "unknown channel 'nope'");
  EXPECT_EQ(journal_->Get(r.message_id)->state, "error");
}

// Expected per channel, from the outcomes sent (channel_counters.h): filtered = filter or
// transformer dropped it; errored = error + invalid + unrouted; queued and processed count
// nothing here (delivered/dead are counted by the dispatchers).
TEST_F(PipelineTest, CountsCommittedOutcomesPerChannel) {
  ChannelPlan adt = AdtChannel();
  adt.filter = [](const hl7v2::Message& m) { return m.trigger_event() == "A01"; };
  adt.validator = hl7v2::Validator::Create({}).value();
  adt.reject_invalid = true;
  adt.transformer = []() -> absl::StatusOr<std::unique_ptr<core::Transformer>> {
    return std::make_unique<FakeTransformer>();
  };
  ChannelPlan picky;
  picky.name = "picky";
  picky.routes.push_back(RoutePlan{[](const hl7v2::Message& m) { return m.GetText("PV1-2") == "E"; }, {"all"}});
  ChannelPlan journal_only;
  journal_only.name = "journal";
  Start({adt, picky, journal_only});

  std::string a04 = Adt("C1");
  a04.replace(a04.find("ADT^A01^ADT_A01"), 15, "ADT^A04^ADT_A01");
  ASSERT_EQ(Run(a04, "adt", "C1").state, "filtered");              // adt: filtered 1
  std::string test_patient = Adt("C2");
  test_patient.replace(test_patient.find("DOE"), 3, "TEST");
  ASSERT_EQ(Run(test_patient, "adt", "C2").state, "filtered");     // adt: filtered 2 (transformer)
  std::string no_pid3 = Adt("C3");
  no_pid3.replace(no_pid3.find("PID|1||123^^^HOSP^MR||"), 22, "PID|1||||");
  ASSERT_EQ(Run(no_pid3, "adt", "C3").state, "invalid");           // adt: errored 1
  std::string boom = Adt("C4");
  boom.replace(boom.find("DOE"), 3, "BOOM");
  ASSERT_EQ(Run(boom, "adt", "C4").state, "error");                // adt: errored 2 (transformer)
  ASSERT_EQ(Run("not hl7", "adt", "C4b").state, "error");           // adt: errored 3 (unparsable)
  ASSERT_EQ(Run(Adt("C5"), "adt", "C5").state, "queued");          // adt: nothing
  ASSERT_EQ(Run(Adt("C6"), "picky", "C6").state, "unrouted");  // picky: errored 1
  ASSERT_EQ(Run(Adt("C7", "E"), "picky", "C7").state, "queued");
  ASSERT_EQ(Run(Adt("C8"), "journal", "C8").state, "processed");  // journal: nothing
  ASSERT_EQ(Run(Adt("C9"), "nope", "C9").state, "error");   // nope (unknown): errored 1

  // Decided before the commit (no transformer): counted once `committed` runs, not before.
  const std::string c10 = Adt("C10");  // the parsed message views this text: keep it alive
  auto parsed = hl7v2::Message::Parse(c10);
  ASSERT_TRUE(parsed.ok());
  auto out = pipeline_->DecideBeforeCommit("picky", *parsed);
  ASSERT_TRUE(out.has_value());
  ASSERT_EQ(out->state, "unrouted");
  EXPECT_EQ(counters_.For("picky")->errored.load(), 1u);
  out->committed();                                   // picky: errored 2

  std::map<std::string, std::vector<uint64_t>> got;
  for (const ChannelOutcomeSnapshot& c : counters_.Snapshot()) {
    got[c.name] = {c.filtered, c.errored, c.delivered, c.dead};
  }
  std::map<std::string, std::vector<uint64_t>> want = {
      {"adt", {2, 3, 0, 0}}, {"picky", {0, 2, 0, 0}}, {"journal", {0, 0, 0, 0}},
      {"nope", {0, 1, 0, 0}}};
  EXPECT_EQ(got, want);
}

// The `queued` gauge of GET /api/channels: queue rows per channel of their messages.
TEST_F(PipelineTest, QueuedRowsAreCountedPerChannelWithinTheScanLimit) {
  ChannelPlan other = AdtChannel();
  other.name = "other";
  Start({AdtChannel(), other});
  ASSERT_EQ(Run(Adt("Q1", "I"), "adt", "Q1").state, "queued");  // adt: all + inpatient = 2 rows
  ASSERT_EQ(Run(Adt("Q2", "O"), "adt", "Q2").state, "queued");  // adt: all = 1 row
  ASSERT_EQ(Run(Adt("Q3", "O"), "other", "Q3").state, "queued");  // other: 1 row
  auto counted = queue_->CountQueuedByChannel(100);
  ASSERT_TRUE(counted.ok()) << counted.status();
  using Rows = std::vector<std::pair<std::string, int64_t>>;
  EXPECT_EQ(counted->channels, (Rows{{"adt", 3}, {"other", 1}}));
  EXPECT_FALSE(counted->truncated);

  // A delivered row leaves the queue.
  auto items = queue_->Claim("inpatient", "t", 1, absl::Minutes(1));
  ASSERT_EQ(items->size(), 1u);
  ASSERT_TRUE(queue_->Ack((*items)[0]).ok());
  EXPECT_EQ(queue_->CountQueuedByChannel(100)->channels, (Rows{{"adt", 2}, {"other", 1}}));

  // Bounded: the 3 rows left, read 2 at most: the oldest messages' rows (Q1's and Q2's).
  counted = queue_->CountQueuedByChannel(2);
  ASSERT_TRUE(counted.ok());
  EXPECT_EQ(counted->channels, (Rows{{"adt", 2}}));
  EXPECT_TRUE(counted->truncated);
  EXPECT_FALSE(queue_->CountQueuedByChannel(3)->truncated);
}

TEST_F(PipelineTest, UsesTheListenersParseInsteadOfParsingAgain) {
  ChannelPlan c = AdtChannel();
  c.filter = [](const hl7v2::Message& m) { return m.trigger_event() == "A01"; };
  Start({c});
  // The raw bytes say A04 (filtered), the message handed over says A01: the outcome shows
  // which one the pipeline looked at. (A listener hands over the parse of the raw bytes
  // themselves; the two differ here only to tell them apart.)
  std::string a04 = Adt("P1");
  a04.replace(a04.find("ADT^A01^ADT_A01"), 15, "ADT^A04^ADT_A01");
  auto id = journal_->AppendAndWait(store::IncomingMessage{"adt", "LAB|HOSP", "P1", "ADT^A04", "peer", a04});
  ASSERT_TRUE(id.ok());
  auto a01 = std::make_shared<const std::string>(Adt("P1"));
  auto parsed = hl7v2::Message::Parse(*a01);
  ASSERT_TRUE(parsed.ok());
  std::promise<PipelineResult> done;
  pipeline_->AcceptParsed(id->id, "adt", std::make_shared<const std::string>(a04),
                          std::make_shared<hl7v2::Message>(std::move(*parsed)),
                          [&done](PipelineResult r) { done.set_value(std::move(r)); });
  EXPECT_EQ(done.get_future().get().state, "queued");
  EXPECT_EQ(Run(a04).state, "filtered");  // without a parse handed over, the raw bytes count
}

TEST_F(PipelineTest, DecidedBeforeCommitIsWrittenWithTheMessage) {
  ChannelPlan with_transformer = AdtChannel();
  with_transformer.name = "converted";
  with_transformer.transformer = []() -> absl::StatusOr<std::unique_ptr<core::Transformer>> {
    return std::make_unique<FakeTransformer>();
  };
  Start({AdtChannel(), with_transformer});
  std::string raw = Adt("B1", "I", "MRN9");
  auto parsed = hl7v2::Message::Parse(raw);
  ASSERT_TRUE(parsed.ok());
  // A transformer runs on the workers after the ACK, never on the listener's thread.
  EXPECT_FALSE(pipeline_->DecideBeforeCommit("converted", *parsed).has_value());
  EXPECT_FALSE(pipeline_->DecideBeforeCommit("nope", *parsed).has_value());

  auto out = pipeline_->DecideBeforeCommit("adt", *parsed);
  ASSERT_TRUE(out.has_value());
  EXPECT_TRUE(notified_.empty());  // nothing is written or woken before the commit
  store::IncomingMessage m{"adt", "LAB|HOSP", "B1", "ADT^A01", "peer", raw};
  m.then = out->write;
  EXPECT_EQ(out->state, "queued");
  m.then_state = out->state;
  auto id = journal_->AppendAndWait(m);
  ASSERT_TRUE(id.ok()) << id.status();
  auto rec = journal_->Get(id->id);
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->state, "queued");
  ASSERT_EQ(rec->events.size(), 2u);
  EXPECT_EQ(rec->events[0].state, "received");
  EXPECT_EQ(rec->events[1].reason, "to all, inpatient");
  auto items = queue_->Claim("inpatient", "test", 10, absl::Minutes(1));
  ASSERT_TRUE(items.ok());
  ASSERT_EQ(items->size(), 1u);
  EXPECT_EQ((*items)[0].message_id, id->id);
  EXPECT_EQ((*items)[0].partition_key, "MRN9");
  out->committed();
  EXPECT_EQ(notified_, (std::vector<std::string>{"all", "inpatient"}));

  // A duplicate is not routed again: its outcome is not written.
  store::IncomingMessage again{"adt", "LAB|HOSP", "B1", "ADT^A01", "peer", raw};
  again.then = out->write;
  again.then_state = out->state;
  auto dup = journal_->AppendAndWait(again);
  ASSERT_TRUE(dup.ok());
  EXPECT_TRUE(dup->duplicate);
  ASSERT_TRUE(queue_->ReleaseAll(*items).ok());
  items = queue_->Claim("inpatient", "test", 10, absl::Minutes(1));
  ASSERT_TRUE(items.ok());
  EXPECT_EQ(items->size(), 1u);
}

TEST_F(PipelineTest, OnlyChannelsRoutedByNothingButTheHeaderGoWithoutTheBody) {
  ChannelPlan plain;  // every message to "all": the header is enough
  plain.name = "plain";
  plain.routes.push_back(RoutePlan{nullptr, {"all"}});
  ChannelPlan journal_only;
  journal_only.name = "journal";
  ChannelPlan filtered = plain;
  filtered.name = "filtered";
  filtered.filter = [](const hl7v2::Message& m) { return m.GetText("PV1-2") == "I"; };
  ChannelPlan validated = plain;
  validated.name = "validated";
  validated.validator = hl7v2::Validator::Create({}).value();
  ChannelPlan partitioned;  // "inpatient" is partitioned by PID-3.1
  partitioned.name = "partitioned";
  partitioned.routes.push_back(RoutePlan{nullptr, {"inpatient"}});
  ChannelPlan transformed = plain;
  transformed.name = "transformed";
  transformed.transformer = []() -> absl::StatusOr<std::unique_ptr<core::Transformer>> {
    return std::make_unique<FakeTransformer>();
  };
  Start({plain, journal_only, filtered, validated, partitioned, transformed, AdtChannel()});
  EXPECT_FALSE(pipeline_->NeedsMessageBody("plain"));
  EXPECT_FALSE(pipeline_->NeedsMessageBody("journal"));
  EXPECT_TRUE(pipeline_->NeedsMessageBody("filtered"));
  EXPECT_TRUE(pipeline_->NeedsMessageBody("validated"));
  EXPECT_TRUE(pipeline_->NeedsMessageBody("partitioned"));
  EXPECT_TRUE(pipeline_->NeedsMessageBody("transformed"));
  EXPECT_TRUE(pipeline_->NeedsMessageBody("adt"));  // a route with a condition on PV1-2
  EXPECT_TRUE(pipeline_->NeedsMessageBody("nope"));

  hl7v2::ParseOptions header_only;
  header_only.header_only = true;
  std::string raw = Adt("H1", "I", "MRN7");
  auto head = hl7v2::Message::Parse(raw, header_only);
  ASSERT_TRUE(head.ok());
  // A header-only parse is decided for a channel that needs nothing more...
  auto out = pipeline_->DecideBeforeCommit("plain", *head);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->state, "queued");
  // ...and never for one that reads the body (its conditions would read empty fields): that
  // message is decided after the commit, from its bytes.
  EXPECT_FALSE(pipeline_->DecideBeforeCommit("adt", *head).has_value());
  EXPECT_FALSE(pipeline_->DecideBeforeCommit("partitioned", *head).has_value());
  EXPECT_FALSE(pipeline_->DecideBeforeCommit("filtered", *head).has_value());
}

// The store stops taking writes (SQLite's max_page_count makes it answer SQLITE_FULL, as a full
// disk does) while outcomes are being recorded: the outcomes are kept, not dropped, and once the
// store takes writes again every one is recorded exactly once, in the channel's order.
TEST_F(PipelineTest, OutcomesThatCouldNotBeStoredAreKeptAndWrittenInOrderLater) {
  Start({AdtChannel()});
  constexpr int kMessages = 300;
  std::vector<int64_t> ids;
  for (int i = 0; i < kMessages; ++i) {
    auto id = journal_->AppendAndWait(
        store::IncomingMessage{"adt", "LAB|HOSP", "F" + std::to_string(i), "ADT^A01", "peer", Adt("F" + std::to_string(i))});
    ASSERT_TRUE(id.ok()) << id.status();
    ids.push_back(id->id);
  }
  auto set_max_pages = [this](std::string value) {
    return writer_->Run([value](db::Connection& c) mutable -> absl::Status {
      if (value.empty()) {
        auto q = c.Prepare("PRAGMA page_count");
        if (!q.ok()) return q.status();
        auto row = (*q)->Step();
        if (!row.ok()) return row.status();
        value = std::to_string((*q)->ColumnInt64(0));  // no page can be added: "disk full"
      }
      return c.Exec("PRAGMA max_page_count = " + value);
    });
  };
  ASSERT_TRUE(set_max_pages("").ok());

  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> states;
  for (int i = 0; i < kMessages; ++i) {
    std::string raw = Adt("F" + std::to_string(i));
    pipeline_->Submit(ids[i], "adt", std::make_shared<const std::string>(raw), [&](PipelineResult r) {
      std::lock_guard<std::mutex> lock(mu);
      states.push_back(r.state);
      cv.notify_all();
    });
  }
  // The store refuses: some outcomes (each writes an event and three queue rows) stay unrecorded.
  auto held = [&] {
    return pipeline_->Backlog() > 0 && writer_->stats().failed_commits + writer_->stats().failed_ops > 0;
  };
  for (int i = 0; i < 500 && !held(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(held()) << "the store never refused a write";
  // Every caller hears at once (an application ACK is not held back): "queued" for those that
  // made it, "error" for those kept.
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return states.size() == kMessages; }))
        << states.size() << " of " << kMessages << " callers answered";
    EXPECT_GT(std::count(states.begin(), states.end(), "error"), 0);
  }
  EXPECT_GT(pipeline_->Backlog(), 0u);  // the kept ones still count: back-pressure

  ASSERT_TRUE(set_max_pages("1073741823").ok());  // space again
  for (int i = 0; i < 3000 && pipeline_->Backlog() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(pipeline_->Backlog(), 0u);

  auto reader = writer_->OpenReader();
  ASSERT_TRUE(reader.ok());
  auto events = (*reader)->Prepare("SELECT COUNT(*), COUNT(DISTINCT message_id) FROM message_events WHERE state = 'queued'");
  ASSERT_TRUE(events.ok());
  ASSERT_TRUE(*(*events)->Step());
  EXPECT_EQ((*events)->ColumnInt64(0), kMessages);  // once each
  EXPECT_EQ((*events)->ColumnInt64(1), kMessages);
  auto rows = (*reader)->Prepare("SELECT message_id FROM queue WHERE destination = 'all' ORDER BY id");
  ASSERT_TRUE(rows.ok());
  std::vector<int64_t> order;
  while (true) {
    auto row = (*rows)->Step();
    ASSERT_TRUE(row.ok());
    if (!*row) break;
    order.push_back((*rows)->ColumnInt64(0));
  }
  // Every message routed to "all" (once, or twice when inpatient) in arrival order.
  std::vector<int64_t> distinct;
  for (int64_t id : order) {
    if (distinct.empty() || distinct.back() != id) distinct.push_back(id);
  }
  EXPECT_EQ(distinct, ids);
}

TEST_F(PipelineTest, ChannelWithoutDestinationsOnlyJournals) {
  ChannelPlan journal_only;
  journal_only.name = "journal-only";
  Start({journal_only});
  PipelineResult r = Run(Adt("J1"), "journal-only");
  EXPECT_EQ(r.state, "processed");
  EXPECT_EQ(journal_->Get(r.message_id)->state, "processed");
}

TEST_F(PipelineTest, ValidationRejectsWhenConfigured) {
  ChannelPlan c = AdtChannel();
  c.validator = hl7v2::Validator::Create({}).value();
  c.reject_invalid = true;
  Start({c});
  std::string no_pid3 = Adt("V1");
  no_pid3.replace(no_pid3.find("PID|1||123^^^HOSP^MR||"), 22, "PID|1||||");
  PipelineResult r = Run(no_pid3);
  EXPECT_EQ(r.state, "invalid");
  EXPECT_NE(r.reason.find("PID-3"), std::string::npos) << r.reason;
  EXPECT_FALSE(r.issues.empty());
  EXPECT_EQ(Run(Adt("V2")).state, "queued");
}

TEST_F(PipelineTest, TransformerModifiesFiltersReplacesAndFails) {
  ChannelPlan c = AdtChannel();
  c.transformer = []() -> absl::StatusOr<std::unique_ptr<core::Transformer>> {
    return std::make_unique<FakeTransformer>();
  };
  Start({c});
  PipelineResult r = Run(Adt("T1", "O"));
  ASSERT_EQ(r.state, "queued");
  auto items = queue_->Claim("all", "t", 1, absl::Minutes(1));
  ASSERT_EQ(items->size(), 1u);
  EXPECT_NE((*items)[0].payload.find("PID|1||123^^^HOSP^MR||ROE^JANE"), std::string::npos);
  ASSERT_TRUE(queue_->Ack((*items)[0]).ok());

  std::string test_patient = Adt("T2");
  test_patient.replace(test_patient.find("DOE"), 3, "TEST");
  r = Run(test_patient);
  EXPECT_EQ(r.state, "filtered");
  EXPECT_EQ(r.reason, "test patient");

  std::string json = Adt("T3", "O");
  json.replace(json.find("DOE"), 3, "JSON");
  ASSERT_EQ(Run(json).state, "queued");
  items = queue_->Claim("all", "t", 1, absl::Minutes(1));
  ASSERT_EQ(items->size(), 1u);
  EXPECT_EQ((*items)[0].payload, "{\"x\":1}");

  std::string boom = Adt("T4");
  boom.replace(boom.find("DOE"), 3, "BOOM");
  r = Run(boom);
  EXPECT_EQ(r.state, "error");
  EXPECT_EQ(r.reason, "transformer: script.lua:3: boom");
}

TEST_F(PipelineTest, RecoverProcessesMessagesLeftReceivedInOrder) {
  Start({AdtChannel()});
  // Journaled but never processed, as after a crash between the ACK and the pipeline.
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(journal_->AppendAndWait(store::IncomingMessage{"adt", "LAB|HOSP", "R" + std::to_string(i),
                                                              "ADT^A01", "peer", Adt("R" + std::to_string(i), "O")})
                    .ok());
  }
  auto n = pipeline_->Recover();
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 5);
  pipeline_.reset();  // drains
  store::MessageQuery q;
  q.state = "queued";
  int64_t total = 0;
  ASSERT_TRUE(journal_->List(q, &total).ok());
  EXPECT_EQ(total, 5);
  // FIFO destination: claimed in arrival order.
  for (int i = 0; i < 5; ++i) {
    auto items = queue_->Claim("all", "t", 1, absl::Minutes(1));
    ASSERT_EQ(items->size(), 1u);
    EXPECT_EQ((*items)[0].payload, Adt("R" + std::to_string(i), "O"));
    ASSERT_TRUE(queue_->Ack((*items)[0]).ok());
  }
}

TEST_F(PipelineTest, ParallelWorkersKeepArrivalOrderInTheQueue) {
  std::vector<DestinationPlan> dests = {{"all", std::nullopt}, {"inpatient", std::nullopt}};
  PipelineOptions o;
  o.workers = 4;
  auto p = Pipeline::Create(*writer_, *journal_, {AdtChannel()}, dests, nullptr, o);
  ASSERT_TRUE(p.ok());
  constexpr int kMessages = 100;
  std::vector<std::string> raws;
  std::vector<int64_t> ids;
  for (int i = 0; i < kMessages; ++i) {
    raws.push_back(Adt("Q" + std::to_string(i), "O"));
    ids.push_back(journal_->AppendAndWait(store::IncomingMessage{"adt", "LAB|HOSP", "Q" + std::to_string(i),
                                                                 "ADT^A01", "peer", raws.back()})->id);
  }
  for (int i = 0; i < kMessages; ++i) {
    (*p)->Submit(ids[i], "adt", std::make_shared<const std::string>(raws[i]));
  }
  p->reset();  // drains
  for (int i = 0; i < kMessages; ++i) {
    auto items = queue_->Claim("all", "t", 1, absl::Minutes(1));
    ASSERT_TRUE(items.ok());
    ASSERT_EQ(items->size(), 1u);
    EXPECT_EQ((*items)[0].message_id, ids[i]) << "position " << i;
    ASSERT_TRUE(queue_->Ack((*items)[0]).ok());
  }
}

TEST_F(PipelineTest, UnknownRouteTargetIsRefusedAtCreate) {
  ChannelPlan c;
  c.name = "x";
  c.routes.push_back(RoutePlan{nullptr, {"nowhere"}});
  auto p = Pipeline::Create(*writer_, *journal_, {c}, {}, nullptr);
  EXPECT_FALSE(p.ok());
}

}  // namespace
}  // namespace isthmus::pipeline
