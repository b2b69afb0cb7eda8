// The compiled form of v2 -> FHIR maps (docs/mapping-guide.md): what the loader produces from the
// YAML files under maps/ and what the converter runs. Every name a map file uses (datatype map,
// vocabulary, segment map) is resolved to a pointer at load; element paths, HL7 selectors and
// conditions are parsed once. Each rule keeps the file:line it came from for errors and
// --explain.
//
// Thread-safety: a MapSet is immutable after loading and shared (std::shared_ptr<const MapSet>)
// by all converting threads.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "mapping/lua/lua_script.h"
#include "mapping/v2fhir/condition.h"

namespace isthmus::v2fhir {

struct SourceRef {
  std::string file;  // as given to the loader (relative to its maps directory)
  int line = 0;      // 1-based
  std::string ToString() const;
};

// One step of an element path: `name`, `name[+]`, `name[2]`, `name[url=X]`, `name[+url=X]`.
struct PathStep {
  // kLast: `name[last]`, the last element (the one a previous rule's [+] appended), created
  // when the array is empty.
  enum class Mode { kMember, kAppend, kIndex, kWhere, kAppendWhere, kLast };
  std::string name;
  Mode mode = Mode::kMember;
  int index = 0;  // kIndex, 0-based (written 1-based, like the IG)
  std::string where_key, where_value;
};

struct ElementPath {
  std::vector<PathStep> steps;  // empty: the current element itself (`$`)
  std::string text;
  bool appends = false;  // some step is [+]: a repeating HL7 field maps each repetition
};

// Built-in conversions of a leaf value.
enum class Conversion {
  kNone,          // the rule uses a datatype map, a constant or a resource
  kString,        // unescaped text
  kCode,          // text, translated by the vocabulary when given (unknown codes pass through)
  kUri,           // text
  kDecimal,       // HL7 NM -> JSON number (normalized: "+1.50" -> 1.50, ".5" -> 0.5)
  kInteger,       // whole number
  kBoolean,       // Y/N (also T/F, true/false)
  kDateTime, kDate, kInstant, kTime,
  kCoding,        // code/display/system from `components` (default 1,2,3), vocabulary-aware
  kCodingSystem,  // a v2 coding system name (LN, SCT, HL70001) -> its URI
  kHdUri,         // HD: urn:oid:HD.2 (HD.3 = ISO), urn:uuid:, a URI in HD.2
  kBase64,        // unescaped text, base64-encoded (Attachment.data from TX/FT/ST text)
  kBase64Binary,  // text that already is base64 (ED.5 with ED.4 Base64): written as is when it is
                  // groups of four base64 characters (FHIR base64Binary), else left out
  kSegmentResource,  // reads nothing: a Reference to the resource of the segment map being run,
                     // or with `resource: Type` to the Type an earlier entry made from this segment
  kScopeResource,    // reads nothing: a Reference to the nearest resource of type `resource` in
                     // the scope of the segment being converted (its group, then the enclosing
                     // ones), as a message-map reference `to: Type` finds it; for resources a
                     // datatype map makes, which have no message-map references (the subject of
                     // DG1-22's parent Condition). Only resources made by earlier segments.
};

struct DatatypeMap;
struct Vocabulary;
struct ConceptMap;

// A Lua hook (`hooks:` of a segment or message map): a global function of a script under lua/.
// Segment hooks run after each run of their segment map's rules; message hooks once all
// resources exist, before references are written (docs/mapping-guide.md "Lua hooks").
struct Hook {
  SourceRef src;          // where the hook is declared
  std::string function;   // global function of the script
  int script = -1;        // index into MapSet::scripts
};

struct Rule {
  SourceRef src;
  // HL7 selector relative to the context: segment maps [field, component, subcomponent];
  // datatype maps [component, subcomponent]; empty = the current value.
  std::vector<int> select;
  std::string select_text;        // "PID-3", "CX.4" (for --explain)
  std::optional<Condition> when;
  ElementPath element;
  Conversion conversion = Conversion::kNone;
  const DatatypeMap* datatype = nullptr;
  const Vocabulary* vocabulary = nullptr;
  bool inherit_vocabulary = false;  // `vocabulary: inherit`: the calling rule's vocabulary
  // Coding: [code, display, system]; hd-uri: [namespace, universal id, type]. Default 1, 2, 3.
  std::vector<int> coding_components = {1, 2, 3};
  std::optional<std::string> constant;  // `value:` - written as is (a string)
  std::string resource;  // "Practitioner": the datatype map builds a resource; the element gets a
                         // Reference to it (deterministic id from the HL7 value)
  bool each_repetition = false;  // map every repetition of a repeating field (element has [+])
  // `repeat: rest` (2, 0: every repetition but the first) or `repeat: N` (N, N: only the Nth),
  // segment maps: the repetitions of the field mapped, 1-based, last 0 = to the end.
  int first_repetition = 1;
  int last_repetition = 0;
  // `join: "--"` (type string): every non-empty component and subcomponent of the value, in
  // order, joined by this separator (Location.description from a whole PL).
  std::optional<std::string> join;
  // `repeat: join` (segment maps, type string): the selected value of every repetition of the
  // field (those whose `when` holds), unescaped, joined by `join` into one string ("White+Asian"
  // from PID-10.2 with join "+").
  bool join_repetitions = false;
  // `prefix: "http://..."` (type string/uri): written before the value, whose blanks become '-'
  // (a namespace id made a system URI under a site's base). With type coding-system: the base
  // for a name CodingSystem does not know, instead of its unknown_prefix (identifier systems).
  std::string prefix;
  // Segment maps only. `as: NAME` (with `resource`, or a `datatype` whose map makes resources:
  // the first one it makes, the one `element` refers to): that resource is known to the later
  // rules of the map, and to message entries with `into: SEG.NAME`, as NAME; `into: NAME`: the
  // rule writes into that resource (its `element` relative to it) instead of the segment's
  // resource, and is skipped when the `as` rule named none in this segment. When the resource
  // was made before this segment (the same value earlier in the message), the rule only fills:
  // it is skipped when the first member of its element was there before. Compiled to slots.
  // Segment maps only: `rules:` run once per repetition of `field` (each repetition when the
  // element has [+]), relative to the element this rule resolves (`component[+]`): a nested
  // rule without `field` (and `$` in its conditions) reads that repetition, and the outer field
  // named by a nested rule is read in that repetition. Such a rule has no type/datatype/value.
  std::vector<Rule> children;
  static constexpr int kMaxSlots = 8;
  // A `resource` rule without `element`: the resource is made, nothing refers to it from here
  // (it refers back itself, e.g. RelatedPerson.patient with type segment-resource).
  bool no_reference = false;
  // `if_absent: true` (an element of plain member names): the rule is skipped when the resource
  // (datatype maps: the element the map fills) has that element already, whoever wrote it (an
  // IG-defined default for a required element: ServiceRequest.intent "order" from OBR when no
  // ORC of the group set one). `if_absent: PATH` (plain member names): skipped when PATH is
  // present (data-absent-reason on `_endpoint` when no rule wrote `endpoint`; OBR-6
  // occurrenceDateTime unless TQ1 wrote occurrenceTiming: one type per choice element).
  // `if_absent: [A, B]`: skipped when any of them is present (data-absent medicationCodeableConcept
  // unless medicationCodeableConcept or medicationReference was written). Empty: not deferred.
  std::vector<ElementPath> if_absent;
  int as_slot = -1;
  int into_slot = -1;
  // `conceptmap: NAME` (with a datatype building a CodeableConcept): that site ConceptMap
  // translates the codings of the element, whatever their system is.
  const ConceptMap* conceptmap = nullptr;
};

struct DatatypeMap {
  std::string name;      // "CX[Identifier]"
  std::string datatype;  // "CX"
  SourceRef src;
  std::vector<Rule> rules;
};

struct SegmentMap {
  std::string name;     // "PID[Patient]"
  std::string segment;  // "PID"
  std::string resource; // "Patient"
  SourceRef src;
  std::vector<Rule> rules;
  std::vector<Hook> hooks;  // run after the rules, for every segment the map converts
  // The `as:` names of the rules, index = slot (Rule::as_slot): what `into` rules and message
  // entries with `into: SEG.NAME` name.
  std::vector<std::string> as_names;
};

struct Concept {
  std::string code, display, system;  // system empty: the vocabulary's
};

struct Vocabulary {
  std::string name;    // "AdministrativeSex"
  std::string table;   // "0001": unknown codes get http://terminology.hl7.org/CodeSystem/v2-0001
  std::string system;  // system of the mapped codes
  // `default: CODE`: what `type: code` writes for a code the map does not know (FHIR code
  // elements have closed value sets); without it such a code is left out with a diagnostic.
  std::string fallback;
  // `unknown_prefix: URI` (CodingSystem): a coding system name the map does not know, that is not
  // HL7nnnn and not itself a URI, becomes this prefix + the name (blanks as '-'), a system under
  // the site's base instead of no system at all.
  std::string unknown_prefix;
  SourceRef src;
  absl::flat_hash_map<std::string, Concept> codes;
  const Concept* Find(std::string_view code) const {
    auto it = codes.find(absl::string_view(code.data(), code.size()));
    return it == codes.end() ? nullptr : &it->second;
  }
};

// A reference between resource instances of a message, e.g. Observation.subject -> Patient.
struct Reference {
  SourceRef src;
  ElementPath element;  // where the Reference goes ("subject", "result[+]")
  std::string type;     // target resource type
  bool all = false;     // "Observation[*]": every instance of the type inside this entry's group
  // `label: order`: only instances an entry with that label made (MedicationRequest of ORC+RXO,
  // not the one of RXE); none: any instance of the type.
  std::optional<std::string> label;
  // `to: Bundle`: the Bundle the message becomes ("Bundle/<its id>", the id the engine makes from
  // sender and control id), as Microsoft's Provenance.target. Resolved at load.
  bool bundle = false;
};

// A field whose value forms the business key of a resource's id (PID-3.1, PV1-19).
struct KeyPart {
  std::string segment;
  std::vector<int> select;  // field, component, subcomponent
};

struct MessageEntry {
  SourceRef src;
  std::vector<std::string> segment_path;  // ["ORDER_OBSERVATION", "OBX"]: last is the segment
  std::optional<Condition> when;
  std::string resource;  // resource type
  bool merge = false;    // add to the nearest instance of `resource` in scope instead of a new one
  // `merge: scope`: when the segment's own group has no instance, the nearest one in the
  // enclosing groups (AIS in SIU's RESOURCES.SERVICE adds to the Appointment of SCH).
  bool merge_scope = false;
  // `merge: last`: adds to the resource an entry most recently made or merged into, of the
  // types the map's `merge: last` entries for this segment name make, in the segment's group or
  // else the nearest enclosing group with one (RXR after RXO, RXE or RXD: the order's or the
  // encoded MedicationRequest, or the MedicationDispense). The entry is skipped when that
  // resource is of another type (another entry for the segment takes it) or there is none.
  bool merge_last = false;
  // `label: encoded`: tells resources of one type in one group apart (RDE: the MedicationRequest
  // of ORC+RXO, label order, and the pharmacy's of RXE, label encoded). The instance the entry
  // makes carries the label; a merge adds only to an instance with the same label ("" = none).
  std::string label;
  // `from: ORC`: `map` (a map of that segment) reads the nearest such segment in scope instead of
  // the entry's own (RXE's MedicationRequest gets ORC's identifiers, status, requester). The
  // entry is skipped when there is none.
  std::string from;
  const SegmentMap* map = nullptr;
  // `into: IN1.holder`: no resource of its own; `map` writes into the resource that slot
  // `into_slot` of segment map `into_map` (run by an earlier entry) named for the nearest such
  // segment whose group is this segment's group or encloses it. Skipped when there is none.
  const SegmentMap* into_map = nullptr;
  int into_slot = -1;
  std::vector<KeyPart> id;
  std::vector<Reference> references;
};

struct MessageMap {
  std::string name;       // "ADT_A01"
  std::string structure;  // message structure used for grouping (default: name)
  std::vector<std::string> events;  // "ADT^A01", ...
  std::vector<std::string> ignore;  // segments deliberately not mapped (no warning)
  // `include: [ADT_A01]`: the entries (and ignores) of these message maps come first, then this
  // map's own; resolved at load (the included maps' entries are copied).
  std::vector<std::string> includes;
  SourceRef src;
  std::vector<MessageEntry> entries;
  std::vector<Hook> hooks;  // run once all resources exist (included maps' hooks first)
};

// A site ConceptMap (FHIR R4 JSON under conceptmaps/): local codes -> standard codes. A coding
// whose system is a group's source (any system, for a group without source) and whose code has
// targets with equivalence equal, equivalent, wider or subsumes gets those targets added next to
// it in its CodeableConcept.
struct ConceptMap {
  struct Target {
    std::string system, code, display;
  };
  std::string name;  // file stem
  std::string url;
  SourceRef src;
  // "source system|code" -> targets; a group without source is keyed "|code".
  absl::flat_hash_map<std::string, std::vector<Target>> targets;
  std::vector<std::string> sources;  // the groups' source systems ("" = any)
  // Targets of `code` in the group whose source is `system`; with `any_source`, else in a group
  // without source.
  const std::vector<Target>* Find(std::string_view system, std::string_view code,
                                  bool any_source) const;
};

// Every map, by name. Built by LoadMaps (loader.h).
struct MapSet {
  absl::flat_hash_map<std::string, std::unique_ptr<MessageMap>> messages;
  absl::flat_hash_map<std::string, std::unique_ptr<SegmentMap>> segments;
  absl::flat_hash_map<std::string, std::unique_ptr<DatatypeMap>> datatypes;
  absl::flat_hash_map<std::string, std::unique_ptr<Vocabulary>> vocabularies;
  absl::flat_hash_map<std::string, const MessageMap*> by_event;  // "ADT^A04" -> map
  const Vocabulary* coding_systems = nullptr;  // vocabulary "CodingSystem", if shipped
  // Site ConceptMaps by name (conceptmaps/NAME.json), and those applying to every CodeableConcept
  // a datatype map builds, by source system (groups with a source).
  absl::flat_hash_map<std::string, std::unique_ptr<ConceptMap>> conceptmaps;
  absl::flat_hash_map<std::string, std::vector<const ConceptMap*>> conceptmaps_by_source;
  // Hook scripts (lua/NAME.lua), compiled once; Hook::script indexes this.
  std::vector<std::shared_ptr<const mapping::LuaScript>> scripts;

  const MessageMap* FindMessage(std::string_view name) const;
  const MessageMap* FindEvent(std::string_view type, std::string_view trigger) const;
};

}  // namespace isthmus::v2fhir
