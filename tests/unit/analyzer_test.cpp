// Semantic analysis (compiler/analyzer.cpp): output schemas of every operator (CEL.md §5), name
// resolution (§4), typing, script-level rules (§2), the typed dumps, and a table of errors with
// their exact positions.
#include "compiler/analyzer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace cayuga {
namespace {

const char* const kStock = "CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\n";

// Compiles `text`, failing the test (with the rendered errors) if it does not compile.
AnalyzedScript compile_ok(const std::string& text, const AnalyzeOptions& options = {}) {
  AnalyzeResult r = compile_script(text, options);
  EXPECT_TRUE(r.errors.empty()) << render_all(r.errors, "test.cel", text);
  if (!r.script) return {};
  return std::move(*r.script);
}

// The output schema of query `n` (1-based) of `kStock + text`.
std::string schema_of(const std::string& text, size_t n = 1) {
  AnalyzedScript s = compile_ok(kStock + text);
  if (s.queries.size() < n) return "<no query " + std::to_string(n) + ">";
  return s.queries[n - 1].root.schema.to_string();
}

std::string plan_of(const std::string& text, const AnalyzeOptions& options = {}) {
  AnalyzedScript s = compile_ok(kStock + text, options);
  if (s.queries.empty()) return "<no query>";
  return dump(s.queries.front().root);
}

Diagnostics errors_of(const std::string& text, const AnalyzeOptions& options = {}) {
  AnalyzeResult r = compile_script(text, options);
  EXPECT_FALSE(r.script.has_value());
  return r.errors;
}

// ---------------------------------------------------------------------------------------------
// Output schemas.

TEST(AnalyzerSchema, SourceAndFilterKeepTheSchema) {
  EXPECT_EQ(schema_of("SELECT * FROM Stock;"), "(Name STRING, Price FLOAT, Volume INT)");
  EXPECT_EQ(schema_of("Stock;"), "(Name STRING, Price FLOAT, Volume INT)");
  EXPECT_EQ(schema_of("FILTER{Volume > 10}(Stock);"), "(Name STRING, Price FLOAT, Volume INT)");
  EXPECT_EQ(schema_of("SELECT * FROM FILTER{Volume > 10}(FILTER{Price > 1.0}(Stock));"),
            "(Name STRING, Price FLOAT, Volume INT)");
}

TEST(AnalyzerSchema, SelectItems) {
  EXPECT_EQ(schema_of("SELECT Price, Name FROM Stock;"), "(Price FLOAT, Name STRING)");
  EXPECT_EQ(schema_of("SELECT $1.Price, Volume * 2 AS V2, Price * 2 AS P2 FROM Stock;"),
            "(Price FLOAT, V2 INT, P2 FLOAT)");
  EXPECT_EQ(schema_of("SELECT *, 1 AS cnt, Price AS sumPrice, DUR AS d FROM Stock;"),
            "(Name STRING, Price FLOAT, Volume INT, cnt INT, sumPrice FLOAT, d INT)");
  EXPECT_EQ(
      schema_of("SELECT Volume / 2 AS a, Volume ^ 2 AS b, -Volume AS c, 'x' AS s FROM Stock;"),
      "(a INT, b FLOAT, c INT, s STRING)");
}

TEST(AnalyzerSchema, FunctionTypes) {
  EXPECT_EQ(schema_of("SELECT CONTAINS(Name, 'BM') AS a, SIMILARITY(Name, 'IBM') AS b, "
                      "ABS(Volume) AS c, ABS(Price) AS d, LENGTH(Name) AS e, LOWER(Name) AS f, "
                      "upper(Name) AS g FROM Stock;"),
            "(a INT, b FLOAT, c INT, d FLOAT, e INT, f STRING, g STRING)");
  EXPECT_EQ(schema_of("SELECT MIN(Volume, 3) AS a, MAX(Volume, Price) AS b, Min(Name, 'A') AS c "
                      "FROM Stock;"),
            "(a INT, b FLOAT, c STRING)");
}

TEST(AnalyzerSchema, NextShiftsLeftNames) {
  EXPECT_EQ(schema_of("SELECT * FROM Stock NEXT{$1.Name = $2.Name} Stock;"),
            "(Name_1 STRING, Price_1 FLOAT, Volume_1 INT, Name STRING, Price FLOAT, Volume INT)");
  // The query: the left side's names shift again (_1 → _1_1) when the result meets S2.
  EXPECT_EQ(schema_of("Stock NEXT{$1.Name = $2.Name AND $1.Price < $2.Price AND $2.Volume > 400} "
                      "Stock NEXT{$1.Name = $2.Name} Stock;"),
            "(Name_1_1 STRING, Price_1_1 FLOAT, Volume_1_1 INT, Name_1 STRING, Price_1 FLOAT, "
            "Volume_1 INT, Name STRING, Price FLOAT, Volume INT)");
  EXPECT_EQ(schema_of("Stock NEXT{} Stock NEXT{} Stock NEXT{} Stock;"),
            "(Name_1_1_1 STRING, Price_1_1_1 FLOAT, Volume_1_1_1 INT, Name_1_1 STRING, "
            "Price_1_1 FLOAT, Volume_1_1 INT, Name_1 STRING, Price_1 FLOAT, Volume_1 INT, "
            "Name STRING, Price FLOAT, Volume INT)");
  // Only shared names shift.
  EXPECT_EQ(schema_of("(SELECT Name, Price AS P FROM Stock) NEXT{} Stock;"),
            "(Name_1 STRING, P FLOAT, Name STRING, Price FLOAT, Volume INT)");
  // Right-nested by parentheses: the right side's own _1 names push the left ones to _1_1.
  EXPECT_EQ(schema_of("Stock NEXT{} (Stock NEXT{} Stock);"),
            "(Name_1_1 STRING, Price_1_1 FLOAT, Volume_1_1 INT, Name_1 STRING, Price_1 FLOAT, "
            "Volume_1 INT, Name STRING, Price FLOAT, Volume INT)");
}

TEST(AnalyzerSchema, NextShiftAvoidsCollisionsWithTheRightSide) {
  // S1 = (a, b), S2 = (a, a_1): a → a_1 would collide with S2's a_1, so it shifts on to a_1_1.
  AnalyzedScript s = compile_ok(
      "CREATE STREAM L (a INT, b INT); CREATE STREAM R (a INT, a_1 INT);\n"
      "L NEXT{} R;\n"
      // S1 = (a, a_1) S2 = (a): the taken a_1 shifts first.
      "(SELECT a, b AS a_1 FROM L) NEXT{} (SELECT a FROM R);\n");
  ASSERT_EQ(s.queries.size(), 2u);
  EXPECT_EQ(s.queries[0].root.schema.to_string(), "(a_1_1 INT, b INT, a INT, a_1 INT)");
  EXPECT_EQ(s.queries[1].root.schema.to_string(), "(a_1 INT, a_1_1 INT, a INT)");
}

TEST(AnalyzerSchema, FoldWithAggregates) {
  // The query.
  const std::string q =
      "(SELECT *, 1 AS cnt, Price AS sumPrice FROM Stock) FOLD{$1.Name = $2.Name, $.Price < "
      "$2.Price, $.cnt + 1 AS cnt, $.sumPrice + $2.Price AS sumPrice} Stock;";
  EXPECT_EQ(schema_of(q),
            "(Name_1 STRING, Price_1 FLOAT, Volume_1 INT, cnt INT, sumPrice FLOAT, Name STRING, "
            "Price FLOAT, Volume INT)");
  AnalyzedScript s = compile_ok(kStock + q);
  const Plan& fold = s.queries[0].root;
  ASSERT_EQ(fold.kind, PlanKind::Fold);
  ASSERT_EQ(fold.aggregates.size(), 2u);
  EXPECT_EQ(fold.aggregates[0].target, 3u);  // cnt in S1
  EXPECT_EQ(fold.aggregates[1].target, 4u);  // sumPrice in S1
  EXPECT_EQ(dump(fold.aggregates[1].value), "($[4] + $2[1])");
  EXPECT_EQ(dump(*fold.pred), "($1[0] = $2[0])");
  EXPECT_EQ(dump(*fold.pred2), "($[1] < $2[1])");
}

TEST(AnalyzerSchema, FoldWithoutSelectAndEmptyPredicates) {
  EXPECT_EQ(schema_of("Stock FOLD{,,} Stock;"),
            "(Name_1 STRING, Price_1 FLOAT, Volume_1 INT, Name STRING, Price FLOAT, Volume INT)");
  AnalyzedScript s = compile_ok(std::string(kStock) + "Stock FOLD{} Stock;");
  ASSERT_EQ(s.queries.size(), 1u);
  EXPECT_EQ(s.queries[0].root.pred->op, TOp::True);
  EXPECT_EQ(s.queries[0].root.pred2->op, TOp::True);
  AnalyzedScript n = compile_ok(std::string(kStock) + "Stock NEXT{} Stock;");
  EXPECT_EQ(n.queries[0].root.pred->op, TOp::True);
}

TEST(AnalyzerSchema, FoldIntAggregateIntoFloat) {
  AnalyzedScript s = compile_ok(std::string(kStock) +
                                "(SELECT *, 0.0 AS total FROM Stock) FOLD{,, $.total + $2.Volume "
                                "AS total} Stock;");
  ASSERT_EQ(s.queries.size(), 1u);
  EXPECT_EQ(dump(s.queries[0].root.aggregates[0].value), "($[3] + float($2[2]))");
  // An INT-valued aggregate into a FLOAT attribute gets an explicit ToFloat.
  AnalyzedScript t = compile_ok(std::string(kStock) +
                                "(SELECT *, 0.0 AS total FROM Stock) FOLD{,, $2.Volume AS total} "
                                "Stock;");
  EXPECT_EQ(dump(t.queries[0].root.aggregates[0].value), "float($2[2])");
}

TEST(AnalyzerSchema, Union) {
  EXPECT_EQ(schema_of("FILTER{Price > 1.0}(Stock) UNION FILTER{Volume > 5}(Stock) UNION Stock;"),
            "(Name STRING, Price FLOAT, Volume INT)");
  AnalyzedScript s = compile_ok(std::string(kStock) + "Stock UNION Stock;");
  EXPECT_EQ(s.queries[0].root.kind, PlanKind::Union);
  EXPECT_EQ(s.queries[0].root.inputs.size(), 2u);
}

TEST(AnalyzerSchema, SubqueryBecomesItsPlan) {
  AnalyzedScript s =
      compile_ok(std::string(kStock) + "SELECT P FROM (SELECT Price AS P FROM Stock);");
  const Plan& root = s.queries[0].root;
  ASSERT_EQ(root.kind, PlanKind::Select);
  ASSERT_EQ(root.inputs.size(), 1u);
  EXPECT_EQ(root.inputs[0].kind, PlanKind::Select);
  EXPECT_EQ(root.inputs[0].inputs[0].kind, PlanKind::Source);
  AnalyzedScript t = compile_ok(std::string(kStock) + "(Stock);");
  EXPECT_EQ(t.queries[0].root.kind, PlanKind::Source);
}

// ---------------------------------------------------------------------------------------------
// Name resolution and typing.

TEST(AnalyzerTypes, RefsResolveToSides) {
  AnalyzedScript s = compile_ok(
      std::string(kStock) + "Stock FOLD{Name = $2.Name, $.Price > $2.Price AND DUR < 10,} Stock;");
  const Plan& fold = s.queries[0].root;
  EXPECT_EQ(dump(*fold.pred), "($1[0] = $2[0])");
  EXPECT_EQ(dump(*fold.pred2), "(($[1] > $2[1]) AND (DUR < 10))");
  EXPECT_EQ(fold.pred2->kids[0].kids[0].side, Side::Last);
  EXPECT_EQ(fold.pred2->kids[0].kids[0].index, 1u);
  EXPECT_EQ(fold.pred2->kids[0].kids[1].side, Side::Second);
}

TEST(AnalyzerTypes, ToFloatInsertion) {
  EXPECT_EQ(plan_of("FILTER{Volume > 1.5 AND Price < Volume}(Stock);"),
            "Filter (Name STRING, Price FLOAT, Volume INT)\n"
            "  pred: ((float($1.Volume) > 1.5) AND ($1.Price < float($1.Volume)))\n"
            "  Source Stock (Name STRING, Price FLOAT, Volume INT)\n");
}

TEST(AnalyzerTypes, ToFloatInItems) {
  AnalyzedScript s =
      compile_ok(std::string(kStock) +
                 "SELECT Volume + Price AS a, Volume ^ 2 AS b, MAX(Volume, Price) AS c, "
                 "Volume + 1 AS d, -Price AS e, Volume % 7 AS f FROM Stock;");
  const Plan& sel = s.queries[0].root;
  ASSERT_EQ(sel.items.size(), 6u);
  EXPECT_EQ(dump(sel.items[0]), "(float($1[2]) + $1[1])");
  EXPECT_EQ(dump(sel.items[1]), "(float($1[2]) ^ float(2))");
  EXPECT_EQ(dump(sel.items[2]), "MAX(float($1[2]), $1[1])");
  EXPECT_EQ(dump(sel.items[3]), "($1[2] + 1)");
  EXPECT_EQ(dump(sel.items[4]), "-$1[1]");
  EXPECT_EQ(dump(sel.items[5]), "($1[2] % 7)");
  EXPECT_EQ(sel.items[1].type, Type::Float);
  EXPECT_EQ(sel.items[3].type, Type::Int);
}

TEST(AnalyzerTypes, PredicatesWithNotAndOr) {
  AnalyzedScript s =
      compile_ok(std::string(kStock) +
                 "FILTER{NOT (Name = 'A' OR Name <> 'B') AND Volume % 2 = 0 AND "
                 "CONTAINS(Name, 'X') = 1 AND SIMILARITY(Name, 'IBM') >= 0.5}(Stock);");
  ASSERT_EQ(s.queries.size(), 1u);
  EXPECT_EQ(dump(*s.queries[0].root.pred),
            "(NOT (($1[0] = 'A') OR ($1[0] != 'B')) AND (($1[2] % 2) = 0) AND "
            "(CONTAINS($1[0], 'X') = 1) AND (SIMILARITY($1[0], 'IBM') >= 0.5))");
}

TEST(AnalyzerTypes, DurationLiterals) {
  auto pred_of = [](const std::string& q, EngineUnit unit) {
    AnalyzeOptions o;
    o.unit = unit;
    AnalyzedScript s = compile_ok(kStock + q, o);
    return s.queries.empty() ? std::string("?") : dump(*s.queries[0].root.pred);
  };
  EXPECT_EQ(pred_of("FILTER{DUR > 10 MIN}(Stock);", EngineUnit::Ms), "(DUR > 600000)");
  EXPECT_EQ(pred_of("FILTER{DUR > 10min}(Stock);", EngineUnit::Ms), "(DUR > 600000)");
  EXPECT_EQ(pred_of("FILTER{DUR > 2 HOURS}(Stock);", EngineUnit::S), "(DUR > 7200)");
  EXPECT_EQ(pred_of("FILTER{DUR > 1 DAY}(Stock);", EngineUnit::Us), "(DUR > 86400000000)");
  // Not integral in the engine unit: a FLOAT, and DUR is promoted to compare with it.
  EXPECT_EQ(pred_of("FILTER{DUR > 1 US}(Stock);", EngineUnit::Ms), "(float(DUR) > 0.001)");
  EXPECT_EQ(pred_of("FILTER{DUR > 1500 MS}(Stock);", EngineUnit::S), "(float(DUR) > 1.5)");
  EXPECT_EQ(pred_of("FILTER{DUR > 1.5 SEC}(Stock);", EngineUnit::Ms), "(DUR > 1500)");
  EXPECT_EQ(pred_of("FILTER{DUR > 0.1 SEC}(Stock);", EngineUnit::Ms), "(DUR > 100)");
  // A bare number is in engine units.
  EXPECT_EQ(pred_of("FILTER{DUR <= 2000}(Stock);", EngineUnit::Ms), "(DUR <= 2000)");
}

TEST(AnalyzerTypes, StringConstantsAreInterned) {
  AnalyzedScript s = compile_ok(std::string(kStock) + "FILTER{Name = 'IB''M'}(Stock);");
  const TExpr& k = s.queries[0].root.pred->kids[1];
  EXPECT_EQ(k.op, TOp::Const);
  EXPECT_EQ(k.type, Type::String);
  EXPECT_EQ(k.value.s, intern("IB'M"));
  EXPECT_EQ(dump(*s.queries[0].root.pred), "($1[0] = 'IB''M')");
}

// ---------------------------------------------------------------------------------------------
// Scripts: publish names, unions of publishers, resubscription, order, catalog.

TEST(AnalyzerScript, DefaultNamesAndCatalog) {
  AnalyzedScript s = compile_ok(std::string(kStock) +
                                "SELECT Name FROM Stock;\n"
                                "SELECT Price FROM Stock PUBLISH Prices;\n"
                                "q1;\n");
  ASSERT_EQ(s.queries.size(), 3u);
  EXPECT_EQ(s.queries[0].publish, "q1");
  EXPECT_EQ(s.queries[0].number, 1u);
  EXPECT_EQ(s.queries[1].publish, "Prices");
  EXPECT_EQ(s.queries[2].publish, "q3");
  EXPECT_EQ(s.queries[2].root.schema.to_string(), "(Name STRING)");
  EXPECT_EQ(s.inputs, std::vector<std::string>{"Stock"});
  ASSERT_EQ(s.catalog.streams.size(), 4u);
  EXPECT_TRUE(s.catalog.streams.at("Stock").is_input);
  EXPECT_EQ(s.catalog.streams.at("q1").publishers, std::vector<uint32_t>{1});
  EXPECT_EQ(s.catalog.streams.at("Prices").schema.to_string(), "(Price FLOAT)");
  EXPECT_FALSE(s.catalog.streams.at("Prices").is_input);
  EXPECT_EQ(s.topo_order, (std::vector<uint32_t>{1, 2, 3}));
}

TEST(AnalyzerScript, UnionOfPublishers) {
  AnalyzedScript s =
      compile_ok(std::string(kStock) +
                 "SELECT Name FROM FILTER{Price > 100.0}(Stock) PUBLISH Hot;\n"
                 "SELECT Name FROM FILTER{Volume > 1000}(Stock) PUBLISH Hot;\n"
                 "SELECT * FROM Hot NEXT{$1.Name = $2.Name} Hot PUBLISH HotTwice;\n");
  EXPECT_EQ(s.catalog.streams.at("Hot").publishers, (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(s.queries[2].root.schema.to_string(), "(Name_1 STRING, Name STRING)");
}

TEST(AnalyzerScript, OrderDoesNotMatter) {
  // The subscriber comes first; the publisher is declared after; the input is declared last.
  AnalyzedScript s = compile_ok(
      "SELECT Name_1 AS BigName, Name AS NextName FROM Big NEXT{} Stock PUBLISH AfterBig;\n"
      "SELECT Name, Price FROM FILTER{Volume > 1000}(Stock) PUBLISH Big;\n"
      "SELECT BigName FROM AfterBig;\n"
      "CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\n");
  ASSERT_EQ(s.queries.size(), 3u);
  EXPECT_EQ(s.queries[0].root.schema.to_string(), "(BigName STRING, NextName STRING)");
  EXPECT_EQ(s.topo_order, (std::vector<uint32_t>{2, 1, 3}));
  EXPECT_EQ(s.catalog.streams.at("Big").publishers, std::vector<uint32_t>{2});
}

TEST(AnalyzerScript, WorkedExamplesOfCelMd) {
  AnalyzedScript s = compile_ok(
      std::string(kStock) +
      "SELECT * FROM Stock NEXT{$1.Name = $2.Name} Stock PUBLISH T5;\n"
      "SELECT Name, Price_1 AS Start, Price AS Last, cnt\n"
      "FROM (SELECT *, 1 AS cnt FROM Stock) FOLD{$2.Name = $.Name, $2.Price > $.Price, $.cnt + 1 "
      "AS cnt} Stock\n"
      "PUBLISH Rising;\n"
      "SELECT Name, Price FROM FILTER{Volume > 1000}(Stock) PUBLISH Big;\n"
      "SELECT Name_1 AS BigName, Name AS NextName FROM Big NEXT{} Stock PUBLISH AfterBig;\n"
      "SELECT * FROM FILTER{DUR <= 2 SEC}(Stock NEXT{$1.Name = $2.Name} Stock) PUBLISH Quick;\n");
  ASSERT_EQ(s.queries.size(), 5u);
  EXPECT_EQ(s.queries[0].root.schema.to_string(),
            "(Name_1 STRING, Price_1 FLOAT, Volume_1 INT, Name STRING, Price FLOAT, Volume INT)");
  EXPECT_EQ(s.queries[1].root.schema.to_string(),
            "(Name STRING, Start FLOAT, Last FLOAT, cnt INT)");
  EXPECT_EQ(s.queries[2].root.schema.to_string(), "(Name STRING, Price FLOAT)");
  EXPECT_EQ(s.queries[3].root.schema.to_string(), "(BigName STRING, NextName STRING)");
  EXPECT_EQ(s.queries[4].root.schema.to_string(),
            "(Name_1 STRING, Price_1 FLOAT, Volume_1 INT, Name STRING, Price FLOAT, Volume INT)");
  EXPECT_EQ(s.topo_order, (std::vector<uint32_t>{1, 2, 3, 4, 5}));

  EXPECT_EQ(
      dump(s.queries[1].root),
      "Select (Name STRING, Start FLOAT, Last FLOAT, cnt INT)\n"
      "  Name := $1.Name\n"
      "  Start := $1.Price_1\n"
      "  Last := $1.Price\n"
      "  cnt := $1.cnt\n"
      "  Fold (Name_1 STRING, Price_1 FLOAT, Volume_1 INT, cnt INT, Name STRING, Price FLOAT, "
      "Volume INT)\n"
      "    pred: ($2.Name = $.Name)\n"
      "    rebind: ($2.Price > $.Price)\n"
      "    agg cnt := ($.cnt + 1)\n"
      "    Select (Name STRING, Price FLOAT, Volume INT, cnt INT)\n"
      "      Name := $1.Name\n"
      "      Price := $1.Price\n"
      "      Volume := $1.Volume\n"
      "      cnt := 1\n"
      "      Source Stock (Name STRING, Price FLOAT, Volume INT)\n"
      "    Source Stock (Name STRING, Price FLOAT, Volume INT)\n");
  // `SELECT *` stays an (identity) Select: the plan mirrors the query as written.
  EXPECT_EQ(dump(s.queries[4].root),
            "Select (Name_1 STRING, Price_1 FLOAT, Volume_1 INT, Name STRING, Price FLOAT, Volume "
            "INT)\n"
            "  Name_1 := $1.Name_1\n"
            "  Price_1 := $1.Price_1\n"
            "  Volume_1 := $1.Volume_1\n"
            "  Name := $1.Name\n"
            "  Price := $1.Price\n"
            "  Volume := $1.Volume\n"
            "  Filter (Name_1 STRING, Price_1 FLOAT, Volume_1 INT, Name STRING, Price FLOAT, "
            "Volume INT)\n"
            "    pred: (DUR <= 2000)\n"
            "    Next (Name_1 STRING, Price_1 FLOAT, Volume_1 INT, Name STRING, Price FLOAT, "
            "Volume INT)\n"
            "      pred: ($1.Name = $2.Name)\n"
            "      Source Stock (Name STRING, Price FLOAT, Volume INT)\n"
            "      Source Stock (Name STRING, Price FLOAT, Volume INT)\n");
}

TEST(AnalyzerScript, ExistingEngineStreams) {
  Catalog engine;
  engine.streams["Stock"] = StreamInfo{
      Schema{{{"Name", Type::String}, {"Price", Type::Float}, {"Volume", Type::Int}}}, true, {}};
  engine.streams["Big"] = StreamInfo{Schema{{{"Name", Type::String}}}, false, {7}};
  AnalyzeOptions o;
  o.existing = &engine;
  // Reads engine streams without declaring them; adds a publisher to an engine stream.
  AnalyzeResult r = compile_script(
      "SELECT * FROM Big NEXT{$1.Name = $2.Name} Stock PUBLISH Pairs;\n"
      "SELECT Name FROM Stock PUBLISH Big;\n",
      o);
  ASSERT_TRUE(r.errors.empty()) << render_all(r.errors, "t", "");
  EXPECT_EQ(r.script->queries[0].root.schema.to_string(),
            "(Name_1 STRING, Name STRING, Price FLOAT, Volume INT)");
  EXPECT_EQ(r.script->catalog.streams.at("Big").publishers, std::vector<uint32_t>{2});
  EXPECT_TRUE(r.script->catalog.streams.count("Stock"));
  // Re-declaring an engine input identically is fine; differently is an error.
  EXPECT_TRUE(compile_script(std::string(kStock) + "Stock;", o).errors.empty());
  Diagnostics e1 = errors_of("CREATE STREAM Stock (Name STRING);\nStock;", o);
  ASSERT_EQ(e1.size(), 1u);
  EXPECT_NE(e1[0].message.find("stream 'Stock' already exists in the engine"), std::string::npos);
  // Publishing to an engine stream with another schema.
  Diagnostics e2 = errors_of("SELECT Price FROM Stock PUBLISH Big;", o);
  ASSERT_EQ(e2.size(), 1u);
  EXPECT_NE(e2[0].message.find("the engine already publishes it with schema (Name STRING)"),
            std::string::npos)
      << e2[0].message;
  EXPECT_EQ(e2[0].line, 1u);
  EXPECT_EQ(e2[0].column, 33u);
}

// ---------------------------------------------------------------------------------------------
// Errors.

struct ErrorCase {
  const char* script;
  const char* message;  // a substring of the (first) diagnostic
  uint32_t line;
  uint32_t column;
};

const ErrorCase kErrorCases[] = {
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT * FROM Stock "
     "NEXT{$1.Name = $2.Prize} Stock;",
     "unknown attribute 'Prize' in $2; Stock has: Name, Price, Volume", 2, 36},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT * FROM FILTER{Prize > "
     "1}(Stock);",
     "unknown attribute 'Prize'; Stock has: Name, Price, Volume", 2, 22},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT * FROM Stock NEXT{$1.Nme "
     "= $2.Name} Stock;",
     "unknown attribute 'Nme' in $1; Stock has: Name, Price, Volume", 2, 26},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT Start FROM (SELECT Price "
     "AS P FROM Stock);",
     "unknown attribute 'Start'; the subquery has: P", 2, 8},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT * FROM (SELECT Name FROM "
     "Stock) FOLD{$2.Name = $.Price, ,} Stock;",
     "unknown attribute 'Price' in $.; the subquery has: Name", 2, 55},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT * FROM Stocks;",
     "unknown stream 'Stocks'; known streams: Stock", 2, 15},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT * FROM Stock NEXT{} "
     "Trades PUBLISH X;",
     "unknown stream 'Trades'; known streams: Stock, X", 2, 28},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT FOO(Name) AS x FROM "
     "Stock;",
     "unknown function 'FOO'; functions: ABS, CONTAINS, LENGTH, LOWER, MAX, MIN, SIMILARITY, UPPER",
     2, 8},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT * FROM FILTER{$.Price > "
     "1}(Stock);",
     "'$.Price' (the last value) is only allowed in FOLD", 2, 22},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT * FROM Stock "
     "NEXT{$.Price < $2.Price} Stock;",
     "'$.Price' (the last value) is only allowed in FOLD", 2, 26},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT * FROM FILTER{$2.Price > "
     "1}(Stock);",
     "'$2.Price' (the incoming event) is only allowed in NEXT{...} and FOLD{...}", 2, 22},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT $2.Name AS n FROM Stock;",
     "'$2.Name' (the incoming event) is only allowed in NEXT", 2, 8},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT * FROM FILTER{Name = "
     "1}(Stock);",
     "cannot compare STRING with INT", 2, 22},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT * FROM Stock "
     "NEXT{$1.Price > $2.Name} Stock;",
     "cannot compare FLOAT with STRING", 2, 26},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT * FROM FILTER{Name + 1 > "
     "2}(Stock);",
     "operator '+' needs INT or FLOAT operands, got STRING", 2, 22},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT -Name AS x FROM Stock;",
     "unary '-' needs INT or FLOAT, got STRING", 2, 8},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT CONTAINS(Name) AS x FROM "
     "Stock;",
     "CONTAINS takes 2 arguments, got 1: CONTAINS(STRING, STRING) -> INT", 2, 8},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT length(Price) AS x FROM "
     "Stock;",
     "LENGTH(FLOAT) does not fit; expected LENGTH(STRING) -> INT", 2, 8},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT MIN(Name, Price) AS x "
     "FROM Stock;",
     "MIN(STRING, FLOAT) does not fit", 2, 8},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT * FROM Stock UNION "
     "(SELECT Name FROM Stock);",
     "UNION inputs must have identical schemas: (Name STRING, Price FLOAT, Volume INT) vs (Name "
     "STRING)",
     2, 27},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT * FROM Stock PUBLISH "
     "A;\nSELECT Name FROM Stock PUBLISH A;",
     "query 2 publishes 'A' with schema (Name STRING), but query 1 publishes it with schema (Name "
     "STRING, Price FLOAT, Volume INT)",
     3, 32},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT * FROM Stock "
     "FOLD{$2.Name = $.Name, , $.Price + 1 AS Price} Stock;",
     "FOLD aggregate cannot assign 'Price': Stock also has 'Price'", 2, 46},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT * FROM Stock FOLD{, , 1 "
     "AS cnt} Stock;",
     "FOLD aggregate target 'cnt' is not an attribute of Stock", 2, 30},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT * FROM (SELECT *, 1 AS "
     "cnt FROM Stock) FOLD{, , $.cnt + 0.5 AS cnt} Stock;",
     "FOLD aggregate 'cnt' has type FLOAT but attribute 'cnt' is INT", 2, 56},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT * FROM (SELECT *, 1 AS "
     "cnt FROM Stock) FOLD{, , $.cnt + 1 AS cnt, 2 AS cnt} Stock;",
     "attribute 'cnt' is assigned by two FOLD aggregates", 2, 74},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT Name, Price AS Name FROM "
     "Stock;",
     "duplicate output attribute 'Name' in SELECT", 2, 14},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT *, Price FROM Stock;",
     "duplicate output attribute 'Price' in SELECT", 2, 11},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT * FROM B PUBLISH "
     "A;\nSELECT * FROM A PUBLISH B;",
     "cycle of subscriptions: A -> B -> A", 2, 15},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT * FROM Stock UNION A "
     "PUBLISH A;",
     "cycle of subscriptions: A -> A", 2, 27},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT * FROM FILTER{Price > "
     "1}(Stock) PUBLISH Stock;",
     "cannot PUBLISH to 'Stock': it is an input stream", 2, 48},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT * FROM (SELECT * FROM "
     "Stock PUBLISH X);",
     "PUBLISH is only allowed at the end of a top-level query", 2, 44},
    {"CREATE STREAM T (a INTEGER);",
     "unknown type 'INTEGER' for attribute 'a'; the types are INT, FLOAT and STRING", 1, 20},
    {"CREATE STREAM T (a INT, b FLOAT, a STRING);", "duplicate attribute 'a' in stream 'T'", 1, 34},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nCREATE STREAM Stock (Name "
     "STRING);",
     "stream 'Stock' is declared twice", 2, 1},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT * FROM FILTER{ABS(Name) "
     "> 1}(Stock);",
     "ABS(STRING) does not fit", 2, 22},
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\nSELECT * FROM FILTER{Volume = 1 "
     "OR UPPER(Name) > 2}(Stock);",
     "cannot compare STRING with INT", 2, 36},
};

TEST(AnalyzerErrors, Table) {
  for (const auto& c : kErrorCases) {
    SCOPED_TRACE(c.script);
    AnalyzeResult r = compile_script(c.script);
    ASSERT_FALSE(r.script.has_value());
    ASSERT_FALSE(r.errors.empty());
    const Diagnostic& d = r.errors.front();
    EXPECT_NE(d.message.find(c.message), std::string::npos)
        << "got: " << render_all(r.errors, "t.cel", c.script);
    EXPECT_EQ(d.line, c.line) << render_all(r.errors, "t.cel", c.script);
    EXPECT_EQ(d.column, c.column) << render_all(r.errors, "t.cel", c.script);
  }
}

TEST(AnalyzerErrors, DefaultNameOnAnInputStream) {
  Diagnostics ds = errors_of("CREATE STREAM q2 (a INT);\nq2;\nSELECT a + 1 AS b FROM q2;");
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].message,
            "query 2 publishes to 'q2' by default, which is an input stream; add PUBLISH name");
  EXPECT_EQ(ds[0].line, 3u);
  EXPECT_EQ(ds[0].column, 1u);
}

TEST(AnalyzerErrors, BadInputSchemaDoesNotCascade) {
  // The stream with a bad type is reported once; queries reading it add nothing.
  Diagnostics ds = errors_of("CREATE STREAM T (a INT, b DOUBLE);\nSELECT c FROM T;\n");
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].column, 27u);  // DOUBLE
}

TEST(AnalyzerErrors, AllErrorsAreCollectedInSourceOrder) {
  const std::string text = std::string(kStock) +
                           "SELECT Nme FROM Stock;\n"
                           "SELECT * FROM Stock NEXT{$1.Name = $2.Prize AND $.Price > 1} Stock;\n"
                           "SELECT * FROM FILTER{Name > 3}(Stok);\n";
  Diagnostics ds = errors_of(text);
  ASSERT_EQ(ds.size(), 4u) << render_all(ds, "t.cel", text);
  EXPECT_EQ(ds[0].line, 2u);
  EXPECT_EQ(ds[1].line, 3u);
  EXPECT_NE(ds[1].message.find("'Prize' in $2"), std::string::npos);
  EXPECT_NE(ds[2].message.find("'$.Price'"), std::string::npos);
  EXPECT_NE(ds[3].message.find("unknown stream 'Stok'"), std::string::npos);
  EXPECT_EQ(render_all({ds[1]}, "t.cel", text),
            "t.cel:3:36: error: unknown attribute 'Prize' in $2; Stock has: Name, Price, Volume\n"
            "  SELECT * FROM Stock NEXT{$1.Name = $2.Prize AND $.Price > 1} Stock;\n"
            "                                     ^\n");
}

TEST(AnalyzerErrors, CycleIsReportedOnceAndDoesNotCascade) {
  Diagnostics ds = errors_of(std::string(kStock) +
                             "SELECT * FROM C PUBLISH A;\n"
                             "SELECT * FROM A PUBLISH B;\n"
                             "SELECT * FROM B PUBLISH C;\n"
                             "SELECT Nope FROM A PUBLISH D;\n");
  ASSERT_EQ(ds.size(), 1u) << ds[0].message;
  EXPECT_EQ(ds[0].message, "cycle of subscriptions: A -> B -> C -> A");
}

// ---------------------------------------------------------------------------------------------
// Samples.

TEST(AnalyzerSamples, EverySampleCompiles) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(CAYUGA_SOURCE_DIR) / "samples";
  int count = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".cel") continue;
    SCOPED_TRACE(entry.path().string());
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    AnalyzeResult r = compile_script(text.str());
    EXPECT_TRUE(r.errors.empty()) << render_all(r.errors, entry.path().string(), text.str());
    ++count;
  }
  EXPECT_GE(count, 2);
}

TEST(AnalyzerSamples, StockSampleSchemas) {
  std::ifstream in(std::string(CAYUGA_SOURCE_DIR) + "/samples/stocks.cel");
  std::stringstream text;
  text << in.rdbuf();
  AnalyzeResult r = compile_script(text.str());
  ASSERT_TRUE(r.script.has_value()) << render_all(r.errors, "stocks.cel", text.str());
  EXPECT_TRUE(r.script->catalog.streams.count("LargeTradeRebound"));
  EXPECT_TRUE(r.script->catalog.streams.count("DoubleTop"));
}

}  // namespace
}  // namespace cayuga
