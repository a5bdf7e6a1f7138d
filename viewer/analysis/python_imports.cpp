#include "analysis/python_imports.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <utility>

#include "analysis/file_kind.h"
#include "model/in_flight.h"
#include "model/trace_model.h"

namespace dltrace::viewer {
namespace {

bool ends_with_path(std::string_view file, std::string_view tail) {
  return file.size() > tail.size() && file.ends_with(tail) &&
         file[file.size() - tail.size() - 1] == '/';
}

// importlib's bootstrap: frozen into the interpreter since 3.3 ("<frozen importlib._bootstrap>",
// "<frozen importlib._bootstrap_external>"), or from source files in some builds.
bool is_importlib_bootstrap(std::string_view file) {
  return file.starts_with("<frozen importlib._bootstrap") ||
         ends_with_path(file, "importlib/_bootstrap.py") ||
         ends_with_path(file, "importlib/_bootstrap_external.py");
}

bool is_frozen(std::string_view file) {
  return file.starts_with("<frozen ");
}

PyLine line_of(const TraceReader& reader, const format::PyFrame& f) {
  return PyLine{std::string(reader.has_string(f.file) ? reader.string(f.file) : "?"), f.line,
                std::string(reader.has_string(f.function) ? reader.string(f.function) : "?")};
}

}  // namespace

std::string py_line_text(const PyLine& line) {
  std::string s = fmt::format("{}:{}", line.file, line.line);
  if (line.function != "<module>" && !line.function.empty()) {
    s.append(" in ");
    s.append(line.function);
  }
  return s;
}

bool is_import_machinery(std::string_view file, std::string_view function) {
  if (is_importlib_bootstrap(file)) return true;
  // importlib.import_module(name): the caller named the module, not this frame.
  if (ends_with_path(file, "importlib/__init__.py") && function == "import_module") return true;
  // ctypes.CDLL / cdll.LoadLibrary: the user's CDLL(...) line is the one that loaded the
  // library. ctypes' module body is not machinery: its own imports are real statements.
  return ends_with_path(file, "ctypes/__init__.py") && function != "<module>";
}

bool is_stdlib_file(std::string_view file) {
  // .../lib/pythonX.Y/<module> but not .../pythonX.Y/{site,dist}-packages/ (nor Debian's
  // /usr/lib/python3/dist-packages, which has no minor version and is not the stdlib anyway).
  for (size_t at = file.find("/python"); at != std::string_view::npos;
       at = file.find("/python", at + 1)) {
    const std::string_view before = file.substr(0, at);
    if (!before.ends_with("/lib") && !before.ends_with("/lib64")) continue;
    size_t i = at + 7;
    size_t digits = 0;
    while (i < file.size() && std::isdigit(static_cast<unsigned char>(file[i]))) ++i, ++digits;
    if (digits == 0 || i >= file.size() || file[i] != '.') continue;
    ++i;
    size_t minor = 0;
    while (i < file.size() && std::isdigit(static_cast<unsigned char>(file[i]))) ++i, ++minor;
    if (minor == 0 || i >= file.size() || file[i] != '/') continue;
    const std::string_view rest = file.substr(i + 1);
    return !rest.starts_with("site-packages/") && !rest.starts_with("dist-packages/");
  }
  return false;
}

PyAttribution attribute_python_stack(const TraceReader& reader,
                                     std::span<const format::PyFrame> stack) {
  PyAttribution a;
  if (stack.empty()) return a;
  a.truncated = stack.size() >= kRecordedPythonFrames;
  for (const format::PyFrame& f : stack) {
    const std::string_view file = reader.string(f.file);
    const std::string_view function = reader.string(f.function);
    if (is_importlib_bootstrap(file)) a.via_import = true;
    if (!is_import_machinery(file, function)) {
      a.site = line_of(reader, f);
      break;
    }
  }
  const format::PyFrame* user = nullptr;
  const format::PyFrame* unfrozen = nullptr;
  for (auto it = stack.rbegin(); it != stack.rend() && !user; ++it) {
    const std::string_view file = reader.string(it->file);
    if (is_frozen(file) || is_import_machinery(file, reader.string(it->function))) continue;
    if (!unfrozen) unfrozen = &*it;
    if (!is_stdlib_file(file)) user = &*it;
  }
  if (const format::PyFrame* top = user ? user : unfrozen) {
    a.top = line_of(reader, *top);
  } else {
    a.top = line_of(reader, stack.back());
  }
  if (!a.site) a.site = a.top;
  if (a.truncated) {
    for (auto it = stack.rbegin(); it != stack.rend(); ++it) {
      const std::string_view file = reader.string(it->file);
      if (reader.string(it->function) == "<module>" && !is_frozen(file)) {
        a.anchor = std::string(file);
        break;
      }
    }
  }
  return a;
}

void TopLevelResolver::add(const TraceReader& reader, std::span<const format::PyFrame> stack,
                           const PyAttribution& attribution) {
  if (attribution.truncated || !attribution.top) return;
  for (const format::PyFrame& f : stack) {
    if (reader.string(f.function) != "<module>") continue;
    top_of_module_.try_emplace(std::string(reader.string(f.file)), *attribution.top);
  }
}

bool TopLevelResolver::resolve(PyAttribution& attribution) const {
  if (!attribution.truncated || attribution.anchor.empty()) return false;
  auto it = top_of_module_.find(attribution.anchor);
  if (it == top_of_module_.end()) return false;
  attribution.top = it->second;
  attribution.truncated = false;
  return true;
}

PythonLoadCollector::PythonLoadCollector(const TraceReader& reader, const TraceModel& model,
                                         size_t slowest)
    : reader_(reader), model_(model), keep_(slowest) {}

void PythonLoadCollector::add(const format::EventSlot& e) {
  if (!is_open_call(e.call) || e.py_stack == format::kNoId) return;
  auto [it, fresh] = stack_index_.try_emplace(e.py_stack, stacks_.size());
  if (fresh) {
    const auto stack = reader_.py_stack(e.py_stack);
    if (stack.empty()) {
      it->second = kNoStack;
    } else {
      // The resolver keeps the first complete stack per module frame: adding each stack at its
      // first use gives the same map as adding it at every call.
      StackLoads s{attribute_python_stack(reader_, stack)};
      resolver_.add(reader_, stack, s.where);
      stacks_.push_back(std::move(s));
    }
  }
  if (it->second == kNoStack) return;
  StackLoads& s = stacks_[it->second];
  const bool ok = !failed_call(e);
  const uint64_t duration = model_.duration_ns(e);
  const size_t new_objects = model_.new_objects(e.seq).size();
  const uint64_t order = count_++;
  if (e.parent_seq == 0) s.total_ns += duration;
  ++s.loads;
  s.objects += new_objects;
  if (!ok) ++s.failed;

  if (keep_ == 0) return;
  const Ranked r{duration,   order,       e.seq, e.name,           ok ? e.object : format::kNoId,
                 it->second, new_objects, ok,    e.parent_seq != 0};
  if (slowest_.size() < keep_) {
    slowest_.push_back(r);
  } else if (ranks_before(r, slowest_.front())) {
    std::ranges::pop_heap(slowest_, ranks_before);
    slowest_.back() = r;
  } else {
    return;
  }
  std::ranges::push_heap(slowest_, ranks_before);
}

PythonLoads PythonLoadCollector::finish() && {
  PythonLoads out;
  out.count = count_;
  for (StackLoads& s : stacks_) resolver_.resolve(s.where);

  // Stacks in order of first use: a statement's first stack holds its first call.
  absl::flat_hash_map<std::pair<std::string, int>, size_t> index;
  for (const StackLoads& s : stacks_) {
    if (!s.where.top) continue;
    auto [it, fresh] =
        index.try_emplace(std::pair(s.where.top->file, s.where.top->line), out.top_level.size());
    if (fresh) out.top_level.push_back(TopLevelLoads{*s.where.top});
    TopLevelLoads& t = out.top_level[it->second];
    t.truncated |= s.where.truncated;
    t.total_ns += s.total_ns;
    t.loads += s.loads;
    t.objects += s.objects;
    t.failed += s.failed;
  }
  std::ranges::stable_sort(out.top_level, [](const TopLevelLoads& a, const TopLevelLoads& b) {
    return a.total_ns > b.total_ns;
  });

  std::ranges::sort_heap(slowest_, ranks_before);
  out.slowest.reserve(slowest_.size());
  for (const Ranked& r : slowest_) {
    PyLoad& l = out.slowest.emplace_back();
    l.seq = r.seq;
    if (reader_.has_string(r.name)) l.file = reader_.string(r.name);
    l.object = r.object;
    l.duration_ns = r.duration_ns;
    l.ok = r.ok;
    l.nested = r.nested;
    l.new_objects = r.new_objects;
    l.where = stacks_[r.stack].where;
  }
  slowest_ = {};  // consumed: its owner may live on while the result is printed
  return out;
}

PythonLoads collect_python_loads(const TraceReader& reader, const TraceModel& model,
                                 size_t slowest) {
  PythonLoadCollector collector(reader, model, slowest);
  reader.for_each_event([&](const format::EventSlot& e) {
    collector.add(e);
    return true;
  });
  return std::move(collector).finish();
}

namespace {

std::vector<std::string> read_python_source(const std::string& path) {
  constexpr size_t kMaxLines = 200000;
  constexpr uint64_t kMaxBytes = 16u << 20;
  std::vector<std::string> lines;
  if (!path.ends_with(".py") && !path.ends_with(".pyw")) return lines;
  auto opened = open_regular_file(path);
  if (!opened.ok()) return lines;
  std::string text(std::min(opened->size, kMaxBytes), '\0');
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n =
        pread(opened->fd, text.data() + got, text.size() - got, static_cast<off_t>(got));
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close(opened->fd);
  text.resize(got);
  std::string_view rest = text;
  while (!rest.empty() && lines.size() < kMaxLines) {
    const size_t nl = rest.find('\n');
    lines.emplace_back(rest.substr(0, nl));
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  return lines;
}

}  // namespace

std::optional<std::string> SourceLines::line(const std::string& file, int line) {
  if (file.empty() || file.front() == '<' || line <= 0) return std::nullopt;
  auto [it, fresh] = files_.try_emplace(file);
  if (fresh) {
    std::string path = file;
    if (path.front() != '/' && !cwd_.empty()) path = fmt::format("{}/{}", cwd_, file);
    // The path comes from the trace: read only a Python source file (a regular *.py file, opened
    // without blocking), and only so much of it, so a trace cannot make the viewer print a line
    // of /etc/shadow, hang on a FIFO or read /dev/zero.
    for (std::string text : read_python_source(path)) it->second.push_back(std::move(text));
  }
  const auto& lines = it->second;
  if (static_cast<size_t>(line) > lines.size()) return std::nullopt;
  std::string_view text = lines[static_cast<size_t>(line) - 1];
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  if (text.empty()) return std::nullopt;
  return std::string(text);
}

}  // namespace dltrace::viewer
