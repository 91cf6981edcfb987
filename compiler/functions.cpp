// The built-in string functions of CEL.md §3 (CONTAINS, SIMILARITY, LENGTH, LOWER, UPPER).
//
// They work on interned ids so the interpreter and the JIT can call them with plain integers.
// Everything is byte-oriented: no locale, no UTF-8 decoding, so the result never depends on the
// host. The numeric built-ins (ABS, MIN, MAX) are inlined in the interpreter (expr.cpp).
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "compiler/expr.h"

namespace cayuga {

namespace {

// The set of byte 3-grams of `s` (length >= 3), sorted and deduplicated, each packed into 24 bits.
void trigrams(std::string_view s, std::vector<uint32_t>& out) {
  out.clear();
  out.reserve(s.size() - 2);
  for (size_t i = 0; i + 3 <= s.size(); ++i) {
    out.push_back(uint32_t(uint8_t(s[i])) << 16 | uint32_t(uint8_t(s[i + 1])) << 8 |
                  uint32_t(uint8_t(s[i + 2])));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
}

template <char From, char To>
uint64_t map_ascii(uint64_t id) {
  std::string_view s = interned(id);
  auto is_from = [](char c) { return c >= From && c <= char(From + 25); };
  size_t first = 0;
  while (first < s.size() && !is_from(s[first])) ++first;
  if (first == s.size()) return id;  // nothing to change: same string, same id
  thread_local std::string buf;      // reused: no allocation once warm
  buf.assign(s);
  for (size_t i = first; i < buf.size(); ++i)
    if (is_from(buf[i])) buf[i] = char(buf[i] - From + To);
  return intern(buf);
}

}  // namespace

int64_t fn_contains(uint64_t s, uint64_t pattern) {
  if (pattern == 0 || s == pattern) return 1;  // id 0 is "": every string contains it
  return interned(s).find(interned(pattern)) != std::string_view::npos ? 1 : 0;
}

double fn_similarity(uint64_t a, uint64_t b) {
  std::string_view sa = interned(a), sb = interned(b);
  if (sa.empty() || sb.empty()) return 0.0;
  // A string shorter than 3 bytes is its own single gram; it can only meet an identical short
  // string, since every other gram is 3 bytes long.
  if (sa.size() < 3 || sb.size() < 3) return sa == sb ? 1.0 : 0.0;
  thread_local std::vector<uint32_t> ga, gb;
  trigrams(sa, ga);
  trigrams(sb, gb);
  size_t common = 0;
  for (size_t i = 0, j = 0; i < ga.size() && j < gb.size();) {
    if (ga[i] < gb[j]) {
      ++i;
    } else if (gb[j] < ga[i]) {
      ++j;
    } else {
      ++common, ++i, ++j;
    }
  }
  return double(common) / double(std::min(ga.size(), gb.size()));
}

int64_t fn_length(uint64_t s) {
  return int64_t(interned(s).size());
}

uint64_t fn_lower(uint64_t s) {
  return map_ascii<'A', 'a'>(s);
}
uint64_t fn_upper(uint64_t s) {
  return map_ascii<'a', 'A'>(s);
}

}  // namespace cayuga
