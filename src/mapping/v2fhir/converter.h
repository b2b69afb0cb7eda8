// Converts one parsed HL7 v2 message into a FHIR R4 Bundle (JSON) by running compiled maps
// (plan.h, loader.h; the format is docs/mapping-guide.md).
//
// For a message: the message map is chosen from MSH-9 (type^trigger, then the structure in
// MSH-9.3) or forced with ConvertOptions::type; segments are grouped by the message structure of
// the message's HL7 version (grouping.h); each segment is offered to the map's entries in order,
// which create resources (or add to one in scope) by running segment maps, datatype maps and
// vocabulary maps; then references between the resources are filled in; then the Bundle is
// written. A segment that no entry consumed (and the map does not `ignore`) becomes an issue of
// an OperationOutcome entry and a Diagnostic: never silence. Resource ids are deterministic
// (fhir/ids.h), so the same message always gives the same Bundle.
//
// Site logic that a table cannot say: Lua hooks (hooks.h) run after a segment map's rules
// (segment hooks) and between "resources created" and "references filled" (message hooks); a
// hook error fails the conversion. Site ConceptMaps add standard codings next to local ones
// after a datatype map builds a CodeableConcept. Hook states live in the Workspace.
//
// Thread-safety: a Converter is immutable and may be shared by any number of threads. Each call
// needs its own Workspace (one per worker thread, reused across messages so that steady-state
// conversion does not allocate for the element tree); Convert() without one uses a thread_local.
//
// Example:
//   ISTHMUS_ASSIGN_OR_RETURN(auto maps, LoadMaps({DefaultMapsDir()}));
//   Converter converter(maps);
//   ConvertOptions options;            // transaction Bundle, UTC for offset-less timestamps
//   ISTHMUS_ASSIGN_OR_RETURN(ConvertResult r, converter.Convert(message, options));
//   Send(r.json); for (const Diagnostic& d : r.diagnostics) Log(d.message);
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fhir/bundle.h"
#include "hl7v2/message.h"
#include "mapping/v2fhir/plan.h"

namespace isthmus::v2fhir {

struct ConvertOptions {
  fhir::BundleType bundle = fhir::BundleType::kTransaction;
  // Forces the message map: a map name ("ADT_A01") or an event ("ADT^A04"). Empty: from MSH-9.
  std::string type;
  // Zone of timestamps sent without an offset.
  absl::TimeZone tz = absl::UTCTimeZone();
  bool pretty = false;
  // Records, per written value, the HL7 location and the map rules it came from.
  bool explain = false;
};

struct Diagnostic {
  enum class Severity { kWarning, kError };
  Severity severity = Severity::kWarning;
  std::string location;  // HL7 location ("ZPI", "PID-7") or empty
  std::string message;
};

struct ExplainLine {
  std::string element;  // "Patient/<id> name[0].family"
  std::string value;
  std::string source;   // "PID-5[1].1.1"
  std::string rules;    // "maps/segments/PID[Patient].yaml:12 > maps/datatypes/XPN[HumanName].yaml:5"
};

struct ConvertResult {
  std::string json;     // the Bundle
  std::string map;      // name of the message map used
  std::vector<Diagnostic> diagnostics;
  std::vector<ExplainLine> explain;  // with ConvertOptions::explain
};

// Per-thread scratch state of a conversion; opaque. Reuse it across messages.
class Workspace {
 public:
  Workspace();
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  struct State;
  State& state() { return *state_; }

 private:
  std::unique_ptr<State> state_;
};

class Converter {
 public:
  explicit Converter(std::shared_ptr<const MapSet> maps) : maps_(std::move(maps)) {}

  // NotFound when no message map applies (the message says which type it is); InvalidArgument
  // for a message without MSH. Data problems inside a message (a malformed date) are diagnostics,
  // not failures: the value is left out.
  absl::StatusOr<ConvertResult> Convert(const hl7v2::Message& message,
                                        const ConvertOptions& options) const;
  absl::Status Convert(const hl7v2::Message& message, const ConvertOptions& options,
                       Workspace& workspace, ConvertResult* result) const;

  const MapSet& maps() const { return *maps_; }

 private:
  std::shared_ptr<const MapSet> maps_;
};

}  // namespace isthmus::v2fhir
