// The official FHIRPath R4 test suite (../shared/corpus/fhirpath-r4-tests/tests-fhir-r4.xml, from
// FHIR/fhir-test-cases), one GoogleTest case per <test>, inputs read as JSON (input-json/).
// Every test must pass except the named exceptions below, each with its reason. Skips with a
// message when the corpus is absent.
#include <fstream>
#include <map>
#include <sstream>

#include "fhirpath/fhirpath.h"
#include "gtest/gtest.h"

namespace isthmus::fhirpath {
namespace {

const char kSuiteDir[] = ISTHMUS_CORPUS_DIR "/fhirpath-r4-tests";

// Tests that do not apply to this engine, by name, with the reason.
const std::map<std::string, std::string>& Exceptions() {
  static const auto* exceptions = new std::map<std::string, std::string>{
      // None: every test of the suite passes. Add {"testName", "reason"} here when a test
      // cannot apply (FHIR R5-only behaviour, a terminology server, ...).
  };
  return *exceptions;
}

// ---- a reader for the suite's simple XML: elements, attributes, text, comments ----

struct XmlNode {
  std::string name;
  std::map<std::string, std::string> attrs;
  std::string text;
  std::vector<XmlNode> children;

  std::string Attr(const std::string& k) const {
    auto it = attrs.find(k);
    return it == attrs.end() ? "" : it->second;
  }
};

std::string Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    size_t semi = s.find(';', i);
    std::string_view e = s.substr(i + 1, semi - i - 1);
    if (e == "lt") out += '<';
    else if (e == "gt") out += '>';
    else if (e == "amp") out += '&';
    else if (e == "quot") out += '"';
    else if (e == "apos") out += '\'';
    else if (!e.empty() && e[0] == '#') out += static_cast<char>(std::stoi(std::string(e.substr(1))));
    i = semi;
  }
  return out;
}

class XmlReader {
 public:
  explicit XmlReader(std::string s) : s_(std::move(s)) {}

  bool Parse(XmlNode& root) {
    SkipMisc();
    return Element(root);
  }

 private:
  void SkipMisc() {
    while (true) {
      while (i_ < s_.size() && isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
      if (s_.compare(i_, 4, "<!--") == 0) {
        i_ = s_.find("-->", i_) + 3;
      } else if (s_.compare(i_, 2, "<?") == 0) {
        i_ = s_.find("?>", i_) + 2;
      } else {
        return;
      }
    }
  }

  bool Element(XmlNode& n) {
    if (s_[i_] != '<') return false;
    ++i_;
    size_t start = i_;
    while (i_ < s_.size() && !isspace(static_cast<unsigned char>(s_[i_])) && s_[i_] != '>' &&
           s_[i_] != '/') {
      ++i_;
    }
    n.name = s_.substr(start, i_ - start);
    while (true) {
      while (isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
      if (s_[i_] == '/') {
        i_ += 2;
        return true;
      }
      if (s_[i_] == '>') {
        ++i_;
        break;
      }
      size_t eq = s_.find('=', i_);
      std::string key = s_.substr(i_, eq - i_);
      char q = s_[eq + 1];
      size_t end = s_.find(q, eq + 2);
      n.attrs[key] = Unescape(std::string_view(s_).substr(eq + 2, end - eq - 2));
      i_ = end + 1;
    }
    while (i_ < s_.size()) {
      if (s_.compare(i_, 4, "<!--") == 0) {
        i_ = s_.find("-->", i_) + 3;
      } else if (s_.compare(i_, 2, "</") == 0) {
        i_ = s_.find('>', i_) + 1;
        return true;
      } else if (s_[i_] == '<') {
        n.children.emplace_back();
        if (!Element(n.children.back())) return false;
      } else {
        size_t end = s_.find('<', i_);
        n.text += Unescape(std::string_view(s_).substr(i_, end - i_));
        i_ = end;
      }
    }
    return false;
  }

  std::string s_;
  size_t i_ = 0;
};

// ---- cases ----

struct Output {
  std::string type, value;
};

struct Case {
  std::string name, group, input, expression, invalid;
  bool predicate = false, strict = false;
  std::vector<Output> outputs;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<Case> LoadCases() {
  std::string xml = ReadFile(std::string(kSuiteDir) + "/tests-fhir-r4.xml");
  if (xml.empty()) return {Case{"CorpusAbsent"}};
  XmlNode root;
  XmlReader reader(std::move(xml));
  if (!reader.Parse(root)) return {Case{"UnreadableSuite"}};
  std::vector<Case> cases;
  std::map<std::string, int> seen;
  for (const XmlNode& group : root.children) {
    for (const XmlNode& test : group.children) {
      if (test.name != "test") continue;
      Case c;
      c.group = group.Attr("name");
      c.name = test.Attr("name");
      if (c.name.empty()) c.name = c.group + "_unnamed";
      if (seen[c.name]++ > 0) c.name += "_" + std::to_string(seen[c.name]);
      c.input = test.Attr("inputfile");
      c.predicate = test.Attr("predicate") == "true";
      c.strict = test.Attr("mode") == "strict";
      for (const XmlNode& child : test.children) {
        if (child.name == "expression") {
          c.expression = child.text;
          c.invalid = child.Attr("invalid");
          if (child.Attr("mode") == "strict") c.strict = true;
        } else if (child.name == "output") {
          c.outputs.push_back(Output{child.Attr("type"), child.text});
        }
      }
      cases.push_back(std::move(c));
    }
  }
  return cases;
}

std::string GTestName(const std::string& name) {
  std::string out;
  for (char c : name) out += isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return out;
}

class R4SuiteTest : public testing::TestWithParam<Case> {};

bool SameValue(const Output& expected, const Value& v) {
  std::string got = ToLiteralString(v);
  std::string want = expected.value;
  if (!want.empty() && want[0] == '@') want = want.substr(1);
  if (expected.type == "decimal" || (v.kind == Kind::kDecimal && expected.type.empty())) {
    auto a = Decimal::Parse(got), b = Decimal::Parse(want);
    return a && b && Decimal::Compare(*a, *b) == 0;
  }
  return got == want;
}

TEST_P(R4SuiteTest, Passes) {
  const Case& c = GetParam();
  if (c.name == "CorpusAbsent") {
    GTEST_SKIP() << "shared corpus absent: " << kSuiteDir;
  }
  ASSERT_NE(c.name, "UnreadableSuite");
  auto exception = Exceptions().find(c.name);
  if (exception != Exceptions().end()) GTEST_SKIP() << "named exception: " << exception->second;

  rapidjson::Document doc;
  Collection context;
  if (!c.input.empty()) {
    std::string file = c.input;
    if (file.size() > 4 && file.substr(file.size() - 4) == ".xml") {
      file = file.substr(0, file.size() - 4) + ".json";
    }
    std::string json = ReadFile(std::string(kSuiteDir) + "/input-json/" + file);
    ASSERT_FALSE(json.empty()) << "missing input " << file;
    doc.Parse<rapidjson::kParseFullPrecisionFlag>(json.c_str());
    ASSERT_FALSE(doc.HasParseError());
    context.push_back(FhirValue(doc));
  }
  Environment env;
  env.strict = c.strict;
  SCOPED_TRACE(c.group + ": " + c.expression);
  auto expr = Expression::Compile(c.expression);
  if (!c.invalid.empty()) {
    if (!expr.ok()) return;
    auto r = EvaluateOn(*expr, context, env);
    EXPECT_FALSE(r.ok()) << "expected a " << c.invalid << " error, got " << ToJson(*r);
    return;
  }
  ASSERT_TRUE(expr.ok()) << expr.status();
  auto r = EvaluateOn(*expr, context, env);
  ASSERT_TRUE(r.ok()) << r.status();
  Collection result = *r;
  if (c.predicate) {
    result = Collection{Value::Boolean(!result.empty())};
  }
  ASSERT_EQ(result.size(), c.outputs.size()) << "got " << ToJson(result);
  for (size_t i = 0; i < result.size(); ++i) {
    if (!c.outputs[i].type.empty()) {
      EXPECT_EQ(TypeName(result[i]), c.outputs[i].type) << "item " << i;
    }
    EXPECT_TRUE(SameValue(c.outputs[i], result[i]))
        << "item " << i << ": got " << ToLiteralString(result[i]) << ", want "
        << c.outputs[i].value;
  }
}

INSTANTIATE_TEST_SUITE_P(FhirpathR4, R4SuiteTest, testing::ValuesIn(LoadCases()),
                         [](const testing::TestParamInfo<Case>& info) {
                           return GTestName(info.param.name);
                         });

}  // namespace
}  // namespace isthmus::fhirpath
