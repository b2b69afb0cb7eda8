// Internal to the validator: per-version rules compiled from a Dictionary (segment field rules
// and message-structure state machines), value format checks and the structure matcher.
// Thread-safety: compiled data is immutable after CompiledFor() returns it; the free functions
// are stateless.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "hl7v2/delimiters.h"
#include "hl7v2/dictionary.h"
#include "hl7v2/issue.h"
#include "hl7v2/message.h"

namespace isthmus::hl7v2::internal {

// A segment name packed into an integer, for cheap comparisons: "PID" -> 'P'<<16|'I'<<8|'D'.
// Names that are not 3 characters map to 0 (never equal to a real segment).
inline uint32_t SegKey(std::string_view name) {
  if (name.size() != 3) return 0;
  return static_cast<uint32_t>(static_cast<unsigned char>(name[0])) << 16 |
         static_cast<uint32_t>(static_cast<unsigned char>(name[1])) << 8 |
         static_cast<uint32_t>(static_cast<unsigned char>(name[2]));
}

// What the validator checks in a primitive value.
enum class ValueKind : uint8_t { kNone, kNM, kSI, kDT, kDTM, kTS, kTM, kID, kIS };

ValueKind KindOf(std::string_view datatype);
// Format checks (value is non-empty, not the null value "").
bool IsValidNM(std::string_view v);
bool IsValidSI(std::string_view v);
bool IsValidDT(std::string_view v);
bool IsValidTM(std::string_view v);
bool IsValidDTM(std::string_view v);

struct ComponentRule {
  const FieldDef* def = nullptr;
  ValueKind kind = ValueKind::kNone;
  const TableDef* table = nullptr;  // ID/IS with known values
  bool required = false;
};

struct FieldRule {
  const FieldDef* def = nullptr;
  ValueKind kind = ValueKind::kNone;
  bool required = false;
  int max_reps = 1;  // 0 = unbounded
  int max_length = 0;
  const TableDef* table = nullptr;       // ID/IS with known values
  std::vector<ComponentRule> components;  // composite types with something to check
};

struct SegmentRules {
  const SegmentDef* def = nullptr;
  std::vector<FieldRule> fields;  // fields[i] is field i + 1
  std::vector<int> required;      // positions of required fields
};

// A message structure flattened into nodes; node 0 is the root group.
struct StructNode {
  std::string name;
  uint32_t key = 0;  // segments only
  bool group = false;
  int min = 0, max = 1;        // max 0 = unbounded
  std::vector<int> children;   // node indices
  std::vector<uint32_t> first;  // segment keys that can start this node
  std::string lead;            // the segment that names a missing group in reports
};

struct CompiledStructure {
  const MessageStructureDef* def = nullptr;
  std::vector<StructNode> nodes;
  absl::flat_hash_set<uint32_t> segments;  // every segment the structure mentions
};

struct CompiledVersion {
  const Dictionary* dict = nullptr;
  bool v27_or_later = false;  // 0357 code 104 exists
  absl::flat_hash_map<uint32_t, SegmentRules> segments;
  absl::flat_hash_map<const MessageStructureDef*, CompiledStructure> structures;
};

// The compiled rules for `dict`, built once per process and never freed.
const CompiledVersion& CompiledFor(const Dictionary& dict);

// Options for the structure matcher that come from the profile.
struct StructureOptions {
  bool forbid_z_segments = false;
  const absl::flat_hash_set<uint32_t>* forbidden = nullptr;  // may be null
  std::string_view profile_name;
};

// Matches the message's segments against `s`, appending 0357 code 100 issues.
void MatchStructure(const CompiledStructure& s, const Message& m, const StructureOptions& opts,
                    std::vector<Issue>& out);

// Field rules for one segment of `dict`.
SegmentRules CompileSegment(const Dictionary& dict, const SegmentDef& def);

// Checks the fields of one segment against `rules`.
void CheckSegmentFields(const CompiledVersion& v, const SegmentRules& rules, const SegmentView& seg,
                        const Delimiters& d, std::vector<Issue>& out);

}  // namespace isthmus::hl7v2::internal
