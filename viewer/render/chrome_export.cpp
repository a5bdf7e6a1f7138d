#include "render/chrome_export.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "common/dlopen_flags.h"
#include "model/in_flight.h"
#include "model/trace_model.h"

namespace dltrace::viewer {
namespace {

constexpr size_t kMaxNesting = 64;  // a damaged trace must not grow a stack without bound

// A span's [start, end] in trace ns, kept per thread while its nested calls stream by.
struct OpenSpan {
  uint64_t seq = 0;
  uint64_t start = 0;
  uint64_t end = 0;
};

class ChromeExporter {
 public:
  ChromeExporter(const TraceReader& reader, JsonWriter& w)
      : reader_(reader), model_(reader), w_(w) {}

  absl::Status run() {
    const ProcessInfo& p = reader_.process();
    w_.begin_object();
    w_.key("displayTimeUnit").value("ms");
    w_.key("otherData");
    w_.begin_object();
    w_.key("format").value("dltrace-chrome");
    w_.key("version").value(1);
    w_.key("exe").value(p.exe);
    w_.key("pid").value(p.pid);
    w_.key("start_realtime_ns").value(p.start_realtime_ns);
    w_.key("last_seq").value(reader_.last_seq());
    w_.key("dropped_events").value(reader_.recovery().dropped_events);
    w_.key("recovery");
    w_.begin_array();
    for (const auto& s : recovery_sentences(reader_)) w_.value(s);
    w_.end_array();
    w_.end_object();

    w_.key("traceEvents");
    w_.begin_array();
    metadata("process_name", p.pid, process_label());
    reader_.for_each_event([this](const format::EventSlot& e) {
      write_event(e);
      return true;
    });
    if (p.end != format::EndKind::kRunning) process_end();
    w_.end_array();
    w_.end_object();
    w_.end_line();
    return w_.finish();
  }

 private:
  std::string process_label() const {
    const ProcessInfo& p = reader_.process();
    std::string name(basename_of(p.exe));
    if (name.empty() && !p.argv.empty()) name = p.argv[0];
    if (name.empty()) name = "process";
    return name;
  }

  void metadata(std::string_view what, int64_t tid, std::string_view name) {
    w_.begin_object();
    w_.key("ph").value("M");
    w_.key("name").value(what);
    w_.key("pid").value(reader_.process().pid);
    w_.key("tid").value(tid);
    w_.key("args");
    w_.begin_object();
    w_.key("name").value(name);
    w_.end_object();
    w_.end_object();
  }

  // Microseconds since the process started, with ns precision.
  void micros(uint64_t ns_since_origin_or_duration) {
    w_.raw(fmt::format("{:.3f}", static_cast<double>(ns_since_origin_or_duration) / 1e3));
  }
  void timestamp(uint64_t time_ns) {
    const uint64_t origin = reader_.process().start_monotonic_ns;
    if (time_ns >= origin) {
      micros(time_ns - origin);
    } else {
      w_.raw(fmt::format("-{:.3f}", static_cast<double>(origin - time_ns) / 1e3));
    }
  }

  // The thread's enclosing span, after dropping the ones this event is not nested in.
  const OpenSpan* parent_span(const format::EventSlot& e) {
    auto& st = open_[e.tid];
    while (!st.empty() && st.back().seq != e.parent_seq) st.pop_back();
    return e.parent_seq != 0 && !st.empty() ? &st.back() : nullptr;
  }

  void write_event(const format::EventSlot& e) {
    if (threads_.insert(e.tid).second) {
      metadata("thread_name", e.tid,
               static_cast<int64_t>(e.tid) == reader_.process().pid
                   ? std::string("main thread")
                   : fmt::format("thread {}", e.tid));
    }
    uint64_t start = model_.time_ns(e);
    // A call in flight lasts until the process ended (zero when no end was recorded).
    const ProcessInfo& process = reader_.process();
    const uint64_t duration =
        !in_flight(e) ? model_.duration_ns(e)
        : process.end != format::EndKind::kRunning && process.end_monotonic_ns > start
            ? process.end_monotonic_ns - start
            : 0;
    uint64_t end = duration > UINT64_MAX - start ? UINT64_MAX : start + duration;  // damaged
    // Clock conversion rounds start and duration separately: keep a nested call inside its
    // parent's span, or the viewers would not nest it.
    if (const OpenSpan* parent = parent_span(e)) {
      start = std::clamp(start, parent->start, parent->end);
      end = std::clamp(end, start, parent->end);
    }
    const bool span = !is_sym_call(e.call);
    const bool ok = e.bits & format::kEventOk;

    w_.begin_object();
    w_.key("name").value(event_name(e));
    w_.key("cat").value(call_name(e.call));
    w_.key("ph").value(span ? "X" : "i");
    w_.key("ts");
    timestamp(start);
    if (span) {
      w_.key("dur");
      micros(end - start);
    } else {
      w_.key("s").value("t");
    }
    w_.key("pid").value(reader_.process().pid);
    w_.key("tid").value(e.tid);
    if (!ok) w_.key("cname").value("terrible");  // chrome://tracing's reserved red
    w_.key("args");
    w_.begin_object();
    write_args(e, ok);
    w_.end_object();
    w_.end_object();

    auto& st = open_[e.tid];
    if (st.size() >= kMaxNesting) st.clear();
    st.push_back({e.seq, start, end});
  }

  std::string string_or(uint32_t id, std::string_view fallback) const {
    return reader_.has_string(id) ? std::string(reader_.string(id)) : std::string(fallback);
  }

  std::string object_label(uint32_t id) const {
    const ObjectRecord* o = reader_.object(id);
    return o ? model_.name_of(*o) : std::string();
  }

  std::string event_name(const format::EventSlot& e) const {
    const std::string_view call = call_name(e.call);
    if (is_open_call(e.call)) {
      return fmt::format("{} {}", call, basename_of(string_or(e.name, "NULL")));
    }
    if (is_sym_call(e.call)) {
      std::string name = fmt::format("{} {}", call, string_or(e.name, "?"));
      if (e.call == static_cast<uint16_t>(format::CallKind::kDlvsym)) {
        name.append("@").append(string_or(e.version, "?"));
      }
      return name;
    }
    const std::string object =
        object_label(e.handle_object != format::kNoId ? e.handle_object : e.object);
    return object.empty() ? std::string(call) : fmt::format("{} {}", call, object);
  }

  void object_names(std::span<const uint32_t> ids) {
    w_.begin_array();
    for (uint32_t id : ids) w_.value(object_label(id));
    w_.end_array();
  }

  void handle_arg(const format::EventSlot& e) {
    w_.key("handle");
    if (is_sym_call(e.call) && e.handle == 0) {
      w_.value("RTLD_DEFAULT");
    } else if (is_sym_call(e.call) && e.handle == static_cast<uint64_t>(-1)) {
      w_.value("RTLD_NEXT");
    } else {
      w_.hex(e.handle);
    }
    if (e.handle_object != format::kNoId && reader_.object(e.handle_object)) {
      w_.key("handle_object").value(object_label(e.handle_object));
    }
  }

  void write_args(const format::EventSlot& e, bool ok) {
    w_.key("seq").value(e.seq);
    if (e.parent_seq) w_.key("parent_seq").value(e.parent_seq);
    if (is_open_call(e.call)) {
      w_.key("file").value(string_or(e.name, "NULL"));
      w_.key("flags_text").value(flags_to_string(e.flags));
      if ((e.bits & format::kEventOverridden) || e.flags != e.effective_flags) {
        w_.key("effective_flags_text").value(flags_to_string(e.effective_flags));
        const std::string& config = reader_.process().config;
        w_.key("override")
            .value(fmt::format("{}:{}", config.empty() ? "config" : config, e.override_line));
      }
      if (e.call == static_cast<uint16_t>(format::CallKind::kDlmopen) || e.lmid != 0) {
        w_.key("namespace").value(e.lmid);
      }
      if (ok) w_.key("result").hex(e.handle);
      if (const ObjectRecord* o = reader_.object(e.object); o && ok) {
        w_.key("object").value(model_.name_of(*o));
        w_.key("object_path").value(model_.path_of(*o));
      }
      if (e.bits & format::kEventNoLoad) w_.key("already_loaded").value(true);
      if (in_flight(e)) w_.key("in_flight").value(in_flight_text(model_, e));
      if (auto fresh = model_.new_objects(e.seq); !fresh.empty()) {
        w_.key("new_objects");
        object_names(fresh);
      }
    } else if (is_sym_call(e.call)) {
      w_.key("symbol").value(string_or(e.name, "?"));
      if (e.call == static_cast<uint16_t>(format::CallKind::kDlvsym)) {
        w_.key("version").value(string_or(e.version, "?"));
      }
      handle_arg(e);
      if (e.address) {
        w_.key("result").hex(e.address);
        if (const ObjectRecord* o = model_.object_for(e.address, e.seq, e.object)) {
          w_.key("object").value(model_.name_of(*o));
          w_.key("offset").hex(e.address - o->base);
        }
      }
    } else {
      handle_arg(e);
      w_.key("result").value(e.result);
      if (auto gone = model_.unloaded_by(e.seq); !gone.empty()) {
        w_.key("unloaded");
        object_names(gone);
      }
    }
    w_.key("ok").value(ok);
    if (reader_.has_string(e.error)) w_.key("error").value(reader_.string(e.error));
  }

  // A process-scoped instant at the recorded end of the process.
  void process_end() {
    const ProcessInfo& p = reader_.process();
    w_.begin_object();
    w_.key("name").value(end_summary(p));
    w_.key("cat").value("process");
    w_.key("ph").value("i");
    w_.key("s").value("p");
    w_.key("ts");
    timestamp(p.end_monotonic_ns);
    w_.key("pid").value(p.pid);
    w_.key("tid").value(p.pid);
    w_.end_object();
  }

  const TraceReader& reader_;
  TraceModel model_;
  JsonWriter& w_;
  absl::flat_hash_set<uint32_t> threads_;
  absl::flat_hash_map<uint32_t, std::vector<OpenSpan>> open_;
};

}  // namespace

absl::Status write_chrome_export(const TraceReader& reader, JsonWriter& out) {
  return ChromeExporter(reader, out).run();
}

}  // namespace dltrace::viewer
