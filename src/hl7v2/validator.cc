#include "base/str.h"
#include "hl7v2/validator.h"

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "hl7v2/dictionary.h"
#include "hl7v2/validator_internal.h"

namespace isthmus::hl7v2 {

using internal::CompiledStructure;
using internal::CompiledVersion;
using internal::SegKey;

namespace {

// A profile rule on one field, compiled for lookup by segment.
struct ProfileFieldRule {
  const Path* path;
  std::string text;                         // the path as written, for messages
  const ProfileValueRule* values = nullptr;  // allowed values, or a required field
  absl::flat_hash_set<std::string> allowed;
};

}  // namespace

struct Validator::Impl {
  const Dictionary* fixed = nullptr;  // from options.version
  std::shared_ptr<const Profile> profile;
  absl::flat_hash_set<uint32_t> forbidden;
  absl::flat_hash_map<uint32_t, std::vector<ProfileFieldRule>> field_rules;

  void ApplyProfileRules(const SegmentView& seg, const Delimiters& d,
                         std::vector<Issue>& out) const;
  bool CheckMessageType(const Message& m, std::vector<Issue>& out) const;
};

absl::StatusOr<Validator> Validator::Create(ValidatorOptions options) {
  auto impl = std::make_shared<Impl>();
  if (!options.version.empty()) {
    impl->fixed = Dictionary::Find(options.version);
    if (impl->fixed == nullptr) {
      return absl::InvalidArgumentError(
          base::StrCat("unknown HL7 version '", options.version, "' (known: 2.1 to 2.8.1)"));
    }
    internal::CompiledFor(*impl->fixed);  // compile now, not on the first message
  }
  impl->profile = std::move(options.profile);
  if (const Profile* p = impl->profile.get()) {
    for (const std::string& s : p->forbid_segments) impl->forbidden.insert(SegKey(s));
    for (const Path& path : p->required_fields) {
      impl->field_rules[SegKey(path.segment)].push_back(
          ProfileFieldRule{&path, path.ToString(), nullptr, {}});
    }
    for (const ProfileValueRule& rule : p->allowed_values) {
      ProfileFieldRule r{&rule.path, rule.path.ToString(), &rule, {}};
      r.allowed.insert(rule.values.begin(), rule.values.end());
      impl->field_rules[SegKey(rule.path.segment)].push_back(std::move(r));
    }
  }
  return Validator(std::move(impl));
}

namespace {

Issue MakeIssue(Severity sev, ErrorCode code, Path location, std::string message) {
  Issue i;
  i.severity = sev;
  i.code = code;
  i.location = std::move(location);
  i.message = std::move(message);
  return i;
}

Path At(const SegmentView& seg, int field, int rep = 0, int comp = 0, int sub = 0) {
  Path p;
  p.segment = std::string(seg.name());
  p.segment_index = seg.occurrence();
  p.field = field;
  p.repetition = rep;
  p.component = comp;
  p.subcomponent = sub;
  return p;
}

std::string_view Part(std::string_view s, char sep, int index) {
  if (index <= 0) return s;
  return NthPart(s, sep, index);
}

}  // namespace

bool Validator::Impl::CheckMessageType(const Message& m, std::vector<Issue>& out) const {
  const Profile* p = profile.get();
  if (p == nullptr || p->message_types.empty()) return true;
  std::string_view type = m.message_type(), event = m.trigger_event();
  bool type_listed = false;
  for (const std::string& t : p->message_types) {
    size_t hat = t.find('^');
    std::string_view t_type = std::string_view(t).substr(0, hat);
    if (t_type != type) continue;
    type_listed = true;
    if (hat == std::string::npos || std::string_view(t).substr(hat + 1) == event) return true;
  }
  Path loc;
  loc.segment = "MSH";
  loc.segment_index = 1;
  loc.field = 9;
  loc.component = type_listed ? 2 : 1;
  out.push_back(MakeIssue(
      Severity::kError,
      type_listed ? ErrorCode::kUnsupportedEventCode : ErrorCode::kUnsupportedMessageType,
      std::move(loc),
      type_listed ? base::StrCat("trigger event is not accepted by profile ", p->name)
                  : base::StrCat("message type is not accepted by profile ", p->name)));
  return false;
}

void Validator::Impl::ApplyProfileRules(const SegmentView& seg, const Delimiters& d,
                                        std::vector<Issue>& out) const {
  auto it = field_rules.find(SegKey(seg.name()));
  if (it == field_rules.end()) return;
  const std::string& profile_name = profile->name;
  for (const ProfileFieldRule& r : it->second) {
    const Path& p = *r.path;
    std::string_view raw =
        static_cast<size_t>(p.field) < seg.field_count() ? seg.field(p.field) : std::string_view();
    bool msh12 = seg.name() == "MSH" && p.field <= 2;  // not split further
    if (r.values == nullptr) {  // required field / component
      if (raw.empty()) {
        out.push_back(MakeIssue(Severity::kError, ErrorCode::kRequiredFieldMissing,
                                At(seg, p.field, 0, p.component, p.subcomponent),
                                base::StrCat(r.text, " is required by profile ", profile_name)));
        continue;
      }
      if (p.component == 0 || msh12) continue;
      int reps = d.repetition == '\0' ? 1 : PartCount(raw, d.repetition);
      for (int rep = 1; rep <= reps; ++rep) {
        std::string_view rv = reps == 1 ? raw : NthPart(raw, d.repetition, rep);
        std::string_view v = Part(Part(rv, d.component, p.component), d.subcomponent,
                                  p.subcomponent);
        if (v.empty()) {
          out.push_back(MakeIssue(Severity::kError, ErrorCode::kRequiredFieldMissing,
                                  At(seg, p.field, rep, p.component, p.subcomponent),
                                  base::StrCat(r.text, " is required by profile ", profile_name)));
        }
      }
      continue;
    }
    if (raw.empty()) continue;
    int reps = msh12 || d.repetition == '\0' ? 1 : PartCount(raw, d.repetition);
    for (int rep = 1; rep <= reps; ++rep) {
      std::string_view rv = reps == 1 ? raw : NthPart(raw, d.repetition, rep);
      std::string_view v =
          msh12 ? rv : Part(Part(rv, d.component, p.component), d.subcomponent, p.subcomponent);
      if (v.empty() || r.allowed.contains(absl::string_view(v.data(), v.size()))) continue;
      out.push_back(MakeIssue(Severity::kError, ErrorCode::kTableValueNotFound,
                              At(seg, p.field, reps > 1 ? rep : 0, p.component, p.subcomponent),
                              base::StrCat(r.text, ": the value is not one profile ",
                                           profile_name, " allows")));
    }
  }
}

std::vector<Issue> Validator::Validate(const Message& m) const {
  std::vector<Issue> out;
  const Impl& impl = *impl_;
  const Profile* profile = impl.profile.get();
  impl.CheckMessageType(m, out);

  const Dictionary* dict = impl.fixed;
  if (dict == nullptr) {
    dict = Dictionary::Find(m.version());
    if (dict == nullptr) {
      Path loc;
      loc.segment = "MSH";
      loc.segment_index = 1;
      loc.field = 12;
      out.push_back(MakeIssue(Severity::kError, ErrorCode::kUnsupportedVersionId, std::move(loc),
                              m.version().empty()
                                  ? "version ID (MSH-12) is missing"
                                  : "version ID (MSH-12) is not a supported HL7 version (2.1 to "
                                    "2.8.1)"));
    }
  }
  const CompiledVersion* cv = dict == nullptr ? nullptr : &internal::CompiledFor(*dict);

  // Structure.
  if (cv != nullptr) {
    const MessageStructureDef* def = nullptr;
    if (!m.structure().empty()) def = dict->Structure(m.structure());
    if (def == nullptr) def = dict->StructureFor(m.message_type(), m.trigger_event());
    if (def == nullptr) {
      bool known_type = dict->HasMessageType(m.message_type());
      Path loc;
      loc.segment = "MSH";
      loc.segment_index = 1;
      loc.field = 9;
      loc.component = known_type ? 2 : 1;
      out.push_back(MakeIssue(
          Severity::kError,
          known_type ? ErrorCode::kUnsupportedEventCode : ErrorCode::kUnsupportedMessageType,
          std::move(loc),
          base::StrCat(known_type ? "trigger event" : "message type",
                       " has no message structure in HL7 ", dict->version())));
    } else if (auto it = cv->structures.find(def); it != cv->structures.end()) {
      internal::StructureOptions so;
      if (profile != nullptr) {
        so.forbid_z_segments = profile->forbid_z_segments;
        so.forbidden = &impl.forbidden;
        so.profile_name = profile->name;
      }
      internal::MatchStructure(it->second, m, so, out);
    }
  }

  // Segments and fields.
  const Delimiters& d = m.delimiters();
  for (size_t i = 0; i < m.segment_count(); ++i) {
    SegmentView seg = m.segment(i);
    uint32_t key = SegKey(seg.name());
    if (profile != nullptr) {
      if (impl.forbidden.contains(key)) {
        Path loc;
        loc.segment = std::string(seg.name());
        loc.segment_index = seg.occurrence();
        out.push_back(MakeIssue(Severity::kError, ErrorCode::kSegmentSequenceError,
                                std::move(loc),
                                base::StrCat("segment ", seg.name(), " is not allowed by profile ",
                                             profile->name)));
        continue;
      }
      impl.ApplyProfileRules(seg, d, out);
    }
    if (cv == nullptr) continue;
    auto it = cv->segments.find(key);
    if (it == cv->segments.end()) continue;
    internal::CheckSegmentFields(*cv, it->second, seg, d, out);
  }

  if (profile != nullptr) {
    for (const std::string& s : profile->required_segments) {
      if (m.CountSegments(s) > 0) continue;
      Path loc;
      loc.segment = s;
      out.push_back(MakeIssue(Severity::kError, ErrorCode::kSegmentSequenceError, std::move(loc),
                              base::StrCat("segment ", s, " is required by profile ",
                                           profile->name)));
    }
  }
  return out;
}

}  // namespace isthmus::hl7v2
