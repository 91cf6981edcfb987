// Semantic analysis: AST → typed algebra (CEL.md §2, §4, §5).
//
// The analysis runs in phases over the whole script, because statement order does not matter:
//
//  1. Declarations: CREATE STREAM schemas (plus the running engine's streams from
//     AnalyzeOptions::existing) and every query's PUBLISH name (or `q<N>`).
//  2. Dependencies: which streams each query reads (including inside subqueries). A query
//     depends on every query of the script that publishes a stream it reads. Strongly connected
//     components of that graph are subscription cycles and are reported by stream names.
//  3. Queries are analysed publishers-first (Kahn's order, ties by script order), so when a
//     query reads a published stream, every publisher of that stream already has a schema.
//     Queries caught in a cycle are analysed last; streams whose schema is unknown there are
//     silently "poisoned" so one cycle does not cascade into unrelated errors.
//  4. Unions: every publisher of a name must produce the same schema as the first one in script
//     order (or as the engine's existing stream).
//
// Errors never stop the analysis: every sub-analysis returns std::optional and an empty result
// means "already reported"; callers propagate it without adding a second error.
#include "compiler/analyzer.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <queue>
#include <set>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "lang/parser.h"

namespace cayuga {

namespace {

using ast::ExprKind;
using ast::RefScope;
using ast::StreamKind;

// Where an expression is evaluated (CEL.md §4 table).
enum class Ctx : uint8_t { Filter, Select, Next, Fold };

// Name resolution environment of one expression.
struct Scope {
  Ctx ctx = Ctx::Filter;
  const Schema* first = nullptr;   // FILTER/SELECT: the operand's row; NEXT/FOLD: S1
  const Schema* second = nullptr;  // NEXT/FOLD: S2
  std::string first_desc;          // how error messages name the rows ("Stock", "the subquery")
  std::string second_desc;
};

const char* binop_text(ast::BinOp op) {
  switch (op) {
    case ast::BinOp::Add:
      return "+";
    case ast::BinOp::Sub:
      return "-";
    case ast::BinOp::Mul:
      return "*";
    case ast::BinOp::Div:
      return "/";
    case ast::BinOp::Mod:
      return "%";
    case ast::BinOp::Pow:
      return "^";
  }
  return "?";
}

TOp binop_top(ast::BinOp op) {
  switch (op) {
    case ast::BinOp::Add:
      return TOp::Add;
    case ast::BinOp::Sub:
      return TOp::Sub;
    case ast::BinOp::Mul:
      return TOp::Mul;
    case ast::BinOp::Div:
      return TOp::Div;
    case ast::BinOp::Mod:
      return TOp::Mod;
    case ast::BinOp::Pow:
      return TOp::Pow;
  }
  return TOp::Add;
}

TOp cmp_top(ast::CmpOp op) {
  switch (op) {
    case ast::CmpOp::Eq:
      return TOp::Eq;
    case ast::CmpOp::Ne:
      return TOp::Ne;
    case ast::CmpOp::Lt:
      return TOp::Lt;
    case ast::CmpOp::Le:
      return TOp::Le;
    case ast::CmpOp::Gt:
      return TOp::Gt;
    case ast::CmpOp::Ge:
      return TOp::Ge;
  }
  return TOp::Eq;
}

bool is_numeric(Type t) {
  return t == Type::Int || t == Type::Float;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

TExpr make_const_int(int64_t v) {
  TExpr e;
  e.op = TOp::Const;
  e.type = Type::Int;
  e.value = int_slot(v);
  return e;
}

TExpr make_const_float(double v) {
  TExpr e;
  e.op = TOp::Const;
  e.type = Type::Float;
  e.value = float_slot(v);
  return e;
}

TExpr make_true() {
  TExpr e;
  e.op = TOp::True;
  return e;
}

TExpr to_float(TExpr e) {
  if (e.type == Type::Float) return e;
  TExpr t;
  t.op = TOp::ToFloat;
  t.type = Type::Float;
  t.kids.push_back(std::move(e));
  return t;
}

TExpr make_node(TOp op, Type type, std::vector<TExpr> kids) {
  TExpr e;
  e.op = op;
  e.type = type;
  e.kids = std::move(kids);
  return e;
}

// Microseconds per duration-literal unit and per engine unit.
int64_t unit_us(ast::TimeUnit u) {
  switch (u) {
    case ast::TimeUnit::Us:
      return 1;
    case ast::TimeUnit::Ms:
      return 1000;
    case ast::TimeUnit::Sec:
      return 1000000;
    case ast::TimeUnit::Min:
      return 60LL * 1000000;
    case ast::TimeUnit::Hour:
      return 3600LL * 1000000;
    case ast::TimeUnit::Day:
      return 86400LL * 1000000;
  }
  return 1000;
}

int64_t engine_us(EngineUnit u) {
  return 1000000 / units_per_second(u);
}

// The S1 attribute names of a NEXT/FOLD output (CEL.md §5): each S1 attribute whose name also
// occurs in S2 gets `_1`; a name that the suffix would collide with in S1 is shifted first,
// recursively. A shifted name that happens to occur in S2 as well is shifted again, so the
// output never has duplicates.
// Names are looked up in hash tables, so that wide schemas (tens of thousands of attributes)
// take linear time.
std::vector<std::string> shifted_left_names(const Schema& s1, const Schema& s2) {
  std::unordered_set<std::string_view> right;
  for (const auto& a : s2.attrs) right.insert(a.name);
  std::vector<std::string> names;
  std::unordered_map<std::string, size_t> at;  // S1's names as shifted so far
  for (const auto& a : s1.attrs) {
    at.emplace(a.name, names.size());
    names.push_back(a.name);
  }
  std::function<void(size_t, std::string)> shift = [&](size_t i, std::string name) {
    while (right.contains(name)) name += "_1";
    if (auto it = at.find(name); it != at.end() && it->second != i)
      shift(it->second, name + "_1");  // (names are unique: at most one is in the way)
    if (auto it = at.find(names[i]); it != at.end() && it->second == i) at.erase(it);
    at[name] = i;
    names[i] = std::move(name);
  };
  for (size_t i = 0; i < names.size(); ++i)
    if (right.contains(names[i])) shift(i, names[i] + "_1");
  return names;
}

struct FuncInfo {
  const char* name;
  Func func;
  size_t arity;
  const char* signature;
};

const FuncInfo kFunctions[] = {
    {"ABS", Func::Abs, 1, "ABS(INT|FLOAT) -> same type"},
    {"CONTAINS", Func::Contains, 2, "CONTAINS(STRING, STRING) -> INT"},
    {"LENGTH", Func::Length, 1, "LENGTH(STRING) -> INT"},
    {"LOWER", Func::Lower, 1, "LOWER(STRING) -> STRING"},
    {"MAX", Func::Max, 2, "MAX(x, y) with x, y both numeric or both STRING"},
    {"MIN", Func::Min, 2, "MIN(x, y) with x, y both numeric or both STRING"},
    {"SIMILARITY", Func::Similarity, 2, "SIMILARITY(STRING, STRING) -> FLOAT"},
    {"UPPER", Func::Upper, 1, "UPPER(STRING) -> STRING"},
};

std::string function_list() {
  std::string out;
  for (const auto& f : kFunctions) {
    if (!out.empty()) out += ", ";
    out += f.name;
  }
  return out;
}

// Per query of the script.
struct QueryState {
  const ast::Query* ast = nullptr;  // null once analysed when the analyzer consumes the AST
  size_t statement = 0;             // index in the script
  ast::Pos pos;                     // the query's start
  uint32_t number = 0;  // 1-based
  std::string publish;
  ast::Pos publish_pos;  // the PUBLISH name, or the query's start for a default name
  bool publish_ok = true;
  std::vector<std::pair<std::string, ast::Pos>> reads;  // stream names read, with positions
  std::vector<size_t> deps;                             // indices of queries it depends on
  bool done = false;
  ast::Box<Plan> plan;  // (boxed: every query's state is made before any plan)
};

// Per stream name known to the script.
struct StreamState {
  bool is_input = false;           // CREATE STREAM (this script or the engine's)
  bool existing = false;           // from AnalyzeOptions::existing
  std::optional<Schema> schema;    // inputs and existing streams: known up front
  std::vector<size_t> publishers;  // indices of this script's queries, script order
};

class Analyzer {
 public:
  // With `consume` (the same script, owned by the caller), each query's AST is freed as soon as
  // its plan is built, so the whole AST and the whole typed algebra never coexist.
  Analyzer(const ast::Script& script, const AnalyzeOptions& options,
           ast::Script* consume = nullptr)
      : script_(script), options_(options), consume_(consume) {}

  AnalyzeResult run();

 private:
  void error(const ast::Pos& pos, std::string message) {
    errors_.push_back(make_diagnostic(pos, std::move(message)));
  }

  void declare_inputs();
  void declare_queries();
  void collect_reads(const ast::StreamExpr& s, std::vector<std::pair<std::string, ast::Pos>>& out);
  void find_cycles();
  std::vector<size_t> topo_order();
  void check_unions();

  std::optional<Schema> stream_schema(const std::string& name);
  std::string known_streams() const;
  // Stream `name` as this script knows it: its own, or the engine's (AnalyzeOptions::existing,
  // taken into streams_ when first asked for), or null.
  StreamState* find_stream(std::string_view name);

  std::optional<Plan> query(const ast::Query& q, bool top);
  std::optional<Plan> stream(const ast::StreamExpr& s);
  std::string describe(const ast::StreamExpr& s) const;

  std::optional<TExpr> value(const ast::Expr& e, const Scope& sc);
  std::optional<TExpr> pred(const ast::Expr& e, const Scope& sc);
  std::optional<TExpr> ref(const ast::Expr& e, const Scope& sc);
  std::optional<TExpr> call(const ast::Expr& e, const Scope& sc);
  std::optional<TExpr> duration(const ast::Expr& e);

  const ast::Script& script_;
  const AnalyzeOptions& options_;
  ast::Script* consume_;
  Diagnostics errors_;
  std::map<std::string, StreamState, std::less<>> streams_;
  std::vector<std::string> inputs_;
  std::vector<QueryState> queries_;
};

// ---------------------------------------------------------------------------------------------
// Phase 1: declarations.

StreamState* Analyzer::find_stream(std::string_view name) {
  if (auto it = streams_.find(name); it != streams_.end()) return &it->second;
  if (!options_.existing) return nullptr;
  std::optional<StreamInfo> info = options_.existing->find(name);
  if (!info) return nullptr;
  StreamState& st = streams_[std::string(name)];
  st.is_input = info->is_input;
  st.existing = true;
  st.schema = std::move(info->schema);
  return &st;
}

void Analyzer::declare_inputs() {
  for (const auto& stmt : script_.statements) {
    const auto* cs = std::get_if<ast::CreateStream>(&stmt);
    if (!cs) continue;
    Schema schema;
    std::unordered_set<std::string_view> seen;  // (a wide stream is checked in linear time)
    bool ok = true;
    for (const auto& a : cs->attrs) {
      std::string t = upper(a.type);
      Type type;
      if (t == "INT") {
        type = Type::Int;
      } else if (t == "FLOAT") {
        type = Type::Float;
      } else if (t == "STRING") {
        type = Type::String;
      } else {
        error(a.type_pos, "unknown type '" + a.type + "' for attribute '" + a.name +
                              "'; the types are INT, FLOAT and STRING");
        ok = false;
        continue;
      }
      if (!seen.insert(a.name).second) {
        error(a.pos, "duplicate attribute '" + a.name + "' in stream '" + cs->name + "'");
        ok = false;
        continue;
      }
      schema.attrs.push_back({a.name, type});
    }
    if (StreamState* found = find_stream(cs->name)) {
      StreamState& st = *found;
      if (st.existing && st.is_input && ok && st.schema == schema) {
        // Re-declaring an engine input with the same schema is harmless (several scripts each
        // declare the stream they read).
        inputs_.push_back(cs->name);
        continue;
      }
      if (st.existing) {
        error(cs->pos, "stream '" + cs->name + "' already exists in the engine with schema " +
                           st.schema->to_string());
      } else {
        error(cs->pos, "stream '" + cs->name + "' is declared twice");
      }
      continue;
    }
    StreamState& st = streams_[cs->name];
    st.is_input = true;
    st.schema = ok ? std::optional<Schema>(std::move(schema)) : std::nullopt;
    inputs_.push_back(cs->name);
  }
}

void Analyzer::declare_queries() {
  queries_.reserve(static_cast<size_t>(std::count_if(
      script_.statements.begin(), script_.statements.end(),
      [](const ast::Statement& s) { return std::holds_alternative<ast::Query>(s); })));
  for (size_t k = 0; k < script_.statements.size(); ++k) {
    const auto* q = std::get_if<ast::Query>(&script_.statements[k]);
    if (!q) continue;
    QueryState qs;
    qs.ast = q;
    qs.statement = k;
    qs.pos = q->pos;
    qs.number = static_cast<uint32_t>(queries_.size() + 1);
    if (q->publish) {
      qs.publish = *q->publish;
      qs.publish_pos = q->publish_pos;
    } else {
      qs.publish = "q" + std::to_string(qs.number);
      qs.publish_pos = q->pos;
    }
    collect_reads(q->from, qs.reads);
    queries_.push_back(std::move(qs));
  }
  for (size_t i = 0; i < queries_.size(); ++i) {
    QueryState& qs = queries_[i];
    const StreamState* published = find_stream(qs.publish);
    if (published && published->is_input) {
      qs.publish_ok = false;
      if (qs.ast->publish) {
        error(qs.publish_pos, "cannot PUBLISH to '" + qs.publish +
                                  "': it is an input stream declared by CREATE STREAM");
      } else {
        error(qs.publish_pos, "query " + std::to_string(qs.number) + " publishes to '" +
                                  qs.publish +
                                  "' by default, which is an input stream; add PUBLISH name");
      }
      continue;
    }
    streams_[qs.publish].publishers.push_back(i);
  }
  // Dependencies: every script publisher of every stream read.
  for (auto& qs : queries_) {
    std::set<size_t> deps;
    for (const auto& [name, pos] : qs.reads) {
      const StreamState* st = find_stream(name);
      if (!st) continue;
      for (size_t p : st->publishers) deps.insert(p);
    }
    qs.deps.assign(deps.begin(), deps.end());
  }
}

void Analyzer::collect_reads(const ast::StreamExpr& s,
                             std::vector<std::pair<std::string, ast::Pos>>& out) {
  if (s.kind == StreamKind::Name) out.emplace_back(s.name, s.pos);
  for (const auto& in : s.inputs) collect_reads(in, out);
  if (s.kind == StreamKind::Subquery && s.subquery) collect_reads(s.subquery->from, out);
}

// ---------------------------------------------------------------------------------------------
// Phase 2: cycles (Tarjan's SCCs over "query i feeds query j") and the topological order.

void Analyzer::find_cycles() {
  const size_t n = queries_.size();
  std::vector<std::vector<size_t>> succ(n);  // publisher → subscriber
  for (size_t j = 0; j < n; ++j)
    for (size_t i : queries_[j].deps) succ[i].push_back(j);

  std::vector<int> index(n, -1), low(n, 0), comp(n, -1);
  std::vector<bool> on_stack(n, false);
  std::vector<size_t> stack;
  int counter = 0, ncomp = 0;
  std::function<void(size_t)> strong = [&](size_t v) {
    index[v] = low[v] = counter++;
    stack.push_back(v);
    on_stack[v] = true;
    for (size_t w : succ[v]) {
      if (index[w] < 0) {
        strong(w);
        low[v] = std::min(low[v], low[w]);
      } else if (on_stack[w]) {
        low[v] = std::min(low[v], index[w]);
      }
    }
    if (low[v] == index[v]) {
      size_t w;
      do {
        w = stack.back();
        stack.pop_back();
        on_stack[w] = false;
        comp[w] = ncomp;
      } while (w != v);
      ++ncomp;
    }
  };
  for (size_t v = 0; v < n; ++v)
    if (index[v] < 0) strong(v);

  // Only components with a cycle need a path: more than one query, or a query reading itself.
  std::vector<size_t> comp_size(ncomp, 0);
  for (size_t v = 0; v < n; ++v) ++comp_size[comp[v]];
  std::vector<bool> reported(ncomp, false);
  for (size_t q0 = 0; q0 < n; ++q0) {
    int c = comp[q0];
    if (reported[c]) continue;
    if (comp_size[c] == 1 &&
        std::find(succ[q0].begin(), succ[q0].end(), q0) == succ[q0].end())
      continue;
    // Shortest path q0 → … → q0 inside the component (BFS); none means a trivial component.
    std::vector<long> parent(n, -1);
    std::queue<size_t> bfs;
    bfs.push(q0);
    long closing = -1;  // the query whose output q0 reads
    std::vector<bool> seen(n, false);
    while (!bfs.empty() && closing < 0) {
      size_t v = bfs.front();
      bfs.pop();
      for (size_t w : succ[v]) {
        if (comp[w] != c) continue;
        if (w == q0) {
          closing = static_cast<long>(v);
          break;
        }
        if (!seen[w]) {
          seen[w] = true;
          parent[w] = static_cast<long>(v);
          bfs.push(w);
        }
      }
    }
    if (closing < 0) continue;
    reported[c] = true;
    std::vector<size_t> path;  // q0 … closing
    for (long v = closing; v >= 0 && static_cast<size_t>(v) != q0; v = parent[v])
      path.push_back(static_cast<size_t>(v));
    path.push_back(q0);
    std::reverse(path.begin(), path.end());
    std::string text;
    for (size_t v : path) text += queries_[v].publish + " -> ";
    text += queries_[q0].publish;
    // Point at q0's read of the stream the closing query publishes.
    ast::Pos pos = queries_[q0].ast->pos;
    for (const auto& [name, p] : queries_[q0].reads)
      if (name == queries_[closing].publish) {
        pos = p;
        break;
      }
    error(pos, "cycle of subscriptions: " + text);
  }
}

std::vector<size_t> Analyzer::topo_order() {
  const size_t n = queries_.size();
  std::vector<std::vector<size_t>> succ(n);
  std::vector<size_t> indegree(n, 0);
  for (size_t j = 0; j < n; ++j)
    for (size_t i : queries_[j].deps) {
      succ[i].push_back(j);
      ++indegree[j];
    }
  std::priority_queue<size_t, std::vector<size_t>, std::greater<>> ready;
  for (size_t i = 0; i < n; ++i)
    if (indegree[i] == 0) ready.push(i);
  std::vector<size_t> order;
  while (!ready.empty()) {
    size_t v = ready.top();
    ready.pop();
    order.push_back(v);
    for (size_t w : succ[v])
      if (--indegree[w] == 0) ready.push(w);
  }
  return order;
}

// ---------------------------------------------------------------------------------------------
// Stream lookup.

// The schema of a readable stream, or nullopt when it exists but its schema is not known (its
// publishers failed, or it is part of a cycle): that was reported elsewhere.
std::optional<Schema> Analyzer::stream_schema(const std::string& name) {
  const StreamState* found = find_stream(name);
  if (!found) return std::nullopt;
  const StreamState& st = *found;
  if (st.schema) return st.schema;
  for (size_t p : st.publishers) {
    if (!queries_[p].done) return std::nullopt;
  }
  for (size_t p : st.publishers)
    if (queries_[p].plan) return queries_[p].plan->schema;
  return std::nullopt;
}

std::string Analyzer::known_streams() const {
  std::set<std::string> names;  // (an error's message: it may go over every stream)
  for (const auto& [name, st] : streams_)
    if (st.is_input || !st.publishers.empty() || st.existing) names.insert(name);
  if (options_.existing)
    for (std::string& name : options_.existing->names()) names.insert(std::move(name));
  std::string out;
  for (const std::string& name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out.empty() ? "(none)" : out;
}

std::string Analyzer::describe(const ast::StreamExpr& s) const {
  switch (s.kind) {
    case StreamKind::Name:
      return s.name;
    case StreamKind::Filter:
      return s.inputs.empty() ? "the FILTER" : describe(s.inputs[0]);
    case StreamKind::Subquery:
      if (s.subquery && !s.subquery->has_select) return describe(s.subquery->from);
      return "the subquery";
    case StreamKind::Next:
      return "the NEXT expression";
    case StreamKind::Fold:
      return "the FOLD expression";
    case StreamKind::Union:
      return "the UNION";
  }
  return "the input";
}

// ---------------------------------------------------------------------------------------------
// Queries and stream expressions.

std::optional<Plan> Analyzer::query(const ast::Query& q, bool top) {
  if (!top && q.publish)
    error(q.publish_pos, "PUBLISH is only allowed at the end of a top-level query");
  std::optional<Plan> from = stream(q.from);
  if (!q.has_select || !from) return from;

  Plan p;
  p.kind = PlanKind::Select;
  p.pos = q.pos;
  Scope sc;
  sc.ctx = Ctx::Select;
  sc.first = &from->schema;
  sc.first_desc = describe(q.from);
  bool ok = true;
  std::unordered_set<std::string> seen;  // output names (checked in linear time)
  auto add = [&](const ast::Pos& pos, std::string name, TExpr e) {
    if (!seen.insert(name).second) {
      error(pos, "duplicate output attribute '" + name + "' in SELECT; rename one with AS");
      ok = false;
      return;
    }
    p.schema.attrs.push_back({std::move(name), e.type});
    p.items.push_back(std::move(e));
  };
  for (const auto& item : q.items) {
    if (item.star) {
      for (size_t i = 0; i < from->schema.size(); ++i) {
        TExpr r;
        r.op = TOp::Ref;
        r.side = Side::First;
        r.index = static_cast<uint32_t>(i);
        r.type = from->schema.attrs[i].type;
        add(item.pos, from->schema.attrs[i].name, std::move(r));
      }
      continue;
    }
    std::optional<TExpr> v = value(item.value, sc);
    std::string name;
    if (item.alias) {
      name = *item.alias;
    } else if (item.value.kind == ExprKind::Ref &&
               (item.value.scope == RefScope::Bare || item.value.scope == RefScope::First)) {
      name = item.value.text;
    } else {
      error(item.pos, "this SELECT item needs a name: only an attribute reference may omit AS");
      ok = false;
      continue;
    }
    if (!v) {
      ok = false;
      continue;
    }
    add(item.pos, std::move(name), std::move(*v));
  }
  if (!ok) return std::nullopt;
  p.inputs.push_back(std::move(*from));
  return p;
}

std::optional<Plan> Analyzer::stream(const ast::StreamExpr& s) {
  switch (s.kind) {
    case StreamKind::Name: {
      const StreamState* st = find_stream(s.name);
      if (!st || (st->publishers.empty() && !st->is_input && !st->existing)) {
        error(s.pos, "unknown stream '" + s.name + "'; known streams: " + known_streams());
        return std::nullopt;
      }
      std::optional<Schema> schema = stream_schema(s.name);
      if (!schema) return std::nullopt;
      Plan p;
      p.kind = PlanKind::Source;
      p.pos = s.pos;
      p.stream = s.name;
      p.schema = std::move(*schema);
      return p;
    }
    case StreamKind::Subquery:
      if (!s.subquery) return std::nullopt;
      return query(*s.subquery, /*top=*/false);
    case StreamKind::Filter: {
      if (s.inputs.size() != 1) return std::nullopt;
      std::optional<Plan> in = stream(s.inputs[0]);
      if (!in) return std::nullopt;
      Scope sc;
      sc.ctx = Ctx::Filter;
      sc.first = &in->schema;
      sc.first_desc = describe(s.inputs[0]);
      std::optional<TExpr> pr = s.pred ? pred(*s.pred, sc) : std::optional<TExpr>(make_true());
      if (!pr) return std::nullopt;
      Plan p;
      p.kind = PlanKind::Filter;
      p.pos = s.pos;
      p.schema = in->schema;
      p.pred = std::move(*pr);
      p.inputs.push_back(std::move(*in));
      return p;
    }
    case StreamKind::Next:
    case StreamKind::Fold: {
      if (s.inputs.size() != 2) return std::nullopt;
      const bool fold = s.kind == StreamKind::Fold;
      std::optional<Plan> left = stream(s.inputs[0]);
      std::optional<Plan> right = stream(s.inputs[1]);
      if (!left || !right) return std::nullopt;
      const Schema& s1 = left->schema;
      const Schema& s2 = right->schema;
      Scope sc;
      sc.ctx = fold ? Ctx::Fold : Ctx::Next;
      sc.first = &s1;
      sc.second = &s2;
      sc.first_desc = describe(s.inputs[0]);
      sc.second_desc = describe(s.inputs[1]);
      bool ok = true;
      auto predicate = [&](const ast::Box<ast::Expr>& e) {
        if (!e) return make_true();
        std::optional<TExpr> t = pred(*e, sc);
        if (!t) {
          ok = false;
          return make_true();
        }
        return std::move(*t);
      };
      Plan p;
      p.kind = fold ? PlanKind::Fold : PlanKind::Next;
      p.pos = s.pos;
      p.pred = predicate(s.pred);
      if (fold) p.pred2 = predicate(s.pred2);
      if (!fold && s.pred2) {
        error(s.pos, "NEXT takes one predicate");
        ok = false;
      }
      std::vector<std::string> names = shifted_left_names(s1, s2);
      for (size_t i = 0; i < s1.size(); ++i) p.schema.attrs.push_back({names[i], s1.attrs[i].type});
      for (const auto& a : s2.attrs) p.schema.attrs.push_back(a);

      std::set<uint32_t> assigned;
      for (const auto& agg : s.aggregates) {
        std::optional<uint32_t> target;
        if (auto i = s1.find(agg.name); !i) {
          error(agg.pos, "FOLD aggregate target '" + agg.name + "' is not an attribute of " +
                             sc.first_desc + " (" + s1.names() +
                             "); add it to the left side first, e.g. (SELECT *, 0 AS " + agg.name +
                             " FROM ...)");
          ok = false;
        } else if (s2.find(agg.name)) {
          error(agg.pos, "FOLD aggregate cannot assign '" + agg.name + "': " + sc.second_desc +
                             " also has '" + agg.name +
                             "', so the output's value is the last consumed event's; "
                             "aggregates may only assign attributes that only the left side has");
          ok = false;
        } else if (!assigned.insert(static_cast<uint32_t>(*i)).second) {
          error(agg.pos, "attribute '" + agg.name + "' is assigned by two FOLD aggregates");
          ok = false;
        } else {
          target = static_cast<uint32_t>(*i);
        }
        std::optional<TExpr> v = value(agg.value, sc);
        if (!v || !target) {
          ok = false;
          continue;
        }
        Type want = s1.attrs[*target].type;
        if (v->type != want) {
          if (v->type == Type::Int && want == Type::Float) {
            v = to_float(std::move(*v));
          } else {
            error(agg.pos, "FOLD aggregate '" + agg.name + "' has type " + to_string(v->type) +
                               " but attribute '" + agg.name + "' is " + to_string(want));
            ok = false;
            continue;
          }
        }
        p.aggregates.push_back({*target, std::move(*v)});
      }
      if (!fold && !s.aggregates.empty()) {
        error(s.aggregates.front().pos, "NEXT takes no aggregates");
        ok = false;
      }
      if (!ok) return std::nullopt;
      p.inputs.push_back(std::move(*left));
      p.inputs.push_back(std::move(*right));
      return p;
    }
    case StreamKind::Union: {
      std::vector<Plan> ins;
      bool ok = true;
      for (const auto& in : s.inputs) {
        std::optional<Plan> p = stream(in);
        if (!p) {
          ok = false;
          continue;
        }
        if (!ins.empty() && !(p->schema == ins.front().schema)) {
          error(in.pos, "UNION inputs must have identical schemas: " +
                            ins.front().schema.to_string() + " vs " + p->schema.to_string());
          ok = false;
          continue;
        }
        ins.push_back(std::move(*p));
      }
      if (!ok || ins.empty()) return std::nullopt;
      Plan p;
      p.kind = PlanKind::Union;
      p.pos = s.pos;
      p.schema = ins.front().schema;
      p.inputs = std::move(ins);
      return p;
    }
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Expressions.

std::optional<TExpr> Analyzer::ref(const ast::Expr& e, const Scope& sc) {
  const bool two_rows = sc.ctx == Ctx::Next || sc.ctx == Ctx::Fold;
  Side side = Side::First;
  const Schema* schema = sc.first;
  const std::string* desc = &sc.first_desc;
  std::string where = two_rows ? " in $1" : "";
  switch (e.scope) {
    case RefScope::Bare:
    case RefScope::First:
      break;
    case RefScope::Last:
      if (sc.ctx != Ctx::Fold) {
        error(e.pos, "'$." + e.text +
                         "' (the last value) is only allowed in FOLD{...} predicates and "
                         "aggregates");
        return std::nullopt;
      }
      side = Side::Last;
      where = " in $.";
      break;
    case RefScope::Second:
      if (!two_rows) {
        error(e.pos, "'$2." + e.text +
                         "' (the incoming event) is only allowed in NEXT{...} and FOLD{...}");
        return std::nullopt;
      }
      side = Side::Second;
      schema = sc.second;
      desc = &sc.second_desc;
      where = " in $2";
      break;
  }
  std::optional<size_t> i = schema ? schema->find(e.text) : std::nullopt;
  if (!i) {
    std::string has = schema && schema->size() ? " has: " + schema->names() : " has no attributes";
    error(e.pos, "unknown attribute '" + e.text + "'" + where + "; " + *desc + has);
    return std::nullopt;
  }
  TExpr t;
  t.op = TOp::Ref;
  t.side = side;
  t.index = static_cast<uint32_t>(*i);
  t.type = schema->attrs[*i].type;
  return t;
}

std::optional<TExpr> Analyzer::duration(const ast::Expr& e) {
  const int64_t num = unit_us(e.unit);
  const int64_t den = engine_us(options_.unit);
  if (!e.is_float) {
    int64_t us;
    if (__builtin_mul_overflow(e.int_value, num, &us)) {
      error(e.pos, "duration literal out of range");
      return std::nullopt;
    }
    if (us % den == 0) return make_const_int(us / den);
    return make_const_float(static_cast<double>(us) / static_cast<double>(den));
  }
  double v = num >= den ? e.float_value * static_cast<double>(num / den)
                        : e.float_value / static_cast<double>(den / num);
  if (!std::isfinite(v)) {
    error(e.pos, "duration literal out of range");
    return std::nullopt;
  }
  double r = std::nearbyint(v);
  if (std::fabs(v - r) <= 1e-9 * std::max(1.0, std::fabs(v)) && std::fabs(r) < 9.0e18)
    return make_const_int(static_cast<int64_t>(r));
  return make_const_float(v);
}

std::optional<TExpr> Analyzer::call(const ast::Expr& e, const Scope& sc) {
  const std::string name = upper(e.text);
  const FuncInfo* info = nullptr;
  for (const auto& f : kFunctions)
    if (name == f.name) info = &f;
  if (!info) {
    error(e.pos, "unknown function '" + e.text + "'; functions: " + function_list());
    return std::nullopt;
  }
  std::vector<TExpr> args;
  bool ok = true;
  for (const auto& a : e.args) {
    std::optional<TExpr> v = value(a, sc);
    if (!v) {
      ok = false;
      continue;
    }
    args.push_back(std::move(*v));
  }
  if (e.args.size() != info->arity) {
    error(e.pos, std::string(info->name) + " takes " + std::to_string(info->arity) +
                     (info->arity == 1 ? " argument" : " arguments") + ", got " +
                     std::to_string(e.args.size()) + ": " + info->signature);
    return std::nullopt;
  }
  if (!ok) return std::nullopt;
  auto mismatch = [&]() -> std::optional<TExpr> {
    std::string got;
    for (const auto& a : args) got += (got.empty() ? "" : ", ") + std::string(to_string(a.type));
    error(e.pos,
          std::string(info->name) + "(" + got + ") does not fit; expected " + info->signature);
    return std::nullopt;
  };
  Type result;
  switch (info->func) {
    case Func::Contains:
    case Func::Similarity:
      if (args[0].type != Type::String || args[1].type != Type::String) return mismatch();
      result = info->func == Func::Contains ? Type::Int : Type::Float;
      break;
    case Func::Length:
    case Func::Lower:
    case Func::Upper:
      if (args[0].type != Type::String) return mismatch();
      result = info->func == Func::Length ? Type::Int : Type::String;
      break;
    case Func::Abs:
      if (!is_numeric(args[0].type)) return mismatch();
      result = args[0].type;
      break;
    case Func::Min:
    case Func::Max: {
      Type a = args[0].type, b = args[1].type;
      if (a == Type::String && b == Type::String) {
        result = Type::String;
      } else if (is_numeric(a) && is_numeric(b)) {
        result = (a == Type::Float || b == Type::Float) ? Type::Float : Type::Int;
        if (result == Type::Float)
          for (auto& x : args) x = to_float(std::move(x));
      } else {
        return mismatch();
      }
      break;
    }
    default:
      return mismatch();
  }
  TExpr t = make_node(TOp::Call, result, std::move(args));
  t.func = info->func;
  return t;
}

std::optional<TExpr> Analyzer::value(const ast::Expr& e, const Scope& sc) {
  switch (e.kind) {
    case ExprKind::IntLit:
      return make_const_int(e.int_value);
    case ExprKind::FloatLit:
      return make_const_float(e.float_value);
    case ExprKind::StringLit: {
      TExpr t;
      t.op = TOp::Const;
      t.type = Type::String;
      t.value = string_slot(intern(e.text));
      return t;
    }
    case ExprKind::DurationLit:
      return duration(e);
    case ExprKind::Ref:
      return ref(e, sc);
    case ExprKind::Dur: {
      TExpr t;
      t.op = TOp::Dur;
      t.type = Type::Int;
      return t;
    }
    case ExprKind::Neg: {
      if (e.args.size() != 1) return std::nullopt;
      std::optional<TExpr> k = value(e.args[0], sc);
      if (!k) return std::nullopt;
      if (k->type == Type::String) {
        error(e.pos, "unary '-' needs INT or FLOAT, got STRING");
        return std::nullopt;
      }
      Type t = k->type;
      std::vector<TExpr> kids;
      kids.push_back(std::move(*k));
      return make_node(TOp::Neg, t, std::move(kids));
    }
    case ExprKind::Binary: {
      if (e.args.size() != 2) return std::nullopt;
      std::optional<TExpr> l = value(e.args[0], sc);
      std::optional<TExpr> r = value(e.args[1], sc);
      if (!l || !r) return std::nullopt;
      bool ok = true;
      for (int i = 0; i < 2; ++i) {
        const TExpr& k = i == 0 ? *l : *r;
        if (k.type == Type::String) {
          error(e.args[i].pos, std::string("operator '") + binop_text(e.op) +
                                   "' needs INT or FLOAT operands, got STRING");
          ok = false;
        }
      }
      if (!ok) return std::nullopt;
      Type t = Type::Int;
      if (e.op == ast::BinOp::Pow || l->type == Type::Float || r->type == Type::Float) {
        t = Type::Float;
        l = to_float(std::move(*l));
        r = to_float(std::move(*r));
      }
      std::vector<TExpr> kids;
      kids.push_back(std::move(*l));
      kids.push_back(std::move(*r));
      return make_node(binop_top(e.op), t, std::move(kids));
    }
    case ExprKind::Call:
      return call(e, sc);
    case ExprKind::Compare:
    case ExprKind::And:
    case ExprKind::Or:
    case ExprKind::Not:
      error(e.pos, "expected a value here, but this is a condition");
      return std::nullopt;
  }
  return std::nullopt;
}

std::optional<TExpr> Analyzer::pred(const ast::Expr& e, const Scope& sc) {
  switch (e.kind) {
    case ExprKind::Compare: {
      if (e.args.size() != 2) return std::nullopt;
      std::optional<TExpr> l = value(e.args[0], sc);
      std::optional<TExpr> r = value(e.args[1], sc);
      if (!l || !r) return std::nullopt;
      if (l->type != r->type) {
        if (is_numeric(l->type) && is_numeric(r->type)) {
          l = to_float(std::move(*l));
          r = to_float(std::move(*r));
        } else {
          error(e.pos, std::string("cannot compare ") + to_string(l->type) + " with " +
                           to_string(r->type));
          return std::nullopt;
        }
      }
      std::vector<TExpr> kids;
      kids.push_back(std::move(*l));
      kids.push_back(std::move(*r));
      return make_node(cmp_top(e.cmp), Type::Int, std::move(kids));
    }
    case ExprKind::And:
    case ExprKind::Or:
    case ExprKind::Not: {
      std::vector<TExpr> kids;
      bool ok = true;
      for (const auto& a : e.args) {
        std::optional<TExpr> k = pred(a, sc);
        if (!k) {
          ok = false;
          continue;
        }
        kids.push_back(std::move(*k));
      }
      if (!ok || kids.empty()) return std::nullopt;
      TOp op = e.kind == ExprKind::And ? TOp::And : e.kind == ExprKind::Or ? TOp::Or : TOp::Not;
      if (op != TOp::Not && kids.size() == 1) return std::move(kids.front());
      return make_node(op, Type::Int, std::move(kids));
    }
    default:
      error(e.pos, "expected a condition (a comparison such as a = b), but this is a value");
      return std::nullopt;
  }
}

// ---------------------------------------------------------------------------------------------
// Phase 4 and the driver.

void Analyzer::check_unions() {
  for (auto& [name, st] : streams_) {
    std::optional<Schema> reference = st.existing && !st.is_input ? st.schema : std::nullopt;
    std::optional<size_t> first;
    for (size_t p : st.publishers) {
      const QueryState& qs = queries_[p];
      if (!qs.plan) continue;
      if (!reference) {
        reference = qs.plan->schema;
        first = p;
        continue;
      }
      if (qs.plan->schema == *reference) continue;
      if (first) {
        error(qs.publish_pos, "query " + std::to_string(qs.number) + " publishes '" + name +
                                  "' with schema " + qs.plan->schema.to_string() + ", but query " +
                                  std::to_string(queries_[*first].number) +
                                  " publishes it with schema " + reference->to_string() +
                                  "; queries publishing one stream form a union and " +
                                  "need identical schemas");
      } else {
        error(qs.publish_pos, "query " + std::to_string(qs.number) + " publishes '" + name +
                                  "' with schema " + qs.plan->schema.to_string() +
                                  ", but the engine already publishes it with schema " +
                                  reference->to_string());
      }
    }
  }
}

AnalyzeResult Analyzer::run() {
  declare_inputs();
  declare_queries();
  find_cycles();
  std::vector<size_t> order = topo_order();
  std::vector<bool> in_order(queries_.size(), false);
  for (size_t i : order) in_order[i] = true;
  std::vector<size_t> all = order;
  for (size_t i = 0; i < queries_.size(); ++i)
    if (!in_order[i]) all.push_back(i);  // caught in (or behind) a cycle: analysed last
  for (size_t i : all) {
    QueryState& qs = queries_[i];
    if (std::optional<Plan> plan = query(*qs.ast, /*top=*/true)) qs.plan = std::move(*plan);
    qs.done = true;
    if (consume_) {
      qs.ast = nullptr;
      consume_->statements[qs.statement] = ast::Query();
    }
  }
  if (consume_) consume_->statements = {};  // what is left: the array, the CREATE STREAMs
  check_unions();

  AnalyzeResult result;
  if (!errors_.empty()) {
    std::stable_sort(errors_.begin(), errors_.end(), [](const Diagnostic& a, const Diagnostic& b) {
      return a.line != b.line ? a.line < b.line : a.column < b.column;
    });
    result.errors = std::move(errors_);
    return result;
  }

  AnalyzedScript out;
  out.inputs = inputs_;
  out.queries.reserve(queries_.size());
  for (auto& qs : queries_) {
    QueryPlan qp;
    qp.number = qs.number;
    qp.publish = qs.publish;
    qp.pos = qs.pos;
    qp.root = std::move(*qs.plan);
    qs.plan = {};
    out.queries.push_back(std::move(qp));
  }
  for (size_t i : order) out.topo_order.push_back(queries_[i].number);
  // The catalog: this script's inputs and published streams, plus the engine streams it reads.
  std::set<std::string> read;
  for (const auto& qs : queries_)
    for (const auto& [name, pos] : qs.reads) read.insert(name);
  for (const auto& [name, st] : streams_) {
    bool mine = (st.is_input && !st.existing) || !st.publishers.empty() ||
                std::find(inputs_.begin(), inputs_.end(), name) != inputs_.end();
    if (!mine && !read.count(name)) continue;
    StreamInfo info;
    info.is_input = st.is_input;
    for (size_t p : st.publishers) info.publishers.push_back(queries_[p].number);
    if (st.schema) {
      info.schema = *st.schema;
    } else if (!st.publishers.empty()) {
      info.schema = out.queries[st.publishers.front()].root.schema;
    }
    out.catalog.streams.emplace(name, std::move(info));
  }
  result.script = std::move(out);
  return result;
}

}  // namespace

AnalyzeResult analyze(const ast::Script& script, const AnalyzeOptions& options) {
  return Analyzer(script, options).run();
}

AnalyzeResult compile_script(std::string_view text, const AnalyzeOptions& options) {
  ParseResult parsed = parse_script(text, ParseOptions{.threads = options.threads});
  if (!parsed.script) {
    AnalyzeResult r;
    r.errors = std::move(parsed.errors);
    return r;
  }
  return Analyzer(*parsed.script, options, &*parsed.script).run();
}

}  // namespace cayuga
