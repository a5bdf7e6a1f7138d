// The extent table of a version 3 trace, checked and turned into the two regions' bytes.
#include "trace_extents.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace dltrace::reader_detail {
namespace {

constexpr uint64_t kExtentAlign = 4096;  // the recorder's chunk boundaries are page multiples

// The part of image bytes [start, start + size) that the extents cover contiguously from `start`
// and the file holds.
RegionPlan plan_region(const std::vector<format::FileExtent>& by_image, uint64_t start,
                       uint64_t size, uint64_t file_size,
                       const std::function<uint64_t(uint64_t)>& data_end) {
  RegionPlan plan;
  uint64_t pos = start;
  const uint64_t end = start + size;
  for (const format::FileExtent& e : by_image) {
    if (pos >= end) break;
    if (e.logical_offset + e.length <= pos) continue;
    if (e.logical_offset > pos) break;  // not backed from here on
    const uint64_t length = std::min(e.logical_offset + e.length, end) - pos;
    const uint64_t file_offset = e.file_offset + (pos - e.logical_offset);
    const uint64_t readable =
        file_offset < file_size ? std::max(data_end(file_offset), file_offset) - file_offset : 0;
    const uint64_t present = std::min(length, readable);
    if (present) plan.pieces.push_back({pos - start, file_offset, present});
    pos += present;
    if (present < length) break;  // cut short by the file's end (or a hole)
  }
  plan.length = pos - start;
  return plan;
}

}  // namespace

bool plan_extents(const format::FileHeader& h, uint64_t file_size,
                  const std::function<uint64_t(uint64_t)>& data_end, ExtentPlan* plan,
                  std::string* error) {
  auto corrupt = [&](const std::string& what) {
    if (error) *error = "corrupt trace header (" + what + ")";
    return false;
  };
  if (h.extent_count > format::kMaxExtents)
    return corrupt(std::to_string(h.extent_count) + " extents, at most " +
                   std::to_string(format::kMaxExtents));
  std::vector<format::FileExtent> extents(h.extents, h.extents + h.extent_count);
  for (size_t i = 0; i < extents.size(); ++i) {
    const format::FileExtent& e = extents[i];
    const std::string which = "extent " + std::to_string(i);
    if (e.length == 0 || e.length % kExtentAlign || e.logical_offset % kExtentAlign ||
        e.file_offset % kExtentAlign)
      return corrupt(which + " is empty or not page-aligned");
    if (e.logical_offset > h.file_size || e.length > h.file_size - e.logical_offset ||
        e.file_offset > ~uint64_t{0} - e.length)
      return corrupt(which + " lies outside the image");
  }
  auto overlap = [&](auto key) {
    std::sort(extents.begin(), extents.end(),
              [&](const auto& a, const auto& b) { return key(a) < key(b); });
    for (size_t i = 1; i < extents.size(); ++i)
      if (key(extents[i - 1]) + extents[i - 1].length > key(extents[i])) return true;
    return false;
  };
  if (overlap([](const format::FileExtent& e) { return e.file_offset; }))
    return corrupt("extents overlap in the file");
  // Last: plan_region walks the extents in image order.
  if (overlap([](const format::FileExtent& e) { return e.logical_offset; }))
    return corrupt("extents overlap in the image");

  ExtentPlan out;
  for (const format::FileExtent& e : extents)
    out.claimed_end = std::max(out.claimed_end, e.file_offset + e.length);
  out.truncated = out.claimed_end > file_size;
  // The header's layout was checked: both regions lie inside the image.
  out.catalog = plan_region(extents, h.catalog_offset, h.catalog_size, file_size, data_end);
  out.ring =
      plan_region(extents, h.ring_offset, h.slot_count * format::kSlotSize, file_size, data_end);
  *plan = std::move(out);
  return true;
}

RegionView::~RegionView() {
  if (mapping_) munmap(mapping_, mapping_size_);
}

bool RegionView::assemble(const RegionPlan& plan, int fd, const unsigned char* bytes) {
  length_ = plan.length;
  if (length_ == 0) return true;
  static const uint64_t page = uint64_t(sysconf(_SC_PAGESIZE));
  bool mappable = fd >= 0;
  for (const Piece& p : plan.pieces)
    mappable = mappable && p.region_offset % page == 0 && p.file_offset % page == 0;
  if (mappable) {
    const size_t size = size_t((length_ + page - 1) / page * page);
    void* base = mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base != MAP_FAILED) {
      mapping_ = base;
      mapping_size_ = size;
      bool mapped = true;
      for (const Piece& p : plan.pieces) {
        void* at = mmap(static_cast<unsigned char*>(base) + p.region_offset, size_t(p.length),
                        PROT_READ, MAP_SHARED | MAP_FIXED, fd, off_t(p.file_offset));
        if (at == MAP_FAILED) {
          mapped = false;
          break;
        }
        // As for the whole file (trace_reader.cpp): small pages keep the footprint what is read.
        madvise(at, size_t(p.length), MADV_NOHUGEPAGE);
      }
      if (mapped) {
        data_ = static_cast<const unsigned char*>(base);
        file_backed_ = true;
        return true;
      }
      munmap(base, size);
      mapping_ = nullptr;
    }
  }
  if (!bytes) return false;
  // The pieces lie in the file without overlapping: the copy is at most the file's size.
  copy_.assign(size_t(length_), 0);
  for (const Piece& p : plan.pieces)
    std::memcpy(copy_.data() + p.region_offset, bytes + p.file_offset, size_t(p.length));
  data_ = copy_.data();
  return true;
}

}  // namespace dltrace::reader_detail
