// Output writers: JSON Lines, CSV, the Cayuga event format and the original witness-log lines.
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>

#include "runtime/io.h"

namespace cayuga {

const char* to_string(OutputFormat f) {
  switch (f) {
    case OutputFormat::Jsonl:
      return "jsonl";
    case OutputFormat::Csv:
      return "csv";
    case OutputFormat::Cayuga:
      return "cayuga";
    case OutputFormat::Witness:
      return "witness";
  }
  return "?";
}

std::optional<OutputFormat> parse_output_format(std::string_view s) {
  if (s == "jsonl" || s == "json" || s == "ndjson") return OutputFormat::Jsonl;
  if (s == "csv") return OutputFormat::Csv;
  if (s == "cayuga") return OutputFormat::Cayuga;
  if (s == "witness") return OutputFormat::Witness;
  return std::nullopt;
}

namespace {

// Length of the valid UTF-8 sequence starting at s[i], 0 when it is not one (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF).
size_t utf8_len(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  auto cont = [&](size_t k, unsigned lo = 0x80, unsigned hi = 0xBF) {
    return k < s.size() && b(k) >= lo && b(k) <= hi;
  };
  unsigned c = b(i);
  if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (c == 0xE0) return cont(i + 1, 0xA0) && cont(i + 2) ? 3 : 0;
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return cont(i + 1) && cont(i + 2) ? 3 : 0;
  if (c == 0xED) return cont(i + 1, 0x80, 0x9F) && cont(i + 2) ? 3 : 0;
  if (c == 0xF0) return cont(i + 1, 0x90) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3) return cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  if (c == 0xF4) return cont(i + 1, 0x80, 0x8F) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  return 0;
}

// What put_json_string writes at most per byte of its input: "\u00XX" for a control character
// or "\ufffd" for a byte that is not valid UTF-8.
constexpr size_t kStringBound = 6;

// The bytes put_json_string does not copy as they are: control characters, '"', '\\' and
// everything outside ASCII (checked as UTF-8).
constexpr auto kEscaped = [] {
  std::array<bool, 256> escaped{};
  for (int c = 0; c < 256; ++c) escaped[c] = c < 0x20 || c == '"' || c == '\\' || c >= 0x80;
  return escaped;
}();

// Writes `s` as a JSON string, quotes included, at `p` (room for 2 + kStringBound * s.size()
// characters); returns the end. Valid UTF-8 is copied, anything else replaced by U+FFFD.
char* put_json_string(char* p, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  *p++ = '"';
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    // Plain characters copied one by one as they are checked (names and values are short: a
    // memcpy call per run would cost more).
    while (i < n && !kEscaped[static_cast<unsigned char>(s[i])]) *p++ = s[i++];
    if (i >= n) break;
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      if (size_t len = utf8_len(s, i)) {
        std::memcpy(p, s.data() + i, len);
        p += len;
        i += len;
      } else {
        std::memcpy(p, "\\ufffd", 6);
        p += 6;
        ++i;
      }
      continue;
    }
    *p++ = '\\';
    switch (c) {
      case '"':
        *p++ = '"';
        break;
      case '\\':
        *p++ = '\\';
        break;
      case '\b':
        *p++ = 'b';
        break;
      case '\f':
        *p++ = 'f';
        break;
      case '\n':
        *p++ = 'n';
        break;
      case '\r':
        *p++ = 'r';
        break;
      case '\t':
        *p++ = 't';
        break;
      default:
        std::memcpy(p, "u00", 3);
        p += 3;
        *p++ = kHex[c >> 4];
        *p++ = kHex[c & 15];
    }
    ++i;
  }
  *p++ = '"';
  return p;
}

void append_int(std::string& out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// `s` between two `quote`s, each `quote` in it doubled.
void append_quoted(std::string& out, std::string_view s, char quote) {
  out += quote;
  for (char c : s) {
    if (c == quote) out += quote;
    out += c;
  }
  out += quote;
}

void append_csv_field(std::string& out, std::string_view s) {
  if (s.find_first_of(",\"\r\n") == std::string_view::npos)
    out.append(s);
  else
    append_quoted(out, s, '"');
}

// A header whenever the stream differs from the previous row's (the stream of the last header).
void append_csv_row(std::string& out, std::string_view stream, const Schema& schema,
                    const RowView& row, std::optional<std::string_view> previous) {
  if (!previous || *previous != stream) {
    out += "stream,t0,t1";
    for (const auto& a : schema.attrs) {
      out += ',';
      append_csv_field(out, a.name);
    }
    out += '\n';
  }
  append_csv_field(out, stream);
  out += ',';
  append_int(out, row.t0);
  out += ',';
  append_int(out, row.t1);
  for (size_t i = 0; i < schema.size(); ++i) {
    out += ',';
    const Slot v = row.values[i];
    switch (schema.attrs[i].type) {
      case Type::Int:
        append_int(out, v.i);
        break;
      case Type::Float:
        append_double(out, v.f);
        break;
      case Type::String:
        append_csv_field(out, interned(v.s));
        break;
    }
  }
  out += '\n';
}

// A value of the Cayuga line formats: quoted '...' only when the reader would otherwise split
// or trim it.
void append_cayuga_field(std::string& out, std::string_view s) {
  bool quote = s.find_first_of(",'\r\n") != std::string_view::npos ||
               (!s.empty() &&
                (s.front() == ' ' || s.front() == '\t' || s.back() == ' ' || s.back() == '\t'));
  if (quote)
    append_quoted(out, s, '\'');
  else
    out.append(s);
}

void append_cayuga_value(std::string& out, Type type, Slot v) {
  switch (type) {
    case Type::Int:
      append_int(out, v.i);
      break;
    case Type::Float:
      append_double(out, v.f);
      break;
    case Type::String:
      append_cayuga_field(out, interned(v.s));
      break;
  }
}

// "Stream,t0,t1": how both Cayuga-style formats end a line (before any final delimiter).
void append_stream_and_times(std::string& out, std::string_view stream, const RowView& row) {
  append_cayuga_field(out, stream);
  out += ',';
  append_int(out, row.t0);
  out += ',';
  append_int(out, row.t1);
}

void append_cayuga_row(std::string& out, std::string_view stream, const Schema& schema,
                       const RowView& row) {
  for (size_t i = 0; i < schema.size(); ++i) {
    append_cayuga_value(out, schema.attrs[i].type, row.values[i]);
    out += ',';
  }
  append_stream_and_times(out, stream, row);
  out += '\n';
}

// The original engine's witnesses.txt: a CMessage of type WITNESS whose first field counts the
// fields that follow it plus the type, every field followed by the delimiter.
void append_witness_row(std::string& out, std::string_view stream, const Schema& schema,
                        const RowView& row) {
  append_int(out, static_cast<int64_t>(2 * schema.size() + 4));
  out += ",WITNESS,";
  for (size_t i = 0; i < schema.size(); ++i) {
    append_cayuga_field(out, schema.attrs[i].name);
    out += ',';
    append_cayuga_value(out, schema.attrs[i].type, row.values[i]);
    out += ',';
  }
  append_stream_and_times(out, stream, row);
  out += ",\n";
}

// Every format: format_row into a buffer handed to the sink in blocks of kBlock bytes. The
// stream of the last row is the only formatting state (format_row).
class BufferedWriter final : public EventWriter {
 public:
  BufferedWriter(OutputFormat format, std::unique_ptr<OutputSink> sink)
      : format_(format), sink_(std::move(sink)) {
    buf_.reserve(kBlock + 4096);
  }
  ~BufferedWriter() override { flush_all(); }
  void write(std::string_view stream, const Schema& schema, const RowView& row) override {
    format_row(buf_, format_, stream, schema, row,
               has_last_ ? std::optional<std::string_view>(last_stream_) : std::nullopt);
    set_last(stream);
    if (buf_.size() >= kBlock) spill();
  }
  void write_formatted(std::string_view bytes, std::string_view last_stream) override {
    if (bytes.empty()) return;
    if (buf_.empty() && bytes.size() >= kBlock) {
      write_through(bytes);  // a large block: no copy
    } else {
      buf_.append(bytes);
      if (buf_.size() >= kBlock) spill();
    }
    set_last(last_stream);
  }
  bool flush() override { return flush_all(); }
  std::string error() const override { return error_; }

 private:
  void set_last(std::string_view stream) {
    if (has_last_ && last_stream_ == stream) return;
    has_last_ = true;
    last_stream_.assign(stream);
  }
  void write_through(std::string_view bytes) {
    if (error_.empty() && !sink_->write(bytes)) error_ = sink_->error();
  }
  bool spill() {
    if (!buf_.empty()) write_through(buf_);
    buf_.clear();
    return error_.empty();
  }
  bool flush_all() {
    spill();
    if (error_.empty() && !sink_->flush()) error_ = sink_->error();
    return error_.empty();
  }
  OutputFormat format_;
  std::unique_ptr<OutputSink> sink_;
  std::string buf_;
  bool has_last_ = false;
  std::string last_stream_;
  std::string error_;
};

}  // namespace

// JSON rows are written in place: the row's size is bounded first (escaping at most sextuples a
// string, a number takes at most 32 characters), the string grown once, and every piece then
// written through a pointer. Appending piece by piece (and std::to_chars for every double) cost
// ~2,900 instructions per row of the stock schema; this and put_double, ~1,600 (callgrind).
void append_json_row(std::string& out, std::string_view stream, const Schema& schema,
                     const RowView& row) {
  constexpr size_t kNumber = 32;  // an int64 or a shortest round-trip double, with room to spare
  size_t bound = 32 + kStringBound * stream.size() + 2 * kNumber;
  for (size_t i = 0; i < schema.size(); ++i) {
    bound += 8 + kStringBound * schema.attrs[i].name.size();
    bound += schema.attrs[i].type == Type::String
                 ? 2 + kStringBound * interned(row.values[i].s).size()
                 : kNumber;
  }
  const size_t old = out.size();
  out.resize(old + bound);
  char* p = out.data() + old;
  auto lit = [&p](std::string_view text) {
    std::memcpy(p, text.data(), text.size());
    p += text.size();
  };
  auto number = [&p](auto v) { p = std::to_chars(p, p + kNumber, v).ptr; };
  lit("{\"stream\":");
  p = put_json_string(p, stream);
  lit(",\"t0\":");
  number(row.t0);
  lit(",\"t1\":");
  number(row.t1);
  for (size_t i = 0; i < schema.size(); ++i) {
    *p++ = ',';
    p = put_json_string(p, schema.attrs[i].name);
    *p++ = ':';
    const Slot v = row.values[i];
    switch (schema.attrs[i].type) {
      case Type::Int:
        number(v.i);
        break;
      case Type::Float:
        if (std::isfinite(v.f))
          p = put_double(p, v.f);
        else
          lit("null");
        break;
      case Type::String:
        p = put_json_string(p, interned(v.s));
        break;
    }
  }
  *p++ = '}';
  out.resize(static_cast<size_t>(p - out.data()));
}

// The fast path covers magnitudes below 2^31 with at most 6 decimals (prices, ratios, most
// measurements). m = round(|v| * 10^6) is the candidate, and it is the answer when
// m / 10^6 == |v|: m and 10^6 are exact doubles, so the division is the correctly rounded value
// of the decimal m * 10^-6, i.e. what reading those digits back gives. Below 2^31 an ulp is under
// 10^-6, so no other decimal with at most 6 places reads back as v: the shortest digits are m's
// without its trailing zeros (k places). And whenever some decimal with at most 6 places reads
// back as v, it is m: |v| * 10^6 is then within 0.49 of it (half an ulp of v, times 10^6, plus
// the product's rounding), so m never misses one. std::to_chars prints such a value in fixed
// notation unless scientific is shorter (100000 is "1e+05", 0.0001 is "1e-04"), in which case,
// and whenever m does not read back, std::to_chars itself decides.
char* put_double(char* p, double v) {
  const double a = std::fabs(v);
  if (a != 0 && a < 2147483648.0) {
    // (Truncating a + 0.5 rounds well enough: a wrong m only fails the check.)
    int64_t m = static_cast<int64_t>(a * 1e6 + 0.5);
    if (static_cast<double>(m) / 1e6 == a) {
      int k = 6;
      while (k > 0 && m % 10 == 0) {
        m /= 10;
        --k;
      }
      char digits[24];
      const char* end = std::to_chars(digits, digits + sizeof digits, m).ptr;
      const int n = static_cast<int>(end - digits);
      int significant = n;
      while (digits[significant - 1] == '0') --significant;  // m != 0
      const int fixed = (n > k ? n - k : 1) + (k > 0 ? 1 + k : 0);
      const int scientific = significant + (significant > 1 ? 1 : 0) + 4;  // e+XX: |exponent| < 16
      if (scientific >= fixed) {
        if (std::signbit(v)) *p++ = '-';
        if (n > k) {
          std::memcpy(p, digits, static_cast<size_t>(n - k));
          p += n - k;
        } else {
          *p++ = '0';
        }
        if (k > 0) {
          *p++ = '.';
          for (int z = n; z < k; ++z) *p++ = '0';
          const int from = n > k ? n - k : 0;
          std::memcpy(p, digits + from, static_cast<size_t>(n - from));
          p += n - from;
        }
        return p;
      }
    }
  }
  return std::to_chars(p, p + 32, v).ptr;
}

void append_double(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "nan";
  } else if (std::isinf(v)) {
    out += v > 0 ? "inf" : "-inf";
  } else {
    char buf[32];
    out.append(buf, put_double(buf, v));
  }
}

void append_json_string(std::string& out, std::string_view s) {
  const size_t old = out.size();
  out.resize(old + 2 + kStringBound * s.size());
  char* end = put_json_string(out.data() + old, s);
  out.resize(static_cast<size_t>(end - out.data()));
}

std::unique_ptr<EventWriter> make_writer(OutputFormat format, std::unique_ptr<OutputSink> sink) {
  return std::make_unique<BufferedWriter>(format, std::move(sink));
}

void format_row(std::string& out, OutputFormat format, std::string_view stream,
                const Schema& schema, const RowView& row,
                std::optional<std::string_view> previous) {
  switch (format) {
    case OutputFormat::Jsonl:
      append_json_row(out, stream, schema, row);
      out += '\n';
      return;
    case OutputFormat::Csv:
      append_csv_row(out, stream, schema, row, previous);
      return;
    case OutputFormat::Cayuga:
      append_cayuga_row(out, stream, schema, row);
      return;
    case OutputFormat::Witness:
      append_witness_row(out, stream, schema, row);
      return;
  }
}

}  // namespace cayuga
