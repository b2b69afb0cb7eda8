// Segment grouping by message structure: places each segment of a message into the group
// instances of its structure (hl7v2 dictionaries: PATIENT_RESULT, ORDER_OBSERVATION,
// OBSERVATION, SPECIMEN, ...), as a receiver reading the message in order would.
//
// A segment is placed at the first position, searching from the innermost open group outwards,
// where the structure allows it after what was already seen: a repeating segment repeats, a
// group whose first segments include it opens (a new instance of a repeating group, or a nested
// group). So an OBX after SPM lands in SPECIMEN, an NTE after OBX in that OBSERVATION, and the
// next OBR opens a new ORDER_OBSERVATION. A segment the structure has no place for (Z-segments,
// out-of-order segments) stays in the innermost open group with `node == nullptr`.
//
// Thread-safety: stateless function; the result views the structure definition (which lives
// forever, see hl7v2::Dictionary).
#pragma once

#include <string_view>
#include <vector>

#include "hl7v2/dictionary.h"
#include "hl7v2/message.h"

namespace isthmus::v2fhir {

struct GroupInstance {
  const hl7v2::StructureNode* node = nullptr;  // nullptr for the message itself (index 0)
  int parent = -1;
  int depth = 0;
};

struct SegmentPlacement {
  int group = 0;                               // index into Grouping::groups
  const hl7v2::StructureNode* node = nullptr;  // the structure's segment; nullptr: not placed
};

struct Grouping {
  std::vector<GroupInstance> groups;        // [0] is the message
  std::vector<SegmentPlacement> segments;   // one per message segment, in order

  // True when group `g` is `ancestor` or nested in it.
  bool Within(int g, int ancestor) const {
    while (g >= 0) {
      if (g == ancestor) return true;
      g = groups[g].parent;
    }
    return false;
  }
  // "PATIENT_RESULT.ORDER_OBSERVATION.OBX" for segment `i` (for messages and --explain).
  std::string PathOf(const hl7v2::Message& m, size_t i) const;
};

// Fills `out` (cleared first). With `structure == nullptr` every segment is unplaced in group 0.
void GroupSegments(const hl7v2::Message& message, const hl7v2::MessageStructureDef* structure,
                   Grouping* out);

}  // namespace isthmus::v2fhir
