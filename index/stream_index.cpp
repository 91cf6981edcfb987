#include "index/stream_index.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace cayuga::index {

using nfa::Atom;

bool equality_key(Slot v, Type type, uint64_t& key) {
  if (type == Type::Float) {
    if (std::isnan(v.f)) return false;
    double d = v.f == 0 ? 0.0 : v.f;
    Slot s;
    s.f = d;
    key = s.s;
    return true;
  }
  key = v.s;
  return true;
}

namespace {

// The event value as the atom compares it.
Slot as_cmp(Slot v, Type attr_type, Type cmp) {
  if (cmp == Type::Float && attr_type == Type::Int) return float_slot(static_cast<double>(v.i));
  return v;
}

template <typename T>
bool compare(T x, Atom::Op op, T c) {
  switch (op) {
    case Atom::Op::Eq:
      return x == c;
    case Atom::Op::Lt:
      return x < c;
    case Atom::Op::Le:
      return x <= c;
    case Atom::Op::Gt:
      return x > c;
    case Atom::Op::Ge:
      return x >= c;
  }
  return false;
}

bool is_string_range(const Atom& a) {
  return a.cmp == Type::String && a.op != Atom::Op::Eq;
}

// A constant that no value compares with: the atom can never hold.
bool never_holds(const Atom& a) {
  return a.cmp == Type::Float && std::isnan(a.value.f);
}

int rank(const Atom& a) {
  if (a.op == Atom::Op::Eq) return 0;
  if (is_string_range(a)) return 2;  // string ranges are not indexed
  return 1;
}

}  // namespace

bool holds(const Atom& a, const Slot* event) {
  const Slot v = as_cmp(event[a.attr], a.attr_type, a.cmp);
  switch (a.cmp) {
    case Type::Int:
      return compare(v.i, a.op, a.value.i);
    case Type::Float:
      return compare(v.f, a.op, a.value.f);  // false for NaN
    case Type::String:
      return a.op != Atom::Op::Eq || v.s == a.value.s;  // interned ids
  }
  return true;
}

namespace {

// The values x of a type running from `least` to `most` with `x op v`, as [lo, hi]; `prev` and
// `next` give v's neighbours (never asked of `least` and `most`). Nothing: [most, least].
template <typename T, typename Prev, typename Next>
std::pair<T, T> interval(Atom::Op op, T v, T least, T most, Prev prev, Next next) {
  switch (op) {
    case Atom::Op::Eq:
      return {v, v};  // (for doubles, -0.0 and 0.0 are both in [0.0, 0.0])
    case Atom::Op::Lt:
      return v == least ? std::pair{most, least} : std::pair{least, prev(v)};
    case Atom::Op::Le:
      return {least, v};
    case Atom::Op::Gt:
      return v == most ? std::pair{most, least} : std::pair{next(v), most};
    case Atom::Op::Ge:
      return {v, most};
  }
  return {least, most};
}

}  // namespace

namespace {

// [lo, hi], of a type whose least value is `least` (see interval()), as a one-sided test (a
// StreamIndex::Test) of the kind whose `>=` is `ge`, and its bound.
template <typename T>
uint8_t one_sided(T lo, T hi, T least, uint8_t ge, T& bound) {
  if (lo > hi) return 1;  // Test::Never
  bound = lo == least ? hi : lo;
  if (lo == hi) return ge + 2;       // ==
  return lo == least ? ge + 1 : ge;  // <= hi, or >= lo
}

}  // namespace

bool StreamIndex::Posting::check(const Atom& a) {
  if (a.attr > nfa::kMaxAtomAttr) return false;  // (atoms_of makes none)
  attr = static_cast<uint16_t>(a.attr);
  if (a.cmp == Type::Float) {  // (never NaN: add() registers nothing for such a guard)
    constexpr double kInf = std::numeric_limits<double>::infinity();
    const auto [lo, hi] = interval(
        a.op, a.value.f, -kInf, kInf, [](double v) { return std::nextafter(v, -kInf); },
        [](double v) { return std::nextafter(v, kInf); });
    double b = 0;
    const Test ge = a.attr_type == Type::Int ? Test::IntAsFloatGe : Test::FloatGe;
    test = static_cast<Test>(one_sided(lo, hi, -kInf, static_cast<uint8_t>(ge), b));
    bound = float_slot(b);
  } else {  // INT, and a STRING `=` on interned ids (string ranges are never checked here)
    const auto [lo, hi] = interval(
        a.op, a.value.i, INT64_MIN, INT64_MAX, [](int64_t v) { return v - 1; },
        [](int64_t v) { return v + 1; });
    int64_t b = 0;
    test = static_cast<Test>(one_sided(lo, hi, INT64_MIN, static_cast<uint8_t>(Test::IntGe), b));
    bound = int_slot(b);
  }
  return true;
}

bool StreamIndex::add(uint32_t target, const std::vector<Atom>& guard) {
  if (std::any_of(guard.begin(), guard.end(), never_holds)) return true;
  const Atom* best = nullptr;
  for (const Atom& a : guard)
    if (rank(a) < 2 && (!best || rank(a) < rank(*best))) best = &a;
  return place(target, best, guard);
}

void StreamIndex::add_rider(uint32_t target, const Atom& key, const std::vector<Atom>& rider) {
  place(target | kRides, &key, rider);
}

bool StreamIndex::checks_all(const std::vector<Atom>& guard) {
  return std::all_of(guard.begin(), guard.end(), [](const Atom& a) {
    return !is_string_range(a) && a.attr <= nfa::kMaxAtomAttr && !never_holds(a);
  });
}

bool StreamIndex::place(uint32_t target, const Atom* best, const std::vector<Atom>& guard) {
  ++targets_;
  const uint32_t id = target & ~kRides;  // (more_at_ is by target)
  Posting p;
  p.target = target;
  bool whole = true;
  for (const Atom& a : guard) {
    if (&a == best) continue;
    Posting c;
    if (is_string_range(a) || !c.check(a)) {
      whole = false;
      continue;
    }
    if (p.test == Test::None) {
      p.test = c.test;
      p.attr = c.attr;
      p.bound = c.bound;
      continue;
    }
    if (!p.more) {
      p.more = true;
      more_at_[id] = static_cast<uint32_t>(more_.size());
      more_.push_back(Posting{});  // the count, in bound.i
    }
    more_.push_back(c);
    ++more_[more_at_[id]].bound.i;
  }
  if (!best) {
    always_.push_back(p);
    return whole;
  }
  if (best->op == Atom::Op::Eq) {
    auto it = std::find_if(eq_.begin(), eq_.end(), [&](const EqTable& t) {
      return t.attr == best->attr && t.attr_type == best->attr_type && t.cmp == best->cmp;
    });
    if (it == eq_.end()) {
      eq_.push_back(EqTable{.attr = best->attr, .attr_type = best->attr_type, .cmp = best->cmp});
      it = eq_.end() - 1;
    }
    uint64_t key;
    equality_key(best->value, best->cmp, key);
    it->staged[key].push_back(p);
    return whole;
  }
  auto it = std::find_if(ranges_.begin(), ranges_.end(), [&](const RangeTable& t) {
    return t.attr == best->attr && t.attr_type == best->attr_type && t.cmp == best->cmp &&
           t.op == best->op;
  });
  if (it == ranges_.end()) {
    ranges_.push_back(RangeTable{best->attr, best->attr_type, best->cmp, best->op, {}, {}});
    it = ranges_.end() - 1;
  }
  if (best->cmp == Type::Float)
    it->by_double.emplace_back(best->value.f, p);
  else
    it->by_int.emplace_back(best->value.i, p);
  return whole;
}

namespace {

size_t slot_of(uint64_t key, size_t mask) {
  return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

}  // namespace

[[gnu::always_inline]] inline bool StreamIndex::EqTable::key_of(const Slot* event,
                                                                uint64_t& key) const {
  return equality_key(as_cmp(event[attr], attr_type, cmp), cmp, key);
}

[[gnu::always_inline]] inline std::pair<uint32_t, uint32_t> StreamIndex::EqTable::find(
    const Slot* event) const {
  uint64_t key;
  if (!key_of(event, key)) return {0, 0};
  if (!starts.empty()) {
    const uint64_t k = key - first;  // (a key below `first` wraps past the span)
    if (k >= starts.size() - 1) return {0, 0};
    return {starts[k], starts[k + 1]};
  }
  const size_t mask = table.size() - 1;
  for (size_t i = slot_of(key, mask);; i = (i + 1) & mask) {
    const Entry& e = table[i];
    if (e.end == 0) return {0, 0};
    if (e.key == key) return {e.begin, e.end};
  }
}

const void* StreamIndex::EqTable::lookup_of(uint64_t key) const {
  if (starts.empty()) return &table[slot_of(key, table.size() - 1)];
  const uint64_t k = key - first;
  return starts.data() + std::min<uint64_t>(k, starts.size() - 1);
}

void StreamIndex::EqTable::prepare() {
  uint64_t lo = UINT64_MAX, hi = 0;
  for (const auto& [key, list] : staged) {
    lo = std::min(lo, key);
    hi = std::max(hi, key);
  }
  // An array when it takes at most 32 bytes per key (the hash table takes 32 to 64).
  const size_t keys = staged.size();
  if (keys > 0 && hi - lo < 8 * keys + 64) {
    first = lo;
    std::vector<const std::vector<Posting>*> by_key(hi - lo + 1, nullptr);
    for (const auto& [key, list] : staged) by_key[key - lo] = &list;
    starts.reserve(by_key.size() + 1);
    for (const auto* list : by_key) {
      starts.push_back(static_cast<uint32_t>(postings.size()));
      if (list) postings.insert(postings.end(), list->begin(), list->end());
    }
    starts.push_back(static_cast<uint32_t>(postings.size()));
  } else {
    size_t size = 8;
    while (size < 2 * keys) size *= 2;  // at most half full
    table.assign(size, Entry{0, 0, 0});
    for (auto& [key, list] : staged) {
      size_t i = slot_of(key, size - 1);
      while (table[i].end != 0) i = (i + 1) & (size - 1);
      table[i].key = key;
      table[i].begin = static_cast<uint32_t>(postings.size());
      postings.insert(postings.end(), list.begin(), list.end());
      table[i].end = static_cast<uint32_t>(postings.size());
    }
  }
  staged = {};
}

void StreamIndex::prepare() {
  // By constant, ties in registration order (so candidates keep a stable order).
  auto by_constant = [](const auto& a, const auto& b) { return a.first < b.first; };
  for (auto& t : ranges_) {
    std::stable_sort(t.by_double.begin(), t.by_double.end(), by_constant);
    std::stable_sort(t.by_int.begin(), t.by_int.end(), by_constant);
  }
  for (auto& t : eq_) t.prepare();
}

size_t StreamIndex::array_tables() const {
  return std::count_if(eq_.begin(), eq_.end(), [](const EqTable& t) { return !t.starts.empty(); });
}

std::vector<std::pair<uint32_t, uint32_t>> StreamIndex::renumber() {
  std::vector<Posting*> seq;  // in the order match() meets them
  for (auto& p : always_) seq.push_back(&p);
  for (auto& t : eq_)
    for (auto& p : t.postings) seq.push_back(&p);
  for (auto& t : ranges_) {
    for (auto& [c, p] : t.by_double) seq.push_back(&p);
    for (auto& [c, p] : t.by_int) seq.push_back(&p);
  }
  std::vector<uint32_t> numbers;
  for (const Posting* p : seq) numbers.push_back(p->target & ~kRides);
  std::sort(numbers.begin(), numbers.end());
  std::vector<std::pair<uint32_t, uint32_t>> moves;
  std::unordered_map<uint32_t, uint32_t> more_at;
  for (size_t k = 0; k < seq.size(); ++k) {
    const uint32_t old = seq[k]->target & ~kRides;
    moves.emplace_back(old, numbers[k]);
    if (seq[k]->more) more_at[numbers[k]] = more_at_.at(old);
    seq[k]->target = numbers[k] | (seq[k]->target & kRides);
  }
  more_at_ = std::move(more_at);
  return moves;
}

[[gnu::always_inline]] inline bool StreamIndex::holds_all(const Posting& p,
                                                          const Slot* event) const {
  bool ok = p.holds(event);
  if (p.more) {
    const Posting* more = more_.data() + more_at_.at(p.target & ~kRides);
    for (int64_t i = 1; i <= more[0].bound.i; ++i) ok &= more[i].holds(event);
  }
  return ok;
}

// Every target is written, and kept by the count alone: whether a posting holds changes from
// one posting to the next, which no branch predictor learns. A rider is always kept, with
// kRides cleared when its atoms do not hold.
template <typename It, typename PostingOf>
[[gnu::always_inline]] inline void StreamIndex::take(It first, It last, PostingOf posting,
                                                     const Slot* event,
                                                     std::vector<uint32_t>& out) const {
  size_t kept = out.size();
  for (It it = first; it != last; ++it) {
    const Posting& p = posting(*it);
    const bool holds = holds_all(p, event);
    const uint32_t rides = p.target & kRides;
    out.push_back(p.target);  // (out.size() > kept from here on)
    out[kept] = p.target & ~(rides & (uint32_t{holds} - 1));
    kept += holds | (rides != 0);
  }
  out.erase(out.begin() + static_cast<ptrdiff_t>(kept), out.end());
}

// Appends the targets of a sorted (constant, posting) table that `value op constant` selects.
template <typename T>
void StreamIndex::select_range(const std::vector<std::pair<T, Posting>>& table, Atom::Op op, T v,
                               const Slot* event, std::vector<uint32_t>& out) const {
  auto lower = std::lower_bound(table.begin(), table.end(), v,
                                [](const auto& p, T x) { return p.first < x; });
  auto upper = std::upper_bound(table.begin(), table.end(), v,
                                [](T x, const auto& p) { return x < p.first; });
  auto run = [&](auto from, auto to) {
    take(
        from, to, [](const auto& entry) -> const Posting& { return entry.second; }, event, out);
  };
  switch (op) {
    case Atom::Op::Gt:
      run(table.begin(), lower);
      break;  // c < v
    case Atom::Op::Ge:
      run(table.begin(), upper);
      break;  // c <= v
    case Atom::Op::Lt:
      run(upper, table.end());
      break;  // c > v
    case Atom::Op::Le:
      run(lower, table.end());
      break;  // c >= v
    case Atom::Op::Eq:
      run(lower, upper);
      break;
  }
}

void StreamIndex::prefetch_entries(const Slot* event) const {
  for (const auto& t : eq_) {
    uint64_t key;
    if (t.key_of(event, key)) __builtin_prefetch(t.lookup_of(key), 0, 2);
  }
  // Prefetches are no side effect to GCC, which would otherwise drop calls to this function.
  asm volatile("" ::: "memory");
}

void StreamIndex::prefetch_postings(const Slot* event) const {
  constexpr uint32_t kPerLine = 64 / sizeof(Posting);
  for (const auto& t : eq_) {
    const auto [begin, end] = t.find(event);
    if (begin == end) continue;
    for (uint32_t i = begin; i < end; i += kPerLine) __builtin_prefetch(&t.postings[i], 0, 2);
    __builtin_prefetch(&t.postings[end - 1], 0, 2);
  }
  asm volatile("" ::: "memory");
}

void StreamIndex::match(const Slot* event, std::vector<uint32_t>& out) const {
  const auto self = [](const Posting& p) -> const Posting& { return p; };
  take(always_.begin(), always_.end(), self, event, out);
  for (const auto& t : eq_) {
    const auto [begin, end] = t.find(event);
    take(t.postings.begin() + begin, t.postings.begin() + end, self, event, out);
  }
  for (const auto& t : ranges_) {
    Slot v = as_cmp(event[t.attr], t.attr_type, t.cmp);
    if (t.cmp == Type::Float) {
      if (std::isnan(v.f)) continue;
      select_range(t.by_double, t.op, v.f, event, out);
    } else {
      select_range(t.by_int, t.op, v.i, event, out);
    }
  }
}

}  // namespace cayuga::index
