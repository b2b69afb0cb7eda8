// Load client for the FHIR R4 server of `isthmus serve` (bench/fhir/run.sh, docs/PERFORMANCE.md
// "FHIR server"). Plain POSIX sockets, HTTP/1.1 keep-alive, one blocking connection per thread:
// every connection has exactly one request in flight, like a FHIR client library does.
//
// Modes:
//   create        POST /fhir/Patient, one generated Patient per request (distinct identifiers)
//   transaction   POST /fhir, transaction Bundles of --bundle entries: Patients and, for each,
//                 --obs-per-patient Observations whose subject is the Patient's urn:uuid fullUrl
//   read          GET /fhir/{type}/{id} of random known resources (--ids)
//   search-identifier  GET /fhir/Patient?identifier=SYSTEM|VALUE of random known Patients (--ids);
//                 each answer must hold exactly one match (else counted as a mismatch)
//   search-code-subject GET /fhir/Observation?code=http://loinc.org|CODE&subject=Patient/ID of
//                 random known Observations (--ids); exactly one match expected
//
// create and transaction write what they created to --ids-out (appending), one line each:
//   P <patient id> <identifier value>
//   O <observation id> <patient id> <loinc code>
// which read and search modes take as --ids.
//
// Output: progress lines on stderr (--progress), and one JSON line on stdout:
//   {"mode":..., "conns":..., "requests":..., "resources":..., "seconds":...,
//    "requests_per_s":..., "resources_per_s":..., "p50_ms":..., "p99_ms":..., "max_ms":...,
//    "errors":..., "mismatches":..., "status":{"201":...}}
// Latency is per HTTP request (a whole Bundle for transaction), measured from before the write
// of the request to the last byte of the response.
//
// Build: c++ -O2 -std=c++20 -pthread -o fhir_load bench/fhir/fhir_load.cc
// Example:
//   fhir_load --port 8080 --mode transaction --conns 2 --requests 200 --tag L --ids-out ids.txt
//   fhir_load --port 8080 --mode read --conns 8 --seconds 20 --ids ids.txt
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kIdentifierSystem = "urn:oid:1.2.36.146.595.217.0.1";

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string mode;
  int conns = 4;
  long requests = 0;      // total requests (0: until --seconds)
  double seconds = 0;     // duration (0: until --requests)
  long warmup = 0;        // requests per connection not counted (read/search)
  int bundle = 500;       // entries per transaction Bundle
  int obs_per_patient = 4;
  std::string tag = "B";  // identifier values are TAG-<conn>-<n>: distinct between runs
  std::string ids;        // known resources (read/search)
  std::string ids_out;    // created resources (create/transaction)
  double progress = 0;    // seconds between progress lines (0: none)
  uint64_t seed = 1;
};

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "fhir_load: %s\n", msg.c_str());
  std::exit(2);
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Die("missing value after " + a);
      return argv[++i];
    };
    if (a == "--host") o.host = next();
    else if (a == "--port") o.port = std::atoi(next().c_str());
    else if (a == "--mode") o.mode = next();
    else if (a == "--conns") o.conns = std::atoi(next().c_str());
    else if (a == "--requests") o.requests = std::atol(next().c_str());
    else if (a == "--seconds") o.seconds = std::atof(next().c_str());
    else if (a == "--warmup") o.warmup = std::atol(next().c_str());
    else if (a == "--bundle") o.bundle = std::atoi(next().c_str());
    else if (a == "--obs-per-patient") o.obs_per_patient = std::atoi(next().c_str());
    else if (a == "--tag") o.tag = next();
    else if (a == "--ids") o.ids = next();
    else if (a == "--ids-out") o.ids_out = next();
    else if (a == "--progress") o.progress = std::atof(next().c_str());
    else if (a == "--seed") o.seed = std::strtoull(next().c_str(), nullptr, 10);
    else Die("unknown argument " + a + " (see the top of bench/fhir/fhir_load.cc)");
  }
  if (o.port <= 0) Die("--port is required");
  if (o.conns <= 0) Die("--conns must be positive");
  if (o.requests <= 0 && o.seconds <= 0) Die("give --requests or --seconds");
  if (o.bundle < o.obs_per_patient + 1) Die("--bundle must hold a Patient and its Observations");
  return o;
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 over one blocking socket, keep-alive, reconnecting when the server closed it.
class HttpConn {
 public:
  HttpConn(const std::string& host, int port) : host_(host), port_(port) {}
  ~HttpConn() { Close(); }

  struct Response {
    int status = 0;
    std::string body;
    std::string location;
  };

  // false on a transport error (the connection is closed; the next call reconnects).
  bool Do(const std::string& method, const std::string& target, const std::string& body,
          Response* out) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      bool fresh = fd_ < 0;
      if (fd_ < 0 && !Connect()) return false;
      req_.clear();
      req_ += method;
      req_ += ' ';
      req_ += target;
      req_ += " HTTP/1.1\r\nHost: ";
      req_ += host_;
      req_ += "\r\nAccept: application/fhir+json\r\nConnection: keep-alive\r\n";
      if (!body.empty() || method == "POST" || method == "PUT") {
        req_ += "Content-Type: application/fhir+json\r\nContent-Length: ";
        req_ += std::to_string(body.size());
        req_ += "\r\n";
      }
      req_ += "\r\n";
      bool ok = SendAll(req_) && SendAll(body) && ReadResponse(out);
      if (ok) return true;
      Close();
      // A keep-alive connection the server had closed (idle timeout): retry once, fresh.
      if (fresh) return false;
    }
    return false;
  }

 private:
  bool Connect() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) return false;
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    if (::inet_pton(AF_INET, host_.c_str(), &addr.sin_addr) != 1 ||
        ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      Close();
      return false;
    }
    buf_.clear();
    return true;
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buf_.clear();
  }
  bool SendAll(std::string_view s) {
    while (!s.empty()) {
      ssize_t n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      s.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  bool Fill() {
    char tmp[65536];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  static std::string HeaderValue(std::string_view head, std::string_view lower_name) {
    size_t pos = 0;
    while (pos < head.size()) {
      size_t eol = head.find("\r\n", pos);
      if (eol == std::string_view::npos) eol = head.size();
      std::string_view line = head.substr(pos, eol - pos);
      size_t colon = line.find(':');
      if (colon != std::string_view::npos && colon == lower_name.size()) {
        bool eq = true;
        for (size_t i = 0; i < colon && eq; ++i) eq = std::tolower(line[i]) == lower_name[i];
        if (eq) {
          std::string_view v = line.substr(colon + 1);
          while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
          return std::string(v);
        }
      }
      pos = eol + 2;
    }
    return "";
  }
  bool ReadResponse(Response* out) {
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return false;
    }
    std::string_view head(buf_.data(), end);
    if (head.size() < 12 || head.substr(0, 5) != "HTTP/") return false;
    out->status = std::atoi(std::string(head.substr(9, 3)).c_str());
    std::string len = HeaderValue(head, "content-length");
    if (len.empty()) return false;  // the server always sends Content-Length
    out->location = HeaderValue(head, "location");
    bool close = HeaderValue(head, "connection") == "close";
    size_t need = end + 4 + std::strtoull(len.c_str(), nullptr, 10);
    while (buf_.size() < need) {
      if (!Fill()) return false;
    }
    out->body.assign(buf_, end + 4, need - end - 4);
    buf_.erase(0, need);
    if (close) Close();
    return true;
  }

  std::string host_;
  int port_;
  int fd_ = -1;
  std::string buf_;
  std::string req_;
};

// ---------------------------------------------------------------------------------------------
// Generated content (deterministic per connection and request number).
const char* const kFamily[] = {"Smith", "Müller", "García", "Nguyen", "Okafor", "Kowalski",
                               "Rossi", "Dubois", "Tanaka", "Johansson", "O'Brien", "Zhou"};
const char* const kGiven[] = {"Anna", "Ben", "Chloé", "Dmitri", "Eva", "Farid", "Greta",
                              "Hugo", "Ines", "Jonas", "Kai", "Lena", "Zoë"};
const char* const kCity[] = {"Springfield", "Rivertown", "Lakeside", "Hillview", "Portsmouth"};
struct Loinc {
  const char* code;
  const char* display;
  const char* unit;
  double base;
};
const Loinc kLoinc[] = {
    {"8867-4", "Heart rate", "/min", 60},       {"8480-6", "Systolic blood pressure", "mm[Hg]", 110},
    {"8462-4", "Diastolic blood pressure", "mm[Hg]", 70},
    {"8310-5", "Body temperature", "Cel", 36.5}, {"9279-1", "Respiratory rate", "/min", 12},
    {"29463-7", "Body weight", "kg", 60},       {"8302-2", "Body height", "cm", 160},
    {"2708-6", "Oxygen saturation in Arterial blood", "%", 95},
    {"2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", 80},
    {"2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 150},
    {"718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 12},
    {"6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 4},
};
constexpr int kLoincCount = sizeof(kLoinc) / sizeof(kLoinc[0]);

void AppendPatient(std::string& s, const std::string& ident, uint64_t n, const char* fullurl) {
  char date[16];
  std::snprintf(date, sizeof date, "%04d-%02d-%02d", 1930 + static_cast<int>(n % 90),
                1 + static_cast<int>(n / 90 % 12), 1 + static_cast<int>(n / 1080 % 28));
  char phone[24];
  std::snprintf(phone, sizeof phone, "+1-555-%07" PRIu64, n % 10000000);
  if (fullurl != nullptr) {
    s += R"({"fullUrl":")";
    s += fullurl;
    s += R"(","resource":)";
  }
  s += R"({"resourceType":"Patient","identifier":[{"use":"usual","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]},"system":")";
  s += kIdentifierSystem;
  s += R"(","value":")";
  s += ident;
  s += R"("}],"active":true,"name":[{"use":"official","family":")";
  s += kFamily[n % 12];
  s += R"(","given":[")";
  s += kGiven[n % 13];
  s += R"("]}],"telecom":[{"system":"phone","value":")";
  s += phone;
  s += R"(","use":"home"}],"gender":")";
  s += (n % 2) ? "female" : "male";
  s += R"(","birthDate":")";
  s += date;
  s += R"(","address":[{"use":"home","line":[")";
  s += std::to_string(1 + n % 999);
  s += R"( Main Street"],"city":")";
  s += kCity[n % 5];
  s += R"(","postalCode":")";
  s += std::to_string(10000 + n % 89999);
  s += R"(","country":"US"}]})";
  if (fullurl != nullptr) s += R"(,"request":{"method":"POST","url":"Patient"}})";
}

void AppendObservation(std::string& s, const char* patient_ref, const Loinc& l, uint64_t n,
                       const char* fullurl) {
  char value[32];
  std::snprintf(value, sizeof value, "%.1f", l.base + static_cast<double>(n % 400) / 10.0);
  char when[40];
  std::snprintf(when, sizeof when, "2024-%02d-%02dT%02d:%02d:00Z", 1 + static_cast<int>(n % 12),
                1 + static_cast<int>(n / 12 % 28), static_cast<int>(n % 24),
                static_cast<int>(n % 60));
  s += R"({"fullUrl":")";
  s += fullurl;
  s += R"(","resource":{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":")";
  s += l.code;
  s += R"(","display":")";
  s += l.display;
  s += R"("}]},"subject":{"reference":")";
  s += patient_ref;
  s += R"("},"effectiveDateTime":")";
  s += when;
  s += R"(","valueQuantity":{"value":)";
  s += value;
  s += R"(,"unit":")";
  s += l.unit;
  s += R"(","system":"http://unitsofmeasure.org","code":")";
  s += l.unit;
  s += R"("}},"request":{"method":"POST","url":"Observation"}})";
}

// The id out of a Location (…/Type/id/_history/n) or a transaction response's "location".
std::string IdFromLocation(std::string_view loc) {
  size_t h = loc.find("/_history");
  if (h != std::string_view::npos) loc = loc.substr(0, h);
  size_t slash = loc.rfind('/');
  return std::string(slash == std::string_view::npos ? loc : loc.substr(slash + 1));
}

// Every "location":"…" of a transaction-response Bundle, in entry order.
std::vector<std::string> ResponseLocations(std::string_view body) {
  std::vector<std::string> out;
  constexpr std::string_view kKey = "\"location\":\"";
  size_t pos = 0;
  while ((pos = body.find(kKey, pos)) != std::string_view::npos) {
    pos += kKey.size();
    size_t end = body.find('"', pos);
    if (end == std::string_view::npos) break;
    out.push_back(IdFromLocation(body.substr(pos, end - pos)));
    pos = end;
  }
  return out;
}

// Entries of a searchset Bundle (search.mode match).
int MatchCount(std::string_view body) {
  int n = 0;
  size_t pos = 0;
  constexpr std::string_view kKey = "\"mode\":\"match\"";
  while ((pos = body.find(kKey, pos)) != std::string_view::npos) {
    ++n;
    pos += kKey.size();
  }
  return n;
}

std::string UrlEncode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '/' || c == ':') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
struct Known {
  struct Patient {
    std::string id, ident;
  };
  struct Obs {
    std::string id, patient, code;
  };
  std::vector<Patient> patients;
  std::vector<Obs> observations;
};

Known LoadIds(const std::string& path) {
  Known k;
  std::ifstream in(path);
  if (!in) Die("cannot read --ids " + path);
  std::string kind, a, b, c;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    char t = line[0];
    std::vector<std::string> f;
    size_t pos = 2;
    while (pos <= line.size()) {
      size_t sp = line.find(' ', pos);
      if (sp == std::string::npos) sp = line.size();
      f.push_back(line.substr(pos, sp - pos));
      pos = sp + 1;
    }
    if (t == 'P' && f.size() >= 2) k.patients.push_back({f[0], f[1]});
    if (t == 'O' && f.size() >= 3) k.observations.push_back({f[0], f[1], f[2]});
  }
  return k;
}

struct ThreadResult {
  std::vector<uint32_t> lat_us;
  long requests = 0, resources = 0, errors = 0, mismatches = 0;
  std::map<int, long> status;
  std::string ids_out;  // lines for --ids-out
};

struct Shared {
  const Options* o;
  const Known* known;
  Clock::time_point start, deadline;
  std::atomic<long> issued{0};
  std::atomic<long> done_requests{0};
  std::atomic<long> done_resources{0};
  std::atomic<long> errors{0};
  std::atomic<bool> stop{false};
  std::mutex out_mu;
  std::ofstream ids_out;
};

// One connection: issues requests until the shared budget (count or time) is used up.
void Worker(Shared& sh, int conn, ThreadResult& r) {
  const Options& o = *sh.o;
  HttpConn http(o.host, o.port);
  HttpConn::Response resp;
  std::mt19937_64 rng(o.seed * 1000003 + static_cast<uint64_t>(conn));
  std::string body;
  long local = 0;
  const bool reading = o.mode == "read" || o.mode.rfind("search", 0) == 0;
  for (long w = 0; reading && w < o.warmup; ++w) {  // not timed, not counted
    const auto& p = sh.known->patients[rng() % sh.known->patients.size()];
    http.Do("GET", "/fhir/Patient/" + p.id, "", &resp);
  }
  const int per_bundle_patients = o.bundle / (1 + o.obs_per_patient);
  for (;;) {
    if (sh.stop.load(std::memory_order_relaxed)) break;
    if (o.requests > 0 && sh.issued.fetch_add(1) >= o.requests) break;
    if (o.seconds > 0 && Clock::now() >= sh.deadline) break;
    std::string method = "GET", target;
    body.clear();
    int resources = 1;
    int expect_matches = -1;
    std::vector<std::string> tx_idents;
    std::vector<std::pair<std::string, int>> tx_obs;  // (patient entry index, loinc index)
    uint64_t n = static_cast<uint64_t>(local);
    std::string ident;
    if (o.mode == "create") {
      method = "POST";
      target = "/fhir/Patient";
      ident = o.tag + "-" + std::to_string(conn) + "-" + std::to_string(local);
      AppendPatient(body, ident, n * 7919 + static_cast<uint64_t>(conn), nullptr);
    } else if (o.mode == "transaction") {
      method = "POST";
      target = "/fhir";
      body = R"({"resourceType":"Bundle","type":"transaction","entry":[)";
      resources = 0;
      char urn[64];
      for (int p = 0; p < per_bundle_patients; ++p) {
        uint64_t pn = n * static_cast<uint64_t>(per_bundle_patients) + static_cast<uint64_t>(p);
        std::string pid = o.tag + "-" + std::to_string(conn) + "-" + std::to_string(pn);
        std::snprintf(urn, sizeof urn, "urn:uuid:00000000-0000-4000-8000-%06d%06d", conn % 1000000,
                      p);
        if (resources > 0) body += ',';
        AppendPatient(body, pid, pn * 7919 + static_cast<uint64_t>(conn), urn);
        tx_idents.push_back(pid);
        std::string patient_urn = urn;
        ++resources;
        for (int k = 0; k < o.obs_per_patient; ++k) {
          int li = static_cast<int>((pn + static_cast<uint64_t>(k) * 5) % kLoincCount);
          std::snprintf(urn, sizeof urn, "urn:uuid:00000000-0000-4000-9000-%06d%06d",
                        conn % 1000000, p * 16 + k);
          body += ',';
          AppendObservation(body, patient_urn.c_str(), kLoinc[li], pn * 31 + static_cast<uint64_t>(k),
                            urn);
          tx_obs.emplace_back(std::to_string(resources - 1), li);
          ++resources;
        }
      }
      body += "]}";
    } else if (o.mode == "read") {
      size_t np = sh.known->patients.size(), no = sh.known->observations.size();
      size_t i = rng() % (np + no);
      target = i < np ? "/fhir/Patient/" + sh.known->patients[i].id
                      : "/fhir/Observation/" + sh.known->observations[i - np].id;
    } else if (o.mode == "search-identifier") {
      const auto& p = sh.known->patients[rng() % sh.known->patients.size()];
      target = "/fhir/Patient?identifier=" + UrlEncode(std::string(kIdentifierSystem) + "|" + p.ident);
      expect_matches = 1;
    } else if (o.mode == "search-code-subject") {
      const auto& ob = sh.known->observations[rng() % sh.known->observations.size()];
      target = "/fhir/Observation?code=" + UrlEncode("http://loinc.org|" + ob.code) +
               "&subject=Patient/" + ob.patient;
      expect_matches = 1;
    } else {
      Die("unknown --mode " + o.mode);
    }
    auto t0 = Clock::now();
    bool ok = http.Do(method, target, body, &resp);
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
    ++local;
    if (!ok) {
      ++r.errors;
      sh.errors.fetch_add(1);
      if (r.errors > 100 && r.requests == 0) break;  // the server is not there
      continue;
    }
    r.status[resp.status]++;
    bool good = resp.status / 100 == 2;
    if (!good) {
      ++r.errors;
      sh.errors.fetch_add(1);
      if (r.errors <= 3) {
        std::fprintf(stderr, "fhir_load: %s %s -> %d %.300s\n", method.c_str(),
                     target.substr(0, 120).c_str(), resp.status, resp.body.c_str());
      }
      continue;
    }
    r.lat_us.push_back(static_cast<uint32_t>(std::min<int64_t>(us, UINT32_MAX)));
    ++r.requests;
    r.resources += resources;
    sh.done_requests.fetch_add(1, std::memory_order_relaxed);
    sh.done_resources.fetch_add(resources, std::memory_order_relaxed);
    if (expect_matches >= 0 && MatchCount(resp.body) != expect_matches) {
      if (++r.mismatches <= 3) {
        std::fprintf(stderr, "fhir_load: %s: %d matches, expected %d\n", target.c_str(),
                     MatchCount(resp.body), expect_matches);
      }
    }
    if (!o.ids_out.empty() && o.mode == "create") {
      r.ids_out += "P " + IdFromLocation(resp.location) + " " + ident + "\n";
    } else if (!o.ids_out.empty() && o.mode == "transaction") {
      std::vector<std::string> ids = ResponseLocations(resp.body);
      if (ids.size() != static_cast<size_t>(resources)) {
        ++r.mismatches;
      } else {
        // Entries are answered in request order: P, its Observations, the next P, ...
        size_t e = 0;
        size_t o_i = 0;
        for (size_t p = 0; p < tx_idents.size(); ++p) {
          const std::string& pid = ids[e++];
          r.ids_out += "P " + pid + " " + tx_idents[p] + "\n";
          for (int k = 0; k < sh.o->obs_per_patient; ++k, ++o_i) {
            r.ids_out += "O " + ids[e++] + " " + pid + " " + kLoinc[tx_obs[o_i].second].code + "\n";
          }
        }
      }
    }
    if (r.ids_out.size() > (1u << 20)) {
      std::lock_guard<std::mutex> lock(sh.out_mu);
      sh.ids_out << r.ids_out;
      r.ids_out.clear();
    }
  }
  if (!r.ids_out.empty()) {
    std::lock_guard<std::mutex> lock(sh.out_mu);
    sh.ids_out << r.ids_out;
    r.ids_out.clear();
  }
}

double Percentile(const std::vector<uint32_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t i = static_cast<size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(i, sorted.size() - 1)] / 1000.0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = ParseArgs(argc, argv);
  Known known;
  if (o.mode == "read" || o.mode.rfind("search", 0) == 0) {
    if (o.ids.empty()) Die("--mode " + o.mode + " needs --ids");
    known = LoadIds(o.ids);
    if (known.patients.empty()) Die("no Patients in " + o.ids);
    if (o.mode == "search-code-subject" && known.observations.empty()) {
      Die("no Observations in " + o.ids);
    }
  }
  Shared sh;
  sh.o = &o;
  sh.known = &known;
  if (!o.ids_out.empty()) {
    sh.ids_out.open(o.ids_out, std::ios::app);
    if (!sh.ids_out) Die("cannot write --ids-out " + o.ids_out);
  }
  std::vector<ThreadResult> results(static_cast<size_t>(o.conns));
  std::vector<std::thread> threads;
  sh.start = Clock::now();
  sh.deadline = sh.start + std::chrono::microseconds(static_cast<int64_t>(o.seconds * 1e6));
  for (int c = 0; c < o.conns; ++c) {
    threads.emplace_back(Worker, std::ref(sh), c, std::ref(results[static_cast<size_t>(c)]));
  }
  std::atomic<bool> finished{false};
  std::thread progress;
  if (o.progress > 0) {
    progress = std::thread([&] {
      long last = 0;
      auto last_t = Clock::now();
      while (!finished.load()) {
        for (int i = 0; i < 100 && !finished.load(); ++i) {
          std::this_thread::sleep_for(std::chrono::duration<double>(o.progress / 100));
        }
        if (finished.load()) break;
        auto now = Clock::now();
        long res = sh.done_resources.load();
        double dt = std::chrono::duration<double>(now - last_t).count();
        double total = std::chrono::duration<double>(now - sh.start).count();
        std::fprintf(stderr, "fhir_load: %s %.0f s: %ld resources (%.0f/s now), %ld errors\n",
                     o.mode.c_str(), total, res, (res - last) / dt, sh.errors.load());
        last = res;
        last_t = now;
      }
    });
  }
  for (auto& t : threads) t.join();
  double seconds = std::chrono::duration<double>(Clock::now() - sh.start).count();
  finished = true;
  if (progress.joinable()) progress.join();

  std::vector<uint32_t> lat;
  long requests = 0, resources = 0, errors = 0, mismatches = 0;
  std::map<int, long> status;
  for (auto& r : results) {
    lat.insert(lat.end(), r.lat_us.begin(), r.lat_us.end());
    requests += r.requests;
    resources += r.resources;
    errors += r.errors;
    mismatches += r.mismatches;
    for (auto& [k, v] : r.status) status[k] += v;
  }
  std::sort(lat.begin(), lat.end());
  std::string st;
  for (auto& [k, v] : status) {
    if (!st.empty()) st += ",";
    st += "\"" + std::to_string(k) + "\":" + std::to_string(v);
  }
  std::printf(
      "{\"mode\":\"%s\",\"conns\":%d,\"requests\":%ld,\"resources\":%ld,\"seconds\":%.3f,"
      "\"requests_per_s\":%.1f,\"resources_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
      "\"max_ms\":%.3f,\"errors\":%ld,\"mismatches\":%ld,\"status\":{%s}}\n",
      o.mode.c_str(), o.conns, requests, resources, seconds, requests / seconds,
      resources / seconds, Percentile(lat, 0.50), Percentile(lat, 0.99),
      lat.empty() ? 0.0 : lat.back() / 1000.0, errors, mismatches, st.c_str());
  return errors > 0 && requests == 0 ? 1 : 0;
}
