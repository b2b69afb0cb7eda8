#include "fhir/bundle.h"

#include <string>

#include "base/str.h"

namespace isthmus::fhir {

std::string_view BundleTypeName(BundleType t) {
  switch (t) {
    case BundleType::kTransaction: return "transaction";
    case BundleType::kBatch: return "batch";
    case BundleType::kCollection: return "collection";
  }
  return "transaction";
}

bool ParseBundleType(std::string_view s, BundleType* out) {
  for (BundleType t : {BundleType::kTransaction, BundleType::kBatch, BundleType::kCollection}) {
    if (s == BundleTypeName(t)) {
      *out = t;
      return true;
    }
  }
  return false;
}

BundleBuilder::BundleBuilder(Tree* tree, BundleType type) : tree_(tree), type_(type) {
  using K = Tree::Kind;
  root_ = tree_->NewObject();
  tree_->SetString(tree_->Member(root_, "resourceType", K::kString), "Bundle");
  id_ = tree_->Member(root_, "id", K::kString);
  tree_->SetString(tree_->Member(root_, "type", K::kString), BundleTypeName(type));
  timestamp_ = tree_->Member(root_, "timestamp", K::kString);
  entries_ = tree_->Member(root_, "entry", K::kArray);
}

void BundleBuilder::SetId(std::string_view id) { tree_->SetString(id_, id); }
void BundleBuilder::SetTimestamp(std::string_view instant) { tree_->SetString(timestamp_, instant); }

Tree::NodeId BundleBuilder::AddResource(std::string_view type, std::string_view id) {
  using K = Tree::Kind;
  Tree::NodeId entry = tree_->Append(entries_, K::kObject);
  thread_local std::string url;  // reused: no allocation per resource
  url.assign("urn:uuid:");
  url.append(id);
  tree_->SetString(tree_->Member(entry, "fullUrl", K::kString), url);
  Tree::NodeId resource = tree_->Member(entry, "resource", K::kObject);
  tree_->SetString(tree_->Member(resource, "resourceType", K::kString), type);
  tree_->SetString(tree_->Member(resource, "id", K::kString), id);
  if (type_ != BundleType::kCollection) {
    Tree::NodeId request = tree_->Member(entry, "request", K::kObject);
    tree_->SetString(tree_->Member(request, "method", K::kString), "PUT");
    url.clear();
    base::StrAppend(&url, type, "/", id);
    tree_->SetString(tree_->Member(request, "url", K::kString), url);
  }
  return resource;
}

}  // namespace isthmus::fhir
