#include "render/event_log_text.h"

#include <algorithm>
#include <string>
#include <string_view>

#include "common/dlopen_flags.h"
#include "model/in_flight.h"

namespace dltrace::viewer {

EventLogText::EventLogText(const TraceModel& model, bool stacks, bool color, CallNesting& nesting,
                           std::FILE* out)
    : out_(out),
      model_(model),
      reader_(model.reader()),
      stacks_(stacks),
      style_{color},
      nesting_(nesting),
      symbolizer_(reader_.process().exe) {}

void EventLogText::header(bool following) {
  const ProcessInfo& p = reader_.process();
  out("process {} (parent {}){}: {}\n", p.pid, p.ppid, outer_pids_text(p),
      p.exe.empty() ? "?" : p.exe);
  std::string argv;
  for (const auto& a : p.argv) {
    if (!argv.empty()) argv += ' ';
    argv += a;
  }
  out("  argv: {}\n", argv);
  if (following && p.end == format::EndKind::kRunning) {
    out("  end: still running; following the trace (Ctrl-C to stop)\n");
  } else {
    out("  end: {}\n", end_text());
  }
  for (const format::EventSlot& e : calls_in_flight(reader_))
    out("  {}{}{}\n", style_.red(), in_flight_text(model_, e), style_.reset());
  if (!p.config.empty()) out("  config: {}\n", p.config);
  if (p.recorder_flags & format::kRecorderCallerEmulated) {
    out("  note: callers were emulated (no return-address trampoline); the caller object of "
        "a call may be approximate\n");
  }
  out("  events: {} recorded, {} readable\n", reader_.last_seq(),
      reader_.last_seq() - std::min(reader_.last_seq(), reader_.recovery().dropped_events));
  for (const auto& s : recovery_sentences(reader_)) out("  recovery: {}\n", s);
  out("{}{:>10}  {:>7}  {}{}\n", style_.dim(), "time(ms)", "tid", "call", style_.reset());
}

std::string EventLogText::end_text() const {
  const ProcessInfo& p = reader_.process();
  return viewer::end_text(p,
                          fmt::format("after {:.3f} ms", model_.relative_ms(p.end_monotonic_ns)));
}

void EventLogText::footer() {
  out("{}-- process {} {}{}\n", style_.dim(), reader_.process().pid, end_text(), style_.reset());
  for (const format::EventSlot& e : calls_in_flight(reader_))
    out("{}-- {}{}\n", style_.red(), in_flight_text(model_, e), style_.reset());
}

void EventLogText::event(const format::EventSlot& e) {
  // The nesting depth is the trace's to choose: the indentation stops growing at
  // kMaxIndentDepth levels (a 100,000-deep chain must not print gigabytes of spaces); a deeper
  // call says how deep it is instead.
  const int nested = nesting_.depth_of(e);
  const int depth = std::min(nested, kMaxIndentDepth);
  const bool failed = !(e.bits & format::kEventOk);
  out("{}{:>10.3f}  {:>7}{}  {:{}}", style_.dim(), model_.relative_ms(model_.time_ns(e)), e.tid,
      style_.reset(), "", depth * 2);
  if (nested > depth) out("{}[depth {}]{} ", style_.dim(), nested, style_.reset());
  out("{}{}{}", failed ? style_.red() : "", style_.bold(), call_name(e.call));
  out("{}", style_.reset());
  if (is_open_call(e.call)) {
    open_event(e);
  } else if (is_sym_call(e.call)) {
    sym_event(e);
  } else if (is_close_call(e.call)) {
    close_event(e);
  } else {
    out("(?)");
  }
  if (in_flight(e)) {
    out("  {}[in flight]{}", style_.dim(), style_.reset());
  } else {
    out("  {}[{:.3f} ms]{}", style_.dim(), static_cast<double>(model_.duration_ns(e)) / 1e6,
        style_.reset());
  }
  if (e.error != format::kNoId && reader_.has_string(e.error)) {
    out("  {}error: {}{}", style_.red(), reader_.string(e.error), style_.reset());
  }
  out("\n");
  if (stacks_) stack(e, depth);
}

void EventLogText::flush() {
  std::fwrite(buf_.data(), 1, buf_.size(), out_);
  buf_.clear();
}

std::string EventLogText::quoted(uint32_t id) const {
  if (id == format::kNoId) return "NULL";
  if (!reader_.has_string(id)) return "\"?\"";
  return fmt::format("\"{}\"", reader_.string(id));
}

std::string EventLogText::object_label(uint32_t id) const {
  const ObjectRecord* o = reader_.object(id);
  return o ? model_.name_of(*o) : std::string("?");
}

std::string EventLogText::handle_text(const format::EventSlot& e) const {
  if (is_sym_call(e.call) && e.handle == 0) return "RTLD_DEFAULT";
  if (is_sym_call(e.call) && e.handle == static_cast<uint64_t>(-1)) return "RTLD_NEXT";
  std::string s = fmt::format("{:#x}", e.handle);
  if (e.handle_object != format::kNoId) s += " " + object_label(e.handle_object);
  return s;
}

void EventLogText::open_event(const format::EventSlot& e) {
  out("(");
  if (e.call == static_cast<uint16_t>(format::CallKind::kDlmopen)) out("ns={}, ", e.lmid);
  out("{}, {}", quoted(e.name), flags_to_string(e.flags));
  if ((e.bits & format::kEventOverridden) || e.flags != e.effective_flags) {
    out(" {}=> {} [override", style_.yellow(), flags_to_string(e.effective_flags));
    const auto& config = reader_.process().config;
    if (!config.empty() || e.override_line) {
      out(" {}:{}", config.empty() ? "config" : basename_of(config), e.override_line);
    }
    out("]{}", style_.reset());
  }
  out(")");
  if (in_flight(e)) {
    out(" {}never returned: the process ended inside it{}", style_.red(), style_.reset());
    return;
  }
  if (!(e.bits & format::kEventOk) && e.handle == 0) {
    out(" = {}NULL{}", style_.red(), style_.reset());
    return;
  }
  out(" = {:#x}", e.handle);
  if (const ObjectRecord* o = reader_.object(e.object)) {
    // The full path only when it says more than the requested name.
    const std::string_view path = model_.path_of(*o);
    const bool same = e.name != format::kNoId && reader_.string(e.name) == path;
    out(" {}", same || path.empty() ? model_.name_of(*o) : std::string(path));
  }
  if (e.bits & format::kEventNoLoad) out(" (already loaded)");
  auto fresh = model_.new_objects(e.seq);
  if (!fresh.empty()) {
    out(" new:");
    for (uint32_t id : fresh) out(" {}", object_label(id));
  }
}

void EventLogText::sym_event(const format::EventSlot& e) {
  out("({}, {}", handle_text(e), quoted(e.name));
  if (e.call == static_cast<uint16_t>(format::CallKind::kDlvsym)) out("@{}", quoted(e.version));
  out(")");
  if (e.address == 0) {
    out(" = {}NULL{}", style_.red(), style_.reset());
    return;
  }
  out(" = {:#x}", e.address);
  const ObjectRecord* o = model_.object_for(e.address, e.seq, e.object);
  if (o) out(" {}+{:#x}", model_.name_of(*o), e.address - o->base);
}

void EventLogText::close_event(const format::EventSlot& e) {
  const bool failed = !(e.bits & format::kEventOk);
  out("({}) = {}{}{}", handle_text(e), failed ? style_.red() : "", e.result,
      failed ? style_.reset() : "");
  auto gone = model_.unloaded_by(e.seq);
  if (!gone.empty()) {
    out(" unloaded:");
    for (size_t i = 0; i < gone.size(); ++i) out("{} {}", i ? "," : "", object_label(gone[i]));
  } else if (e.bits & format::kEventUnloaded) {
    out(" unloaded");
  }
}

void EventLogText::stack(const format::EventSlot& e, int depth) {
  const int indent = 21 + std::min(depth, kMaxIndentDepth) * 2;
  if (e.stack != format::kNoId) {
    int i = 0;
    for (uint64_t ip : reader_.stack(e.stack)) {
      out("{:{}}#{:<2} {:#x}", "", indent, i++, ip);
      const ObjectRecord* o = ip ? reader_.object_at(ip - 1, e.seq) : nullptr;
      if (o) {
        const SymbolInfo& s = symbolizer_.lookup(*o, ip);
        out(" {}", model_.name_of(*o));
        if (!s.function.empty()) {
          out(" {}+{:#x}", s.function, s.function_offset);
        } else {
          out("+{:#x}", ip - o->base);
        }
        if (!s.file.empty()) out(" ({}:{})", s.file, s.line);
      } else {
        out(" ?");
      }
      out("\n");
    }
  }
  if (e.py_stack != format::kNoId) {
    for (const format::PyFrame& f : reader_.py_stack(e.py_stack)) {
      out("{:{}}py {}:{} {}\n", "", indent, reader_.string(f.file), f.line,
          reader_.string(f.function));
    }
  }
}

}  // namespace dltrace::viewer
