// Typed algebra → automaton (see automaton.h for the node model).
//
// Each plan is compiled bottom-up into "sites": the nodes whose forward edges produce the plan's
// output rows, each with the chain of stages (FILTER/SELECT) still to apply and what is known
// about the produced row (attributes that are the same constant in every row). A NEXT or FOLD
// turns its left operand's sites into edges that create instances at a new node reading the
// right operand's stream; the right operand is inlined when it is a stream under FILTERs that do
// not use DUR (their predicates join the node's filter predicate), otherwise it is compiled as
// its own automaton publishing an internal stream. At the root, sites publish the query's stream.
//
// State merging: every node gets a structural signature (kind, stream, predicates with their
// constants, layout, and its exact incoming edges). With merging on, one START node serves each
// stream, and a node whose signature already exists is reused together with its incoming edges
// (so queries sharing a prefix share its instances). Edges are never deduplicated otherwise: two
// identical edges are two derivations, and results are bags (`S UNION S` yields each event twice).
// A signature is built as a sequence of 64-bit words that encodes exactly what the text form of
// the plan shows (dump() of each predicate, the schemas, the incoming edges' stages), and only its
// 128-bit keyed hash (SipHash-2-4, with a key drawn at random once per process) is kept, in the
// automaton, so later scripts merge with earlier ones. A false merge would take two different
// nodes with equal 128-bit hashes under a key nobody knows: about 2^-128 per pair of nodes.
//
// Routing facts for the global index: START edges get the atoms of their leading FILTER stages
// as a guard; NEXT/FOLD nodes get the atoms their filter predicate implies about the event,
// including `$1.a = $2.b` when every instance holds the same constant in `a`; a remaining
// dynamic equality `$1.a = $2.b` becomes the node's instance-index key.
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <optional>
#include <random>
#include <span>
#include <type_traits>
#include <unordered_set>

#include "nfa/automaton.h"

namespace cayuga::nfa {

namespace {

uint64_t name_hash(std::string_view name) {
  return std::hash<std::string_view>()(name);
}

// Makes room for `extra` more elements, growing a vector that keeps receiving elements by a
// quarter instead of doubling, so the spare capacity of the automaton's large vectors (nodes,
// streams, queries, the edges of a START node shared by every query of a stream) stays below a
// quarter of their size; still amortized O(1) per element.
template <typename V>
void reserve_more(V& v, size_t extra = 1) {
  if (v.capacity() - v.size() < extra)
    v.reserve(std::max(v.size() + extra, v.size() + v.size() / 4 + 1));
}

}  // namespace

int64_t Automaton::find_stream(std::string_view name) const {
  if (stream_slots_.empty()) return -1;
  const uint64_t h = name_hash(name) >> 32;
  const size_t mask = stream_slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const uint64_t slot = stream_slots_[i];
    if (slot == 0) return -1;
    const uint32_t id = static_cast<uint32_t>(slot) - 1;
    if (slot >> 32 == h && streams[id].name == name) return id;
  }
}

uint32_t Automaton::add_stream(Stream s) {
  const uint32_t id = static_cast<uint32_t>(streams.size());
  if (find_stream(s.name) < 0) {
    // At most half full (a power of two slots): rehash into twice the slots first.
    if (2 * (streams.size() + 1) > stream_slots_.size()) {
      std::vector<uint64_t> old = std::exchange(
          stream_slots_, std::vector<uint64_t>(std::max<size_t>(16, 2 * stream_slots_.size())));
      for (uint64_t slot : old) {
        if (slot == 0) continue;
        size_t i = (slot >> 32) & (stream_slots_.size() - 1);
        while (stream_slots_[i] != 0) i = (i + 1) & (stream_slots_.size() - 1);
        stream_slots_[i] = slot;
      }
    }
    const uint64_t h = name_hash(s.name) >> 32;
    size_t i = h & (stream_slots_.size() - 1);
    while (stream_slots_[i] != 0) i = (i + 1) & (stream_slots_.size() - 1);
    stream_slots_[i] = h << 32 | (uint64_t{id} + 1);
  }
  reserve_more(streams);
  streams.push_back(std::move(s));
  return id;
}

size_t Automaton::SchemaHash::operator()(const Schema& s) const {
  size_t h = s.size();
  for (const auto& a : s.attrs)
    h = h * 31 + (std::hash<std::string>()(a.name) ^ static_cast<size_t>(a.type));
  return h;
}

namespace {

using Consts = std::vector<std::optional<Slot>>;  // per attribute: the constant, if known

// The words of a signature. Every item is prefixed by a tag or a count, so the encoding is
// unambiguous. Expressions are encoded with exactly what dump() prints: the operator and the
// number of operands of each node, plus a constant's type and value (NaNs all print "nan", so
// they encode alike), a reference's side and index, a call's function.
class SigWords {
 public:
  enum Tag : uint64_t { kStart = 1, kNext, kFold, kFilter, kMap, kIn };

  std::vector<uint64_t> words;

  void add(uint64_t w) { words.push_back(w); }
  void add(std::span<const uint64_t> ws) {
    add(ws.size());
    words.insert(words.end(), ws.begin(), ws.end());
  }
  void text(std::string_view s) {
    add(s.size());
    for (size_t i = 0; i < s.size(); i += 8) {
      uint64_t w = 0;
      std::memcpy(&w, s.data() + i, std::min<size_t>(8, s.size() - i));
      add(w);
    }
  }
  void schema(const Schema& s) {
    add(s.size());
    for (const auto& a : s.attrs) {
      text(a.name);
      add(static_cast<uint64_t>(a.type));
    }
  }
  void expr(const TExpr& e) {
    add(static_cast<uint64_t>(e.op) << 32 | e.kids.size());
    switch (e.op) {
      case TOp::Const: {
        Slot v = e.value;
        if (e.type == Type::Float && std::isnan(v.f))
          v.f = std::numeric_limits<double>::quiet_NaN();
        add(static_cast<uint64_t>(e.type));
        add(v.s);
        break;
      }
      case TOp::Ref:
        add(static_cast<uint64_t>(e.side) << 32 | e.index);
        break;
      case TOp::Call:
        add(static_cast<uint64_t>(e.func));
        break;
      default:
        break;
    }
    for (const auto& k : e.kids) expr(k);
  }
};

// SipHash-2-4 with a 128-bit output (Aumasson and Bernstein) over whole 64-bit words, keyed with
// a key drawn once per process.
class SipHash128 {
 public:
  explicit SipHash128(const uint64_t key[2])
      : v0_(key[0] ^ 0x736f6d6570736575ull),
        v1_(key[1] ^ 0x646f72616e646f6dull ^ 0xee),
        v2_(key[0] ^ 0x6c7967656e657261ull),
        v3_(key[1] ^ 0x7465646279746573ull) {}

  void add(uint64_t m) {
    v3_ ^= m;
    round();
    round();
    v0_ ^= m;
    bytes_ += 8;
  }

  Signature finish() {
    const uint64_t b = static_cast<uint64_t>(bytes_ & 0xff) << 56;
    v3_ ^= b;
    round();
    round();
    v0_ ^= b;
    v2_ ^= 0xee;
    for (int i = 0; i < 4; ++i) round();
    Signature s;
    s.lo = v0_ ^ v1_ ^ v2_ ^ v3_;
    v1_ ^= 0xdd;
    for (int i = 0; i < 4; ++i) round();
    s.hi = v0_ ^ v1_ ^ v2_ ^ v3_;
    return s;
  }

 private:
  void round() {
    v0_ += v1_;
    v1_ = std::rotl(v1_, 13);
    v1_ ^= v0_;
    v0_ = std::rotl(v0_, 32);
    v2_ += v3_;
    v3_ = std::rotl(v3_, 16);
    v3_ ^= v2_;
    v0_ += v3_;
    v3_ = std::rotl(v3_, 21);
    v3_ ^= v0_;
    v2_ += v1_;
    v1_ = std::rotl(v1_, 17);
    v1_ ^= v2_;
    v2_ = std::rotl(v2_, 32);
  }

  uint64_t v0_, v1_, v2_, v3_;
  uint64_t bytes_ = 0;
};

Signature signature_of(std::span<const uint64_t> words) {
  static const auto key = [] {
    std::random_device rd;
    std::array<uint64_t, 2> k;
    for (auto& w : k) w = uint64_t{rd()} << 32 ^ rd();
    return k;
  }();
  SipHash128 h(key.data());
  for (uint64_t w : words) h.add(w);
  return h.finish();
}

struct Site {
  uint32_t node;
  std::vector<Stage> stages;
  std::vector<Atom> guard;        // atoms of the leading FILTER stages (START sites only)
  bool leading = true;            // no Map stage yet: FILTER atoms still describe the event
  std::vector<uint64_t> signature;  // the stages' signature words
  Consts consts;                  // of the row the stages produce
  uint8_t exact_stages = 0;       // leading FILTER stages `guard` says all of (Emit::exact_stages)
};

bool uses_dur(const TExpr& e) {
  if (e.op == TOp::Dur) return true;
  return std::any_of(e.kids.begin(), e.kids.end(), uses_dur);
}

TExpr with_side(TExpr e, Side from, Side to) {
  if (e.op == TOp::Ref && e.side == from) e.side = to;
  for (auto& k : e.kids) k = with_side(std::move(k), from, to);
  return e;
}

bool is_dur(const TExpr& e) {
  return e.op == TOp::Dur || (e.op == TOp::ToFloat && e.kids[0].op == TOp::Dur);
}

// The top-level conjuncts of a predicate.
void conjuncts(const TExpr& e, std::vector<const TExpr*>& out) {
  if (e.op == TOp::And) {
    for (const auto& k : e.kids) conjuncts(k, out);
  } else {
    out.push_back(&e);
  }
}

TOp mirror(TOp op) {
  switch (op) {
    case TOp::Lt: return TOp::Gt;
    case TOp::Le: return TOp::Ge;
    case TOp::Gt: return TOp::Lt;
    case TOp::Ge: return TOp::Le;
    default: return op;
  }
}

// The DUR bound conjunct `c` states (`DUR < c`, `DUR <= c`, or mirrored: the largest DUR it
// lets through), or nothing. `exact`: only when it compares in INT, so that `DUR <= bound` is
// exactly what the conjunct decides (a FLOAT comparison rounds DUR).
std::optional<int64_t> dur_bound_of(const TExpr& c, bool exact) {
  if (c.op < TOp::Lt || c.op > TOp::Ge) return std::nullopt;
  TOp op = c.op;
  const TExpr* dur = &c.kids[0];
  const TExpr* k = &c.kids[1];
  if (!is_dur(*dur)) {
    std::swap(dur, k);
    if (!is_dur(*dur)) return std::nullopt;
    op = mirror(op);
  }
  if (k->op != TOp::Const || (op != TOp::Lt && op != TOp::Le)) return std::nullopt;
  if (exact && (dur->op != TOp::Dur || k->type != Type::Int)) return std::nullopt;
  double x = k->type == Type::Int ? static_cast<double>(k->value.i) : k->value.f;
  if (!std::isfinite(x) || std::fabs(x) > 9e18) return std::nullopt;
  return op == TOp::Le ? static_cast<int64_t>(std::floor(x))
                       : static_cast<int64_t>(std::ceil(x)) - 1;
}

// The largest DUR for which `e` can hold, from its top-level conjuncts of the form
// `DUR < c`, `DUR <= c` (or mirrored); kNoDurBound when there is none.
int64_t dur_upper_bound(const TExpr& e) {
  if (e.op == TOp::Or) {
    int64_t b = std::numeric_limits<int64_t>::min();
    for (const auto& k : e.kids) b = std::max(b, dur_upper_bound(k));
    return b;
  }
  std::vector<const TExpr*> cs;
  conjuncts(e, cs);
  int64_t bound = kNoDurBound;
  for (const TExpr* c : cs) {
    if (c->op == TOp::Or && c != &e) {
      bound = std::min(bound, dur_upper_bound(*c));
      continue;
    }
    if (auto b = dur_bound_of(*c, false)) bound = std::min(bound, *b);
  }
  return bound;
}

// Whether `pred` says nothing but `DUR <= dur_upper_bound(pred)`: every conjunct an exact DUR
// bound.
bool says_only_dur_bound(const TExpr& pred) {
  std::vector<const TExpr*> cs;
  conjuncts(pred, cs);
  return std::all_of(cs.begin(), cs.end(),
                     [](const TExpr* c) { return dur_bound_of(*c, true).has_value(); });
}

std::optional<Atom::Op> atom_op(TOp op) {
  switch (op) {
    case TOp::Eq: return Atom::Op::Eq;
    case TOp::Lt: return Atom::Op::Lt;
    case TOp::Le: return Atom::Op::Le;
    case TOp::Gt: return Atom::Op::Gt;
    case TOp::Ge: return Atom::Op::Ge;
    default: return std::nullopt;
  }
}

// A reference to an attribute of `side`, possibly promoted to FLOAT.
const TExpr* ref_of(const TExpr& e, Side side) {
  const TExpr* r = e.op == TOp::ToFloat ? &e.kids[0] : &e;
  return r->op == TOp::Ref && r->side == side ? r : nullptr;
}

// Reads what a predicate says about the event (side `event`): `attr op const`, and
// `ref = attr` where `known(ref)` gives the constant every row holds in `ref`.
// `from`, when given, receives the conjunct each atom came from.
template <typename Known>
std::vector<Atom> atoms_of(const TExpr& pred, Side event, const Known& known,
                           std::vector<const TExpr*>* from = nullptr) {
  std::vector<const TExpr*> cs;
  conjuncts(pred, cs);
  std::vector<Atom> out;
  for (const TExpr* c : cs) {
    auto op = atom_op(c->op);
    if (!op) continue;
    for (int flip = 0; flip < 2; ++flip) {
      const TExpr& lhs = c->kids[flip];
      const TExpr& rhs = c->kids[1 - flip];
      const TExpr* attr = ref_of(lhs, event);
      if (!attr || attr->index > kMaxAtomAttr) continue;
      std::optional<Slot> value;
      if (rhs.op == TOp::Const) value = rhs.value;
      else if (rhs.op == TOp::Ref && rhs.side != event) value = known(rhs);
      if (!value) continue;
      Atom a;
      a.op = *op;
      if (flip) {
        TOp m = mirror(c->op);
        a.op = *atom_op(m);
      }
      a.attr = attr->index;
      a.attr_type = attr->type;
      a.cmp = lhs.type;
      a.value = *value;
      out.push_back(a);
      if (from) from->push_back(c);
      break;
    }
  }
  return out;
}

// Whether an atom drawn from conjunct `c` says all that `c` does: its operands have one type,
// and it is not a string range (which the index does not check).
bool says_exactly(const TExpr& c) {
  const Type t = c.kids[0].type;
  return t == c.kids[1].type && (t != Type::String || c.op == TOp::Eq);
}

// Whether `pred`, from which atoms_of drew `atoms` atoms, says no more than they do: every
// conjunct became an atom that says all of it. A check of the atoms can then stand in for the
// predicate.
bool says_only(const TExpr& pred, size_t atoms) {
  std::vector<const TExpr*> cs;
  conjuncts(pred, cs);
  if (cs.size() != atoms) return false;
  return std::all_of(cs.begin(), cs.end(), [](const TExpr* c) { return says_exactly(*c); });
}

// `pred` without the top-level conjuncts in `decided` (TRUE when none is left).
TExpr without(const TExpr& pred, const std::vector<const TExpr*>& decided) {
  std::vector<const TExpr*> cs;
  conjuncts(pred, cs);
  TExpr rest;
  rest.op = TOp::And;
  for (const TExpr* c : cs)
    if (std::find(decided.begin(), decided.end(), c) == decided.end()) rest.kids.push_back(*c);
  if (rest.kids.size() > 1) return rest;
  return rest.kids.empty() ? TExpr{} : std::move(rest.kids[0]);
}

}  // namespace

class Builder {
 public:
  // With `consume` (the same script, owned by the caller), each query's plan is freed as soon as
  // it is built into the automaton, so the whole typed algebra and the whole automaton never
  // coexist (at a million queries, each is gigabytes).
  Builder(const AnalyzedScript& script, Automaton& a, const BuildOptions& options,
          BuildChanges* changes, AnalyzedScript* consume = nullptr)
      : script_(script), consume_(consume), a_(a), options_(options), changes_(changes) {}

  std::string run() {
    // Check every stream before changing anything, so a failed build leaves no trace.
    for (const auto& [name, info] : script_.catalog.streams) {
      int64_t id = a_.find_stream(name);
      if (id >= 0 && a_.streams[id].schema != info.schema) {
        return "stream " + name + " already exists with schema " +
               a_.streams[id].schema.to_string() + ", not " + info.schema.to_string();
      }
    }
    for (const auto& [name, info] : script_.catalog.streams) {
      StreamKind kind = info.is_input ? StreamKind::Input : StreamKind::Published;
      if (a_.find_stream(name) < 0)
        a_.add_stream(Stream{name, shared_schema(info.schema), kind, {}});
    }
    first_new_node_ = a_.nodes.size();
    reserve_more(a_.queries, script_.topo_order.size());
    for (uint32_t number : script_.topo_order) {
      const QueryPlan& q = script_.queries[number - 1];
      query_ = q.number;
      internal_ = 0;
      owner_ = static_cast<uint32_t>(a_.queries.size());
      QueryInfo& info = a_.queries.emplace_back();
      info.number = q.number;
      info.publish = q.publish;
      info.stream = static_cast<uint32_t>(a_.find_stream(q.publish));
      publish(compile(q.root), info.stream);
      if (consume_) consume_->queries[number - 1].root = Plan();
      a_.queries[owner_].nodes = FixedVector<uint32_t>(std::move(query_nodes_));
      query_nodes_.clear();
    }
    // Only the new nodes' bounds are new, unless an older node other than a START node (which
    // has none) gained a way out. (New nodes only lead to new nodes: an edge into a node is
    // part of what makes it the node it is.)
    compute_dur_bounds(a_, old_bounds_change_ ? 0 : first_new_node_);
    for (uint32_t n = first_new_node_; n < a_.nodes.size(); ++n) {
      auto& readers = a_.streams[a_.nodes[n].stream].readers;
      reserve_more(readers);
      readers.push_back(n);
    }
    return {};
  }

 private:
  // (Growing a node's emits moves each Emit's pointer to its stages, never the stages and
  // their programs, which a background JIT may be reading: see BuildOptions.)
  static_assert(std::is_nothrow_move_constructible_v<Emit> &&
                std::is_nothrow_move_assignable_v<Emit>);
  void add_emit(const Site& s, Emit::Kind kind, uint32_t target) {
    auto& emits = a_.nodes[s.node].emits;
    if (s.node < first_new_node_ && extended_.insert(s.node).second) {
      if (a_.nodes[s.node].kind != NodeKind::Start) old_bounds_change_ = true;
      if (changes_) changes_->extended.emplace_back(s.node, static_cast<uint32_t>(emits.size()));
    }
    reserve_more(emits);
    Emit& e = emits.emplace_back();
    e.kind = kind;
    e.target = target;
    e.owner = owner_;
    e.stages = FixedVector<Stage>(s.stages);
    e.guard = s.guard;
    e.exact_stages = s.exact_stages;
  }

  void publish(const std::vector<Site>& sites, uint32_t stream) {
    for (const auto& s : sites) add_emit(s, Emit::Kind::ToStream, stream);
  }

  void use(uint32_t node) {
    ++a_.nodes[node].users;
    query_nodes_.push_back(node);
  }

  // `p`, sharing the bytecode of an identical program of the automaton if there is one.
  Program pooled(Program p) {
    a_.code_.share(p);
    return p;
  }

  // A copy of `schema` that shares the automaton's list of its attributes.
  Schema shared_schema(const Schema& schema) { return *a_.schemas_.insert(schema).first; }

  // Returns the node with this signature, reusing an existing live one when merging.
  std::pair<uint32_t, bool> node_for(NodeKind kind, uint32_t stream, const SigWords& words) {
    Signature sig = signature_of(words.words);
    if (options_.merge) {
      if (auto it = a_.by_signature_.find(sig);
          it != a_.by_signature_.end() && !a_.nodes[it->second].dead) {
        use(it->second);
        return {it->second, false};
      }
    }
    if (a_.nodes.size() == a_.nodes.capacity() && options_.before_moving_nodes)
      options_.before_moving_nodes();
    reserve_more(a_.nodes);
    Node& n = a_.nodes.emplace_back();
    n.kind = kind;
    n.stream = stream;
    n.query = query_;
    n.serial = a_.next_serial_++;
    uint32_t id = static_cast<uint32_t>(a_.nodes.size() - 1);
    // Without merging no node is ever looked up, so none is recorded either.
    if (options_.merge) a_.by_signature_[sig] = id;
    use(id);
    return {id, true};
  }

  std::vector<Site> compile(const Plan& p) {
    switch (p.kind) {
      case PlanKind::Source: {
        uint32_t stream = static_cast<uint32_t>(a_.find_stream(p.stream));
        SigWords sig;
        sig.add(SigWords::kStart);
        sig.add(stream);
        auto [n, fresh] = node_for(NodeKind::Start, stream, sig);
        if (fresh) {
          Node& node = a_.nodes[n];
          node.output_schema = shared_schema(p.schema);
          std::vector<SlotRef> output;
          for (uint32_t i = 0; i < p.schema.size(); ++i) output.push_back(SlotRef{1, i});
          node.output = a_.outputs_.intern(SharedArray<SlotRef>(output));
        }
        return {Site{n, {}, {}, true, {}, Consts(p.schema.size())}};
      }
      case PlanKind::Filter: {
        auto sites = compile(p.inputs[0]);
        // One program for every site: copies share the bytecode.
        Stage st;
        st.kind = Stage::Kind::Filter;
        st.pred = pooled(Program::predicate(*p.pred, single_row_ref));
        st.max_dur = dur_upper_bound(*p.pred);
        st.dur_only = says_only_dur_bound(*p.pred);
        SigWords sig;
        sig.add(SigWords::kFilter);
        sig.expr(*p.pred);
        auto atoms = atoms_of(*p.pred, Side::First, [](const TExpr&) {
          return std::optional<Slot>();
        });
        const bool exact = says_only(*p.pred, atoms.size());
        for (auto& s : sites) {
          const bool start = s.leading && a_.nodes[s.node].kind == NodeKind::Start;
          if (start && exact && s.exact_stages == s.stages.size() && s.exact_stages < UINT8_MAX)
            ++s.exact_stages;
          s.stages.push_back(st);
          s.signature.insert(s.signature.end(), sig.words.begin(), sig.words.end());
          for (const Atom& a : atoms) {
            if (a.op == Atom::Op::Eq && a.cmp == a.attr_type) s.consts[a.attr] = a.value;
            if (start) s.guard.push_back(a);
          }
        }
        return sites;
      }
      case PlanKind::Select: {
        auto sites = compile(p.inputs[0]);
        const bool all_refs = std::all_of(p.items.begin(), p.items.end(),
                                          [](const TExpr& e) { return e.op == TOp::Ref; });
        bool identity = all_refs && p.items.size() == p.inputs[0].schema.size();
        for (size_t i = 0; identity && i < p.items.size(); ++i) identity = p.items[i].index == i;
        if (identity) return sites;  // SELECT * or the attributes in order: nothing to do
        // One stage for every site: copies share the bytecode.
        Stage st;
        st.kind = Stage::Kind::Map;
        std::vector<Program> items;
        std::vector<uint32_t> project;
        std::vector<Type> types;
        SigWords sig;
        sig.add(SigWords::kMap);
        sig.add(p.items.size());
        for (size_t i = 0; i < p.items.size(); ++i) {
          const TExpr& item = p.items[i];
          if (all_refs) project.push_back(item.index);
          else items.push_back(pooled(Program::value(item, single_row_ref)));
          types.push_back(p.schema.attrs[i].type);
          sig.expr(item);
        }
        st.items = FixedVector<Program>(std::move(items));
        st.project = a_.projects_.intern(SharedArray<uint32_t>(project));
        st.types = a_.types_.intern(SharedArray<Type>(types));
        for (auto& s : sites) {
          Consts consts(p.items.size());
          for (size_t i = 0; i < p.items.size(); ++i) {
            const TExpr& item = p.items[i];
            if (item.op == TOp::Const) consts[i] = item.value;
            if (item.op == TOp::Ref) consts[i] = s.consts[item.index];
          }
          s.signature.insert(s.signature.end(), sig.words.begin(), sig.words.end());
          s.consts = std::move(consts);
          s.leading = false;
          s.stages.push_back(st);
        }
        return sites;
      }
      case PlanKind::Union: {
        std::vector<Site> all;
        for (const auto& in : p.inputs) {
          auto sites = compile(in);
          for (auto& s : sites) all.push_back(std::move(s));
        }
        return all;
      }
      case PlanKind::Next:
      case PlanKind::Fold:
        return compile_binary(p);
    }
    return {};
  }

  // The stream a NEXT/FOLD node reads for its right operand, plus the FILTER predicates that
  // can move into the node's filter (rewritten to read the event, `$2`).
  uint32_t right_stream(const Plan& right, std::vector<TExpr>& filters) {
    const Plan* p = &right;
    std::vector<TExpr> found;
    while (p->kind == PlanKind::Filter && !uses_dur(*p->pred)) {
      found.push_back(with_side(*p->pred, Side::First, Side::Second));
      p = &p->inputs[0];
    }
    if (p->kind == PlanKind::Source) {
      filters = std::move(found);
      return static_cast<uint32_t>(a_.find_stream(p->stream));
    }
    // Not inlinable: its own automaton publishing an internal stream.
    std::string name = "__q" + std::to_string(query_) + ".r" + std::to_string(++internal_);
    uint32_t id =
        a_.add_stream(Stream{name, shared_schema(right.schema), StreamKind::Internal, {}});
    publish(compile(right), id);
    return id;
  }

  std::vector<Site> compile_binary(const Plan& p) {
    const Plan& left = p.inputs[0];
    const Plan& right = p.inputs[1];
    std::vector<Site> left_sites = compile(left);
    std::vector<TExpr> right_filters;
    uint32_t stream = right_stream(right, right_filters);

    const bool fold = p.kind == PlanKind::Fold;
    const Schema& s1 = left.schema;
    const Schema& s2 = right.schema;
    const uint32_t n1 = static_cast<uint32_t>(s1.size()), n2 = static_cast<uint32_t>(s2.size());

    // FOLD layout: [first values | aggregates of S1-only attributes | last values].
    std::vector<int32_t> shared_in_s2(n1, -1);  // S1 attr -> its S2 index, or -1
    std::vector<uint32_t> agg_slot(n1, 0);
    uint32_t last_base = n1;
    if (fold) {
      for (uint32_t i = 0; i < n1; ++i) {
        if (auto j = s2.find(s1.attrs[i].name)) shared_in_s2[i] = static_cast<int32_t>(*j);
        else agg_slot[i] = last_base++;
      }
    }
    auto slot_of = [&](Side side, uint32_t index) -> SlotRef {
      switch (side) {
        case Side::First: return SlotRef{0, index};
        case Side::Second: return SlotRef{1, index};
        case Side::Last:
          if (!fold) return SlotRef{0, index};
          return shared_in_s2[index] >= 0
                     ? SlotRef{0, last_base + static_cast<uint32_t>(shared_in_s2[index])}
                     : SlotRef{0, agg_slot[index]};
      }
      return SlotRef{0, index};
    };
    RefMapper refs = slot_of;

    TExpr filter = p.pred ? *p.pred : TExpr{};
    if (!right_filters.empty()) {
      TExpr all;
      all.op = TOp::And;
      all.kids.push_back(std::move(filter));
      for (auto& f : right_filters) all.kids.push_back(std::move(f));
      filter = std::move(all);
    }
    const TExpr rebind = p.pred2 ? *p.pred2 : TExpr{};

    // Layout of the instance and how an incoming left row initializes it.
    std::vector<int32_t> init;
    if (!fold) {
      for (uint32_t i = 0; i < n1; ++i) init.push_back(static_cast<int32_t>(i));
    } else {
      init.assign(last_base + n2, -1);
      for (uint32_t i = 0; i < n1; ++i) {
        init[i] = static_cast<int32_t>(i);
        if (shared_in_s2[i] >= 0) init[last_base + shared_in_s2[i]] = static_cast<int32_t>(i);
        else init[agg_slot[i]] = static_cast<int32_t>(i);
      }
    }
    const uint32_t width = static_cast<uint32_t>(init.size());

    // What every instance holds: the constants all incoming rows agree on.
    Consts inst(width);
    for (uint32_t k = 0; k < width; ++k) {
      if (init[k] < 0) continue;
      std::optional<Slot> agreed = left_sites.front().consts[init[k]];
      for (const auto& s : left_sites) {
        const auto& c = s.consts[init[k]];
        if (!agreed || !c || c->i != agreed->i) agreed.reset();
      }
      inst[k] = agreed;
    }
    if (fold) {
      for (uint32_t i = 0; i < n1; ++i)
        if (shared_in_s2[i] < 0) inst[agg_slot[i]].reset();  // aggregates change
    }
    auto known = [&](const TExpr& r) -> std::optional<Slot> {
      SlotRef s = slot_of(r.side, r.index);
      return s.row == 0 ? inst[s.offset] : std::nullopt;
    };
    std::vector<const TExpr*> guard_from;  // the conjunct each atom of `guard` came from
    std::vector<Atom> guard = atoms_of(filter, Side::Second, known, &guard_from);
    if (fold) {
      // A last value stays constant only if every rebinding event carries that constant too.
      bool changed = true;
      while (changed) {
        changed = false;
        for (uint32_t j = 0; j < n2; ++j) {
          auto& c = inst[last_base + j];
          if (!c) continue;
          bool kept = std::any_of(guard.begin(), guard.end(), [&](const Atom& a) {
            return a.op == Atom::Op::Eq && a.attr == j && a.cmp == a.attr_type &&
                   a.value.i == c->i;
          });
          if (!kept) {
            c.reset();
            changed = true;
          }
        }
        if (changed) {
          guard_from.clear();
          guard = atoms_of(filter, Side::Second, known, &guard_from);
        }
      }
    }

    // Signature: everything that decides the node's behaviour, and its exact incoming edges.
    SigWords sig;
    sig.add(fold ? SigWords::kFold : SigWords::kNext);
    sig.add(stream);
    sig.schema(s1);
    sig.schema(p.schema);
    sig.expr(filter);
    if (fold) {
      sig.expr(rebind);
      sig.add(p.aggregates.size());
      for (const auto& agg : p.aggregates) {
        sig.add(agg.target);
        sig.expr(agg.value);
      }
    }
    for (const auto& s : left_sites) {
      sig.add(SigWords::kIn);
      sig.add(a_.nodes[s.node].serial);
      sig.add(s.signature);
    }

    auto [n, fresh] = node_for(fold ? NodeKind::Fold : NodeKind::Next, stream, sig);
    if (fresh) {
      Node& node = a_.nodes[n];
      const TExpr* key = pick_instance_key(node, filter, slot_of, inst);
      // What the runtime decides before a visit need not run again in it (BuildOptions).
      std::vector<const TExpr*> decided;
      if (options_.index)
        for (const TExpr* c : guard_from)
          if (says_exactly(*c)) decided.push_back(c);
      if (options_.instance_index && key) decided.push_back(key);
      node.filter = pooled(Program::predicate(without(filter, decided), refs));
      node.filter_true = node.filter.always_true();
      node.output_schema = shared_schema(p.schema);
      node.width = width;
      node.init = a_.inits_.intern(SharedArray<int32_t>(init));
      node.guard = guard;
      std::vector<SlotRef> output;
      if (!fold) {
        for (uint32_t i = 0; i < n1; ++i) output.push_back(SlotRef{0, i});
        for (uint32_t j = 0; j < n2; ++j) output.push_back(SlotRef{1, j});
      } else {
        node.last_base = last_base;
        node.rebind = pooled(Program::predicate(rebind, refs));
        std::vector<std::pair<uint32_t, Program>> aggregates;
        for (const auto& agg : p.aggregates)
          aggregates.emplace_back(agg_slot[agg.target],
                                  pooled(Program::value(agg.value, refs)));
        node.aggregates = FixedVector<std::pair<uint32_t, Program>>(std::move(aggregates));
        for (uint32_t i = 0; i < n1; ++i)
          output.push_back(shared_in_s2[i] >= 0 ? SlotRef{0, i} : SlotRef{0, agg_slot[i]});
        for (uint32_t j = 0; j < n2; ++j) output.push_back(SlotRef{0, last_base + j});
      }
      node.output = a_.outputs_.intern(SharedArray<SlotRef>(output));
      node.own_max_dur =
          std::min(dur_upper_bound(filter), fold ? dur_upper_bound(rebind) : kNoDurBound);
      for (const auto& s : left_sites) add_emit(s, Emit::Kind::ToNode, n);
    }

    // The produced row: the instance (NEXT: left values) then the event, or the FOLD output.
    Consts out;
    if (!fold) {
      out.assign(inst.begin(), inst.end());
      Consts ev(n2);
      for (const Atom& a : a_.nodes[n].guard)
        if (a.op == Atom::Op::Eq && a.cmp == a.attr_type) ev[a.attr] = a.value;
      out.insert(out.end(), ev.begin(), ev.end());
    } else {
      for (const SlotRef& r : a_.nodes[n].output) out.push_back(inst[r.offset]);
    }
    return {Site{n, {}, {}, false, {}, std::move(out)}};
  }

  // A dynamic equality `instance slot = event attribute` of the same type that is not already
  // a constant becomes the node's instance-index key. Returns that conjunct of `filter`, or
  // null.
  template <typename SlotOf>
  const TExpr* pick_instance_key(Node& node, const TExpr& filter, const SlotOf& slot_of,
                                 const Consts& inst) {
    std::vector<const TExpr*> cs;
    conjuncts(filter, cs);
    for (const TExpr* c : cs) {
      if (c->op != TOp::Eq) continue;
      for (int flip = 0; flip < 2; ++flip) {
        const TExpr& a = c->kids[flip];
        const TExpr& b = c->kids[1 - flip];
        if (a.op != TOp::Ref || b.op != TOp::Ref || a.side != Side::Second || b.side == Side::Second)
          continue;
        SlotRef s = slot_of(b.side, b.index);
        if (inst[s.offset]) continue;
        node.key_slot = static_cast<int32_t>(s.offset);
        node.key_attr = a.index;
        node.key_type = a.type;
        return c;
      }
    }
    return nullptr;
  }

  const AnalyzedScript& script_;
  AnalyzedScript* consume_;
  Automaton& a_;
  BuildOptions options_;
  uint32_t query_ = 0;
  uint32_t owner_ = 0;  // index of the query being compiled in a_.queries
  std::vector<uint32_t> query_nodes_;  // the nodes it uses so far (QueryInfo::nodes)
  uint32_t internal_ = 0;
  size_t first_new_node_ = 0;
  BuildChanges* changes_;
  std::unordered_set<uint32_t> extended_;  // nodes before first_new_node_ that gained emits
  bool old_bounds_change_ = false;         // one of them is not a START node
};

// A node's instances die once DUR exceeds the bound of every way out of it. Edges only go from a
// node to a later one, so a reverse sweep sees every target before its sources. Old nodes are
// recomputed too when merging added edges to them, and removing a query takes some away.
namespace {

// Sets node `n`'s max_dur from its own bound and those of its ways out (already set).
void compute_dur_bound(Automaton& a, size_t n) {
  Node& node = a.nodes[n];
  if (node.kind == NodeKind::Start || node.dead) return;
  const int64_t own = node.own_max_dur;
  int64_t emits_bound = node.emits.empty() ? kNoDurBound : std::numeric_limits<int64_t>::min();
  for (const auto& e : node.emits) {
    int64_t b = e.kind == Emit::Kind::ToNode ? a.nodes[e.target].max_dur : kNoDurBound;
    for (const auto& st : e.stages)
      if (st.kind == Stage::Kind::Filter) b = std::min(b, st.max_dur);
    emits_bound = std::max(emits_bound, b);
  }
  node.max_dur = std::min(own, emits_bound);
}

}  // namespace

void compute_dur_bounds(Automaton& a, size_t first_node) {
  for (size_t n = a.nodes.size(); n-- > first_node;) compute_dur_bound(a, n);
}

std::vector<uint32_t> remove_query(Automaton& a, uint32_t id,
                                   const std::function<void(const Emit&)>& dropping_edge,
                                   const std::function<void(const Node&)>& dropping_node,
                                   std::vector<std::pair<uint32_t, uint32_t>>* erased) {
  QueryInfo& q = a.queries[id];
  if (q.removed) return {};
  q.removed = true;
  std::vector<uint32_t> dead;
  for (uint32_t n : q.nodes)
    if (--a.nodes[n].users == 0) dead.push_back(n);
  std::sort(dead.begin(), dead.end());
  dead.erase(std::unique(dead.begin(), dead.end()), dead.end());
  // (A query has a few nodes: a loop over them is faster than a search, and a START node's
  // emits, one or more per query of its stream, are many.)
  auto is_dead = [&](uint32_t n) {
    for (uint32_t d : dead)
      if (d == n) return true;
    return false;
  };
  // Every edge to remove starts at a node of this query: its published edges, and the edges into
  // its dead nodes (whose sources are upstream, so also this query's).
  std::vector<uint32_t> nodes(q.nodes.begin(), q.nodes.end());
  std::sort(nodes.begin(), nodes.end());
  nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
  for (uint32_t n : nodes) {
    auto& emits = a.nodes[n].emits;
    if (is_dead(n)) {
      for (const Emit& e : emits) dropping_edge(e);
      emits = {};
      continue;
    }
    const auto drop = [&](const Emit& e) {
      return e.kind == Emit::Kind::ToStream ? e.owner == id : is_dead(e.target);
    };
    const size_t size = emits.size();
    size_t k = 0;
    while (k < size && !drop(emits[k])) ++k;
    size_t keep = k;
    for (; k < size; ++k) {
      if (drop(emits[k])) {
        dropping_edge(emits[k]);
        if (erased) erased->emplace_back(n, static_cast<uint32_t>(k));
      } else {
        emits[keep++] = std::move(emits[k]);
      }
    }
    emits.resize(keep);
  }
  for (uint32_t n : dead) {
    Node& node = a.nodes[n];
    dropping_node(node);
    node.dead = true;
    node.guard = {};  // (the node stays, dead, until drop_dead_nodes(): its memory goes now)
    node.filter = Program();
    node.rebind = Program();
    node.aggregates.clear();
    std::erase(a.streams[node.stream].readers, n);
  }
  // A node that lost its widest way out now lets its instances go sooner, and so may the nodes
  // that lead to it: all of them nodes of this query (a node is shared only with its whole
  // prefix), downstream ones first.
  for (auto n = nodes.rbegin(); n != nodes.rend(); ++n) compute_dur_bound(a, *n);
  q.nodes = {};
  return dead;
}

std::vector<uint32_t> drop_dead_nodes(Automaton& a) {
  std::vector<uint32_t> to(a.nodes.size(), kDroppedNode);
  uint32_t kept = 0;
  for (uint32_t n = 0; n < a.nodes.size(); ++n) {
    if (a.nodes[n].dead) continue;
    to[n] = kept;
    if (kept != n) a.nodes[kept] = std::move(a.nodes[n]);
    ++kept;
  }
  if (kept == a.nodes.size()) return to;
  a.nodes.erase(a.nodes.begin() + kept, a.nodes.end());  // (the capacity stays, for new nodes)
  // Every reference to a node: edges into it (a dead node's were erased with it), its stream's
  // readers, its queries' lists (a removed query's is empty), and the signatures of merging.
  for (Node& node : a.nodes)
    for (Emit& e : node.emits)
      if (e.kind == Emit::Kind::ToNode) e.target = to[e.target];
  for (Stream& s : a.streams)
    for (uint32_t& n : s.readers) n = to[n];
  for (QueryInfo& q : a.queries)
    for (uint32_t& n : q.nodes) n = to[n];
  for (auto it = a.by_signature_.begin(); it != a.by_signature_.end();) {
    it->second = to[it->second];
    it = it->second == kDroppedNode ? a.by_signature_.erase(it) : std::next(it);
  }
  return to;
}

std::string build(const AnalyzedScript& script, Automaton& into, const BuildOptions& options,
                  BuildChanges* changes) {
  return Builder(script, into, options, changes).run();  // checks before it changes anything
}

std::string build(AnalyzedScript&& script, Automaton& into, const BuildOptions& options,
                  BuildChanges* changes) {
  return Builder(script, into, options, changes, &script).run();
}

}  // namespace cayuga::nfa
