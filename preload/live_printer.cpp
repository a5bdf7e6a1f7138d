#include "live_printer.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "common/dlopen_flags.h"
#include "common/visible_text.h"
#include "stderr_line.h"

namespace dltrace::preload {
namespace {
const char* call_name(uint16_t call) {
  const char* name = format::call_name(call);
  return name != nullptr ? name : "?";
}

const char* handle_text(uint64_t h, char* buf, size_t size) {
  if (h == 0) return "RTLD_DEFAULT";
  if (h == static_cast<uint64_t>(-1)) return "RTLD_NEXT";
  snprintf(buf, size, "%#llx", static_cast<unsigned long long>(h));
  return buf;
}
}  // namespace

void print_live_event(const format::EventSlot& s, const char* name, const char* version,
                      const char* error) {
  char line[1536];
  char hbuf[32];
  int n = snprintf(line, sizeof(line), "dltrace: [%u] #%llu %s", s.tid,
                   static_cast<unsigned long long>(s.seq), call_name(s.call));
  const auto put = [&](const char* fmt, auto... args) {
    if (n >= 0 && static_cast<size_t>(n) < sizeof(line))
      n += snprintf(line + n, sizeof(line) - n, fmt, args...);
  };
  // A string of the traced program (name, version, dlerror text), escaped: a control byte in a
  // library name must not reach the user's terminal.
  const auto put_visible = [&](const char* text) {
    if (n >= 0 && static_cast<size_t>(n) < sizeof(line))
      n += static_cast<int>(visible::escape_to(text, strlen(text), line + n, sizeof(line) - n));
  };
  const double ms = static_cast<double>(s.duration_ns) / 1e6;
  switch (static_cast<format::CallKind>(s.call)) {
    case format::CallKind::kDlopen:
    case format::CallKind::kDlmopen: {
      if (s.call == static_cast<uint16_t>(format::CallKind::kDlmopen))
        put("(ns %lld,", static_cast<long long>(s.lmid));
      else
        put("(");
      char flags[128];
      flags_to_text(s.effective_flags, flags, sizeof flags);
      if (name) {
        put("\"");
        put_visible(name);
        put("\"");
      } else {
        put("NULL");
      }
      put(", %s) = %#llx", flags, static_cast<unsigned long long>(s.handle));
      if (s.bits & format::kEventNoLoad) put(" (already loaded)");
      break;
    }
    case format::CallKind::kDlsym:
    case format::CallKind::kDlvsym:
      put("(%s, \"", handle_text(s.handle, hbuf, sizeof(hbuf)));
      put_visible(name ? name : "");
      put("\"");
      if (version) {
        put(", \"");
        put_visible(version);
        put("\"");
      }
      put(") = %#llx", static_cast<unsigned long long>(s.address));
      break;
    case format::CallKind::kDlclose:
      put("(%s) = %d", handle_text(s.handle, hbuf, sizeof(hbuf)), s.result);
      if (s.bits & format::kEventUnloaded) put(" (unloaded)");
      break;
  }
  if (error) {
    put(" error: ");
    put_visible(error);
  }
  put(" [%.3f ms]\n", ms);
  if (n < 0) return;
  size_t len = static_cast<size_t>(n) < sizeof(line) ? static_cast<size_t>(n) : sizeof(line) - 1;
  if (line[len - 1] != '\n') line[len - 1] = '\n';
  write_stderr(line, len);
}

}  // namespace dltrace::preload
