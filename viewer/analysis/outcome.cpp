// clang-format off
// Probe or failure, for each failed call. The rules, in the order they apply (the first that
// holds decides). "The thread went on": a later successful dlopen/dlsym on the same thread (a
// dlclose is cleanup, not going on). "Failed": exit status != 0 or a crash signal (SEGV, BUS, ILL,
// FPE, ABRT, TRAP, SYS); SIGKILL, SIGTERM and the like come from outside and decide nothing.
//
// dlopen / dlmopen
//   1. RTLD_NOLOAD requested: a question ("is it loaded?"), never a load         -> probe
//   2. the same library (basename or soname) was loaded by a later call           -> probe
//   3. the file was found and could not be loaded, or a dependency was missing    -> failure
//   4. a file of exactly that name exists where the loader did not look           -> failure
//      (the program's files must be on this machine to tell; else                 -> failure)
//   5. the same caller loaded a related library right after (the same name
//      without "lib", ".so" and version: libsoup-3.0.so.0 -> libsoup-2.4.so.1)    -> probe
//   6. another version of the file exists (libfoo.so.1 for libfoo.so)             -> failure
//   7. not installed, the process then failed and the thread did not go on        -> failure
//      else (it carried on, or its end says nothing)                              -> note
// dlsym / dlvsym
//   1. a named convention's optional hook (kConventions below)                    -> probe
//      unless a near miss (3) is in the module's own file                         -> failure
//   2. the same caller found the same name with a later lookup (JNI tries each
//      library in turn)                                                           -> probe
//   3. a near miss: the name exported by an object the lookup could not see
//      (RTLD_LOCAL group, another namespace; not the caller's own definition for
//      RTLD_NEXT), defined but hidden or only in .symtab, another version, or its
//      C++-mangled spelling                                                       -> failure
//      (for a per-module lookup, one the caller makes in each module it opens by
//      that module's handle, only the module's own file counts)
//   4. Python's import system made the call: ImportError                          -> failure
//      (a warning when the program caught it and the process ended well)
//   5. the files of the loaded objects cannot all be read: absence unproven       -> failure
//   6. defined nowhere, the process then failed, the thread did not go on         -> failure
//      ... the thread made lookups after it, but nothing new was loaded           -> warning
//      ... the thread went on, but the process crashed later                      -> warning
//      the thread did not go on and the process's end says nothing                -> note
//      else (the thread went on, or the process ended well)                       -> probe
// clang-format on
#include "analysis/outcome.h"

#include <dlfcn.h>
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "analysis/dlerror_text.h"
#include "analysis/library_search.h"
#include "analysis/python_imports.h"
#include "analysis/symbol_near_miss.h"
#include "fmt/format.h"
#include "model/in_flight.h"

namespace dltrace::viewer {
namespace {

// Named conventions: optional entry points that a framework looks up in every module it loads
// (or in the executable) and documents as optional. They are the only names that decide
// anything, and only where the trace's evidence cannot: a module may be opened, asked for its
// hooks and closed with nothing else looked up in it, and a process may fail later for a reason
// of its own, so "the thread went on" is not always there to see. A near miss in the module's
// own file (dlsym rule 3: the hook compiled as C++, or hidden) still makes the miss a failure.
struct Convention {
  std::string_view framework;
  std::string_view pattern;  // exact; "X*": prefix; "*X*": contained after the first character
  std::string_view why;
};
constexpr Convention kConventions[] = {
    {"GModule", "g_module_check_init",
     "GModule looks this optional hook up in every module it opens (GLib's GModule manual)"},
    {"GModule", "g_module_unload",
     "GModule looks this optional hook up in every module it opens (GLib's GModule manual)"},
    {"JNI", "JNI_OnLoad_*",
     "the JVM asks whether a library is linked into the executable by looking up "
     "JNI_OnLoad_<library> (JNI specification, static libraries)"},
    {"JNI", "JNI_OnUnload_*",
     "the JVM asks whether a library is linked into the executable by looking up "
     "JNI_OnUnload_<library> (JNI specification, static libraries)"},
    {"JNI", "JNI_OnLoad", "JNI_OnLoad is optional in a native library (JNI specification)"},
    {"JNI", "JNI_OnUnload", "JNI_OnUnload is optional in a native library (JNI specification)"},
    {"libltdl", "*_LTX_*",
     "libltdl looks up <module>_LTX_<symbol> first and falls back to <symbol> (libtool manual, "
     "dlpreopened modules)"},
    {"PostgreSQL", "_PG_init",
     "PostgreSQL calls _PG_init of a loadable module if it has one (PostgreSQL manual, "
     "xfunc-c)"},
    {"PostgreSQL", "_PG_fini",
     "PostgreSQL calls _PG_fini of a loadable module if it has one (PostgreSQL manual, "
     "xfunc-c)"},
};

const Convention* convention_of(std::string_view name) {
  for (const Convention& c : kConventions) {
    std::string_view p = c.pattern;
    if (p.size() > 2 && p.front() == '*' && p.back() == '*') {
      size_t at = name.find(p.substr(1, p.size() - 2));
      if (at != std::string_view::npos && at > 0) return &c;
    } else if (!p.empty() && p.back() == '*') {
      if (name.size() > p.size() - 1 && name.starts_with(p.substr(0, p.size() - 1))) return &c;
    } else if (name == p) {
      return &c;
    }
  }
  return nullptr;
}

// "libsoup-3.0.so.0" -> "soup": the library's name without "lib", ".so..." and version digits.
std::string_view library_stem(std::string_view name) {
  name = basename_of(name);
  if (name.starts_with("lib")) name.remove_prefix(3);
  if (size_t so = name.find(".so"); so != std::string_view::npos) name = name.substr(0, so);
  while (!name.empty() && (std::isdigit(static_cast<unsigned char>(name.back())) ||
                           name.back() == '.' || name.back() == '-' || name.back() == '_'))
    name.remove_suffix(1);
  return name;
}

bool is_crash_signal(int sig) {
  return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGABRT ||
         sig == SIGTRAP || sig == SIGSYS;
}

bool real_handle(const format::EventSlot& e) {
  return e.handle != 0 && e.handle != uint64_t(-1) && e.handle_object != format::kNoId;
}

}  // namespace

OutcomeClassifier::OutcomeClassifier(const TraceModel& model, ElfCache& elf)
    : model_(model), elf_(elf) {
  const ProcessInfo& p = model.reader().process();
  switch (p.end) {
    case format::EndKind::kExit:
      end_ = p.end_code == 0 ? End::kClean : End::kBad;
      break;
    case format::EndKind::kSignal:
      // A crash says something about what came before it; SIGKILL, SIGTERM and the like come
      // from outside (a parent shutting its helpers down, the OOM killer) and say nothing.
      end_ = is_crash_signal(p.end_code) ? End::kBad : End::kUnknown;
      break;
    case format::EndKind::kExec:
      end_ = End::kClean;
      break;
    default:
      end_ = End::kUnknown;
      break;
  }
  for (const ObjectRecord* o : model.objects_by_load()) {
    if (!model.is_main_program(*o)) continue;
    main_here_ = elf_.for_object(*o, model.path_of(*o)).file != nullptr;
    break;
  }
  model.reader().for_each_event([this](const format::EventSlot& e) {
    index(e);
    return true;
  });
  pending_.clear();
}

void OutcomeClassifier::index(const format::EventSlot& e) {
  if (in_flight(e)) return;  // neither a success nor a failure the program went on from
  const TraceReader& r = model_.reader();
  const bool ok = (e.bits & format::kEventOk) != 0;
  if (ok && !is_close_call(e.call)) {  // a dlclose is cleaning up, not going on
    // Consecutive events are mostly of one thread: its entry is kept (valid until an insert).
    if (!last_tid_ok_ || last_tid_ != e.tid) {
      auto it = last_ok_.try_emplace(e.tid, 0).first;
      last_tid_ = e.tid;
      last_tid_ok_ = &it->second;
    }
    *last_tid_ok_ = std::max(*last_tid_ok_, e.seq);
  }
  if (is_sym_call(e.call)) {
    Lookups& l = lookups_[{e.caller_object, e.name}];
    if (ok) l.last_found = e.seq;
    if (real_handle(e)) {
      if (l.first_handle == format::kNoId)
        l.first_handle = e.handle_object;
      else if (l.first_handle != e.handle_object)
        l.several_handles = true;
    }
    return;
  }
  if (!is_open_call(e.call)) return;
  std::string_view name = r.string(e.name);
  if (!ok) {
    if (!(e.flags & RTLD_NOLOAD) && !name.empty()) {
      auto& pending = pending_[e.tid];
      if (pending.size() >= 16) pending.erase(pending.begin());
      pending.push_back({e.seq, e.caller_object, name});
    }
    return;
  }
  if (!model_.new_objects(e.seq).empty()) last_new_load_ = std::max(last_new_load_, e.seq);
  if (!name.empty()) opened_[basename_of(name)] = e.seq;
  if (const ObjectRecord* o = r.object(e.object)) {
    opened_[basename_of(model_.path_of(*o))] = e.seq;
    if (!o->soname.empty()) opened_[std::string_view(o->soname)] = e.seq;
  }
  // A library loaded right after failed loads by the same caller: an alternative to those of
  // them with the same stem (libsoup-3.0.so.0 -> libsoup-2.4.so.1).
  auto it = pending_.find(e.tid);
  if (it == pending_.end() || (e.flags & RTLD_NOLOAD)) return;
  auto& pending = it->second;
  std::string_view stem = library_stem(name);
  for (const PendingOpen& p : pending) {
    if (p.caller != e.caller_object || p.seq == e.parent_seq) continue;
    if (!stem.empty() && library_stem(p.name) == stem)
      alternatives_.try_emplace({p.caller, p.name}, Alternative{e.seq, name});
  }
  std::erase_if(pending, [&](const PendingOpen& p) { return p.caller == e.caller_object; });
}

Classification OutcomeClassifier::classify(const format::EventSlot& e) {
  if (is_open_call(e.call)) return classify_open(e);
  if (is_sym_call(e.call)) return classify_sym(e);
  Classification c;
  c.rule = "other";
  c.reason = "not a dlopen or dlsym call";
  return c;
}

std::string OutcomeClassifier::caller_name(const format::EventSlot& e) const {
  const ObjectRecord* c = model_.reader().object(e.caller_object);
  return c ? model_.name_of(*c) : std::string("the caller");
}

std::string OutcomeClassifier::end_clause() const {
  const ProcessInfo& p = model_.reader().process();
  if (p.end == format::EndKind::kRunning)
    return "the process's end was not recorded (killed by SIGKILL, vanished, or still running)";
  std::string text =
      fmt::format("the process {}{}", p.end == format::EndKind::kSignal ? "was " : "", end_text(p));
  if (p.end == format::EndKind::kSignal && end_ == End::kUnknown)
    text += " (from outside: that says nothing about this call)";
  return text;
}

std::optional<uint64_t> OutcomeClassifier::went_on(const format::EventSlot& e) const {
  auto it = last_ok_.find(e.tid);
  if (it == last_ok_.end() || it->second <= e.seq) return std::nullopt;
  return it->second;
}

bool OutcomeClassifier::python_import(const format::EventSlot& e) {
  if (e.py_stack == format::kNoId) return false;
  auto [it, fresh] = python_import_.try_emplace(e.py_stack, false);
  if (fresh) {
    const TraceReader& r = model_.reader();
    it->second = attribute_python_stack(r, r.py_stack(e.py_stack)).via_import;
  }
  return it->second;
}

const std::vector<std::string>& OutcomeClassifier::on_disk(std::string_view name) {
  auto it = on_disk_.find(std::string(name));
  if (it == on_disk_.end())
    it = on_disk_.emplace(std::string(name), find_on_disk(name, model_)).first;
  return it->second;
}

bool OutcomeClassifier::files_complete(uint64_t seq, std::string* missing) {
  for (const ObjectRecord* o : model_.objects_by_load()) {
    if (!o->alive_at(seq) || (o->flags & format::kObjectVdso)) continue;
    if (elf_.for_object(*o, model_.path_of(*o)).file) continue;
    if (missing) *missing = model_.name_of(*o);
    return false;
  }
  return true;
}

std::optional<std::string> OutcomeClassifier::near_miss(const format::EventSlot& e,
                                                        std::string_view name,
                                                        std::string_view version, bool per_module) {
  const TraceReader& r = model_.reader();
  std::vector<const ObjectRecord*> candidates;
  if (per_module) {
    if (const ObjectRecord* h = r.object(e.handle_object)) candidates.push_back(h);
  } else {
    for (const ObjectRecord* o : model_.objects_by_load())
      if (o->alive_at(e.seq) && !(o->flags & format::kObjectVdso)) candidates.push_back(o);
  }
  const std::string at = version.empty() ? std::string(name) : fmt::format("{}@{}", name, version);
  for (const ObjectRecord* o : candidates) {
    const ElfFile* f = elf_.for_object(*o, model_.path_of(*o)).file;
    if (!f) continue;
    const std::string who = model_.name_of(*o);
    // RTLD_NEXT skips the caller by design: an interposer looks up the definition after its own.
    const bool skipped = e.handle == uint64_t(-1) && o->id == e.caller_object;
    if (!per_module && !skipped && f->exported(name, version))
      return fmt::format("{} is defined in {}, which this lookup could not see", at, who);
    if (auto misses = near_misses_.find(*f, name, version); !misses.empty())
      return near_miss_sentence(misses.front(), who, at);
  }
  return std::nullopt;
}

Classification OutcomeClassifier::classify_open(const format::EventSlot& e) {
  const TraceReader& r = model_.reader();
  Classification c;
  std::string_view name = r.string(e.name);
  const std::string shown = name.empty() ? std::string("the main program") : std::string(name);
  auto probe = [&](std::string_view rule, std::string reason) {
    c.outcome = Outcome::kProbe;
    c.severity = Severity::kInfo;
    c.rule = rule;
    c.reason = std::move(reason);
    return c;
  };
  auto failure = [&](std::string_view rule, Severity severity, std::string reason) {
    c.outcome = Outcome::kFailure;
    c.severity = severity;
    c.rule = rule;
    c.reason = std::move(reason);
    if (end_ == End::kBad && rule != "needed")
      c.reason += fmt::format("; {} after it", end_clause());
    return c;
  };
  if (e.flags & RTLD_NOLOAD)
    return probe("noload", fmt::format("RTLD_NOLOAD only asks whether {} is loaded already; it "
                                       "never loads anything",
                                       shown));
  if (!name.empty()) {
    auto it = opened_.find(basename_of(name));
    if (it != opened_.end() && it->second > e.seq)
      return probe("obtained-later", fmt::format("{} was loaded by a later call (#{})",
                                                 basename_of(name), it->second));
  }
  const DlerrorText err = parse_dlerror(r.string(e.error));
  if (err.kind != DlerrorText::Kind::kNotFound)
    return failure("broken", Severity::kError,
                   fmt::format("{} was found and could not be loaded", shown));
  std::string_view missing = err.object.empty() ? name : std::string_view(err.object);
  if (basename_of(missing) != basename_of(name))
    return failure("broken", Severity::kError,
                   fmt::format("{} was found, but its dependency {} was not", shown, missing));
  if (!main_here_)
    return failure("unverifiable", Severity::kError,
                   fmt::format("the program's files are not on this machine, so explain cannot "
                               "tell whether {} exists anywhere",
                               basename_of(name)));
  // A relative path that is not there from the working directory but next to the caller or
  // the program: it works only when started from the right directory.
  if (std::string there = relative_name_elsewhere(name, r.object(e.caller_object), model_);
      !there.empty())
    return failure("exists", Severity::kError,
                   fmt::format("{} is relative to the working directory, where it is not; the "
                               "file is {}",
                               name, there));
  // A file of exactly that name elsewhere: the loader should have found it. Other versions of it
  // (libvulkan.so.1 for libvulkan.so) only count when the program did not load one right after.
  const auto& copies = on_disk(basename_of(name));
  auto exact = std::find_if(copies.begin(), copies.end(), [&](const std::string& path) {
    return basename_of(path) == basename_of(name);
  });
  if (exact != copies.end())
    return failure("exists", Severity::kError,
                   fmt::format("a file named {} exists ({}), where the loader did not look",
                               basename_of(name), *exact));
  const std::string caller = caller_name(e);
  if (auto it = alternatives_.find({e.caller_object, name}); it != alternatives_.end())
    return probe("alternative",
                 fmt::format("{} is not there, and {} loaded {} instead right after (#{})",
                             basename_of(name), caller, it->second.name, it->second.seq));
  if (!copies.empty())
    return failure("exists", Severity::kError,
                   fmt::format("{} is not there, but another version of it is ({}), and the "
                               "program did not load that one instead",
                               basename_of(name), copies.front()));
  const auto next = went_on(e);
  if (!next && end_ == End::kBad)
    return failure("needed", Severity::kError,
                   fmt::format("{} is not installed, and {} with no further successful load or "
                               "lookup on that thread",
                               basename_of(name), end_clause()));
  if (!next && end_ == End::kUnknown)
    return failure("end-unknown", Severity::kInfo,
                   fmt::format("{} is not installed, nothing succeeded on that thread after it, "
                               "and {}",
                               basename_of(name), end_clause()));
  return failure("not-installed", Severity::kInfo,
                 fmt::format("{} is not installed (no file of that name on this machine), and "
                             "the program carried on without it",
                             basename_of(name)));
}

Classification OutcomeClassifier::classify_sym(const format::EventSlot& e) {
  const TraceReader& r = model_.reader();
  Classification c;
  std::string_view name = r.string(e.name);
  std::string_view version =
      e.call == static_cast<uint16_t>(format::CallKind::kDlvsym) ? r.string(e.version) : "";
  const std::string caller = caller_name(e);
  auto probe = [&](std::string_view rule, std::string reason) {
    c.outcome = Outcome::kProbe;
    c.severity = Severity::kInfo;
    c.rule = rule;
    c.reason = std::move(reason);
    return c;
  };
  auto failure = [&](std::string_view rule, Severity severity, std::string reason) {
    c.outcome = Outcome::kFailure;
    c.severity = severity;
    c.rule = rule;
    c.reason = std::move(reason);
    return c;
  };
  const Convention* conv = convention_of(name);
  if (conv) {
    c.convention = conv->framework;
    c.pattern = conv->pattern;
  }
  if (real_handle(e)) {
    auto it = lookups_.find({e.caller_object, e.name});
    c.per_module = conv != nullptr || (it != lookups_.end() && it->second.several_handles);
  }
  std::string bad_end = end_ == End::kBad ? fmt::format("; {} after it", end_clause()) : "";
  if (conv) {
    // Only the module's own file can hold a near miss of its optional hook.
    if (auto miss = near_miss(e, name, version, c.per_module))
      return failure("near-miss", Severity::kError, *miss + bad_end);
    return probe("optional-hook", fmt::format("{}: {}", conv->framework, conv->why));
  }
  if (auto it = lookups_.find({e.caller_object, e.name});
      it != lookups_.end() && it->second.last_found > e.seq) {
    std::string where;
    const uint64_t found = it->second.last_found;
    if (auto later = r.event(found))
      if (const ObjectRecord* o = r.object(later->object)) where = ", in " + model_.name_of(*o);
    return probe("obtained-later", fmt::format("{} found {} with a later lookup (#{}{})", caller,
                                               name, found, where));
  }
  if (auto miss = near_miss(e, name, version, c.per_module))
    return failure("near-miss", Severity::kError, *miss + bad_end);
  if (python_import(e)) {
    if (end_ == End::kClean)
      return failure("python-import", Severity::kWarning,
                     fmt::format("Python's import system made this call, so the import raised "
                                 "ImportError; the program caught it ({})",
                                 end_clause()));
    return failure("python-import", Severity::kError,
                   fmt::format("Python's import system made this call, so the import raised "
                               "ImportError; {}{}",
                               end_clause(), end_ == End::kBad ? " after it" : ""));
  }
  std::string unreadable;
  if (!files_complete(e.seq, &unreadable))
    return failure("unverifiable", Severity::kError,
                   fmt::format("{}'s file cannot be read here, so explain cannot tell whether {} "
                               "is defined anywhere",
                               unreadable, name));
  const auto next = went_on(e);
  if (!next && end_ == End::kBad)
    return failure("needed", Severity::kError,
                   fmt::format("no loaded object defines {}, and {} with no further successful "
                               "load or lookup on that thread",
                               name, end_clause()));
  if (!next && end_ == End::kUnknown)
    return failure("end-unknown", Severity::kInfo,
                   fmt::format("no loaded object defines {}, nothing succeeded on that thread "
                               "after it, and {}",
                               name, end_clause()));
  if (next && end_ == End::kBad && r.process().end == format::EndKind::kSignal)
    return failure("signal", Severity::kWarning,
                   fmt::format("no loaded object defines {}; the thread went on (#{}), but {} "
                               "later",
                               name, *next, end_clause()));
  // In a process that then failed, lookups alone after the miss are weak evidence that it was
  // handled (the JVM looks up the natives it needs to report an UnsatisfiedLinkError); loading
  // more libraries after it is strong: the program got on with its work.
  if (next && end_ == End::kBad && last_new_load_ < e.seq)
    return failure("needed", Severity::kWarning,
                   fmt::format("no loaded object defines {}, and {}; the thread made lookups after "
                               "it (up to #{}) but the program loaded nothing new",
                               name, end_clause(), *next));
  if (next)
    return probe("defined-nowhere",
                 fmt::format("no loaded object defines {} or anything like it, and the thread "
                             "went on (successful loads and lookups after it, up to #{})",
                             name, *next));
  return probe(
      "defined-nowhere",
      fmt::format("no loaded object defines {} or anything like it, and {}", name, end_clause()));
}

OutcomeCounts count_outcomes(const TraceReader& reader) {
  TraceModel model(reader);
  ElfCache elf;
  OutcomeClassifier outcomes(model, elf);
  OutcomeCounts counts;
  reader.for_each_event([&](const format::EventSlot& e) {
    if (!failed_call(e) || (!is_open_call(e.call) && !is_sym_call(e.call))) return true;
    ++(outcomes.classify(e).probe() ? counts.probes : counts.failures);
    return true;
  });
  return counts;
}

}  // namespace dltrace::viewer
