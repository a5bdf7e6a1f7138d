// Who loaded whom in one trace: the one model that `tree` (render/tree_text.h), `dot` and `html`
// (render/dot_load_graph.h) print. Built from the catalog and one pass over the events.
//
// It holds the loads two ways, because the two pictures ask different questions:
//  * the load tree (nodes(), roots()): every object under the object that brought it in (its
//    DT_NEEDED parent, or the object whose code called dlopen), failed dlopens as leaves under
//    their caller, and, when asked for, the loads made by Python code grouped under the script
//    statement that caused them;
//  * the arrows (edges()): one per distinct way one node brought in another (DT_NEEDED, or a
//    dlopen with its flags requested and effective), with how often, including dlopens of
//    objects that were already loaded.
// Repeated identical calls are counted, not stored, so the model grows with the catalog, not
// with the number of events.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "analysis/python_imports.h"
#include "dltrace/format.h"
#include "dltrace/reader.h"
#include "model/trace_model.h"

namespace dltrace::viewer {

// A dlopen/dlmopen that returned NULL: it loaded nothing, so only its event says it happened.
// Identical failures from the same caller (a probe in a loop) are one FailedOpen with a count.
struct FailedOpen {
  uint64_t seq = 0;       // the first of them
  uint64_t repeats = 1;   // how many identical calls
  uint64_t last_seq = 0;  // seq of the last of them (when repeats > 1)
  uint16_t call = 0;
  std::string file;  // the name asked for; "NULL" for dlopen(NULL)
  int flags = 0;
  int effective_flags = 0;
  uint32_t override_line = 0;
  bool overridden = false;
  int64_t lmid = 0;
  uint64_t duration_ns = 0;  // of all `repeats` calls
  std::string error;         // the dlerror() text; "" when none was recorded
  bool in_flight = false;    // the call never returned: the process ended inside it
  uint32_t caller_object = format::kNoId;
  uint64_t caller_ip = 0;
};

// A dlopen/dlmopen made while Python code ran: which line caused it.
struct PythonOpen {
  PyAttribution where;
  bool nested = false;  // inside another traced call (a constructor's dlopen): not grouped
  bool ok = false;
  uint64_t duration_ns = 0;
};

// The Python statement that the loads grouped under it came from (one per caller object and
// statement), with their total load time.
struct PythonStatement {
  PyLine top;
  bool truncated = false;  // a stack was cut: the real statement may be further out
  uint64_t total_ns = 0;
  size_t loads = 0;   // dlopen calls, counting each repeat of a failed one
  size_t failed = 0;  // of those
};

struct LoadNode {
  static constexpr size_t kNone = std::numeric_limits<size_t>::max();
  enum class Kind { kObject, kFailedOpen, kPythonStatement };

  Kind kind = Kind::kObject;
  const ObjectRecord* object = nullptr;  // kObject
  size_t index = kNone;          // kFailedOpen: into failed_opens(); kPythonStatement: statements
  uint64_t order_seq = 0;        // when it happened: the object's load_seq, or the event's seq
  size_t parent = kNone;         // in the load tree
  std::vector<size_t> children;  // in load order
};

// One way `from` brought in `to`, and how often.
struct LoadEdge {
  enum class Kind {
    kNeeded,           // `to` is a DT_NEEDED dependency of `from`
    kDlopen,           // `from`'s code dlopen'ed `to` (also when it was loaded already)
    kDlopenEventLost,  // the catalog says `from` dlopen'ed `to`, but the event is gone
    kFailedOpen,       // `from`'s code dlopen'ed the failed open `to`
  };

  size_t from = LoadNode::kNone;
  size_t to = LoadNode::kNone;
  Kind kind = Kind::kNeeded;
  // The call, for kDlopen and kFailedOpen.
  uint16_t call = 0;
  int flags = 0;
  int effective_flags = 0;
  bool overridden = false;  // an override changed the flags, or says it applied
  int64_t lmid = 0;
  uint64_t count = 1;
};

// Whether loads made by Python code hang under the statement that caused them (tree), or stay
// under the object that called dlopen (the graphs, which draw objects only).
enum class PythonGrouping { kNone, kByStatement };

class LoadGraph {
 public:
  static constexpr size_t kNone = LoadNode::kNone;

  LoadGraph(const TraceModel& model, PythonGrouping python);

  const TraceModel& model() const { return model_; }

  // Objects first, in load order (node i < object_count() is model().objects_by_load()[i]),
  // then the failed dlopens in the order they first happened, then the Python statements.
  const std::vector<LoadNode>& nodes() const { return nodes_; }
  size_t object_count() const { return object_count_; }
  // The node of an object id; kNone if the catalog has no such object.
  size_t node_of(uint32_t object_id) const;
  // Roots of the load tree, in load order.
  const std::vector<size_t>& roots() const { return roots_; }
  const std::vector<FailedOpen>& failed_opens() const { return failed_; }
  const std::vector<PythonStatement>& python_statements() const { return statements_; }
  // Arrows between two different nodes: DT_NEEDED and lost-event ones in load order, then the
  // calls in the order they first happened.
  const std::vector<LoadEdge>& edges() const { return edges_; }

  // The dlopen event a node stands for (0: none, e.g. a DT_NEEDED or start-up object).
  uint64_t open_seq_of(const LoadNode& n) const;
  // Which Python line caused the dlopen event `seq`, for the loads the tree shows (an object's
  // dlopen, the first of identical failures) when grouping by statement; else nullptr.
  const PythonOpen* python_open(uint64_t seq) const;

 private:
  // What makes failures identical: caller object, call, name, error, flags, namespace, and the
  // Python stack (the same failing import from two statements belongs to two statements).
  using FailedKey =
      std::tuple<uint32_t, uint16_t, uint32_t, uint32_t, int32_t, int32_t, int64_t, uint32_t, bool>;
  using EdgeKey = std::tuple<size_t, size_t, int, uint16_t, int, int, bool, int64_t>;

  static FailedKey failed_key(const format::EventSlot& e);
  void add_objects();
  void add_open(const format::EventSlot& e);
  void add_failed_open(const format::EventSlot& e);
  LoadEdge call_edge(const format::EventSlot& e, LoadEdge::Kind kind) const;
  void remember_python(const format::EventSlot& e);
  void group_python_loads();
  void attach(size_t child, size_t parent);
  void add_edge(const LoadEdge& edge);
  void link_children();

  const TraceModel& model_;
  const TraceReader& reader_;
  PythonGrouping python_;
  std::vector<LoadNode> nodes_;
  // Union-find over nodes_: the root of each node's tree, for attach()'s cycle check.
  std::vector<size_t> tree_root_;
  size_t object_count_ = 0;
  std::vector<size_t> roots_;
  absl::flat_hash_map<uint32_t, size_t> node_of_;
  std::vector<FailedOpen> failed_;
  absl::flat_hash_map<FailedKey, size_t> failed_node_;  // into nodes_
  std::vector<LoadEdge> edges_;
  absl::flat_hash_map<EdgeKey, size_t> edge_index_;         // into edges_
  absl::flat_hash_map<uint64_t, PythonOpen> python_opens_;  // by dlopen seq
  std::vector<PythonStatement> statements_;
  TopLevelResolver top_level_;
};

}  // namespace dltrace::viewer
