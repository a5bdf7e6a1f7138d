// libFuzzer target: any bytes given to TraceReader::open_bytes, then every accessor. The reader
// must never crash or read out of bounds, whatever the file says.
#include <cstddef>
#include <cstdint>

#include "dltrace/reader.h"

namespace {

// Keeps the compiler from dropping reads whose results are otherwise unused.
volatile uint64_t g_sink;
void use(uint64_t v) {
  g_sink = g_sink + v;
}
void use(std::string_view s) {
  use(s.size() + (s.empty() ? 0 : uint8_t(s.front()) + uint8_t(s.back())));
}

void touch_ids(const dltrace::TraceReader& r, const dltrace::format::EventSlot& e) {
  for (uint32_t id : {e.name, e.version, e.error}) {
    use(r.string(id));
    use(r.has_string(id));
  }
  for (uint64_t ip : r.stack(e.stack)) use(ip);
  for (const auto& f : r.py_stack(e.py_stack)) {
    use(r.string(f.file));
    use(r.string(f.function));
    use(uint64_t(f.line));
  }
  for (uint32_t id : {e.object, e.handle_object, e.caller_object})
    if (const auto* o = r.object(id)) use(o->path);
  if (const auto* o = r.object_at(e.address, e.seq)) use(o->id);
  if (const auto* o = r.object_at(e.caller_ip, e.seq)) use(o->id);
  for (const auto& ov : r.overrides_for(e.seq)) use(ov.line);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string error;
  auto r = dltrace::TraceReader::open_bytes(data, size, &error);
  if (!r) {
    use(error);
    return 0;
  }
  use(r->header().file_size);
  const auto& p = r->process();
  use(p.exe);
  use(p.cwd);
  use(p.config);
  for (const auto& a : p.argv) use(a);
  const auto& rec = r->recovery();
  use(rec.dropped_events + rec.torn_events + rec.corrupt_catalog + rec.catalog_dropped);
  for (const auto& n : rec.notes) use(n);
  for (const auto& o : r->objects()) {
    use(o.path);
    use(o.soname);
    use(o.build_id);
    use(r->object(o.id) == &o);
    use(o.parent);
    if (const auto* parent = r->object(o.parent)) use(parent->id);
    for (uint64_t seq : {uint64_t{0}, o.load_seq, o.unload_seq.value_or(0), r->last_seq()}) {
      if (const auto* at = r->object_at(o.map_start, seq)) use(at->id);
      if (const auto* at = r->object_at(o.map_end - 1, seq)) use(at->id);
    }
  }
  for (uint32_t id : {0u, 1u, 2u, 1000u, dltrace::format::kNoId}) {
    use(r->string(id));
    use(r->stack(id).size());
    use(r->py_stack(id).size());
    if (const auto* o = r->object(id)) use(o->id);
  }
  uint64_t count = 0;
  r->for_each_event([&](const dltrace::format::EventSlot& e) {
    touch_ids(*r, e);
    // Random access must agree with the stream.
    if (++count <= 4) {
      auto again = r->event(e.seq);
      if (!again || again->seq != e.seq) __builtin_trap();
    }
    return true;
  });
  if (count + rec.dropped_events != r->last_seq()) __builtin_trap();
  for (uint64_t seq : {uint64_t{0}, uint64_t{1}, r->last_seq(), r->last_seq() + 1})
    if (auto e = r->event(seq)) touch_ids(*r, *e);
  // Stopping early works.
  r->for_each_event([](const dltrace::format::EventSlot&) { return false; });
  return 0;
}
