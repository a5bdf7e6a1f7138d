// CallerContext: real dl* calls whose return address lies in the original caller's object
// (see caller_context.h). Finds a `ret` gadget per object and caches it without locks.
#include "caller_context.h"

#include <elf.h>
#include <link.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "fork_gate.h"
#include "real_functions.h"

namespace dltrace::preload {
namespace {

// ---------------------------------------------------------------------------------------------
// Gadget choice. Any 0xC3 byte executes as `ret`; the choice only matters to unwinders, which
// look up the CFI row at gadget-1. Best: the last byte of an FDE (a real function-final ret)
// preceded by `xor %eax,%eax` (leaf-style, rsp unchanged), so the row at gadget-1 says CFA=rsp+8.

struct ExecRange {
  uintptr_t start, end;
};

struct ObjectView {
  ExecRange exec[8];
  int exec_count = 0;
  const uint8_t* eh_frame_hdr = nullptr;
};

bool in_exec(const ObjectView& o, uintptr_t a, size_t n) {
  for (int i = 0; i < o.exec_count; ++i)
    if (a >= o.exec[i].start && a + n <= o.exec[i].end) return true;
  return false;
}

uint64_t read_uleb(const uint8_t*& p) {
  uint64_t v = 0;
  for (unsigned shift = 0;; shift += 7) {
    uint8_t b = *p++;
    if (shift < 64) v |= uint64_t(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return v;
  }
}

// Size of an encoded pointer's value by its DW_EH_PE format nibble; 0 if unsupported.
size_t encoded_size(uint8_t enc) {
  switch (enc & 0x0f) {
    case 0x00:
      return sizeof(void*);  // absptr
    case 0x02:
    case 0x0a:
      return 2;  // udata2, sdata2
    case 0x03:
    case 0x0b:
      return 4;  // udata4, sdata4
    case 0x04:
    case 0x0c:
      return 8;  // udata8, sdata8
    default:
      return 0;
  }
}

uint64_t read_value(const uint8_t* p, uint8_t enc) {
  switch (enc & 0x0f) {
    case 0x02: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return v;
    }
    case 0x0a: {
      int16_t v;
      std::memcpy(&v, p, 2);
      return uint64_t(int64_t(v));
    }
    case 0x03: {
      uint32_t v;
      std::memcpy(&v, p, 4);
      return v;
    }
    case 0x0b: {
      int32_t v;
      std::memcpy(&v, p, 4);
      return uint64_t(int64_t(v));
    }
    default: {
      uint64_t v;
      std::memcpy(&v, p, 8);
      return v;
    }
  }
}

// The FDE pointer encoding declared by a CIE's "zR" augmentation; 0xff if not understood.
uint8_t cie_fde_encoding(const uint8_t* cie) {
  uint32_t length;
  std::memcpy(&length, cie, 4);
  if (length == 0 || length == 0xffffffffu) return 0xff;
  const uint8_t* p = cie + 8;  // length, CIE id
  uint8_t version = *p++;
  const char* aug = reinterpret_cast<const char*>(p);
  p += std::strlen(aug) + 1;
  if (aug[0] != 'z' && aug[0] != 0) return 0xff;
  read_uleb(p);  // code alignment
  read_uleb(p);  // data alignment (sleb, but only skipped)
  if (version == 1)
    ++p;
  else
    read_uleb(p);  // return address register
  if (aug[0] == 0) return 0x00;
  read_uleb(p);  // augmentation data length
  for (const char* a = aug + 1; *a != 0; ++a) {
    switch (*a) {
      case 'R':
        return *p;
      case 'L':
        ++p;
        break;
      case 'P': {
        uint8_t enc = *p++;
        size_t n = encoded_size(enc);
        if (n == 0 || (enc & 0x70) == 0x50) return 0xff;  // aligned: not produced by toolchains
        p += n;
        break;
      }
      case 'S':
      case 'B':
        break;
      default:
        return 0xff;
    }
  }
  return 0x00;  // no 'R': absolute pointers
}

// Bytes ending at `ret` that move %rsp (pop, leave, add $imm,%rsp): reject those gadgets.
bool moves_rsp_before(uintptr_t ret) {
  auto b = reinterpret_cast<const uint8_t*>(ret);
  uint8_t p1 = b[-1];
  if ((p1 >= 0x58 && p1 <= 0x5f) || p1 == 0xc9) return true;         // pop r / leave
  if (b[-4] == 0x48 && b[-3] == 0x83 && b[-2] == 0xc4) return true;  // add $imm8,%rsp
  if (b[-7] == 0x48 && b[-6] == 0x81 && b[-5] == 0xc4) return true;  // add $imm32,%rsp
  return false;
}

// Walks the PT_GNU_EH_FRAME search table (as ld emits it: udata4 count, datarel sdata4 table).
uintptr_t gadget_from_eh_frame(const ObjectView& o) {
  const uint8_t* hdr = o.eh_frame_hdr;
  if (hdr == nullptr || hdr[0] != 1) return 0;
  uint8_t ptr_enc = hdr[1], count_enc = hdr[2], table_enc = hdr[3];
  size_t ptr_size = encoded_size(ptr_enc);
  if (ptr_enc == 0xff || ptr_size == 0 || count_enc != 0x03 || table_enc != 0x3b) return 0;
  const uint8_t* p = hdr + 4 + ptr_size;
  uint32_t count;
  std::memcpy(&count, p, 4);
  const int32_t* table = reinterpret_cast<const int32_t*>(p + 4);
  const uint8_t* last_cie = nullptr;
  uint8_t enc = 0xff;
  uintptr_t fallback = 0;
  for (uint32_t i = 0; i < count; ++i) {
    uintptr_t begin = reinterpret_cast<uintptr_t>(hdr) + intptr_t(table[2 * i]);
    const uint8_t* fde = hdr + table[2 * i + 1];
    uint32_t length, cie_offset;
    std::memcpy(&length, fde, 4);
    if (length == 0xffffffffu) continue;  // 64-bit DWARF: not emitted for x86-64 code
    std::memcpy(&cie_offset, fde + 4, 4);
    const uint8_t* cie = fde + 4 - cie_offset;
    if (cie != last_cie) {
      last_cie = cie;
      enc = cie_fde_encoding(cie);
    }
    size_t n = encoded_size(enc);
    if (enc == 0xff || n == 0) continue;
    uint64_t range = read_value(fde + 8 + n, enc & 0x0f);  // the range is never pc-relative
    uintptr_t end = begin + range;
    if (range < 1 || !in_exec(o, end - 1, 1)) continue;
    auto b = reinterpret_cast<const uint8_t*>(end);
    if (b[-1] != 0xc3) continue;
    if (range >= 3 && in_exec(o, end - 3, 3) && b[-3] == 0x31 && b[-2] == 0xc0) return end - 1;
    if (fallback == 0 && range >= 2 && in_exec(o, end - 8, 8) && !moves_rsp_before(end - 1))
      fallback = end - 1;
  }
  return fallback;
}

// No usable unwind table: any `xor %eax,%eax; ret`, else any 0xC3 in an executable segment.
uintptr_t gadget_from_scan(const ObjectView& o) {
  for (int i = 0; i < o.exec_count; ++i) {
    auto b = reinterpret_cast<const uint8_t*>(o.exec[i].start);
    size_t n = o.exec[i].end - o.exec[i].start;
    for (size_t k = 2; k < n; ++k)
      if (b[k] == 0xc3 && b[k - 1] == 0xc0 && b[k - 2] == 0x31) return o.exec[i].start + k;
  }
  for (int i = 0; i < o.exec_count; ++i) {
    auto b = reinterpret_cast<const uint8_t*>(o.exec[i].start);
    if (auto p = std::memchr(b, 0xc3, o.exec[i].end - o.exec[i].start))
      return reinterpret_cast<uintptr_t>(p);
  }
  return 0;
}

uintptr_t find_gadget(const dl_phdr_info& info) {
  ObjectView o;
  for (int i = 0; i < info.dlpi_phnum; ++i) {
    const ElfW(Phdr)& p = info.dlpi_phdr[i];
    if (p.p_type == PT_GNU_EH_FRAME)
      o.eh_frame_hdr = reinterpret_cast<const uint8_t*>(info.dlpi_addr + p.p_vaddr);
    if (p.p_type == PT_LOAD && (p.p_flags & (PF_X | PF_R)) == (PF_X | PF_R) && o.exec_count < 8)
      o.exec[o.exec_count++] = {info.dlpi_addr + p.p_vaddr, info.dlpi_addr + p.p_vaddr + p.p_memsz};
  }
  if (o.exec_count == 0) return 0;
  if (uintptr_t g = gadget_from_eh_frame(o)) return g;
  return gadget_from_scan(o);
}

// ---------------------------------------------------------------------------------------------
// Which object contains the caller. _dl_find_object (glibc >= 2.35, lock-free) is resolved by
// our own lookup so the preload does not require GLIBC_2.35.

struct FindObjectResult {  // struct dl_find_object on x86-64
  unsigned long long flags;
  void* map_start;
  void* map_end;
  link_map* map;
  void* eh_frame;
  unsigned long long reserved[7];
};
using FindObjectFn = int (*)(void*, FindObjectResult*);

constexpr uintptr_t kUnresolved = 0, kAbsent = 1;
std::atomic<uintptr_t> g_find_object{kUnresolved};

FindObjectFn find_object_fn() {
  uintptr_t v = g_find_object.load(std::memory_order_acquire);
  if (v == kUnresolved) {
    void* f = lookup_global("_dl_find_object", "GLIBC_2.35");
    v = f != nullptr ? reinterpret_cast<uintptr_t>(f) : kAbsent;
    g_find_object.store(v, std::memory_order_release);  // idempotent: every racer stores the same
  }
  return v == kAbsent ? nullptr : reinterpret_cast<FindObjectFn>(v);
}

int subs_callback(dl_phdr_info* info, size_t, void* data) {
  *static_cast<unsigned long long*>(data) = info->dlpi_subs;
  return 1;
}

// Bumped by ld.so on every unload: a cached gadget is trusted only within one generation.
unsigned long long unload_generation() {
  unsigned long long subs = 0;
  fork_gate::iterate_phdr(subs_callback, &subs);
  return subs;
}

// ---------------------------------------------------------------------------------------------
// Per-object cache: small open-addressed table of seqlocked entries (readers never wait;
// a writer that finds an entry being written simply does not cache).

struct Entry {
  std::atomic<uint32_t> seq{0};   // odd while being written
  std::atomic<uintptr_t> key{0};  // object load address (l_addr / dlpi_addr) + 1
  std::atomic<uintptr_t> gadget{0};
  std::atomic<unsigned long long> generation{0};
};
constexpr size_t kEntries = 64, kProbe = 4;
Entry g_cache[kEntries];
std::atomic<uint32_t> g_evict{0};

size_t slot_of(uintptr_t key) {
  return (key >> 12) * 0x9E3779B97F4A7C15ull >> 58;
}

bool cache_get(uintptr_t key, unsigned long long gen, uintptr_t& gadget) {
  for (size_t i = 0; i < kProbe; ++i) {
    Entry& e = g_cache[(slot_of(key) + i) % kEntries];
    uint32_t s1 = e.seq.load(std::memory_order_acquire);
    if (s1 & 1) continue;
    // Acquire loads keep the re-check of seq after them and, paired with the writer's release
    // stores, make a torn read visible as a changed seq (no fences: TSan does not model them).
    uintptr_t k = e.key.load(std::memory_order_acquire);
    uintptr_t g = e.gadget.load(std::memory_order_acquire);
    unsigned long long n = e.generation.load(std::memory_order_acquire);
    if (e.seq.load(std::memory_order_relaxed) != s1) continue;
    if (k == key && n == gen) {
      gadget = g;
      return true;
    }
  }
  return false;
}

void cache_put(uintptr_t key, unsigned long long gen, uintptr_t gadget) {
  size_t base = slot_of(key);
  size_t victim = (base + g_evict.fetch_add(1, std::memory_order_relaxed)) % kEntries;
  for (size_t i = 0; i < kProbe; ++i) {  // prefer our own stale entry or one from an old generation
    Entry& e = g_cache[(base + i) % kEntries];
    if (e.key.load(std::memory_order_relaxed) == key ||
        e.generation.load(std::memory_order_relaxed) != gen) {
      victim = (base + i) % kEntries;
      break;
    }
  }
  Entry& e = g_cache[victim];
  uint32_t s = e.seq.load(std::memory_order_relaxed);
  if ((s & 1) || !e.seq.compare_exchange_strong(s, s + 1, std::memory_order_acquire)) return;
  e.key.store(key, std::memory_order_release);
  e.gadget.store(gadget, std::memory_order_release);
  e.generation.store(gen, std::memory_order_release);
  e.seq.store(s + 2, std::memory_order_release);
}

struct Locate {
  uintptr_t ip;
  unsigned long long generation;
  uintptr_t gadget = 0;
  bool found = false;
};

// Slow path: finds the object and scans it while dl_iterate_phdr's lock keeps it mapped.
int locate_callback(dl_phdr_info* info, size_t, void* data) {
  auto& l = *static_cast<Locate*>(data);
  for (int i = 0; i < info->dlpi_phnum && !l.found; ++i) {
    const ElfW(Phdr)& p = info->dlpi_phdr[i];
    uintptr_t start = info->dlpi_addr + p.p_vaddr;
    l.found = p.p_type == PT_LOAD && l.ip >= start && l.ip - start < p.p_memsz;
  }
  if (!l.found) return 0;
  const uintptr_t key = info->dlpi_addr + 1;
  if (!cache_get(key, l.generation, l.gadget)) {
    l.gadget = find_gadget(*info);
    // Cached under the generation read before locating: an unload in between invalidates it.
    cache_put(key, l.generation, l.gadget);
  }
  return 1;
}

// The generation under which gadgets of never-unloaded objects are cached (dlpi_subs cannot
// reach it).
constexpr unsigned long long kResidentGeneration = ~0ull;
std::atomic<ResidentPredicate> g_resident{nullptr};

bool resident(const void* ip) {
  const ResidentPredicate p = g_resident.load(std::memory_order_acquire);
  return p != nullptr && p(reinterpret_cast<uint64_t>(ip));
}

// A cautious fork child (see fork_gate.h) must not ask the loader for its unload count: a gadget
// cached for the caller's object before the fork is used if _dl_find_object (lock-free) still
// places both the caller and the gadget in that same object, and the byte is still a `ret`.
const void* cached_gadget_unlocked(const void* ip) {
  const FindObjectFn find = find_object_fn();
  FindObjectResult r;
  if (find == nullptr || find(const_cast<void*>(ip), &r) != 0 || r.map == nullptr) return nullptr;
  const uintptr_t key = r.map->l_addr + 1;
  for (size_t i = 0; i < kProbe; ++i) {
    Entry& e = g_cache[(slot_of(key) + i) % kEntries];
    const uint32_t s1 = e.seq.load(std::memory_order_acquire);
    const uintptr_t k = e.key.load(std::memory_order_acquire);
    const uintptr_t g = e.gadget.load(std::memory_order_acquire);
    if ((s1 & 1) || e.seq.load(std::memory_order_relaxed) != s1 || k != key || g == 0) continue;
    FindObjectResult rg;
    if (find(reinterpret_cast<void*>(g), &rg) == 0 && rg.map == r.map &&
        *reinterpret_cast<const unsigned char*>(g) == 0xC3)
      return reinterpret_cast<const void*>(g);
  }
  return nullptr;
}

const void* gadget_for(const void* ip) {
  if (fork_gate::cautious() && !resident(ip)) {
    if (const void* g = cached_gadget_unlocked(ip)) return g;
  }
  // A resident object's gadget stays valid across other objects' unloads; asking the loader for
  // its unload count takes its lock.
  const unsigned long long gen = resident(ip)
                                     ? kResidentGeneration
                                     : unload_generation();  // read before locating: see cache_put
  if (FindObjectFn find = find_object_fn()) {
    FindObjectResult r;
    uintptr_t gadget = 0;
    if (find(const_cast<void*>(ip), &r) == 0 && r.map != nullptr &&
        cache_get(r.map->l_addr + 1, gen, gadget))
      return reinterpret_cast<const void*>(gadget);
  }
  Locate l{reinterpret_cast<uintptr_t>(ip), gen};
  fork_gate::iterate_phdr(locate_callback, &l);
  return l.found ? reinterpret_cast<const void*>(l.gadget) : nullptr;
}

}  // namespace

bool trampoline_available() {
#if defined(__x86_64__)
  static std::atomic<int> state{0};  // 0 unknown, 1 available, 2 not
  int s = state.load(std::memory_order_relaxed);
  if (s == 0) {
    int saved = errno;  // the traced program must not see our probe's errno
    unsigned long long features = 0;
    constexpr int kArchShstkStatus = 0x5005;
    long rc = syscall(SYS_arch_prctl, kArchShstkStatus, &features);
    errno = saved;
    bool shadow_stack = rc == 0 && (features & 1) != 0;
    s = shadow_stack ? 2 : 1;
    state.store(s, std::memory_order_relaxed);
  }
  return s == 1;
#else
  return false;
#endif
}

void set_resident_predicate(ResidentPredicate predicate) {
  g_resident.store(predicate, std::memory_order_release);
}

CallerContext::CallerContext(const void* caller_ip)
    : caller_ip_(caller_ip), gadget_(trampoline_available() ? gadget_for(caller_ip) : nullptr) {}

void* CallerContext::dlopen(const char* file, int flags) const {
  const auto& real = real_functions();
  if (gadget_ == nullptr) return real.dlopen(file, flags);
  return reinterpret_cast<void*>(dltrace_call_with_return_address(
      reinterpret_cast<const void*>(real.dlopen), gadget_, reinterpret_cast<uintptr_t>(file),
      static_cast<uintptr_t>(flags), 0));
}

void* CallerContext::dlmopen(Lmid_t lmid, const char* file, int flags) const {
  const auto& real = real_functions();
  if (gadget_ == nullptr) return real.dlmopen(lmid, file, flags);
  return reinterpret_cast<void*>(dltrace_call_with_return_address(
      reinterpret_cast<const void*>(real.dlmopen), gadget_, static_cast<uintptr_t>(lmid),
      reinterpret_cast<uintptr_t>(file), static_cast<uintptr_t>(flags)));
}

void* CallerContext::dlsym(void* handle, const char* symbol) const {
  const auto& real = real_functions();
  if (gadget_ == nullptr) return real.dlsym(handle, symbol);
  return reinterpret_cast<void*>(dltrace_call_with_return_address(
      reinterpret_cast<const void*>(real.dlsym), gadget_, reinterpret_cast<uintptr_t>(handle),
      reinterpret_cast<uintptr_t>(symbol), 0));
}

void* CallerContext::dlvsym(void* handle, const char* symbol, const char* version) const {
  const auto& real = real_functions();
  if (gadget_ == nullptr) return real.dlvsym(handle, symbol, version);
  return reinterpret_cast<void*>(dltrace_call_with_return_address(
      reinterpret_cast<const void*>(real.dlvsym), gadget_, reinterpret_cast<uintptr_t>(handle),
      reinterpret_cast<uintptr_t>(symbol), reinterpret_cast<uintptr_t>(version)));
}

}  // namespace dltrace::preload
