// Version 3 traces (include/dltrace/format.h): where the catalog and the ring of the logical image
// lie in the file, from the header's extent table, and each of them assembled into one contiguous
// range of memory for the reader. Nothing in the table is trusted.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dltrace/format.h"

namespace dltrace::reader_detail {

// Region bytes [region_offset, +length) are file bytes [file_offset, +length).
struct Piece {
  uint64_t region_offset = 0;
  uint64_t file_offset = 0;
  uint64_t length = 0;
};

// The part of a region (catalog or ring) that is in the file: contiguous from the region's start,
// as the recorder backs it.
struct RegionPlan {
  std::vector<Piece> pieces;
  uint64_t length = 0;
};

struct ExtentPlan {
  RegionPlan catalog;
  RegionPlan ring;
  uint64_t claimed_end = 0;  // the file size the extents claim
  bool truncated = false;    // some extent reaches past the file's end
};

// Checks the extent table of `h` (count, alignment, bounds within the image, no overlap in the
// image or in the file) and plans both regions over a file of `file_size` bytes whose bytes from
// an offset on are readable up to `data_end(offset)` (the end of the data before a hole, or the
// file's end). Returns false with a sentence ("corrupt trace header (...)") in `error`.
bool plan_extents(const format::FileHeader& h, uint64_t file_size,
                  const std::function<uint64_t(uint64_t)>& data_end, ExtentPlan* plan,
                  std::string* error);

// One region's bytes in contiguous memory: the file's chunks mapped at their place when `fd` is
// given and every piece is page-aligned (file_backed: the reader may drop pages it has read),
// else copied from `bytes` (the whole file).
class RegionView {
 public:
  RegionView() = default;
  RegionView(const RegionView&) = delete;
  RegionView& operator=(const RegionView&) = delete;
  ~RegionView();

  bool assemble(const RegionPlan& plan, int fd, const unsigned char* bytes);
  const unsigned char* data() const { return data_; }
  uint64_t length() const { return length_; }
  bool file_backed() const { return file_backed_; }

 private:
  const unsigned char* data_ = nullptr;
  uint64_t length_ = 0;
  void* mapping_ = nullptr;  // the reservation the pieces are mapped into
  size_t mapping_size_ = 0;
  std::vector<unsigned char> copy_;
  bool file_backed_ = false;
};

}  // namespace dltrace::reader_detail
