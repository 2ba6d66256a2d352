// luxcpp — reading a whole file, and replacing a file atomically (POSIX).
//
// atomic_file_writer writes to a temporary file in the target's directory, named
//   .<target file name>.<pid>.<n>.tmp
// and commit() makes it the target: flush, fsync(file), close, rename(temp, target) (atomic on
// POSIX within one file system), fsync(directory) so the rename itself is durable. Until the
// rename, the previous target is untouched; if anything fails (or the writer is destroyed
// without commit, or the process dies), the target keeps its old contents, and the temporary is
// removed (except after a crash, when a stale `.*.tmp` file may be left behind; it is never
// read).
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lux/core/config.hpp"
#include "lux/core/error.hpp"
#include "lux/io/safetensors/format.hpp"

LUX_NAMESPACE_BEGIN

namespace detail {
/// Test hook: when set, atomic_file_writer::commit calls it with the temporary's path after the
/// temporary is completely written and fsynced and before it is renamed over the target. A hook
/// that throws simulates a failure at the last moment (the temporary must then be removed and the
/// target left as it was).
inline void (*safetensors_fail_after_temp_written)(const std::filesystem::path& temp) = nullptr;

[[noreturn]] inline void throw_errno(std::string_view what, const std::filesystem::path& p,
                                     int err) {
  throw io_error(concat("safetensors: ", p.string(), ": ", what, ": ", std::strerror(err)));
}

/// Writes a file's new contents next to it and renames them over it (see the file comment).
class atomic_file_writer {
 public:
  explicit atomic_file_writer(std::filesystem::path target) : target_(std::move(target)) {
    require<io_error>(!target_.filename().empty(), "safetensors: ", target_.string(),
                      ": not a file name");
    const std::filesystem::path dir = directory();
    static std::atomic<unsigned> counter{0};  // tells apart the writers of one process
    for (int attempt = 0;; ++attempt) {
      temp_ =
          dir / concat(".", target_.filename().string(), ".", ::getpid(), ".", counter++, ".tmp");
      fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ >= 0) break;
      if (errno != EEXIST || attempt > 1000)
        throw_errno("cannot create a temporary file", temp_, errno);
    }
    buffer_.reserve(buffer_size);
  }
  atomic_file_writer(const atomic_file_writer&) = delete;
  atomic_file_writer& operator=(const atomic_file_writer&) = delete;
  ~atomic_file_writer() { abandon(); }

  const std::filesystem::path& temp_path() const noexcept { return temp_; }

  /// Appends bytes (buffered).
  void write(const void* data, std::size_t n) {
    const auto* p = static_cast<const std::byte*>(data);
    if (buffer_.size() + n <= buffer_size) {
      buffer_.insert(buffer_.end(), p, p + n);
      return;
    }
    flush();
    if (n >= buffer_size)
      write_fd(p, n);
    else
      buffer_.insert(buffer_.end(), p, p + n);
  }

  /// Makes the written bytes the target's contents, durably; on failure the target is unchanged
  /// (unless only the final directory sync failed: then the new contents are in place but their
  /// durability is not assured) and io_error is thrown.
  void commit() {
    flush();
    if (::fsync(fd_) != 0) throw_errno("fsync failed", temp_, errno);
    const int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) throw_errno("close failed", temp_, errno);
    if (safetensors_fail_after_temp_written) safetensors_fail_after_temp_written(temp_);
    if (::rename(temp_.c_str(), target_.c_str()) != 0)
      throw_errno("cannot rename the temporary file over it", target_, errno);
    committed_ = true;
    const std::filesystem::path dir = directory();
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) throw_errno("written, but cannot open its directory to fsync it", target_, errno);
    const int rc = ::fsync(dfd);
    const int err = errno;
    ::close(dfd);
    if (rc != 0) throw_errno("written, but fsync of its directory failed", target_, err);
  }

 private:
  static constexpr std::size_t buffer_size = std::size_t{1} << 20;

  std::filesystem::path directory() const {
    auto dir = target_.parent_path();
    return dir.empty() ? std::filesystem::path(".") : dir;
  }
  void flush() {
    if (!buffer_.empty()) write_fd(buffer_.data(), buffer_.size());
    buffer_.clear();
  }
  void write_fd(const std::byte* p, std::size_t n) {
    while (n > 0) {
      const ::ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        throw_errno("write failed", temp_, errno);
      }
      p += w;
      n -= static_cast<std::size_t>(w);
    }
  }
  void abandon() noexcept {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
    if (!committed_ && !temp_.empty()) ::unlink(temp_.c_str());
    committed_ = true;
  }

  std::filesystem::path target_, temp_;
  int fd_ = -1;
  bool committed_ = false;
  std::vector<std::byte> buffer_;
};
}  // namespace detail

/// Reads and validates a safetensors file (see parse_safetensors); io_error names the path.
inline safetensors_file read_safetensors(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) detail::throw_errno("cannot open", path, errno);
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } guard{fd};
  struct ::stat info {};
  if (::fstat(fd, &info) != 0) detail::throw_errno("cannot stat", path, errno);
  if (!S_ISREG(info.st_mode))
    throw io_error(detail::concat("safetensors: ", path.string(), ": not a regular file"));
  const auto size = static_cast<std::size_t>(info.st_size);
  auto bytes = std::make_unique_for_overwrite<std::byte[]>(size);
  std::size_t got = 0;
  while (got < size) {
    const ::ssize_t r = ::read(fd, bytes.get() + got, size - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      detail::throw_errno("read failed", path, errno);
    }
    if (r == 0)
      throw io_error(detail::concat("safetensors: ", path.string(), ": file shrank while read (",
                                    got, " of ", size, " bytes)"));
    got += static_cast<std::size_t>(r);
  }
  return safetensors_file(std::move(bytes), size, path.string());
}

LUX_NAMESPACE_END
