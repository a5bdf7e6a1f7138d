// One answer of `dltrace explain`: what happened, the evidence, and how to fix it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace dltrace::viewer {

enum class Severity { kError, kWarning, kInfo };

struct Fix {
  std::string text;    // one sentence, imperative
  std::string config;  // a ready dltrace override rule (TOML) when one fixes it, else ""
};

struct Finding {
  std::string kind;  // stable id, e.g. "undefined-symbol-local-scope" (see explain.h)
  Severity severity = Severity::kError;
  uint64_t seq = 0;      // the event it is about (0: about the trace as a whole)
  uint64_t repeats = 0;  // further events with the same finding (same error, same caller)
  std::string title;     // one line
  std::vector<std::string> evidence;
  std::vector<Fix> fixes;
  // Machine-readable facts for --json: "symbol", "object", "defined_in", ... (string values).
  std::vector<std::pair<std::string, std::string>> facts;

  void fact(std::string key, std::string value) {
    facts.emplace_back(std::move(key), std::move(value));
  }
};

inline const char* severity_name(Severity s) {
  return s == Severity::kError ? "error" : s == Severity::kWarning ? "warning" : "info";
}

}  // namespace dltrace::viewer
