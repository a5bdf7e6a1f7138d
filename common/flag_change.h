// What one override rule does to a dlopen's flags: plain data and its arithmetic, shared by the
// config parser (which fills it), the recorder (which applies it) and the viewer (which shows it).
#pragma once

#include <dlfcn.h>

namespace dltrace::config {

struct FlagChange {
  bool has_set = false;
  int set = 0;  // replaces all flags (the requested binding mode is kept if set names none)
  int add = 0;
  int remove = 0;
  bool add_local = false;     // RTLD_LOCAL is 0, so it is kept apart: "add" it = drop RTLD_GLOBAL
  bool remove_local = false;  // and "remove" it = add RTLD_GLOBAL

  // set, then remove, then add. Adding RTLD_LAZY/RTLD_NOW replaces the binding mode; adding
  // RTLD_LOCAL removes RTLD_GLOBAL (and the other way round), so the result is always a mode
  // glibc accepts.
  int apply(int flags) const {
    if (has_set) {
      const int binding = set & RTLD_BINDING_MASK;
      flags = set | (binding != 0 ? 0 : (flags & RTLD_BINDING_MASK));
    }
    flags &= ~remove;
    if (remove_local) flags |= RTLD_GLOBAL;  // RTLD_LOCAL is 0: "not local" means global
    if (add & RTLD_BINDING_MASK) flags &= ~RTLD_BINDING_MASK;
    if (add_local) flags &= ~RTLD_GLOBAL;
    flags |= add;
    return flags;
  }
};

}  // namespace dltrace::config
