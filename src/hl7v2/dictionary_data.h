// Internal: the generated HL7 v2 dictionary blobs (tools/gen_hl7_dictionary.mjs writes the
// definitions into the build directory). Only dictionary.cc reads these.
// Thread-safety: immutable static data.
#pragma once

#include <cstddef>

namespace isthmus::hl7v2::internal {

struct DictionaryBlob {
  const char* version;        // "2.5.1"
  const char* const* chunks;  // line-based text (format: tools/gen_hl7_dictionary.mjs), nullptr-ended
};

extern const DictionaryBlob kDictionaryBlobs[];
extern const size_t kDictionaryBlobCount;

}  // namespace isthmus::hl7v2::internal
