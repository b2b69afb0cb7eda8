#include "mapping/lua/lua_transformer.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "base/file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mapping/lua/lua_script.h"

namespace isthmus::mapping {
namespace {

using ::testing::HasSubstr;

constexpr char kAdt[] =
    "MSH|^~\\&|REG|HOSP|ISTHMUS|HOSP|202401011200||ADT^A01^ADT_A01|MSG0001|P|2.5.1\r"
    "EVN|A01|202401011200\r"
    "PID|1||12345^^^HOSP^MR~98765^^^SSA^SS||DOE^JANE^Q||19800101|F\r"
    "PV1|1|I|W1^101^A\r"
    "OBX|1|ST|8867-4^Heart rate^LN||72\r"
    "OBX|2|ST|8480-6^Systolic^LN||a\\F\\b|mm[Hg]\r";

hl7v2::Message Parse(std::string_view bytes) {
  auto m = hl7v2::Message::ParseOwned(std::string(bytes));
  EXPECT_TRUE(m.ok()) << m.status();
  return std::move(*m);
}

std::unique_ptr<LuaTransformer> Make(std::string_view source, const LuaOptions& options = {},
                                     std::string_view name = "test.lua") {
  auto script = LuaScript::Compile(source, name, options);
  EXPECT_TRUE(script.ok()) << script.status();
  if (!script.ok()) return nullptr;
  auto t = LuaTransformer::Create(*script);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

// Runs `body` as the body of transform(msg) on kAdt and returns the result.
absl::StatusOr<TransformResult> RunBody(std::string_view body, hl7v2::Message* msg = nullptr) {
  auto t = Make(std::string("function transform(msg)\n") + std::string(body) + "\nend\n");
  if (t == nullptr) return absl::InternalError("no transformer");
  if (msg != nullptr) return t->Run(*msg);
  hl7v2::Message m = Parse(kAdt);
  return t->Run(m);
}

// The payload a body returns (a probe for what msg methods give back).
std::string Probe(std::string_view body) {
  auto r = RunBody(body);
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return "";
  EXPECT_EQ(r->action, TransformResult::kReplace);
  return r->payload;
}

TEST(LuaTransformerTest, ReadsPathsTextAndRaw) {
  EXPECT_EQ(Probe("return msg:get('PID-3[2].4')"), "SSA");
  EXPECT_EQ(Probe("return msg:get('PID-5')"), "DOE^JANE^Q");
  EXPECT_EQ(Probe("return msg:get('OBX[2]-5')"), "a|b");       // unescaped
  EXPECT_EQ(Probe("return msg:get_raw('OBX[2]-5')"), "a\\F\\b");  // as on the wire
  EXPECT_EQ(Probe("return tostring(msg:get('PID-99'))"), "nil");
  EXPECT_EQ(Probe("return tostring(msg:get('ZZZ-1'))"), "nil");
  EXPECT_EQ(Probe("return tostring(msg:get_raw('OBX[3]-5'))"), "nil");
  EXPECT_EQ(Probe("return msg:type() .. ' ' .. msg:trigger() .. ' ' .. msg:control_id()"),
            "ADT A01 MSG0001");
  EXPECT_EQ(Probe("return msg:count('OBX') .. msg:count('PID') .. msg:count('NTE')"), "210");
  EXPECT_EQ(Probe("return tostring(msg:repetitions('PID-3'))"), "2");
  EXPECT_EQ(Probe("return msg:encode()"), kAdt);
}

TEST(LuaTransformerTest, SetAndAddSegmentEncodeAsReasoned) {
  hl7v2::Message m = Parse(kAdt);
  auto r = RunBody(
      "msg:set('PID-8', 'M')\n"
      "msg:set('PID-5.1', 'O|BRIEN & SONS')\n"  // escaped by set
      "msg:set_raw('PID-3[3]', '777^^^HOSP^MR')\n"
      "msg:set('PV1-3.4', 'GENHOSP')\n"
      "msg:set('EVN-2')\n"  // nil clears
      "msg:add_segment('NTE|1||checked')\n"
      "assert(msg:get('PID-5.1') == 'O|BRIEN & SONS')\n"
      "assert(msg:get_raw('PID-5.1') == 'O\\\\F\\\\BRIEN \\\\T\\\\ SONS')\n"
      "assert(msg:count('NTE') == 1 and msg:get('NTE-3') == 'checked')\n",
      &m);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->action, TransformResult::kContinue);
  EXPECT_EQ(m.Encode(),
            "MSH|^~\\&|REG|HOSP|ISTHMUS|HOSP|202401011200||ADT^A01^ADT_A01|MSG0001|P|2.5.1\r"
            "EVN|A01|\r"
            "PID|1||12345^^^HOSP^MR~98765^^^SSA^SS~777^^^HOSP^MR||O\\F\\BRIEN \\T\\ "
            "SONS^JANE^Q||19800101|M\r"
            "PV1|1|I|W1^101^A^GENHOSP\r"
            "OBX|1|ST|8867-4^Heart rate^LN||72\r"
            "OBX|2|ST|8480-6^Systolic^LN||a\\F\\b|mm[Hg]\r"
            "NTE|1||checked\r");
}

TEST(LuaTransformerTest, ReturnValuesDecideTheOutcome) {
  auto r = RunBody("");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->action, TransformResult::kContinue);
  r = RunBody("return true");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->action, TransformResult::kContinue);
  r = RunBody("return nil");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->action, TransformResult::kContinue);

  r = RunBody("return false, 'test traffic from ' .. msg:get('MSH-3')");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->action, TransformResult::kFilter);
  EXPECT_EQ(r->reason, "test traffic from REG");
  r = RunBody("return false");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->action, TransformResult::kFilter);
  EXPECT_EQ(r->reason, "");

  r = RunBody("return string.format('{\"resourceType\":\"Patient\",\"id\":\"%s\"}', "
              "msg:get('PID-3.1'))");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->action, TransformResult::kReplace);
  EXPECT_EQ(r->payload, "{\"resourceType\":\"Patient\",\"id\":\"12345\"}");

  r = RunBody("return {}");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("returned a table"));
  r = RunBody("return 42");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("returned a number"));
  r = RunBody("return false, 7");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("reason must be a string"));
}

TEST(LuaTransformerTest, SandboxHasNoIoOsRequireOrLoaders) {
  struct Case {
    const char* body;
    const char* names;
  } cases[] = {
      {"io.open('/etc/passwd')", "global 'io'"},
      {"os.execute('true')", "global 'os'"},
      {"return require('os')", "global 'require'"},
      {"dofile('/etc/passwd')", "global 'dofile'"},
      {"loadfile('/etc/passwd')", "global 'loadfile'"},
      {"load('return 1')", "global 'load'"},
      {"print('x')", "global 'print'"},
      {"return package.path", "global 'package'"},
      {"return debug.getinfo(1)", "global 'debug'"},
      {"return coroutine.create(print)", "global 'coroutine'"},
      {"return string.dump(transform)", "field 'dump'"},
      {"collectgarbage('stop')", "collectgarbage('stop') is not allowed"},
      {"setmetatable({}, {__gc = function() while true do end end})", "__gc"},
  };
  for (const Case& c : cases) {
    auto r = RunBody(c.body);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.body;
    EXPECT_THAT(r.status().message(), HasSubstr(c.names)) << c.body;
    EXPECT_THAT(r.status().message(), HasSubstr("test.lua:2:")) << c.body;
  }
  // What remains works.
  EXPECT_EQ(Probe("return string.upper('a') .. table.concat({1, 2}) .. math.floor(2.5) .. "
                  "utf8.char(228) .. tostring(collectgarbage('count') > 0)"),
            "A122\xC3\xA4true");
  EXPECT_EQ(Probe("local t = setmetatable({}, {__index = function() return 'x' end}) "
                  "return t.y"),
            "x");
}

TEST(LuaTransformerTest, InfiniteLoopStopsWithResourceExhaustedAndStateStaysUsable) {
  auto t = Make(
      "function transform(msg)\n"
      "  if msg:get('MSH-10') == 'LOOP' then\n"
      "    while true do end\n"
      "  elseif msg:get('MSH-10') == 'CATCH' then\n"
      "    while true do pcall(function() while true do end end) end\n"
      "  end\n"
      "  return 'ok'\n"
      "end\n");  // default limit: 10 million instructions
  ASSERT_NE(t, nullptr);
  for (const char* id : {"LOOP", "CATCH"}) {
    hl7v2::Message m = Parse(std::string("MSH|^~\\&|A|B|C|D|2024||ADT^A01|") + id + "|P|2.5\r");
    auto start = std::chrono::steady_clock::now();
    auto r = t->Run(m);
    auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << id;
    EXPECT_THAT(r.status().message(), HasSubstr("instruction limit exceeded")) << r.status();
    EXPECT_THAT(r.status().message(),
                HasSubstr(std::string("test.lua:") + (std::string(id) == "LOOP" ? "3" : "5") +
                          ": instruction limit exceeded (10000000 instructions)"))
        << r.status();
    EXPECT_LT(elapsed, std::chrono::seconds(10)) << id;  // ~0.1 s on one core
    hl7v2::Message ok = Parse(kAdt);
    auto again = t->Run(ok);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->payload, "ok");
  }
  EXPECT_EQ(t->rebuilds(), 0);
}

// A clock that moves 10 ms every time it is read.
class TickingClock final : public base::Clock {
 public:
  absl::Time Now() const override {
    now_ += absl::Milliseconds(10);
    return now_;
  }

 private:
  mutable absl::Time now_ = absl::FromUnixSeconds(1'700'000'000);
};

TEST(LuaTransformerTest, WallTimeLimit) {
  TickingClock clock;
  LuaOptions options;
  options.max_instructions = uint64_t{1} << 50;
  options.max_wall_time = absl::Milliseconds(500);
  options.clock = &clock;
  auto t = Make("function transform(msg) while true do end end", options);
  ASSERT_NE(t, nullptr);
  hl7v2::Message m = Parse(kAdt);
  auto r = t->Run(m);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(r.status().message(), HasSubstr("test.lua:1: wall-time limit exceeded (500 ms)"));
}

TEST(LuaTransformerTest, MemoryBombsStopWithResourceExhaustedAndTheNextRunWorks) {
  LuaOptions options;  // default 64 MiB; enough instructions for the table to reach it
  options.max_instructions = 1'000'000'000;
  auto t = Make(
      "calls = (calls or 0) + 1\n"
      "function transform(msg)\n"
      "  local what = msg:get('MSH-10')\n"
      "  if what == 'DOUBLE' then\n"
      "    local s = 'x'\n"
      "    while true do s = s .. s end\n"
      "  elseif what == 'REP' then\n"
      "    return string.rep('x', 1 << 28)\n"
      "  elseif what == 'TABLE' then\n"
      "    local t = {}\n"
      "    for i = 1, 1e9 do t[i] = tostring(i) end\n"
      "  elseif what == 'CATCH' then\n"
      "    local keep = {}\n"
      "    while true do\n"
      "      pcall(function() keep[#keep + 1] = string.rep('y', 1 << 20) end)\n"
      "    end\n"
      "  end\n"
      "  return 'ok ' .. calls\n"
      "end\n",
      options);
  ASSERT_NE(t, nullptr);
  int rebuilds = 0;
  for (const char* id : {"DOUBLE", "REP", "TABLE", "CATCH"}) {
    hl7v2::Message m = Parse(std::string("MSH|^~\\&|A|B|C|D|2024||ADT^A01|") + id + "|P|2.5\r");
    auto r = t->Run(m);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << id << ": " << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr("memory limit of 67108864 bytes")) << id;
    EXPECT_EQ(t->rebuilds(), ++rebuilds);
    EXPECT_LT(t->memory_bytes(), size_t{1} << 20);  // a fresh state
    hl7v2::Message ok = Parse(kAdt);
    auto again = t->Run(ok);
    ASSERT_TRUE(again.ok()) << id << ": " << again.status();
    EXPECT_EQ(again->payload, "ok 1");  // the rebuilt state ran the top level afresh
  }
}

TEST(LuaTransformerTest, MessageGrowthCountsAgainstTheMemoryLimit) {
  LuaOptions options;
  options.max_memory_bytes = 4 << 20;
  auto t = Make(
      "function transform(msg)\n"
      "  local big = string.rep('z', 100000)\n"
      "  for i = 1, 1000 do pcall(msg.add_segment, msg, 'ZZZ|' .. big) end\n"
      "end\n",
      options);
  ASSERT_NE(t, nullptr);
  hl7v2::Message m = Parse(kAdt);
  auto r = t->Run(m);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("message growth"));
  EXPECT_LE(m.CountSegments("ZZZ"), 42);
}

TEST(LuaTransformerTest, SyntaxErrorNamesFileAndLine) {
  auto s = LuaScript::Compile("function transform(msg)\n  local x = \nend\n", "bad.lua");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("bad.lua:3:")) << s.status();
  EXPECT_THAT(s.status().message(), HasSubstr("unexpected symbol near 'end'"));

  std::string path = testing::TempDir() + "/syntax_error.lua";
  ASSERT_TRUE(base::WriteFileAtomic(path, "function transform(msg)\n  if x then\nend\n").ok());
  s = LuaScript::CompileFile(path);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("syntax_error.lua:4:")) << s.status();
  EXPECT_THAT(s.status().message(), HasSubstr("'end' expected"));
  std::remove(path.c_str());

  EXPECT_EQ(LuaScript::CompileFile(path).status().code(), absl::StatusCode::kNotFound);
}

TEST(LuaTransformerTest, CompileChecksTheTopLevel) {
  auto s = LuaScript::Compile("local x = 1\n", "empty.lua");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("defines no global function 'transform"));
  s = LuaScript::Compile("x = nil + 1\nfunction transform() end\n", "top.lua");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("top.lua:1: attempt to perform arithmetic"));
  s = LuaScript::Compile("while true do end\n", "spin.lua");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kResourceExhausted);
  s = LuaScript::Compile("\x1bLua\x54\x00 not really bytecode", "bin.lua");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("attempt to load a binary chunk"));
}

TEST(LuaTransformerTest, RuntimeErrorsNameTheLineAndTheStateStaysUsable) {
  auto t = Make(
      "local function helper(msg)\n"
      "  local missing = nil\n"
      "  return missing.field\n"  // line 3
      "end\n"
      "function transform(msg)\n"
      "  local what = msg:get('MSH-10')\n"
      "  if what == 'NIL' then local v = helper(msg) return v end\n"
      "  if what == 'ERROR' then error('no facility for ' .. what) end\n"  // line 8
      "  if what == 'TABLE' then error({code = 1}) end\n"
      "  if what == 'PATH' then return msg:get('PIDX-3') end\n"  // line 10
      "  if what == 'SET' then msg:set('PV1-2', 'I') end\n"      // line 11
      "  if what == 'DELIM' then msg:set_raw('MSH-4.1', 'A^B') end\n"
      "  if what == 'SEG' then msg:add_segment('MSH|x') end\n"
      "  if what == 'DEEP' then local function f(n) return 1 + f(n + 1) end f(1) end\n"
      "  return 'ok'\n"
      "end\n",
      {}, "rt.lua");
  ASSERT_NE(t, nullptr);
  struct Case {
    const char* id;
    const char* expected;
  } cases[] = {
      {"NIL", "rt.lua:3: attempt to index a nil value (local 'missing')"},
      {"ERROR", "rt.lua:8: no facility for ERROR"},
      {"TABLE", "(error object is a table value)"},
      {"PATH", "rt.lua:10: invalid HL7 path 'PIDX-3'"},
      {"SET", "rt.lua:11: cannot set PV1-2: no such segment"},
      {"DELIM", "rt.lua:12: cannot set MSH-4.1: the value contains a delimiter"},
      {"SEG", "rt.lua:13: cannot add segment: an added segment needs a valid name"},
      {"DEEP", "rt.lua:14: stack overflow"},
  };
  for (const Case& c : cases) {
    hl7v2::Message m = Parse(std::string("MSH|^~\\&|A|B|C|D|2024||ADT^A01|") + c.id + "|P|2.5\r");
    auto r = t->Run(m);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.id;
    EXPECT_THAT(r.status().message(), HasSubstr(c.expected)) << c.id;
    hl7v2::Message ok = Parse(kAdt);
    auto again = t->Run(ok);
    ASSERT_TRUE(again.ok()) << again.status();
  }
  // The traceback names the caller too.
  hl7v2::Message m = Parse("MSH|^~\\&|A|B|C|D|2024||ADT^A01|NIL|P|2.5\r");
  auto r = t->Run(m);
  EXPECT_THAT(r.status().message(),
              HasSubstr("(traceback: rt.lua:3: in upvalue 'helper'; rt.lua:7: in function"))
      << r.status();
}

TEST(LuaTransformerTest, MsgFromAnEarlierRunCannotBeUsed) {
  auto t = Make(
      "function transform(msg)\n"
      "  if kept then return kept:get('MSH-10') end\n"
      "  kept = msg\n"
      "end\n");
  ASSERT_NE(t, nullptr);
  hl7v2::Message first = Parse(kAdt);
  ASSERT_TRUE(t->Run(first).ok());
  hl7v2::Message second = Parse(kAdt);
  auto r = t->Run(second);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("belongs to an earlier call of transform"));
}

TEST(LuaTransformerTest, OneTransformerPerThreadShareOneScript) {
  auto script = LuaScript::Compile(
      "n = 0\nfunction transform(msg) n = n + 1 return msg:control_id() .. ' ' .. n end\n",
      "count.lua");
  ASSERT_TRUE(script.ok());
  auto a = LuaTransformer::Create(*script);
  auto b = LuaTransformer::Create(*script);
  ASSERT_TRUE(a.ok() && b.ok());
  hl7v2::Message m = Parse(kAdt);
  EXPECT_EQ((*a)->Run(m)->payload, "MSG0001 1");
  EXPECT_EQ((*a)->Run(m)->payload, "MSG0001 2");
  EXPECT_EQ((*b)->Run(m)->payload, "MSG0001 1");  // globals are per state

  // Worker threads, each with its own transformer over the one script.
  std::vector<std::thread> workers;
  std::vector<std::string> last(4);
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&, w] {
      auto t = LuaTransformer::Create(*script);
      ASSERT_TRUE(t.ok());
      for (int i = 0; i < 500; ++i) {
        hl7v2::Message msg = Parse(kAdt);
        auto r = (*t)->Run(msg);
        ASSERT_TRUE(r.ok());
        last[w] = r->payload;
      }
    });
  }
  for (std::thread& t : workers) t.join();
  for (const std::string& l : last) EXPECT_EQ(l, "MSG0001 500");
}

// The example from docs/lua-transformers.md.
TEST(LuaTransformerTest, ExampleAddFacility) {
  auto script =
      LuaScript::CompileFile(std::string(ISTHMUS_SOURCE_DIR) + "/examples/transform/add-facility.lua");
  ASSERT_TRUE(script.ok()) << script.status();
  auto t = LuaTransformer::Create(*script);
  ASSERT_TRUE(t.ok()) << t.status();

  // No facility anywhere, one lower-case assigning authority, an existing NTE.
  hl7v2::Message m = Parse(
      "MSH|^~\\&|REG||ISTHMUS|HOSP|202401011200||ADT^A01|M1|P|2.5.1\r"
      "PID|1||12345^^^hosp^MR~98765^^^SSA^SS||DOE^JANE\r"
      "PV1|1|I|W1^101^A\r"
      "NTE|1||admitted\r");
  auto r = (*t)->Run(m);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->action, TransformResult::kContinue);
  EXPECT_EQ(m.Encode(),
            "MSH|^~\\&|REG|GENHOSP|ISTHMUS|HOSP|202401011200||ADT^A01|M1|P|2.5.1\r"
            "PID|1||12345^^^HOSP^MR~98765^^^SSA^SS||DOE^JANE\r"
            "PV1|1|I|W1^101^A^GENHOSP\r"
            "NTE|1||admitted\r"
            "NTE|2|L|isthmus set MSH-4.1, PV1-3.4, PID-3[1].4\r");

  // Already complete: unmodified, byte for byte.
  constexpr char kComplete[] =
      "MSH|^~\\&|REG|WEST|ISTHMUS|HOSP|202401011200||ADT^A01|M2|P|2.5.1\n"
      "PID|1||12345^^^HOSP^MR\n"
      "PV1|1|I|W1^101^A^WEST\n";
  hl7v2::Message complete = Parse(kComplete);
  r = (*t)->Run(complete);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(complete.modified());
  EXPECT_EQ(complete.Encode(), kComplete);

  // The documentation shows this very script.
  auto docs = base::ReadFile(std::string(ISTHMUS_SOURCE_DIR) + "/docs/lua-transformers.md");
  auto source =
      base::ReadFile(std::string(ISTHMUS_SOURCE_DIR) + "/examples/transform/add-facility.lua");
  ASSERT_TRUE(docs.ok() && source.ok());
  EXPECT_THAT(*docs, HasSubstr(*source)) << "docs/lua-transformers.md must quote the example";

  // Test traffic is filtered with a reason.
  hl7v2::Message test = Parse("MSH|^~\\&|LAB|WEST|ISTHMUS|HOSP|2024||ORU^R01|M3|T|2.5.1\r");
  r = (*t)->Run(test);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->action, TransformResult::kFilter);
  EXPECT_EQ(r->reason, "test message from LAB");
}

}  // namespace
}  // namespace isthmus::mapping
