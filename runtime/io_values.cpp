// Stream table, value conversion and time parsing shared by all readers.
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <utility>

#include "runtime/io_internal.h"

namespace cayuga {

// ---------------------------------------------------------------------------------------------
// StreamTable, InputError

bool StreamTable::add(StreamDef def) {
  if (by_name_.count(def.name) || by_id_.count(def.id)) return false;
  by_name_.emplace(def.name, defs_.size());
  by_id_.emplace(def.id, defs_.size());
  defs_.push_back(std::move(def));
  return true;
}

const StreamDef* StreamTable::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &defs_[it->second];
}

const StreamDef* StreamTable::find_id(uint32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &defs_[it->second];
}

std::string StreamTable::names() const {
  std::string out;
  for (size_t i = 0; i < defs_.size(); ++i) {
    if (i == 10) return out + ", ...";
    if (i) out += ", ";
    out += defs_[i].name;
  }
  return out.empty() ? "none" : out;
}

std::string InputError::to_string() const {
  if (line == 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ": " + message;
}

// ---------------------------------------------------------------------------------------------
// Values

namespace io_detail {

std::string quote_for_message(std::string_view s) {
  std::string out = "'";
  if (s.size() > 60) {
    out.append(s.substr(0, 60));
    out += "...";
  } else {
    out.append(s);
  }
  return out + "'";
}

namespace {

// intern_cached()'s cache: two-way set-associative, a set per cache line. A way holds an id
// and, when it is short (symbols, hosts, user names), its text, so that a hit reads that one
// line; a longer text is checked against the interner's copy (an id's text never changes, and
// reading it takes no lock). Id 0 (the id of "", never cached) marks an empty way.
struct InternWay {
  static constexpr uint8_t kLong = UINT8_MAX;  // `len` of a text not kept here
  uint64_t id = 0;
  uint8_t len = 0;
  char text[23];
  bool holds(std::string_view t) const {
    if (id == 0) return false;
    if (len == kLong) return interned(id) == t;
    return len == t.size() && std::memcmp(text, t.data(), len) == 0;
  }
};
static_assert(sizeof(InternWay) == 32);
struct alignas(64) InternSet {
  InternWay way[2];
};

constexpr size_t kInternSets = size_t{1} << 15;  // tens of thousands of distinct values per input

// This thread's cache set of `s`.
InternSet& intern_set(std::string_view s) {
  thread_local std::unique_ptr<InternSet[]> cache(new InternSet[kInternSets]);
  return cache[std::hash<std::string_view>{}(s) & (kInternSets - 1)];
}

// intern_cached() of `s` (not empty), whose set is `in`.
uint64_t intern_in(InternSet& in, std::string_view s) {
  InternWay* set = in.way;
  if (set[0].holds(s)) return set[0].id;
  if (set[1].holds(s)) {
    std::swap(set[0], set[1]);  // most recent first
    return set[0].id;
  }
  set[1] = set[0];
  set[0].id = intern(s);
  set[0].len = s.size() <= sizeof(set[0].text) ? static_cast<uint8_t>(s.size()) : InternWay::kLong;
  if (set[0].len != InternWay::kLong) std::memcpy(set[0].text, s.data(), s.size());
  return set[0].id;
}

}  // namespace

uint64_t intern_cached(std::string_view s) {
  if (s.empty()) return 0;
  return intern_in(intern_set(s), s);
}

void intern_all(std::span<const DeferredString> strings, Slot* values) {
  constexpr size_t kAhead = 8;  // a power of two
  InternSet* ahead[kAhead];  // the sets of strings k .. k + kAhead - 1, asked for
  const auto ask = [&](size_t k) {
    InternSet* set = &intern_set(strings[k].text);
    __builtin_prefetch(set);
    ahead[k % kAhead] = set;
  };
  for (size_t k = 0; k < kAhead && k < strings.size(); ++k) ask(k);
  for (size_t k = 0; k < strings.size(); ++k) {
    InternSet* set = ahead[k % kAhead];
    if (k + kAhead < strings.size()) ask(k + kAhead);
    const std::string_view s = strings[k].text;
    values[strings[k].value].s = s.empty() ? 0 : intern_in(*set, s);
  }
}

std::string convert_value(std::string_view text, const Attribute& attr, Slot& out) {
  std::string err;
  switch (attr.type) {
    case Type::Int:
      err = parse_int_value(trim(text), out.i);
      break;
    case Type::Float:
      err = parse_float_value(trim(text), out.f);
      break;
    case Type::String:
      out.s = intern_cached(text);
      return {};
  }
  if (err.empty()) return err;
  return "attribute " + attr.name + " (" + to_string(attr.type) + "): " + err;
}

std::string_view mapped_name(const InputSpec& spec, std::string_view attr) {
  for (const auto& [a, src] : spec.map)
    if (a == attr) return src;
  return attr;
}

}  // namespace io_detail

using io_detail::quote_for_message;

std::string parse_int_value(std::string_view t, int64_t& out) {
  if (t.empty()) return "empty value is not an integer";
  std::string_view digits = t;
  if (digits.front() == '+') digits.remove_prefix(1);
  if (digits.empty() || digits.front() == '+' || (digits.front() == '-' && t.front() == '+'))
    return quote_for_message(t) + " is not an integer";
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
  if (ec == std::errc::result_out_of_range)
    return quote_for_message(t) + " is out of the INT range (64-bit)";
  if (ec != std::errc() || p != digits.data() + digits.size())
    return quote_for_message(t) + " is not an integer";
  return {};
}

std::string parse_float_value(std::string_view t, double& out) {
  if (t.empty()) return "empty value is not a number";
  std::string_view digits = t;
  if (digits.front() == '+') digits.remove_prefix(1);
  if (digits.empty() || digits.front() == '+' || (digits.front() == '-' && t.front() == '+'))
    return quote_for_message(t) + " is not a number";
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out,
                                 std::chars_format::general);
  if (p != digits.data() + digits.size() ||
      (ec != std::errc() && ec != std::errc::result_out_of_range))
    return quote_for_message(t) + " is not a number";
  if (ec == std::errc::result_out_of_range) {
    // Underflow rounds to zero or a subnormal like strtod does; overflow is an error rather than
    // a silent infinity (write "inf" to mean infinity).
    std::string copy(digits);
    double v = std::strtod(copy.c_str(), nullptr);
    if (std::isinf(v)) return quote_for_message(t) + " is out of the FLOAT range";
    out = v;
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// Time

namespace {

constexpr const char* kMonths[] = {"january",   "february", "march",    "april",
                                   "may",       "june",     "july",     "august",
                                   "september", "october",  "november", "december"};

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

__int128 pow10(int k) {
  __int128 r = 1;
  while (k-- > 0) r *= 10;
  return r;
}

// floor(n / d) for d > 0.
__int128 floor_div(__int128 n, __int128 d) {
  __int128 q = n / d;
  if (n % d != 0 && n < 0) --q;
  return q;
}

bool fits_int64(__int128 v) {
  return v >= static_cast<__int128>(INT64_MIN) && v <= static_cast<__int128>(INT64_MAX);
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

std::string parse_number_time(std::string_view text, EngineUnit from, EngineUnit engine,
                              int64_t& out) {
  std::string_view t = io_detail::trim(text);
  auto bad = [&] {
    return "time " + quote_for_message(text) + " is not a number of " +
           (from == EngineUnit::Us   ? "us"
            : from == EngineUnit::Ms ? "ms"
                                     : "s");
  };
  size_t i = 0;
  bool neg = false;
  if (i < t.size() && (t[i] == '-' || t[i] == '+')) neg = t[i++] == '-';
  __int128 mag = 0;
  size_t int_digits = 0;
  for (; i < t.size() && is_digit(t[i]); ++i, ++int_digits) {
    mag = mag * 10 + (t[i] - '0');
    if (mag > static_cast<__int128>(INT64_MAX))
      return "time " + quote_for_message(text) + " is out of range";
  }
  if (int_digits == 0) return bad();
  int frac_digits = 0;
  if (i < t.size() && t[i] == '.') {
    ++i;
    size_t start = i;
    for (; i < t.size() && is_digit(t[i]); ++i) {
      if (frac_digits < 9) {  // below a nanosecond: ignored
        mag = mag * 10 + (t[i] - '0');
        ++frac_digits;
      }
    }
    if (i == start) return bad();
  }
  if (i != t.size()) return bad();
  __int128 n = mag * units_per_second(engine);
  if (neg) n = -n;
  __int128 q = floor_div(n, pow10(frac_digits) * units_per_second(from));
  if (!fits_int64(q)) return "time " + quote_for_message(text) + " is out of range";
  out = static_cast<int64_t>(q);
  return {};
}

}  // namespace

std::string make_time_format(std::string_view spec, EngineUnit engine, int year, TimeFormat& out) {
  out = TimeFormat{};
  out.year = year;
  if (spec.empty()) {
    out.unit = engine;
    return {};
  }
  if (auto u = parse_engine_unit(spec)) {
    out.unit = *u;
    return {};
  }
  if (spec.find('%') == std::string_view::npos)
    return "time format " + quote_for_message(spec) +
           " is neither a unit (us, ms, s) nor a datetime pattern (e.g. %Y-%m-%d %H:%M:%S)";
  out.kind = TimeFormat::Kind::Datetime;
  for (size_t i = 0; i < spec.size(); ++i) {
    if (spec[i] != '%') {
      out.pattern += spec[i];
      continue;
    }
    if (i + 1 == spec.size()) return "time format " + quote_for_message(spec) + " ends with '%'";
    char c = spec[++i];
    switch (c) {
      case 'Y':
      case 'm':
      case 'd':
      case 'e':
      case 'H':
      case 'M':
      case 'S':
      case 'b':
      case 'B':
      case 'h':
      case 'f':
      case '%':
        out.pattern += '%';
        out.pattern += c;
        break;
      case 'T':
        out.pattern += "%H:%M:%S";
        break;
      default:
        return "time format " + quote_for_message(spec) + ": unsupported conversion %" +
               std::string(1, c) + " (supported: %Y %m %d %e %H %M %S %f %b %B %h %T %%)";
    }
  }
  return {};
}

std::string parse_time_value(std::string_view text, const TimeFormat& fmt, EngineUnit engine,
                             int64_t& out) {
  if (fmt.kind == TimeFormat::Kind::Number) return parse_number_time(text, fmt.unit, engine, out);

  std::string_view s = io_detail::trim(text);
  const std::string& p = fmt.pattern;
  int year = fmt.year, month = 1, day = 1, hour = 0, minute = 0, second = 0;
  int64_t frac = 0;
  int frac_digits = 0;
  size_t si = 0;
  auto mismatch = [&] {
    return "time " + quote_for_message(text) + " does not match the format " + quote_for_message(p);
  };
  auto read_int = [&](int min_digits, int max_digits, int& v) {
    int n = 0;
    v = 0;
    while (n < max_digits && si < s.size() && is_digit(s[si])) v = v * 10 + (s[si++] - '0'), ++n;
    return n >= min_digits;
  };
  auto read_fraction = [&] {
    size_t start = si;
    frac = 0;
    frac_digits = 0;
    for (; si < s.size() && is_digit(s[si]); ++si)
      if (frac_digits < 9) frac = frac * 10 + (s[si] - '0'), ++frac_digits;
    return si > start;
  };
  for (size_t pi = 0; pi < p.size(); ++pi) {
    char c = p[pi];
    if (io_detail::is_blank(c)) {
      while (si < s.size() && io_detail::is_blank(s[si])) ++si;
      continue;
    }
    if (c != '%') {
      if (si >= s.size() || s[si] != c) return mismatch();
      ++si;
      continue;
    }
    char conv = p[++pi];
    bool ok = true;
    switch (conv) {
      case 'Y':
        ok = read_int(4, 4, year);
        break;
      case 'm':
        ok = read_int(1, 2, month);
        break;
      case 'd':
        ok = read_int(1, 2, day);
        break;
      case 'e':
        while (si < s.size() && s[si] == ' ') ++si;
        ok = read_int(1, 2, day);
        break;
      case 'H':
        ok = read_int(1, 2, hour);
        break;
      case 'M':
        ok = read_int(1, 2, minute);
        break;
      case 'S':
        ok = read_int(1, 2, second);
        // An optional fraction, unless the pattern itself continues with '.' or ','.
        if (ok && si + 1 < s.size() && (s[si] == '.' || s[si] == ',') && is_digit(s[si + 1]) &&
            !(pi + 1 < p.size() && p[pi + 1] == s[si])) {
          ++si;
          read_fraction();
        }
        break;
      case 'f':
        ok = read_fraction();
        break;
      case 'b':
      case 'B':
      case 'h': {
        size_t start = si;
        while (si < s.size() && ((s[si] >= 'a' && s[si] <= 'z') || (s[si] >= 'A' && s[si] <= 'Z')))
          ++si;
        std::string_view word = s.substr(start, si - start);
        ok = false;
        for (int m = 0; m < 12 && !ok; ++m) {
          std::string_view full = kMonths[m];
          if (word.size() != 3 && word.size() != full.size()) continue;
          bool eq = true;
          for (size_t k = 0; k < word.size() && eq; ++k) eq = lower(word[k]) == full[k];
          if (eq) ok = true, month = m + 1;
        }
        break;
      }
      case '%':
        ok = si < s.size() && s[si] == '%';
        if (ok) ++si;
        break;
      default:
        ok = false;
    }
    if (!ok) return mismatch();
  }
  if (si != s.size()) return mismatch();

  using namespace std::chrono;
  auto bad_field = [&](const char* what, int v) {
    return "time " + quote_for_message(text) + ": " + what + " " + std::to_string(v) +
           " is out of range";
  };
  if (month < 1 || month > 12) return bad_field("month", month);
  year_month_day ymd{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(month)},
                     std::chrono::day{static_cast<unsigned>(day)}};
  if (day < 1 || !ymd.ok()) return bad_field("day", day);
  if (hour > 23) return bad_field("hour", hour);
  if (minute > 59) return bad_field("minute", minute);
  if (second > 59) return bad_field("second", second);
  __int128 secs = static_cast<__int128>(sys_days(ymd).time_since_epoch().count()) * 86400 +
                  hour * 3600 + minute * 60 + second;
  int64_t ups = units_per_second(engine);
  __int128 v = secs * ups + floor_div(static_cast<__int128>(frac) * ups, pow10(frac_digits));
  if (!fits_int64(v)) return "time " + quote_for_message(text) + " is out of range";
  out = static_cast<int64_t>(v);
  return {};
}

}  // namespace cayuga
