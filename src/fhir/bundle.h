// Builds a FHIR R4 Bundle inside a Tree: the Bundle object, then one entry per resource with
// `fullUrl` (urn:uuid:<id>), `resource` (resourceType and id already set) and, for transaction
// and batch bundles, `request` PUT <Type>/<id>. With deterministic ids a PUT makes converting
// the same message twice change nothing on the server.
//
// Thread-safety: one BundleBuilder per Tree, one thread.
//
// Example:
//   Tree t;
//   BundleBuilder b(&t, BundleType::kTransaction);
//   Tree::NodeId patient = b.AddResource("Patient", id);   // fill it through t
//   std::string json; t.WriteJson(b.root(), &json, false);
#pragma once

#include <string_view>

#include "fhir/element_tree.h"

namespace isthmus::fhir {

enum class BundleType { kTransaction, kBatch, kCollection };

std::string_view BundleTypeName(BundleType t);
// "transaction", "batch", "collection"; false otherwise.
bool ParseBundleType(std::string_view s, BundleType* out);

class BundleBuilder {
 public:
  // REQUIRES: `tree` outlives the builder; the builder adds a new root object to it.
  BundleBuilder(Tree* tree, BundleType type);

  Tree::NodeId root() const { return root_; }
  // Sets Bundle.id / Bundle.timestamp (written before `entry`).
  void SetId(std::string_view id);
  void SetTimestamp(std::string_view instant);
  // Adds an entry; returns the resource object (resourceType and id set). `type` must outlive
  // the tree's use (a literal or compiled map string); `id` is copied.
  Tree::NodeId AddResource(std::string_view type, std::string_view id);
  size_t entry_count() const { return tree_->child_count(entries_); }

 private:
  Tree* tree_;
  BundleType type_;
  Tree::NodeId root_, id_, timestamp_, entries_;
};

}  // namespace isthmus::fhir
