#include "model/load_graph.h"

#include <algorithm>
#include <string>
#include <tuple>
#include <utility>

#include "model/in_flight.h"

namespace dltrace::viewer {

LoadGraph::LoadGraph(const TraceModel& model, PythonGrouping python)
    : model_(model), reader_(model.reader()), python_(python) {
  add_objects();
  // Failed dlopens, dlopen arrows and Python stacks: the only parts that need the events.
  reader_.for_each_event([&](const format::EventSlot& e) {
    if (is_open_call(e.call)) add_open(e);
    return true;
  });
  if (python_ == PythonGrouping::kByStatement) {
    for (auto& [seq, open] : python_opens_) top_level_.resolve(open.where);
    group_python_loads();
  }
  link_children();
}

size_t LoadGraph::node_of(uint32_t object_id) const {
  auto it = node_of_.find(object_id);
  return it == node_of_.end() ? kNone : it->second;
}

uint64_t LoadGraph::open_seq_of(const LoadNode& n) const {
  switch (n.kind) {
    case LoadNode::Kind::kObject:
      return n.object->cause == format::ObjectCause::kDlopen ? n.object->opened_by : 0;
    case LoadNode::Kind::kFailedOpen:
      return failed_[n.index].seq;
    case LoadNode::Kind::kPythonStatement:
      return 0;
  }
  return 0;
}

const PythonOpen* LoadGraph::python_open(uint64_t seq) const {
  auto it = python_opens_.find(seq);
  return it == python_opens_.end() ? nullptr : &it->second;
}

LoadGraph::FailedKey LoadGraph::failed_key(const format::EventSlot& e) {
  return {e.caller_object,   e.call, e.name,     e.error,     e.flags,
          e.effective_flags, e.lmid, e.py_stack, in_flight(e)};
}

// Objects in load order, each under its catalog parent; DT_NEEDED arrows, and dlopen arrows
// whose event was lost (ring overwritten, damaged file) but whose caller the catalog still
// names.
void LoadGraph::add_objects() {
  for (const ObjectRecord* o : model_.objects_by_load()) {
    LoadNode n;
    n.object = o;
    n.order_seq = o->load_seq;
    node_of_.try_emplace(o->id, nodes_.size());
    nodes_.push_back(std::move(n));
  }
  object_count_ = nodes_.size();
  for (size_t i = 0; i < object_count_; ++i) {
    const ObjectRecord& o = *nodes_[i].object;
    if (o.parent == format::kNoId || o.parent == o.id) continue;
    if (const size_t parent = node_of(o.parent); parent != kNone) attach(i, parent);
  }
  for (size_t i = 0; i < object_count_; ++i) {
    const ObjectRecord& o = *nodes_[i].object;
    LoadEdge edge;
    edge.from = node_of(o.parent);
    edge.to = i;
    if (o.cause == format::ObjectCause::kNeeded) {
      edge.kind = LoadEdge::Kind::kNeeded;
    } else if (o.cause == format::ObjectCause::kDlopen && !reader_.event(o.opened_by)) {
      edge.kind = LoadEdge::Kind::kDlopenEventLost;
    } else {
      continue;
    }
    add_edge(edge);
  }
}

void LoadGraph::add_open(const format::EventSlot& e) {
  if (python_ == PythonGrouping::kByStatement && e.py_stack != format::kNoId) remember_python(e);
  if (!(e.bits & format::kEventOk)) {
    add_failed_open(e);
    return;
  }
  LoadEdge edge = call_edge(e, LoadEdge::Kind::kDlopen);
  edge.to = node_of(e.object);
  if (edge.to == kNone) return;
  if (edge.from == kNone) {
    // No caller recorded: the catalog names the caller of the call that loaded the object.
    const ObjectRecord& o = *nodes_[edge.to].object;
    if (o.opened_by == e.seq) edge.from = node_of(o.parent);
  }
  add_edge(edge);
}

// An arrow from the caller of dlopen event `e`, with how it was called.
LoadEdge LoadGraph::call_edge(const format::EventSlot& e, LoadEdge::Kind kind) const {
  LoadEdge edge;
  edge.from = node_of(e.caller_object);
  edge.kind = kind;
  edge.call = e.call;
  edge.flags = e.flags;
  edge.effective_flags = e.effective_flags;
  edge.overridden = (e.bits & format::kEventOverridden) || e.flags != e.effective_flags;
  edge.lmid = e.lmid;
  return edge;
}

void LoadGraph::add_failed_open(const format::EventSlot& e) {
  auto [it, fresh] = failed_node_.try_emplace(failed_key(e), nodes_.size());
  if (fresh) {
    FailedOpen f;
    f.seq = e.seq;
    f.call = e.call;
    f.file = reader_.has_string(e.name) ? std::string(reader_.string(e.name)) : "NULL";
    f.flags = e.flags;
    f.effective_flags = e.effective_flags;
    f.override_line = e.override_line;
    f.overridden = (e.bits & format::kEventOverridden) || e.flags != e.effective_flags;
    f.lmid = e.lmid;
    f.duration_ns = model_.duration_ns(e);
    if (reader_.has_string(e.error)) f.error = reader_.string(e.error);
    f.in_flight = in_flight(e);
    f.caller_object = e.caller_object;
    f.caller_ip = e.caller_ip;
    failed_.push_back(std::move(f));
    LoadNode n;
    n.kind = LoadNode::Kind::kFailedOpen;
    n.index = failed_.size() - 1;
    n.order_seq = e.seq;
    nodes_.push_back(std::move(n));
    if (const size_t caller = node_of(e.caller_object); caller != kNone) {
      attach(nodes_.size() - 1, caller);
    }
  } else {
    FailedOpen& f = failed_[nodes_[it->second].index];
    ++f.repeats;
    f.last_seq = e.seq;
    f.duration_ns += model_.duration_ns(e);
  }
  LoadEdge edge = call_edge(e, LoadEdge::Kind::kFailedOpen);
  edge.to = it->second;
  add_edge(edge);
}

void LoadGraph::remember_python(const format::EventSlot& e) {
  const auto stack = reader_.py_stack(e.py_stack);
  if (stack.empty()) return;
  PythonOpen open{attribute_python_stack(reader_, stack), e.parent_seq != 0,
                  (e.bits & format::kEventOk) != 0, model_.duration_ns(e)};
  top_level_.add(reader_, stack, open.where);
  // Kept only for the calls the tree shows, so that this does not grow per event: loads that
  // brought objects in, and the first of identical failures (called before it is counted).
  if (open.ok ? model_.new_objects(e.seq).empty() : failed_node_.contains(failed_key(e))) return;
  python_opens_[e.seq] = std::move(open);
}

// Hangs each load made by Python code under a node for the top-level statement that caused it
// (one per caller object and statement), so `import numpy` gathers numpy's extension modules
// and their total load time. Loads nested in another traced call (a constructor's dlopen) stay
// under the object whose constructor made them.
void LoadGraph::group_python_loads() {
  absl::flat_hash_map<std::tuple<size_t, std::string, int>, size_t> group_of;
  const size_t count = nodes_.size();
  for (size_t i = 0; i < count; ++i) {
    const PythonOpen* open = python_open(open_seq_of(nodes_[i]));
    if (!open || open->nested || !open->where.top) continue;
    const size_t parent = nodes_[i].parent;
    auto [g, fresh] = group_of.try_emplace(
        std::tuple(parent, open->where.top->file, open->where.top->line), nodes_.size());
    if (fresh) {
      statements_.push_back(PythonStatement{*open->where.top});
      LoadNode n;
      n.kind = LoadNode::Kind::kPythonStatement;
      n.index = statements_.size() - 1;
      n.order_seq = nodes_[i].order_seq;
      n.parent = parent;
      nodes_.push_back(std::move(n));
    }
    LoadNode& group_node = nodes_[g->second];
    group_node.order_seq = std::min(group_node.order_seq, nodes_[i].order_seq);
    PythonStatement& statement = statements_[group_node.index];
    statement.truncated |= open->where.truncated;
    if (nodes_[i].kind == LoadNode::Kind::kFailedOpen) {  // possibly several identical calls
      const FailedOpen& f = failed_[nodes_[i].index];
      statement.total_ns += f.duration_ns;
      statement.loads += f.repeats;
      statement.failed += f.repeats;
    } else {
      statement.total_ns += open->duration_ns;
      ++statement.loads;
    }
    nodes_[i].parent = g->second;
  }
}

// Hangs `child`, a node nothing hangs above yet, under `parent` unless that would close a cycle
// (a damaged trace): it would exactly when `child` is the root of `parent`'s tree. The roots come
// from a union-find (with path halving), not from walking up the parents, so a chain of 100,000
// nested dlopens is linear work, not quadratic.
void LoadGraph::attach(size_t child, size_t parent) {
  for (size_t i = tree_root_.size(); i < nodes_.size(); ++i) tree_root_.push_back(i);
  size_t root = parent;
  while (tree_root_[root] != root) root = tree_root_[root] = tree_root_[tree_root_[root]];
  if (root == child || nodes_[child].parent != kNone) return;
  nodes_[child].parent = parent;
  tree_root_[child] = root;
}

void LoadGraph::add_edge(const LoadEdge& edge) {
  if (edge.from == kNone || edge.to == kNone || edge.from == edge.to) return;
  const EdgeKey key{edge.from,       edge.to,    static_cast<int>(edge.kind),
                    edge.call,       edge.flags, edge.effective_flags,
                    edge.overridden, edge.lmid};
  auto [it, fresh] = edge_index_.try_emplace(key, edges_.size());
  if (fresh) {
    edges_.push_back(edge);
  } else {
    ++edges_[it->second].count;
  }
}

// Children lists and roots, each in load order (ties: the order the nodes were made in).
void LoadGraph::link_children() {
  for (size_t i = 0; i < nodes_.size(); ++i) {
    (nodes_[i].parent == kNone ? roots_ : nodes_[nodes_[i].parent].children).push_back(i);
  }
  auto by_order = [this](size_t a, size_t b) {
    const LoadNode& x = nodes_[a];
    const LoadNode& y = nodes_[b];
    return x.order_seq != y.order_seq ? x.order_seq < y.order_seq : a < b;
  };
  std::ranges::sort(roots_, by_order);
  for (LoadNode& n : nodes_) std::ranges::sort(n.children, by_order);
}

}  // namespace dltrace::viewer
