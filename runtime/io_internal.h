// Internals shared by the io_*.cpp files: line splitting over a ByteSource, the common reader
// base, and the per-attribute value conversion. Not part of the public API (runtime/io.h).
#pragma once

#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/io.h"

namespace cayuga::io_detail {

// Splits a ByteSource into lines. A line is handed out as a mutable span of the internal buffer
// (readers unescape in place), valid until the next call. "\r\n" endings lose the '\r'; a UTF-8
// byte-order mark at the start of the input is dropped; a last line without '\n' still counts.
class LineReader {
 public:
  enum class Result { Line, End, Error };
  explicit LineReader(std::unique_ptr<ByteSource> src);
  Result next(char*& data, size_t& size);
  uint64_t line_no() const { return line_; }  // 1-based number of the line last returned
  const std::string& error() const { return error_; }

 private:
  std::unique_ptr<ByteSource> src_;
  std::vector<char> buf_;
  size_t begin_ = 0;  // first unread byte
  size_t end_ = 0;    // one past the last valid byte
  bool eof_ = false;
  bool first_ = true;
  uint64_t line_ = 0;
  std::string error_;
};

// What every line-based reader shares: the file name, the line source and the last error.
class LineBasedReader : public EventReader {
 public:
  LineBasedReader(std::string name, std::unique_ptr<ByteSource> src)
      : name_(std::move(name)), lines_(std::move(src)) {
    error_.file = name_;
  }
  const InputError& error() const override { return error_; }
  std::string_view name() const override { return name_; }
  uint64_t line() const override { return event_line_; }

 protected:
  Status fail(uint64_t line, std::string message) {
    error_.line = line;
    error_.message = std::move(message);
    return Status::Error;
  }
  // Next non-blank line; End/Error as the LineReader says (an I/O error is reported once).
  // Blank means empty or only spaces/tabs.
  LineReader::Result next_line(char*& data, size_t& size);
  // The next non-blank line as Event; End at the end of input; Error on a read error. Both end
  // the reader (End is sticky).
  Status read_line(char*& data, size_t& size);
  Status io_error() { return fail(0, "read error: " + lines_.error()); }

  std::string name_;
  LineReader lines_;
  InputError error_;
  uint64_t event_line_ = 0;  // line of the event last returned
  bool ended_ = false;
};

inline bool is_blank(char c) {
  return c == ' ' || c == '\t';
}
inline std::string_view trim(std::string_view s) {
  while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
  return s;
}

// "'abc'" for messages, cut at 60 bytes.
std::string quote_for_message(std::string_view s);

// The stream and time format of a one-stream input (`kind`: "CSV", "regex"). False with *error
// ("file: message") when the stream is missing or unknown or the time format is invalid.
bool fixed_stream_input(const InputSpec& spec, const StreamTable& streams, EngineUnit unit,
                        const char* kind, const StreamDef*& def, TimeFormat& tf,
                        std::string* error);

// Converts one field into the slot for an attribute; returns an error message or "".
// Numbers are trimmed of blanks first; strings are interned as given.
std::string convert_value(std::string_view text, const Attribute& attr, Slot& out);

// Resolves an attribute → source-name mapping: the source name for `attr` ("" → attr name).
std::string_view mapped_name(const InputSpec& spec, std::string_view attr);

// Reader factories (one per format); `streams` (and its schemas) must outlive the reader.
std::unique_ptr<EventReader> make_cayuga_reader(const InputSpec& spec,
                                                std::unique_ptr<ByteSource> src,
                                                const StreamTable& streams, std::string* error);
std::unique_ptr<EventReader> make_csv_reader(const InputSpec& spec, std::unique_ptr<ByteSource> src,
                                             const StreamTable& streams, EngineUnit unit,
                                             std::string* error);
std::unique_ptr<EventReader> make_jsonl_reader(const InputSpec& spec,
                                               std::unique_ptr<ByteSource> src,
                                               const StreamTable& streams, EngineUnit unit,
                                               std::string* error);
std::unique_ptr<EventReader> make_regex_reader(const InputSpec& spec,
                                               std::unique_ptr<ByteSource> src,
                                               const StreamTable& streams, EngineUnit unit,
                                               std::string* error);

}  // namespace cayuga::io_detail
