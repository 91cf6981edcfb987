// Table-driven tests of parse errors: each case is a broken script, a substring of the message,
// and the exact line and column the error must point at. Plus robustness: garbage, truncations
// and mutations of valid scripts never crash and always give well-formed diagnostics.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "lang/parser.h"

namespace cayuga {
namespace {

struct ErrorCase {
  std::string text;
  const char* message;  // a substring of the first error's message
  uint32_t line;
  uint32_t column;
};

const std::vector<ErrorCase>& error_cases() {
  static const std::vector<ErrorCase> cases = {
      // Blocks that are not closed name the opener and where it started.
      {"SELECT *\nFROM S NEXT{$1.a = $2.a\n S",
       "expected '}' to close NEXT{ started at 2:8, found 'S'", 3, 2},
      {"FILTER{a > 1 T", "expected '}' to close FILTER{ started at 1:1, found 'T'", 1, 14},
      {"FILTER{a > 1 S", "expected '}' to close FILTER{ started at 1:1, found end of input", 1, 15},
      {"S FOLD{,, a AS b c} T", "expected ',' or '}' to close FOLD{ started at 1:3", 1, 18},
      {"S NEXT{a = 1)} T", "expected '}' to close NEXT{ started at 1:3, found ')'", 1, 13},
      {"SELECT (a + 1 AS x FROM S", "expected ')' to close '(' started at 1:8, found 'AS'", 1, 15},
      {"FILTER{(a + 1 > 2}(S)", "expected ')' to close '(' started at 1:8, found '}'", 1, 18},
      {"(SELECT * FROM S NEXT{} T", "expected ')' to close '(' started at 1:1, found end of input",
       1, 26},
      {"SELECT MIN(a b) AS x FROM S", "expected ',' or ')' to close '(' started at 1:11, found 'b'",
       1, 14},
      // What must follow a keyword or an operator.
      {"S NEXT{} ;", "expected a stream name, '(' or FILTER after NEXT{...}, found ';'", 1, 10},
      {"S FOLD{,} 1", "expected a stream name, '(' or FILTER after FOLD{...}, found '1'", 1, 11},
      {"FILTER{a = 1}",
       "expected a stream name, '(' or FILTER after FILTER{...}, found end of input", 1, 14},
      {"S UNION\n", "expected a stream name, '(' or FILTER after UNION, found end of input", 1, 8},
      {"SELECT * FROM", "expected a stream name, '(' or FILTER after FROM, found end of input", 1,
       14},
      {"SELECT a FROM S PUBLISH ;", "expected a stream name after PUBLISH, found ';'", 1, 25},
      {"S NEXT T", "expected '{' after NEXT, found 'T'", 1, 8},
      {"FILTER a = 1 (S)", "expected '{' after FILTER, found 'a'", 1, 8},
      {"FILTER{}(S)", "expected a predicate after FILTER{, found '}'", 1, 8},
      {"S NEXT{ * } T", "expected a predicate or '}' after NEXT{, found '*'", 1, 9},
      {"S FOLD{a = 1} T", "expected ',' after the first FOLD predicate", 1, 13},
      {"S FOLD{,, a + 1} T",
       "expected AS name: a FOLD aggregate is written 'term AS name', found '}'", 1, 16},
      {"SELECT FROM S", "expected a select item ('*' or a term) after SELECT, found 'FROM'", 1, 8},
      {"SELECT a, FROM S", "expected a select item ('*' or a term) after ',', found 'FROM'", 1, 11},
      {"SELECT a S", "expected ',' or FROM after the select item, found 'S'", 1, 10},
      {"SELECT a + 1 FROM S", "expected AS name: only a bare attribute reference may omit AS", 1,
       14},
      {"SELECT MIN(a, b) FROM S", "expected AS name: only a bare attribute reference may omit AS",
       1, 18},
      {"SELECT a AS FROM S", "'FROM' is a reserved word and cannot be an attribute name", 1, 13},
      {"SELECT a AS 1 FROM S", "expected a name after AS, found '1'", 1, 13},
      // Predicates.
      {"FILTER{a}(S)", "expected a comparison operator (=, !=, <>, <, <=, >, >=), found '}'", 1, 9},
      {"FILTER{a == 1}(S)", "expected a term after the comparison operator, found '='", 1, 11},
      {"FILTER{(a > 1 OR b <)}(S)", "expected a term after the comparison operator, found ')'", 1,
       21},
      {"FILTER{NOT NOT a = 1}(S)", "expected a comparison or '(' after NOT, found 'NOT'", 1, 12},
      {"FILTER{a = 1 AND}(S)", "expected a predicate after AND, found '}'", 1, 17},
      {"FILTER{a = 1 OR OR b = 1}(S)", "expected a predicate after OR, found 'OR'", 1, 17},
      // Terms.
      {"SELECT a + AS x FROM S", "expected a term after '+', found 'AS'", 1, 12},
      {"SELECT a * FROM S", "expected a term after '*', found 'FROM'", 1, 12},
      {"SELECT 2 ^ AS x FROM S", "expected a term after '^'", 1, 12},
      {"SELECT - AS x FROM S", "expected a term after '-'", 1, 10},
      {"SELECT () AS x FROM S", "expected a term after '(', found ')'", 1, 9},
      {"SELECT MIN(a,) AS x FROM S", "expected a term after ',', found ')'", 1, 14},
      // Tokens.
      {"SELECT 'abc AS x FROM S", "unterminated string literal", 1, 8},
      {"SELECT a FROM S;\nSELECT 'it''s AS x FROM S", "unterminated string literal", 2, 8},
      {"SELECT \"x\" AS x FROM S", "string literals use single quotes", 1, 8},
      {"SELECT 10 MINZ AS x FROM S", "unknown time unit 'MINZ'", 1, 11},
      {"SELECT 10MINX AS x FROM S", "unknown time unit 'MINX'", 1, 10},
      {"SELECT 10 Seconds_ AS x FROM S", "unknown time unit 'Seconds_'", 1, 11},
      {"SELECT 10 Hourz AS x FROM S", "unknown time unit 'Hourz'", 1, 11},
      {"SELECT 10 T AS x FROM S", "expected AS name: only a bare attribute reference may omit AS",
       1, 11},
      {"SELECT 99999999999999999999 AS x FROM S", "integer literal out of range", 1, 8},
      {"SELECT 9223372036854775808 AS x FROM S", "integer literal out of range", 1, 8},
      {"SELECT 1e999 AS x FROM S", "floating-point literal out of range", 1, 8},
      {"SELECT 1. AS x FROM S", "expected digits after the decimal point", 1, 9},
      {"SELECT .5 AS x FROM S", "a number must start with a digit: write 0.5, not .5", 1, 8},
      {"SELECT $3.a AS x FROM S", "invalid reference '$3': only $, $1 and $2 exist", 1, 8},
      {"SELECT $1 AS x FROM S", "expected '.' after '$1', found 'AS'", 1, 11},
      {"SELECT $.1 AS x FROM S", "expected an attribute name after '$.', found '1'", 1, 10},
      {"SELECT $2.Select AS x FROM S",
       "'Select' is a reserved word and cannot be an attribute name", 1, 11},
      {"SELECT a FROM S \xff", "unexpected byte 0xFF after the end of the statement", 1, 17},
      {std::string("SELECT a\0 FROM S", 16),
       "expected ',' or FROM after the select item, found a NUL byte", 1, 9},
      // CREATE STREAM.
      {"CREATE S (a INT)", "expected STREAM, found 'S'", 1, 8},
      {"CREATE STREAM (a INT)", "expected a stream name after CREATE STREAM, found '('", 1, 15},
      {"CREATE STREAM Union (a INT)", "'Union' is a reserved word and cannot be a stream name", 1,
       15},
      {"CREATE STREAM S a INT)", "expected '(', found 'a'", 1, 17},
      {"CREATE STREAM S ()", "expected an attribute declaration 'name TYPE', found ')'", 1, 18},
      {"CREATE STREAM S (a INT,)", "expected an attribute declaration 'name TYPE' after ','", 1,
       24},
      {"CREATE STREAM S (a, b INT)",
       "expected a type (INT, FLOAT or STRING) after the attribute name, found ','", 1, 19},
      {"CREATE STREAM S (Select INT)",
       "'Select' is a reserved word and cannot be an attribute name", 1, 18},
      {"CREATE STREAM S (a INT b FLOAT)",
       "expected ',' or ')' after the attribute declaration, found 'b'", 1, 24},
      // Statements.
      {"SELECT a FROM S; )",
       "unexpected ')': expected a statement (CREATE STREAM, SELECT or a stream expression)", 1,
       18},
      {"S NEXT{} T extra", "unexpected 'extra' after the end of the statement (missing ';'?)", 1,
       12},
      {"CREATE STREAM S (a INT)\nCREATE STREAM T (b INT)",
       "unexpected 'CREATE' after the end of the statement", 2, 1},
      {"PUBLISH X", "unexpected 'PUBLISH': expected a statement", 1, 1},
      // Limits.
      {"SELECT " + std::string(300, '(') + "a" + std::string(300, ')') + " AS x FROM S",
       "nesting too deep (more than 200 levels)", 1, 209},
      {"FILTER{" + std::string(300, '(') + "a = 1" + std::string(300, ')') + "}(S)",
       "nesting too deep (more than 200 levels)", 1, 209},
      {"SELECT " +
           [] {
             std::string s;
             for (int i = 0; i < 1000; ++i) s += "a+";
             return s + "a";
           }() +
           " AS x FROM S",
       "expression too deeply nested (more than 1000 levels of operators)", 1, 2007},
  };
  return cases;
}

TEST(ParseError, Table) {
  for (const auto& c : error_cases()) {
    ParseResult r = parse_script(c.text);
    ASSERT_FALSE(r.errors.empty()) << "no error for: " << c.text;
    EXPECT_FALSE(r.script) << c.text;
    const Diagnostic& d = r.errors.front();
    EXPECT_NE(d.message.find(c.message), std::string::npos)
        << "script: " << c.text << "\nmessage: " << d.message << "\nwanted:  " << c.message;
    EXPECT_EQ(d.line, c.line) << c.text << "\n" << d.message;
    EXPECT_EQ(d.column, c.column) << c.text << "\n" << d.message;
  }
}

TEST(ParseError, AtLeast35Kinds) {
  EXPECT_GE(error_cases().size(), 35u);
}

TEST(ParseError, ResynchronisesAfterSemicolon) {
  const std::string text =
      "SELECT a + 1 FROM S;\n"
      "SELECT b FROM T;  -- fine\n"
      "S NEXT{ x = 'a;b' T;\n"
      "S UNION;\n"
      "CREATE STREAM X (a INT)";
  ParseResult r = parse_script(text);
  EXPECT_FALSE(r.script);
  ASSERT_EQ(r.errors.size(), 3u) << render_all(r.errors, "t", text);
  EXPECT_EQ(r.errors[0].line, 1u);
  EXPECT_EQ(r.errors[1].line, 3u);
  EXPECT_EQ(r.errors[1].column, 19u);
  EXPECT_NE(r.errors[1].message.find("NEXT{ started at 3:3"), std::string::npos);
  EXPECT_EQ(r.errors[2].line, 4u);
  EXPECT_EQ(r.errors[2].column, 8u);
}

TEST(ParseError, RendersWithCaret) {
  const std::string text = "SELECT *\nFROM S NEXT{$1.a = 1} ;";
  ParseResult r = parse_script(text);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(render_all(r.errors, "q.cel", text),
            "q.cel:2:23: error: expected a stream name, '(' or FILTER after NEXT{...}, found ';'\n"
            "  FROM S NEXT{$1.a = 1} ;\n"
            "                        ^\n");
}

// Every diagnostic is well-formed: a position inside the text (or just past it) and a message.
void check_result(const std::string& text, const ParseResult& r) {
  ASSERT_EQ(r.script.has_value(), r.errors.empty()) << text;
  uint32_t lines = 1;
  for (char c : text) lines += c == '\n';
  for (const auto& d : r.errors) {
    ASSERT_GE(d.line, 1u) << text;
    ASSERT_LE(d.line, lines) << text;
    ASSERT_GE(d.column, 1u) << text;
    ASSERT_FALSE(d.message.empty()) << text;
    (void)d.render("f", text);
  }
  if (r.script) (void)ast::dump(*r.script);
}

const char* const kValidScripts[] = {
    "CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\n"
    "SELECT Name, Price_1 AS FirstPrice, Price AS SecondPrice\n"
    "FROM Stock NEXT{$1.Name = $2.Name} Stock\n"
    "PUBLISH Pairs;\n",
    "SELECT Name, Price_1 AS Start, Price AS Last, cnt\n"
    "FROM (SELECT *, 1 AS cnt FROM Stock) FOLD{$2.Name = $.Name, $2.Price > $.Price, $.cnt + 1 AS "
    "cnt} Stock\nPUBLISH Rising; -- done\n",
    "SELECT Name, Price FROM FILTER{Volume > 1000}(Stock) PUBLISH Big;\n"
    "SELECT * FROM FILTER{DUR <= 2 SEC AND NOT (a = 'x''y' OR (b + 1) * 2 >= -3^2)}(Stock NEXT{} "
    "Stock) UNION X PUBLISH Quick;\n",
    "SELECT MIN(a, 10min) AS m, f() AS g, $1.a, 1.5e3 AS h FROM A FOLD{,, a AS b,} B FOLD{} C;",
};

TEST(ParseError, TruncationsNeverCrash) {
  for (const char* script : kValidScripts) {
    std::string text = script;
    ParseResult full = parse_script(text);
    ASSERT_TRUE(full.script) << render_all(full.errors, "t", text);
    for (size_t n = 0; n <= text.size(); ++n) {
      std::string prefix = text.substr(0, n);
      check_result(prefix, parse_script(prefix));
      std::string suffix = text.substr(n);
      check_result(suffix, parse_script(suffix));
    }
  }
}

TEST(ParseError, MutationsAndGarbageNeverCrash) {
  std::mt19937 rng(20240611);
  const std::string alphabet = "(){}[],;.$'\"-+*/%^=!<> \n\t_aSZ019eE\xff\x80\x00";
  const char* const tokens[] = {"SELECT",  "FROM", "FILTER{", "NEXT{",
                                "FOLD{",   "}",    "(",       ")",
                                "UNION",   "AS",   "AND",     "OR",
                                "NOT",     ",",    ";",       "$1.",
                                "'",       "--",   "10 MIN",  "DUR",
                                "a",       "=",    "1e",      "CREATE STREAM",
                                "PUBLISH", "-",    "^",       "9999999999999999999999"};
  auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  for (int iter = 0; iter < 3000; ++iter) {
    std::string text;
    switch (iter % 3) {
      case 0: {  // byte mutations of a valid script
        text = kValidScripts[pick(std::size(kValidScripts))];
        int edits = 1 + static_cast<int>(pick(4));
        for (int e = 0; e < edits && !text.empty(); ++e) {
          size_t at = pick(text.size());
          char c = alphabet[pick(alphabet.size())];
          switch (pick(3)) {
            case 0:
              text[at] = c;
              break;
            case 1:
              text.insert(text.begin() + static_cast<std::ptrdiff_t>(at), c);
              break;
            default:
              text.erase(at, 1 + pick(8));
              break;
          }
        }
        break;
      }
      case 1: {  // random token soup
        size_t n = pick(40);
        for (size_t i = 0; i < n; ++i) text += std::string(tokens[pick(std::size(tokens))]) + " ";
        break;
      }
      default: {  // random bytes
        size_t n = pick(64);
        for (size_t i = 0; i < n; ++i) text += static_cast<char>(pick(256));
        break;
      }
    }
    check_result(text, parse_script(text));
  }
}

TEST(ParseError, DeepInputIsRejectedNotOverflowed) {
  for (const char* open : {"(", "- ", "FILTER{a=1}", "2^", "NOT (", "(SELECT * FROM "}) {
    std::string text;
    for (int i = 0; i < 100000; ++i) text += open;
    ParseResult r = parse_script(text);
    ASSERT_FALSE(r.errors.empty()) << open;
    check_result(text, r);
  }
}

}  // namespace
}  // namespace cayuga
