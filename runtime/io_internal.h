// Internals shared by the io_*.cpp files: line splitting over a ByteSource, the common reader
// base (next() and the batch halves), and the per-attribute value conversion. Not part of the
// public API (runtime/io.h).
#pragma once

#include <cstring>
#include <memory>
#include <span>
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

// Working memory of LineBasedReader::parse_record (split fields, JSON members, regex groups):
// one per parse_batch call and one for next(), so parse_record itself can be const.
struct ParseScratch {
  virtual ~ParseScratch() = default;
  // Set by parse_batch for a reader whose fields are views of the batch's bytes (the Cayuga
  // format): the record's strings are then not interned at once but listed in `strings`
  // (attribute, text) and interned together at the end of the batch (intern_all).
  bool defer_strings = false;
  std::vector<std::pair<uint32_t, std::string_view>> strings;
};

// What every line-based reader shares: the file name, the line source, the last error, and
// next() / cut_batch() / parse_batch() built from the two halves each format provides:
// cut_record (sequential: the next record) and parse_record (const: one record into an event).
class LineBasedReader : public SplitReader {
 public:
  LineBasedReader(std::string name, std::unique_ptr<ByteSource> src)
      : name_(std::move(name)), lines_(std::move(src)) {
    error_.file = name_;
  }
  Status next(InputEvent& out) final;
  void cut_batch(RecordBatch& out, size_t max_records, size_t max_bytes) final;
  void parse_batch(RecordBatch& in, EventBatch& out) const final;
  const InputError& error() const final { return error_; }
  std::string_view name() const final { return name_; }
  uint64_t line() const final { return event_line_; }
  uint64_t skipped() const final { return skipped_; }

 protected:
  enum class Parsed { Event, Error, Skip };
  // parse_record's error return: sets `error` to `message`.
  static Parsed failed(std::string& error, std::string message) {
    error = std::move(message);
    return Parsed::Error;
  }
  // The next record and its first line: Event, or End / Error as read_line says. The default is
  // one non-blank line; CSV joins lines while a quoted field is open.
  virtual Status cut_record(char*& data, size_t& size, uint64_t& line);
  // Parses one record in place into `out`; Error sets `error` to the message (the caller adds
  // file and line); Skip: a line passed over without an error (regex skip-unmatched). Must only
  // read the reader's setup, never change it: it runs on several threads at once.
  virtual Parsed parse_record(char* data, size_t size, ParseScratch& scratch, InputEvent& out,
                              std::string& error) const = 0;
  virtual std::unique_ptr<ParseScratch> make_scratch() const = 0;
  // Whether parse_record can defer its strings (ParseScratch::defer_strings): its fields are
  // views of the record's bytes.
  virtual bool fields_are_views() const { return false; }

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
  uint64_t skipped_ = 0;     // lines next() passed over (Parsed::Skip)
  bool ended_ = false;

 private:
  std::unique_ptr<ParseScratch> scratch_;  // next()'s, made on first use
  std::string message_;                    // next()'s parse error
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

// intern(s) through a per-thread cache of the strings interned last: input strings repeat
// (symbols, hosts, users), and a hit costs a hash and a compare instead of the interner's lock,
// which threads parsing at once would otherwise all queue for. A text of up to 23 bytes is kept
// in the cache, so that a hit reads one cache line (`cayuga run` at 100k queries: 7.7% of its
// samples in here before, 4.5% after).
uint64_t intern_cached(std::string_view s);
// A string of a batch to intern: its text and the value slot its id goes to.
struct DeferredString {
  size_t value;  // index into the batch's values
  std::string_view text;
};
// intern_cached() of every string in `strings`, into values[s.value]. Input strings are cold
// in the cache when they repeat only every few thousand events (thousands of symbols): each
// string's line is asked for a few strings ahead.
void intern_all(std::span<const DeferredString> strings, Slot* values);

// Converts one field into the slot for an attribute; returns an error message or "".
// Numbers are trimmed of blanks first; strings are interned as given (intern_cached).
std::string convert_value(std::string_view text, const Attribute& attr, Slot& out);

// The event of the one-stream input `def` in a record whose field k is `field(k)` and is named
// `label(k)` in messages ("column ts"): t0 from field `t0`, t1 from field `t1` (the same field:
// t1 = t0; otherwise t0 must not be after it), attribute i from field `attrs[i]`. Returns "" or
// what is wrong with the record.
std::string read_fields(const StreamDef& def, const TimeFormat& tf, EngineUnit unit, auto t0,
                        auto t1, const auto& attrs, const auto& field, const auto& label,
                        InputEvent& out) {
  int64_t t0_value, t1_value;
  if (std::string e = parse_time_value(field(t0), tf, unit, t0_value); !e.empty())
    return label(t0) + ": " + e;
  if (t1 == t0) {
    t1_value = t0_value;
  } else {
    if (std::string e = parse_time_value(field(t1), tf, unit, t1_value); !e.empty())
      return label(t1) + ": " + e;
    if (t0_value > t1_value)
      return "t0 (" + std::to_string(t0_value) + ") is after t1 (" + std::to_string(t1_value) + ")";
  }
  const Schema& schema = *def.schema;
  out.row.values.resize(schema.size());
  for (size_t i = 0; i < schema.size(); ++i)
    if (std::string e = convert_value(field(attrs[i]), schema.attrs[i], out.row.values[i]);
        !e.empty())
      return e;
  out.stream = def.id;
  out.row.t0 = t0_value;
  out.row.t1 = t1_value;
  return {};
}

// Resolves an attribute → source-name mapping: the source name for `attr` ("" → attr name).
std::string_view mapped_name(const InputSpec& spec, std::string_view attr);

// Reader factories (one per format); `streams` (and its schemas) must outlive the reader.
std::unique_ptr<SplitReader> make_cayuga_reader(const InputSpec& spec,
                                                std::unique_ptr<ByteSource> src,
                                                const StreamTable& streams, std::string* error);
std::unique_ptr<SplitReader> make_csv_reader(const InputSpec& spec, std::unique_ptr<ByteSource> src,
                                             const StreamTable& streams, EngineUnit unit,
                                             std::string* error);
std::unique_ptr<SplitReader> make_jsonl_reader(const InputSpec& spec,
                                               std::unique_ptr<ByteSource> src,
                                               const StreamTable& streams, EngineUnit unit,
                                               std::string* error);
std::unique_ptr<SplitReader> make_regex_reader(const InputSpec& spec,
                                               std::unique_ptr<ByteSource> src,
                                               const StreamTable& streams, EngineUnit unit,
                                               std::string* error);

}  // namespace cayuga::io_detail
