// Dynamic symbol lookup by reading an object's DT_GNU_HASH / DT_HASH, DT_SYMTAB, DT_VERSYM and
// DT_VERDEF in memory (see elf_symbols.h for why not dlsym).
#include "elf_symbols.h"

#include <elf.h>

#include <cstring>

#include "arch/arch.h"
#include "elf_info.h"

namespace dltrace::preload::elf {
namespace {

struct Tables {
  const ElfW(Sym) * symtab = nullptr;
  const char* strtab = nullptr;
  const uint32_t* gnu_hash = nullptr;
  const uint32_t* sysv_hash = nullptr;
  const ElfW(Half) * versym = nullptr;
  const ElfW(Verdef) * verdef = nullptr;
  const char* soname = nullptr;
};

bool in_loads(const dl_phdr_info& o, uintptr_t a) {
  for (int i = 0; i < o.dlpi_phnum; ++i) {
    const ElfW(Phdr)& p = o.dlpi_phdr[i];
    if (p.p_type != PT_LOAD) continue;
    uintptr_t start = o.dlpi_addr + p.p_vaddr;
    if (a >= start && a - start < p.p_memsz) return true;
  }
  return false;
}

// ld.so relocates d_ptr in place when the dynamic section is writable; it does not in the vDSO
// or in an object whose PT_DYNAMIC is read-only. A relocated pointer lies inside the object.
uintptr_t dyn_ptr(const dl_phdr_info& o, ElfW(Addr) v) {
  if (o.dlpi_addr == 0 || in_loads(o, v)) return v;
  return o.dlpi_addr + v;
}

bool read_tables(const dl_phdr_info& o, Tables& t) {
  const ElfW(Dyn)* dyn = nullptr;
  for (int i = 0; i < o.dlpi_phnum; ++i)
    if (o.dlpi_phdr[i].p_type == PT_DYNAMIC)
      dyn = reinterpret_cast<const ElfW(Dyn)*>(o.dlpi_addr + o.dlpi_phdr[i].p_vaddr);
  if (dyn == nullptr) return false;
  ElfW(Xword) soname_offset = 0;
  bool has_soname = false;
  for (; dyn->d_tag != DT_NULL; ++dyn) {
    switch (dyn->d_tag) {
      case DT_SYMTAB:
        t.symtab = reinterpret_cast<const ElfW(Sym)*>(dyn_ptr(o, dyn->d_un.d_ptr));
        break;
      case DT_STRTAB:
        t.strtab = reinterpret_cast<const char*>(dyn_ptr(o, dyn->d_un.d_ptr));
        break;
      case DT_GNU_HASH:
        t.gnu_hash = reinterpret_cast<const uint32_t*>(dyn_ptr(o, dyn->d_un.d_ptr));
        break;
      case DT_HASH:
        t.sysv_hash = reinterpret_cast<const uint32_t*>(dyn_ptr(o, dyn->d_un.d_ptr));
        break;
      case DT_VERSYM:
        t.versym = reinterpret_cast<const ElfW(Half)*>(dyn_ptr(o, dyn->d_un.d_ptr));
        break;
      case DT_VERDEF:
        t.verdef = reinterpret_cast<const ElfW(Verdef)*>(dyn_ptr(o, dyn->d_un.d_ptr));
        break;
      case DT_SONAME:
        soname_offset = dyn->d_un.d_val;
        has_soname = true;
        break;
      default:
        break;
    }
  }
  if (t.strtab != nullptr && has_soname) t.soname = t.strtab + soname_offset;
  return t.symtab != nullptr && t.strtab != nullptr;
}

uint32_t sysv_hash(const char* s) {
  uint32_t h = 0;
  for (auto c = reinterpret_cast<const unsigned char*>(s); *c != 0; ++c) {
    h = (h << 4) + *c;
    uint32_t g = h & 0xf0000000u;
    if (g != 0) h ^= g >> 24;
    h &= ~g;
  }
  return h;
}

// Version index of the VERDEF entry named `version`, 0 when the object does not define it.
ElfW(Half) version_index(const Tables& t, const char* version) {
  if (t.verdef == nullptr) return 0;
  for (const ElfW(Verdef)* d = t.verdef;;) {
    if (d->vd_cnt > 0) {
      auto aux =
          reinterpret_cast<const ElfW(Verdaux)*>(reinterpret_cast<const char*>(d) + d->vd_aux);
      if (std::strcmp(t.strtab + aux->vda_name, version) == 0) return d->vd_ndx & 0x7fff;
    }
    if (d->vd_next == 0) return 0;
    d = reinterpret_cast<const ElfW(Verdef)*>(reinterpret_cast<const char*>(d) + d->vd_next);
  }
}

// Accumulates candidates the way ld.so's check_match does for dlsym (DL_LOOKUP_RETURN_NEWEST) and
// dlvsym (version->hidden = 1).
struct Matcher {
  const Tables& t;
  const char* name;
  const char* version;                    // nullptr: unversioned request
  ElfW(Half) wanted = 0;                  // version index for a versioned request
  const ElfW(Sym) * exact = nullptr;      // accepted outright
  const ElfW(Sym) * versioned = nullptr;  // first default-version candidate (unversioned request)
  int versions = 0;

  // Returns true when the search can stop.
  bool consider(uint32_t index) {
    const ElfW(Sym)& s = t.symtab[index];
    unsigned type = ELF64_ST_TYPE(s.st_info), bind = ELF64_ST_BIND(s.st_info);
    if (s.st_value == 0 || s.st_shndx == SHN_UNDEF) return false;
    if (type == STT_TLS) return false;  // needs a thread pointer; not wanted here
    if (type != STT_FUNC && type != STT_OBJECT && type != STT_NOTYPE && type != STT_COMMON &&
        type != STT_GNU_IFUNC)
      return false;
    if (bind != STB_GLOBAL && bind != STB_WEAK && bind != STB_GNU_UNIQUE) return false;
    if (std::strcmp(t.strtab + s.st_name, name) != 0) return false;
    if (t.versym == nullptr) {  // an unversioned object satisfies any request
      exact = &s;
      return true;
    }
    ElfW(Half) v = t.versym[index];
    if (version != nullptr) {
      if ((v & 0x7fff) != wanted) return false;
      exact = &s;
      return true;
    }
    if ((v & 0x7fff) >= 2) {
      if ((v & 0x8000) == 0 && versions++ == 0) versioned = &s;
      return false;
    }
    exact = &s;
    return true;
  }

  const ElfW(Sym) * result() const {
    return exact != nullptr ? exact : versions == 1 ? versioned : nullptr;
  }
};

}  // namespace

bool contains(const dl_phdr_info& object, uintptr_t address) {
  return in_loads(object, address);
}

const char* soname(const dl_phdr_info& object) {
  Tables t;
  return read_tables(object, t) ? t.soname : nullptr;
}

namespace {

Symbol lookup(const dl_phdr_info& object, const Tables& t, const char* name, const char* version) {
  if (name == nullptr) return {};
  Matcher m{t, name, version};
  if (version != nullptr && t.versym != nullptr) {
    m.wanted = version_index(t, version);
    if (m.wanted == 0) return {};
  }
  if (t.gnu_hash != nullptr) {
    const uint32_t nbuckets = t.gnu_hash[0], symoffset = t.gnu_hash[1];
    const uint32_t bloom_size = t.gnu_hash[2], bloom_shift = t.gnu_hash[3];
    if (nbuckets == 0 || bloom_size == 0) return {};
    auto bloom = reinterpret_cast<const ElfW(Addr)*>(t.gnu_hash + 4);
    auto buckets = reinterpret_cast<const uint32_t*>(bloom + bloom_size);
    const uint32_t* chain = buckets + nbuckets;
    constexpr unsigned kBits = sizeof(ElfW(Addr)) * 8;
    const uint32_t h = gnu_hash(name);
    ElfW(Addr) word = bloom[(h / kBits) % bloom_size];
    ElfW(Addr) mask =
        (ElfW(Addr){1} << (h % kBits)) | (ElfW(Addr){1} << ((h >> bloom_shift) % kBits));
    if ((word & mask) != mask) return {};
    uint32_t i = buckets[h % nbuckets];
    if (i < symoffset) return {};
    for (;; ++i) {
      uint32_t ch = chain[i - symoffset];
      if (((ch ^ h) >> 1) == 0 && m.consider(i)) break;
      if (ch & 1) break;
    }
  } else if (t.sysv_hash != nullptr) {
    const uint32_t nbucket = t.sysv_hash[0], nchain = t.sysv_hash[1];
    if (nbucket == 0) return {};
    const uint32_t* bucket = t.sysv_hash + 2;
    const uint32_t* chain = bucket + nbucket;
    for (uint32_t i = bucket[sysv_hash(name) % nbucket]; i != STN_UNDEF && i < nchain; i = chain[i])
      if (m.consider(i)) break;
  } else {
    return {};
  }
  const ElfW(Sym)* s = m.result();
  if (s == nullptr) return {};
  Symbol out;
  out.address = object.dlpi_addr + s->st_value;
  out.ifunc = ELF64_ST_TYPE(s->st_info) == STT_GNU_IFUNC;
  return out;
}

}  // namespace

Symbol find_symbol(const dl_phdr_info& object, const char* name, const char* version) {
  Tables t;
  if (name == nullptr || !read_tables(object, t)) return {};
  return lookup(object, t, name, version);
}

int find_symbols(const dl_phdr_info& object, const char* const* names, const char* const* versions,
                 int count, Symbol* found) {
  Tables t;
  if (!read_tables(object, t)) return 0;
  int filled = 0;
  for (int i = 0; i < count; ++i) {
    if (found[i]) continue;
    found[i] = lookup(object, t, names[i], versions != nullptr ? versions[i] : nullptr);
    if (found[i]) ++filled;
  }
  return filled;
}

void* resolve(const Symbol& symbol) {
  if (!symbol) return nullptr;
  if (!symbol.ifunc) return reinterpret_cast<void*>(symbol.address);
  return arch::call_ifunc_resolver(symbol.address);  // as ld.so calls it on this CPU
}

}  // namespace dltrace::preload::elf
