#include "render/json_export.h"

#include <algorithm>
#include <deque>
#include <iterator>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "common/dlopen_flags.h"
#include "model/in_flight.h"
#include "model/trace_model.h"
#include "render/visible_text.h"

namespace dltrace::viewer {
namespace {

// Whether a JSON string of `s` keeps every byte (JsonWriter shows bytes that are not UTF-8 as
// U+FFFD).
bool is_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    if (p[i] < 0x80) {
      ++i;
    } else if (const size_t len = visible::utf8_sequence(p + i, s.size() - i, &cp); len != 0) {
      i += len;
    } else {
      return false;
    }
  }
  return true;
}

constexpr uint64_t kForever = std::numeric_limits<uint64_t>::max();

class Exporter {
 public:
  Exporter(const TraceReader& reader, const JsonExportOptions& options, JsonWriter& w)
      : reader_(reader),
        model_(reader),
        options_(options),
        w_(w),
        symbolizer_(reader.process().exe) {}

  absl::Status run() {
    if (options_.flavor == JsonFlavor::kJson) {
      write_json();
    } else {
      write_jsonl();
    }
    return w_.finish();
  }

 private:
  // ---- top level ----
  void write_json() {
    w_.begin_object();
    w_.key("format").value("dltrace-json");
    w_.key("version").value(1);
    w_.key("time_base").value("CLOCK_MONOTONIC");
    w_.key("process");
    w_.begin_object();
    write_process_fields();
    w_.end_object();
    w_.key("dropped_events").value(reader_.recovery().dropped_events);
    w_.key("last_seq").value(reader_.last_seq());
    w_.key("recovery");
    write_recovery();
    w_.key("objects");
    w_.begin_array();
    for (const auto& o : reader_.objects()) write_object(o, false);
    w_.end_array();
    w_.key("events");
    w_.begin_array();
    reader_.for_each_event([this](const format::EventSlot& e) {
      write_event(e, false);
      return true;
    });
    w_.end_array();
    w_.end_object();
    w_.end_line();
  }

  void write_jsonl() {
    w_.begin_object();
    w_.key("type").value("process");
    w_.key("format").value("dltrace-jsonl");
    w_.key("version").value(1);
    w_.key("time_base").value("CLOCK_MONOTONIC");
    write_process_fields();
    w_.key("dropped_events").value(reader_.recovery().dropped_events);
    w_.key("last_seq").value(reader_.last_seq());
    w_.key("recovery");
    write_recovery();
    w_.end_object();
    w_.end_line();
    // Objects go out just before the first event at or after their load_seq.
    const auto& objects = model_.objects_by_load();
    size_t next = 0;
    reader_.for_each_event([&](const format::EventSlot& e) {
      while (next < objects.size() && objects[next]->load_seq <= e.seq) {
        write_object(*objects[next++], true);
        w_.end_line();
      }
      write_event(e, true);
      w_.end_line();
      return true;
    });
    while (next < objects.size()) {
      write_object(*objects[next++], true);
      w_.end_line();
    }
  }

  void write_process_fields() {
    const ProcessInfo& p = reader_.process();
    w_.key("pid").value(p.pid);
    w_.key("ppid").value(p.ppid);
    w_.key("outer_pid");
    if (p.outer_pid != 0)
      w_.value(p.outer_pid);
    else
      w_.null();
    w_.key("outer_ppid");
    if (p.outer_ppid != 0)
      w_.value(p.outer_ppid);
    else
      w_.null();
    w_.key("exe").value(p.exe);
    raw_member("exe_raw", p.exe);
    w_.key("cwd").value(p.cwd);
    raw_member("cwd_raw", p.cwd);
    w_.key("argv");
    w_.begin_array();
    for (const auto& a : p.argv) w_.value(a);
    w_.end_array();
    if (!std::ranges::all_of(p.argv, is_utf8)) {
      w_.key("argv_raw");
      w_.begin_array();
      for (const auto& a : p.argv) w_.value(visible(a));
      w_.end_array();
    }
    write_process_end(w_, p);
    w_.key("start_realtime_ns").value(p.start_realtime_ns);
    w_.key("start_monotonic_ns").value(p.start_monotonic_ns);
    w_.key("end_monotonic_ns");
    if (p.end != format::EndKind::kRunning)
      w_.value(p.end_monotonic_ns);
    else
      w_.null();
    w_.key("config");
    if (p.config.empty())
      w_.null();
    else
      w_.value(p.config);
    raw_member("config_raw", p.config);
    w_.key("stack_depth").value(p.stack_depth);
    w_.key("caller_emulated").value((p.recorder_flags & format::kRecorderCallerEmulated) != 0);
  }

  void write_recovery() {
    const Recovery& r = reader_.recovery();
    w_.begin_object();
    w_.key("clean").value(r.clean());
    w_.key("truncated").value(r.truncated);
    w_.key("torn_events").value(r.torn_events);
    w_.key("dropped_events").value(r.dropped_events);
    w_.key("corrupt_catalog_bytes").value(r.corrupt_catalog);
    w_.key("catalog_dropped").value(r.catalog_dropped);
    w_.key("notes");
    w_.begin_array();
    for (const auto& s : recovery_sentences(reader_)) w_.value(s);
    w_.end_array();
    w_.end_object();
  }

  // ---- objects ----
  void write_object(const ObjectRecord& o, bool typed) {
    w_.begin_object();
    if (typed) w_.key("type").value("object");
    w_.key("id").value(o.id);
    w_.key("path").value(o.path);
    raw_member("path_raw", o.path);
    w_.key("soname");
    if (o.soname.empty())
      w_.null();
    else
      w_.value(o.soname);
    raw_member("soname_raw", o.soname);
    w_.key("base").hex(o.base);
    w_.key("build_id");
    if (o.build_id.empty())
      w_.null();
    else
      w_.value(o.build_id);
    w_.key("namespace").value(o.lmid);
    w_.key("cause").value(cause_name(o.cause));
    w_.key("parent");
    optional_id(o.parent);
    w_.key("opened_by");
    if (o.opened_by != 0)
      w_.value(o.opened_by);
    else
      w_.null();
    w_.key("global").value(is_global(o));
    w_.key("load_seq").value(o.load_seq);
    w_.key("unload_seq");
    if (o.unload_seq)
      w_.value(*o.unload_seq);
    else
      w_.null();
    // Extras.
    w_.key("promote_seq");
    if (o.promote_seq)
      w_.value(*o.promote_seq);
    else
      w_.null();
    w_.key("global_at_load").value(o.global_at_load());
    w_.key("handle").hex(o.link_map);
    w_.key("map_start").hex(o.map_start);
    w_.key("map_end").hex(o.map_end);
    w_.key("flags");
    w_.begin_array();
    if (o.flags & format::kObjectRecorder) w_.value("recorder");
    if (o.flags & format::kObjectDiscovered) w_.value("discovered");
    if (o.flags & format::kObjectVdso) w_.value("vdso");
    w_.end_array();
    w_.end_object();
  }

  // ---- events ----
  // The hot path: every event's members are formatted straight into the writer's buffer with
  // json_text (one room check per run of members); only what dlopen events add, which is rare,
  // and the stacks (written from the cache, raw_stable) go through the writer's calls.
  void write_event(const format::EventSlot& e, bool typed) {
    using namespace json_text;
    const bool open = is_open_call(e.call);
    char* p = w_.raw_begin(kFixedRoom);
    *p++ = '{';
    if (typed) p = literal(p, R"("type":"event",)");
    p = literal(p, R"("seq":)");
    p = number(p, e.seq);
    p = literal(p, R"(,"time_ns":)");
    p = number(p, model_.time_ns(e));
    p = literal(p, R"(,"tid":)");
    p = number(p, e.tid);
    *p++ = ',';
    p = bytes(p, call_member(e.call));
    p = literal(p, R"(,"duration_ns":)");
    p = in_flight(e) ? literal(p, "null") : number(p, model_.duration_ns(e));
    if (!open) {
      // Most events: every open-only member is null, written as one run.
      p = literal(p, R"(,"file":null,"namespace":null,"flags":null,"flags_text":null,)"
                     R"("effective_flags":null,"effective_flags_text":null,"override":null)");
    } else {
      w_.raw_end(p);
      w_.key("file");
      optional_string(e.name);
      w_.key("namespace").value(e.lmid);
      w_.key("flags").value(e.flags);
      w_.key("flags_text").raw(flags_json(e.flags));
      w_.key("effective_flags").value(e.effective_flags);
      w_.key("effective_flags_text").raw(flags_json(e.effective_flags));
      w_.key("override");
      write_override(e);
      w_.key("handle");
      p = w_.raw_begin(kFixedRoom);
    }
    write_event_rest(e, p);
  }

  void write_override(const format::EventSlot& e) {
    if ((e.bits & format::kEventOverridden) || e.override_line != 0) {
      w_.begin_object();
      w_.key("config");
      if (reader_.process().config.empty())
        w_.null();
      else
        w_.value(reader_.process().config);
      w_.key("line").value(e.override_line);
      w_.key("rules");
      w_.begin_array();
      for (const auto& r : reader_.overrides_for(e.seq)) {
        w_.begin_object();
        w_.key("line").value(r.line);
        w_.key("flags_before").value(r.flags_before);
        w_.key("flags_after").value(r.flags_after);
        w_.end_object();
      }
      w_.end_array();
      w_.end_object();
    } else {
      w_.null();
    }
  }

  // From "handle" on; `p` is where the writer's buffer continues, with room for kFixedRoom bytes,
  // after a "handle" key already written if the event is a dlopen.
  void write_event_rest(const format::EventSlot& e, char* p) {
    using namespace json_text;
    const bool open = is_open_call(e.call);
    const bool sym = is_sym_call(e.call);
    const bool close = is_close_call(e.call);
    const std::string_view symbol = sym ? optional_string_json(e.name) : "null";
    const std::string_view version = e.call == static_cast<uint16_t>(format::CallKind::kDlvsym)
                                         ? optional_string_json(e.version)
                                         : "null";
    const std::string_view error = optional_string_json(e.error);
    const std::string_view caller = caller_json(e);
    if (!open) p = literal(p, R"(,"handle":)");
    // The strings' own sizes on top of the fixed room: room() again, if they do not fit.
    w_.raw_end_key(p);
    p = w_.raw_begin(kFixedRoom + symbol.size() + version.size() + error.size() + caller.size());
    p = e.handle != 0 ? hex(p, e.handle) : literal(p, "null");
    p = literal(p, R"(,"object":)");
    p = optional_id(p, e.object);
    if (open) {
      p = literal(p, R"(,"new_objects":)");
      w_.raw_end_key(p);
      w_.begin_array();
      for (uint32_t id : model_.new_objects(e.seq)) w_.value(id);
      w_.end_array();
      p = w_.raw_begin(kFixedRoom + symbol.size() + version.size() + error.size() + caller.size());
      p = literal(p, R"("symbol":)");
    } else {
      p = literal(p, R"(,"new_objects":null,"symbol":)");
    }
    p = bytes(p, symbol);
    p = literal(p, R"(,"version":)");
    p = bytes(p, version);
    p = literal(p, R"(,"address":)");
    p = sym && e.address != 0 ? hex(p, e.address) : literal(p, "null");
    p = literal(p, R"(,"ok":)");
    // A call in flight never returned: neither ok nor failed (model/in_flight.h).
    p = in_flight(e) ? literal(p, R"(null,"in_flight":true)")
                     : boolean(p, (e.bits & format::kEventOk) != 0);
    p = literal(p, R"(,"error":)");
    p = bytes(p, error);
    if (failed_call(e) && (open || sym) && options_.failed_kind) {
      p = literal(p, R"(,"kind":")");
      p = bytes(p, options_.failed_kind(e));
      p = literal(p, "\"");
    }
    p = literal(p, R"(,"caller":)");
    p = bytes(p, caller);
    p = literal(p, R"(,"stack":)");
    w_.raw_end_key(p);
    if (options_.stacks && e.stack != format::kNoId)
      w_.raw_stable(stack_json(e.stack, e.seq));
    else
      w_.null();
    w_.key("python_stack");
    if (options_.stacks && e.py_stack != format::kNoId)
      w_.raw_stable(py_stack_json(e.py_stack));
    else
      w_.null();

    // Extras.
    p = w_.raw_begin(kFixedRoom);
    p = literal(p, R"("parent_seq":)");
    p = e.parent_seq != 0 ? number(p, e.parent_seq) : literal(p, "null");
    p = literal(p, R"(,"nested":)");
    p = boolean(p, (e.bits & format::kEventNested) != 0);
    p = literal(p, R"(,"caller_emulated":)");
    p = boolean(p, (e.bits & format::kEventCallerEmulated) != 0);
    if (sym || close) {
      p = literal(p, R"(,"handle_object":)");
      p = optional_id(p, e.handle_object);
      if (sym && e.handle == 0) p = literal(p, R"(,"handle_name":"RTLD_DEFAULT")");
      if (sym && e.handle == static_cast<uint64_t>(-1))
        p = literal(p, R"(,"handle_name":"RTLD_NEXT")");
    }
    if (open) {
      p = literal(p, R"(,"already_loaded":)");
      p = boolean(p, (e.bits & format::kEventNoLoad) != 0);
    }
    if (close) {
      p = literal(p, R"(,"result":)");
      p = number(p, e.result);
      p = literal(p, R"(,"unloaded":)");
      p = boolean(p, (e.bits & format::kEventUnloaded) != 0);
    }
    if (!lossy_strings_.empty()) {  // only traces with strings that are not UTF-8 pay for this
      w_.raw_end(p);
      raw_string_member(open ? "file_raw" : "symbol_raw", open || sym ? e.name : format::kNoId);
      raw_string_member("version_raw", e.call == static_cast<uint16_t>(format::CallKind::kDlvsym)
                                           ? e.version
                                           : format::kNoId);
      raw_string_member("error_raw", e.error);
      w_.end_object();
      return;
    }
    *p++ = '}';
    w_.raw_end(p);
  }

  // Lossless strings: a string that is not valid UTF-8 is shown with U+FFFD in its member, and
  // its exact bytes are kept beside it in "<member>_raw", escaped as the text commands print it
  // (common/visible_text.h: \\, \xHH, \uHHHH; docs/security.md says how to decode it).
  void raw_member(std::string_view key, std::string_view text) {
    if (is_utf8(text)) return;
    w_.key(key).value(visible(text));
  }
  void raw_string_member(std::string_view key, uint32_t id) {
    if (id == format::kNoId || !lossy_strings_.contains(id)) return;
    w_.key(key).value(visible(reader_.string(id)));
  }

  // The caller's JSON, or null. It depends only on the return address and the object: call
  // sites are few, so each is rendered once (up to a bound, so that a damaged trace cannot grow
  // the cache per event).
  std::string_view caller_json(const format::EventSlot& e) {
    if (e.caller_ip == 0) return "null";
    const ObjectRecord* o = model_.object_for(e.caller_ip - 1, e.seq, e.caller_object);
    const std::pair<uint64_t, uint32_t> key{e.caller_ip, o ? o->id : format::kNoId};
    if (auto it = callers_.find(key); it != callers_.end()) return it->second;
    JsonWriter f;
    f.begin_object();
    f.key("object");
    if (o)
      f.value(o->id);
    else
      f.null();
    f.key("offset");
    if (o)
      f.hex(e.caller_ip - o->base);
    else
      f.null();
    f.key("function");
    const SymbolInfo* info =
        (o && options_.symbolize) ? &symbolizer_.lookup(*o, e.caller_ip) : nullptr;
    if (info && !info->function.empty())
      f.value(info->function);
    else
      f.null();
    f.key("ip").hex(e.caller_ip);
    f.end_object();
    if (callers_.size() < kMaxCachedCallers) return callers_.emplace(key, f.str()).first->second;
    uncached_caller_ = f.str();
    return uncached_caller_;
  }

  // ---- cached fragments ----
  // `"call":"dlsym"`, the member every event has.
  static std::string_view call_member(uint16_t call) {
    // Indexed by EventSlot::call (format.h numbers the rows 1, 2, ...).
    static constexpr std::string_view kMembers[format::kCallKindCount + 1] = {
        R"("call":"unknown")",
#define DLTRACE_CALL_MEMBER(kind, name, value) "\"call\":\"" #name "\"",
        DLTRACE_CALL_KINDS(DLTRACE_CALL_MEMBER)
#undef DLTRACE_CALL_MEMBER
    };
    return kMembers[call < std::size(kMembers) ? call : 0];
  }

  // The flags' text as a JSON string.
  const std::string& flags_json(int flags) {
    auto [it, inserted] = flag_texts_.try_emplace(flags);
    if (inserted) JsonWriter::append_string(it->second, flags_to_string(flags));
    return it->second;
  }

  // An interned string as JSON (quoted and escaped), or null if the trace does not have it.
  // Strings repeat on every event (symbol names, file names, errors): each is escaped once.
  std::string_view string_json(uint32_t id) {
    std::string* slot = id < kDenseStrings ? &dense_slot(dense_strings_, id) : &sparse_strings_[id];
    if (slot->empty()) {  // a rendered value is never empty: at least "" or null
      if (id != format::kNoId && reader_.has_string(id)) {
        JsonWriter::append_string(*slot, reader_.string(id));
        if (!is_utf8(reader_.string(id))) lossy_strings_.insert(id);
      } else {
        *slot = "null";
      }
    }
    return *slot;
  }

  // A stack's JSON depends on which objects were mapped at its ips, so a cached rendering is
  // reused only until one of them unloads or, for an unresolved ip, until the next load.
  const std::string& stack_json(uint32_t id, uint64_t seq) {
    CachedStack& c = id < kDenseStacks ? dense_stack(id) : sparse_stacks_[id];
    if (!c.json.empty() && seq < c.valid_until) return c.json;
    if (!c.json.empty()) retire(std::move(c.json));
    c.valid_until = kForever;
    JsonWriter f;
    f.begin_array();
    for (uint64_t ip : reader_.stack(id)) {
      const ObjectRecord* o = ip ? reader_.object_at(ip - 1, seq) : nullptr;
      f.begin_object();
      f.key("ip").hex(ip);
      f.key("object");
      if (o)
        f.value(o->id);
      else
        f.null();
      f.key("offset");
      if (o)
        f.hex(ip - o->base);
      else
        f.null();
      const SymbolInfo* info = (o && options_.symbolize) ? &symbolizer_.lookup(*o, ip) : nullptr;
      f.key("function");
      if (info && !info->function.empty())
        f.value(info->function);
      else
        f.null();
      f.key("file");
      if (info && !info->file.empty())
        f.value(info->file);
      else
        f.null();
      f.key("line");
      if (info && info->line > 0)
        f.value(info->line);
      else
        f.null();
      f.end_object();
      if (o) {
        if (o->unload_seq) c.valid_until = std::min(c.valid_until, *o->unload_seq);
      } else {
        c.valid_until = std::min(c.valid_until, next_load_after(seq));
      }
    }
    f.end_array();
    c.json = f.str();
    return c.json;
  }

  const std::string& py_stack_json(uint32_t id) {
    auto [it, inserted] = py_stacks_.try_emplace(id);
    if (!inserted) return it->second;
    JsonWriter f;
    f.begin_array();
    for (const format::PyFrame& fr : reader_.py_stack(id)) {
      f.begin_object();
      f.key("file").value(reader_.string(fr.file));
      if (!is_utf8(reader_.string(fr.file)))
        f.key("file_raw").value(visible(reader_.string(fr.file)));
      f.key("line").value(fr.line);
      f.key("function").value(reader_.string(fr.function));
      if (!is_utf8(reader_.string(fr.function)))
        f.key("function_raw").value(visible(reader_.string(fr.function)));
      f.end_object();
    }
    f.end_array();
    it->second = f.str();
    return it->second;
  }

  // The writer may still point at a replaced rendering (raw_stable): it lives until the writer's
  // next generation. (Moving a cached string keeps its bytes where they are: a string too long
  // for the small-string buffer moves in constant time, so by taking its heap block.)
  void retire(std::string json) {
    if (!w_.may_reference()) return;
    if (retired_generation_ != w_.generation()) {
      retired_.clear();
      retired_generation_ = w_.generation();
    }
    retired_.push_back(std::move(json));
  }

  uint64_t next_load_after(uint64_t seq) const {
    const auto& by_load = model_.objects_by_load();
    auto it = std::ranges::upper_bound(by_load, seq, {}, &ObjectRecord::load_seq);
    return it == by_load.end() ? kForever : (*it)->load_seq;
  }

  // ---- small helpers ----
  // The caches indexed by id: a deque or vector for the small ids every trace has (no hashing
  // per event; a deque keeps its entries in place as it grows), a map for the rest.
  template <typename T>
  static T& dense_slot(std::deque<T>& slots, uint32_t id) {
    if (id >= slots.size()) slots.resize(std::max<size_t>(id + 1, slots.size() * 2));
    return slots[id];
  }

  void optional_id(uint32_t id) {
    if (id != format::kNoId)
      w_.value(id);
    else
      w_.null();
  }
  static char* optional_id(char* p, uint32_t id) {
    return id != format::kNoId ? json_text::number(p, id) : json_text::literal(p, "null");
  }
  std::string_view optional_string_json(uint32_t id) {
    return id == format::kNoId ? std::string_view("null") : string_json(id);
  }
  void optional_string(uint32_t id) {
    w_.raw(optional_string_json(id));
  }

  struct CachedStack {
    std::string json;
    uint64_t valid_until = 0;
  };
  CachedStack& dense_stack(uint32_t id) {
    if (id >= dense_stacks_.size())
      dense_stacks_.resize(std::max<size_t>(id + 1, dense_stacks_.size() * 2));
    return dense_stacks_[id];
  }

  const TraceReader& reader_;
  TraceModel model_;
  const JsonExportOptions& options_;
  JsonWriter& w_;
  Symbolizer symbolizer_;
  static constexpr size_t kMaxCachedCallers = 1 << 16;
  // Room for an event's fixed members (names, numbers, addresses), without its strings.
  static constexpr size_t kFixedRoom = 1024;
  std::string uncached_caller_;
  static constexpr uint32_t kDenseStrings = 1 << 16;  // ids below: a vector; above: a map
  absl::flat_hash_map<int, std::string> flag_texts_;  // JSON strings
  absl::flat_hash_map<std::pair<uint64_t, uint32_t>, std::string> callers_;
  // An event holds views of several strings at once: growing these keeps the others in place.
  std::deque<std::string> dense_strings_;
  absl::node_hash_map<uint32_t, std::string> sparse_strings_;
  // Stacks by id: a vector for the small ids every trace has (no hashing per event). Growing it
  // moves the renderings but not their bytes (see retire()), which is what the writer points at.
  static constexpr uint32_t kDenseStacks = 1 << 16;
  std::vector<CachedStack> dense_stacks_;
  absl::node_hash_map<uint32_t, CachedStack> sparse_stacks_;
  absl::flat_hash_map<uint32_t, std::string> py_stacks_;
  absl::flat_hash_set<uint32_t> lossy_strings_;  // string ids that are not valid UTF-8
  std::vector<std::string> retired_;             // stack renderings replaced in retired_generation_
  uint64_t retired_generation_ = 0;
};

}  // namespace

void write_process_end(JsonWriter& w, const ProcessInfo& p) {
  w.key("end").value(end_name(p.end));
  w.key("exit_status");
  if (p.end == format::EndKind::kExit)
    w.value(p.end_code);
  else
    w.null();
  w.key("signal");
  if (p.end == format::EndKind::kSignal)
    w.value(p.end_code);
  else
    w.null();
  w.key("end_via");
  if (auto via = end_via_name(p.end_via))
    w.value(*via);
  else
    w.null();
  w.key("exec_target");
  if (p.end == format::EndKind::kExec && !p.exec_target.empty())
    w.value(p.exec_target);
  else
    w.null();
}

absl::Status write_json_export(const TraceReader& reader, const JsonExportOptions& options,
                               JsonWriter& out) {
  return Exporter(reader, options, out).run();
}

}  // namespace dltrace::viewer
