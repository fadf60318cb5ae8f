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

namespace {

bool writeAll(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

std::string directoryOf(const std::string &path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos)
    return ".";
  if (slash == 0)
    return "/";
  return path.substr(0, slash);
}

} // namespace

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

bool writeFileAtomic(const std::string &path, const std::vector<ByteRange> &pieces,
                     std::string &error) {
  std::string tmp;
  int fd = -1;
  // Cleans up before building the message, so that even an allocation
  // failure while formatting it leaves no temp file behind.
  auto fail = [&](const std::string &what, int err) {
    if (fd >= 0)
      ::close(fd);
    fd = -1;
    if (!tmp.empty())
      ::unlink(tmp.c_str());
    tmp.clear();
    try {
      error = path + ": " + what;
      if (err)
        error += std::string(": ") + std::strerror(err);
      error += " (any existing file was left unchanged)";
    } catch (...) {
    }
    return false;
  };
  try {
    const std::string candidate = path + ".tmp." + std::to_string(::getpid());
    // O_NOFOLLOW: a planted symlink must not redirect our truncating write.
    fd = ::open(candidate.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
      return fail("cannot create temporary file " + candidate, errno);
    tmp = candidate;
    for (const ByteRange &piece : pieces) {
      if (!writeAll(fd, static_cast<const uint8_t *>(piece.data), piece.size)) {
        int err = errno;
        return fail("cannot write " + tmp, err);
      }
    }
    // Without fsync before rename, a crash can leave the new name pointing at
    // an empty or partial file on some filesystems (ext4 delayed allocation).
    if (::fsync(fd) != 0) {
      int err = errno;
      return fail("cannot fsync " + tmp, err);
    }
    int closeResult = ::close(fd);
    fd = -1;
    if (closeResult != 0) {
      int err = errno;
      return fail("cannot close " + tmp, err);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      int err = errno;
      return fail("cannot rename " + tmp + " over it", err);
    }
    tmp.clear(); // Renamed: nothing left to clean up.

    // Makes the rename itself durable.
    const std::string dir = directoryOf(path);
    int dirFd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirFd < 0) {
      error = path + ": written, but cannot open directory " + dir +
              " to fsync it: " + std::strerror(errno) + " (the new file may not survive a crash)";
      return false;
    }
    int syncResult = ::fsync(dirFd);
    int syncErrno = errno;
    ::close(dirFd);
    if (syncResult != 0) {
      error = path + ": written, but fsync of directory " + dir +
              " failed: " + std::strerror(syncErrno) + " (the new file may not survive a crash)";
      return false;
    }
    return true;
  } catch (...) {
    return fail("out of memory while writing", 0);
  }
}

} // namespace kiln::data
