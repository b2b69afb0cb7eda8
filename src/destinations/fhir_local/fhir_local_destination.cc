#include "destinations/fhir_local/fhir_local_destination.h"

#include "base/status_macros.h"
#include "base/str.h"
#include "store/queue.h"

namespace isthmus::destinations {

absl::StatusOr<std::unique_ptr<FhirLocalDestination>> FhirLocalDestination::Create(
    FhirLocalDestinationOptions opts) {
  if (opts.name.empty()) return absl::InvalidArgumentError("fhir_local: the destination has no name");
  if (opts.writer == nullptr || opts.fhir == nullptr || opts.clock == nullptr) {
    return absl::InvalidArgumentError("fhir_local: needs the store's writer, FHIR store and clock");
  }
  return std::unique_ptr<FhirLocalDestination>(new FhirLocalDestination(std::move(opts)));
}

absl::Status FhirLocalDestination::ApplyOne(db::Connection& conn, const core::Delivery& d,
                                            int64_t now) {
  // Checked against the R4 StructureDefinitions like every REST write (the store's default): a
  // Bundle the converter gets wrong is dead-lettered with the elements named, never stored
  // half-valid. Every corpus message converts to valid R4 (fhir_validator_corpus_test).
  absl::StatusOr<store::FhirTransactionResult> r = opts_.fhir->ApplyTransaction(conn, d.payload);
  if (!r.ok()) {
    // Store trouble (busy, full) is retried; anything about the Bundle is not.
    if (core::IsRetryable(r.status())) return r.status();
    return absl::InvalidArgumentError(base::StrCat(
        "FHIR Bundle rejected (", store::FhirHttpStatus(r.status()), " ",
        store::FhirIssueCode(r.status()), "): ", std::string(r.status().message())));
  }
  if (r->failed_entries > 0) {
    return absl::InvalidArgumentError(base::StrCat(
        "FHIR batch Bundle: ", r->failed_entries, " entr", r->failed_entries == 1 ? "y" : "ies",
        " failed, nothing kept; first: ", r->first_failure));
  }
  store::QueueItem item;
  item.id = d.queue_id;
  item.destination = opts_.name;
  item.message_id = d.message_id;
  item.attempt = d.attempt - 1;
  item.lease_owner = std::string(d.lease_owner);
  return store::Queue::AckInOp(conn, item, now);
}

absl::Status FhirLocalDestination::Deliver(const core::Delivery& d) {
  std::vector<absl::Status> r = DeliverBatch(std::span<const core::Delivery>(&d, 1));
  return r.empty() ? absl::InternalError("fhir_local: no result") : r.back();
}

std::vector<absl::Status> FhirLocalDestination::DeliverBatch(std::span<const core::Delivery> run) {
  std::vector<absl::Status> results;
  const int64_t now = opts_.clock->NowMicros();
  absl::Status commit = opts_.writer->Run([&](db::Connection& conn) -> absl::Status {
    results.clear();
    for (const core::Delivery& d : run) {
      ISTHMUS_RETURN_IF_ERROR(conn.Exec("SAVEPOINT fhir_delivery"));
      absl::Status s = ApplyOne(conn, d, now);
      if (!s.ok()) ISTHMUS_RETURN_IF_ERROR(conn.Exec("ROLLBACK TO fhir_delivery"));
      ISTHMUS_RETURN_IF_ERROR(conn.Exec("RELEASE fhir_delivery"));
      results.push_back(std::move(s));
      if (!results.back().ok()) break;
    }
    return absl::OkStatus();
  });
  if (!commit.ok()) {
    // Nothing of the run was kept: report the first row as failed, the rest as not attempted.
    return {commit};
  }
  return results;
}

}  // namespace isthmus::destinations
