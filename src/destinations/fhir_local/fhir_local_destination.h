// The fhir_local destination: delivers a channel's payload (a transaction or batch Bundle, from
// the `fhir` transformer) into the built-in FHIR store, exactly once.
//
// Exactly once: the Bundle is applied (store::FhirStore::ApplyTransaction) and the queue row is
// acked (store::Queue::AckInOp, which checks the dispatcher's lease) in ONE writer op, hence one
// commit: a crash leaves either both or neither, and a dispatcher that lost its lease (another
// node claimed the row) rolls its apply back. The destination SettlesInStore(), so the
// dispatcher does not ack again.
//
// A message's Bundle is applied whole or not at all, batch Bundles included: a batch whose
// entries do not all succeed keeps nothing and fails like a transaction (so a reprocess applies
// the message whole). Failures: a malformed or invalid Bundle, an unknown type, a version
// conflict or an unsupported entry (conditional operations) are not retryable: the row is
// dead-lettered with the reason (entry index, element path, status code; never resource
// values). A busy store is retried.
//
// A run of rows (DeliverBatch) is one writer op: each row in its own SAVEPOINT, in order, up to
// the first failure; the rows before it commit with their acks.
//
// Thread-safety: Deliver/DeliverBatch from any thread (the writer serializes).
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/clock.h"
#include "core/destination.h"
#include "store/fhir_store.h"
#include "store/writer.h"

namespace isthmus::destinations {

struct FhirLocalDestinationOptions {
  std::string name;
  store::Writer* writer = nullptr;    // the store's writer; must outlive the destination
  store::FhirStore* fhir = nullptr;   // over the same writer; must outlive the destination
  base::Clock* clock = &base::RealClock::Get();  // the queue's clock (event times)
};

class FhirLocalDestination final : public core::Destination {
 public:
  static absl::StatusOr<std::unique_ptr<FhirLocalDestination>> Create(
      FhirLocalDestinationOptions opts);

  std::string_view name() const override { return opts_.name; }
  absl::Status Deliver(const core::Delivery& d) override;
  bool SupportsBatch() const override { return true; }
  std::vector<absl::Status> DeliverBatch(std::span<const core::Delivery> run) override;
  bool SettlesInStore() const override { return true; }

 private:
  explicit FhirLocalDestination(FhirLocalDestinationOptions opts) : opts_(std::move(opts)) {}
  // Applies one delivery's Bundle and acks its row, inside the caller's op.
  absl::Status ApplyOne(db::Connection& conn, const core::Delivery& d, int64_t now);

  const FhirLocalDestinationOptions opts_;
};

}  // namespace isthmus::destinations
