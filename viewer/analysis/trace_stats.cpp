#include "analysis/trace_stats.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "model/in_flight.h"

namespace dltrace::viewer {
namespace {

constexpr size_t kMaxOpenDepth = 64;  // a damaged trace must not grow the per-thread stack

// A traced call still open on a thread: its seq and the time of its direct children so far.
struct Open {
  uint64_t seq;
  uint64_t duration_ns;
  uint64_t children_ns;
  format::EventSlot event;  // kept only for open calls (finalized into a LoadTiming)
};

size_t call_index(uint16_t call) {
  return call >= 1 && call < kCallKinds ? call : 0;
}

class StatsCollector {
 public:
  StatsCollector(const TraceModel& model, size_t top)
      : reader_(model.reader()), model_(model), top_(top), python_loads_(reader_, model_, top) {}

  void event(const format::EventSlot& e) {
    // A call in flight neither succeeded nor failed: it is listed, not counted as failed.
    const bool ok = !failed_call(e);
    ++stats_.readable;
    if (!ok) ++stats_.failed;
    if (in_flight(e) && is_open_call(e.call) && stats_.in_flight.size() < kMaxOpenDepth)
      stats_.in_flight.push_back(in_flight_text(model_, e));
    stats_.calls[call_index(e.call)].add(ok);

    ThreadStats& t = threads_[e.tid];
    t.tid = e.tid;
    t.all.add(ok);
    ++t.calls[call_index(e.call)];

    if (is_sym_call(e.call)) symbol(e, ok);
    nesting(e);
    python_loads_.add(e);
  }

  // Closes the calls still open at the end of the trace and ranks what was collected.
  TraceStats finish() && {
    for (auto& [tid, stack] : open_) {
      while (!stack.empty()) pop(stack);
    }
    open_.clear();
    std::ranges::sort(slowest_, [](const LoadTiming& a, const LoadTiming& b) {
      return a.duration_ns != b.duration_ns ? a.duration_ns > b.duration_ns : a.seq < b.seq;
    });
    stats_.top = top_;
    for (const auto& [tid, t] : threads_) stats_.threads.push_back(t);
    std::ranges::sort(stats_.threads, {}, &ThreadStats::tid);
    stats_.distinct_symbols = symbols_.size();
    stats_.top_symbols = top_symbols();
    stats_.slowest_loads = std::move(slowest_);
    stats_.python = std::move(python_loads_).finish();
    return std::move(stats_);
  }

 private:
  void symbol(const format::EventSlot& e, bool ok) {
    std::string key(reader_.has_string(e.name) ? reader_.string(e.name) : "?");
    const bool versioned = e.call == static_cast<uint16_t>(format::CallKind::kDlvsym);
    std::string version;
    if (versioned) {
      version = reader_.has_string(e.version) ? reader_.string(e.version) : "?";
      key += '@';
      key += version;
    }
    auto [it, fresh] = symbols_.try_emplace(std::move(key));
    if (fresh) {
      it->second.symbol = reader_.has_string(e.name) ? reader_.string(e.name) : "?";
      it->second.version = std::move(version);
    }
    it->second.lookups.add(ok);
  }

  // parent_seq names the enclosing traced call on the same thread, and a parent's seq comes
  // before its children's: a per-thread stack of open calls finds it, and a call is complete
  // (all its children seen) once an event on its thread is not nested in it.
  void nesting(const format::EventSlot& e) {
    auto& stack = open_[e.tid];
    while (!stack.empty() && stack.back().seq != e.parent_seq) pop(stack);
    const uint64_t duration = model_.duration_ns(e);
    if (!stack.empty()) stack.back().children_ns += duration;
    if (stack.size() >= kMaxOpenDepth) pop(stack);
    stack.push_back(Open{e.seq, duration, 0, e});
  }

  void pop(std::vector<Open>& stack) {
    const Open done = stack.back();
    stack.pop_back();
    if (is_open_call(done.event.call)) loaded(done);
  }

  void loaded(const Open& o) {
    const format::EventSlot& e = o.event;
    LoadTiming load;
    load.seq = e.seq;
    load.call = e.call;
    load.tid = e.tid;
    load.duration_ns = o.duration_ns;
    load.self_ns = o.duration_ns - std::min(o.duration_ns, o.children_ns);
    if (top_ == 0) return;
    // Keep the N slowest (ties: the earlier call) without holding every load.
    if (slowest_.size() >= top_) {
      auto fastest =
          std::ranges::min_element(slowest_, [](const LoadTiming& a, const LoadTiming& b) {
            return a.duration_ns != b.duration_ns ? a.duration_ns < b.duration_ns : a.seq > b.seq;
          });
      if (fastest->duration_ns >= load.duration_ns) return;
      slowest_.erase(fastest);
    }
    if (reader_.has_string(e.name)) load.file = std::string(reader_.string(e.name));
    load.ok = (e.bits & format::kEventOk) != 0;
    load.new_objects = model_.new_objects(e.seq).size();
    if (reader_.has_string(e.error)) load.error = reader_.string(e.error);
    slowest_.push_back(std::move(load));
  }

  std::vector<SymbolStats> top_symbols() const {
    std::vector<const SymbolStats*> all;
    all.reserve(symbols_.size());
    for (const auto& [key, s] : symbols_) all.push_back(&s);
    auto by_count = [](const SymbolStats* a, const SymbolStats* b) {
      if (a->lookups.total != b->lookups.total) return a->lookups.total > b->lookups.total;
      if (a->symbol != b->symbol) return a->symbol < b->symbol;
      return a->version < b->version;
    };
    const size_t n = std::min(top_, all.size());
    std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n), all.end(),
                      by_count);
    std::vector<SymbolStats> out;
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) out.push_back(*all[i]);
    return out;
  }

  const TraceReader& reader_;
  const TraceModel& model_;
  size_t top_;
  TraceStats stats_;
  absl::flat_hash_map<uint32_t, ThreadStats> threads_;
  absl::flat_hash_map<std::string, SymbolStats> symbols_;
  absl::flat_hash_map<uint32_t, std::vector<Open>> open_;
  std::vector<LoadTiming> slowest_;
  PythonLoadCollector python_loads_;  // loads made by Python code, attributed to their statements
};

}  // namespace

TraceStats compute_trace_stats(const TraceModel& model, size_t top) {
  StatsCollector stats(model, top);
  model.reader().for_each_event([&](const format::EventSlot& e) {
    stats.event(e);
    return true;
  });
  return std::move(stats).finish();
}

std::string python_module_name(const PyLoad& load, const TraceModel& model) {
  const TraceReader& reader = model.reader();
  if (const ObjectRecord* o = load.object != format::kNoId ? reader.object(load.object) : nullptr) {
    return model.name_of(*o);
  }
  return load.file.empty() ? std::string("NULL") : std::string(basename_of(load.file));
}

}  // namespace dltrace::viewer
