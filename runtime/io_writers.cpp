// Output writers: JSON Lines, CSV, the Cayuga event format and the original witness-log lines.
#include <charconv>
#include <cmath>

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

void append_int(std::string& out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

class BufferedWriter : public EventWriter {
 public:
  explicit BufferedWriter(std::unique_ptr<OutputSink> sink) : sink_(std::move(sink)) {
    buf_.reserve(kSpill + 4096);
  }
  ~BufferedWriter() override { flush_all(); }
  bool flush() final { return flush_all(); }
  std::string error() const final { return error_; }

 protected:
  static constexpr size_t kSpill = 1 << 16;
  void done_event() {
    if (buf_.size() >= kSpill) spill();
  }
  std::string buf_;

 private:
  bool spill() {
    if (!buf_.empty() && error_.empty() && !sink_->write(buf_)) error_ = sink_->error();
    buf_.clear();
    return error_.empty();
  }
  bool flush_all() {
    spill();
    if (error_.empty() && !sink_->flush()) error_ = sink_->error();
    return error_.empty();
  }
  std::unique_ptr<OutputSink> sink_;
  std::string error_;
};

class JsonlWriter final : public BufferedWriter {
 public:
  using BufferedWriter::BufferedWriter;
  void write(std::string_view stream, const Schema& schema, const Row& row) override {
    append_json_row(buf_, stream, schema, row);
    buf_ += '\n';
    done_event();
  }
};

void append_csv_field(std::string& out, std::string_view s) {
  if (s.find_first_of(",\"\r\n") == std::string_view::npos) {
    out.append(s);
    return;
  }
  out += '"';
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

class CsvWriter final : public BufferedWriter {
 public:
  using BufferedWriter::BufferedWriter;
  void write(std::string_view stream, const Schema& schema, const Row& row) override {
    if (!has_header_ || stream != header_stream_) {
      has_header_ = true;
      header_stream_ = stream;
      buf_ += "stream,t0,t1";
      for (const auto& a : schema.attrs) {
        buf_ += ',';
        append_csv_field(buf_, a.name);
      }
      buf_ += '\n';
    }
    append_csv_field(buf_, stream);
    buf_ += ',';
    append_int(buf_, row.t0);
    buf_ += ',';
    append_int(buf_, row.t1);
    for (size_t i = 0; i < schema.size(); ++i) {
      buf_ += ',';
      const Slot v = row.values[i];
      switch (schema.attrs[i].type) {
        case Type::Int:
          append_int(buf_, v.i);
          break;
        case Type::Float:
          append_double(buf_, v.f);
          break;
        case Type::String:
          append_csv_field(buf_, interned(v.s));
          break;
      }
    }
    buf_ += '\n';
    done_event();
  }

 private:
  bool has_header_ = false;
  std::string header_stream_;
};

// A value of the Cayuga line formats: quoted '...' only when the reader would otherwise split
// or trim it.
void append_cayuga_field(std::string& out, std::string_view s) {
  bool quote = s.find_first_of(",'\r\n") != std::string_view::npos ||
               (!s.empty() &&
                (s.front() == ' ' || s.front() == '\t' || s.back() == ' ' || s.back() == '\t'));
  if (!quote) {
    out.append(s);
    return;
  }
  out += '\'';
  for (char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  out += '\'';
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
void append_stream_and_times(std::string& out, std::string_view stream, const Row& row) {
  append_cayuga_field(out, stream);
  out += ',';
  append_int(out, row.t0);
  out += ',';
  append_int(out, row.t1);
}

class CayugaWriter final : public BufferedWriter {
 public:
  using BufferedWriter::BufferedWriter;
  void write(std::string_view stream, const Schema& schema, const Row& row) override {
    for (size_t i = 0; i < schema.size(); ++i) {
      append_cayuga_value(buf_, schema.attrs[i].type, row.values[i]);
      buf_ += ',';
    }
    append_stream_and_times(buf_, stream, row);
    buf_ += '\n';
    done_event();
  }
};

// The original engine's witnesses.txt: a CMessage of type WITNESS whose first field counts the
// fields that follow it plus the type, every field followed by the delimiter.
class WitnessWriter final : public BufferedWriter {
 public:
  using BufferedWriter::BufferedWriter;
  void write(std::string_view stream, const Schema& schema, const Row& row) override {
    append_int(buf_, static_cast<int64_t>(2 * schema.size() + 4));
    buf_ += ",WITNESS,";
    for (size_t i = 0; i < schema.size(); ++i) {
      append_cayuga_field(buf_, schema.attrs[i].name);
      buf_ += ',';
      append_cayuga_value(buf_, schema.attrs[i].type, row.values[i]);
      buf_ += ',';
    }
    append_stream_and_times(buf_, stream, row);
    buf_ += ",\n";
    done_event();
  }
};

}  // namespace

void append_json_row(std::string& out, std::string_view stream, const Schema& schema,
                     const Row& row) {
  out += "{\"stream\":";
  append_json_string(out, stream);
  out += ",\"t0\":";
  append_int(out, row.t0);
  out += ",\"t1\":";
  append_int(out, row.t1);
  for (size_t i = 0; i < schema.size(); ++i) {
    out += ',';
    append_json_string(out, schema.attrs[i].name);
    out += ':';
    const Slot v = row.values[i];
    switch (schema.attrs[i].type) {
      case Type::Int:
        append_int(out, v.i);
        break;
      case Type::Float:
        if (std::isfinite(v.f))
          append_double(out, v.f);
        else
          out += "null";
        break;
      case Type::String:
        append_json_string(out, interned(v.s));
        break;
    }
  }
  out += '}';
}

void append_double(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "nan";
  } else if (std::isinf(v)) {
    out += v > 0 ? "inf" : "-inf";
  } else {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
  }
}

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    size_t j = i;
    while (j < n) {
      unsigned char c = static_cast<unsigned char>(s[j]);
      if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) break;
      ++j;
    }
    out.append(s.data() + i, j - i);
    i = j;
    if (i >= n) break;
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      if (size_t len = utf8_len(s, i)) {
        out.append(s.data() + i, len);
        i += len;
      } else {
        out += "\\ufffd";
        ++i;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 15];
    }
    ++i;
  }
  out += '"';
}

std::unique_ptr<EventWriter> make_writer(OutputFormat format, std::unique_ptr<OutputSink> sink) {
  switch (format) {
    case OutputFormat::Jsonl:
      return std::make_unique<JsonlWriter>(std::move(sink));
    case OutputFormat::Csv:
      return std::make_unique<CsvWriter>(std::move(sink));
    case OutputFormat::Cayuga:
      return std::make_unique<CayugaWriter>(std::move(sink));
    case OutputFormat::Witness:
      return std::make_unique<WitnessWriter>(std::move(sink));
  }
  return nullptr;
}

}  // namespace cayuga
