#include "mapping/v2fhir/condition.h"

#include <map>

#include "gtest/gtest.h"

namespace isthmus::v2fhir {
namespace {

bool Eval(std::string_view text, const std::map<std::string, std::string>& values) {
  auto c = Condition::Compile(text, ConditionScope{true, "PID"});
  EXPECT_TRUE(c.ok()) << c.status();
  if (!c.ok()) return false;
  return c->Evaluate([&](const Operand& op, std::string*) -> std::string_view {
    std::string key = op.segment;
    for (int p : op.parts) key += "." + std::to_string(p);
    if (op.repetition > 0) key += "(" + std::to_string(op.repetition) + ")";
    auto it = values.find(key);
    return it == values.end() ? std::string_view() : std::string_view(it->second);
  });
}

TEST(Condition, ValuedEqualsIn) {
  std::map<std::string, std::string> v = {{"PID.11.9", "X"}, {"OBX.2", "NM"}};
  EXPECT_TRUE(Eval("PID-11.9 valued", v));
  EXPECT_TRUE(Eval("PID-11.9 is valued", v));
  EXPECT_FALSE(Eval("PID-11.9 is not valued", v));
  EXPECT_TRUE(Eval("PID-12 not valued", v));
  EXPECT_TRUE(Eval("OBX-2 = NM", v));
  EXPECT_TRUE(Eval("OBX-2 != ST", v));
  EXPECT_TRUE(Eval("OBX-2 in [ST, 'NM', \"TX\"]", v));
  EXPECT_FALSE(Eval("OBX-2 not in [ST, NM]", v));
  EXPECT_TRUE(Eval("not (OBX-2 = ST or PID-12 valued) and PID-11.9 = X", v));
}

TEST(Condition, RepeatsLooksAtTheSecondRepetition) {
  std::map<std::string, std::string> v = {{"OBX.5(2)", "120"}, {"OBX.5", "60"}};
  EXPECT_TRUE(Eval("OBX-5 repeats", v));
  EXPECT_FALSE(Eval("OBX-5 not repeats", v));
  EXPECT_TRUE(Eval("OBX-6 not repeats", v));
  EXPECT_FALSE(Condition::Compile("OBX-5.1 repeats", ConditionScope{true, "OBX"}).ok());
  EXPECT_TRUE(Eval("OBX-5 longer than 1", v));
  EXPECT_FALSE(Eval("OBX-5 longer than 2", v));
  EXPECT_TRUE(Eval("not OBX-5 longer than 2", v));
  EXPECT_FALSE(Eval("OBX-9 longer than 0", v));
  EXPECT_FALSE(Condition::Compile("OBX-5 longer 2", ConditionScope{true, "OBX"}).ok());
  EXPECT_FALSE(Condition::Compile("OBX-5 longer than x", ConditionScope{true, "OBX"}).ok());
  EXPECT_FALSE(Condition::Compile("CX.4 repeats", ConditionScope{false, "CX"}).ok());
}

TEST(Condition, ErrorsNameTheColumn) {
  auto c = Condition::Compile("PID-3 valued and", ConditionScope{true, "PID"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("column 17"), std::string::npos) << c.status();
  EXPECT_FALSE(Condition::Compile("PID-3 == x", ConditionScope{true, "PID"}).ok());
  EXPECT_FALSE(Condition::Compile("PID-3 in [a, b", ConditionScope{true, "PID"}).ok());
  EXPECT_FALSE(Condition::Compile("XAD.7 = M", ConditionScope{false, "CX"}).ok());
  EXPECT_TRUE(Condition::Compile("CX.4.2 not valued", ConditionScope{false, "CX"}).ok());
  EXPECT_FALSE(Condition::Compile("PID-0 valued", ConditionScope{true, "PID"}).ok());
}

}  // namespace
}  // namespace isthmus::v2fhir
