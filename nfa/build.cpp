// Typed algebra → automaton (see automaton.h for the node model).
//
// Each plan is compiled bottom-up into "sites": the nodes whose forward edges produce the plan's
// output rows, each with the chain of stages (FILTER/SELECT) still to apply. A NEXT or FOLD turns
// its left operand's sites into edges that create instances at a new node reading the right
// operand's stream; the right operand is inlined when it is a stream under FILTERs that do not
// use DUR (their predicates join the node's filter predicate), otherwise it is compiled as its
// own automaton publishing an internal stream. At the root, sites publish the query's stream.
#include <algorithm>
#include <cmath>

#include "nfa/automaton.h"

namespace cayuga::nfa {

int64_t Automaton::find_stream(std::string_view name) const {
  for (size_t i = 0; i < streams.size(); ++i)
    if (streams[i].name == name) return static_cast<int64_t>(i);
  return -1;
}

namespace {

struct Site {
  uint32_t node;
  std::vector<Stage> stages;
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

// The largest DUR for which `e` can hold, from its top-level conjuncts of the form
// `DUR < c`, `DUR <= c` (or mirrored); kNoDurBound when there is none.
int64_t dur_upper_bound(const TExpr& e) {
  switch (e.op) {
    case TOp::And: {
      int64_t b = kNoDurBound;
      for (const auto& k : e.kids) b = std::min(b, dur_upper_bound(k));
      return b;
    }
    case TOp::Or: {
      int64_t b = std::numeric_limits<int64_t>::min();
      for (const auto& k : e.kids) b = std::max(b, dur_upper_bound(k));
      return b;
    }
    case TOp::Lt: case TOp::Le: case TOp::Gt: case TOp::Ge: {
      TOp op = e.op;
      const TExpr* c = &e.kids[1];
      if (!is_dur(e.kids[0])) {
        if (!is_dur(e.kids[1])) return kNoDurBound;
        c = &e.kids[0];  // c OP DUR: mirror
        op = op == TOp::Lt ? TOp::Gt : op == TOp::Le ? TOp::Ge : op == TOp::Gt ? TOp::Lt : TOp::Le;
      }
      if (c->op != TOp::Const || (op != TOp::Lt && op != TOp::Le)) return kNoDurBound;
      double x = c->type == Type::Int ? static_cast<double>(c->value.i) : c->value.f;
      if (!std::isfinite(x) || std::fabs(x) > 9e18) return kNoDurBound;
      return op == TOp::Le ? static_cast<int64_t>(std::floor(x))
                           : static_cast<int64_t>(std::ceil(x)) - 1;
    }
    default:
      return kNoDurBound;
  }
}

class Builder {
 public:
  Builder(const AnalyzedScript& script, Automaton& a) : script_(script), a_(a) {}

  std::string run() {
    for (const auto& [name, info] : script_.catalog.streams) {
      int64_t id = a_.find_stream(name);
      StreamKind kind = info.is_input ? StreamKind::Input : StreamKind::Published;
      if (id < 0) {
        a_.streams.push_back(Stream{name, info.schema, kind, {}});
      } else if (a_.streams[id].schema != info.schema) {
        return "stream " + name + " already exists with schema " +
               a_.streams[id].schema.to_string() + ", not " + info.schema.to_string();
      }
    }
    first_new_node_ = a_.nodes.size();
    for (uint32_t number : script_.topo_order) {
      const QueryPlan& q = script_.queries[number - 1];
      query_ = q.number;
      internal_ = 0;
      uint32_t out = static_cast<uint32_t>(a_.find_stream(q.publish));
      publish(compile(q.root), out);
      a_.queries.push_back(QueryInfo{q.number, q.publish, out});
    }
    compute_dur_bounds();
    for (uint32_t n = first_new_node_; n < a_.nodes.size(); ++n)
      a_.streams[a_.nodes[n].stream].readers.push_back(n);
    return {};
  }

 private:
  void publish(std::vector<Site> sites, uint32_t stream) {
    for (auto& s : sites)
      a_.nodes[s.node].emits.push_back(Emit{Emit::Kind::ToStream, stream, std::move(s.stages)});
  }

  uint32_t new_node(NodeKind kind, uint32_t stream, const char* what) {
    Node n;
    n.kind = kind;
    n.stream = stream;
    n.query = query_;
    n.label = "q" + std::to_string(query_) + ".n" + std::to_string(a_.nodes.size()) + " " + what +
              " " + a_.streams[stream].name;
    a_.nodes.push_back(std::move(n));
    return static_cast<uint32_t>(a_.nodes.size() - 1);
  }

  std::vector<Site> compile(const Plan& p) {
    switch (p.kind) {
      case PlanKind::Source: {
        uint32_t stream = static_cast<uint32_t>(a_.find_stream(p.stream));
        uint32_t n = new_node(NodeKind::Start, stream, "START");
        Node& node = a_.nodes[n];
        node.output_schema = p.schema;
        for (uint32_t i = 0; i < p.schema.size(); ++i) node.output.push_back(SlotRef{1, i});
        return {Site{n, {}}};
      }
      case PlanKind::Filter: {
        auto sites = compile(p.inputs[0]);
        for (auto& s : sites) {
          Stage st;
          st.kind = Stage::Kind::Filter;
          st.pred = Program::predicate(*p.pred, single_row_ref);
          st.max_dur = dur_upper_bound(*p.pred);
          s.stages.push_back(std::move(st));
        }
        return sites;
      }
      case PlanKind::Select: {
        auto sites = compile(p.inputs[0]);
        for (auto& s : sites) {
          Stage st;
          st.kind = Stage::Kind::Map;
          for (size_t i = 0; i < p.items.size(); ++i) {
            st.items.push_back(Program::value(p.items[i], single_row_ref));
            st.types.push_back(p.schema.attrs[i].type);
          }
          s.stages.push_back(std::move(st));
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
    a_.streams.push_back(Stream{name, right.schema, StreamKind::Internal, {}});
    uint32_t id = static_cast<uint32_t>(a_.streams.size() - 1);
    publish(compile(right), id);
    return id;
  }

  std::vector<Site> compile_binary(const Plan& p) {
    const Plan& left = p.inputs[0];
    const Plan& right = p.inputs[1];
    std::vector<Site> left_sites = compile(left);
    std::vector<TExpr> right_filters;
    uint32_t stream = right_stream(right, right_filters);

    bool fold = p.kind == PlanKind::Fold;
    uint32_t n = new_node(fold ? NodeKind::Fold : NodeKind::Next, stream, fold ? "FOLD" : "NEXT");
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
    RefMapper refs = [&, fold](Side side, uint32_t index) -> SlotRef {
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

    TExpr filter = p.pred ? *p.pred : TExpr{};
    if (!right_filters.empty()) {
      TExpr all;
      all.op = TOp::And;
      all.kids.push_back(std::move(filter));
      for (auto& f : right_filters) all.kids.push_back(std::move(f));
      filter = std::move(all);
    }

    Node& node = a_.nodes[n];
    node.filter = Program::predicate(filter, refs);
    node.output_schema = p.schema;
    if (!fold) {
      node.width = n1;
      for (uint32_t i = 0; i < n1; ++i) node.init.push_back(static_cast<int32_t>(i));
      for (uint32_t i = 0; i < n1; ++i) node.output.push_back(SlotRef{0, i});
      for (uint32_t j = 0; j < n2; ++j) node.output.push_back(SlotRef{1, j});
    } else {
      node.width = last_base + n2;
      node.last_base = last_base;
      node.init.assign(node.width, -1);
      for (uint32_t i = 0; i < n1; ++i) {
        node.init[i] = static_cast<int32_t>(i);
        if (shared_in_s2[i] >= 0) node.init[last_base + shared_in_s2[i]] = static_cast<int32_t>(i);
        else node.init[agg_slot[i]] = static_cast<int32_t>(i);
      }
      node.rebind = Program::predicate(p.pred2 ? *p.pred2 : TExpr{}, refs);
      for (const auto& agg : p.aggregates)
        node.aggregates.emplace_back(agg_slot[agg.target], Program::value(agg.value, refs));
      for (uint32_t i = 0; i < n1; ++i)
        node.output.push_back(shared_in_s2[i] >= 0 ? SlotRef{0, i} : SlotRef{0, agg_slot[i]});
      for (uint32_t j = 0; j < n2; ++j) node.output.push_back(SlotRef{0, last_base + j});
      node.max_dur = dur_upper_bound(p.pred2 ? *p.pred2 : TExpr{});
    }
    node.max_dur = std::min(node.max_dur, dur_upper_bound(filter));

    for (auto& s : left_sites)
      a_.nodes[s.node].emits.push_back(Emit{Emit::Kind::ToNode, n, std::move(s.stages)});
    return {Site{n, {}}};
  }

  // A node's instances die once DUR exceeds the bound of every way out of it. Edges only go
  // from a node to a later one, so a reverse sweep sees every target before its sources.
  void compute_dur_bounds() {
    for (size_t n = a_.nodes.size(); n-- > first_new_node_;) {
      Node& node = a_.nodes[n];
      if (node.kind == NodeKind::Start) continue;
      int64_t emits_bound = node.emits.empty() ? kNoDurBound : std::numeric_limits<int64_t>::min();
      for (const auto& e : node.emits) {
        int64_t b = e.kind == Emit::Kind::ToNode ? a_.nodes[e.target].max_dur : kNoDurBound;
        for (const auto& st : e.stages)
          if (st.kind == Stage::Kind::Filter) b = std::min(b, st.max_dur);
        emits_bound = std::max(emits_bound, b);
      }
      node.max_dur = std::min(node.max_dur, emits_bound);
    }
  }

  const AnalyzedScript& script_;
  Automaton& a_;
  uint32_t query_ = 0;
  uint32_t internal_ = 0;
  size_t first_new_node_ = 0;
};

}  // namespace

std::string build(const AnalyzedScript& script, Automaton& into) {
  Automaton backup = into;
  std::string err = Builder(script, into).run();
  if (!err.empty()) into = std::move(backup);
  return err;
}

}  // namespace cayuga::nfa
