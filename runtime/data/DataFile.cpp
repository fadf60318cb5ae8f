//===- DataFile.cpp - Mapped reading and atomic writing of token files ----===//
//
// POSIX mmap for reading and the temp-file/fsync/rename dance for writing;
// see DataFile.h.
//
//===----------------------------------------------------------------------===//

#include "runtime/data/DataFile.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kiln::data {


std::optional<MappedFile> MappedFile::open(const std::string &path, std::string &error) {
  try {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      error = path + ": cannot open: " + std::strerror(errno);
      return std::nullopt;
    }
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      error = path + ": cannot stat: " + std::strerror(err);
      return std::nullopt;
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      error = path + ": not a regular file";
      return std::nullopt;
    }
    MappedFile file;
    file.size_ = static_cast<uint64_t>(st.st_size);
    if (file.size_ > 0) {
      void *p = ::mmap(nullptr, static_cast<size_t>(file.size_), PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        int err = errno;
        ::close(fd);
        error =
            path + ": cannot map " + std::to_string(file.size_) + " bytes: " + std::strerror(err);
        return std::nullopt;
      }
      file.data_ = static_cast<const uint8_t *>(p);
      // Token files are read front to back; ask for aggressive read-ahead.
      ::madvise(p, static_cast<size_t>(file.size_), MADV_SEQUENTIAL);
    }
    ::close(fd); // The mapping keeps the file alive.
    return std::optional<MappedFile>(std::move(file));
  } catch (...) {
    error = path + ": out of memory while opening";
    return std::nullopt;
  }
}

MappedFile::MappedFile(MappedFile &&other) noexcept : data_(other.data_), size_(other.size_) {
  other.data_ = nullptr;
  other.size_ = 0;
}

MappedFile &MappedFile::operator=(MappedFile &&other) noexcept {
  if (this != &other) {
    release();
    data_ = other.data_;
    size_ = other.size_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

MappedFile::~MappedFile() { release(); }

void MappedFile::release() {
  if (data_)
    ::munmap(const_cast<uint8_t *>(data_), static_cast<size_t>(size_));
  data_ = nullptr;
  size_ = 0;
}

bool isRegularFile(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}


} // namespace kiln::data
