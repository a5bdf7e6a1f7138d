#include "python_stack.h"

#include <link.h>
#include <sys/types.h>

#include <atomic>
#include <cstring>

#include "dltrace/format.h"
#include "fork_gate.h"
#include "object_table.h"
#include "real_functions.h"
#include "thread_state.h"
#include "trace_writer.h"

namespace dltrace::preload {
namespace python_stack_detail {

// The C API subset we use, as opaque pointers (no Python headers: any 3.x ABI).
struct PyApi {
  int (*is_initialized)();
  int (*is_finalizing)();        // Py_IsFinalizing (3.13) or _Py_IsFinalizing; may be null
  void* (*current_tstate)();     // PyThreadState_GetUnchecked / _PyThreadState_UncheckedGet
  void* (*this_thread_state)();  // PyGILState_GetThisThreadState
  int (*gil_check)();            // PyGILState_Check
  void* (*get_frame)(void*);     // PyThreadState_GetFrame: new reference or null
  void* (*frame_code)(void*);    // PyFrame_GetCode: new reference
  int (*frame_line)(void*);      // PyFrame_GetLineNumber
  void* (*frame_back)(void*);    // PyFrame_GetBack: new reference or null
  void* (*get_attr)(void*, const char*);  // PyObject_GetAttrString: new reference or null
  const char* (*utf8)(void*, ssize_t*);   // PyUnicode_AsUTF8AndSize
  void (*dec_ref)(void*);                 // Py_DecRef
  void (*err_clear)();
  void* (*err_get_raised)();      // 3.12+: PyErr_GetRaisedException
  void (*err_set_raised)(void*);  // 3.12+: PyErr_SetRaisedException
  void (*err_fetch)(void**, void**, void**);
  void (*err_restore)(void*, void*, void*);
  bool in_executable;  // found in the main program: it can never be unloaded
  bool borrowed;       // 3.7/3.8 layout readers: frames and code are borrowed references
};

// Published API: two slots so a re-probe never writes the one readers may be using.
constinit std::atomic<const PyApi*> g_api{nullptr};
// ~0: never probed.
constinit std::atomic<uint64_t> g_generation{~uint64_t{0}};

namespace {
// 3.7 and 3.8 have no frame accessors (PyThreadState_GetFrame, PyFrame_GetCode and
// PyFrame_GetBack are 3.9+) but a public, fixed layout: PyThreadState {prev, next, interp,
// frame, ...} and PyFrameObject {PyObject_VAR_HEAD, f_back, f_code, ...} (three words of
// header without Py_TRACE_REFS). The pointers read are borrowed, valid while we hold the GIL.
void* legacy_get_frame(void* tstate) {
  return static_cast<void**>(tstate)[3];
}
void* legacy_frame_back(void* frame) {
  return static_cast<void**>(frame)[3];
}
void* legacy_frame_code(void* frame) {
  return static_cast<void**>(frame)[4];
}

PyApi g_slots[2];
std::atomic<int> g_probing{0};

template <typename F>
bool find(const dl_phdr_info& object, const char* name, F* out) {
  *out = reinterpret_cast<F>(lookup_in_object(object, name, nullptr));
  return *out != nullptr;
}

// Fills `api` from the object that defines Py_IsInitialized; false if any required name is
// missing (then Python stacks are off for that object).
bool fill_api(const dl_phdr_info& o, PyApi* api) {
  *api = PyApi{};
  api->in_executable = o.dlpi_name == nullptr || o.dlpi_name[0] == '\0';
  if (!find(o, objects::kPythonMarker, &api->is_initialized)) return false;
  if (!find(o, "Py_IsFinalizing", &api->is_finalizing))
    find(o, "_Py_IsFinalizing", &api->is_finalizing);
  if (!find(o, "PyThreadState_GetUnchecked", &api->current_tstate) &&
      !find(o, "_PyThreadState_UncheckedGet", &api->current_tstate))
    return false;
  if (!find(o, "PyThreadState_GetFrame", &api->get_frame)) {
    // Before 3.9: only the 3.7/3.8 layout is known, and not with Py_TRACE_REFS (debug builds).
    const char* (*version)() = nullptr;
    void* trace_refs = lookup_in_object(o, "_Py_PrintReferences", nullptr);
    if (!find(o, "Py_GetVersion", &version) || trace_refs != nullptr) return false;
    const char* v = version();
    if (v == nullptr || (strncmp(v, "3.7.", 4) != 0 && strncmp(v, "3.8.", 4) != 0)) return false;
    api->get_frame = legacy_get_frame;
    api->frame_code = legacy_frame_code;
    api->frame_back = legacy_frame_back;
    api->borrowed = true;
  } else if (!find(o, "PyFrame_GetCode", &api->frame_code) ||
             !find(o, "PyFrame_GetBack", &api->frame_back)) {
    return false;
  }
  bool ok = find(o, "PyGILState_GetThisThreadState", &api->this_thread_state) &&
            find(o, "PyGILState_Check", &api->gil_check) &&
            find(o, "PyFrame_GetLineNumber", &api->frame_line) &&
            find(o, "PyObject_GetAttrString", &api->get_attr) &&
            find(o, "PyUnicode_AsUTF8AndSize", &api->utf8) && find(o, "Py_DecRef", &api->dec_ref) &&
            find(o, "PyErr_Clear", &api->err_clear);
  if (!ok) return false;
  if (!(find(o, "PyErr_GetRaisedException", &api->err_get_raised) &&
        find(o, "PyErr_SetRaisedException", &api->err_set_raised))) {
    api->err_get_raised = nullptr;
    api->err_set_raised = nullptr;
    if (!find(o, "PyErr_Fetch", &api->err_fetch) || !find(o, "PyErr_Restore", &api->err_restore))
      return false;
  }
  return true;
}

struct ProbeWalk {
  PyApi* out;
  bool found = false;
};

// One pass over the loaded objects (libdltrace.so defines none of these names, so need not be
// skipped). Returns the API or null.
const PyApi* probe() {
  const PyApi* current = g_api.load(std::memory_order_acquire);
  PyApi* out = current == &g_slots[0] ? &g_slots[1] : &g_slots[0];
  ProbeWalk w{out};
  fork_gate::iterate_phdr(
      [](dl_phdr_info* info, size_t, void* arg) {
        auto& pw = *static_cast<ProbeWalk*>(arg);
        if (lookup_in_object(*info, objects::kPythonMarker, nullptr) == nullptr) return 0;
        pw.found = fill_api(*info, pw.out);
        return 1;  // the first definition is the one the program uses
      },
      &w);
  return w.found ? out : nullptr;
}

// The API when this process has a usable CPython, else null. The object table tells for free
// whether a CPython was loaded or unloaded since the last probe (it looks each new object up
// once, when it registers it), so a process without Python never walks the loader's list here.
const PyApi* python_api() {
  const PyApi* api = g_api.load(std::memory_order_acquire);
  if (api != nullptr && api->in_executable) return api;  // can never be unloaded
  const uint64_t generation = objects::python_generation();
  if (generation == g_generation.load(std::memory_order_relaxed)) return api;
  int expected = 0;
  if (!g_probing.compare_exchange_strong(expected, 1, std::memory_order_acquire)) return nullptr;
  const PyApi* found = probe();
  g_generation.store(generation, std::memory_order_relaxed);
  g_api.store(found, std::memory_order_release);
  g_probing.store(0, std::memory_order_release);
  return found;
}

uint32_t intern_attr(const PyApi& py, TraceWriter& writer, void* object, const char* name) {
  void* value = py.get_attr(object, name);
  if (value == nullptr) return format::kNoId;
  ssize_t size = 0;
  const char* text = py.utf8(value, &size);
  const uint32_t id = text != nullptr && size >= 0
                          ? writer.intern_string(text, static_cast<size_t>(size))
                          : format::kNoId;
  py.dec_ref(value);
  return id;
}

}  // namespace

uint32_t capture(TraceWriter& writer) {
  const PyApi* api = python_api();
  if (api == nullptr) return format::kNoId;
  // Once per trace file (a fork child opens a new one).
  if (format::FileHeader* h = writer.header();
      h != nullptr &&
      (__atomic_load_n(&h->recorder_flags, __ATOMIC_RELAXED) & format::kRecorderPythonStacks) == 0)
    __atomic_fetch_or(&h->recorder_flags, format::kRecorderPythonStacks, __ATOMIC_RELAXED);
  const PyApi& py = *api;
  if (!py.is_initialized()) return format::kNoId;
  if (py.is_finalizing != nullptr && py.is_finalizing()) return format::kNoId;
  // This thread must hold the GIL with its own thread state: on 3.8-3.11 the "current" thread
  // state is process-wide (the GIL holder's), so a native thread must not walk it.
  void* tstate = py.current_tstate();
  if (tstate == nullptr || py.this_thread_state() != tstate || !py.gil_check())
    return format::kNoId;

  // Python code could run below (a collection finalizer): its own dl* calls pass through untraced.
  InternalGuard guard;
  void* raised = nullptr;
  void* type = nullptr;
  void* value = nullptr;
  void* traceback = nullptr;
  if (py.err_get_raised != nullptr)
    raised = py.err_get_raised();
  else
    py.err_fetch(&type, &value, &traceback);

  format::PyFrame frames[kMaxPythonFrames];
  uint32_t depth = 0;
  void* frame = py.get_frame(tstate);
  while (frame != nullptr && depth < kMaxPythonFrames) {
    format::PyFrame& f = frames[depth++];
    f = format::PyFrame{format::kNoId, format::kNoId, py.frame_line(frame), 0};
    if (void* code = py.frame_code(frame)) {
      f.file = intern_attr(py, writer, code, "co_filename");
      f.function = intern_attr(py, writer, code, "co_name");
      if (!py.borrowed) py.dec_ref(code);
    }
    void* back = py.frame_back(frame);
    if (!py.borrowed) py.dec_ref(frame);
    frame = back;
  }
  if (frame != nullptr && !py.borrowed) py.dec_ref(frame);

  py.err_clear();  // anything our calls raised
  if (py.err_set_raised != nullptr)
    py.err_set_raised(raised);  // steals the reference; null leaves no exception set
  else
    py.err_restore(type, value, traceback);
  return depth > 0 ? writer.intern_py_stack(frames, depth) : format::kNoId;
}

}  // namespace python_stack_detail
}  // namespace dltrace::preload
