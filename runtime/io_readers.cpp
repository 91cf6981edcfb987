// The Cayuga-format, CSV and JSON Lines readers, and open_reader().
#include <cmath>
#include <limits>

#include "runtime/io_internal.h"

namespace cayuga {
namespace io_detail {
namespace {

std::string unknown_stream(std::string_view name, const StreamTable& streams) {
  return "unknown stream " + quote_for_message(name) + " (input streams: " + streams.names() + ")";
}

std::string join(const std::vector<std::string_view>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ", ";
    out.append(v[i]);
  }
  return out;
}

// The quoted field whose opening quote is data[i]: unquoted in place (a doubled quote stands for
// one) and appended to `fields`, with `i` moved past its closing quote. False when the data ends
// before the closing quote.
bool take_quoted(char* data, size_t size, size_t& i, char quote,
                 std::vector<std::string_view>& fields) {
  size_t start = ++i, w = i;
  for (;;) {
    if (i >= size) return false;
    if (data[i] == quote) {
      if (i + 1 < size && data[i + 1] == quote) {
        data[w++] = quote;
        i += 2;
        continue;
      }
      ++i;
      break;
    }
    data[w++] = data[i++];
  }
  fields.emplace_back(data + start, w - start);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Cayuga format: v1,...,vn,StreamName,t0,t1

class CayugaReader final : public LineBasedReader {
 public:
  CayugaReader(const InputSpec& spec, std::unique_ptr<ByteSource> src, const StreamTable& streams)
      : LineBasedReader(spec.path, std::move(src)), streams_(streams) {
    if (!spec.stream.empty()) fixed_ = streams_.find(spec.stream);
  }

 private:
  struct Scratch final : ParseScratch {
    std::vector<std::string_view> fields;
    const StreamDef* last = nullptr;  // the previous line's stream: lines repeat it
  };
  std::unique_ptr<ParseScratch> make_scratch() const override {
    return std::make_unique<Scratch>();
  }
  bool fields_are_views() const override { return true; }

  Parsed parse_record(char* data, size_t size, ParseScratch& scratch, InputEvent& out,
                      std::string& error) const override {
    Scratch& sc = static_cast<Scratch&>(scratch);
    std::vector<std::string_view>& fields = sc.fields;
    if (std::string err = split(data, size, fields); !err.empty())
      return failed(error, "malformed line: " + err);
    const size_t n = fields.size();
    if (n < 3) return failed(error, "malformed line: expected v1,...,vn,StreamName,t0,t1");
    std::string_view name = fields[n - 3];
    const StreamDef* def = sc.last && sc.last->name == name ? sc.last : streams_.find(name);
    if (!def) return failed(error, unknown_stream(name, streams_));
    if (fixed_ && def != fixed_)
      return failed(error, "stream " + quote_for_message(name) + " in an input fixed to stream " +
                               quote_for_message(fixed_->name));
    sc.last = def;
    const Schema& schema = *def->schema;
    if (n - 3 != schema.size())
      return failed(error, "wrong number of fields: stream " + def->name + " has " +
                               std::to_string(schema.size()) + " attributes (" + schema.names() +
                               "), the line has " + std::to_string(n - 3) + " values");
    int64_t t0, t1;
    if (std::string e = parse_int_value(fields[n - 2], t0); !e.empty())
      return failed(error, "t0: " + e);
    if (std::string e = parse_int_value(fields[n - 1], t1); !e.empty())
      return failed(error, "t1: " + e);
    if (t0 > t1)
      return failed(error,
                    "t0 (" + std::to_string(t0) + ") is after t1 (" + std::to_string(t1) + ")");
    out.row.values.resize(schema.size());
    for (size_t i = 0; i < schema.size(); ++i) {
      if (sc.defer_strings && schema.attrs[i].type == Type::String) {
        sc.strings.emplace_back(static_cast<uint32_t>(i), fields[i]);  // (a view of the batch)
        continue;
      }
      if (std::string e = convert_value(fields[i], schema.attrs[i], out.row.values[i]); !e.empty())
        return failed(error, e);
    }
    out.stream = def->id;
    out.row.t0 = t0;
    out.row.t1 = t1;
    return Parsed::Event;
  }

  // Splits at commas; blanks around a field are dropped. A field that starts with ' is quoted
  // up to the next lone ' ('' stands for one quote) and may contain commas; unquoted in place.
  static std::string split(char* data, size_t size, std::vector<std::string_view>& fields) {
    fields.clear();
    size_t i = 0;
    for (;;) {
      while (i < size && is_blank(data[i])) ++i;
      if (i < size && data[i] == '\'') {
        if (!take_quoted(data, size, i, '\'', fields))
          return "unterminated quote in field " + std::to_string(fields.size() + 1);
        while (i < size && is_blank(data[i])) ++i;
        if (i < size && data[i] != ',')
          return "text after the closing quote of field " + std::to_string(fields.size());
      } else {
        size_t start = i;
        while (i < size && data[i] != ',') ++i;
        fields.push_back(trim(std::string_view(data + start, i - start)));
      }
      if (i >= size) return {};
      ++i;  // the comma
    }
  }

  const StreamTable& streams_;
  const StreamDef* fixed_ = nullptr;
};

// ---------------------------------------------------------------------------------------------
// CSV (RFC 4180) with a header, one stream per file.

// Splits one record in place; quoted fields lose their quotes and "" becomes ".
std::string split_csv(char* data, size_t size, std::vector<std::string_view>& fields) {
  fields.clear();
  size_t i = 0;
  for (;;) {
    if (i < size && data[i] == '"') {
      if (!take_quoted(data, size, i, '"', fields))
        return "unterminated quoted field " + std::to_string(fields.size() + 1);
      if (i < size && data[i] != ',')
        return "text after the closing quote of field " + std::to_string(fields.size());
    } else {
      size_t start = i;
      for (; i < size && data[i] != ','; ++i)
        if (data[i] == '"')
          return "quote inside unquoted field " + std::to_string(fields.size() + 1) +
                 " (quote the whole field and double the quote)";
      fields.emplace_back(data + start, i - start);
    }
    if (i >= size) return {};
    ++i;
  }
}

class CsvReader final : public LineBasedReader {
 public:
  CsvReader(const InputSpec& spec, std::unique_ptr<ByteSource> src, const StreamDef& def,
            EngineUnit unit, TimeFormat tf)
      : LineBasedReader(spec.path, std::move(src)), def_(def), unit_(unit), tf_(std::move(tf)) {}

  // Reads the header and resolves the columns; an error message or "".
  std::string open(const InputSpec& spec) {
    char* data;
    size_t size;
    uint64_t ln;
    switch (cut_record(data, size, ln)) {
      case Status::End:
        return "empty file: expected a header line";
      case Status::Error:
        return error_.to_string();
      case Status::Event:
        break;
    }
    std::vector<std::string_view> fields;
    if (std::string e = split_csv(data, size, fields); !e.empty())
      return "line " + std::to_string(ln) + ": malformed CSV header: " + e;
    for (std::string_view f : fields) header_.emplace_back(trim(f));
    std::vector<std::string_view> hv(header_.begin(), header_.end());
    auto find = [&](std::string_view col) -> long {
      for (size_t i = 0; i < header_.size(); ++i)
        if (header_[i] == col) return static_cast<long>(i);
      return -1;
    };
    const Schema& schema = *def_.schema;
    for (const auto& a : schema.attrs) {
      std::string_view col = mapped_name(spec, a.name);
      long idx = find(col);
      if (idx < 0) {
        std::string what = col == a.name ? "missing column " + quote_for_message(col)
                                         : "missing column " + quote_for_message(col) +
                                               " (mapped from attribute " + a.name + ")";
        return what + " for stream " + def_.name + "; header: " + join(hv);
      }
      cols_.push_back(static_cast<size_t>(idx));
    }
    if (!spec.time_column.empty()) {
      long idx = find(spec.time_column);
      if (idx < 0)
        return "missing time column " + quote_for_message(spec.time_column) +
               "; header: " + join(hv);
      t0_ = t1_ = idx;
    } else if (long t = find("t"); t >= 0) {
      t0_ = t1_ = t;
    } else if (long a = find("t0"), b = find("t1"); a >= 0 && b >= 0) {
      t0_ = a;
      t1_ = b;
    } else {
      return "missing time column: no column 't' (or 't0' and 't1'); name it with --time-column;"
             " header: " +
             join(hv);
    }
    return {};
  }

 private:
  // The next record, joining lines while a quoted field is open (RFC 4180 allows line breaks
  // inside quotes). `ln` is the record's first line.
  Status cut_record(char*& data, size_t& size, uint64_t& ln) override {
    if (Status s = read_line(data, size); s != Status::Event) return s;
    ln = lines_.line_no();
    if (!std::memchr(data, '"', size)) return Status::Event;  // the common case: no quotes
    QuoteState st = scan(data, size, QuoteState::FieldStart);
    if (st != QuoteState::InQuotes) return Status::Event;
    record_.assign(data, size);
    while (st == QuoteState::InQuotes) {
      switch (lines_.next(data, size)) {
        case LineReader::Result::End:
          ended_ = true;
          return fail(ln, "malformed CSV: quoted field not closed before the end of the file");
        case LineReader::Result::Error:
          ended_ = true;
          return io_error();
        case LineReader::Result::Line:
          break;
      }
      record_ += '\n';
      record_.append(data, size);
      st = scan(data, size, st);
    }
    data = record_.data();
    size = record_.size();
    return Status::Event;
  }

  struct Scratch final : ParseScratch {
    std::vector<std::string_view> fields;
  };
  std::unique_ptr<ParseScratch> make_scratch() const override {
    return std::make_unique<Scratch>();
  }

  Parsed parse_record(char* data, size_t size, ParseScratch& scratch, InputEvent& out,
                      std::string& error) const override {
    std::vector<std::string_view>& fields = static_cast<Scratch&>(scratch).fields;
    if (std::string e = split_csv(data, size, fields); !e.empty())
      return failed(error, "malformed CSV: " + e);
    if (fields.size() != header_.size())
      return failed(error, "wrong number of fields: the header has " +
                               std::to_string(header_.size()) + " columns, the record has " +
                               std::to_string(fields.size()));
    if (std::string e = read_fields(
            def_, tf_, unit_, t0_, t1_, cols_, [&](size_t k) { return fields[k]; },
            [&](size_t k) { return "column " + header_[k]; }, out);
        !e.empty())
      return failed(error, e);
    return Parsed::Event;
  }

  // Where a record stands after these bytes: only a line that ends inside a quoted field
  // continues on the next line. Malformed quoting is left to split_csv to report.
  enum class QuoteState { FieldStart, Unquoted, InQuotes, AfterQuote };
  static QuoteState scan(const char* p, size_t n, QuoteState st) {
    for (size_t i = 0; i < n; ++i) {
      const char c = p[i];
      switch (st) {
        case QuoteState::FieldStart:
          st = c == '"'   ? QuoteState::InQuotes
               : c == ',' ? QuoteState::FieldStart
                          : QuoteState::Unquoted;
          break;
        case QuoteState::Unquoted:
          if (c == ',') st = QuoteState::FieldStart;
          break;
        case QuoteState::InQuotes:
          if (c == '"') st = QuoteState::AfterQuote;
          break;
        case QuoteState::AfterQuote:
          st = c == '"'   ? QuoteState::InQuotes
               : c == ',' ? QuoteState::FieldStart
                          : QuoteState::Unquoted;
          break;
      }
    }
    return st;
  }

  const StreamDef& def_;
  EngineUnit unit_;
  TimeFormat tf_;
  std::vector<std::string> header_;
  std::vector<size_t> cols_;  // attribute i ← column cols_[i]
  long t0_ = -1, t1_ = -1;
  std::string record_;  // a record of several lines, joined
};

// ---------------------------------------------------------------------------------------------
// JSON Lines: one flat object per line.

struct JsonValue {
  enum class Kind : uint8_t { String, Number, Null, Bool } kind;
  std::string_view text;  // string contents (unescaped) or the number's text
};

class JsonParser {
 public:
  // Parses `{...}` in place; members point into `data`. Returns an error message or "".
  std::string parse(char* data, size_t size,
                    std::vector<std::pair<std::string_view, JsonValue>>& members) {
    p_ = data;
    end_ = data + size;
    members.clear();
    ws();
    if (!eat('{')) return "expected a JSON object '{'";
    ws();
    if (eat('}')) return trailing();
    for (;;) {
      ws();
      if (p_ >= end_ || *p_ != '"') return "expected a string key" + at();
      std::string_view key;
      if (std::string e = string(key); !e.empty()) return e;
      ws();
      if (!eat(':')) return "expected ':' after key " + quote_for_message(key);
      ws();
      JsonValue v;
      if (p_ >= end_) return "missing value for key " + quote_for_message(key);
      char c = *p_;
      if (c == '"') {
        v.kind = JsonValue::Kind::String;
        if (std::string e = string(v.text); !e.empty()) return e;
      } else if (c == '-' || (c >= '0' && c <= '9')) {
        v.kind = JsonValue::Kind::Number;
        if (!number(v.text)) return "invalid number for key " + quote_for_message(key);
      } else if (literal("null")) {
        v.kind = JsonValue::Kind::Null;
        v.text = "null";
      } else if (literal("true")) {
        v.kind = JsonValue::Kind::Bool;
        v.text = "true";
      } else if (literal("false")) {
        v.kind = JsonValue::Kind::Bool;
        v.text = "false";
      } else if (c == '{' || c == '[') {
        return "nested objects and arrays are not supported (key " + quote_for_message(key) + ")";
      } else {
        return "invalid value for key " + quote_for_message(key);
      }
      members.emplace_back(key, v);
      ws();
      if (eat(',')) continue;
      if (eat('}')) return trailing();
      return "expected ',' or '}'" + at();
    }
  }

 private:
  std::string at() const {
    return p_ >= end_
               ? " at the end of the line"
               : " at " + quote_for_message(std::string_view(p_, std::min<size_t>(end_ - p_, 20)));
  }
  std::string trailing() {
    ws();
    return p_ == end_ ? std::string() : "text after the JSON object" + at();
  }
  void ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\r' || *p_ == '\n')) ++p_;
  }
  bool eat(char c) {
    if (p_ < end_ && *p_ == c) return ++p_, true;
    return false;
  }
  bool literal(std::string_view w) {
    if (static_cast<size_t>(end_ - p_) >= w.size() && std::string_view(p_, w.size()) == w) {
      p_ += w.size();
      return true;
    }
    return false;
  }
  bool number(std::string_view& out) {
    const char* s = p_;
    auto digits = [&] {
      const char* d = p_;
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
      return p_ > d;
    };
    eat('-');
    if (eat('0')) {
    } else if (!digits()) {
      return false;
    }
    if (eat('.') && !digits()) return false;
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (!eat('+')) eat('-');
      if (!digits()) return false;
    }
    out = std::string_view(s, p_ - s);
    return true;
  }
  int hex4(unsigned& v) {
    if (end_ - p_ < 4) return -1;
    v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = *p_++;
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= c - '0';
      else if (c >= 'a' && c <= 'f')
        v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        v |= c - 'A' + 10;
      else
        return -1;
    }
    return 0;
  }
  // At the opening quote. Unescapes in place: the output never outgrows the input.
  std::string string(std::string_view& out) {
    ++p_;
    char* w = p_;
    char* start = p_;
    for (;;) {
      if (p_ >= end_) return "unterminated string";
      unsigned char c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        break;
      }
      if (c < 0x20) return "control character in a string (escape it as \\u00XX)";
      if (c != '\\') {
        *w++ = *p_++;
        continue;
      }
      ++p_;
      if (p_ >= end_) return "unterminated string";
      char e = *p_++;
      switch (e) {
        case '"':
          *w++ = '"';
          break;
        case '\\':
          *w++ = '\\';
          break;
        case '/':
          *w++ = '/';
          break;
        case 'b':
          *w++ = '\b';
          break;
        case 'f':
          *w++ = '\f';
          break;
        case 'n':
          *w++ = '\n';
          break;
        case 'r':
          *w++ = '\r';
          break;
        case 't':
          *w++ = '\t';
          break;
        case 'u': {
          unsigned cp;
          if (hex4(cp) < 0) return "invalid \\u escape (expected 4 hex digits)";
          if (cp >= 0xDC00 && cp <= 0xDFFF) return "invalid \\u escape: unpaired low surrogate";
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo;
            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u')
              return "invalid \\u escape: unpaired high surrogate";
            p_ += 2;
            if (hex4(lo) < 0) return "invalid \\u escape (expected 4 hex digits)";
            if (lo < 0xDC00 || lo > 0xDFFF) return "invalid \\u escape: unpaired high surrogate";
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          if (cp < 0x80) {
            *w++ = static_cast<char>(cp);
          } else if (cp < 0x800) {
            *w++ = static_cast<char>(0xC0 | (cp >> 6));
            *w++ = static_cast<char>(0x80 | (cp & 0x3F));
          } else if (cp < 0x10000) {
            *w++ = static_cast<char>(0xE0 | (cp >> 12));
            *w++ = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            *w++ = static_cast<char>(0x80 | (cp & 0x3F));
          } else {
            *w++ = static_cast<char>(0xF0 | (cp >> 18));
            *w++ = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            *w++ = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            *w++ = static_cast<char>(0x80 | (cp & 0x3F));
          }
          break;
        }
        default:
          return "invalid escape \\" + std::string(1, e) + " in a string";
      }
    }
    out = std::string_view(start, w - start);
    return {};
  }

  char* p_ = nullptr;
  char* end_ = nullptr;
};

class JsonlReader final : public LineBasedReader {
 public:
  JsonlReader(const InputSpec& spec, std::unique_ptr<ByteSource> src, const StreamTable& streams,
              const StreamDef* fixed, EngineUnit unit, TimeFormat tf)
      : LineBasedReader(spec.path, std::move(src)),
        spec_(spec),
        streams_(streams),
        fixed_(fixed),
        unit_(unit),
        tf_(std::move(tf)) {}

 private:
  using Members = std::vector<std::pair<std::string_view, JsonValue>>;
  struct Scratch final : ParseScratch {
    JsonParser parser;
    Members members;
    const StreamDef* last = nullptr;  // the previous line's stream: lines repeat it
  };
  std::unique_ptr<ParseScratch> make_scratch() const override {
    return std::make_unique<Scratch>();
  }

  Parsed parse_record(char* data, size_t size, ParseScratch& scratch, InputEvent& out,
                      std::string& error) const override {
    Scratch& sc = static_cast<Scratch&>(scratch);
    const Members& members = sc.members;
    if (std::string e = sc.parser.parse(data, size, sc.members); !e.empty())
      return failed(error, "malformed JSON: " + e);

    const StreamDef* def = fixed_;
    const JsonValue* sv = nullptr;
    if (std::string e = find(members, "stream", sv); !e.empty()) return failed(error, e);
    if (sv) {
      if (sv->kind != JsonValue::Kind::String)
        return failed(error, "key 'stream' must be a string");
      if (fixed_ && sv->text != fixed_->name)
        return failed(error, "stream " + quote_for_message(sv->text) +
                                 " in an input fixed to stream " + quote_for_message(fixed_->name));
      if (!def) def = sc.last && sc.last->name == sv->text ? sc.last : streams_.find(sv->text);
      if (!def) return failed(error, unknown_stream(sv->text, streams_));
      sc.last = def;
    } else if (!def) {
      return failed(error, "missing key 'stream' (or fix the stream: --input Stream=file)");
    }

    int64_t t0, t1;
    if (!spec_.time_column.empty()) {
      if (std::string e = time(members, spec_.time_column, t0, true); !e.empty())
        return failed(error, e);
      t1 = t0;
    } else {
      bool has_t = false;
      if (std::string e = time(members, "t", t0, false, &has_t); !e.empty())
        return failed(error, e);
      if (has_t) {
        t1 = t0;
      } else {
        bool has_t0 = false, has_t1 = false;
        if (std::string e = time(members, "t0", t0, false, &has_t0); !e.empty())
          return failed(error, e);
        if (std::string e = time(members, "t1", t1, false, &has_t1); !e.empty())
          return failed(error, e);
        if (!has_t0 && !has_t1) return failed(error, "missing time: no key 't' (or 't0' and 't1')");
        if (!has_t0) return failed(error, "missing key 't0' (t1 is given)");
        if (!has_t1) return failed(error, "missing key 't1' (t0 is given)");
        if (t0 > t1)
          return failed(error,
                        "t0 (" + std::to_string(t0) + ") is after t1 (" + std::to_string(t1) + ")");
      }
    }

    const Schema& schema = *def->schema;
    out.row.values.resize(schema.size());
    for (size_t i = 0; i < schema.size(); ++i) {
      const Attribute& a = schema.attrs[i];
      std::string_view key = mapped_name(spec_, a.name);
      const JsonValue* v = nullptr;
      if (std::string e = find(members, key, v); !e.empty()) return failed(error, e);
      if (!v)
        return failed(error, "missing key " + quote_for_message(key) + " for attribute " + a.name +
                                 " of stream " + def->name);
      Slot& slot = out.row.values[i];
      std::string e;
      switch (a.type) {
        case Type::Int:
          if (v->kind != JsonValue::Kind::Number)
            e = "expected a JSON integer, got " + kind(*v);
          else
            e = parse_int_value(v->text, slot.i);
          break;
        case Type::Float:
          if (v->kind == JsonValue::Kind::Null)
            slot.f = std::numeric_limits<double>::quiet_NaN();
          else if (v->kind != JsonValue::Kind::Number)
            e = "expected a JSON number, got " + kind(*v);
          else
            e = parse_float_value(v->text, slot.f);
          break;
        case Type::String:
          if (v->kind != JsonValue::Kind::String)
            e = "expected a JSON string, got " + kind(*v);
          else
            slot.s = intern_cached(v->text);
          break;
      }
      if (!e.empty())
        return failed(error, "attribute " + a.name + " (" + to_string(a.type) + "): " + e);
    }
    out.stream = def->id;
    out.row.t0 = t0;
    out.row.t1 = t1;
    return Parsed::Event;
  }

  static std::string kind(const JsonValue& v) {
    switch (v.kind) {
      case JsonValue::Kind::String:
        return "a string";
      case JsonValue::Kind::Number:
        return std::string(v.text);
      case JsonValue::Kind::Null:
        return "null";
      case JsonValue::Kind::Bool:
        return std::string(v.text);
    }
    return "?";
  }
  // The member named `key` (nullptr when absent); a duplicate key is an error.
  static std::string find(const Members& members, std::string_view key, const JsonValue*& out) {
    out = nullptr;
    for (const auto& [k, v] : members) {
      if (k != key) continue;
      if (out) return "duplicate key " + quote_for_message(key);
      out = &v;
    }
    return {};
  }
  std::string time(const Members& members, std::string_view key, int64_t& t, bool required,
                   bool* present = nullptr) const {
    const JsonValue* v;
    if (std::string e = find(members, key, v); !e.empty()) return e;
    if (present) *present = v != nullptr;
    if (!v) return required ? "missing time key " + quote_for_message(key) : std::string();
    if (v->kind != JsonValue::Kind::Number && v->kind != JsonValue::Kind::String)
      return "key " + std::string(key) + ": a time must be a number or a string";
    if (std::string e = parse_time_value(v->text, tf_, unit_, t); !e.empty())
      return "key " + std::string(key) + ": " + e;
    return {};
  }

  const InputSpec spec_;  // a copy: specs are often temporaries
  const StreamTable& streams_;
  const StreamDef* fixed_;
  EngineUnit unit_;
  TimeFormat tf_;
};

}  // namespace

std::unique_ptr<SplitReader> make_cayuga_reader(const InputSpec& spec,
                                                std::unique_ptr<ByteSource> src,
                                                const StreamTable& streams, std::string* error) {
  if (!spec.stream.empty() && !streams.find(spec.stream)) {
    *error = spec.path + ": " + unknown_stream(spec.stream, streams);
    return nullptr;
  }
  return std::make_unique<CayugaReader>(spec, std::move(src), streams);
}

bool fixed_stream_input(const InputSpec& spec, const StreamTable& streams, EngineUnit unit,
                        const char* kind, const StreamDef*& def, TimeFormat& tf,
                        std::string* error) {
  if (spec.stream.empty()) {
    *error = spec.path + ": a " + kind + " input needs its stream: --input Stream=" + spec.path;
    return false;
  }
  def = streams.find(spec.stream);
  if (!def) {
    *error = spec.path + ": " + unknown_stream(spec.stream, streams);
    return false;
  }
  if (std::string e = make_time_format(spec.time_format, unit, spec.year, tf); !e.empty()) {
    *error = spec.path + ": " + e;
    return false;
  }
  return true;
}

std::unique_ptr<SplitReader> make_csv_reader(const InputSpec& spec, std::unique_ptr<ByteSource> src,
                                             const StreamTable& streams, EngineUnit unit,
                                             std::string* error) {
  const StreamDef* def = nullptr;
  TimeFormat tf;
  if (!fixed_stream_input(spec, streams, unit, "CSV", def, tf, error)) return nullptr;
  auto r = std::make_unique<CsvReader>(spec, std::move(src), *def, unit, std::move(tf));
  if (std::string e = r->open(spec); !e.empty()) {
    *error = e.rfind(spec.path + ":", 0) == 0 ? e : spec.path + ": " + e;
    return nullptr;
  }
  return r;
}

std::unique_ptr<SplitReader> make_jsonl_reader(const InputSpec& spec,
                                               std::unique_ptr<ByteSource> src,
                                               const StreamTable& streams, EngineUnit unit,
                                               std::string* error) {
  const StreamDef* def = nullptr;
  if (!spec.stream.empty() && !(def = streams.find(spec.stream))) {
    *error = spec.path + ": " + unknown_stream(spec.stream, streams);
    return nullptr;
  }
  TimeFormat tf;
  if (std::string e = make_time_format(spec.time_format, unit, spec.year, tf); !e.empty()) {
    *error = spec.path + ": " + e;
    return nullptr;
  }
  return std::make_unique<JsonlReader>(spec, std::move(src), streams, def, unit, std::move(tf));
}

}  // namespace io_detail

std::unique_ptr<SplitReader> open_reader(const InputSpec& spec, std::unique_ptr<ByteSource> src,
                                         const StreamTable& streams, EngineUnit unit,
                                         std::string* error) {
  std::string scratch;
  if (!error) error = &scratch;
  switch (spec.format) {
    case InputFormat::Cayuga:
      return io_detail::make_cayuga_reader(spec, std::move(src), streams, error);
    case InputFormat::Csv:
      return io_detail::make_csv_reader(spec, std::move(src), streams, unit, error);
    case InputFormat::Jsonl:
      return io_detail::make_jsonl_reader(spec, std::move(src), streams, unit, error);
    case InputFormat::Regex:
      return io_detail::make_regex_reader(spec, std::move(src), streams, unit, error);
  }
  *error = spec.path + ": unknown input format";
  return nullptr;
}

std::unique_ptr<SplitReader> open_reader(const InputSpec& spec, const StreamTable& streams,
                                         EngineUnit unit, std::string* error) {
  std::string why;
  auto src = open_byte_source(spec.path, &why);
  if (!src) {
    if (error) *error = spec.path + ": " + why;
    return nullptr;
  }
  return open_reader(spec, std::move(src), streams, unit, error);
}

}  // namespace cayuga
