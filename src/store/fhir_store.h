// The built-in FHIR R4 resource store: current resources and every version of them, in the same
// database as the journal and the queues (so the fhir_local destination applies a Bundle and
// acks its queue row in one transaction: exactly once).
//
// Layout (schema migration 4, store/schema.cc): `fhir_resource_versions` holds every version
// (seq = global write order, type, id, version_id, last_updated, deleted, method, body JSON);
// `fhir_resources` points at the current version of each (type, id). A deletion is a version
// with deleted = 1 and an empty body (a tombstone): a read afterwards says "deleted" (410).
// Portable SQL (SQLite now, PostgreSQL later).
//
// Writes. Every write goes through the store Writer (store/writer.h) and returns once committed
// (synchronous=FULL: it survives a process crash and a power loss); before the commit nothing
// of it is visible or kept. The server sets `id` (create), `meta.versionId` (1, 2, ...) and
// `meta.lastUpdated` (the commit group's time, millisecond precision); other `meta` members the
// client sent (tags, profiles) are kept. JSON numbers are stored as written (1.50 stays 1.50).
//
// Validation, for now: well-formed JSON, a JSON object with a known R4 resourceType
// (FhirResourceTypes(), generated from the R4 StructureDefinitions), id syntax
// [A-Za-z0-9\-\.]{1,64}, the body's id equal to the URL's on update. No schema/profile
// validation yet (docs/fhir-server.md).
//
// Errors (absl status codes; the REST layer maps them to HTTP):
//   kInvalidArgument     malformed JSON or resource, bad Bundle (400)
//   kNotFound            no such resource or version (404); a deleted resource is NOT an error
//                        for Read: it returns the tombstone (deleted = true, 410 at the REST API)
//   kFailedPrecondition  If-Match version conflict, and only that (412)
//   kFailedPrecondition  also: a conditional create/update/delete or a conditional reference
//                        that matches more than one resource (a reference: or none) (412)
//   kUnimplemented       a Bundle entry asks for something not implemented (search, a
//                        conditional operation or PATCH without a matcher or patcher) (501)
//   others               store failures (kUnavailable: busy, retry)
// A status may carry its HTTP status explicitly (WithHttpStatus: 422 for a failed JSON Patch
// `test`); FhirHttpStatus honours it, and Bundle entries keep it.
//
// Conditional interactions (If-None-Exist, PUT/DELETE Type?query, conditional references
// `Patient?identifier=a|b` in Bundles) need search, a layer above: the caller injects a
// FhirMatcher, which the store calls on the writer's connection inside the write op, so the
// match and the write are one atomic step (two concurrent conditional creates never both
// create). In a Bundle, every condition is evaluated before any entry is applied (against the
// state before the Bundle); a conditional reference whose query is the same as a conditional
// entry's of that type (POST ifNoneExist, PUT Type?query) names that entry's resource.
// Error messages name Bundle entries by index, element paths and resource types, never values
// from the resource (they may end up in dead-letter reasons, which must hold no PHI).
//
// Search indexing hook: FhirStoreOptions::indexer, when set, is called inside the same
// transaction for every version written (FhirIndexer::OnWrite), after the version's rows; a
// failure fails the write (and, in a transaction Bundle, the whole Bundle).
//
// Thread-safety: all methods are safe from any thread. Reads use a small pool of reader
// connections (WAL: they see the last committed state).
//
// Example:
//   ISTHMUS_ASSIGN_OR_RETURN(auto fhir, FhirStore::Open(writer));
//   ISTHMUS_ASSIGN_OR_RETURN(FhirWriteResult w, fhir->Create("Patient", R"({"resourceType":"Patient"})"));
//   ISTHMUS_ASSIGN_OR_RETURN(FhirVersion v, fhir->Read("Patient", w.version.id));
//   // In a writer op of your own (the fhir_local destination):
//   ISTHMUS_ASSIGN_OR_RETURN(FhirTransactionResult r, fhir->ApplyTransaction(conn, bundle_json));
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "base/clock.h"
#include "db/db.h"
#include "store/writer.h"

namespace isthmus::store {

// The FHIR R4 (4.0.1) resource type names, sorted (146 of them).
std::span<const std::string_view> FhirResourceTypes();
bool IsFhirResourceType(std::string_view type);
// [A-Za-z0-9\-\.]{1,64}
bool IsValidFhirId(std::string_view id);
// FHIR instant with millisecond precision, UTC: 2024-01-15T10:30:00.123Z
std::string FhirInstant(int64_t micros);
// The HTTP status for a store error (kInvalidArgument 400, kNotFound 404, kFailedPrecondition
// 412, kUnimplemented 501, kUnavailable/kResourceExhausted 503, else 500) and its reason phrase.
int FhirHttpStatus(const absl::Status& s);
std::string_view HttpReasonPhrase(int status);
// An OperationOutcome with one issue (severity error, code by FhirIssueCode, the message as
// diagnostics), compact JSON.
std::string FhirOperationOutcome(const absl::Status& s);
// `s` with an explicit HTTP status (a payload FhirHttpStatus reads first), e.g. 422.
absl::Status WithHttpStatus(absl::Status s, int http_status);
// FHIR issue-type code for a status: invalid, not-found, conflict, not-supported, transient,
// exception.
std::string_view FhirIssueCode(const absl::Status& s);
// Re-writes FHIR JSON indented (numbers kept as written). kInvalidArgument for malformed JSON.
absl::StatusOr<std::string> FhirJsonPretty(std::string_view json);

// One version of a resource.
struct FhirVersion {
  int64_t seq = 0;  // global write order (history paging)
  std::string type, id;
  int64_t version_id = 0;
  int64_t last_updated_micros = 0;
  bool deleted = false;
  std::string method;  // the interaction that wrote it: POST, PUT or DELETE
  std::string json;    // the resource with id and meta; empty for a deletion
};

struct FhirWriteResult {
  FhirVersion version;    // version_id 0: nothing was written (deleting what is not there)
  bool created = false;   // a new resource (or one that was deleted) rather than a new version
  bool existing = false;  // conditional create matched: nothing written, `version` is the match
};

// Finds the current (not deleted) resources of `type` matching `query`, the search part of a
// conditional URL ("identifier=http%3A%2F%2Fa%7C1&active=true", URL-encoded as in a query
// string), on `conn` (the writer's connection, inside the write op). Returns their ids; two are
// enough (the store tells 0, 1 and many apart). kInvalidArgument for a query it cannot answer
// exactly (unknown parameters must not widen the match).
using FhirMatcher = std::function<absl::StatusOr<std::vector<std::string>>(
    db::Connection& conn, std::string_view type, std::string_view query)>;

// Applies a patch document `patch` of media type `content_type` to `current` (the stored JSON
// of the current version) and returns the patched resource's JSON. kInvalidArgument for a
// malformed patch (400); WithHttpStatus(..., 422) when it cannot be applied.
using FhirPatcher = std::function<absl::StatusOr<std::string>(
    std::string_view current, std::string_view content_type, std::string_view patch)>;

// Optional checks of a write.
struct FhirWriteOptions {
  int64_t if_match_version = 0;  // > 0: the current version must be this one (412 otherwise)
  // Check the resource against the R4 StructureDefinitions (fhir/validator.h) before writing:
  // kInvalidArgument naming the elements (400); a PATCH result that fails is 422.
  bool validate = true;
  // Create: If-None-Exist (the search part of a URL); needs `matcher`.
  std::string if_none_exist;
  const FhirMatcher* matcher = nullptr;  // conditional interactions; must outlive the call
};

struct FhirHistoryQuery {
  std::string type;          // "" = the whole system
  std::string id;            // "" = every resource of `type`
  int64_t since_micros = 0;  // > 0: only versions with last_updated >= this (_since)
  int count = 50;            // page size (_count), clamped to [1, 1000]
  int64_t before_seq = 0;    // paging: only versions written before this seq (0 = from newest)
};

struct FhirHistoryPage {
  std::vector<FhirVersion> versions;  // newest first
  int64_t next_before_seq = 0;        // for the next page; 0 when this is the last
};

struct FhirTransactionOptions {
  bool return_resources = false;  // entry.resource in the response (Prefer: return=representation)
  // Check every entry's resource against the R4 StructureDefinitions (fhir/validator.h): an
  // invalid one fails the transaction (a batch entry alone), naming Bundle.entry[i] and the
  // elements. PATCH entries check their result.
  bool validate = true;
  // Conditional entries (ifNoneExist, PUT/DELETE Type?query) and conditional references;
  // without it they are kUnimplemented.
  const FhirMatcher* matcher = nullptr;
  // PATCH entries (a Binary resource holding the patch, or a Parameters resource, a FHIRPath
  // Patch handed over as application/fhir+json, per FHIR R4 http.html#transaction; the url
  // Type/id or Type?query); without it they are kUnimplemented.
  const FhirPatcher* patcher = nullptr;
};

struct FhirTransactionResult {
  bool batch = false;
  std::string response_json;  // Bundle of type transaction-response / batch-response
  int failed_entries = 0;     // batch only: entries that failed (each has response.outcome)
  std::string first_failure;  // batch only: the first failed entry's error (no PHI)
};

// The search-index hook (see the top comment). Implementations must only use `conn`.
//
// Work that needs no database (parsing the body, evaluating the parameters' expressions) can be
// done before the write, on the caller's thread, so the single writer thread only inserts rows:
// the store calls Prepare with the body it is about to write (everything but meta.lastUpdated,
// which is the writer op's time and holds a placeholder: what Prepare computes must not depend
// on it), then OnWritePrepared with the result inside the write. Create and the POST entries of
// a transaction Bundle without conditions do this; other writes call OnWrite.
class FhirIndexer {
 public:
  // What Prepare computed; opaque to the store.
  class Prepared {
   public:
    virtual ~Prepared() = default;
  };
  virtual ~FhirIndexer() = default;
  // `v` was just written (v.deleted: its index rows should go; v.json: the new current body).
  virtual absl::Status OnWrite(db::Connection& conn, const FhirVersion& v) = 0;
  // Any thread. Null: nothing prepared (OnWrite is called instead).
  virtual std::unique_ptr<Prepared> Prepare(std::string_view /*type*/,
                                            std::string_view /*json*/) const {
    return nullptr;
  }
  // `v` was just written with the body given to Prepare (but the real meta.lastUpdated).
  virtual absl::Status OnWritePrepared(db::Connection& conn, const FhirVersion& v,
                                       const Prepared& /*prepared*/) {
    return OnWrite(conn, v);
  }
  // An op writing many resources (a Bundle) brackets them: between Defer and FlushDeferred the
  // indexer may put some of its writes off (the full-text rows: an FTS5 table flushes its
  // pending rows at every later statement of the transaction, so one per resource is costly);
  // FlushDeferred writes them, in the op. DiscardDeferred (the op failed) drops them.
  virtual void Defer() {}
  virtual absl::Status FlushDeferred(db::Connection& /*conn*/) { return absl::OkStatus(); }
  virtual void DiscardDeferred() {}
};

struct FhirStoreOptions {
  base::Clock* clock = &base::RealClock::Get();
  FhirIndexer* indexer = nullptr;  // must outlive the store
  int max_readers = 8;             // idle reader connections kept
};

class FhirStore {
 public:
  // `writer` must outlive the store; its database has migration 4 applied (Writer::Open does).
  static absl::StatusOr<std::unique_ptr<FhirStore>> Open(Writer& writer,
                                                         FhirStoreOptions opts = {});
  // Waits until every write submitted before has completed, grouped creates included (their
  // writer ops and callbacks refer to the store; Writer::Barrier).
  ~FhirStore();

  // POST /{type}: a new resource with a server-assigned id (any id in the body is ignored).
  // With o.if_none_exist (and o.matcher): no match creates, one match writes nothing and
  // returns it (existing = true), more than one is kFailedPrecondition.
  absl::StatusOr<FhirWriteResult> Create(std::string_view type, std::string_view json,
                                         FhirWriteOptions o = {});
  // Create without waiting: `done` gets the result once the commit is durable (on the writer
  // thread: keep it quick), or at once on the caller's thread when the request is refused
  // before the write. o.matcher must outlive the call to `done`.
  using WriteDone = absl::AnyInvocable<void(absl::StatusOr<FhirWriteResult>) &&>;
  void CreateAsync(std::string_view type, std::string_view json, FhirWriteOptions o,
                   WriteDone done);
  // PUT /{type}/{id}: a new version, or the resource created with that id (created = true).
  absl::StatusOr<FhirWriteResult> Update(std::string_view type, std::string_view id,
                                         std::string_view json, FhirWriteOptions o = {});
  // DELETE /{type}/{id}: a tombstone version. Deleting what does not exist or is already
  // deleted writes nothing (version_id 0) and is not an error.
  absl::StatusOr<FhirWriteResult> Delete(std::string_view type, std::string_view id,
                                         FhirWriteOptions o = {});

  // PUT /{type}?{query} (needs o.matcher): no match creates (with the body's id if it has one,
  // else a new id), one match updates it (the body's id, if any, must be the match's:
  // kInvalidArgument), more than one is kFailedPrecondition. o.if_match_version applies to the
  // matched resource.
  absl::StatusOr<FhirWriteResult> ConditionalUpdate(std::string_view type, std::string_view query,
                                                    std::string_view json, FhirWriteOptions o);
  // DELETE /{type}?{query} (needs o.matcher): no match writes nothing (version_id 0), one match
  // is deleted, more than one is kFailedPrecondition (we do not delete several at once).
  absl::StatusOr<FhirWriteResult> ConditionalDelete(std::string_view type, std::string_view query,
                                                    FhirWriteOptions o);
  // PATCH /{type}/{id}: `patcher` turns the current version into the new one, inside the write
  // op (so If-Match and the patch see the same version). kNotFound when the resource does not
  // exist or is deleted (the message says which); the result must stay a valid resource of the
  // same type and id (kInvalidArgument otherwise).
  absl::StatusOr<FhirWriteResult> Patch(std::string_view type, std::string_view id,
                                        std::string_view content_type, std::string_view patch,
                                        const FhirPatcher& patcher, FhirWriteOptions o = {});
  // PATCH /{type}?{query} (needs o.matcher): no match is kNotFound (404), one match is patched
  // as by Patch (o.if_match_version applies to it), more than one is kFailedPrecondition (412)
  // (FHIR R4 http.html#patch).
  absl::StatusOr<FhirWriteResult> ConditionalPatch(std::string_view type, std::string_view query,
                                                   std::string_view content_type,
                                                   std::string_view patch,
                                                   const FhirPatcher& patcher, FhirWriteOptions o);

  // The current version; a deleted resource returns its tombstone (deleted = true).
  absl::StatusOr<FhirVersion> Read(std::string_view type, std::string_view id) const;
  absl::StatusOr<FhirVersion> VRead(std::string_view type, std::string_view id,
                                    int64_t version_id) const;
  absl::StatusOr<FhirHistoryPage> History(const FhirHistoryQuery& q) const;
  // Current, not deleted resources of `type` with id > after_id, by id (trivial search).
  absl::StatusOr<std::vector<FhirVersion>> List(std::string_view type, std::string_view after_id,
                                                int limit) const;

  // POST / with a transaction or batch Bundle, in a writer op of its own. A transaction that
  // fails returns the failing entry's error and leaves nothing behind.
  absl::StatusOr<FhirTransactionResult> Transaction(std::string_view bundle_json,
                                                    FhirTransactionOptions o = {});
  // A piece of a writer op (runs on the writer thread, inside the caller's transaction):
  // applies a transaction Bundle (every entry or, with an error, none: the caller's op must
  // fail so its SAVEPOINT rolls back) or a batch Bundle (each entry in its own SAVEPOINT).
  // Transaction: POST entries get new ids and their urn:uuid/urn:oid fullUrls are rewritten in
  // every `reference` of the Bundle; conditions (ifNoneExist, PUT/DELETE Type?query) and
  // conditional references are resolved first (o.matcher); entries are applied DELETE, POST,
  // PUT and PATCH (o.patcher), GET, and answered in request order. A GET entry with
  // ifNoneMatch (W/"n" or *) or ifModifiedSince (an instant) that holds answers 304 Not
  // Modified without the resource.
  absl::StatusOr<FhirTransactionResult> ApplyTransaction(db::Connection& conn,
                                                         std::string_view bundle_json,
                                                         FhirTransactionOptions o = {});

  base::Clock& clock() const { return *opts_.clock; }

 private:
  class ReaderLease;
  struct ParsedBundle;
  FhirStore(Writer& writer, FhirStoreOptions opts);
  // ApplyTransaction in two steps: what needs no database (any thread), then the writes.
  absl::Status ParseBundle(std::string_view bundle_json, const FhirTransactionOptions& o,
                           ParsedBundle& p);
  absl::Status AssignIds(ParsedBundle& p);
  absl::Status ApplyParsed(db::Connection& conn, ParsedBundle& p, const FhirTransactionOptions& o);
  absl::Status ApplyParsedEntries(db::Connection& conn, ParsedBundle& p,
                                  const FhirTransactionOptions& o);
  // The transaction-response / batch-response of an applied Bundle (after the commit).
  FhirTransactionResult BundleResponse(ParsedBundle& p, const FhirTransactionOptions& o);
  absl::StatusOr<std::unique_ptr<db::Connection>> AcquireReader() const;
  void ReleaseReader(std::unique_ptr<db::Connection> conn) const;
  std::string NewId();
  int64_t NowMillisAsMicros() const;
  // Plain creates (no If-None-Exist) go to the writer in groups, one group at a time: those
  // prepared while a group is with the writer form the next one, submitted when that group is
  // answered (AddToCreateGroup in fhir_store.cc). One op per group, in which the indexer defers
  // its full-text rows to the group's end.
  struct PendingCreate;
  struct CreateGroup;
  void AddToCreateGroup(PendingCreate c);
  void SubmitCreateGroup(std::shared_ptr<CreateGroup> group);

  Writer& writer_;
  const FhirStoreOptions opts_;
  std::mutex id_mu_;
  std::mt19937_64 rng_;  // guarded by id_mu_
  mutable std::mutex readers_mu_;
  mutable std::vector<std::unique_ptr<db::Connection>> readers_;  // guarded by readers_mu_
  std::mutex creates_mu_;
  std::shared_ptr<CreateGroup> creates_;  // the next group (creates_mu_)
  bool creates_in_flight_ = false;        // a group is with the writer (creates_mu_)

  friend struct FhirOp;
};

}  // namespace isthmus::store
