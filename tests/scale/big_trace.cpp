#include "big_trace.h"

#include <dlfcn.h>

#include <cstdio>
#include <iterator>
#include <string>
#include <vector>

#include "dltrace/format.h"
#include "trace_writer.h"

namespace dltrace::test {
namespace {

constexpr uint32_t kPlugins = 24;
constexpr uint32_t kSymbols = 1000;
constexpr uint32_t kMissingSymbols = 50;
constexpr uint32_t kMissingLibraries = 20;
constexpr uint32_t kPyStacks = 32;
constexpr uint32_t kThreads = 4;
constexpr uint32_t kCallSites = 512;
constexpr uint64_t kObjectSpan = 0x100000;

// xorshift64*: fast and deterministic (the same trace for the same options).
struct Rng {
  uint64_t s = 0x9E3779B97F4A7C15ull;
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
  uint32_t below(uint32_t n) { return static_cast<uint32_t>((next() >> 32) % n); }
};

uint64_t buffer_size_for(uint64_t events) {
  uint64_t slots = 1;
  while (slots < events) slots *= 2;
  // The writer keeps a quarter of the buffer (at least 64 KiB) for the catalog: see format.h.
  const uint64_t ring = slots * format::kSlotSize;
  return (ring + format::kHeaderSize + (1u << 16)) / 3 * 4 + (4u << 20);
}

struct Object {
  uint32_t id;
  uint64_t base;
  uint64_t handle;
};

}  // namespace

std::string write_big_trace(const std::string& path, const BigTraceOptions& options) {
  preload::TraceWriter w;
  char error[512] = {};
  if (!w.open(path.c_str(), buffer_size_for(options.events), options.stack_depth, error,
              sizeof error)) {
    return error;
  }
  if (w.header()->slot_count < options.events) {
    w.close();
    return "the ring is too small for " + std::to_string(options.events) + " events";
  }
  const char* argv[] = {"bigtrace-host", "--plugins", "/opt/bigtrace/plugins"};
  w.write_process("/opt/bigtrace/bin/bigtrace-host", "/opt/bigtrace", 3, argv);
  const uint64_t t0 = w.header()->start_monotonic_ns;

  auto add_object = [&](const std::string& p, const char* soname, format::ObjectCause cause,
                        uint32_t flags, uint32_t parent, uint64_t opened_by, uint64_t base) {
    format::ObjectLoadEntry o{};
    o.path = w.intern_string(p.c_str());
    o.soname = soname ? w.intern_string(soname) : format::kNoId;
    o.cause = uint32_t(cause);
    o.flags = flags;
    o.parent = parent;
    o.opened_by = opened_by;
    o.load_seq = opened_by;
    o.base = base;
    o.map_start = base;
    o.map_end = base + kObjectSpan;
    o.link_map = 0x10000 + base / 0x1000;
    return Object{w.add_object(o), base, o.link_map};
  };

  std::vector<Object> code;  // objects stack frames and callers point into
  const Object exe =
      add_object("/opt/bigtrace/bin/bigtrace-host", nullptr, format::ObjectCause::kStartup,
                 format::kObjectGlobal, format::kNoId, 0, 0x555555554000);
  code.push_back(exe);
  code.push_back(add_object("/lib/x86_64-linux-gnu/libc.so.6", "libc.so.6",
                            format::ObjectCause::kNeeded, format::kObjectGlobal, exe.id, 0,
                            0x7f0000000000));
  code.push_back(add_object("/lib/x86_64-linux-gnu/libm.so.6", "libm.so.6",
                            format::ObjectCause::kNeeded, format::kObjectGlobal, exe.id, 0,
                            0x7f0000200000));
  add_object("linux-vdso.so.1", "linux-vdso.so.1", format::ObjectCause::kStartup,
             format::kObjectVdso, format::kNoId, 0, 0x7fff00000000);

  Rng rng;
  uint64_t written = 0;
  uint32_t tid_base = 4242;
  auto fill = [&](format::EventSlot& e, uint64_t seq, format::CallKind call) {
    e = format::EventSlot{};
    e.seq = seq;
    e.call = uint16_t(call);
    e.bits = format::kEventOk;
    e.time_ns = t0 + seq * 1000;
    e.duration_ns = 200 + rng.below(3000);
    e.tid = tid_base + rng.below(kThreads);
    e.name = e.version = e.error = e.stack = e.py_stack = format::kNoId;
    e.object = e.handle_object = e.caller_object = format::kNoId;
    // Call sites are few (a program calls dlsym from a handful of places), so callers come
    // from a fixed pool rather than a random address per event.
    const uint32_t site = rng.below(kCallSites);
    const Object& caller = code[site % code.size()];
    e.caller_ip = caller.base + 0x1000 + uint64_t(site) * 0x97;
    e.caller_object = caller.id;
  };

  // Pools: interned once, so the catalog does not grow with the event count.
  std::vector<uint32_t> symbols, missing, missing_errors, missing_libs, missing_lib_errors;
  for (uint32_t i = 0; i < kSymbols; ++i)
    symbols.push_back(w.intern_string(("plugin_fn_" + std::to_string(i)).c_str()));
  for (uint32_t i = 0; i < kMissingSymbols; ++i) {
    const std::string name = "missing_fn_" + std::to_string(i);
    missing.push_back(w.intern_string(name.c_str()));
    missing_errors.push_back(
        w.intern_string(("/opt/bigtrace/bin/bigtrace-host: undefined symbol: " + name).c_str()));
  }
  for (uint32_t i = 0; i < kMissingLibraries; ++i) {
    const std::string name = "libmissing_" + std::to_string(i) + ".so";
    missing_libs.push_back(w.intern_string(name.c_str()));
    missing_lib_errors.push_back(w.intern_string(
        (name + ": cannot open shared object file: No such file or directory").c_str()));
  }
  const uint32_t version = w.intern_string("PLUGIN_1.0");

  // A Python program's import stacks (CPython 3.11's shape, innermost frame first): the extension
  // module's import under a package's __init__ under `import pkg_N` at main.py line N+1; two
  // stacks in eight are cut at 64 frames below the package (deep chains of imports): one gets its
  // top-level statement from a complete stack through the package's module frame, one (under a
  // vendored package) keeps the cut.
  std::vector<uint32_t> load_stacks;
  if (options.python_loads) {
    auto str = [&](const std::string& text) { return w.intern_string(text.c_str()); };
    const uint32_t bootstrap = str("<frozen importlib._bootstrap>");
    const uint32_t external = str("<frozen importlib._bootstrap_external>");
    const uint32_t module = str("<module>");
    const format::PyFrame machinery[] = {{external, str("create_module"), 1233, 0},
                                         {bootstrap, str("_call_with_frames_removed"), 241, 0},
                                         {bootstrap, str("module_from_spec"), 571, 0},
                                         {bootstrap, str("_load_unlocked"), 674, 0}};
    const format::PyFrame call = machinery[1];
    const uint32_t main = str("/opt/bigtrace/app/main.py");
    for (uint32_t s = 0; s < kPythonLoadStacks; ++s) {
      const uint32_t pkg = s / 8, k = s % 8;
      const std::string dir = "/opt/bigtrace/py/pkg_" + std::to_string(pkg);
      std::vector<format::PyFrame> frames(std::begin(machinery), std::end(machinery));
      if (k % 4 != 3) {
        frames.push_back(
            {str(dir + "/mod_" + std::to_string(k) + ".py"), module, int32_t(3 + k), 0});
        frames.push_back(call);
        frames.push_back({str(dir + "/__init__.py"), module, int32_t(5 + k), 0});
        frames.push_back(call);
        frames.push_back({main, module, int32_t(pkg + 1), 0});
      } else {
        frames.push_back({str(dir + "/deep_" + std::to_string(k) + ".py"), module, 7, 0});
        for (uint32_t level = 0; frames.size() < 62; ++level) {
          frames.push_back({str("/opt/bigtrace/py/lib/level_" + std::to_string(level) + ".py"),
                            module, int32_t(2 + level), 0});
          if (frames.size() < 62) frames.push_back(call);
        }
        // k == 7: under a vendored package no complete stack holds, so it stays cut.
        frames.push_back(call);
        frames.push_back({str(k == 3 ? dir + "/__init__.py" : dir + "/_vendor/__init__.py"), module,
                          int32_t(5 + k), 0});
      }
      load_stacks.push_back(w.intern_py_stack(frames.data(), uint32_t(frames.size())));
    }
  }

  // The plugins: each dlopen'ed (with a dlsym from its constructor nested in the call).
  std::vector<Object> plugins;
  std::vector<uint32_t> plugin_names;
  for (uint32_t k = 0; k < kPlugins && written + 2 <= options.events; ++k) {
    const uint64_t seq = w.reserve_seq();
    char name[64];
    std::snprintf(name, sizeof name, "libplugin_%02u.so", k);
    const uint32_t name_id = w.intern_string(name);
    const Object p =
        add_object(std::string("/opt/bigtrace/plugins/") + name, name, format::ObjectCause::kDlopen,
                   k % 4 == 0 ? uint32_t{format::kObjectGlobal} : 0u, exe.id, seq,
                   0x7e0000000000 + uint64_t(k) * 0x1000000);
    plugins.push_back(p);
    plugin_names.push_back(name_id);
    code.push_back(p);

    format::EventSlot nested;
    fill(nested, w.reserve_seq(), format::CallKind::kDlsym);
    nested.name = symbols[k];
    nested.handle = p.handle;
    nested.handle_object = nested.object = p.id;
    nested.address = p.base + 0x2000 + k * 16;
    nested.parent_seq = seq;
    nested.bits |= format::kEventNested;
    w.commit(nested);

    format::EventSlot open;
    fill(open, seq, format::CallKind::kDlopen);
    open.tid = nested.tid;
    open.name = name_id;
    open.flags = open.effective_flags = RTLD_NOW | (k % 4 == 0 ? RTLD_GLOBAL : RTLD_LOCAL);
    open.handle = p.handle;
    open.object = p.id;
    open.duration_ns = 50'000 + rng.below(500'000);
    if (!load_stacks.empty()) open.py_stack = load_stacks[k * 8 % kPythonLoadStacks];
    w.commit(open);
    written += 2;
  }

  std::vector<uint32_t> stacks, py_stacks;
  if (options.stack_depth > 0) {
    std::vector<uint64_t> ips(options.stack_depth);
    for (uint32_t s = 0; s < options.distinct_stacks; ++s) {
      for (uint32_t j = 0; j < options.stack_depth; ++j) {
        const Object& o = code[(s * 7 + j * 3) % code.size()];
        ips[j] = o.base + 0x1000 + (uint64_t(s) * 131 + j * 977) % 0x20000;
      }
      stacks.push_back(w.intern_stack(ips.data(), options.stack_depth));
    }
    if (options.python_stacks) {
      for (uint32_t s = 0; s < kPyStacks; ++s) {
        format::PyFrame frames[4];
        for (uint32_t j = 0; j < 4; ++j) {
          frames[j] = {
              w.intern_string(
                  ("/opt/bigtrace/py/mod_" + std::to_string((s + j) % 12) + ".py").c_str()),
              w.intern_string(("func_" + std::to_string((s * 3 + j) % 40)).c_str()),
              int32_t(10 + s * 4 + j), 0};
        }
        py_stacks.push_back(w.intern_py_stack(frames, 4));
      }
    }
  }

  while (written < options.events && !plugins.empty()) {
    const uint32_t pick = rng.below(100);
    const uint32_t k = rng.below(kPlugins);
    const Object& p = plugins[k % plugins.size()];
    format::EventSlot e;
    if (pick < 80) {  // dlsym(handle, name)
      fill(e, w.reserve_seq(), format::CallKind::kDlsym);
      const uint32_t s = rng.below(kSymbols);
      e.name = symbols[s];
      e.handle = p.handle;
      e.handle_object = e.object = p.id;
      e.address = p.base + 0x2000 + s * 16;
    } else if (pick < 85) {  // dlsym(handle, missing) fails
      fill(e, w.reserve_seq(), format::CallKind::kDlsym);
      const uint32_t s = rng.below(kMissingSymbols);
      e.name = missing[s];
      e.handle = p.handle;
      e.handle_object = p.id;
      e.bits = 0;
      e.error = missing_errors[s];
    } else if (pick < 88) {  // dlvsym
      fill(e, w.reserve_seq(), format::CallKind::kDlvsym);
      const uint32_t s = rng.below(kSymbols);
      e.name = symbols[s];
      e.version = version;
      e.handle = p.handle;
      e.handle_object = e.object = p.id;
      e.address = p.base + 0x2000 + s * 16;
    } else if (pick < 93) {  // dlsym(RTLD_DEFAULT / RTLD_NEXT, name)
      fill(e, w.reserve_seq(), format::CallKind::kDlsym);
      const uint32_t s = rng.below(kSymbols);
      e.name = symbols[s];
      e.handle = pick < 91 ? 0 : static_cast<uint64_t>(-1);
      e.object = p.id;
      e.address = p.base + 0x2000 + s * 16;
    } else if (pick < 97) {  // dlopen of an already loaded plugin
      fill(e, w.reserve_seq(), format::CallKind::kDlopen);
      e.name = plugin_names[k % plugins.size()];
      e.flags = e.effective_flags = RTLD_NOW | RTLD_NOLOAD;
      e.bits |= format::kEventNoLoad;
      e.handle = p.handle;
      e.object = p.id;
    } else if (pick < 98) {  // dlopen of a missing library fails
      fill(e, w.reserve_seq(), format::CallKind::kDlopen);
      const uint32_t m = rng.below(kMissingLibraries);
      e.name = missing_libs[m];
      e.flags = e.effective_flags = RTLD_LAZY;
      e.bits = 0;
      e.error = missing_lib_errors[m];
    } else {  // dlclose that only drops a reference
      fill(e, w.reserve_seq(), format::CallKind::kDlclose);
      e.handle = p.handle;
      e.handle_object = e.object = p.id;
      e.result = 0;
    }
    if (!stacks.empty()) e.stack = stacks[rng.below(static_cast<uint32_t>(stacks.size()))];
    if (!py_stacks.empty() && rng.below(8) == 0)
      e.py_stack = py_stacks[rng.below(static_cast<uint32_t>(py_stacks.size()))];
    if (!load_stacks.empty() && e.call == uint16_t(format::CallKind::kDlopen)) {
      // A failing import is retried from the same few lines (one per missing library), so the
      // tree's failure leaves stay few; the successful ones come from every stack.
      e.py_stack = (e.bits & format::kEventOk) ? load_stacks[rng.below(kPythonLoadStacks)]
                                               : load_stacks[(e.name * 97) % kPythonLoadStacks];
    }
    w.commit(e);
    ++written;
  }
  w.set_end(format::EndKind::kExit, 0);
  w.close();
  return {};
}

}  // namespace dltrace::test
