// `dltrace show`'s text: the header of a process and its event log, one line per call (nested
// calls indented, optionally with the symbolized native and Python stacks under each), streamed
// to a FILE as the events come.
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <string>

#include "analysis/symbolizer.h"
#include "dltrace/format.h"
#include "model/call_nesting.h"
#include "model/trace_model.h"
#include "render/terminal_style.h"
#include "render/visible_text.h"

namespace dltrace::viewer {

// Nested calls are indented two spaces per level up to this depth; deeper ones say their depth.
inline constexpr int kMaxIndentDepth = 32;

class EventLogText {
 public:
  // `nesting` outlives the printer: `show --follow` makes a printer per read of the trace.
  EventLogText(const TraceModel& model, bool stacks, bool color, CallNesting& nesting,
               std::FILE* out);

  // `following`: the trace is still being written, so "no end yet" is the normal case.
  void header(bool following = false);
  void event(const format::EventSlot& e);
  // The closing line of --follow.
  void footer();
  // Writes what is buffered to the FILE.
  void flush();

 private:
  template <typename... Args>
  void out(fmt::format_string<shown_t<Args>...> f, Args&&... args) {
    append_visible_format(buf_, f, std::forward<Args>(args)...);
    if (buf_.size() > (1u << 20)) flush();
  }

  std::string end_text() const;
  std::string quoted(uint32_t id) const;
  std::string object_label(uint32_t id) const;
  std::string handle_text(const format::EventSlot& e) const;
  void open_event(const format::EventSlot& e);
  void sym_event(const format::EventSlot& e);
  void close_event(const format::EventSlot& e);
  void stack(const format::EventSlot& e, int depth);

  std::FILE* out_;
  const TraceModel& model_;
  const TraceReader& reader_;
  bool stacks_;
  TerminalStyle style_;
  CallNesting& nesting_;
  Symbolizer symbolizer_;
  fmt::memory_buffer buf_;
};

}  // namespace dltrace::viewer
