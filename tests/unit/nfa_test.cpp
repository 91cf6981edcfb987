// The automaton build's bookkeeping (nfa/): merging by signature across scripts and after
// removals, a failed build changing nothing, the stream table; and the compact storage it rests
// on (compiler/fixed_vector.h, shared schemas and bytecode), which must never change results.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "compiler/analyzer.h"
#include "compiler/expr.h"
#include "compiler/fixed_vector.h"
#include "nfa/automaton.h"

namespace cayuga {
namespace {

constexpr const char* kStock = "CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\n";

AnalyzedScript analyzed(const std::string& text) {
  AnalyzeResult r = compile_script(text);
  for (const auto& d : r.errors) ADD_FAILURE() << d.line << ":" << d.column << ": " << d.message;
  return r.script ? std::move(*r.script) : AnalyzedScript{};
}

// Adds a script to `a` (no error expected).
void add(nfa::Automaton& a, const std::string& text, nfa::BuildOptions options = {}) {
  std::string err = nfa::build(analyzed(text), a, options);
  EXPECT_EQ(err, "");
}

size_t live_nodes(const nfa::Automaton& a) {
  size_t n = 0;
  for (const auto& node : a.nodes) n += !node.dead;
  return n;
}

const std::string kNext =
    "SELECT * FROM FILTER{Name = 'IBM'}(Stock) NEXT{$1.Name = $2.Name AND $2.Price > $1.Price} "
    "Stock";

TEST(NfaBuild, LaterScriptsMergeWithEarlierOnes) {
  nfa::Automaton a;
  add(a, std::string(kStock) + kNext + " PUBLISH A;");
  ASSERT_EQ(a.nodes.size(), 2u);  // START Stock, NEXT
  add(a, std::string(kStock) + kNext + " PUBLISH B;");
  EXPECT_EQ(a.nodes.size(), 2u);  // both shared
  EXPECT_EQ(a.nodes[1].users, 2u);
  // A different constant is a different node; without merging, nothing is shared.
  add(a, std::string(kStock) +
             "SELECT * FROM FILTER{Name = 'IBM'}(Stock) NEXT{$1.Name = $2.Name AND "
             "$2.Price > 2.0 * $1.Price} Stock PUBLISH C;");
  EXPECT_EQ(a.nodes.size(), 3u);
  add(a, std::string(kStock) + kNext + " PUBLISH D;", nfa::BuildOptions{false, false, false, {}});
  EXPECT_EQ(a.nodes.size(), 5u);
}

TEST(NfaBuild, RemovedNodesAreNotReused) {
  nfa::Automaton a;
  add(a, std::string(kStock) + kNext + " PUBLISH A;");
  std::vector<uint32_t> dead =
      nfa::remove_query(a, 0, [](const nfa::Emit&) {}, [](const nfa::Node&) {});
  EXPECT_EQ(dead.size(), 2u);
  EXPECT_EQ(live_nodes(a), 0u);
  add(a, std::string(kStock) + kNext + " PUBLISH B;");
  EXPECT_EQ(a.nodes.size(), 4u);  // a new START and NEXT: the dead ones stay dead
  EXPECT_EQ(live_nodes(a), 2u);
  EXPECT_EQ(a.queries[1].nodes.size(), 2u);
}

TEST(NfaBuild, FailedBuildChangesNothing) {
  nfa::Automaton a;
  add(a, std::string(kStock) + kNext + " PUBLISH A;");
  const std::string before = nfa::to_text(a);
  const size_t streams = a.streams.size();
  // A new stream first (in name order), then a clash on Stock.
  std::string err = nfa::build(analyzed("CREATE STREAM Aaa (X INT);\n"
                                        "CREATE STREAM Stock (Name STRING);\n"
                                        "SELECT X FROM Aaa;"),
                               a);
  EXPECT_NE(err.find("stream Stock already exists"), std::string::npos) << err;
  EXPECT_EQ(nfa::to_text(a), before);
  EXPECT_EQ(a.streams.size(), streams);
  EXPECT_EQ(a.find_stream("Aaa"), -1);
}

// The build that frees each plan once built (Engine::add_script's) makes the same automaton
// as the one that leaves the script alone, and leaves no plan behind. The script has a
// resubscription (B reads A's output), so a plan freed early that a later query still needed
// would show.
TEST(NfaBuild, ConsumingBuildMakesTheSameAutomaton) {
  const std::string text = std::string(kStock) + kNext + " PUBLISH A;\n" +
                           "SELECT Name FROM FILTER{Price > 10}(A) PUBLISH B;\n"
                           "SELECT * FROM (SELECT *, 0 AS V FROM FILTER{Volume > 5}(Stock)) "
                           "FOLD{$2.Name = $.Name, $2.Price > $.Price, $.V + $2.Volume AS V} "
                           "Stock PUBLISH C;\n";
  AnalyzedScript script = analyzed(text);
  nfa::Automaton kept, consumed;
  EXPECT_EQ(nfa::build(script, kept), "");
  EXPECT_EQ(nfa::build(std::move(script), consumed), "");
  EXPECT_EQ(nfa::to_text(consumed), nfa::to_text(kept));
  ASSERT_EQ(script.queries.size(), 3u);  // NOLINT(bugprone-use-after-move): the build's contract
  for (const QueryPlan& q : script.queries) EXPECT_EQ(dump(q.root), dump(Plan{}));
}

TEST(NfaBuild, StreamTable) {
  nfa::Automaton a;
  for (int i = 0; i < 1000; ++i) {
    nfa::Stream s;
    s.name = "s" + std::to_string(i);
    EXPECT_EQ(a.add_stream(std::move(s)), static_cast<uint32_t>(i));
  }
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(a.find_stream("s" + std::to_string(i)), i);
  EXPECT_EQ(a.find_stream("s1000"), -1);
  EXPECT_EQ(a.find_stream(""), -1);
  nfa::Automaton copy = a;
  EXPECT_EQ(copy.find_stream("s999"), 999);
}

TEST(NfaBuild, SharedSchemasAndLabels) {
  nfa::Automaton a;
  add(a, std::string(kStock) + kNext + " PUBLISH A;\n" + kNext + " PUBLISH B;");
  const auto& sa = a.streams[a.find_stream("A")].schema;
  const auto& sb = a.streams[a.find_stream("B")].schema;
  EXPECT_EQ(sa, sb);
  EXPECT_EQ(sa.attrs.begin(), sb.attrs.begin());  // one list
  EXPECT_EQ(sa.attrs.begin(), a.nodes[1].output_schema.attrs.begin());
  EXPECT_EQ(nfa::label(a, 1), "q1.n1 NEXT Stock");
}

// A FILTER that says nothing but an INT upper bound on DUR is marked dur_only (the runtime
// then checks `DUR <= max_dur` instead of running it); anything more is not.
TEST(NfaBuild, DurOnlyFilters) {
  struct Case {
    const char* pred;
    bool dur_only;
    int64_t max_dur;
  };
  const Case cases[] = {
      {"DUR < 5", true, 4},
      {"DUR <= 2 SEC", true, 2000},
      {"7 > DUR", true, 6},
      {"DUR < 9 AND DUR <= 3", true, 3},
      {"DUR < 5.5", false, 5},  // a FLOAT comparison rounds DUR
      {"DUR < 5 AND Price > 1.0", false, 4},
      {"DUR > 5", false, nfa::kNoDurBound},
      {"DUR < 5 OR DUR < 9", false, 8},
  };
  for (const Case& c : cases) {
    nfa::Automaton a;
    add(a, std::string(kStock) + "SELECT * FROM FILTER{" + c.pred + "}(Stock);");
    ASSERT_EQ(a.nodes.size(), 1u) << c.pred;
    ASSERT_EQ(a.nodes[0].emits.size(), 1u) << c.pred;
    const nfa::Emit& e = a.nodes[0].emits[0];
    ASSERT_EQ(e.stages.size(), 1u) << c.pred;
    EXPECT_EQ(e.stages[0].dur_only, c.dur_only) << c.pred;
    EXPECT_EQ(e.stages[0].max_dur, c.max_dur) << c.pred;
  }
}

// A node's filter leaves out the conjuncts the runtime decides before a visit, and only when
// the build is told the runtime does (BuildOptions::index, ::instance_index): what is left is
// the same program as that of a query written without them.
TEST(NfaBuild, FilterLeavesOutWhatTheIndexesDecide) {
  struct Case {
    const char* query;  // its NEXT/FOLD node is the last one built
    nfa::BuildOptions options;
    const char* left;  // the filter a query written with only this would get; null: TRUE
  };
  const nfa::BuildOptions plain{}, index{true, true, false, {}}, keys{true, false, true, {}};
  const std::string ibm = "FILTER{Name = 'IBM'}(Stock)";
  const std::string up = "FILTER{Price > 1.0}(Stock)";
  const Case cases[] = {
      // Every instance holds 'IBM' in Name: `$1.Name = $2.Name` is the atom Name = 'IBM'.
      {"NEXT{$1.Name = $2.Name AND $2.Price > $1.Price}", plain,
       "$1.Name = $2.Name AND $2.Price > $1.Price"},
      {"NEXT{$1.Name = $2.Name AND $2.Price > $1.Price}", index, "$2.Price > $1.Price"},
      {"NEXT{$2.Volume > 10 AND $2.Price > $1.Price}", index, "$2.Price > $1.Price"},
      {"FOLD{$2.Name = $.Name, $2.Price > $.Price,}", index, nullptr},
      {"FOLD{$2.Name = $.Name, $2.Price > $.Price,}", keys,
       "$2.Name = $.Name"},  // the instance index does not decide a constant
      // An INT attribute against a FLOAT constant is decided too; a string range is not (the
      // index does not check it).
      {"NEXT{$2.Volume > 10.5 AND $2.Price > $1.Price}", index, "$2.Price > $1.Price"},
      {"NEXT{$2.Name > 'A'}", index, "$2.Name > 'A'"},
  };
  for (const Case& c : cases) {
    nfa::Automaton a, want;
    add(a, std::string(kStock) + "SELECT * FROM " + ibm + " " + c.query + " Stock;", c.options);
    const nfa::Node& node = a.nodes.back();
    if (!c.left) {
      EXPECT_TRUE(node.filter_true) << c.query;
      continue;
    }
    EXPECT_FALSE(node.filter_true) << c.query;
    std::string q = c.query;
    const std::string op = q.substr(0, 4);
    add(want, std::string(kStock) + "SELECT * FROM " + ibm + " " + op + "{" + c.left +
                  (op == "FOLD" ? ", $2.Price > $.Price,}" : "}") + " Stock;");
    EXPECT_EQ(node.filter.disassemble(), want.nodes.back().filter.disassemble()) << c.query;
  }
  // The instance-index key `$1.Name = $2.Name` (instances hold any name) is left out with the
  // instance index only.
  for (const auto& [options, filter_true] :
       {std::pair{plain, false}, std::pair{index, false}, std::pair{keys, true}}) {
    nfa::Automaton a;
    add(a, std::string(kStock) + "SELECT * FROM " + up + " NEXT{$1.Name = $2.Name} Stock;",
        options);
    EXPECT_EQ(a.nodes.back().key_slot, 0);
    EXPECT_EQ(a.nodes.back().filter_true, filter_true) << options.index << options.instance_index;
  }
}

// Atoms name one of an event's first 65,536 attributes (the index packs them into 16 bits): a
// condition on a later one is no atom, so it stays in the node's filter with the index on.
TEST(NfaBuild, AtomsNameTheFirst65536AttributesOnly) {
  std::string wide = "CREATE STREAM Wide (";
  for (uint32_t i = 0; i <= nfa::kMaxAtomAttr + 1; ++i)
    wide += (i ? ", a" : "a") + std::to_string(i) + " INT";
  wide += ");\n";
  nfa::Automaton a, want;
  const nfa::BuildOptions index{true, true, false, {}};
  add(a, wide + "SELECT a0 FROM Wide NEXT{$2.a65535 = 7 AND $2.a65536 = 5} Wide;", index);
  const nfa::Node& node = a.nodes.back();
  ASSERT_EQ(node.guard.size(), 1u);
  EXPECT_EQ(node.guard[0].attr, nfa::kMaxAtomAttr);
  add(want, wide + "SELECT a0 FROM Wide NEXT{$2.a65536 = 5} Wide;");
  EXPECT_EQ(node.filter.disassemble(), want.nodes.back().filter.disassemble());
}

TEST(FixedVector, CopiesAreDeepAndSizesExact) {
  FixedVector<std::string> v(std::vector<std::string>{"a", "b", "c"});
  ASSERT_EQ(v.size(), 3u);
  FixedVector<std::string> w = v;
  w[0] = "z";
  EXPECT_EQ(v[0], "a");
  EXPECT_EQ(w[0], "z");
  EXPECT_FALSE(v == w);
  FixedVector<std::string> m = std::move(w);
  EXPECT_TRUE(w.empty());
  EXPECT_EQ(m.size(), 3u);
  EXPECT_EQ(std::string(m.back()), "c");
  FixedVector<int> e;
  EXPECT_TRUE(e.empty());
  EXPECT_EQ(e.begin(), e.end());
  EXPECT_EQ(FixedVector<int>({1, 2}), FixedVector<int>(std::vector<int>{1, 2}));
}

TEST(SharedArray, PoolSharesEqualArrays) {
  SharedArray<int32_t>::Pool pool;
  SharedArray<int32_t> a = pool.intern(SharedArray<int32_t>(std::vector<int32_t>{0, 1, -1}));
  SharedArray<int32_t> b = pool.intern(SharedArray<int32_t>(std::vector<int32_t>{0, 1, -1}));
  SharedArray<int32_t> c = pool.intern(SharedArray<int32_t>(std::vector<int32_t>{0, 1}));
  EXPECT_EQ(a.data(), b.data());
  EXPECT_NE(a.data(), c.data());
  EXPECT_EQ(b[2], -1);
  EXPECT_EQ(c.size(), 2u);
  // Many distinct arrays that nobody keeps: the pool drops them as it grows.
  for (int32_t i = 0; i < 10000; ++i) pool.intern(SharedArray<int32_t>(std::vector<int32_t>{i}));
  EXPECT_EQ(pool.intern(SharedArray<int32_t>(std::vector<int32_t>{0, 1, -1})).data(), a.data());
}

TEST(AttrList, CopyOnWrite) {
  Schema s{{{"Name", Type::String}, {"Price", Type::Float}}};
  Schema t = s;
  EXPECT_EQ(s.attrs.begin(), t.attrs.begin());
  t.attrs.push_back({"Volume", Type::Int});
  EXPECT_EQ(s.size(), 2u);
  EXPECT_EQ(t.size(), 3u);
  EXPECT_NE(s, t);
  EXPECT_EQ(t.to_string(), "(Name STRING, Price FLOAT, Volume INT)");
  Schema empty;
  EXPECT_TRUE(empty.attrs.empty());
  EXPECT_EQ(empty, Schema{});
}

// x > k over row 0.
TExpr greater_than(int64_t k) {
  TExpr ref;
  ref.op = TOp::Ref;
  ref.type = Type::Int;
  TExpr c;
  c.op = TOp::Const;
  c.type = Type::Int;
  c.value = int_slot(k);
  TExpr e;
  e.op = TOp::Gt;
  e.kids = {ref, c};
  return e;
}

TEST(Program, SharedCodeKeepsBehaviour) {
  Program p = Program::predicate(greater_than(5), single_row_ref);
  Program q = Program::predicate(greater_than(5), single_row_ref);
  Program r = Program::predicate(greater_than(7), single_row_ref);
  CodePool pool;
  pool.share(p);
  pool.share(q);
  pool.share(r);
  pool.share(q);  // already shared: no change
  EXPECT_EQ(pool.size(), 2u);
  Slot row[1] = {int_slot(6)};
  EvalInput in;
  in.rows[0] = in.rows[1] = row;
  EvalStats st;
  EXPECT_TRUE(p.eval_predicate(in, st));
  EXPECT_TRUE(q.eval_predicate(in, st));
  EXPECT_FALSE(r.eval_predicate(in, st));
  EXPECT_EQ(p.disassemble(), q.disassemble());
  // Copies share code and source; releasing one copy's source leaves the other's.
  Program copy = p;
  copy.release_source();
  EXPECT_EQ(copy.source().op, TOp::True);
  EXPECT_EQ(dump(p.source()), "($1[0] > 5)");
  EXPECT_EQ(copy.disassemble(), p.disassemble());
  Program moved = std::move(copy);
  EXPECT_TRUE(moved.eval_predicate(in, st));
  // Programs that are gone leave the pool as it grows.
  for (int64_t k = 100; k < 200; ++k) {
    Program t = Program::predicate(greater_than(k), single_row_ref);
    pool.share(t);
  }
  EXPECT_LT(pool.size(), 40u);
  // The default program: false, and a stable listing.
  EXPECT_FALSE(Program().eval_predicate(in, st));
  EXPECT_EQ(Program().disassemble(), "; predicate, value code, registers: 0\n");
}

}  // namespace
}  // namespace cayuga
