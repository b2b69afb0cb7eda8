// The FHIR R4 REST API at /fhir over the built-in store (store/fhir_store.h), on the engine's
// HTTP server (JSON only):
//   GET    /fhir/metadata                        CapabilityStatement (what is implemented)
//   POST   /fhir                                 transaction / batch Bundle
//   GET    /fhir/_history                        system history
//   GET    /fhir/{type}, /fhir/{type}/_search    search (fhir_search/search.h); without a
//   POST   /fhir/{type}/_search                  searcher: _id and _count only (else 501)
//   POST   /fhir/{type}                          create; If-None-Exist: conditional create
//   PUT    /fhir/{type}?{search}                 conditional update (0: create, 1: update, >1: 412)
//   DELETE /fhir/{type}?{search}                 conditional delete (0: nothing, 1: delete, >1: 412)
//   PATCH  /fhir/{type}?{search}                 conditional patch (0: 404, 1: patch, >1: 412)
//   GET    /fhir/{type}/_history                 type history
//   GET    /fhir/{type}/{id}                     read (404 unknown, 410 deleted; If-None-Match,
//                                                If-Modified-Since: 304 Not Modified)
//   PUT    /fhir/{type}/{id}                     update / update-as-create (If-Match: 412)
//   PATCH  /fhir/{type}/{id}                     JSON Patch (json_patch.h) or FHIRPath Patch
//                                                (fhirpath_patch.h, a Parameters body as
//                                                application/fhir+json); If-Match; 422 when it
//                                                cannot be applied or the result is not the resource
//   DELETE /fhir/{type}/{id}                     delete (If-Match: 412)
//   GET    /fhir/{type}/{id}/_history[/{vid}]    instance history, vread
//   GET|POST /fhir/Patient/{id}/$everything      the patient compartment (start, end, _since,
//                                                _type, _count)
// Reads and searches take _summary (true, text, data, count) and _elements (shaping.h). History
// takes _since, _count and _cursor (the next link's paging position). Every response is
// application/fhir+json; _format=xml (or an XML body) is 415; `_pretty=true` indents;
// `Prefer: return=minimal|representation|OperationOutcome` on writes. Every error is an
// OperationOutcome with its status; other methods are 405 with `Allow`, or 501 for what is not
// implemented (other operations); a PATCH body of another media type is 415. Conditions are
// searches run strictly (an unknown parameter is 400, never a wider match) on the writer's
// connection, inside the write (store::FhirMatcher). Search honours `Prefer: handling=strict`
// (unknown parameters are 400) and `handling=lenient` (the default: they are ignored and named
// in an OperationOutcome entry with search.mode outcome).
//
// Responses hold PHI: they never go to logs. Access control comes with the security work.
// Thread-safety: handlers run concurrently on the HTTP server's pool; the store is thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "fhir_search/search.h"
#include "net/http_server.h"
#include "store/fhir_store.h"

namespace isthmus::fhir_server {

class FhirApi {
 public:
  // `store` (and `search`, when given) must outlive the API and the server it is registered on.
  // Without a searcher, search answers _id and _count only (501 for other parameters).
  explicit FhirApi(store::FhirStore& store, const fhir_search::Searcher* search = nullptr);

  // Registers every /fhir route on `http` (before Listen).
  void Register(net::HttpServer& http);

  // The handlers (public for tests; path parameters in req.path_params).
  net::HttpResponse Metadata(const net::HttpRequest& req) const;
  net::HttpResponse Transaction(const net::HttpRequest& req) const;
  net::HttpResponse SystemHistory(const net::HttpRequest& req) const;
  net::HttpResponse Search(const net::HttpRequest& req) const;
  // POST /fhir/{type}/_search: the parameters in an application/x-www-form-urlencoded body
  // (and the query string).
  net::HttpResponse SearchPost(const net::HttpRequest& req) const;
  net::HttpResponse Create(const net::HttpRequest& req) const;
  // The same, answered through `respond` once the commit is durable (the route's handler).
  void CreateAsync(const net::HttpRequest& req, net::HttpResponder respond) const;
  net::HttpResponse TypeHistory(const net::HttpRequest& req) const;
  net::HttpResponse Read(const net::HttpRequest& req) const;
  net::HttpResponse Update(const net::HttpRequest& req) const;
  net::HttpResponse Delete(const net::HttpRequest& req) const;
  net::HttpResponse InstanceHistory(const net::HttpRequest& req) const;
  net::HttpResponse VRead(const net::HttpRequest& req) const;
  // PUT /fhir/{type}?search and DELETE /fhir/{type}?search.
  net::HttpResponse ConditionalUpdate(const net::HttpRequest& req) const;
  net::HttpResponse ConditionalDelete(const net::HttpRequest& req) const;
  // PATCH /fhir/{type}/{id} with a JSON Patch or a FHIRPath Patch (fhirpath_patch.h) body.
  net::HttpResponse Patch(const net::HttpRequest& req) const;
  // PATCH /fhir/{type}?search: 0 matches 404, 1 patched, more 412.
  net::HttpResponse ConditionalPatch(const net::HttpRequest& req) const;
  // GET|POST /fhir/{type}/{id}/{$op}: Patient/{id}/$everything (others 501).
  net::HttpResponse InstanceOperation(const net::HttpRequest& req) const;
  // $validate (http://hl7.org/fhir/R4/resource-operation-validate.html): POST /{type}/$validate
  // and POST /{type}/{id}/$validate with the resource (or a Parameters body holding it), GET
  // /{type}/{id}/$validate for the stored version. 200 with an OperationOutcome either way.
  // `mode` (query or Parameters): create, update (the body's id must be the URL's), delete (the
  // content is ignored; deletion is never restricted here), profile (with `profile`). Besides the
  // write-time checks it evaluates the R4 invariants and the profiles in meta.profile and
  // `profile` (fhir_conformance/conformance.h; an unknown `profile` is an error).
  net::HttpResponse Validate(const net::HttpRequest& req) const;
  // POST /{type}/{id} where {id} is an operation name ($validate).
  net::HttpResponse TypeOperation(const net::HttpRequest& req) const;

 private:
  // PUT, DELETE and PATCH /{type}?search: the checks they share (type, _format, search
  // parameters present, search available, If-Match); an error response, or none with `c` set.
  struct Conditional {
    std::string type, query;
    store::FhirWriteOptions o;
  };
  std::optional<net::HttpResponse> ConditionalChecks(const net::HttpRequest& req,
                                                     std::string_view interaction, bool with_body,
                                                     Conditional& c) const;
  net::HttpResponse History(const net::HttpRequest& req, std::string type, std::string id) const;
  net::HttpResponse IdSearch(const net::HttpRequest& req, const std::string& type) const;
  net::HttpResponse ParamSearch(const net::HttpRequest& req, const std::string& type,
                                const fhir_search::Params& params) const;
  net::HttpResponse Everything(const net::HttpRequest& req) const;

  store::FhirStore& store_;
  const fhir_search::Searcher* search_;
  std::string capability_;  // built once: the CapabilityStatement without `date`
  // Conditional interactions: search on the writer's connection (empty without a searcher).
  store::FhirMatcher matcher_;
  store::FhirPatcher patcher_;  // JSON Patch (json_patch.h)
};

}  // namespace isthmus::fhir_server
