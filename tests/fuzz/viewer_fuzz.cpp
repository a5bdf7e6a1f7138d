// libFuzzer target, structure-aware: the input is a recipe that builds a trace with the recorder's
// own TraceWriter (so the reader accepts it and the fuzzing reaches what reads past the reader),
// then every analysis and renderer runs on it: the model, load graph, scopes (and --for each
// object), explain (text and JSON), tree, show with stacks (symbolizer), stats, the HTML report,
// both DOT graphs and every export. Strings come from a pool an attacker would use: terminal
// escapes, invalid UTF-8, and paths to a FIFO, /dev/zero, a secret file, a directory, a real ELF
// file and random bytes, so the ELF reading, the Python source reading and the symbolizer get
// them too. A hang (a FIFO opened blocking) is a libFuzzer timeout; text output is checked for
// control bytes, and no output may contain the secret file's line.
#include <fuzzer/FuzzedDataProvider.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "commands/explain_command.h"
#include "commands/scopes_command.h"
#include "commands/show_command.h"
#include "commands/stats_command.h"
#include "commands/tree_command.h"
#include "dltrace/format.h"
#include "dltrace/reader.h"
#include "render/chrome_export.h"
#include "render/dot_load_graph.h"
#include "render/dot_scope_graph.h"
#include "render/html_report.h"
#include "render/json_export.h"
#include "render/json_writer.h"
#include "trace_writer.h"

using namespace dltrace;

namespace {

constexpr const char* kSecret = "SECRET-HASH-LINE";

std::string g_dir;
std::string g_trace;
std::vector<std::string> g_pool;

void setup() {
  char templ[] = "/tmp/dltrace-viewer-fuzz.XXXXXX";
  if (!mkdtemp(templ)) std::abort();
  g_dir = templ;
  g_trace = g_dir + "/f.trace";
  mkfifo((g_dir + "/fifo.so").c_str(), 0600);
  std::ofstream(g_dir + "/secret.so") << "root:" << kSecret << ":19000:0:99999:7:::\n";
  mkdir((g_dir + "/dir.so").c_str(), 0755);
  char self[4096] = {};
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  g_pool = {
      g_dir + "/fifo.so",
      "/dev/zero",
      g_dir + "/secret.so",
      g_dir + "/dir.so",
      n > 0 ? std::string(self, size_t(n)) : "/bin/true",
      "/lib/x86_64-linux-gnu/libc.so.6",
      "libc.so.6",
      "libmissing.so",
      "/opt/p/lib\x1b]0;t\x07\x1b[2J.so",
      "name\r\n0 problems\n",
      "bad\xff\xfe\xc3",
      "back\\x1bslash",
      "\xe2\x80\xae"
      "rtl",
      "",
      "<frozen importlib._bootstrap>",
      "app.py",
  };
}

std::string pick_string(FuzzedDataProvider& in) {
  const size_t k = in.ConsumeIntegralInRange<size_t>(0, g_pool.size());
  if (k < g_pool.size()) return g_pool[k];
  std::string s = in.ConsumeRandomLengthString(48);
  // The secret in the output must come from reading the file, not from a string the fuzzer
  // learned from the check itself and put into the trace.
  if (s.find(kSecret) != std::string::npos) s = "x";
  return s;
}

uint32_t intern(preload::TraceWriter& w, FuzzedDataProvider& in, bool allow_none = true) {
  if (allow_none && in.ConsumeIntegralInRange<int>(0, 5) == 0) return format::kNoId;
  return w.intern_string(pick_string(in).c_str());
}

struct Built {
  std::vector<uint64_t> bases;
};

bool build_trace(FuzzedDataProvider& in) {
  unlink(g_trace.c_str());
  preload::TraceWriter w;
  char error[512];
  if (!w.open(g_trace.c_str(), format::kMinBufferSize, 8, error, sizeof error)) return false;
  const std::string exe = pick_string(in);
  std::vector<std::string> args;
  for (int i = in.ConsumeIntegralInRange<int>(0, 3); i > 0; --i) args.push_back(pick_string(in));
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  w.write_process(exe.c_str(), pick_string(in).c_str(), static_cast<int>(argv.size()), argv.data());
  if (in.ConsumeBool()) w.set_config_path(pick_string(in).c_str());

  const int events = in.ConsumeIntegralInRange<int>(0, 48);
  std::vector<uint64_t> bases;
  std::vector<uint32_t> ids;
  for (int i = in.ConsumeIntegralInRange<int>(0, 10); i > 0; --i) {
    format::ObjectLoadEntry o{};
    o.path = w.intern_string(i == 1 ? exe.c_str() : pick_string(in).c_str());
    o.soname = intern(w, in);
    o.cause = in.ConsumeIntegralInRange<uint32_t>(0, 4);
    o.flags = in.ConsumeIntegral<uint8_t>();
    o.parent = ids.empty() || in.ConsumeBool()
                   ? format::kNoId
                   : ids[in.ConsumeIntegralInRange<size_t>(0, ids.size() - 1)];
    o.opened_by = in.ConsumeIntegralInRange<uint64_t>(0, uint64_t(events) + 1);
    o.load_seq = in.ConsumeBool() ? o.opened_by : in.ConsumeIntegralInRange<uint64_t>(0, 50);
    o.lmid = in.ConsumeIntegralInRange<int64_t>(-1, 2);
    o.base = 0x7f0000000000 + 0x100000 * in.ConsumeIntegralInRange<uint64_t>(0, 8);
    o.map_start = o.base;
    o.map_end = o.base + in.ConsumeIntegralInRange<uint64_t>(0, 0x20000);
    o.link_map = 0x10000 + ids.size() * 0x100;
    o.build_id_len = in.ConsumeIntegralInRange<uint32_t>(0, 20);
    for (uint32_t k = 0; k < o.build_id_len; ++k) o.build_id[k] = in.ConsumeIntegral<uint8_t>();
    const uint32_t id = w.add_object(o);
    ids.push_back(id);
    bases.push_back(o.base);
    if (in.ConsumeIntegralInRange<int>(0, 4) == 0)
      w.object_unloaded(id, in.ConsumeIntegralInRange<uint64_t>(0, uint64_t(events) + 1));
    if (in.ConsumeIntegralInRange<int>(0, 4) == 0)
      w.object_promoted(id, in.ConsumeIntegralInRange<uint64_t>(0, uint64_t(events) + 1));
  }
  auto any_object = [&]() {
    return ids.empty() || in.ConsumeIntegralInRange<int>(0, 3) == 0
               ? format::kNoId
               : ids[in.ConsumeIntegralInRange<size_t>(0, ids.size() - 1)];
  };
  auto any_address = [&]() -> uint64_t {
    if (bases.empty() || in.ConsumeIntegralInRange<int>(0, 4) == 0)
      return in.ConsumeIntegral<uint64_t>();
    return bases[in.ConsumeIntegralInRange<size_t>(0, bases.size() - 1)] +
           in.ConsumeIntegralInRange<uint64_t>(0, 0x20000);
  };
  std::vector<uint64_t> seqs;
  for (int i = 0; i < events; ++i) seqs.push_back(w.reserve_seq());
  for (int i = 0; i < events && in.remaining_bytes() > 0; ++i) {
    if (in.ConsumeIntegralInRange<int>(0, 15) == 0) continue;  // reserved, never committed
    format::EventSlot e{};
    e.seq = seqs[size_t(i)];
    e.call = in.ConsumeIntegralInRange<uint16_t>(0, format::kCallKindCount + 1);
    e.bits = in.ConsumeIntegral<uint8_t>();
    e.tid = in.ConsumeIntegralInRange<uint32_t>(1, 3);
    e.time_ns = in.ConsumeIntegralInRange<uint64_t>(0, 1u << 20) * 1000;
    e.duration_ns = in.ConsumeIntegralInRange<uint64_t>(0, 1u << 20);
    e.parent_seq =
        i && in.ConsumeBool() ? seqs[in.ConsumeIntegralInRange<size_t>(0, size_t(i) - 1)] : 0;
    e.name = intern(w, in);
    e.version = intern(w, in);
    e.error = intern(w, in);
    e.flags = in.ConsumeIntegral<int32_t>() & 0x1f10b;
    e.effective_flags = in.ConsumeBool() ? e.flags : (in.ConsumeIntegral<int32_t>() & 0x1f10b);
    e.lmid = in.ConsumeIntegralInRange<int64_t>(-1, 2);
    e.object = any_object();
    e.handle_object = any_object();
    e.caller_object = any_object();
    e.handle =
        in.ConsumeBool() ? any_address() : in.PickValueInArray<uint64_t>({0, ~0ull, 0x10000});
    e.address = any_address();
    e.caller_ip = any_address();
    e.result = in.ConsumeIntegralInRange<int32_t>(-1, 1);
    e.override_line = in.ConsumeIntegralInRange<uint32_t>(0, 9);
    if (in.ConsumeBool()) {
      uint64_t ips[8];
      const uint32_t depth = in.ConsumeIntegralInRange<uint32_t>(1, 8);
      for (uint32_t k = 0; k < depth; ++k) ips[k] = any_address();
      e.stack = w.intern_stack(ips, depth);
    } else {
      e.stack = format::kNoId;
    }
    if (in.ConsumeBool()) {
      format::PyFrame frames[3];
      const uint32_t depth = in.ConsumeIntegralInRange<uint32_t>(1, 3);
      for (uint32_t k = 0; k < depth; ++k)
        frames[k] = {w.intern_string(pick_string(in).c_str()), intern(w, in, false),
                     in.ConsumeIntegralInRange<int32_t>(-1, 4), 0};
      e.py_stack = w.intern_py_stack(frames, depth);
    } else {
      e.py_stack = format::kNoId;
    }
    if (in.ConsumeIntegralInRange<int>(0, 5) == 0)
      w.add_override({e.seq, e.override_line, e.flags, e.effective_flags, 0});
    w.commit(e);
  }
  if (in.ConsumeBool())
    w.set_end(static_cast<format::EndKind>(in.ConsumeIntegralInRange<uint32_t>(0, 4)),
              in.ConsumeIntegral<int8_t>());
  w.close();
  return true;
}

std::string read_all(std::FILE* f) {
  std::string out;
  std::rewind(f);
  char buf[65536];
  while (size_t n = std::fread(buf, 1, sizeof buf, f)) out.append(buf, n);
  return out;
}

// Runs `render` into a temporary file; checks what it wrote.
template <typename Render>
void check_output(bool text, Render&& render) {
  std::FILE* f = std::tmpfile();
  if (!f) std::abort();
  render(f);
  const std::string out = read_all(f);
  std::fclose(f);
  if (out.find(kSecret) != std::string::npos) {
    std::fprintf(stderr, "output holds the content of a file the trace points at\n");
    std::abort();
  }
  if (!text) return;
  for (unsigned char c : out) {
    if ((c < 0x20 && c != '\n') || c == 0x7f) {
      std::fprintf(stderr, "a control byte 0x%02x reached text output:\n%s\n", c, out.c_str());
      std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setup();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  if (!build_trace(in)) return 0;
  std::string error;
  auto reader = TraceReader::open(g_trace, &error);
  if (!reader) return 0;
  using namespace viewer;
  check_output(true, [&](std::FILE* f) {
    ShowOptions o;
    o.stacks = true;
    o.color = ColorMode::kNever;
    (void)show_trace(*reader, o, f);
  });
  check_output(true, [&](std::FILE* f) {
    TreeOptions o;
    o.all = true;
    (void)tree_trace(*reader, o, false, f);
  });
  check_output(true, [&](std::FILE* f) {
    ExplainOptions o;
    o.probes = true;
    (void)explain_trace_to(*reader, o, f);
  });
  check_output(false, [&](std::FILE* f) {
    ExplainOptions o;
    o.json = true;
    (void)explain_trace_to(*reader, o, f);
  });
  check_output(true, [&](std::FILE* f) { (void)scopes_trace(*reader, ScopesOptions{}, f); });
  for (const auto& o : reader->objects()) {
    check_output(true, [&](std::FILE* f) {
      ScopesOptions s;
      s.for_object = "#" + std::to_string(o.id);
      (void)scopes_trace(*reader, s, f);
    });
  }
  check_output(true, [&](std::FILE* f) { (void)stats_trace(*reader, StatsOptions{}, f); });
  check_output(false, [&](std::FILE* f) {
    StatsOptions o;
    o.json = true;
    (void)stats_trace(*reader, o, f);
  });
  check_output(false,
               [&](std::FILE* f) { (void)write_html_report(*reader, HtmlReportOptions{}, f); });
  check_output(false, [&](std::FILE* f) {
    if (auto dot = load_graph_dot(*reader, LoadGraphOptions{}); dot.ok())
      std::fputs(dot->c_str(), f);
    if (auto dot = scope_graph_dot(*reader, ScopeGraphOptions{}); dot.ok())
      std::fputs(dot->c_str(), f);
  });
  check_output(false, [&](std::FILE* f) {
    for (auto flavor : {JsonFlavor::kJson, JsonFlavor::kJsonl}) {
      JsonWriter w(f);
      JsonExportOptions o;
      o.flavor = flavor;
      (void)write_json_export(*reader, o, w);
    }
    JsonWriter chrome(f);
    (void)write_chrome_export(*reader, chrome);
  });
  return 0;
}
