// What a file on disk is, when the loader refused it: ld.so's messages ("invalid ELF header",
// "file too short", even "cannot open shared object file" for a library built for another
// CPU) say what failed, not what the file is. Read from the file's first bytes and headers.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace dltrace::viewer {

// A file the viewer reads because a trace names it. Traces are untrusted: the path may name a
// FIFO (opening or reading it blocks), a device (/dev/zero never ends) or any file of the user's.
struct RegularFile {
  int fd = -1;  // O_RDONLY | O_CLOEXEC; the caller closes it
  uint64_t size = 0;
};

// Opens `path` only if it is a regular file, without blocking: O_NONBLOCK first, then fstat on
// the descriptor (no race with a rename), then back to blocking reads. Errors: NotFound (no such
// file), FailedPrecondition (not a regular file), PermissionDenied (anything else).
absl::StatusOr<RegularFile> open_regular_file(const std::string& path);

// The most the viewer reads of a file a trace names (an ELF file is mapped, not read whole).
inline constexpr uint64_t kMaxReadFileBytes = uint64_t{4} << 30;

struct FileKind {
  enum class Kind {
    kMissing,        // no such file (now)
    kNotRegular,     // a directory, a device, ...
    kEmpty,          // 0 bytes
    kSharedObject,   // a loadable ELF shared object for this process
    kWrongClass,     // ELF of the other word size (ELFCLASS32 in a 64-bit process)
    kWrongMachine,   // ELF for another CPU
    kPieExecutable,  // a position-independent executable: dlopen refuses it
    kExecutable,     // a fixed-address executable
    kOtherElf,       // a relocatable object (.o), a core file, ...
    kTruncated,      // shorter than its own headers say
    kLinkerScript,   // a text file for the static linker (libc.so, libm.so on Debian)
    kGitLfsPointer,  // a Git LFS pointer checked out instead of the file
    kHtml,           // a web page saved under the library's name
    kStaticArchive,  // an ar archive (.a): for the static linker
    kText,           // some other text
    kBinary,         // some other binary format
  };
  Kind kind = Kind::kMissing;
  uint64_t size = 0;
  std::string what;    // one sentence: "a 32-bit ELF shared object (ELFCLASS32) for x86-64"
  std::string target;  // kLinkerScript: the shared library it points to ("" if none)
};

// Classifies `path` for a process whose ELF machine is `process_machine` (a 64-bit process).
FileKind classify_file(const std::string& path, uint16_t process_machine);

// "x86-64", "AArch64", "i386", ... for an ELF e_machine value; "machine N" if unknown.
std::string machine_name(uint16_t machine);

// The stable name of a kind for --json: "linker-script", "wrong-machine", ...
const char* file_kind_name(FileKind::Kind kind);

}  // namespace dltrace::viewer
