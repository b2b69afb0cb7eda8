// Hostile input over the shared HL7 v2 corpus (ISTHMUS_CORPUS_DIR/hl7v2-samples): 480 real and
// deliberately broken files from a dozen public projects, described file by file in INDEX.tsv.
//
// For every file: SplitBatch, then Message::Parse of every message. Each message is parsed or
// rejected with a clear error (and a NAK that parses); parsed messages re-encode byte for byte;
// reads by path never crash. The facts INDEX.tsv records (MSH count, delimiters, batch envelope,
// MSH-9 and MSH-12 values) are checked against what the parser found. Every file is also cut at
// several points and fed again, and grown into large inputs, to show that no prefix crashes.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "base/str.h"
#include "fuzz/fuzz_bodies.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hl7v2/ack.h"
#include "hl7v2/batch.h"
#include "hl7v2/issue.h"
#include "hl7v2/message.h"

namespace isthmus::hl7v2 {
namespace {

namespace fs = std::filesystem;

const fs::path kSamples = fs::path(ISTHMUS_CORPUS_DIR) / "hl7v2-samples";

// Keys of files that are not messages by design (INDEX.tsv `key`).
bool IsHostileKey(std::string_view key) {
  return key.starts_with("FUZZ") || key == "EMPTY_FILE" || key == "NO_MSH" || key == "DOC" ||
         key == "SEGMENT_FRAGMENTS";
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// INDEX.tsv values are written Python-style: `\\` for a backslash, `\xHH`, `\uHHHH` (as UTF-8),
// and a value with a quote is CSV-quoted ("..." with "" for ").
std::string DecodeIndexValue(std::string_view v) {
  std::string unquoted;
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
    std::string_view inner = v.substr(1, v.size() - 2);
    for (size_t i = 0; i < inner.size(); ++i) {
      unquoted.push_back(inner[i]);
      if (inner[i] == '"' && i + 1 < inner.size() && inner[i + 1] == '"') ++i;
    }
    v = unquoted;
  }
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] != '\\' || i + 1 >= v.size()) {
      out.push_back(v[i]);
      continue;
    }
    char k = v[i + 1];
    if (k == '\\') {
      out.push_back('\\');
      ++i;
    } else if (k == 'x' && i + 3 < v.size()) {
      out.push_back(static_cast<char>(std::stoi(std::string(v.substr(i + 2, 2)), nullptr, 16)));
      i += 3;
    } else if (k == 'u' && i + 5 < v.size()) {
      int cp = std::stoi(std::string(v.substr(i + 2, 4)), nullptr, 16);
      if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
      } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      } else {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
      i += 5;
    } else {
      out.push_back(v[i]);
    }
  }
  return out;
}

struct IndexRow {
  std::map<std::string, std::string> cols;
  const std::string& operator[](const std::string& k) const {
    static const std::string kEmpty;
    auto it = cols.find(k);
    return it == cols.end() ? kEmpty : it->second;
  }
};

std::map<std::string, IndexRow> ReadIndex() {
  std::map<std::string, IndexRow> rows;
  std::istringstream in(ReadAll(kSamples / "INDEX.tsv"));
  std::string line;
  std::vector<std::string> header;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::vector<std::string> cells;
    for (std::string_view c : base::Split(line, '\t')) cells.emplace_back(c);
    if (header.empty()) {
      header = cells;
      continue;
    }
    IndexRow row;
    for (size_t i = 0; i < header.size() && i < cells.size(); ++i) row.cols[header[i]] = cells[i];
    rows[row["path"]] = row;
  }
  return rows;
}

std::set<std::string> SplitSet(std::string_view v, char sep) {
  std::set<std::string> out;
  for (std::string_view p : base::Split(v, sep)) out.emplace(p);
  return out;
}

constexpr std::string_view kPaths[] = {
    "MSH-1",  "MSH-2",       "MSH-3",         "MSH-7",     "MSH-9",          "MSH-9.2",
    "MSH-10", "MSH-12",      "MSH-18",        "PID-3",     "PID-3[2].4.1",   "PID-5.1",
    "PID-11[2].5", "OBX-5",  "OBX[2]-5.1.1",  "OBR-4.2",   "NTE[3]-3",       "ZZZ-99",
    "MSH-999", "PID[9999]-1", "OBX-5[99].99.99",
};

struct Tally {
  size_t files = 0, messages = 0, parsed = 0, rejected = 0, files_rejected = 0, variants = 0;
};

// The core check on one input: never crash; parsed or rejected with a reason; round trip.
void CheckInput(std::string_view bytes, const std::string& label, Tally& t) {
  auto batch = SplitBatch(bytes);
  AckOptions nak;
  nak.code = AckCode::kAR;
  nak.control_id = "NAK1";
  nak.timestamp = "20240101000000";
  if (!batch.ok()) {
    ++t.files_rejected;
    EXPECT_FALSE(batch.status().message().empty()) << label;
    std::string n = BuildNakForUnparsable(bytes, nak);
    EXPECT_TRUE(Message::Parse(n).ok()) << label << ": NAK does not parse";
    return;
  }
  for (const MessageSpan& span : batch->messages) {
    ++t.messages;
    auto m = Message::Parse(span.bytes);
    if (!m.ok()) {
      ++t.rejected;
      EXPECT_FALSE(m.status().message().empty()) << label << " line " << span.line;
      AckOptions o = nak;
      if (auto issue = IssueFromStatus(m.status())) o.issues.push_back(*issue);
      std::string n = BuildNakForUnparsable(span.bytes, o);
      auto nm = Message::Parse(n);
      EXPECT_TRUE(nm.ok()) << label << " line " << span.line << ": NAK does not parse";
      if (nm.ok()) {
        EXPECT_EQ(nm->Get("MSA-1"), "AR");
      }
      continue;
    }
    ++t.parsed;
    EXPECT_EQ(m->Encode(), span.bytes) << label << " line " << span.line
                                       << ": Encode() is not the input";
    for (std::string_view p : kPaths) {
      std::string_view raw = m->Get(p);
      std::string text = m->GetText(p);
      if (raw.empty()) {
        EXPECT_EQ(text, "") << label << " " << p;
      }
    }
  }
}

class CorpusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::is_directory(kSamples) || !fs::exists(kSamples / "INDEX.tsv")) {
      GTEST_SKIP() << "HL7 v2 corpus not found at " << kSamples
                   << " (set ISTHMUS_CORPUS_DIR to the shared corpus to run this test)";
    }
    index_ = ReadIndex();
    for (const auto& e : fs::recursive_directory_iterator(kSamples)) {
      if (!e.is_regular_file()) continue;
      std::string rel = fs::relative(e.path(), kSamples).generic_string();
      std::string name = e.path().filename().string();
      if (rel == "INDEX.tsv" || rel == "DUPLICATES_SKIPPED.tsv" || name.starts_with("LICENSE")) {
        continue;
      }
      files_.push_back(rel);
    }
    std::sort(files_.begin(), files_.end());
  }

  std::map<std::string, IndexRow> index_;
  std::vector<std::string> files_;
};

TEST_F(CorpusTest, EveryFileIsIndexed) {
  ASSERT_GT(files_.size(), 400u);
  for (const std::string& f : files_) EXPECT_TRUE(index_.count(f)) << f << " is not in INDEX.tsv";
}

TEST_F(CorpusTest, EveryMessageParsesOrIsRejectedAndRoundTrips) {
  Tally t;
  for (const std::string& rel : files_) {
    std::string bytes = ReadAll(kSamples / rel);
    ++t.files;
    CheckInput(bytes, rel, t);
  }
  std::printf("corpus: %zu files (%zu not splittable), %zu messages: %zu parsed, %zu rejected\n",
              t.files, t.files_rejected, t.messages, t.parsed, t.rejected);
  EXPECT_GT(t.parsed, 580u);  // the corpus is mostly well-formed messages
}

TEST_F(CorpusTest, FuzzBodyInvariantsHoldOnEveryFile) {
  for (const std::string& rel : files_) {
    std::string bytes = ReadAll(kSamples / rel);
    EXPECT_EQ(fuzz::CheckParse(bytes), "") << rel;
    EXPECT_EQ(fuzz::CheckEscape(bytes), "") << rel;
  }
}

// What INDEX.tsv says about each file holds for what the parser found.
TEST_F(CorpusTest, IndexFactsHold) {
  size_t count_checked = 0, delimiter_checked = 0, type_checked = 0;
  for (const std::string& rel : files_) {
    auto it = index_.find(rel);
    if (it == index_.end()) continue;
    const IndexRow& row = it->second;
    const std::string& key = row["key"];
    std::string bytes = ReadAll(kSamples / rel);
    int n_msh = std::stoi(row["n_msh"].empty() ? "0" : row["n_msh"]);
    auto batch = SplitBatch(bytes);
    if (n_msh == 0) {
      // Nothing to split: rejected with a reason that says so.
      ASSERT_FALSE(batch.ok()) << rel << ": the index finds no MSH";
      EXPECT_THAT(std::string(batch.status().message()), ::testing::HasSubstr("MSH")) << rel;
      continue;
    }
    if (IsHostileKey(key)) continue;  // fuzz inputs: no crash is all we ask (test above)
    if (!batch.ok()) {
      // Text before the first MSH (comments, annotations, junk): the file is rejected as a whole
      // (ExpectedRejections lists which); from its first MSH line on it splits as indexed.
      size_t first = bytes.find("MSH");
      while (first != std::string::npos && first > 0 && bytes[first - 1] != '\r' &&
             bytes[first - 1] != '\n') {
        first = bytes.find("MSH", first + 1);
      }
      ASSERT_NE(first, std::string::npos) << rel;
      batch = SplitBatch(std::string_view(bytes).substr(first));
      ASSERT_TRUE(batch.ok()) << rel << ": " << batch.status().message();
    }
    EXPECT_EQ(batch->messages.size(), static_cast<size_t>(n_msh)) << rel << ": MSH count";
    ++count_checked;
    if (row["batch"] == "1") {
      EXPECT_TRUE(batch->has_file_header || batch->batch_count > 0) << rel << ": batch envelope";
    } else {
      EXPECT_FALSE(batch->has_file_header) << rel;
      EXPECT_EQ(batch->batch_count, 0) << rel;
    }

    std::set<std::string> types = SplitSet(row["msh9_types"], ';');
    std::set<std::string> versions = SplitSet(row["msh12_versions"], ';');
    std::set<std::string> encodings;
    for (std::string_view e : base::Split(row["encoding_chars"], ' ')) {
      encodings.insert(DecodeIndexValue(e));
    }
    for (const MessageSpan& span : batch->messages) {
      auto m = Message::Parse(span.bytes);
      if (!m.ok()) continue;  // which and why: ExpectedRejections
      // Delimiters as the index read them (MSH-1 then MSH-2, as written).
      std::string written = std::string(m->Get("MSH-1")) + std::string(m->Get("MSH-2"));
      EXPECT_TRUE(encodings.count(written)) << rel << ": delimiters " << written;
      EXPECT_EQ(m->delimiters().field, written[0]) << rel;
      if (m->Get("MSH-2") != "^~\\\\&") {  // not the doubled-escape quirk, read as ^~\&
        EXPECT_EQ(m->delimiters().EncodingCharacters(), m->Get("MSH-2")) << rel;
      }
      if (encodings.size() == 1 && *encodings.begin() != "|^~\\&") ++delimiter_checked;
      // MSH-9 as the index keys it: MSH-9.1 "_" MSH-9.2 (not the structure in MSH-9.3).
      std::string type = std::string(m->message_type());
      if (!m->trigger_event().empty()) type = base::StrCat(type, "_", m->trigger_event());
      // (ACKs are keyed by the type alone.)
      if (!types.empty() && !types.count(type) && !types.count(std::string(m->message_type()))) {
        ADD_FAILURE() << rel << " line " << span.line << ": MSH-9 read as '" << type
                      << "', index has " << row["msh9_types"];
      }
      ++type_checked;
      EXPECT_TRUE(versions.empty() || versions.count(std::string(m->version())))
          << rel << ": version '" << m->version() << "', index has " << row["msh12_versions"];
    }
  }
  std::printf("index facts: MSH counts of %zu files, non-default delimiters in %zu, MSH-9/12 of %zu "
              "messages\n", count_checked, delimiter_checked, type_checked);
  EXPECT_GT(count_checked, 350u);
  EXPECT_GT(delimiter_checked, 10u);
}

// Files that look like messages (not fuzz inputs) but that the parser rejects, and why. Every
// rejection must be listed here and every entry must still be hit, so a change in what the
// parser accepts shows up as a test failure that names the file.
struct KnownRejection {
  std::string_view path_prefix;
  std::string_view error;  // a substring of the error
  std::string_view why;    // what is wrong with the file
};
constexpr KnownRejection kKnownRejections[] = {
    {"CDCgov-data-exchange-hl7/fns-hl7-pipeline/fn-receiver-debatcher/src/test/resources/genV1/"
     "Genv1-Case-TestMessage1.HL7",
     "comes before any MSH segment", "lines of 'junk' before the MSH (a debatcher test)"},
    {"CDCgov-data-exchange-hl7/fns-hl7-pipeline/fn-structure-validator/src/test/resources/"
     "Lyme_WithBadDelimiters.txt",
     "uses the same character for two delimiters", "MSH-2 is '&&&&' (a validator test)"},
    {"CDCgov-trusted-intermediary/examples/TN/001_TN_ORU_R01_LRI_annotated_for_transformation",
     "has no valid segment name", "prose annotations between the segments"},
    {"CDCgov-trusted-intermediary/examples/TX/001_TX_OML_O21.hl7", "has no valid segment name",
     "a segment hard-wrapped in the middle of a field"},
    {"IZGateway-v2tofhir/messages.txt.cases/", "comes before any MSH segment",
     "'# title' lines before the message and FHIRPath assertion lines after it"},
    {"MatthewVita-node-hl7-complete/test/functional/test-data/valid/remote-operations/"
     "mdm-example.hl7",
     "has no valid segment name", "segments hard-wrapped and joined mid-line"},
    {"cosyte-hl7/test/fixtures/vendor-quirks/segment-case.hl7", "has no valid segment name",
     "a lower-case segment name ('pid')"},
    {"hapifhir-hapi-hl7v2/hapi-test/src/test/resources/ca/uhn/hl7v2/util/messages.txt",
     "comes before any MSH segment", "C-style /* */ and // comments around the messages"},
    {"ruby-hl7-ruby-hl7/test_data/empty_segments.hl7", "has no valid segment name",
     "nameless segments ('||||', '|')"},
};

TEST_F(CorpusTest, ExpectedRejections) {
  std::vector<bool> hit(std::size(kKnownRejections), false);
  auto expect_known = [&](const std::string& rel, std::string_view error, size_t line) {
    for (size_t i = 0; i < std::size(kKnownRejections); ++i) {
      const KnownRejection& k = kKnownRejections[i];
      if (rel.starts_with(k.path_prefix) && error.find(k.error) != std::string_view::npos) {
        hit[i] = true;
        return;
      }
    }
    ADD_FAILURE() << "unexpected rejection: {\"" << rel << "\", \"" << error << "\"} (line "
                  << line << ")";
  };
  for (const std::string& rel : files_) {
    auto it = index_.find(rel);
    if (it == index_.end() || IsHostileKey(it->second["key"]) || it->second["n_msh"] == "0") {
      continue;
    }
    std::string bytes = ReadAll(kSamples / rel);
    auto batch = SplitBatch(bytes);
    if (!batch.ok()) {
      expect_known(rel, std::string(batch.status().message()), 0);
      continue;
    }
    for (const MessageSpan& span : batch->messages) {
      auto m = Message::Parse(span.bytes);
      if (!m.ok()) expect_known(rel, std::string(m.status().message()), span.line);
    }
  }
  for (size_t i = 0; i < hit.size(); ++i) {
    EXPECT_TRUE(hit[i]) << "no longer rejected: " << kKnownRejections[i].path_prefix << " ("
                        << kKnownRejections[i].error << ")";
  }
}

// Every prefix at several cut points, every file doubled, and a few grown inputs: no crash, and
// each piece still parses or is rejected with a reason (CheckInput).
TEST_F(CorpusTest, TruncatedAndLargeVariantsNeverCrash) {
  auto start = std::chrono::steady_clock::now();
  Tally t;
  for (const std::string& rel : files_) {
    std::string bytes = ReadAll(kSamples / rel);
    std::set<size_t> cuts = {1, 3, 4, 5, 8, 9, 12, 16};
    for (int k = 1; k < 8; ++k) cuts.insert(bytes.size() * k / 8);
    if (bytes.size() > 1) cuts.insert(bytes.size() - 1);
    // Cut right after the first terminator and in the middle of MSH-2.
    size_t first_term = bytes.find_first_of("\r\n");
    if (first_term != std::string::npos) {
      cuts.insert(first_term);
      cuts.insert(first_term + 1);
    }
    for (size_t cut : cuts) {
      if (cut == 0 || cut >= bytes.size()) continue;
      // A copy, so that ASan sees reads past the cut.
      std::string prefix = bytes.substr(0, cut);
      CheckInput(prefix, base::StrCat(rel, " cut at ", cut), t);
      ++t.variants;
    }
    std::string doubled = bytes + "\r" + bytes;
    CheckInput(doubled, rel + " doubled", t);
    ++t.variants;
  }

  // Large inputs: one message with a huge field and many segments; a long batch; limits.
  std::string big = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|BIG|P|2.5\r";
  big += "PID|1||" + std::string(1 << 20, 'x') + "^" + std::string(1000, '~') + "\r";
  for (int i = 0; i < 20000; ++i) big += base::StrCat("OBX|", i, "|ST|X||v\\F\\", i, "\r");
  CheckInput(big, "big message", t);
  auto m = Message::Parse(big);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->CountSegments("OBX"), 20000);
  EXPECT_EQ(m->GetText("OBX[20000]-5"), "v|19999");
  EXPECT_EQ(m->RepetitionCount(*Path::Parse("PID-3")), 1001);
  ParseOptions small;
  small.max_bytes = 1000;
  auto limited = Message::Parse(big, small);
  ASSERT_FALSE(limited.ok());
  EXPECT_EQ(limited.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(limited.status().message().empty());
  small = ParseOptions();
  small.max_segments = 100;
  EXPECT_EQ(Message::Parse(big, small).status().code(), absl::StatusCode::kResourceExhausted);
  small = ParseOptions();
  small.max_fields_per_segment = 5;
  EXPECT_EQ(Message::Parse(big, small).status().code(), absl::StatusCode::kResourceExhausted);

  std::string many;
  for (int i = 0; i < 5000; ++i) {
    many += base::StrCat("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|", i, "|P|2.5\nPID|1\n");
  }
  auto b = SplitBatch(many);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->messages.size(), 5000u);
  std::string hostile(1 << 20, '|');
  hostile.replace(0, 8, "MSH|^~\\&");
  CheckInput(hostile, "a million field separators", t);
  std::string terminators = "MSH|^~\\&|" + std::string(1 << 20, '\r') + "PID|1";
  CheckInput(terminators, "a million terminators", t);

  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("variants: %zu inputs, %zu messages (%zu parsed, %zu rejected) in %.1f s\n",
              t.variants, t.messages, t.parsed, t.rejected, seconds);
}

}  // namespace
}  // namespace isthmus::hl7v2
