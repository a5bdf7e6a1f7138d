// Helpers shared by the trace writer/reader tests: scratch directories and whole-file I/O.
#pragma once

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "dltrace/reader.h"
#include "trace_writer.h"

namespace dltrace::test {

// A fresh directory under $TMPDIR (or /tmp), removed with its files at scope exit.
class ScratchDir {
 public:
  ScratchDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/dltrace-test.XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data())) path_ = buf.data();
  }
  ~ScratchDir() { remove_tree(path_); }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    if (DIR* d = opendir(path_.c_str())) {
      while (dirent* e = readdir(d))
        if (std::string(e->d_name) != "." && std::string(e->d_name) != "..")
          names.push_back(e->d_name);
      closedir(d);
    }
    return names;
  }

  static void remove_tree(const std::string& path) {
    if (path.empty()) return;
    if (DIR* d = opendir(path.c_str())) {
      while (dirent* e = readdir(d)) {
        std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        std::string child = path + "/" + name;
        struct stat st {};
        if (lstat(child.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
          remove_tree(child);
        else
          unlink(child.c_str());
      }
      closedir(d);
    }
    rmdir(path.c_str());
  }

 private:
  std::string path_;
};

inline bool file_exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

inline std::vector<unsigned char> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_file(const std::string& path, const void* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), std::streamsize(size));
}

// Where byte `logical` of a trace's image lies in its file: through the header's extents
// (version 3) or at the same offset (version 2). SIZE_MAX if no extent holds it.
inline size_t file_offset_of(const format::FileHeader& h, uint64_t logical) {
  if (h.version < 3) return size_t(logical);
  for (uint32_t i = 0; i < h.extent_count && i < format::kMaxExtents; ++i) {
    const format::FileExtent& e = h.extents[i];
    if (logical >= e.logical_offset && logical - e.logical_offset < e.length)
      return size_t(e.file_offset + (logical - e.logical_offset));
  }
  return SIZE_MAX;
}

// Opens a writer on `path` (no pattern characters) or fails the calling test.
inline std::string open_writer(preload::TraceWriter& w, const std::string& path, uint64_t size,
                               uint32_t depth = 8) {
  char error[512] = {};
  if (!w.open(path.c_str(), size, depth, error, sizeof error)) return error;
  return {};
}

// An event slot filled with recognisable values for `seq`.
inline format::EventSlot make_event(uint64_t seq, uint32_t name = format::kNoId) {
  format::EventSlot e{};
  e.seq = seq;
  e.call = uint16_t(format::CallKind::kDlsym);
  e.bits = format::kEventOk;
  e.time_ns = 1000 + seq;
  e.duration_ns = 7;
  e.tid = 42;
  e.name = name;
  e.version = format::kNoId;
  e.error = format::kNoId;
  e.stack = format::kNoId;
  e.py_stack = format::kNoId;
  e.object = format::kNoId;
  e.handle_object = format::kNoId;
  e.address = 0x1000 + seq;
  e.caller_object = format::kNoId;
  return e;
}

// Records an object loaded by event `seq` (0: at start-up), no soname and no mapping: what the
// viewer tests' synthetic traces vary, everything else zero.
// Where an object record says it is mapped (all zero: nowhere).
struct ObjectMapping {
  uint64_t base = 0;
  uint64_t size = 0;  // map_end - map_start, from base
  uint64_t link_map = 0;
  const char* soname = nullptr;
};

inline uint32_t add_object(preload::TraceWriter& w, const char* path, format::ObjectCause cause,
                           uint32_t flags, uint32_t parent, uint64_t seq,
                           const ObjectMapping& m = {}) {
  format::ObjectLoadEntry o{};
  o.path = w.intern_string(path);
  o.soname = m.soname ? w.intern_string(m.soname) : format::kNoId;
  o.cause = uint32_t(cause);
  o.flags = flags;
  o.parent = parent;
  o.opened_by = seq;
  o.load_seq = seq;
  o.base = m.base;
  o.map_start = m.base;
  o.map_end = m.base + m.size;
  o.link_map = m.link_map;
  return w.add_object(o);
}

}  // namespace dltrace::test
