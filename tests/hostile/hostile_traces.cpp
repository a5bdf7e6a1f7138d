#include "hostile_traces.h"

#include <dlfcn.h>

#include <cstring>
#include <string>
#include <vector>

#include "dltrace/format.h"
#include "trace_writer.h"

namespace dltrace::test {
namespace {

std::string open_trace(preload::TraceWriter& w, const std::string& path, uint64_t size) {
  char error[512] = {};
  if (!w.open(path.c_str(), size, 8, error, sizeof error)) return error;
  return {};
}

format::EventSlot event(uint64_t seq, format::CallKind call) {
  format::EventSlot e{};
  e.seq = seq;
  e.call = uint16_t(call);
  e.bits = format::kEventOk;
  e.time_ns = 1000 * seq;
  e.duration_ns = 500;
  e.tid = 77;
  e.name = e.version = e.error = e.stack = e.py_stack = format::kNoId;
  e.object = e.handle_object = e.caller_object = format::kNoId;
  return e;
}

uint32_t add_object(preload::TraceWriter& w, const std::string& path, const char* soname,
                    format::ObjectCause cause, uint32_t flags, uint32_t parent, uint64_t seq,
                    uint64_t base) {
  format::ObjectLoadEntry o{};
  o.path = w.intern_string(path.c_str());
  o.soname = soname ? w.intern_string(soname) : format::kNoId;
  o.cause = uint32_t(cause);
  o.flags = flags;
  o.parent = parent;
  o.opened_by = seq;
  o.load_seq = seq;
  o.base = base;
  o.map_start = base;
  o.map_end = base + 0x10000;
  o.link_map = 0x100000 + base / 0x1000;
  return w.add_object(o);
}

}  // namespace

std::string write_escape_trace(const std::string& path) {
  preload::TraceWriter w;
  if (auto err = open_trace(w, path, 1 << 20); !err.empty()) return err;
  const std::string evil = std::string("ev") + kTitleEscape + kClearScreen + "il" + kForgedLine +
                           "back\\x1b" + kInvalidUtf8 + kBidiOverride;
  const std::string exe = "/opt/" + evil + "/bin/host";
  const std::string arg = "--x" + evil;
  const char* argv[] = {exe.c_str(), arg.c_str()};
  w.write_process(exe.c_str(), ("/home/" + evil).c_str(), 2, argv);
  w.set_config_path(("/etc/" + evil + ".toml").c_str());

  const uint32_t main = add_object(w, exe, nullptr, format::ObjectCause::kStartup,
                                   format::kObjectGlobal, format::kNoId, 0, 0x400000);
  add_object(w, "/lib/" + evil + "/libc.so.6", ("libc" + evil).c_str(),
             format::ObjectCause::kNeeded, format::kObjectGlobal, main, 0, 0x7e0000000000);

  const std::string plugin = "/opt/plugins/lib" + evil + ".so";
  format::PyFrame py{w.intern_string(("/srv/" + evil + ".py").c_str()),
                     w.intern_string(("<" + evil + ">").c_str()), 3, 0};
  const uint32_t py_stack = w.intern_py_stack(&py, 1);

  // seq 1: dlopen(plugin) succeeds, loading the plugin and a dependency.
  format::EventSlot open = event(w.reserve_seq(), format::CallKind::kDlopen);
  const uint32_t lib = add_object(w, plugin, ("lib" + evil + ".so").c_str(),
                                  format::ObjectCause::kDlopen, 0, main, open.seq, 0x7f0000000000);
  add_object(w, "/opt/plugins/dep" + evil + ".so", nullptr, format::ObjectCause::kNeeded, 0, lib,
             open.seq, 0x7f0000100000);
  open.name = w.intern_string(plugin.c_str());
  open.flags = open.effective_flags = RTLD_NOW;
  open.handle = 0x100000 + 0x7f0000000000 / 0x1000;
  open.object = lib;
  open.caller_object = main;
  open.caller_ip = 0x401234;
  open.py_stack = py_stack;
  w.commit(open);

  // seq 2: dlopen of a missing library fails with a dlerror text full of escapes.
  format::EventSlot failed = event(w.reserve_seq(), format::CallKind::kDlopen);
  failed.name = w.intern_string(("libmissing" + evil + ".so").c_str());
  failed.flags = failed.effective_flags = RTLD_NOW;
  failed.bits = 0;
  failed.error = w.intern_string(
      ("libmissing" + evil + ".so: cannot open shared object file: No such file or directory")
          .c_str());
  failed.caller_object = main;
  failed.caller_ip = 0x401234;
  failed.py_stack = py_stack;
  w.commit(failed);

  // seq 3: dlsym(plugin, name) finds it; seq 4: dlvsym of a missing symbol and version fails.
  format::EventSlot sym = event(w.reserve_seq(), format::CallKind::kDlsym);
  sym.name = w.intern_string(("init_" + evil).c_str());
  sym.handle = open.handle;
  sym.handle_object = lib;
  sym.object = lib;
  sym.address = 0x7f0000000040;
  sym.caller_object = main;
  sym.caller_ip = 0x401240;
  w.commit(sym);

  format::EventSlot vsym = event(w.reserve_seq(), format::CallKind::kDlvsym);
  vsym.name = w.intern_string(("gone_" + evil).c_str());
  vsym.version = w.intern_string(("V_" + evil).c_str());
  vsym.handle = open.handle;
  vsym.handle_object = lib;
  vsym.bits = 0;
  vsym.error = w.intern_string((plugin + ": undefined symbol: gone_" + evil).c_str());
  vsym.caller_object = main;
  vsym.caller_ip = 0x401250;
  w.commit(vsym);

  w.set_end(format::EndKind::kExit, 0);
  w.close();
  return {};
}

std::string write_pointing_trace(const std::string& path, const std::vector<std::string>& targets) {
  preload::TraceWriter w;
  if (auto err = open_trace(w, path, 4 << 20); !err.empty()) return err;
  const std::string exe = targets.empty() ? "/usr/bin/host" : targets.front();
  const char* argv[] = {exe.c_str()};
  w.write_process(exe.c_str(), "/", 1, argv);
  const uint32_t main = add_object(w, exe, nullptr, format::ObjectCause::kStartup,
                                   format::kObjectGlobal, format::kNoId, 0, 0x400000);
  uint64_t base = 0x7f0000000000;
  std::vector<uint64_t> ips = {0x401000};
  for (const std::string& target : targets) {
    // A dlopen that loaded the target, with a Python frame in it and a stack frame inside it.
    format::EventSlot open = event(w.reserve_seq(), format::CallKind::kDlopen);
    const uint32_t id =
        add_object(w, target, nullptr, format::ObjectCause::kDlopen, 0, main, open.seq, base);
    open.name = w.intern_string(target.c_str());
    open.flags = open.effective_flags = RTLD_NOW;
    open.handle = 0x100000 + base / 0x1000;
    open.object = id;
    open.caller_object = main;
    open.caller_ip = 0x401000;
    ips.push_back(base + 0x100);
    open.stack = w.intern_stack(ips.data(), static_cast<uint32_t>(ips.size()));
    format::PyFrame py{w.intern_string(target.c_str()), w.intern_string("<module>"), 1, 0};
    open.py_stack = w.intern_py_stack(&py, 1);
    w.commit(open);

    // A dlsym answered by it, called from inside it.
    format::EventSlot sym = event(w.reserve_seq(), format::CallKind::kDlsym);
    sym.name = w.intern_string("some_symbol");
    sym.handle = open.handle;
    sym.handle_object = id;
    sym.object = id;
    sym.address = base + 0x200;
    sym.caller_object = id;
    sym.caller_ip = base + 0x300;
    sym.stack = open.stack;
    w.commit(sym);

    // A failed dlopen of the same path (explain reads the file to say why), and a failed dlsym.
    format::EventSlot failed = event(w.reserve_seq(), format::CallKind::kDlopen);
    failed.name = open.name;
    failed.flags = failed.effective_flags = RTLD_NOW;
    failed.bits = 0;
    failed.error = w.intern_string((target + ": invalid ELF header").c_str());
    failed.caller_object = main;
    failed.caller_ip = 0x401000;
    failed.py_stack = open.py_stack;
    w.commit(failed);

    format::EventSlot missing = event(w.reserve_seq(), format::CallKind::kDlsym);
    missing.name = w.intern_string("missing_symbol");
    missing.handle = open.handle;
    missing.handle_object = id;
    missing.bits = 0;
    missing.error = w.intern_string((target + ": undefined symbol: missing_symbol").c_str());
    missing.caller_object = main;
    missing.caller_ip = 0x401010;
    w.commit(missing);
    base += 0x100000;
  }
  w.set_end(format::EndKind::kExit, 0);
  w.close();
  return {};
}

std::string write_nested_trace(const std::string& path, uint32_t depth) {
  preload::TraceWriter w;
  uint64_t slots = 1;
  while (slots < depth + 16) slots *= 2;
  // The ring, plus a catalog of `depth` objects and names (the writer keeps a quarter for it).
  const uint64_t size = (slots * format::kSlotSize + uint64_t{depth} * 512 + (1u << 20)) * 2;
  if (auto err = open_trace(w, path, size); !err.empty()) return err;
  const char* argv[] = {"nest"};
  w.write_process("/usr/bin/nest", "/", 1, argv);
  const uint32_t main = add_object(w, "/usr/bin/nest", nullptr, format::ObjectCause::kStartup,
                                   format::kObjectGlobal, format::kNoId, 0, 0x400000);
  // Seqs are reserved as the calls start (outermost first); each completes inside its parent.
  std::vector<uint64_t> seqs(depth);
  for (uint32_t i = 0; i < depth; ++i) seqs[i] = w.reserve_seq();
  std::vector<uint32_t> objects(depth);
  uint32_t caller = main;
  for (uint32_t i = 0; i < depth; ++i) {
    const std::string name = "/opt/nest/libn" + std::to_string(i) + ".so";
    objects[i] = add_object(w, name, nullptr, format::ObjectCause::kDlopen, 0, caller, seqs[i],
                            0x7f0000000000 + uint64_t{i} * 0x100000);
    caller = objects[i];
  }
  for (uint32_t k = depth; k-- > 0;) {
    format::EventSlot e = event(seqs[k], format::CallKind::kDlopen);
    const std::string name = "libn" + std::to_string(k) + ".so";
    e.name = w.intern_string(name.c_str());
    e.flags = e.effective_flags = RTLD_NOW;
    e.handle = 0x100000 + (0x7f0000000000 + uint64_t{k} * 0x100000) / 0x1000;
    e.object = objects[k];
    e.caller_object = k ? objects[k - 1] : main;
    e.caller_ip = k ? 0x7f0000000000 + uint64_t{k - 1} * 0x100000 + 0x100 : 0x401000;
    e.duration_ns = uint64_t{depth - k} * 2000;
    e.parent_seq = k ? seqs[k - 1] : 0;
    if (k) e.bits |= format::kEventNested;
    w.commit(e);
  }
  w.set_end(format::EndKind::kExit, 0);
  w.close();
  return {};
}

}  // namespace dltrace::test
