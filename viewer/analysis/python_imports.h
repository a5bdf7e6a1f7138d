// Which Python line caused a load: the import statement (or ctypes call) behind each dlopen that
// carries a Python stack, and the top-level statement of the script it came from, so that tree
// and stats can attribute native load time to Python source lines (a native-load complement to
// `python -X importtime`).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "dltrace/format.h"
#include "dltrace/reader.h"

namespace dltrace::viewer {

class TraceModel;

// The recorder keeps at most this many Python frames per event (preload/python_stack.h): a stack
// of exactly this depth may have lost its outermost frames.
inline constexpr size_t kRecordedPythonFrames = 64;

struct PyLine {
  std::string file;
  int line = 0;
  std::string function;
  bool operator==(const PyLine&) const = default;
};

// "file:line", plus " in FUNCTION" unless the frame is module level.
std::string py_line_text(const PyLine& line);

struct PyAttribution {
  // The dlopen ran inside importlib: an import statement caused it (else e.g. ctypes.CDLL).
  bool via_import = false;
  // The statement that caused the load: the innermost frame outside the import machinery
  // (importlib's frozen bootstrap, importlib.import_module) and ctypes' own CDLL functions.
  std::optional<PyLine> site;
  // The top-level statement: the outermost frame of user code, i.e. not frozen and not in the
  // standard library (threading's and multiprocessing's bootstrap frames are skipped); the
  // outermost non-frozen frame when there is no such frame.
  std::optional<PyLine> top;
  bool truncated = false;  // the stack hit kRecordedPythonFrames: `top` may not be outermost
  // For a truncated stack: the file of its outermost recorded module-level frame, which
  // TopLevelResolver can tie to a complete stack.
  std::string anchor;
};

// Attribution of one recorded Python stack (innermost frame first). Empty stack: no site/top.
PyAttribution attribute_python_stack(const TraceReader& reader,
                                     std::span<const format::PyFrame> stack);

// Completes the top-level statement of stacks cut at the recorder's frame limit (deep imports,
// e.g. numpy's). A module's body runs once per process, so everything outside one of its
// module-level frames is the same in every stack that holds it: a cut stack whose outermost
// recorded module frame also appears in a complete stack has that stack's top-level statement.
class TopLevelResolver {
 public:
  // Remembers the module-level frames of a complete (not truncated) stack.
  void add(const TraceReader& reader, std::span<const format::PyFrame> stack,
           const PyAttribution& attribution);
  // Replaces the top of a truncated attribution when its anchor was seen in a complete stack;
  // it is then no longer truncated. Returns whether it did.
  bool resolve(PyAttribution& attribution) const;

 private:
  absl::flat_hash_map<std::string, PyLine> top_of_module_;
};

// Frame classification, exposed for tests.
bool is_import_machinery(std::string_view file, std::string_view function);
bool is_stdlib_file(std::string_view file);

// One dlopen/dlmopen made while Python code ran (its event carries a Python stack).
struct PyLoad {
  uint64_t seq = 0;
  std::string file;                 // the name passed to dlopen ("" for NULL)
  uint32_t object = format::kNoId;  // the object opened (kNoId when the call failed)
  uint64_t duration_ns = 0;         // including constructors
  bool ok = false;
  bool nested = false;  // inside another traced call: its time is counted there
  size_t new_objects = 0;
  PyAttribution where;
};

// Native load time summed per top-level statement.
struct TopLevelLoads {
  PyLine line;
  bool truncated = false;  // some of its stacks were cut: the real top may be further out
  uint64_t total_ns = 0;   // durations of its loads that are not nested in another traced call
  size_t loads = 0;        // dlopen calls
  size_t objects = 0;      // objects they brought in
  size_t failed = 0;
};

struct PythonLoads {
  uint64_t count = 0;                    // dlopen calls made from Python
  std::vector<TopLevelLoads> top_level;  // most time first (ties: first seen first)
  std::vector<PyLoad> slowest;           // the N slowest, most time first (ties: the earlier call)
};

// Attributes the dlopen calls made from Python as the events stream past. The attribution is a
// function of the Python stack, so what it keeps is one aggregate per distinct stack (bounded by
// the catalog) and the N slowest calls, not a record per call: a trace of millions of imports
// costs no more than one of thousands.
class PythonLoadCollector {
 public:
  // `slowest`: how many of the slowest calls to keep (PythonLoads::slowest).
  PythonLoadCollector(const TraceReader& reader, const TraceModel& model, size_t slowest);
  // Each event once, in the reader's order (ties between equal durations go to the earlier).
  void add(const format::EventSlot& e);
  // Completes cut stacks from every complete one seen, then sums per top-level statement.
  PythonLoads finish() &&;

 private:
  // The calls made with one Python stack.
  struct StackLoads {
    PyAttribution where;
    uint64_t total_ns = 0;  // of the calls not nested in another traced call
    size_t loads = 0;
    size_t objects = 0;
    size_t failed = 0;
  };
  // A call among the slowest so far: ids only, a PyLoad is made of it in finish() (when its
  // stack's attribution is final), so that a large N costs a few words per call.
  struct Ranked {
    uint64_t duration_ns = 0;
    uint64_t order = 0;  // position among the calls, for ties
    uint64_t seq = 0;
    uint32_t name = format::kNoId;
    uint32_t object = format::kNoId;
    size_t stack = 0;  // into stacks_
    size_t new_objects = 0;
    bool ok = false;
    bool nested = false;
  };
  static bool ranks_before(const Ranked& a, const Ranked& b) {
    return a.duration_ns != b.duration_ns ? a.duration_ns > b.duration_ns : a.order < b.order;
  }
  static constexpr size_t kNoStack = static_cast<size_t>(-1);  // an id without readable frames

  const TraceReader& reader_;
  const TraceModel& model_;
  size_t keep_;
  uint64_t count_ = 0;
  absl::flat_hash_map<uint32_t, size_t> stack_index_;  // py_stack id -> stacks_ (or kNoStack)
  std::vector<StackLoads> stacks_;                     // in order of first use
  TopLevelResolver resolver_;
  std::vector<Ranked> slowest_;  // a heap whose front ranks last
};

// One pass over the events.
PythonLoads collect_python_loads(const TraceReader& reader, const TraceModel& model,
                                 size_t slowest);

// Text of source lines, read once per file (relative names resolve against `cwd`): shown next to
// file:line like a Python traceback does. Nothing for pseudo-files ("<string>") or unreadable
// files.
class SourceLines {
 public:
  explicit SourceLines(std::string cwd = {}) : cwd_(std::move(cwd)) {}
  // The line, whitespace-trimmed; nullopt if unknown.
  std::optional<std::string> line(const std::string& file, int line);

 private:
  std::string cwd_;
  absl::flat_hash_map<std::string, std::vector<std::string>> files_;
};

}  // namespace dltrace::viewer
