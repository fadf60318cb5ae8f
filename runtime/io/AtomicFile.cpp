//===- AtomicFile.cpp - crash-safe file replacement -----------------------===//

#include "runtime/io/AtomicFile.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kiln::io {

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

bool checkWritablePath(const std::string &flag, const std::string &path, std::string &error) {
  struct stat info;
  if (::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) {
    error = flag + " " + path + ": is a directory; pass a file path";
    return false;
  }
  const size_t slash = path.rfind('/');
  const std::string parent = slash == std::string::npos ? "."
                             : slash == 0               ? "/"
                                                        : path.substr(0, slash);
  // access() alone passes a regular file for root; the parent must be a
  // directory we may write to.
  std::string why;
  if (::stat(parent.c_str(), &info) != 0)
    why = std::strerror(errno);
  else if (!S_ISDIR(info.st_mode))
    why = "Not a directory";
  else if (::access(parent.c_str(), W_OK) != 0)
    why = std::strerror(errno);
  if (!why.empty()) {
    error = flag + " " + path + ": cannot write to the directory '" + parent + "': " + why +
            "; pass a path in a writable directory";
    return false;
  }
  return true;
}

} // namespace kiln::io
