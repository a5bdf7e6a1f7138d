#include "analysis/file_kind.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <regex>
#include <string_view>

#include "fmt/format.h"

namespace dltrace::viewer {
namespace {

constexpr size_t kHeadBytes = 4096;

bool starts_with(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}

bool looks_like_text(std::string_view head) {
  size_t printable = 0;
  for (unsigned char c : head)
    if (c == '\n' || c == '\r' || c == '\t' || (c >= 0x20 && c < 0x7f) || c >= 0x80) ++printable;
  return !head.empty() && printable * 100 >= head.size() * 95;
}

// The first shared library a GROUP(...) or INPUT(...) names: "/lib/x86_64-linux-gnu/libc.so.6".
std::string linker_script_target(const std::string& text) {
  static const std::regex entry(R"((?:GROUP|INPUT)\s*\(([^)]*))");
  std::smatch m;
  if (!std::regex_search(text, m, entry)) return {};
  static const std::regex word(R"([^\s(),]+)");
  const std::string list = m[1];
  for (std::sregex_iterator it(list.begin(), list.end(), word), end; it != end; ++it) {
    std::string w = it->str();
    if (w.find(".so") != std::string::npos || starts_with(w, "-l")) return w;
  }
  return {};
}

template <class Ehdr, class Phdr, class Dyn>
FileKind classify_elf(int fd, uint64_t size, const unsigned char* head, size_t head_size,
                      uint16_t process_machine) {
  FileKind k;
  k.size = size;
  Ehdr eh;
  if (head_size < sizeof eh) {
    k.kind = FileKind::Kind::kTruncated;
    k.what = fmt::format("an ELF file cut short: {} bytes, less than its {}-byte ELF header", size,
                         sizeof eh);
    return k;
  }
  memcpy(&eh, head, sizeof eh);
  const bool is64 = sizeof(Ehdr) == sizeof(Elf64_Ehdr);
  const std::string arch = machine_name(eh.e_machine);
  const std::string bits = is64 ? "64-bit" : "32-bit";
  if (!is64) {
    k.kind = FileKind::Kind::kWrongClass;
    k.what = fmt::format("a 32-bit ELF file (ELFCLASS32) for {}; this process is 64-bit", arch);
    return k;
  }
  if (eh.e_machine != process_machine) {
    k.kind = FileKind::Kind::kWrongMachine;
    k.what = fmt::format("a {} ELF file for {}; this process runs {} code", bits, arch,
                         machine_name(process_machine));
    return k;
  }
  const uint64_t ph_end = eh.e_phoff + uint64_t{eh.e_phnum} * eh.e_phentsize;
  if (ph_end > size) {
    k.kind = FileKind::Kind::kTruncated;
    k.what = fmt::format(
        "an ELF file cut short: its program headers end at byte {}, the file "
        "has {} bytes",
        ph_end, size);
    return k;
  }
  bool has_interp = false, pie = false;
  uint64_t load_end = 0;
  for (unsigned i = 0; i < eh.e_phnum && i < 256; ++i) {
    Phdr ph;
    if (pread(fd, &ph, sizeof ph, static_cast<off_t>(eh.e_phoff + i * uint64_t{eh.e_phentsize})) !=
        static_cast<ssize_t>(sizeof ph))
      break;
    if (ph.p_type == PT_INTERP) has_interp = true;
    if (ph.p_type == PT_LOAD && ph.p_offset + ph.p_filesz > load_end)
      load_end = ph.p_offset + ph.p_filesz;
    if (ph.p_type == PT_DYNAMIC) {
      for (uint64_t off = ph.p_offset; off + sizeof(Dyn) <= ph.p_offset + ph.p_filesz;
           off += sizeof(Dyn)) {
        Dyn d;
        if (pread(fd, &d, sizeof d, static_cast<off_t>(off)) != static_cast<ssize_t>(sizeof d) ||
            d.d_tag == DT_NULL)
          break;
        if (d.d_tag == DT_FLAGS_1 && (d.d_un.d_val & DF_1_PIE)) pie = true;
      }
    }
  }
  if (load_end > size) {
    k.kind = FileKind::Kind::kTruncated;
    k.what = fmt::format(
        "an ELF file cut short: its segments extend to byte {}, the file has "
        "{} bytes (ld.so maps the missing part and the process dies with SIGBUS "
        "when it is touched)",
        load_end, size);
    return k;
  }
  if (eh.e_type == ET_EXEC) {
    k.kind = FileKind::Kind::kExecutable;
    k.what = fmt::format("a {} {} executable (not position-independent), not a shared library",
                         bits, arch);
  } else if (eh.e_type == ET_DYN && (pie || has_interp)) {
    k.kind = FileKind::Kind::kPieExecutable;
    k.what = fmt::format(
        "a {} {} position-independent executable (ET_DYN with {}), not a shared "
        "library",
        bits, arch, pie ? "DF_1_PIE" : "an interpreter");
  } else if (eh.e_type == ET_DYN) {
    k.kind = FileKind::Kind::kSharedObject;
    k.what = fmt::format("a {} {} ELF shared object", bits, arch);
  } else {
    k.kind = FileKind::Kind::kOtherElf;
    k.what =
        fmt::format("a {} {} ELF file of type {} ({}), not a shared library", bits, arch, eh.e_type,
                    eh.e_type == ET_REL    ? "a relocatable object file, .o"
                    : eh.e_type == ET_CORE ? "a core dump"
                                           : "unknown");
  }
  return k;
}

}  // namespace

std::string machine_name(uint16_t machine) {
  switch (machine) {
    case EM_X86_64:
      return "x86-64";
    case EM_386:
      return "i386";
    case EM_AARCH64:
      return "AArch64";
    case EM_ARM:
      return "ARM";
    case EM_RISCV:
      return "RISC-V";
    case EM_PPC64:
      return "PowerPC64";
    case EM_S390:
      return "s390";
    case EM_MIPS:
      return "MIPS";
    case EM_LOONGARCH:
      return "LoongArch";
    default:
      return fmt::format("machine {}", machine);
  }
}

const char* file_kind_name(FileKind::Kind kind) {
  switch (kind) {
    case FileKind::Kind::kMissing:
      return "missing";
    case FileKind::Kind::kNotRegular:
      return "not-a-regular-file";
    case FileKind::Kind::kEmpty:
      return "empty";
    case FileKind::Kind::kSharedObject:
      return "shared-object";
    case FileKind::Kind::kWrongClass:
      return "wrong-class";
    case FileKind::Kind::kWrongMachine:
      return "wrong-machine";
    case FileKind::Kind::kPieExecutable:
      return "pie-executable";
    case FileKind::Kind::kExecutable:
      return "executable";
    case FileKind::Kind::kOtherElf:
      return "other-elf";
    case FileKind::Kind::kTruncated:
      return "truncated";
    case FileKind::Kind::kLinkerScript:
      return "linker-script";
    case FileKind::Kind::kGitLfsPointer:
      return "git-lfs-pointer";
    case FileKind::Kind::kHtml:
      return "html";
    case FileKind::Kind::kStaticArchive:
      return "static-archive";
    case FileKind::Kind::kText:
      return "text";
    case FileKind::Kind::kBinary:
      return "binary";
  }
  return "unknown";
}

absl::StatusOr<RegularFile> open_regular_file(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    std::string message = fmt::format("cannot open {}: {}", path, std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(message) : absl::PermissionDeniedError(message);
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return absl::FailedPreconditionError(fmt::format("{} is not a regular file", path));
  }
  // A regular file never blocks, but libraries expect blocking semantics.
  if (const int fl = fcntl(fd, F_GETFL); fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  return RegularFile{fd, static_cast<uint64_t>(st.st_size)};
}

FileKind classify_file(const std::string& path, uint16_t process_machine) {
  FileKind k;
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    k.what = "no such file";
    return k;
  }
  k.size = static_cast<uint64_t>(st.st_size);
  if (!S_ISREG(st.st_mode)) {
    k.kind = FileKind::Kind::kNotRegular;
    k.what = S_ISDIR(st.st_mode) ? "a directory" : "not a regular file";
    return k;
  }
  if (st.st_size == 0) {
    k.kind = FileKind::Kind::kEmpty;
    k.what = "an empty file (0 bytes)";
    return k;
  }
  // Opened without blocking and checked again on the descriptor: the path may have changed.
  auto opened = open_regular_file(path);
  if (!opened.ok()) {
    k.kind = FileKind::Kind::kNotRegular;
    k.what = opened.status().code() == absl::StatusCode::kFailedPrecondition
                 ? std::string("not a regular file")
                 : fmt::format("a file that cannot be read ({})",
                               std::string(opened.status().message()));
    return k;
  }
  const int fd = opened->fd;
  unsigned char head[kHeadBytes];
  ssize_t got = pread(fd, head, sizeof head, 0);
  const size_t n = got > 0 ? static_cast<size_t>(got) : 0;
  std::string_view text(reinterpret_cast<const char*>(head), n);
  if (n >= SELFMAG && memcmp(head, ELFMAG, SELFMAG) == 0 && n > EI_CLASS) {
    k = head[EI_CLASS] == ELFCLASS32
            ? classify_elf<Elf32_Ehdr, Elf32_Phdr, Elf32_Dyn>(fd, k.size, head, n, process_machine)
            : classify_elf<Elf64_Ehdr, Elf64_Phdr, Elf64_Dyn>(fd, k.size, head, n, process_machine);
    close(fd);
    return k;
  }
  close(fd);
  if (starts_with(text, "!<arch>\n")) {
    k.kind = FileKind::Kind::kStaticArchive;
    k.what = "a static library (an ar archive of .o files), for the static linker only";
  } else if (starts_with(text, "version https://git-lfs")) {
    k.kind = FileKind::Kind::kGitLfsPointer;
    k.what = fmt::format(
        "a Git LFS pointer ({} bytes of text): the repository was checked out "
        "without fetching the LFS objects",
        k.size);
  } else if (looks_like_text(text)) {
    std::string lower;
    for (char c : text.substr(0, 512)) lower += static_cast<char>(std::tolower(c));
    if (lower.find("<!doctype html") != std::string::npos ||
        lower.find("<html") != std::string::npos) {
      k.kind = FileKind::Kind::kHtml;
      k.what = fmt::format(
          "an HTML page ({} bytes): a download that saved an error or login "
          "page instead of the library",
          k.size);
    } else if (std::string target = linker_script_target(std::string(text));
               !target.empty() || text.find("GROUP") != std::string_view::npos ||
               text.find("INPUT") != std::string_view::npos ||
               text.find("OUTPUT_FORMAT") != std::string_view::npos) {
      k.kind = FileKind::Kind::kLinkerScript;
      k.target = target;
      k.what = target.empty() ? std::string(
                                    "a linker script: a text file for the static linker (ld), not "
                                    "a shared library")
                              : fmt::format(
                                    "a linker script: a text file for the static linker (ld) that "
                                    "points to {}",
                                    target);
    } else {
      k.kind = FileKind::Kind::kText;
      k.what = fmt::format("a text file ({} bytes), not a shared library", k.size);
    }
  } else {
    k.kind = FileKind::Kind::kBinary;
    k.what = fmt::format("a binary file that is not ELF ({} bytes)", k.size);
  }
  return k;
}

}  // namespace dltrace::viewer
