// The recorder's native-stack walk (stack_capture.h).
//
// Memory safety: the walk reads the stack only in [sp, bound): sp is the capturing frame's own
// stack pointer and bound the top of this thread's stack as glibc lays it out (see stack_bound);
// every frame's CFA must lie above the previous one and below the bound, and the walk takes at
// most depth + kOwnFrames steps. It reads unwind tables only inside the readable segment that
// holds the object's .eh_frame_hdr, within the mapping _dl_find_object reported for the address
// (eh_frame_index.h, table_segment), and only for addresses on this thread's stack, whose objects
// cannot be unloaded while their frames are live.
#include "stack_capture.h"

#include <elf.h>
#include <link.h>

#include <cstring>

#include "arch/arch.h"
#include "dltrace/format.h"
#include "eh_frame_index.h"
#include "fork_gate.h"
#include "frame_rules.h"
#include "real_functions.h"
#include "trace_writer.h"

namespace dltrace::preload::stack {
namespace {

// ---------------------------------------------------------------------------------------------
// The loader's lock-free lookups, resolved by our own walk of the loaded objects so that the
// preload needs neither GLIBC_2.35 nor ld.so as a NEEDED entry.

constinit std::atomic<void* const*> g_libc_stack_end{nullptr};  // ld.so's __libc_stack_end
constinit std::atomic<int> g_resolved{0};                       // 1: looked up (found or not)

FindObjectFn find_object() {
  const FindObjectFn find = find_object_fn();  // null in a cautious child that never resolved it
  // The look-up walks the loaded objects under the loader's lock: not where a fork may have left
  // it held. The first capture of a process resolves it for its fork children.
  if (find != nullptr && g_resolved.load(std::memory_order_acquire) == 0 &&
      !fork_gate::cautious()) {
    g_libc_stack_end.store(static_cast<void* const*>(lookup_global("__libc_stack_end")),
                           std::memory_order_relaxed);
    g_resolved.store(1, std::memory_order_release);  // idempotent: racers store the same
  }
  return find;
}

// The top of the calling thread's stack, or 0 when it is not known. glibc puts a thread's
// descriptor at the top of the stack block it created (or was given) for it, so for such a
// thread [sp, thread pointer) is that block's stack part (x86-64: the descriptor is at the
// thread pointer; AArch64: just below it). The main thread's descriptor is elsewhere, and its
// stack ends at __libc_stack_end (the stack pointer ld.so was entered with). Each candidate lies
// either inside sp's own mapping above sp, or outside it altogether and then above that mapping's
// end (or below sp): the lowest candidate above sp is therefore the right one.
uintptr_t stack_bound(uintptr_t sp) {
  constexpr uintptr_t kMaxSpan = uintptr_t(1) << 30;  // sanity: no stack is larger
  uintptr_t bound = ~uintptr_t(0);
  const uintptr_t tp = reinterpret_cast<uintptr_t>(__builtin_thread_pointer());
  if (tp > sp) bound = tp;
  if (void* const* end = g_libc_stack_end.load(std::memory_order_relaxed)) {
    const uintptr_t e = reinterpret_cast<uintptr_t>(*end);
    if (e > sp && e < bound) bound = e;
  }
  return bound - sp >= sizeof(uintptr_t) && bound - sp <= kMaxSpan ? bound : 0;
}

// ---------------------------------------------------------------------------------------------
// The rule cache: address -> decoded FrameRule, in static storage. Entries are seqlocked: a
// reader ignores an entry whose counter is odd or moved while it read; a writer takes an entry
// by a compare-and-swap of its counter and skips it when another writer holds it. Each entry
// carries the unload epoch of its address's page bucket, read before the rule was decoded:
// forget_code moves the epochs of the pages it is told about.

constexpr unsigned kEpochBits = 12, kPageShift = 12;
DLTRACE_LARGE_BSS constinit std::atomic<uint32_t> g_epochs[1u << kEpochBits];

std::atomic<uint32_t>& epoch_of(uintptr_t pc) {
  return g_epochs[(pc >> kPageShift) & ((1u << kEpochBits) - 1)];
}

struct Entry {
  std::atomic<uint32_t> seq{0};  // odd while being written
  std::atomic<uint32_t> epoch{0};
  std::atomic<uintptr_t> pc{0};
  std::atomic<uint64_t> rule[2]{};
};
constexpr unsigned kEntryBits = 11;
DLTRACE_LARGE_BSS constinit Entry g_cache[1u << kEntryBits];

size_t slot_of(uintptr_t pc) {
  return (pc * 0x9E3779B97F4A7C15ull) >> (64 - kEntryBits);
}

bool cache_get(uintptr_t pc, FrameRule* out) {
  const uint32_t epoch = epoch_of(pc).load(std::memory_order_acquire);
  const size_t base = slot_of(pc);
  for (size_t i = 0; i < 2; ++i) {
    Entry& e = g_cache[base ^ i];
    const uint32_t s = e.seq.load(std::memory_order_acquire);
    if (s & 1) continue;
    // Acquire loads keep the re-check of seq after them (no fences: TSan does not model them).
    const uintptr_t p = e.pc.load(std::memory_order_acquire);
    const uint32_t n = e.epoch.load(std::memory_order_acquire);
    const uint64_t r0 = e.rule[0].load(std::memory_order_acquire);
    const uint64_t r1 = e.rule[1].load(std::memory_order_acquire);
    if (e.seq.load(std::memory_order_relaxed) != s || p != pc || s == 0) continue;
    if (n != epoch) return false;  // code there was unloaded since
    const uint64_t words[2] = {r0, r1};
    std::memcpy(out, words, sizeof *out);
    return true;
  }
  return false;
}

void cache_put(uintptr_t pc, uint32_t epoch, const FrameRule& rule) {
  const size_t base = slot_of(pc);
  Entry* victim = &g_cache[base ^ ((pc >> 4) & 1)];
  for (size_t i = 0; i < 2; ++i) {  // prefer an empty entry or a stale one of the same address
    Entry& e = g_cache[base ^ i];
    if (e.seq.load(std::memory_order_relaxed) == 0 || e.pc.load(std::memory_order_relaxed) == pc) {
      victim = &e;
      break;
    }
  }
  uint32_t s = victim->seq.load(std::memory_order_relaxed);
  if ((s & 1) || !victim->seq.compare_exchange_strong(s, s + 1, std::memory_order_acquire)) return;
  uint64_t words[2];
  std::memcpy(words, &rule, sizeof words);
  victim->pc.store(pc, std::memory_order_release);
  victim->epoch.store(epoch, std::memory_order_release);
  victim->rule[0].store(words[0], std::memory_order_release);
  victim->rule[1].store(words[1], std::memory_order_release);
  victim->seq.store(s + 2, std::memory_order_release);
}

// Dlclose calls between their real call and the object table's look at what it unloaded.
constinit std::atomic<uint32_t> g_unloading{0};

// ---------------------------------------------------------------------------------------------
// Decoding a rule: the object of the address (the last one found is kept for the walk: callers
// are often in the same object), its FDE, the CFI interpreted up to the address.

struct ObjectMemo {
  uintptr_t start = 0, end = 0;  // the object's mapping, as _dl_find_object reported it
  const uint8_t* eh_frame_hdr = nullptr;
  uintptr_t table_lo = 0, table_hi = 0;  // the loaded segment that holds the unwind table
};

// The readable PT_LOAD segment of `found`'s object that holds `address`: the mapping may have
// inaccessible gaps between segments, the segment has none. The program headers are read from
// the ELF header at the mapping's start (the first segment maps the file from offset 0), only
// within the first page. False if the object does not look like that.
bool table_segment(const arch::DlFindObject& found, uintptr_t address, ObjectMemo& object) {
  constexpr uintptr_t kFirstPage = 4096;
  const auto* header = static_cast<const ElfW(Ehdr)*>(found.map_start);
  if (found.map == nullptr || object.end - object.start < kFirstPage ||
      std::memcmp(header->e_ident, ELFMAG, SELFMAG) != 0 ||
      header->e_phentsize != sizeof(ElfW(Phdr)) || header->e_phoff > kFirstPage ||
      (kFirstPage - header->e_phoff) / sizeof(ElfW(Phdr)) < header->e_phnum)
    return false;
  const auto* phdr = reinterpret_cast<const ElfW(Phdr)*>(object.start + header->e_phoff);
  const uintptr_t bias = found.map->l_addr;
  for (unsigned i = 0; i < header->e_phnum; ++i) {
    const ElfW(Phdr)& p = phdr[i];
    const uintptr_t start = bias + p.p_vaddr, end = start + p.p_memsz;
    if (p.p_type != PT_LOAD || (p.p_flags & PF_R) == 0 || address < start || address >= end)
      continue;
    object.table_lo = start > object.start ? start : object.start;
    object.table_hi = end < object.end ? end : object.end;
    return true;
  }
  return false;
}

bool decode_rule(FindObjectFn find, uintptr_t target, ObjectMemo& object, FrameRule* out) {
  if (target < object.start || target >= object.end) {
    arch::DlFindObject found;
    if (find(reinterpret_cast<void*>(target), &found) != 0) return false;
    object.start = reinterpret_cast<uintptr_t>(found.map_start);
    object.end = reinterpret_cast<uintptr_t>(found.map_end);
    object.eh_frame_hdr = static_cast<const uint8_t*>(found.eh_frame);
    if (object.eh_frame_hdr != nullptr &&
        !table_segment(found, reinterpret_cast<uintptr_t>(found.eh_frame), object))
      object.eh_frame_hdr = nullptr;  // an object laid out otherwise: no frame of it is walked
  }
  FrameDescription fd;
  return object.eh_frame_hdr != nullptr &&
         find_frame_description(object.eh_frame_hdr, target, object.table_lo, object.table_hi,
                                &fd) &&
         compute_frame_rule(fd, target, out);
}

struct RuleSource {
  FindObjectFn find;
  bool use_cache;
  ObjectMemo object;

  bool rule_for(uintptr_t target, FrameRule* out) {
    if (use_cache) {
      if (cache_get(target, out)) return true;
      const uint32_t epoch = epoch_of(target).load(std::memory_order_acquire);
      if (!decode_rule(find, target, object, out)) return false;
      cache_put(target, epoch, *out);
      return true;
    }
    return decode_rule(find, target, object, out);
  }
};

// A word of the stack, if [address, address + 8) lies in [lo, hi) (hi - lo >= 8: stack_bound).
bool read_stack(uintptr_t address, uintptr_t lo, uintptr_t hi, uintptr_t* out) {
  if (address - lo > hi - lo - sizeof(uintptr_t)) return false;  // also catches address < lo
  *out = *reinterpret_cast<const uintptr_t*>(address);
  return true;
}

constexpr uint32_t kOwnFrames = 16;  // the recorder's frames above the caller (and a nested
                                     // call's: ld.so's, the trampoline's), at most

}  // namespace

// Not inlined: the walk starts from this function's own registers and CFI row.
__attribute__((noinline)) uint32_t capture(TraceWriter& writer, const void* caller_ip,
                                           uint32_t depth) {
  if (depth == 0) return format::kNoId;
  if (depth > kMaxDepth) depth = kMaxDepth;
  const FindObjectFn find = find_object();
  if (find == nullptr) return format::kNoId;
  arch::UnwindRegisters regs = arch::current_registers();
  const uintptr_t lo = regs.sp;
  const uintptr_t hi = stack_bound(lo);
  const uintptr_t caller = arch::strip_return_address(reinterpret_cast<uintptr_t>(caller_ip));
  // A cautious fork child may have inherited an unload the object table has not seen yet.
  RuleSource rules{
      find, !fork_gate::cautious() && g_unloading.load(std::memory_order_acquire) == 0, {}};
  uint64_t ips[kMaxDepth];
  uint32_t count = 0;
  uintptr_t target = regs.pc;  // the first frame's row is the one at pc itself
  uintptr_t last_cfa = lo - 1;
  for (uint32_t step = 0; hi != 0 && step < depth + kOwnFrames && count < depth; ++step) {
    FrameRule rule;
    if (!rules.rule_for(target, &rule)) break;
    const uintptr_t cfa = (rule.cfa_is_fp ? regs.fp : regs.sp) + int64_t(rule.cfa_offset);
    if (cfa <= last_cfa || cfa > hi) break;  // CFAs strictly rise: the walk ends
    uintptr_t ra = regs.ra;
    if (rule.ra == FrameRule::kUndefined) break;  // the outermost frame
    if (rule.ra == FrameRule::kAtCfa && !read_stack(cfa + int64_t(rule.ra_offset), lo, hi, &ra))
      break;
    if (rule.ra_signed) ra = arch::strip_return_address(ra);
    uintptr_t fp = regs.fp;
    if (rule.fp == FrameRule::kUndefined) fp = 0;
    if (rule.fp == FrameRule::kAtCfa && !read_stack(cfa + int64_t(rule.fp_offset), lo, hi, &fp))
      break;
    if (ra == 0) break;
    regs = {ra, cfa, fp, ra};
    last_cfa = cfa;
    if (count > 0 || ra == caller) ips[count++] = ra;
    target = ra - 1;  // a return address: the call is the instruction before it
  }
  if (count == 0) {
    // The walk did not reach the caller (an unwind table it cannot follow): keep the one frame
    // we know.
    ips[count++] = caller;
  }
  return writer.intern_stack(ips, count);
}

void forget_code(uintptr_t start, uintptr_t end) {
  if (end <= start) return;
  const uintptr_t pages = ((end - 1) >> kPageShift) - (start >> kPageShift) + 1;
  const uintptr_t n = pages < (1u << kEpochBits) ? pages : (1u << kEpochBits);
  for (uintptr_t i = 0; i < n; ++i)
    epoch_of(start + (i << kPageShift)).fetch_add(1, std::memory_order_acq_rel);
}

UnloadWindow::UnloadWindow() {
  g_unloading.fetch_add(1, std::memory_order_acq_rel);
}

UnloadWindow::~UnloadWindow() {
  g_unloading.fetch_sub(1, std::memory_order_acq_rel);
}

}  // namespace dltrace::preload::stack
