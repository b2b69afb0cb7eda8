// Acknowledgements (ACK) for a received message: original mode (AA/AE/AR) and enhanced mode
// (CA/CE/CR commit ACKs), with MSA and ERR segments in the form the message's version expects:
// ERR-1 (ELD, segment^sequence^field^code) up to v2.4, ERR-2..8 (location, code, severity, ...)
// from v2.5.
// Thread-safety: stateless functions.
//
// Example:
//   AckOptions o; o.code = AckCode::kAE; o.issues = findings;
//   std::string ack = BuildAck(msg, o);
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "hl7v2/issue.h"

namespace isthmus::hl7v2 {

class Message;

enum class AckCode { kAA, kAE, kAR, kCA, kCE, kCR };
std::string_view AckCodeText(AckCode c);

struct AckOptions {
  AckCode code = AckCode::kAA;
  std::vector<Issue> issues;      // each becomes an ERR segment
  std::string control_id;         // MSH-10 of the ACK; generated from the clock when empty
  std::string timestamp;          // MSH-7 (YYYYMMDDHHMMSS); the current UTC time when empty
  std::string text;               // MSA-3 text message (v2.x up to 2.6); no PHI
  std::string sending_application = "ISTHMUS";
  std::string sending_facility;
  char terminator = '\r';
};

// ACK for a message that parsed. Swaps sender and receiver, echoes MSH-10 in MSA-2, keeps the
// version, processing id and delimiters, MSH-9 = ACK^<trigger>^ACK.
std::string BuildAck(const Message& original, const AckOptions& opts);

// NAK for input that did not parse: delimiters and header fields are taken from whatever MSH the
// bytes hold (defaults otherwise), MSA-2 echoes the control id if one can be read.
std::string BuildNakForUnparsable(std::string_view bytes, const AckOptions& opts);

}  // namespace isthmus::hl7v2
