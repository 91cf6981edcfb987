// Table-driven tests of the CEL parser: each case is a script and the dump of what it parses to
// (the S-expression format documented at the top of lang/ast.cpp). Every grammar rule of
// CEL.md §3 and every lexical form appears at least once.
#include "lang/parser.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace cayuga {
namespace {

struct Case {
  const char* text;
  const char* dump;
};

std::string dump_or_errors(std::string_view text) {
  ParseResult r = parse_script(text);
  if (!r.script) return "ERROR: " + render_all(r.errors, "t", text);
  return ast::dump(*r.script);
}

// Wraps a term in a one-item SELECT so the table can focus on the term.
std::string term_query(const std::string& term) {
  return "SELECT " + term + " AS x FROM S";
}
std::string term_dump(const std::string& dump) {
  return "(query (select (as " + dump + " x)) (from (name S)))";
}
// Wraps a predicate in a FILTER.
std::string pred_query(const std::string& pred) {
  return "FILTER{" + pred + "}(S)";
}
std::string pred_dump(const std::string& dump) {
  return "(query (from (filter (name S) " + dump + ")))";
}

const Case kStatements[] = {
    // Scripts: separators, empty statements, optional trailing ';', comments.
    {"", ""},
    {" ;; ;\n -- only a comment\n", ""},
    {"S", "(query (from (name S)))"},
    {"S;", "(query (from (name S)))"},
    {"S; T;; U", "(query (from (name S)))\n(query (from (name T)))\n(query (from (name U)))"},
    {"S -- a comment; not a separator\n", "(query (from (name S)))"},
    {"S--comment right after a name\n;T", "(query (from (name S)))\n(query (from (name T)))"},
    {"S\r\n;\r\nT -- CRLF\r\n", "(query (from (name S)))\n(query (from (name T)))"},
    {"\xEF\xBB\xBFS", "(query (from (name S)))"},
    // CREATE STREAM.
    {"CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT)",
     "(create Stock (Name STRING) (Price FLOAT) (Volume INT))"},
    {"create stream s (a int)", "(create s (a int))"},
    {"CREATE STREAM T(x FLOAT);", "(create T (x FLOAT))"},
    {"CREATE STREAM S (S INT, H FLOAT, MIN STRING, Fromage INT)",
     "(create S (S INT) (H FLOAT) (MIN STRING) (Fromage INT))"},
    // Queries: optional SELECT ... FROM, optional PUBLISH.
    {"S PUBLISH T", "(query (from (name S)) (publish T))"},
    {"SELECT * FROM S", "(query (select *) (from (name S)))"},
    {"SELECT * FROM S PUBLISH Out", "(query (select *) (from (name S)) (publish Out))"},
    {"SELECT *, a, $.b, $1.c, $2.d FROM S",
     "(query (select * (ref a) (ref $ b) (ref 1 c) (ref 2 d)) (from (name S)))"},
    {"SELECT a AS b, a + 1 AS c, 'x' AS d, DUR AS e FROM S",
     "(query (select (as (ref a) b) (as (+ (ref a) (int 1)) c) (as (str 'x') d) (as (DUR) e)) "
     "(from (name S)))"},
    {"SELECT Name, Price_1 AS FirstPrice, Price AS SecondPrice\n"
     "FROM Stock NEXT{$1.Name = $2.Name} Stock\n"
     "PUBLISH Pairs;",
     "(query (select (ref Name) (as (ref Price_1) FirstPrice) (as (ref Price) SecondPrice)) "
     "(from (next (name Stock) (name Stock) (cmp = (ref 1 Name) (ref 2 Name)))) (publish Pairs))"},
    // Case-insensitive keywords, case-sensitive names.
    {"select * from s next{} t publish x",
     "(query (select *) (from (next (name s) (name t) _)) (publish x))"},
    {"SeLeCt a aS B fRoM fIlTeR{a = 1 aNd NoT b = 2 oR c = 3}(S) UnIoN s pUbLiSh P",
     "(query (select (as (ref a) B)) (from (union (filter (name S) (or (and (cmp = (ref a) (int "
     "1)) "
     "(not (cmp = (ref b) (int 2)))) (cmp = (ref c) (int 3)))) (name s))) (publish P))"},
    // Names that start with a keyword are names.
    {"SELECT Fromage, selection, ASx, DURATION, Notable, Orca, Union_1 FROM Nexts",
     "(query (select (ref Fromage) (ref selection) (ref ASx) (ref DURATION) (ref Notable) "
     "(ref Orca) (ref Union_1)) (from (name Nexts)))"},
    // Unit words are not reserved.
    {"SELECT S, H, MIN(S, H) AS m, Min AS min FROM Day",
     "(query (select (ref S) (ref H) (as (call MIN (ref S) (ref H)) m) (as (ref Min) min)) "
     "(from (name Day)))"},

    // Stream expressions: FILTER.
    {"FILTER{a > 1} S", "(query (from (filter (name S) (cmp > (ref a) (int 1)))))"},
    {"FILTER{a > 1}(S)", "(query (from (filter (name S) (cmp > (ref a) (int 1)))))"},
    {"FILTER{a > 1} FILTER{b < 2} S",
     "(query (from (filter (filter (name S) (cmp < (ref b) (int 2))) (cmp > (ref a) (int 1)))))"},
    {"FILTER{a > 1}(SELECT a FROM S)",
     "(query (from (filter (subquery (query (select (ref a)) (from (name S)))) "
     "(cmp > (ref a) (int 1)))))"},
    {"FILTER{DUR <= 2 SEC}(Stock NEXT{$1.Name = $2.Name} Stock)",
     "(query (from (filter (next (name Stock) (name Stock) (cmp = (ref 1 Name) (ref 2 Name))) "
     "(cmp <= (DUR) (dur 2 sec)))))"},
    // NEXT, left-associative.
    {"A NEXT{} B", "(query (from (next (name A) (name B) _)))"},
    {"A NEXT { } B", "(query (from (next (name A) (name B) _)))"},
    {"A NEXT{} B NEXT{$2.x = 1} C",
     "(query (from (next (next (name A) (name B) _) (name C) (cmp = (ref 2 x) (int 1)))))"},
    {"A NEXT{} (B NEXT{} C)", "(query (from (next (name A) (next (name B) (name C) _) _)))"},
    {"A NEXT{} FILTER{x = 1} B",
     "(query (from (next (name A) (filter (name B) (cmp = (ref x) (int 1))) _)))"},
    // FOLD with two or three arguments, empty ones, a trailing comma.
    {"A FOLD{} B", "(query (from (fold (name A) (name B) _ _)))"},
    {"A FOLD{,} B", "(query (from (fold (name A) (name B) _ _)))"},
    {"A FOLD{a = 1, b = 2} B",
     "(query (from (fold (name A) (name B) (cmp = (ref a) (int 1)) (cmp = (ref b) (int 2)))))"},
    {"A FOLD{, b = 2} B", "(query (from (fold (name A) (name B) _ (cmp = (ref b) (int 2)))))"},
    {"A FOLD{a = 1,} B", "(query (from (fold (name A) (name B) (cmp = (ref a) (int 1)) _)))"},
    {"A FOLD{a = 1,,} B", "(query (from (fold (name A) (name B) (cmp = (ref a) (int 1)) _)))"},
    {"A FOLD{,,} B", "(query (from (fold (name A) (name B) _ _)))"},
    {"A FOLD{,, 1 AS c} B", "(query (from (fold (name A) (name B) _ _ (as (int 1) c))))"},
    {"A FOLD{a = 1, b = 2, $.x + 1 AS x} B",
     "(query (from (fold (name A) (name B) (cmp = (ref a) (int 1)) (cmp = (ref b) (int 2)) "
     "(as (+ (ref $ x) (int 1)) x))))"},
    {"A FOLD{a = 1, b = 2, $.x + 1 AS x, $2.y AS y,} B",
     "(query (from (fold (name A) (name B) (cmp = (ref a) (int 1)) (cmp = (ref b) (int 2)) "
     "(as (+ (ref $ x) (int 1)) x) (as (ref 2 y) y))))"},
    {"A NEXT{} B FOLD{,} C NEXT{} D",
     "(query (from (next (fold (next (name A) (name B) _) (name C) _ _) (name D) _)))"},
    {"SELECT Name, Price_1 AS Start, Price AS Last, cnt\n"
     "FROM (SELECT *, 1 AS cnt FROM Stock) FOLD{$2.Name = $.Name, $2.Price > $.Price, $.cnt + 1 "
     "AS cnt} Stock\nPUBLISH Rising;",
     "(query (select (ref Name) (as (ref Price_1) Start) (as (ref Price) Last) (ref cnt)) "
     "(from (fold (subquery (query (select * (as (int 1) cnt)) (from (name Stock)))) (name Stock) "
     "(cmp = (ref 2 Name) (ref $ Name)) (cmp > (ref 2 Price) (ref $ Price)) "
     "(as (+ (ref $ cnt) (int 1)) cnt))) (publish Rising))"},
    // UNION: lowest precedence, chains flattened, parenthesised unions kept.
    {"A UNION B", "(query (from (union (name A) (name B))))"},
    {"A UNION B UNION C", "(query (from (union (name A) (name B) (name C))))"},
    {"A NEXT{} B UNION C FOLD{,} D",
     "(query (from (union (next (name A) (name B) _) (fold (name C) (name D) _ _))))"},
    {"(A UNION B) UNION C", "(query (from (union (union (name A) (name B)) (name C))))"},
    {"SELECT * FROM A UNION B PUBLISH AB",
     "(query (select *) (from (union (name A) (name B))) (publish AB))"},
    // Parenthesised queries: a bare grouping disappears, SELECT or PUBLISH makes a subquery.
    {"((S))", "(query (from (name S)))"},
    {"(S PUBLISH X) NEXT{} T",
     "(query (from (next (subquery (query (from (name S)) (publish X))) (name T) _)))"},
    {"(SELECT a FROM (SELECT * FROM S))",
     "(query (from (subquery (query (select (ref a)) (from (subquery (query (select *) "
     "(from (name S)))))))))"},
};

const Case kPredicates[] = {
    // Every comparison operator.
    {"a = 1", "(cmp = (ref a) (int 1))"},
    {"a != 1", "(cmp != (ref a) (int 1))"},
    {"a <> 1", "(cmp != (ref a) (int 1))"},
    {"a < 1", "(cmp < (ref a) (int 1))"},
    {"a <= 1", "(cmp <= (ref a) (int 1))"},
    {"a > 1", "(cmp > (ref a) (int 1))"},
    {"a >= 1", "(cmp >= (ref a) (int 1))"},
    {"a>=1", "(cmp >= (ref a) (int 1))"},
    {"a + 1 < b * 2", "(cmp < (+ (ref a) (int 1)) (* (ref b) (int 2)))"},
    // NOT binds tighter than AND, AND tighter than OR; chains are flat.
    {"NOT a = 1", "(not (cmp = (ref a) (int 1)))"},
    {"NOT a = 1 AND b = 2", "(and (not (cmp = (ref a) (int 1))) (cmp = (ref b) (int 2)))"},
    {"a = 1 OR b = 2 AND c = 3",
     "(or (cmp = (ref a) (int 1)) (and (cmp = (ref b) (int 2)) (cmp = (ref c) (int 3))))"},
    {"a = 1 AND b = 2 OR c = 3",
     "(or (and (cmp = (ref a) (int 1)) (cmp = (ref b) (int 2))) (cmp = (ref c) (int 3)))"},
    {"a = 1 AND b = 2 AND c = 3",
     "(and (cmp = (ref a) (int 1)) (cmp = (ref b) (int 2)) (cmp = (ref c) (int 3)))"},
    {"a = 1 OR b = 2 OR c = 3",
     "(or (cmp = (ref a) (int 1)) (cmp = (ref b) (int 2)) (cmp = (ref c) (int 3)))"},
    {"(a = 1 OR b = 2) AND c = 3",
     "(and (or (cmp = (ref a) (int 1)) (cmp = (ref b) (int 2))) (cmp = (ref c) (int 3)))"},
    {"(a = 1 OR b = 2) OR c = 3",
     "(or (or (cmp = (ref a) (int 1)) (cmp = (ref b) (int 2))) (cmp = (ref c) (int 3)))"},
    {"NOT (a = 1 OR b = 2)", "(not (or (cmp = (ref a) (int 1)) (cmp = (ref b) (int 2))))"},
    // The "(" ambiguity: a parenthesised term versus a parenthesised predicate.
    {"(a + 1) > 2", "(cmp > (+ (ref a) (int 1)) (int 2))"},
    {"(a > 2 OR b < 1)", "(or (cmp > (ref a) (int 2)) (cmp < (ref b) (int 1)))"},
    {"((a)) = 1", "(cmp = (ref a) (int 1))"},
    {"((a = 1))", "(cmp = (ref a) (int 1))"},
    {"(a) - 1 = 2", "(cmp = (- (ref a) (int 1)) (int 2))"},
    {"((a + 1) * 2 > 3 AND (b) = 1)",
     "(and (cmp > (* (+ (ref a) (int 1)) (int 2)) (int 3)) (cmp = (ref b) (int 1)))"},
    {"(a = ')') AND (b = '(')", "(and (cmp = (ref a) (str ')')) (cmp = (ref b) (str '(')))"},
    {"(a = '') OR (b) = 2", "(or (cmp = (ref a) (str '')) (cmp = (ref b) (int 2)))"},
    {"(a = 1 -- ) a comment\n) OR (b) -- (\n = 2",
     "(or (cmp = (ref a) (int 1)) (cmp = (ref b) (int 2)))"},
    // DUR and durations.
    {"DUR > 10 MIN", "(cmp > (DUR) (dur 10 min))"},
    {"dur < 10min", "(cmp < (DUR) (dur 10 min))"},
    {"CONTAINS(Name, 'IB') = 1", "(cmp = (call CONTAINS (ref Name) (str 'IB')) (int 1))"},
};

const Case kTerms[] = {
    // Literals.
    {"5", "(int 5)"},
    {"0", "(int 0)"},
    {"007", "(int 7)"},
    {"9223372036854775807", "(int 9223372036854775807)"},
    {"1.5", "(float 1.5)"},
    {"1e3", "(float 1000)"},
    {"1.5E-2", "(float 0.015)"},
    {"2.5e+1", "(float 25)"},
    {"'abc'", "(str 'abc')"},
    {"''", "(str '')"},
    {"'it''s'", "(str 'it''s')"},
    {"''''", "(str '''')"},
    {"'a;b -- not a comment'", "(str 'a;b -- not a comment')"},
    {"'caf\xc3\xa9'", "(str 'caf\xc3\xa9')"},
    // References.
    {"a", "(ref a)"},
    {"_x9", "(ref _x9)"},
    {"$.a", "(ref $ a)"},
    {"$1.a", "(ref 1 a)"},
    {"$2.a", "(ref 2 a)"},
    {"DUR", "(DUR)"},
    {"Dur", "(DUR)"},
    // Arithmetic precedence and associativity.
    {"-2^2", "(^ (neg (int 2)) (int 2))"},
    {"2^3^2", "(^ (int 2) (^ (int 3) (int 2)))"},
    {"a-b-c", "(- (- (ref a) (ref b)) (ref c))"},
    {"a - -b", "(- (ref a) (neg (ref b)))"},
    {"a+b*c", "(+ (ref a) (* (ref b) (ref c)))"},
    {"(a+b)*c", "(* (+ (ref a) (ref b)) (ref c))"},
    {"a*b^c", "(* (ref a) (^ (ref b) (ref c)))"},
    {"a/b%c*d", "(* (% (/ (ref a) (ref b)) (ref c)) (ref d))"},
    {"-a*b", "(* (neg (ref a)) (ref b))"},
    {"- -a", "(neg (neg (ref a)))"},
    {"2^-3", "(^ (int 2) (neg (int 3)))"},
    {"a + b - c + d", "(+ (- (+ (ref a) (ref b)) (ref c)) (ref d))"},
    // Function calls.
    {"f()", "(call f)"},
    {"NOW ( )", "(call NOW)"},
    {"MIN(a, 1)", "(call MIN (ref a) (int 1))"},
    {"abs(-a)", "(call abs (neg (ref a)))"},
    {"SIMILARITY(LOWER(a), UPPER($2.b))",
     "(call SIMILARITY (call LOWER (ref a)) (call UPPER (ref 2 b)))"},
    {"MAX(a + 1, b * 2, 3)", "(call MAX (+ (ref a) (int 1)) (* (ref b) (int 2)) (int 3))"},
    // Durations: every unit and its plural forms, any case, with or without a space.
    {"10 MIN", "(dur 10 min)"},
    {"10min", "(dur 10 min)"},
    {"10Min", "(dur 10 min)"},
    {"10   mins", "(dur 10 min)"},
    {"1 MINUTE", "(dur 1 min)"},
    {"2 MINUTES", "(dur 2 min)"},
    {"1 US", "(dur 1 us)"},
    {"1us", "(dur 1 us)"},
    {"1 USEC", "(dur 1 us)"},
    {"1 USECS", "(dur 1 us)"},
    {"1 MICROSECOND", "(dur 1 us)"},
    {"1 MICROSECONDS", "(dur 1 us)"},
    {"1 MS", "(dur 1 ms)"},
    {"1ms", "(dur 1 ms)"},
    {"1 MSEC", "(dur 1 ms)"},
    {"1 MSECS", "(dur 1 ms)"},
    {"1 MILLISECOND", "(dur 1 ms)"},
    {"1 MILLISECONDS", "(dur 1 ms)"},
    {"1 S", "(dur 1 sec)"},
    {"1s", "(dur 1 sec)"},
    {"1 SEC", "(dur 1 sec)"},
    {"1 SECS", "(dur 1 sec)"},
    {"1 SECOND", "(dur 1 sec)"},
    {"1 SECONDS", "(dur 1 sec)"},
    {"1 H", "(dur 1 hour)"},
    {"1h", "(dur 1 hour)"},
    {"1 HR", "(dur 1 hour)"},
    {"1 HRS", "(dur 1 hour)"},
    {"1 HOUR", "(dur 1 hour)"},
    {"1 HOURS", "(dur 1 hour)"},
    {"1 DAY", "(dur 1 day)"},
    {"3days", "(dur 3 day)"},
    {"1.5 hour", "(dur 1.5 hour)"},
    {"2e3ms", "(dur 2000 ms)"},
    {"10 MIN + 30 s", "(+ (dur 10 min) (dur 30 sec))"},
    {"10 -- a comment\n MIN", "(dur 10 min)"},
    // Comments and line breaks inside a term.
    {"a -- one\n + -- two\n b", "(+ (ref a) (ref b))"},
};

TEST(Parser, Statements) {
  for (const auto& c : kStatements) {
    EXPECT_EQ(dump_or_errors(c.text), c.dump) << "script: " << c.text;
  }
}

// A copied tree owns its copies of the boxed predicates: it dumps the same once the original
// is gone.
TEST(Parser, CopiesAreDeep) {
  ParseResult r = parse_script(
      "SELECT * FROM FILTER{a > 1}(S) FOLD{$2.b = $.b, $2.c < $.c, $.c AS d} S;");
  ASSERT_TRUE(r.script);
  ast::Script copy = *r.script;
  r.script.reset();
  EXPECT_EQ(ast::dump(copy),
            "(query (select *) (from (fold (filter (name S) (cmp > (ref a) (int 1))) (name S) "
            "(cmp = (ref 2 b) (ref $ b)) (cmp < (ref 2 c) (ref $ c)) (as (ref $ c) d))))");
}

TEST(Parser, Predicates) {
  for (const auto& c : kPredicates) {
    EXPECT_EQ(dump_or_errors(pred_query(c.text)), pred_dump(c.dump)) << "predicate: " << c.text;
  }
}

TEST(Parser, Terms) {
  for (const auto& c : kTerms) {
    EXPECT_EQ(dump_or_errors(term_query(c.text)), term_dump(c.dump)) << "term: " << c.text;
  }
}

TEST(Parser, LiteralValues) {
  ParseResult r = parse_script(
      "SELECT 9223372036854775807 AS a, 0.1 AS b, 'it''s' AS c, 1.5 H AS d, "
      "10min AS e FROM S");
  ASSERT_TRUE(r.script) << render_all(r.errors, "t", "");
  const auto& items = std::get<ast::Query>(r.script->statements[0]).items;
  ASSERT_EQ(items.size(), 5u);
  EXPECT_EQ(items[0].value.kind, ast::ExprKind::IntLit);
  EXPECT_EQ(items[0].value.int_value, INT64_MAX);
  EXPECT_EQ(items[1].value.kind, ast::ExprKind::FloatLit);
  EXPECT_DOUBLE_EQ(items[1].value.float_value, 0.1);
  EXPECT_EQ(items[2].value.text, "it's");
  EXPECT_EQ(items[3].value.kind, ast::ExprKind::DurationLit);
  EXPECT_TRUE(items[3].value.is_float);
  EXPECT_DOUBLE_EQ(items[3].value.float_value, 1.5);
  EXPECT_EQ(items[3].value.unit, ast::TimeUnit::Hour);
  EXPECT_FALSE(items[4].value.is_float);
  EXPECT_EQ(items[4].value.int_value, 10);
  EXPECT_EQ(items[4].value.unit, ast::TimeUnit::Min);
}

void expect_pos(const ast::Pos& p, uint32_t line, uint32_t column, const char* what) {
  EXPECT_EQ(p.line, line) << what;
  EXPECT_EQ(p.column, column) << what;
}

TEST(Parser, Positions) {
  const std::string text =
      "CREATE STREAM Stock (Name STRING,\n"  // line 1
      "  Price FLOAT);\n"                    // line 2
      "-- a comment\n"                       // line 3
      "SELECT Name, Price * 2 AS P\n"        // line 4
      "FROM Stock NEXT{$1.Name = $2.Name} Stock\n"
      "  PUBLISH T;\n"
      "\tFILTER{NOT -a > 1}(S) UNION FOLD_ FOLD{,} (SELECT * FROM X)";
  ParseResult r = parse_script(text);
  ASSERT_TRUE(r.script) << render_all(r.errors, "t", text);
  ASSERT_EQ(r.script->statements.size(), 3u);

  const auto& c = std::get<ast::CreateStream>(r.script->statements[0]);
  expect_pos(c.pos, 1, 1, "create");
  EXPECT_EQ(c.pos.offset, 0u);
  expect_pos(c.attrs[0].pos, 1, 22, "attr Name");
  expect_pos(c.attrs[0].type_pos, 1, 27, "type STRING");
  expect_pos(c.attrs[1].pos, 2, 3, "attr Price");
  EXPECT_EQ(c.attrs[1].pos.offset, 36u);
  expect_pos(c.attrs[1].type_pos, 2, 9, "type FLOAT");

  const auto& q = std::get<ast::Query>(r.script->statements[1]);
  expect_pos(q.pos, 4, 1, "query");
  expect_pos(q.items[0].pos, 4, 8, "item Name");
  expect_pos(q.items[1].pos, 4, 14, "item Price * 2");
  expect_pos(q.items[1].value.pos, 4, 14, "binary * (its first operand)");
  expect_pos(q.items[1].value.args[1].pos, 4, 22, "literal 2");
  expect_pos(q.from.pos, 5, 12, "NEXT keyword");
  expect_pos(q.from.inputs[0].pos, 5, 6, "left Stock");
  expect_pos(q.from.inputs[1].pos, 5, 36, "right Stock");
  expect_pos(q.from.pred->pos, 5, 17, "comparison (its left operand)");
  expect_pos(q.from.pred->args[1].pos, 5, 27, "$2.Name");
  expect_pos(q.publish_pos, 6, 11, "publish name");

  const auto& u = std::get<ast::Query>(r.script->statements[2]);
  expect_pos(u.pos, 7, 2, "query after a tab");
  ASSERT_EQ(u.from.kind, ast::StreamKind::Union);
  expect_pos(u.from.pos, 7, 2, "union (its first input)");
  const auto& filter = u.from.inputs[0];
  expect_pos(filter.pos, 7, 2, "FILTER keyword");
  expect_pos(filter.pred->pos, 7, 9, "NOT");
  expect_pos(filter.pred->args[0].args[0].pos, 7, 13, "unary minus");
  const auto& fold = u.from.inputs[1];
  expect_pos(fold.pos, 7, 36, "FOLD keyword");
  expect_pos(fold.inputs[0].pos, 7, 30, "stream FOLD_");
  expect_pos(fold.inputs[1].pos, 7, 44, "subquery '('");
  expect_pos(fold.inputs[1].subquery->pos, 7, 45, "inner query");
}

TEST(Parser, PositionsOfTokens) {
  ParseResult r =
      parse_script("SELECT f(x) AS a, 'x' AS b, 10 MIN AS c, DUR AS d, $2.q AS e FROM S");
  ASSERT_TRUE(r.script);
  const auto& items = std::get<ast::Query>(r.script->statements[0]).items;
  expect_pos(items[0].value.pos, 1, 8, "call");
  expect_pos(items[0].value.args[0].pos, 1, 10, "call argument");
  expect_pos(items[1].value.pos, 1, 19, "string");
  expect_pos(items[2].value.pos, 1, 29, "duration");
  expect_pos(items[3].value.pos, 1, 42, "DUR");
  expect_pos(items[4].value.pos, 1, 52, "$2.q");
}

// Every position in a parsed script, in order: with the dump, what a parse is.
void positions(const ast::Expr& e, std::string& out) {
  out += std::to_string(e.pos.offset) + ":" + std::to_string(e.pos.line) + ":" +
         std::to_string(e.pos.column) + " ";
  for (const auto& a : e.args) positions(a, out);
}
void positions(const ast::StreamExpr& s, std::string& out) {
  out += "s" + std::to_string(s.pos.offset) + ":" + std::to_string(s.pos.line) + " ";
  if (s.pred) positions(*s.pred, out);
  if (s.pred2) positions(*s.pred2, out);
  for (const auto& a : s.aggregates) positions(a.value, out);
  for (const auto& in : s.inputs) positions(in, out);
}
std::string parse_of(std::string_view text, ParseOptions options) {
  ParseResult r = parse_script(text, options);
  if (!r.script) return "ERROR: " + render_all(r.errors, "t", text);
  std::string out = ast::dump(*r.script) + "\n";
  for (const auto& st : r.script->statements) {
    if (const auto* q = std::get_if<ast::Query>(&st)) {
      out += "q" + std::to_string(q->pos.offset) + " ";
      for (const auto& item : q->items) positions(item.value, out);
      positions(q->from, out);
    } else {
      out += "c" + std::to_string(std::get<ast::CreateStream>(st).pos.offset) + " ";
    }
  }
  return out;
}

// A script whose `;`s are not all statement ends: in strings (with '' escapes), in comments,
// and a comment whose `;` is followed by what would parse as a query.
std::string tricky_script(int queries, const char* head) {
  std::string text = head;
  for (int i = 0; i < queries; ++i) {
    switch (i % 5) {
      case 0:
        text += "SELECT a FROM FILTER{b = 'x;y" + std::to_string(i) + "'}(S);\n";
        break;
      case 1:
        text += "FILTER{b = 'it''s; -- not a comment'}(S) -- a comment; FILTER{a = 1}(S)\n;";
        break;
      case 2:
        text += "S NEXT{$2.a > $1.a + " + std::to_string(i) + "} S;;\n";
        break;
      case 3:
        text +=
            "SELECT a, b AS c\n  FROM S FOLD{$2.a = $.a, $2.b != ';', sum($2.a) AS t} S\n  "
            "PUBLISH T" +
            std::to_string(i) + ";  -- ';'\n";
        break;
      default:
        text += "-- ' an unmatched quote in a comment;\nS;";
        break;
    }
  }
  return text;
}

TEST(Parser, ChunkedParseIsTheOneThreadParse) {
  const std::string text = tricky_script(
      400, "\xEF\xBB\xBF-- a header; SELECT * FROM Nope\nCREATE STREAM S (a INT, b STRING);\n");
  const std::string one = parse_of(text, {});
  ASSERT_EQ(one.rfind("ERROR", 0), std::string::npos) << one;
  // Chunks from a few statements to a few bytes: cuts fall everywhere, strings and comments too.
  for (unsigned threads : {2u, 3u, 7u, 64u}) {
    for (size_t min_chunk : {1u, 100u, 5000u}) {
      EXPECT_EQ(parse_of(text, {threads, min_chunk}), one) << threads << " " << min_chunk;
    }
  }
}

TEST(Parser, ChunkedParseReportsTheOneThreadErrors) {
  std::string text = tricky_script(100, "CREATE STREAM S (a INT, b STRING);\n");
  text += "SELECT a FROM FILTER{a >}(S);\n";
  text += tricky_script(100, "");
  text += "SELECT FROM S;\nS NEXT S;\n";
  const std::string one = parse_of(text, {});
  EXPECT_EQ(std::count(one.begin(), one.end(), '^'), 3) << one;  // each error has its caret
  for (unsigned threads : {2u, 4u}) EXPECT_EQ(parse_of(text, {threads, 1}), one);
}

TEST(Parser, DumpOfEveryOperatorName) {
  EXPECT_STREQ(ast::to_string(ast::BinOp::Mod), "%");
  EXPECT_STREQ(ast::to_string(ast::CmpOp::Ne), "!=");
  EXPECT_STREQ(ast::to_string(ast::TimeUnit::Us), "us");
}

}  // namespace
}  // namespace cayuga
