// Event input and output adapters: the files of CEL.md §8 and a few practical extras.
//
// Design. Input is pull-based: an EventReader hands out one event per next() call into a
// caller-owned InputEvent, reusing its value vector, so reading allocates nothing per event
// except when a new string is interned. Every reader works line by line over a ByteSource
// (plain file, gzip file, stdin or memory) and reports bad input as a value, an InputError
// naming file and 1-based line, then carries on with the next line: the engine decides whether
// an error ends the run. Nothing is dropped silently; the only lines a reader passes over without
// an error are blank lines and, for regex inputs with skip-unmatched, lines the pattern does not
// match, which are counted (skipped()).
//
// Names are resolved once against a StreamTable (the input streams a script declares with
// CREATE STREAM). Readers produce point events unless the input names both t0 and t1.
// MergeReader interleaves several readers by t1 (stable) without reordering inside a reader.
//
// Output is push-based: an EventWriter formats into an in-memory buffer and hands it to an
// OutputSink in large blocks; nothing is flushed per event. Formats: JSON Lines (default),
// CSV, the Cayuga input format, and the original Cayuga engine's witness-log lines.
//
// Parallel parsing. Every reader open_reader makes is a SplitReader: its work splits into
// cutting the input into records (lines; a CSV record may span lines), which is sequential, and
// parsing one record into an event, which is not. cut_batch() hands out a RecordBatch of raw
// records; parse_batch() turns it into an EventBatch on any thread, concurrently with the next
// cut and with other parses; a BatchReader reads the parsed batches one event at a time again,
// with the same events, errors, line numbers and counts next() would have given. next() itself
// is the same two halves run back to back, so both paths share every parser.
//
// The option surface (input specs, --input/--events/--map/...) is documented in
// docs/input-output.md. Thread-safety: readers and writers are single-threaded objects (except
// SplitReader::parse_batch and format_row, as said there); the StreamTable is immutable after
// setup and may be shared.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "compiler/types.h"

namespace cayuga {

// ---------------------------------------------------------------------------------------------
// Streams the readers resolve names against.

struct StreamDef {
  uint32_t id = 0;                 // the engine's stream id, copied into InputEvent::stream
  std::string name;                // case-sensitive (CEL.md §1)
  const Schema* schema = nullptr;  // not owned; must outlive the table and its readers
};

class StreamTable {
 public:
  // False (and no change) when the name or the id is already present.
  bool add(StreamDef def);
  const StreamDef* find(std::string_view name) const;
  const StreamDef* find_id(uint32_t id) const;
  size_t size() const { return defs_.size(); }
  const std::vector<StreamDef>& all() const { return defs_; }
  // "Stock, Trade" (first 10, then ", ..."): for error messages.
  std::string names() const;

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::vector<StreamDef> defs_;
  std::unordered_map<std::string, size_t, Hash, std::equal_to<>> by_name_;
  std::unordered_map<uint32_t, size_t> by_id_;
};

// ---------------------------------------------------------------------------------------------
// Reading.

struct InputError {
  std::string file;   // as given in the spec ("-" for stdin)
  uint64_t line = 0;  // 1-based; 0 when the error is not about one line (open, I/O)
  std::string message;
  // "file:line: message", or "file: message" when line is 0.
  std::string to_string() const;
};

struct InputEvent {
  uint32_t stream = 0;  // StreamDef::id
  Row row;
};

class EventReader {
 public:
  enum class Status { Event, End, Error };
  virtual ~EventReader() = default;
  // Event: `out` holds the next event. Error: error() describes one bad line (or an I/O error);
  // calling next() again continues with the following line. End: no more input (sticky).
  virtual Status next(InputEvent& out) = 0;
  virtual const InputError& error() const = 0;
  virtual std::string_view name() const = 0;  // the file as given, for messages and stats
  // Lines passed over without an error (regex inputs with skip-unmatched); 0 otherwise.
  virtual uint64_t skipped() const { return 0; }
  // 1-based line of the event last returned (a multi-line CSV record: its first line); 0 if
  // none. Lets the engine point at an event it rejects later (e.g. a late one).
  virtual uint64_t line() const { return 0; }
  // False while next() would have to wait for input that has not arrived yet (a BatchReader
  // whose next batch is still being parsed). Readers that block on their input are always ready.
  virtual bool ready() const { return true; }
  // What peek() sees of an event ahead.
  struct Lookahead {
    uint32_t stream = 0;
    const Slot* values = nullptr;
    // The engine's candidates for the event, when its batch was matched on the parsing thread
    // (EventBatch::matched; Engine::match): `candidates` and the engine generation they are of.
    bool matched = false;
    uint64_t generation = 0;
    std::span<const uint32_t> candidates;
  };
  // Looks ahead without reading: the event `k` items after the one next() returns next (k = 0:
  // that one), if it is already at hand and is an event (for Engine::hint). Readers that cannot
  // look ahead say false.
  virtual bool peek(size_t k, Lookahead& out) const {
    (void)k, (void)out;
    return false;
  }
};

// Records cut from one input and not parsed yet: each record's bytes, back to back, and its
// first line. After the records the input may have ended, possibly with an error (an I/O error,
// a CSV quoted field still open at the end of the file) that the reader reports last.
struct RecordBatch {
  struct Record {
    size_t offset = 0;  // into bytes
    size_t size = 0;
    uint64_t line = 0;  // 1-based; a multi-line CSV record: its first line
  };
  std::string bytes;
  std::vector<Record> records;
  std::optional<InputError> error;  // reported after the records
  bool ended = false;               // nothing follows (after the error, if any)
  void clear() {
    bytes.clear();
    records.clear();
    error.reset();
    ended = false;
  }
};

// A parsed RecordBatch: one item per record that is an event or an error, in record order,
// then the batch's own error and End when it has them. Records passed over (regex lines that do
// not match, with skip-unmatched) leave no item; they are counted on the item that follows them
// or, at the end of the batch, in trailing_skipped, so a BatchReader counts them exactly when
// the reader's next() would have.
struct EventBatch {
  struct Item {
    EventReader::Status status = EventReader::Status::Event;
    uint32_t stream = 0;  // Event: as InputEvent
    int64_t t0 = 0, t1 = 0;
    size_t first = 0;      // Event: index of its first value in `values`; Error: index in `errors`
    uint32_t count = 0;    // Event: number of values
    uint64_t line = 0;     // Event: its line, as EventReader::line()
    uint64_t skipped = 0;  // lines passed over right before this item
    // Event, in a matched batch: its candidates, candidates[cand_first, cand_first + cand_count).
    uint32_t cand_first = 0, cand_count = 0;
  };
  std::vector<Item> items;
  std::vector<Slot> values;
  std::vector<InputError> errors;
  uint64_t trailing_skipped = 0;  // lines passed over after the last item
  // Optionally, each event's engine candidates, looked up on the parsing thread so that the
  // engine's thread need not (Engine::match; the run loop's pipeline does it).
  bool matched = false;
  uint64_t generation = 0;  // Engine::generation() they were matched under
  std::vector<uint32_t> candidates;
  void clear() {
    items.clear();
    values.clear();
    errors.clear();
    trailing_skipped = 0;
    matched = false;
    candidates.clear();
  }
};

// A reader whose parsing can run on other threads. cut_batch() and next() are sequential and
// share one position in the input; parse_batch() is const and may run on any thread,
// concurrently with cut_batch() and with other parse_batch() calls of the same reader (it
// parses records in place, so each batch belongs to one call).
class SplitReader : public EventReader {
 public:
  // Cuts the next records: stops after `max_records` records or once `max_bytes` bytes are
  // cut, at the end of the input, and after an error of the cutting itself.
  virtual void cut_batch(RecordBatch& out, size_t max_records, size_t max_bytes) = 0;
  virtual void parse_batch(RecordBatch& in, EventBatch& out) const = 0;
};

// Reads EventBatches (from SplitReader::parse_batch) as the reader that cut them would have
// read its input: the same events, errors (error(), naming file and line), line() and
// skipped(). Batches are pushed in cut order; next() may only be called when ready().
class BatchReader final : public EventReader {
 public:
  explicit BatchReader(std::string name);
  // Takes the batch's contents and leaves `batch` empty, with the buffers of a batch already
  // read when there is one (so a producer's batches stop allocating).
  void push(EventBatch& batch);
  Status next(InputEvent& out) override;
  bool ready() const override { return ended_ || !queue_.empty(); }
  // Within the batches pushed so far.
  bool peek(size_t k, Lookahead& out) const override;
  const InputError& error() const override { return error_; }
  std::string_view name() const override { return name_; }
  uint64_t skipped() const override { return skipped_; }
  uint64_t line() const override { return line_; }
  // Batches pushed and read to their end (for a producer that keeps a few batches ahead).
  uint64_t batches_done() const { return done_; }

 private:
  void pop();
  std::string name_;
  std::deque<EventBatch> queue_;   // invariant: the front batch has an item left to read
  std::vector<EventBatch> spent_;  // read, cleared, their buffers kept for push()
  size_t pos_ = 0;                 // next item of the front batch
  uint64_t skipped_ = 0;
  uint64_t pending_skipped_ = 0;  // trailing lines of batches read, counted with the next item
  uint64_t line_ = 0;
  uint64_t done_ = 0;
  bool ended_ = false;
  InputError error_;
};

// A source of bytes: a file, a gzip file, stdin or a string. read() returns the number of bytes
// stored (0 at end of input) or -1 on error (error() then says why).
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual long read(char* buf, size_t cap) = 0;
  virtual std::string error() const = 0;
};
// "-" is stdin (gzip-compressed stdin is detected and decompressed); a path ending in ".gz" is
// decompressed with zlib; anything else is read as is. nullptr + *error when it cannot be opened.
std::unique_ptr<ByteSource> open_byte_source(const std::string& path, std::string* error);
std::unique_ptr<ByteSource> memory_byte_source(std::string data);

enum class InputFormat : uint8_t { Cayuga, Csv, Jsonl, Regex };
const char* to_string(InputFormat f);  // "cayuga" | "csv" | "jsonl" | "regex"
std::optional<InputFormat> parse_input_format(std::string_view s);
// By extension, ignoring a trailing ".gz": .csv → Csv; .jsonl/.ndjson/.json → Jsonl; else Cayuga.
InputFormat format_from_path(std::string_view path);

// One input of the command line (or of the embedding API).
struct InputSpec {
  std::string path;    // "-" = stdin
  std::string stream;  // fixed stream ("Stock=bars.csv"); empty: named by each line
  InputFormat format = InputFormat::Cayuga;
  std::string regex;           // RE2 syntax, named groups (?P<Name>...) (Regex only)
  std::string time_column;     // column / key / group holding the time; empty: t, or t0 + t1
  std::string time_format;     // empty: engine units; "us"|"ms"|"s"; or "%Y-%m-%d ..." (UTC)
  int year = 1970;             // year for datetime formats without %Y (syslog lines)
  bool skip_unmatched = true;  // Regex: count lines that do not match instead of an error
  // attribute → column/key/group name, for attributes whose source name differs.
  std::vector<std::pair<std::string, std::string>> map;
};

// Parses the input options out of a command line. Recognized (also as --opt=value):
//   --events FILE            Cayuga-format input (several streams), same as --input FILE
//   --input [Stream=]FILE    one input; Stream= fixes the stream (needed for csv and regex)
//   --format F               cayuga|csv|jsonl|regex, overrides the extension
//   --regex RE               regex input (implies --format regex)
//   --time-column NAME       --time-format us|ms|s|DATETIME   --year N
//   --map Attr=source        (repeatable)  --skip-unmatched / --no-skip-unmatched
// Modifiers apply to the most recent --input/--events. Unrecognized arguments are returned in
// `rest`, in order, for the caller. On error returns false and sets *error.
struct InputArgs {
  std::vector<InputSpec> inputs;
  std::vector<std::string> rest;
};
bool parse_input_args(std::span<const std::string> args, InputArgs& out, std::string* error);

// Opens one input. Errors found before the first event (file missing, unknown stream, CSV
// header without a needed column, bad regex or time format) are reported here: nullptr + *error
// ("file: message"). `unit` is the engine time unit that times are converted into. The spec is
// copied; `streams` and the schemas it points to must outlive the reader.
std::unique_ptr<SplitReader> open_reader(const InputSpec& spec, const StreamTable& streams,
                                         EngineUnit unit, std::string* error);
// Same over an already open source (tests, embedding with in-memory data).
std::unique_ptr<SplitReader> open_reader(const InputSpec& spec, std::unique_ptr<ByteSource> src,
                                         const StreamTable& streams, EngineUnit unit,
                                         std::string* error);

// k-way merge by t1. Ties go to the reader that comes first in `readers`; events of one reader
// keep their order (a reader whose time goes backwards is merged as is; the engine reports it).
// An error of any reader is passed through (error() names that reader's file and line); the
// next call continues with that reader.
class MergeReader final : public EventReader {
 public:
  explicit MergeReader(std::vector<std::unique_ptr<EventReader>> readers);
  Status next(InputEvent& out) override;
  const InputError& error() const override { return error_; }
  std::string_view name() const override { return "merge"; }
  uint64_t skipped() const override;
  uint64_t line() const override { return last_ < readers_.size() ? readers_[last_]->line() : 0; }
  // Every reader the next call reads from first is ready.
  bool ready() const override;
  // With one reader only (a merge of several cannot know whose event comes when).
  bool peek(size_t k, Lookahead& out) const override;
  // The file and line of the event last returned, with the message the engine shows when that
  // event arrived after time `now` had been reached (CEL.md §7: input in non-decreasing t1).
  InputError late_error(int64_t t1, int64_t now) const;
  const std::vector<std::unique_ptr<EventReader>>& readers() const { return readers_; }

 private:
  bool less(size_t a, size_t b) const;  // heap order: (t1, reader index)
  std::vector<std::unique_ptr<EventReader>> readers_;
  std::vector<InputEvent> head_;  // each reader's next event, while it is in heap_
  std::vector<size_t> heap_;      // min-heap of reader indexes
  std::vector<size_t> refill_;    // readers whose head must be read before the next pop
  size_t refill_pos_ = 0;
  size_t last_ = SIZE_MAX;  // reader of the event last returned
  InputError error_;
};

// Value and time parsing shared by the readers (exposed for tests and for the CLI).
// INT: optional sign and decimal digits, must fit int64 ("1.5", "1e3", "" are errors).
// FLOAT: decimal or scientific notation, ints accepted; "inf", "-inf", "nan" (any case) are
// accepted and produce the IEEE values. Both return an error message (empty on success).
std::string parse_int_value(std::string_view text, int64_t& out);
std::string parse_float_value(std::string_view text, double& out);

// How a time value is written in an input.
struct TimeFormat {
  enum class Kind : uint8_t { Number, Datetime } kind = Kind::Number;
  EngineUnit unit = EngineUnit::Ms;  // Number: the unit of the numbers
  std::string pattern;               // Datetime: strftime-like pattern
  int year = 1970;                   // Datetime without %Y
};
// "" → numbers in `engine`; "us"/"ms"/"s" → numbers in that unit; anything with '%' → datetime.
// Validates the pattern; returns an error message (empty on success).
std::string make_time_format(std::string_view spec, EngineUnit engine, int year, TimeFormat& out);
// Number: "[-]digits[.digits]" converted to `engine`, rounding down. Datetime conversions:
// %Y (4 digits) %m %d %e %H %M %S (1-2 digits) %b/%B/%h (English month name or abbreviation,
// any case) %f (fraction of a second, 1-9 digits) %T (= %H:%M:%S) %% (a '%'); %S also accepts
// an optional ".fraction"; a blank matches any run of blanks (also none); other characters
// match themselves. Interpreted as UTC; no locale involved.
std::string parse_time_value(std::string_view text, const TimeFormat& fmt, EngineUnit engine,
                             int64_t& out);

// ---------------------------------------------------------------------------------------------
// Writing.

class OutputSink {
 public:
  virtual ~OutputSink() = default;
  virtual bool write(std::string_view bytes) = 0;  // false on error (error() says why)
  virtual bool flush() = 0;
  virtual std::string error() const = 0;
};
// "-" is stdout; a path ending in ".gz" is gzip-compressed. nullptr + *error on failure.
std::unique_ptr<OutputSink> open_output_sink(const std::string& path, std::string* error);

// Collects everything in memory (tests, embedding).
class StringSink final : public OutputSink {
 public:
  bool write(std::string_view bytes) override {
    data.append(bytes);
    return true;
  }
  bool flush() override { return true; }
  std::string error() const override { return {}; }
  std::string data;
};

enum class OutputFormat : uint8_t { Jsonl, Csv, Cayuga, Witness };
const char* to_string(OutputFormat f);  // "jsonl" | "csv" | "cayuga" | "witness"
std::optional<OutputFormat> parse_output_format(std::string_view s);

class EventWriter {
 public:
  virtual ~EventWriter() = default;  // flushes; a failure is lost, call flush() to see it
  // Buffers one event. I/O errors are sticky and reported by flush().
  virtual void write(std::string_view stream, const Schema& schema, const RowView& row) = 0;
  // Buffers rows formatted elsewhere with format_row() (e.g. on other threads), as if they had
  // been written here one by one; `last_stream` is the stream of the last of them, so that
  // the rows written after them are formatted as they would have been (CSV headers).
  virtual void write_formatted(std::string_view bytes, std::string_view last_stream) = 0;
  // The writer's block: it hands on what it buffers in blocks of this size, and passes on
  // `bytes` of write_formatted() at least this long without copying them when nothing is
  // buffered.
  static constexpr size_t kBlock = size_t{1} << 16;
  // Hands all buffered bytes to the sink and flushes it. False after any I/O error.
  virtual bool flush() = 0;
  virtual std::string error() const = 0;
};

// Layouts (docs/input-output.md):
//   Jsonl:   {"stream":"S","t0":1,"t1":3,"A":"x","B":10}   floats shortest round-trip, NaN/inf null
//   Csv:     header "stream,t0,t1,<attrs>" whenever the stream differs from the previous
//            header's stream, then rows; RFC 4180 quoting; NaN/inf as nan/inf/-inf; LF endings
//   Cayuga:  v1,...,vn,S,t0,t1   (re-readable by the Cayuga reader; strings with a comma, a
//            quote or edge blanks are written '...' with '' for a quote)
//   Witness: the original engine's witnesses.txt line:
//            <2n+4>,WITNESS,A1,v1,...,An,vn,S,t0,t1,      (count of fields incl. WITNESS)
std::unique_ptr<EventWriter> make_writer(OutputFormat format, std::unique_ptr<OutputSink> sink);

// Appends one row as the writer of `format` writes it. `previous` is the stream of the row
// written just before it, nullopt for the first row: the only state a writer keeps (CSV starts
// a header when the stream changes). Thread-safe.
void format_row(std::string& out, OutputFormat format, std::string_view stream,
                const Schema& schema, const RowView& row, std::optional<std::string_view> previous);

// Escaping helpers shared with other components (service, CLI).
// {"stream":"S","t0":1,"t1":3,"A":"x",...} (CEL.md §8), without a newline: the JSON Lines
// writer's row, also used by the embedding API and the service.
void append_json_row(std::string& out, std::string_view stream, const Schema& schema,
                     const RowView& row);
void append_json_string(std::string& out, std::string_view s);  // with the quotes
void append_double(std::string& out, double v);  // shortest round-trip; "nan", "inf", "-inf"
// Writes finite `v` at `p` exactly as std::to_chars(p, p + 32, v) does (the shortest form that
// reads back as `v`) and returns the end; several times faster for values with few decimals.
char* put_double(char* p, double v);

}  // namespace cayuga
