#include "index/stream_index.h"

#include <algorithm>
#include <cmath>

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

int rank(const Atom& a) {
  if (a.op == Atom::Op::Eq) return 0;
  if (a.cmp == Type::String) return 2;  // string ranges are not indexed
  return 1;
}

}  // namespace

void StreamIndex::add(uint32_t target, const std::vector<Atom>& guard) {
  for (const Atom& a : guard)
    if (a.cmp == Type::Float && std::isnan(a.value.f)) return;  // can never hold
  ++targets_;
  const Atom* best = nullptr;
  for (const Atom& a : guard)
    if (rank(a) < 2 && (!best || rank(a) < rank(*best))) best = &a;
  if (!best) {
    always_.push_back(target);
    return;
  }
  if (best->op == Atom::Op::Eq) {
    auto it = std::find_if(eq_.begin(), eq_.end(), [&](const EqTable& t) {
      return t.attr == best->attr && t.attr_type == best->attr_type && t.cmp == best->cmp;
    });
    if (it == eq_.end()) {
      eq_.push_back(EqTable{best->attr, best->attr_type, best->cmp, {}});
      it = eq_.end() - 1;
    }
    uint64_t key;
    equality_key(best->value, best->cmp, key);
    it->map[key].push_back(target);
    return;
  }
  auto it = std::find_if(ranges_.begin(), ranges_.end(), [&](const RangeTable& t) {
    return t.attr == best->attr && t.attr_type == best->attr_type && t.cmp == best->cmp &&
           t.op == best->op;
  });
  if (it == ranges_.end()) {
    ranges_.push_back(RangeTable{best->attr, best->attr_type, best->cmp, best->op, {}, {}});
    it = ranges_.end() - 1;
  }
  if (best->cmp == Type::Float) it->by_double.emplace_back(best->value.f, target);
  else it->by_int.emplace_back(best->value.i, target);
}

void StreamIndex::prepare() {
  for (auto& t : ranges_) {
    std::sort(t.by_double.begin(), t.by_double.end());
    std::sort(t.by_int.begin(), t.by_int.end());
  }
}

namespace {

// Appends the targets of a sorted (constant, target) table that `value op constant` selects.
template <typename T>
void select_range(const std::vector<std::pair<T, uint32_t>>& table, Atom::Op op, T v,
                  std::vector<uint32_t>& out) {
  auto lower = std::lower_bound(table.begin(), table.end(), v,
                                [](const auto& p, T x) { return p.first < x; });
  auto upper = std::upper_bound(table.begin(), table.end(), v,
                                [](T x, const auto& p) { return x < p.first; });
  auto take = [&](auto from, auto to) {
    for (auto i = from; i != to; ++i) out.push_back(i->second);
  };
  switch (op) {
    case Atom::Op::Gt: take(table.begin(), lower); break;  // c < v
    case Atom::Op::Ge: take(table.begin(), upper); break;  // c <= v
    case Atom::Op::Lt: take(upper, table.end()); break;    // c > v
    case Atom::Op::Le: take(lower, table.end()); break;    // c >= v
    case Atom::Op::Eq: take(lower, upper); break;
  }
}

}  // namespace

void StreamIndex::match(const Slot* event, std::vector<uint32_t>& out) const {
  out.insert(out.end(), always_.begin(), always_.end());
  for (const auto& t : eq_) {
    uint64_t key;
    if (!equality_key(as_cmp(event[t.attr], t.attr_type, t.cmp), t.cmp, key)) continue;
    auto it = t.map.find(key);
    if (it != t.map.end()) out.insert(out.end(), it->second.begin(), it->second.end());
  }
  for (const auto& t : ranges_) {
    Slot v = as_cmp(event[t.attr], t.attr_type, t.cmp);
    if (t.cmp == Type::Float) {
      if (std::isnan(v.f)) continue;
      select_range(t.by_double, t.op, v.f, out);
    } else {
      select_range(t.by_int, t.op, v.i, out);
    }
  }
}

}  // namespace cayuga::index
