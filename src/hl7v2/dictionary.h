// HL7 v2 version dictionaries, 2.1 to 2.8.1: segments and their fields (datatype, optionality,
// repetition, length, table), datatypes and their components, message structures with nested
// groups, the event -> structure mapping (table 0354) and HL7 table values. The data is generated
// at build time from npm packages (docs/hl7v2-dictionaries.md) and parsed on first use of each
// version.
//
// Thread-safety: Find() is thread-safe (each version is built once, under absl::call_once); a
// Dictionary is immutable and lives until the process exits, so its pointers never dangle.
//
// Example:
//   const Dictionary* d = Dictionary::Find("2.5.1");
//   const FieldDef* f = d->Field("PID", 3);   // f->datatype == "CX", f->required(), f->repeating()
//   const MessageStructureDef* s = d->StructureFor("ADT", "A04");  // s->id == "ADT_A01"
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace isthmus::hl7v2 {

// HL7 optionality of a field or component.
enum class Optionality : char {
  kRequired = 'R',
  kOptional = 'O',
  kConditional = 'C',
  kBackward = 'B',   // kept for backward compatibility
  kWithdrawn = 'W',
  kNotUsed = 'X',
};

// A field of a segment, or a component of a datatype (max_repetitions is 1 for components).
struct FieldDef {
  int position = 0;          // 1-based field (or component) number
  std::string datatype;      // "CX", "ST", ...
  Optionality optionality = Optionality::kOptional;
  int max_repetitions = 1;   // 0 = unbounded
  int max_length = 0;        // 0 = not given by the source
  int table = 0;             // HL7 table number; 0 = none
  std::string name;          // "Patient Identifier List"

  bool required() const { return optionality == Optionality::kRequired; }
  bool repeating() const { return max_repetitions != 1; }
};

struct SegmentDef {
  std::string name;          // "PID"
  std::string description;   // "Patient Identification"
  std::vector<FieldDef> fields;  // fields[i].position == i + 1
  // nullptr when `position` is beyond the definition.
  const FieldDef* Field(int position) const;
};

struct DatatypeDef {
  std::string name;         // "CX"
  std::string description;
  std::vector<FieldDef> components;  // empty for primitive types
  bool composite() const { return !components.empty(); }
};

// One element of a message structure: a segment or a group of elements.
struct StructureNode {
  std::string name;  // segment name ("PID") or group name ("PATIENT_RESULT")
  bool group = false;
  int min = 0;       // 0 = optional, 1 = required
  int max = 1;       // 0 = unbounded (repeating)
  std::vector<StructureNode> children;  // group members, in order
};

struct MessageStructureDef {
  std::string id;           // "ADT_A01"
  std::string description;
  std::vector<StructureNode> nodes;  // top level, in order (MSH first)
};

struct TableDef {
  int number = 0;
  std::string name;  // "Administrative Sex"
  absl::flat_hash_map<std::string, std::string> values;  // code -> display
  bool Contains(std::string_view code) const {
    return values.contains(absl::string_view(code.data(), code.size()));
  }
};

class Dictionary {
 public:
  // The dictionary for an HL7 version ("2.5.1", as in MSH-12.1). A version the data does not have
  // falls back to the nearest lower known one: "2.5.2" -> 2.5.1, "2.3.2" -> 2.3.1,
  // "2.9" / "2.8.2" -> 2.8.1. nullptr for text that is not a 2.x version or is below 2.1.
  static const Dictionary* Find(std::string_view version);
  // The versions with data, oldest first.
  static std::vector<std::string_view> KnownVersions();
  // The known version Find() would use for `version` ("" when none), without building it.
  static std::string_view Resolve(std::string_view version);

  std::string_view version() const { return version_; }
  // The version whose segment/datatype/structure data this dictionary uses: the same as
  // version() except where the sources lack that version (2.8 and 2.8.1 use 2.7.1; tables are
  // still those of version()).
  std::string_view data_version() const { return data_version_; }

  const SegmentDef* Segment(std::string_view name) const;
  const FieldDef* Field(std::string_view segment, int position) const;
  const DatatypeDef* Datatype(std::string_view name) const;
  // By structure id as in MSH-9.3 ("ADT_A01").
  const MessageStructureDef* Structure(std::string_view id) const;
  // By message type and trigger event (MSH-9.1, MSH-9.2): the structure named TYPE_EVENT if the
  // source has it, else the one table 0354 maps the event to, else the one named TYPE (e.g. ACK).
  const MessageStructureDef* StructureFor(std::string_view type, std::string_view event) const;
  // True when any structure (or mapping) exists for message type `type`.
  bool HasMessageType(std::string_view type) const;
  const TableDef* Table(int number) const;

  // Calls f(const SegmentDef&) / f(const MessageStructureDef&) for each, in no particular order.
  template <typename F>
  void ForEachSegment(F f) const {
    for (const auto& [name, s] : segments_) f(s);
  }
  template <typename F>
  void ForEachStructure(F f) const {
    for (const auto& [id, s] : structures_) f(s);
  }

  size_t segment_count() const { return segments_.size(); }
  size_t datatype_count() const { return datatypes_.size(); }
  size_t structure_count() const { return structures_.size(); }
  size_t table_count() const { return tables_.size(); }

  // Builds a dictionary from one generated blob. Exposed for the loader; use Find().
  static std::unique_ptr<Dictionary> FromBlob(const char* const* chunks);

 private:
  Dictionary() = default;
  std::string version_, data_version_;
  absl::flat_hash_map<std::string, SegmentDef> segments_;
  absl::flat_hash_map<std::string, DatatypeDef> datatypes_;
  absl::flat_hash_map<std::string, MessageStructureDef> structures_;
  absl::flat_hash_map<std::string, std::string> events_;  // "ADT^A04" -> "ADT_A01"
  absl::flat_hash_map<int, TableDef> tables_;
};

}  // namespace isthmus::hl7v2
