// Byte sources and sinks (plain files, gzip, stdin/stdout, memory) and line splitting.
#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "runtime/io_internal.h"

namespace cayuga {

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

class FdSource final : public ByteSource {
 public:
  FdSource(int fd, bool owned) : fd_(fd), owned_(owned) {}
  ~FdSource() override {
    if (owned_) ::close(fd_);
  }
  long read(char* buf, size_t cap) override {
    for (;;) {
      ssize_t n = ::read(fd_, buf, cap);
      if (n >= 0) return static_cast<long>(n);
      if (errno == EINTR) continue;
      error_ = std::strerror(errno);
      return -1;
    }
  }
  std::string error() const override { return error_; }

 private:
  int fd_;
  bool owned_;
  std::string error_;
};

// zlib's gz* API: decompresses gzip (also concatenated members) and passes non-gzip data
// through unchanged, which is what stdin needs.
class GzSource final : public ByteSource {
 public:
  explicit GzSource(gzFile f) : f_(f) { gzbuffer(f_, 1 << 17); }
  ~GzSource() override { gzclose(f_); }
  long read(char* buf, size_t cap) override {
    unsigned want = static_cast<unsigned>(std::min<size_t>(cap, 1u << 30));
    int n = gzread(f_, buf, want);
    if (n < 0) {
      int errnum = 0;
      const char* msg = gzerror(f_, &errnum);
      error_ = errnum == Z_ERRNO ? std::strerror(errno) : (msg ? msg : "gzip error");
      return -1;
    }
    return n;
  }
  std::string error() const override { return error_; }

 private:
  gzFile f_;
  std::string error_;
};

class MemorySource final : public ByteSource {
 public:
  explicit MemorySource(std::string data) : data_(std::move(data)) {}
  long read(char* buf, size_t cap) override {
    size_t n = std::min(cap, data_.size() - pos_);
    std::memcpy(buf, data_.data() + pos_, n);
    pos_ += n;
    return static_cast<long>(n);
  }
  std::string error() const override { return {}; }

 private:
  std::string data_;
  size_t pos_ = 0;
};

class FdSink final : public OutputSink {
 public:
  FdSink(int fd, bool owned) : fd_(fd), owned_(owned) {}
  ~FdSink() override {
    if (owned_) ::close(fd_);
  }
  bool write(std::string_view bytes) override {
    if (!error_.empty()) return false;
    while (!bytes.empty()) {
      ssize_t n = ::write(fd_, bytes.data(), bytes.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        error_ = std::strerror(errno);
        return false;
      }
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  bool flush() override { return error_.empty(); }
  std::string error() const override { return error_; }

 private:
  int fd_;
  bool owned_;
  std::string error_;
};

class GzSink final : public OutputSink {
 public:
  explicit GzSink(gzFile f) : f_(f) { gzbuffer(f_, 1 << 17); }
  ~GzSink() override { gzclose(f_); }
  bool write(std::string_view bytes) override {
    if (!error_.empty()) return false;
    while (!bytes.empty()) {
      unsigned chunk = static_cast<unsigned>(std::min<size_t>(bytes.size(), 1u << 30));
      int n = gzwrite(f_, bytes.data(), chunk);
      if (n <= 0) return set_error();
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  bool flush() override {
    if (!error_.empty()) return false;
    // Z_SYNC_FLUSH keeps the stream valid for more output; the trailer is written on close.
    if (gzflush(f_, Z_SYNC_FLUSH) != Z_OK) return set_error();
    return true;
  }
  std::string error() const override { return error_; }

 private:
  bool set_error() {
    int errnum = 0;
    const char* msg = gzerror(f_, &errnum);
    error_ = errnum == Z_ERRNO ? std::strerror(errno) : (msg ? msg : "gzip error");
    return false;
  }
  gzFile f_;
  std::string error_;
};

}  // namespace

std::unique_ptr<ByteSource> open_byte_source(const std::string& path, std::string* error) {
  if (path == "-") {
    int fd = ::dup(0);  // gzclose closes its descriptor; keep the process's stdin open
    gzFile f = fd >= 0 ? gzdopen(fd, "rb") : nullptr;
    if (!f) {
      if (fd >= 0) ::close(fd);
      if (error) *error = "cannot read stdin";
      return nullptr;
    }
    return std::make_unique<GzSource>(f);
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (error) *error = std::string("cannot open: ") + std::strerror(errno);
    return nullptr;
  }
  if (ends_with(path, ".gz")) {
    gzFile f = gzdopen(fd, "rb");
    if (!f) {
      ::close(fd);
      if (error) *error = "cannot open gzip stream";
      return nullptr;
    }
    return std::make_unique<GzSource>(f);
  }
  return std::make_unique<FdSource>(fd, true);
}

std::unique_ptr<ByteSource> memory_byte_source(std::string data) {
  return std::make_unique<MemorySource>(std::move(data));
}

std::unique_ptr<OutputSink> open_output_sink(const std::string& path, std::string* error) {
  if (path == "-") return std::make_unique<FdSink>(1, false);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (error) *error = path + ": cannot create: " + std::strerror(errno);
    return nullptr;
  }
  if (ends_with(path, ".gz")) {
    gzFile f = gzdopen(fd, "wb6");
    if (!f) {
      ::close(fd);
      if (error) *error = path + ": cannot open gzip stream";
      return nullptr;
    }
    return std::make_unique<GzSink>(f);
  }
  return std::make_unique<FdSink>(fd, true);
}

namespace io_detail {

LineReader::LineReader(std::unique_ptr<ByteSource> src) : src_(std::move(src)), buf_(1 << 18) {}

LineReader::Result LineReader::next(char*& data, size_t& size) {
  for (;;) {
    if (begin_ < end_) {
      char* start = buf_.data() + begin_;
      char* nl = static_cast<char*>(std::memchr(start, '\n', end_ - begin_));
      if (nl || eof_) {
        char* stop = nl ? nl : buf_.data() + end_;
        begin_ = nl ? static_cast<size_t>(nl + 1 - buf_.data()) : end_;
        if (stop > start && stop[-1] == '\r') --stop;
        if (first_) {
          first_ = false;
          if (stop - start >= 3 && std::memcmp(start, "\xEF\xBB\xBF", 3) == 0) start += 3;
        }
        ++line_;
        data = start;
        size = static_cast<size_t>(stop - start);
        return Result::Line;
      }
    } else if (eof_) {
      return Result::End;
    }
    // Need more bytes: keep the partial line at the front, grow when one line fills the buffer.
    if (begin_ > 0) {
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (end_ == buf_.size()) buf_.resize(buf_.size() * 2);
    long n = src_->read(buf_.data() + end_, buf_.size() - end_);
    if (n < 0) {
      error_ = src_->error();
      eof_ = true;
      begin_ = end_ = 0;  // a partial line before an I/O error is not trustworthy
      return Result::Error;
    }
    if (n == 0) eof_ = true;
    end_ += static_cast<size_t>(n);
  }
}

LineReader::Result LineBasedReader::next_line(char*& data, size_t& size) {
  for (;;) {
    auto r = lines_.next(data, size);
    if (r != LineReader::Result::Line) return r;
    std::string_view line(data, size);
    if (!trim(line).empty()) return r;
  }
}

EventReader::Status LineBasedReader::read_line(char*& data, size_t& size) {
  if (ended_) return Status::End;
  switch (next_line(data, size)) {
    case LineReader::Result::End:
      ended_ = true;
      return Status::End;
    case LineReader::Result::Error:
      ended_ = true;
      return io_error();
    case LineReader::Result::Line:
      break;
  }
  return Status::Event;
}

}  // namespace io_detail
}  // namespace cayuga
