#include "object_table.h"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "arch/arch.h"
#include "bench_ablation.h"
#include "elf_info.h"
#include "elf_symbols.h"
#include "fork_gate.h"
#include "name_cache.h"
#include "real_functions.h"
#include "self_exe.h"
#include "slot_index.h"
#include "stack_capture.h"
#include "trace_writer.h"

namespace dltrace::preload::objects {

constinit std::atomic<uint64_t> detail::g_python_generation{0};

namespace {

using format::kNoId;

constexpr uint32_t kMaxObjects = 4096;  // live at once, all namespaces

struct Obj {
  const link_map* lm;
  const char* lname;  // l_name at discovery: identity together with lm and base
  const char* path;   // what was written as the path
  elf::Image image;
  int64_t lmid;
  uint64_t load_seq;  // event that brought it in (0 at start-up)
  uint32_t id;        // writer id; kNoId for the recorder's own loads
  uint32_t parent;    // writer id of the parent
  uint32_t cause;
  uint32_t flags;
  int32_t parent_idx;  // during attribution: index of the parent in g_objs, -1 none
  bool used, global, seen, written;
  bool resident;  // the executable, its DT_NEEDED closure, preloads: ld.so never unloads those
  bool python;    // namespace 0, defines Py_IsInitialized
  // The catalog's copies of what was written (the file open now): a fork child copies them into
  // its own trace instead of reading the object again, which may be gone by then.
  const format::ObjectLoadEntry* entry;
  const char* path_text;
  const char* soname_text;
};

struct Cur {
  const link_map* lm;
  const char* name;
  elf::Image image;
  int64_t lmid;
};

// Everything here is constant-initialised: wrappers can run before any dynamic initialiser.
DLTRACE_LARGE_BSS constinit Obj g_objs[kMaxObjects];
constinit uint32_t g_high;  // slots [0, g_high) have been used at some point
DLTRACE_LARGE_BSS constinit Cur
    g_cur[kMaxObjects];  // during a sync: loaded objects the table does not know yet
constinit uint32_t g_ncur;
DLTRACE_LARGE_BSS constinit Cur g_other[kMaxObjects];  // objects of namespaces other than 0
constinit uint32_t g_nother;
DLTRACE_LARGE_BSS constinit uint32_t
    g_new[kMaxObjects];  // g_objs indices of objects found by this sync, in list order
constinit uint32_t g_nnew;

constinit pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
// dlpi_adds/dlpi_subs at the last sync; ~0 = never synced.
constinit std::atomic<unsigned long long> g_adds{~0ull}, g_subs{~0ull};
constinit TraceWriter* g_writer;
DLTRACE_LARGE_BSS constinit char
    g_exe_scratch[4096];  // self_exe_path's, if another thread reads it first
constinit const char* g_exe_path = "";
constinit const char* g_self_path;
constinit elf::Image g_self_image;  // this library's, to know its copies in other namespaces

// ---- lock-free snapshot (seqlock over static arrays) ----
struct RangeE {
  uint64_t start, end;
  int64_t lmid;
  uint32_t id, resident;
};
struct HandleE {
  uint64_t lm;
  int64_t lmid;
  uint64_t load_seq;
  uint32_t id;
  uint32_t global;
};
DLTRACE_LARGE_BSS constinit RangeE g_ranges[kMaxObjects];
DLTRACE_LARGE_BSS constinit HandleE g_handles[kMaxObjects];
constinit uint32_t g_nranges, g_nhandles;
constinit std::atomic<uint64_t> g_snap_seq{0};
template <class T>
T rd(const T& v) {
  return __atomic_load_n(&v, __ATOMIC_RELAXED);
}

// The live objects' g_objs indices, kept sorted by load address and by link_map as objects come
// and go, so that publishing a change is one ordered pass (no sort of the whole table).
DLTRACE_LARGE_BSS constinit uint16_t g_by_start[kMaxObjects];
DLTRACE_LARGE_BSS constinit uint16_t g_by_lm[kMaxObjects];
constinit uint32_t g_ntracked;

uint64_t start_key(uint32_t i) {
  return g_objs[i].image.map_start;
}
uint64_t lm_key(uint32_t i) {
  return reinterpret_cast<uint64_t>(g_objs[i].lm);
}

// The first position of each order whose entry may differ from the snapshot's: publish()
// rewrites the snapshot from there on (what comes before it is as published).
constexpr uint32_t kClean = ~0u;
constinit uint32_t g_changed_start = 0, g_changed_lm = 0;
// g_range_before[k]: the snapshot's ranges made from g_by_start[0, k), as publish() last saw it
// (the ranges drop empty and overlapping mappings, so they are not one per position).
DLTRACE_LARGE_BSS constinit uint32_t g_range_before[kMaxObjects + 1];

uint32_t order_insert(uint16_t* order, uint32_t n, uint32_t idx, uint64_t (*key)(uint32_t)) {
  const uint64_t k = key(idx);
  uint32_t lo = 0, hi = n;
  while (lo < hi) {
    const uint32_t mid = (lo + hi) / 2;
    if (key(order[mid]) <= k)
      lo = mid + 1;
    else
      hi = mid;
  }
  memmove(order + lo + 1, order + lo, (n - lo) * sizeof *order);
  order[lo] = static_cast<uint16_t>(idx);
  return lo;
}

uint32_t order_erase(uint16_t* order, uint32_t n, uint32_t idx) {
  for (uint32_t k = 0; k < n; ++k) {
    if (order[k] != idx) continue;
    memmove(order + k, order + k + 1, (n - k - 1) * sizeof *order);
    return k;
  }
  return n;
}

// Rewrites the snapshot where it may differ from the table (from g_changed_start and
// g_changed_lm on): a load or unload moves the entries after its own, the others stay.
void publish() {
  const uint64_t s = g_snap_seq.load(std::memory_order_relaxed);
  g_snap_seq.store(s + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  const uint32_t from = g_changed_start < g_ntracked ? g_changed_start : g_ntracked;
  uint32_t nr = g_range_before[from];
  uint64_t last_end = nr > 0 ? g_ranges[nr - 1].end : 0;
  for (uint32_t k = from; k < g_ntracked; ++k) {
    g_range_before[k] = nr;
    const Obj& o = g_objs[g_by_start[k]];
    if (o.image.map_end <= o.image.map_start) continue;
    // Overlaps (ld.so's proxy entries in other namespaces share its mapping): first wins.
    if (nr > 0 && o.image.map_start < last_end) continue;
    last_end = o.image.map_end;
    RangeE& r = g_ranges[nr++];
    __atomic_store_n(&r.start, o.image.map_start, __ATOMIC_RELAXED);
    __atomic_store_n(&r.end, o.image.map_end, __ATOMIC_RELAXED);
    __atomic_store_n(&r.id, o.id, __ATOMIC_RELAXED);
    __atomic_store_n(&r.lmid, o.lmid, __ATOMIC_RELAXED);
    __atomic_store_n(&r.resident, o.resident ? 1u : 0u, __ATOMIC_RELAXED);
  }
  g_range_before[g_ntracked] = nr;
  for (uint32_t k = g_changed_lm; k < g_ntracked; ++k) {
    const Obj& o = g_objs[g_by_lm[k]];
    HandleE& h = g_handles[k];
    __atomic_store_n(&h.lm, reinterpret_cast<uint64_t>(o.lm), __ATOMIC_RELAXED);
    __atomic_store_n(&h.lmid, o.lmid, __ATOMIC_RELAXED);
    __atomic_store_n(&h.load_seq, o.load_seq, __ATOMIC_RELAXED);
    __atomic_store_n(&h.id, o.id, __ATOMIC_RELAXED);
    __atomic_store_n(&h.global, o.global ? 1u : 0u, __ATOMIC_RELAXED);
  }
  __atomic_store_n(&g_nranges, nr, __ATOMIC_RELAXED);
  __atomic_store_n(&g_nhandles, g_ntracked, __ATOMIC_RELAXED);
  g_snap_seq.store(s + 2, std::memory_order_release);
  g_changed_start = g_changed_lm = kClean;
}

// Runs `fn` under the seqlock's read protocol. Gives up (returns false) after many retries, which
// can only happen if a signal handler interrupted a publish() on this very thread.
template <class Fn>
bool read_snapshot(Fn&& fn) {
  for (int attempt = 0; attempt < 10000; ++attempt) {
    const uint64_t s = g_snap_seq.load(std::memory_order_acquire);
    if (s & 1) {
      arch::spin_pause();
      continue;
    }
    fn();
    std::atomic_thread_fence(std::memory_order_acquire);
    if (g_snap_seq.load(std::memory_order_relaxed) == s) return true;
  }
  return false;
}

// g_objs by link_map: a sync looks up every loaded object, and a scan of the table for each made
// that quadratic in big processes.
constinit SlotIndex<2 * kMaxObjects> g_index{lm_key};

// ---- collecting what the loader has ----
// The loader's _r_debug, found in the global scope at the first sync (under g_lock) rather than
// linked: a reference to it would make ld.so a NEEDED entry of libdltrace.so. Null only where no
// object defines it; then the table holds what dl_iterate_phdr reports, unpaired.
r_debug* g_debug = nullptr;

r_debug* loader_debug() {
  if (g_debug == nullptr) g_debug = static_cast<r_debug*>(lookup_global("_r_debug"));
  return g_debug;
}

void collect_other_namespaces() {
  g_nother = 0;
  // _r_debug is the first r_debug_extended (glibc >= 2.35).
  auto* r = reinterpret_cast<r_debug_extended*>(g_debug);
  if (r == nullptr || r->base.r_version < 2) return;
  int64_t ns = 1;
  for (r_debug_extended* x = r->r_next; x != nullptr; x = x->r_next, ++ns) {
    for (const link_map* l = x->base.r_map; l != nullptr && g_nother < kMaxObjects; l = l->l_next) {
      Cur c{l, l->l_name, {}, ns};
      if (!elf::from_link_map(l, &c.image)) {
        c.image.base = l->l_addr;
        c.image.dynamic = l->l_ld;
      }
      g_other[g_nother++] = c;
    }
  }
}

int find(const link_map* lm, const char* name, uint64_t base, int64_t lmid);

// Namespace 0's list as the last sync saw it (link_maps in list order), valid when that sync
// registered every object of it. ld.so appends loads to the end of the list and unloads take
// objects out of it, so a sync that sees only loads reads the list from our last entry on, and
// one that sees only unloads merges the list with ours: neither pairs every object again.
DLTRACE_LARGE_BSS constinit const link_map* g_list0[kMaxObjects];
constinit uint32_t g_nlist0;
constinit bool g_list0_valid;
// What a sync answered from the list found unloaded (g_objs indices); the full walk marks what
// it finds instead, and the objects it did not mark went.
DLTRACE_LARGE_BSS constinit uint32_t g_gone[kMaxObjects];
constinit uint32_t g_ngone;
constinit uint32_t g_objects_elsewhere;  // table objects of namespaces other than 0

// Whether the table and the loader use namespace 0 alone. The loader's counters then count its
// list's loads and unloads exactly (dl_iterate_phdr derives dlpi_subs from every namespace's
// object count). A namespace is never taken off the r_debug_extended chain; an unused one has
// no objects (r_map null).
bool only_namespace_0() {
  if (g_objects_elsewhere != 0 || g_debug == nullptr) return false;
  const auto* r = reinterpret_cast<const r_debug_extended*>(g_debug);
  if (r->base.r_version < 2) return true;  // glibc >= 2.35 sets 2 with the first namespace
  for (const r_debug_extended* x = r->r_next; x != nullptr; x = x->r_next)
    if (x->base.r_map != nullptr) return false;
  return true;
}

// The program headers of a loaded object from its link_map, which does not carry them publicly:
// _dl_find_object gives the object's mapping, whose first page holds the ELF header (the first
// PT_LOAD maps file offset 0). Proven by the headers describing that very mapping and dynamic
// section; false otherwise (and for objects not yet in _dl_find_object's data).
bool image_from_link_map(const link_map* l, elf::Image* out) {
  constexpr uint64_t kFirstPage = 4096;
  const FindObjectFn find_object = find_object_fn();
  arch::DlFindObject fo;
  if (find_object == nullptr || l->l_ld == nullptr ||
      find_object(const_cast<ElfW(Dyn)*>(l->l_ld), &fo) != 0 || fo.map != l)
    return false;
  const auto start = reinterpret_cast<uint64_t>(fo.map_start);
  const auto end = reinterpret_cast<uint64_t>(fo.map_end);
  const auto* eh = reinterpret_cast<const ElfW(Ehdr)*>(start);
  if (end - start < kFirstPage || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
      eh->e_phentsize != sizeof(ElfW(Phdr)) ||
      eh->e_phoff + uint64_t{eh->e_phnum} * sizeof(ElfW(Phdr)) > kFirstPage)
    return false;
  const elf::Image im = elf::from_phdrs(
      l->l_addr, reinterpret_cast<const ElfW(Phdr)*>(start + eh->e_phoff), eh->e_phnum);
  if (im.dynamic != l->l_ld || im.map_start < start || im.map_start >= end || im.map_end > end)
    return false;
  *out = im;
  return true;
}

// Only loads since the last sync: no link_map we know was freed, and the new objects follow our
// last entry.
bool collect_appended() {
  uint32_t n = g_nlist0;
  for (const link_map* l = g_list0[n - 1]->l_next; l != nullptr; l = l->l_next) {
    if (n == kMaxObjects) return false;
    Cur c{l, l->l_name, {}, 0};
    if (!image_from_link_map(l, &c.image)) return false;
    g_cur[g_ncur++] = c;
    g_list0[n++] = l;
  }
  g_nlist0 = n;
  return true;
}

// Notes an object of our list that the loader's list no longer has.
bool mark_unloaded(const link_map* lm) {
  const int i = g_index.find(reinterpret_cast<uint64_t>(lm),
                             [](uint32_t k) { return g_objs[k].used && g_objs[k].lmid == 0; });
  if (i < 0) return false;
  g_gone[g_ngone++] = static_cast<uint32_t>(i);
  return true;
}

// Only unloads since the last sync: the loader's list is ours with some objects taken out (and
// no link_map allocated since, so none of ours can have been reused for another object).
bool collect_unloaded() {
  uint32_t j = 0, kept = 0;
  for (const link_map* l = g_debug->r_map; l != nullptr; l = l->l_next) {
    while (j < g_nlist0 && g_list0[j] != l)
      if (!mark_unloaded(g_list0[j++])) return false;
    if (j == g_nlist0) return false;  // not ours: the list is not what we thought
    g_list0[kept++] = g_list0[j++];
  }
  while (j < g_nlist0)
    if (!mark_unloaded(g_list0[j++])) return false;
  g_nlist0 = kept;
  return true;
}

// What changed, from our list alone, when only loads or only unloads happened in namespace 0.
// False when that cannot tell: the caller then walks every object (any state written here is
// rebuilt by that walk).
bool collect_changes(bool loads) {
  if (!g_list0_valid || g_nlist0 == 0 || !only_namespace_0()) return false;
  g_ncur = 0;
  g_ngone = 0;
  return loads ? collect_appended() : collect_unloaded();
}

struct CollectState {
  const link_map* walk;
  bool first;
  bool only_if_changed;
  bool unchanged;
  bool from_list;  // collect_changes() answered: the walk stopped at the first object
  bool paired;     // every object of namespace 0 was paired with its link_map
};

int collect_cb(dl_phdr_info* info, size_t, void* arg) {
  auto* st = static_cast<CollectState*>(arg);
  if (st->first) {
    st->first = false;
    // The counters are global (all namespaces): when they have not moved, the first object is
    // all a caller that only wants news needs to see.
    const bool loads = info->dlpi_adds != g_adds.load(std::memory_order_relaxed);
    const bool unloads = info->dlpi_subs != g_subs.load(std::memory_order_relaxed);
    if (st->only_if_changed && !loads && !unloads) {
      st->unchanged = true;
      return 1;
    }
    g_adds.store(info->dlpi_adds, std::memory_order_relaxed);
    g_subs.store(info->dlpi_subs, std::memory_order_relaxed);
    // dl_iterate_phdr holds dl_load_write_lock: the loader's lists are stable now.
    if (loads != unloads && collect_changes(loads)) {
      st->from_list = true;
      return 1;
    }
    for (uint32_t i = 0; i < g_high; ++i) g_objs[i].seen = false;
    g_ncur = 0;
    g_nlist0 = 0;
    collect_other_namespaces();
  }
  // dl_iterate_phdr walks namespace 0's list in order: walk the link_maps alongside to pair them.
  const link_map* lm = nullptr;
  for (int pass = 0; pass < 2 && lm == nullptr; ++pass) {
    for (const link_map* l = st->walk; l != nullptr; l = l->l_next) {
      if (l->l_name == info->dlpi_name && l->l_addr == info->dlpi_addr) {
        lm = l;
        st->walk = l->l_next;
        break;
      }
    }
    if (lm == nullptr) st->walk = g_debug ? g_debug->r_map : nullptr;
  }
  if (lm != nullptr && g_nlist0 < kMaxObjects)
    g_list0[g_nlist0++] = lm;
  else
    st->paired = false;
  // Known objects are only marked; new ones are collected with their program headers read.
  const int known = find(lm, info->dlpi_name, info->dlpi_addr, 0);
  if (known >= 0) {
    g_objs[known].seen = true;
  } else if (g_ncur < kMaxObjects) {  // else it stays unknown; the walk goes on to mark the rest
    const elf::Image image = elf::from_phdrs(info->dlpi_addr, info->dlpi_phdr, info->dlpi_phnum);
    g_cur[g_ncur++] = {lm, info->dlpi_name, image, 0};
  } else {
    st->paired = false;
  }
  return 0;
}

enum class Collected { kNothing, kListed, kMarked };

// kNothing (and nothing collected) when only_if_changed and the loader's counters have not moved.
// Else the new objects are in g_cur, and the ones that went are in g_gone (kListed) or are the
// known objects not marked seen (kMarked).
Collected collect(bool only_if_changed) {
  const r_debug* debug = loader_debug();
  CollectState st{debug ? debug->r_map : nullptr, true, only_if_changed, false, false, true};
  fork_gate::iterate_phdr(collect_cb, &st);
  if (st.unchanged) return Collected::kNothing;
  if (st.from_list) return Collected::kListed;
  g_list0_valid = st.paired;  // until a new object finds no slot (sync_locked)
  for (uint32_t i = 0; i < g_nother; ++i) {
    const Cur& c = g_other[i];
    const int known = find(c.lm, c.name, c.image.base, c.lmid);
    if (known >= 0)
      g_objs[known].seen = true;
    else if (g_ncur < kMaxObjects)
      g_cur[g_ncur++] = c;
  }
  return Collected::kMarked;
}

// CPython's marker, looked up once per new object so that the Python stack probe does not have
// to walk the objects after every load. Most objects' Bloom filters rule it out at once.
bool defines_python(const Cur& c) {
  static constexpr uint32_t kMarkerHash = elf::gnu_hash(kPythonMarker);
  if (c.lmid != 0 || c.image.phdr == nullptr || !elf::may_define(c.image, kMarkerHash))
    return false;
  dl_phdr_info info{};
  info.dlpi_addr = c.image.base;
  info.dlpi_name = c.name;
  info.dlpi_phdr = c.image.phdr;
  info.dlpi_phnum = c.image.phnum;
  return static_cast<bool>(elf::find_symbol(info, kPythonMarker, nullptr));
}

// A live object enters (leaves) the link_map index and the publishing orders.
void track(uint32_t idx) {
  g_index.insert(idx);
  g_changed_start = std::min(g_changed_start, order_insert(g_by_start, g_ntracked, idx, start_key));
  g_changed_lm = std::min(g_changed_lm, order_insert(g_by_lm, g_ntracked, idx, lm_key));
  ++g_ntracked;
}

void untrack(uint32_t idx) {
  g_index.erase(idx);
  g_changed_start = std::min(g_changed_start, order_erase(g_by_start, g_ntracked, idx));
  g_changed_lm = std::min(g_changed_lm, order_erase(g_by_lm, g_ntracked, idx));
  --g_ntracked;
}

int find(const link_map* lm, const char* name, uint64_t base, int64_t lmid) {
  return g_index.find(reinterpret_cast<uint64_t>(lm), [&](uint32_t i) {
    const Obj& o = g_objs[i];
    return o.used && o.lname == name && o.image.base == base && o.lmid == lmid;
  });
}

int alloc_slot() {
  for (uint32_t i = 0; i < g_high; ++i)
    if (!g_objs[i].used) return static_cast<int>(i);
  if (g_high < kMaxObjects) return static_cast<int>(g_high++);
  return -1;
}

bool names_match(const char* needed, const Obj& o) {
  const char* so = elf::soname(o.image);
  if (so != nullptr && strcmp(so, needed) == 0) return true;
  return strcmp(elf::basename(o.lname), elf::basename(needed)) == 0;
}

// BFS over DT_NEEDED from the objects already in `queue` (g_objs indices) through the new
// objects that have no parent yet (candidate = parent_idx == -2).
DLTRACE_LARGE_BSS constinit uint32_t g_queue[kMaxObjects];
struct NeededCtx {
  uint32_t node;
  uint32_t* tail;
};
void bfs_visit(const char* needed, void* arg) {
  auto* ctx = static_cast<NeededCtx*>(arg);
  const Obj& node = g_objs[ctx->node];
  for (uint32_t k = 0; k < g_nnew; ++k) {
    Obj& o = g_objs[g_new[k]];
    if (o.parent_idx != -2 || o.lmid != node.lmid) continue;
    if (!names_match(needed, o)) continue;
    o.parent_idx = static_cast<int32_t>(ctx->node);
    g_queue[(*ctx->tail)++] = g_new[k];
    return;
  }
}
bool unplaced_left() {
  for (uint32_t k = 0; k < g_nnew; ++k)
    if (g_objs[g_new[k]].parent_idx == -2) return true;
  return false;
}
void bfs(uint32_t head, uint32_t& tail) {
  // Reading a node's DT_NEEDED entries is only worth it while a new object has no parent yet.
  while (head < tail && unplaced_left()) {
    NeededCtx ctx{g_queue[head++], &tail};
    elf::for_each_needed(g_objs[ctx.node].image, bfs_visit, &ctx);
  }
}

bool in_preload_list(const char* list, const char* name) {
  if (list == nullptr) return false;
  const char* base = elf::basename(name);
  const size_t blen = strlen(base);
  for (const char* p = list; *p;) {
    while (*p == ':' || *p == ' ' || *p == '\t' || *p == '\n') ++p;
    const char* start = p;
    while (*p && *p != ':' && *p != ' ' && *p != '\t' && *p != '\n') ++p;
    if (p == start) continue;
    const char* slash = start;
    for (const char* q = start; q < p; ++q)
      if (*q == '/') slash = q + 1;
    if (static_cast<size_t>(p - slash) == blen && memcmp(slash, base, blen) == 0) return true;
  }
  return false;
}

DLTRACE_LARGE_BSS constinit char g_etc_preload[4096];
const char* etc_preload() {
  static bool loaded = false;
  if (!loaded) {
    loaded = true;
    int fd = open("/etc/ld.so.preload", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ssize_t n = read(fd, g_etc_preload, sizeof(g_etc_preload) - 1);
      g_etc_preload[n > 0 ? n : 0] = '\0';
      close(fd);
    }
  }
  return g_etc_preload;
}

bool contains_self(const elf::Image& im) {
  const auto self = reinterpret_cast<uint64_t>(&collect_cb);
  return self >= im.map_start && self < im.map_end;
}

void write_object(Obj& o, uint64_t opened_by, uint64_t load_seq) {
  format::ObjectLoadEntry e{};
  // Objects loaded later may come again (a plugin loaded in a loop): their names go through the
  // memo. Those present at start-up come once; the memo's bookkeeping would only cost them.
  const char* so = elf::soname(o.image);
  o.path_text = o.soname_text = nullptr;
  if (load_seq != 0) {
    e.path = intern_name(*g_writer, o.path, &o.path_text);
    e.soname = intern_name(*g_writer, so, &o.soname_text);
  } else {
    e.path = o.path ? g_writer->intern_string(o.path, strlen(o.path), &o.path_text) : kNoId;
    e.soname = so ? g_writer->intern_string(so, strlen(so), &o.soname_text) : kNoId;
  }
  e.cause = o.cause;
  e.flags = o.flags;
  e.parent = o.parent;
  e.build_id_len = elf::build_id(o.image, e.build_id, sizeof(e.build_id));
  e.opened_by = opened_by;
  e.load_seq = load_seq;
  e.lmid = o.lmid;
  e.base = o.image.base;
  e.map_start = o.image.map_start;
  e.map_end = o.image.map_end;
  e.link_map = reinterpret_cast<uint64_t>(o.lm);
  o.id = g_writer->add_object(e, &o.entry);
  o.load_seq = load_seq;
  o.written = true;
}

// In a fork child: `o` as the parent's trace has it, into the child's. Nothing is read from the
// object itself: another thread of the parent may have unloaded it (unmapped its dynamic section
// and notes, freed its l_name) after the parent's last sync, and the child's table learns that
// only at its next one.
void copy_object_after_fork(Obj& o) {
  const format::ObjectLoadEntry* inherited = o.entry;
  o.entry = nullptr;
  o.id = kNoId;
  if (inherited == nullptr) return;
  format::ObjectLoadEntry e = *inherited;
  const char* path = o.path_text;
  const char* soname = o.soname_text;
  o.path_text = o.soname_text = nullptr;
  e.path = path ? g_writer->intern_string(path, strlen(path), &o.path_text) : kNoId;
  e.soname = soname ? g_writer->intern_string(soname, strlen(soname), &o.soname_text) : kNoId;
  e.cause = o.cause;
  e.flags = o.flags;
  e.parent = o.parent;
  e.opened_by = 0;
  e.load_seq = 0;
  o.id = g_writer->add_object(e, &o.entry);
  o.load_seq = 0;
  o.written = true;
}

// This library loaded again into another namespace (namespaces.cpp loads it by its real path, which
// is not the name LD_PRELOAD gave when that was relative or a symlink): the same file, by build id.
bool is_recorder_copy(const Obj& o) {
  if (g_self_path == nullptr) return false;
  if (strcmp(o.lname, g_self_path) == 0) return true;
  uint8_t self[20], id[sizeof self];
  const uint32_t n = elf::build_id(o.image, id, sizeof id);
  return n != 0 && n == elf::build_id(g_self_image, self, sizeof self) && memcmp(id, self, n) == 0;
}

// Decides cause/parent/flags of the objects in g_new and writes them, parents first.
bool attribute(const Attribution& a) {
  bool opened_new = false;
  using format::ObjectCause;
  for (uint32_t k = 0; k < g_nnew; ++k) {
    Obj& o = g_objs[g_new[k]];
    o.parent_idx = -2;  // unassigned
    o.parent = kNoId;
    o.flags = 0;
    o.cause = static_cast<uint32_t>(ObjectCause::kNeeded);
    if (o.lmid != 0 && is_recorder_copy(o)) o.flags |= format::kObjectRecorder;
  }
  uint32_t tail = 0;
  uint64_t opened_by = 0;
  if (a.mode == Mode::kStartup) {
    const auto vdso = static_cast<uint64_t>(getauxval(AT_SYSINFO_EHDR));
    const char* env_preload = getenv("LD_PRELOAD");
    for (uint32_t k = 0; k < g_nnew; ++k) {
      Obj& o = g_objs[g_new[k]];
      o.global = o.lmid == 0;
      o.resident = o.lmid == 0;
      if (k == 0 && o.lmid == 0 && (o.lname == nullptr || o.lname[0] == '\0')) {
        g_exe_path = self_exe_path(g_exe_scratch, sizeof g_exe_scratch);
        o.path = g_exe_path;
        o.cause = static_cast<uint32_t>(ObjectCause::kStartup);
        o.parent_idx = -1;
        g_queue[tail++] = g_new[k];
      } else if (vdso != 0 && o.image.map_start <= vdso && vdso < o.image.map_end) {
        o.cause = static_cast<uint32_t>(ObjectCause::kStartup);
        o.flags |= format::kObjectVdso;
        o.parent_idx = -1;
      } else if (g_debug && o.image.base == g_debug->r_ldbase && o.lmid == 0) {
        o.cause = static_cast<uint32_t>(ObjectCause::kStartup);
        o.parent_idx = -1;
      } else if (contains_self(o.image)) {
        o.cause = static_cast<uint32_t>(ObjectCause::kPreload);
        o.flags |= format::kObjectRecorder;
        o.parent_idx = -1;
        g_queue[tail++] = g_new[k];
      } else if (in_preload_list(env_preload, o.lname) || in_preload_list(etc_preload(), o.lname)) {
        o.cause = static_cast<uint32_t>(ObjectCause::kPreload);
        o.parent_idx = -1;
        g_queue[tail++] = g_new[k];
      }
    }
    bfs(0, tail);
  } else if (a.mode == Mode::kCall) {
    opened_by = a.seq;
    int root = -1;
    for (uint32_t k = 0; k < g_nnew && root < 0; ++k)
      if (a.opened != nullptr && g_objs[g_new[k]].lm == a.opened) root = static_cast<int>(k);
    opened_new = root >= 0;
    if (root < 0 && a.opened == nullptr && g_nnew > 0) root = 0;
    if (root >= 0) {
      Obj& o = g_objs[g_new[root]];
      o.cause = static_cast<uint32_t>(ObjectCause::kDlopen);
      o.parent = a.caller_object;
      o.parent_idx = -1;
      g_queue[tail++] = g_new[root];
      bfs(0, tail);
      for (uint32_t i = 0; i < tail; ++i) g_objs[g_queue[i]].global = a.global;
    }
  }
  // Whatever is left was loaded without a traced call we can tie it to: discovered roots.
  for (uint32_t k = 0; k < g_nnew; ++k) {
    Obj& o = g_objs[g_new[k]];
    if (o.parent_idx != -2) continue;
    o.cause = static_cast<uint32_t>(ObjectCause::kDlopen);
    o.flags |= format::kObjectDiscovered;
    o.parent_idx = -1;
    o.global = false;
    o.resident = false;  // present at start-up, but dlopened (by libc, or before we ran): may go
    const uint32_t head = tail;
    g_queue[tail++] = g_new[k];
    bfs(head, tail);
    for (uint32_t i = head; i < tail; ++i) g_objs[g_queue[i]].flags |= format::kObjectDiscovered;
  }
  // g_queue is in BFS order: parents come before their children.
  for (uint32_t i = 0; i < tail; ++i) {
    Obj& o = g_objs[g_queue[i]];
    if (o.global) o.flags |= format::kObjectGlobal;
    if (o.parent_idx >= 0) o.parent = g_objs[o.parent_idx].id;
    const bool discovered = (o.flags & format::kObjectDiscovered) != 0;
    write_object(o, discovered ? 0 : opened_by, a.seq);
  }
  // Objects the BFS never queued (startup vDSO / ld.so): write them too.
  for (uint32_t k = 0; k < g_nnew; ++k) {
    Obj& o = g_objs[g_new[k]];
    if (o.written) continue;
    if (o.global) o.flags |= format::kObjectGlobal;
    write_object(o, opened_by, a.seq);
  }
  return opened_new;
}

}  // namespace

void set_writer(TraceWriter* writer) {
  g_writer = writer;
}

namespace {
SyncResult sync_locked(const Attribution& a, uint64_t unload_seq, bool only_if_changed) {
  SyncResult res;
  const Collected collected = collect(only_if_changed);
  if (collected == Collected::kNothing) return res;
  bool python_moved = false;
  g_nnew = 0;
  for (uint32_t i = 0; i < g_ncur; ++i) {  // the new ones
    const Cur& c = g_cur[i];
    const int slot = alloc_slot();
    if (slot < 0) {  // table full: the object stays unknown, and only a full walk may find it
      g_list0_valid = false;
      continue;
    }
    Obj& o = g_objs[slot];
    o = Obj{};
    o.lm = c.lm;
    o.lname = c.name;
    o.path = c.name;
    o.image = c.image;
    o.lmid = c.lmid;
    o.id = kNoId;
    o.parent = kNoId;
    o.used = true;
    o.seen = true;
    o.python = defines_python(c);
    python_moved |= o.python;
    track(static_cast<uint32_t>(slot));
    if (c.lmid != 0) ++g_objects_elsewhere;
    g_new[g_nnew++] = static_cast<uint32_t>(slot);
    if (c.lmid == 0 && c.image.map_start != 0 && contains_self(c.image)) {
      g_self_path = c.name;
      g_self_image = c.image;
    }
  }
  if (collected == Collected::kMarked) {
    g_ngone = 0;
    for (uint32_t i = 0; i < g_high; ++i)
      if (g_objs[i].used && !g_objs[i].seen) g_gone[g_ngone++] = i;
  }
  for (uint32_t k = 0; k < g_ngone; ++k) {
    const uint32_t i = g_gone[k];
    Obj& o = g_objs[i];
    if (o.id != kNoId) {
      g_writer->object_unloaded(o.id, unload_seq);
      ++res.removed;
    }
    python_moved |= o.python;
    if (o.lmid != 0) --g_objects_elsewhere;
    stack::forget_code(o.image.map_start, o.image.map_end);  // its cached unwind rules
    untrack(i);
    o.used = false;
  }
  if (g_nnew > 0) {
    res.opened_new = attribute(a);
    res.added = g_nnew;
  }
  if (g_nnew > 0 || res.removed > 0 || g_snap_seq.load(std::memory_order_relaxed) == 0) publish();
  if (python_moved) detail::g_python_generation.fetch_add(1, std::memory_order_release);
  return res;
}
}  // namespace

SyncResult sync(const Attribution& a, uint64_t unload_seq) {
  // A cautious fork child must not walk the loader's list (see fork_gate.h): objects loaded
  // meanwhile are registered by the first sync after it.
  if (fork_gate::cautious()) return {};
  fork_gate::Section gate;  // the table lock is never left held in a fork child
  pthread_mutex_lock(&g_lock);
  const SyncResult res = sync_locked(a, unload_seq, false);
  pthread_mutex_unlock(&g_lock);
  return res;
}

SyncResult sync_if_changed(const Attribution& a, uint64_t unload_seq) {
  if (fork_gate::cautious() || ablation::left_out(ablation::kObjectSync)) return {};
  fork_gate::Section gate;
  pthread_mutex_lock(&g_lock);
  const SyncResult res = sync_locked(a, unload_seq, true);
  pthread_mutex_unlock(&g_lock);
  return res;
}

namespace {
// Per-thread memo of the last lookups, valid while the snapshot generation is unchanged: a dlsym
// event looks up its caller and its result, usually the same two objects again and again. A
// resident object's entry (the executable, a library it needs: ld.so never unloads those) stays
// valid across generations, until a fork child gives every object a new id (g_id_epoch): a
// program that loads and unloads plugins keeps finding its own code without a search.
struct RangeMemo {
  uint64_t gen, start, end;
  int64_t lmid;
  uint32_t id;
  uint32_t hit;
  uint32_t resident, epoch;
};
struct LookupMemo {
  RangeMemo range[2];
  uint64_t handle_gen, handle;
  uint32_t handle_id;
  uint32_t next;  // range entry to replace next
};
constinit thread_local LookupMemo t_memo{};
// Moves when the objects' ids change in place (rewrite_after_fork).
constinit uint32_t g_id_epoch = 0;

// Whether `m` still answers for snapshot generation `gen` in id epoch `epoch`.
bool memo_valid(const RangeMemo& m, uint64_t gen, uint32_t epoch) {
  return m.gen != 0 && (m.gen == gen || (m.resident && m.epoch == epoch));
}
}  // namespace

namespace {
// The snapshot's range containing `address`, or nullptr. Call inside read_snapshot().
const RangeE* range_containing(uint64_t address) {
  uint32_t lo = 0, hi = rd(g_nranges);
  if (hi > kMaxObjects) hi = kMaxObjects;
  while (lo < hi) {
    const uint32_t mid = (lo + hi) / 2;
    if (rd(g_ranges[mid].start) <= address)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo > 0 && address < rd(g_ranges[lo - 1].end) ? &g_ranges[lo - 1] : nullptr;
}
}  // namespace

namespace {
// object_at, also giving the object's address range ([0, 0) if none).
uint32_t object_with_range(uint64_t address, bool* found, int64_t* lmid, uint64_t* start,
                           uint64_t* end) {
  const uint64_t gen = g_snap_seq.load(std::memory_order_acquire);
  LookupMemo& memo = t_memo;
  const uint32_t epoch = __atomic_load_n(&g_id_epoch, __ATOMIC_RELAXED);
  for (const RangeMemo& m : memo.range) {
    if (memo_valid(m, gen, epoch) && address >= m.start && address < m.end) {
      if (found) *found = m.hit != 0;
      if (lmid) *lmid = m.lmid;
      *start = m.start;
      *end = m.end;
      return m.id;
    }
  }
  uint32_t id = kNoId;
  int64_t ns = 0;
  bool hit = false;
  uint32_t resident = 0;
  uint64_t lo_addr = 0, hi_addr = 0;
  const bool ok = read_snapshot([&] {
    id = kNoId;
    hit = false;
    resident = 0;
    lo_addr = hi_addr = 0;
    if (const RangeE* r = range_containing(address)) {
      hit = true;
      id = rd(r->id);
      ns = rd(r->lmid);
      lo_addr = rd(r->start);
      hi_addr = rd(r->end);
      resident = rd(r->resident);
    }
  });
  if (ok && hit && (gen & 1) == 0 && g_snap_seq.load(std::memory_order_relaxed) == gen) {
    // An entry no longer valid goes first, so that a plugin's range does not push out the
    // executable's, still valid, in a loop that loads and unloads it.
    uint32_t k = memo.next;
    for (uint32_t j = 0; j < 2; ++j)
      if (!memo_valid(memo.range[j], gen, epoch)) k = j;
    memo.next = k ^ 1;
    memo.range[k] = {gen, lo_addr, hi_addr, ns, id, 1, resident, epoch};
  }
  if (found) *found = hit;
  if (lmid) *lmid = ns;
  *start = lo_addr;
  *end = hi_addr;
  return id;
}
}  // namespace

uint32_t object_at(uint64_t address, bool* found, int64_t* lmid) {
  uint64_t start, end;
  return object_with_range(address, found, lmid, &start, &end);
}

bool is_resident(uint64_t address) {
  bool resident = false;
  const bool ok = read_snapshot([&] {
    const RangeE* r = range_containing(address);
    resident = r != nullptr && rd(r->resident) != 0;
  });
  return ok && resident;
}

namespace {
bool find_handle(const void* handle, HandleE* out) {
  bool hit = false;
  const auto key = reinterpret_cast<uint64_t>(handle);
  read_snapshot([&] {
    hit = false;
    uint32_t lo = 0, hi = rd(g_nhandles);
    if (hi > kMaxObjects) hi = kMaxObjects;
    while (lo < hi) {
      const uint32_t mid = (lo + hi) / 2;
      const uint64_t v = rd(g_handles[mid].lm);
      if (v == key) {
        out->lm = v;
        out->lmid = rd(g_handles[mid].lmid);
        out->load_seq = rd(g_handles[mid].load_seq);
        out->id = rd(g_handles[mid].id);
        out->global = rd(g_handles[mid].global);
        hit = true;
        return;
      }
      if (v < key)
        lo = mid + 1;
      else
        hi = mid;
    }
  });
  return hit;
}
}  // namespace

uint32_t object_of_handle(const void* handle) {
  const uint64_t gen = g_snap_seq.load(std::memory_order_acquire);
  LookupMemo& memo = t_memo;
  const auto key = reinterpret_cast<uint64_t>(handle);
  if (memo.handle_gen == gen && gen != 0 && memo.handle == key) return memo.handle_id;
  HandleE h;
  const uint32_t id = find_handle(handle, &h) ? h.id : kNoId;
  if ((gen & 1) == 0 && g_snap_seq.load(std::memory_order_relaxed) == gen) {
    memo.handle_gen = gen;
    memo.handle = key;
    memo.handle_id = id;
  }
  return id;
}

namespace {
// The last lookup's objects, for the next one by the same caller through the same handle whose
// result lies in the same object (a loop over many names of one library).
struct LastLookup {
  uint64_t gen, caller_ip, handle;
  uint64_t result_start, result_end;  // the result's object's range; [0, 0): a null result
  LookupObjects objects;
  uint32_t known;
};
constinit thread_local LastLookup t_last_lookup{};
}  // namespace

bool lookup_objects(uint64_t caller_ip, const void* handle, uint64_t address, LookupObjects* out) {
  const uint64_t gen = g_snap_seq.load(std::memory_order_acquire);
  LastLookup& m = t_last_lookup;
  const auto key = reinterpret_cast<uint64_t>(handle);
  if (m.gen == gen && gen != 0 && m.caller_ip == caller_ip && m.handle == key &&
      (address != 0 ? address >= m.result_start && address < m.result_end : m.result_end == 0)) {
    *out = m.objects;
    return m.known != 0;
  }
  bool caller_known = false;
  bool result_known = true;
  uint64_t start = 0, end = 0;
  out->caller = object_at(caller_ip, &caller_known);
  out->handle = object_of_handle(handle);
  out->result =
      address != 0 ? object_with_range(address, &result_known, nullptr, &start, &end) : kNoId;
  const bool known = caller_known && result_known;
  // Only an answer from one stable snapshot (even, unchanged generation) is worth keeping, and
  // only one whose result was found in an object (its range is what the next call is matched by).
  if ((gen & 1) == 0 && g_snap_seq.load(std::memory_order_relaxed) == gen &&
      (address == 0 || result_known))
    m = {gen, caller_ip, key, start, end, *out, known ? 1u : 0u};
  return known;
}

bool handle_info(const void* handle, HandleInfo* out) {
  HandleE h;
  if (!find_handle(handle, &h)) return false;
  *out = {h.id, h.lmid, h.global != 0, h.load_seq};
  return true;
}

namespace {
struct PromoteCtx {
  uint32_t node;
  uint32_t* tail;
};
void promote_visit(const char* needed, void* arg) {
  auto* ctx = static_cast<PromoteCtx*>(arg);
  const Obj& node = g_objs[ctx->node];
  for (uint32_t i = 0; i < g_high; ++i) {
    Obj& o = g_objs[i];
    if (!o.used || o.lmid != node.lmid || o.seen) continue;
    if (!names_match(needed, o)) continue;
    o.seen = true;
    g_queue[(*ctx->tail)++] = i;
    return;
  }
}
}  // namespace

void promote(const void* handle, uint64_t seq) {
  fork_gate::Section gate;
  pthread_mutex_lock(&g_lock);
  int start = -1;
  for (uint32_t i = 0; i < g_high; ++i) {
    g_objs[i].seen = false;
    if (g_objs[i].used && g_objs[i].lm == handle) start = static_cast<int>(i);
  }
  bool any = false;
  if (start >= 0 && !g_objs[start].global) {
    uint32_t head = 0, tail = 0;
    g_queue[tail++] = static_cast<uint32_t>(start);
    g_objs[start].seen = true;
    while (head < tail) {
      PromoteCtx ctx{g_queue[head++], &tail};
      elf::for_each_needed(g_objs[ctx.node].image, promote_visit, &ctx);
    }
    for (uint32_t i = 0; i < tail; ++i) {
      Obj& o = g_objs[g_queue[i]];
      if (o.global) continue;
      o.global = true;
      any = true;
      if (o.id != kNoId) g_writer->object_promoted(o.id, seq);
    }
  }
  if (any) {
    g_changed_lm = 0;  // global flags changed in place
    publish();
  }
  pthread_mutex_unlock(&g_lock);
}

void rewrite_after_fork() {
  pthread_mutex_init(&g_lock, nullptr);
  DLTRACE_LARGE_BSS static uint32_t order[kMaxObjects];
  DLTRACE_LARGE_BSS static uint32_t old_ids[kMaxObjects];
  uint32_t n = 0;
  for (uint32_t i = 0; i < g_high; ++i)
    if (g_objs[i].used && g_objs[i].id != kNoId) order[n++] = i;
  std::sort(order, order + n, [](uint32_t a, uint32_t b) { return g_objs[a].id < g_objs[b].id; });
  for (uint32_t k = 0; k < n; ++k) old_ids[k] = g_objs[order[k]].id;
  for (uint32_t k = 0; k < n; ++k) {
    Obj& o = g_objs[order[k]];
    if (o.parent != kNoId) {
      // Parents were written earlier (smaller old id): their new id is already set.
      const uint32_t* pos = std::lower_bound(old_ids, old_ids + k, o.parent);
      o.parent = (pos != old_ids + k && *pos == o.parent) ? g_objs[order[pos - old_ids]].id : kNoId;
    }
    copy_object_after_fork(o);
  }
  g_writer->release_inherited();
  __atomic_store_n(&g_id_epoch, g_id_epoch + 1, __ATOMIC_RELAXED);
  g_changed_start = g_changed_lm = 0;  // every id changed
  publish();
}

const char* recorder_path() {
  return g_self_path;
}
const char* executable_path() {
  return g_exe_path;
}

}  // namespace dltrace::preload::objects
