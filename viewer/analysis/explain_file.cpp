// A dlopen the loader refused because of the file itself: what the file is (ELF of another
// class or CPU, an executable, cut short, a linker script, a Git LFS pointer, a web page, ...)
// and what to do instead.
#include <elf.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include "analysis/explain.h"
#include "analysis/file_kind.h"
#include "analysis/library_search.h"
#include "fmt/format.h"

namespace dltrace::viewer {
namespace {

std::string base_of(std::string_view path) {
  size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

// The process's machine: the trace's (library_search.h).
uint16_t process_machine(ExplainContext& ctx) {
  return trace_machine(ctx.model(), ctx.elf());
}

}  // namespace

bool explain_unloadable_file(ExplainContext& ctx, const format::EventSlot& e,
                             std::string_view path_in_trace, Finding& f) {
  const std::string path = absolute_in_trace(ctx.model(), path_in_trace);
  const uint16_t machine = process_machine(ctx);
  const FileKind k = classify_file(path, machine);
  using K = FileKind::Kind;
  if (k.kind == K::kMissing || k.kind == K::kSharedObject) return false;
  const std::string name = base_of(path);
  f.kind = "load-failed";
  f.fact("file", path);
  f.fact("file_kind", file_kind_name(k.kind));
  f.title = fmt::format("{} failed: {} is {}", ctx.call_text(e), name, k.what);
  f.fact("size", std::to_string(k.size));
  f.evidence.push_back(fmt::format("what the file is: {}", k.what));
  if (std::string(path_in_trace) != path)
    f.evidence.push_back(
        fmt::format("the name was relative: {} in the process's working "
                    "directory {}",
                    path_in_trace, ctx.reader().process().cwd));
  const std::string arch = machine_name(machine);
  switch (k.kind) {
    case K::kWrongClass:
    case K::kWrongMachine:
      f.evidence.push_back(
          "note: ld.so skips a library built for another word size or CPU, and "
          "when none is left it reports \"cannot open shared object file\" as if "
          "the file did not exist");
      f.fixes.push_back({fmt::format("use a 64-bit {} build of {} (on Debian, the package of the "
                                     "process's architecture, not another multiarch one)",
                                     arch, name),
                         ""});
      break;
    case K::kPieExecutable:
    case K::kExecutable:
      f.fixes.push_back({fmt::format("build the code as a shared library (cc -shared -fPIC ... -o "
                                     "lib{}.so) and dlopen that; glibc refuses to dlopen an "
                                     "executable since 2.30",
                                     name),
                         ""});
      f.fixes.push_back({fmt::format("or run {} as a program (posix_spawn/exec) instead of "
                                     "loading it",
                                     path),
                         ""});
      break;
    case K::kTruncated:
      f.fixes.push_back({fmt::format("the file is incomplete (an interrupted copy, download or "
                                     "build): replace it; if a package installed it, reinstall "
                                     "that package (dpkg -S {})",
                                     path),
                         ""});
      break;
    case K::kLinkerScript:
      if (!k.target.empty()) {
        std::string soname = base_of(k.target);
        if (const ElfFile* t = ctx.elf().file(k.target); t && !t->soname.empty())
          soname = t->soname;
        f.fact("target", k.target);
        f.fixes.push_back({fmt::format("dlopen the library it points to by its soname: "
                                       "dlopen(\"{}\", ...)",
                                       soname),
                           ""});
      } else {
        f.fixes.push_back({"dlopen the versioned shared library (libX.so.N) instead", ""});
      }
      break;
    case K::kGitLfsPointer:
      f.fixes.push_back({"fetch the real file: git lfs pull (in the repository it came from)", ""});
      break;
    case K::kHtml:
      f.fixes.push_back({fmt::format("download {} again: the address returned a web page (an "
                                     "error, a login or a redirect page), not the file",
                                     name),
                         ""});
      break;
    case K::kStaticArchive:
      f.fixes.push_back(
          {"link the archive into the program at build time, or use the shared "
           "library (.so) build of it",
           ""});
      break;
    default:
      f.fixes.push_back({fmt::format("replace {} with the shared library it should be", path), ""});
      break;
  }
  return true;
}

}  // namespace dltrace::viewer

namespace dltrace::viewer {

bool explain_static_tls(ExplainContext& ctx, const format::EventSlot& e,
                        std::string_view path_in_trace, Finding& f) {
  const std::string path = absolute_in_trace(ctx.model(), path_in_trace);
  const ElfFile* file = ctx.elf().file(path);
  if (!file || file->tls_size == 0) return false;
  const std::string name = base_of(path);
  // glibc reserves a little static TLS (glibc.rtld.optional_static_tls, 512 bytes by default)
  // for objects loaded later that use the initial-exec model: this one needs more.
  const uint64_t need = file->tls_size + file->tls_align;
  const uint64_t tunable = std::max<uint64_t>(512, (need + 511) / 512 * 512 + 512);
  f.kind = "static-tls";
  f.fact("object", path);
  f.fact("tls_size", std::to_string(file->tls_size));
  f.fact("tunable", std::to_string(tunable));
  f.title = fmt::format(
      "{} failed: {} needs {} bytes of static TLS, more than glibc keeps for "
      "libraries loaded after start-up",
      ctx.call_text(e), name, file->tls_size);
  f.evidence.push_back(fmt::format(
      "{} has {} bytes of thread-local storage (PT_TLS, aligned to {}){}", name, file->tls_size,
      file->tls_align,
      (file->flags & DF_STATIC_TLS) ? " in the initial-exec model (DT_FLAGS has STATIC_TLS): it "
                                      "must live in the static TLS block made at start-up"
                                    : ""));
  f.evidence.push_back(
      "glibc sets aside glibc.rtld.optional_static_tls bytes (512 by default) "
      "of that block for libraries dlopen'ed later; what does not fit fails with "
      "\"cannot allocate memory in static TLS block\"");
  f.fixes.push_back({fmt::format("reserve more at start-up: "
                                 "GLIBC_TUNABLES=glibc.rtld.optional_static_tls={}",
                                 tunable),
                     ""});
  f.fixes.push_back({fmt::format("or load it at start-up, where its TLS is part of the initial "
                                 "block: LD_PRELOAD={} (or link the program against it)",
                                 path),
                     ""});
  f.fixes.push_back({fmt::format("or rebuild {} with the global-dynamic TLS model "
                                 "(-ftls-model=global-dynamic, no __attribute__((tls_model("
                                 "\"initial-exec\")))), which dlopen can always allocate",
                                 name),
                     ""});
  return true;
}

}  // namespace dltrace::viewer

namespace dltrace::viewer {

bool explain_relative_name(ExplainContext& ctx, const format::EventSlot& e, std::string_view name,
                           Finding& f) {
  if (name.empty() || name.front() == '/' || name.find('/') == std::string_view::npos) return false;
  const TraceModel& m = ctx.model();
  const std::string in_cwd = m.absolute_path(name);
  std::string found_base;
  const std::string found =
      relative_name_elsewhere(name, ctx.reader().object(e.caller_object), m, &found_base);
  if (found.empty()) return false;
  const std::string& cwd = m.reader().process().cwd;
  f.kind = "library-not-found";
  f.fact("library", std::string(name));
  f.fact("cwd", cwd);
  f.fact("candidate", found);
  f.title = fmt::format(
      "{} is relative to the working directory {}, where it does not exist; "
      "the file is {}",
      name, cwd.empty() ? "(unknown)" : cwd, found);
  f.evidence.push_back(
      fmt::format("a name with a '/' is not searched: ld.so opens it as a path, "
                  "relative to the process's working directory at the time "
                  "({}), so {} was tried",
                  cwd.empty() ? "not recorded" : cwd, in_cwd));
  f.evidence.push_back(
      fmt::format("the file exists at {}: the program works only when started "
                  "from {}",
                  found, found_base));
  const std::filesystem::path relative = std::filesystem::path(name).lexically_normal();
  f.fixes.push_back({fmt::format("dlopen an absolute path: build it from the calling object's "
                                 "own location (dladdr on one of its functions, then its "
                                 "directory + \"/{}\"), not from the working directory",
                                 relative.string()),
                     ""});
  f.fixes.push_back({fmt::format("or dlopen the bare name {} and give the caller a DT_RUNPATH "
                                 "entry $ORIGIN/{} (-Wl,-rpath,'$ORIGIN/{}')",
                                 relative.filename().string(), relative.parent_path().string(),
                                 relative.parent_path().string()),
                     ""});
  return true;
}

}  // namespace dltrace::viewer
