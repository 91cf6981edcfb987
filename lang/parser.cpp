// The CEL parser: the grammar of CEL.md §3 as Boost.Spirit X3 rules, producing lang/ast.h.
//
// How it is put together, and why:
//
// - Tokens (keywords, names, numbers with their time unit, strings, `$1.a` references, the head
//   of a function call) are small hand-written X3 primitive parsers. They need exact control of
//   their errors (an out-of-range integer, `10 MINZ`, a reserved word used as a name), which
//   combinator lexing makes awkward. Keywords are case-insensitive and must not be followed by an
//   identifier character, so `DURATION` and `Fromage` are names.
// - The structure is X3 rules. Their attributes are parser-internal wrappers (TExpr, TStream,
//   TQuery) around the ast:: structs that also track the depth of the tree built so far, so a
//   10 000-term `a+a+...` chain is rejected before anything downstream recurses over it.
// - Attributes are built by `act(p, f)`: a semantic action that also receives the position of
//   p's first token (X3 1.74's `_where()` is the rest of the input, not the match). It calls
//   f(rule value, p's attribute, At{pointer, Pos}).
// - Errors: `must(what)[p]` is an expectation point that throws x3::expectation_failure with a
//   readable `which()`; plain X3 `>` is used where a parser's own name reads well. Lexical and
//   semantic errors (`integer literal out of range`) throw SyntaxError. parse_script catches both
//   per statement, turns them into Diagnostics ("expected X, found Y" for expectations), and
//   resynchronises after the next `;` so later statements are checked too.
// - `neg ::= [NOT] (term cmp term | "(" pred ")")` is ambiguous at "(": `(a + 1) > 2` versus
//   `(a > 2 OR b < 1)`. When the matching ')' is found, the token after it decides (an
//   operator: a comparison; anything else: a parenthesised predicate), which is exact for valid
//   input. Otherwise (unbalanced input) Backtrack tries the comparison first and, if it fails
//   (even by an expectation failure), the parenthesised predicate; if both fail, the error that
//   got further into the input is reported.
// - Recursion of the parser (parentheses, subqueries, FILTER chains, unary minus, `^`) is capped
//   at kMaxNesting levels, and the trees at kMaxTreeDepth, with a clear error instead of a stack
//   overflow.
//
// Lexical decisions beyond CEL.md: numbers start with a digit (`.5` is an error that says to
// write `0.5`; `1.` is an error too); `1e3` and `1.5E-2` are FLOAT; a string may not span lines;
// `$1.a` is written without spaces; columns count bytes; a number directly followed by a name
// (`10MINZ`) is an unknown time unit, and so is one followed after spaces by a name that starts
// with the first two letters of a unit (`10 MINZ`, `10 Hourz`, `10 M`); `1 T` is left to the
// grammar. `-9223372036854775808` is `(neg <out of range>)`, i.e. an error.
#include "lang/parser.h"

#include <algorithm>
#include <boost/fusion/include/at_c.hpp>
#include <boost/spirit/home/x3.hpp>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace cayuga {
namespace {

// Marks our primitive parsers: x3::what() asks them for their description.
struct Described {};

}  // namespace
}  // namespace cayuga

namespace boost::spirit::x3 {
template <typename P>
struct get_info<P, typename std::enable_if<std::is_base_of<cayuga::Described, P>::value>::type> {
  using result_type = std::string;
  std::string operator()(P const& p) const { return p.description(); }
};
}  // namespace boost::spirit::x3

namespace cayuga {
namespace {

namespace x3 = boost::spirit::x3;
using It = const char*;

constexpr int kMaxNesting = 200;     // parser recursion: parentheses, FILTER chains, '-', '^'
constexpr int kMaxTreeDepth = 1000;  // depth of one expression tree or one stream tree

// ---------------------------------------------------------------------------------------------
// Characters and small lexical helpers. Only ASCII counts as a letter or space: any other byte
// (UTF-8 or not) is just an unexpected character outside string literals.

bool is_alpha(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_id_start(char c) {
  return is_alpha(c) || c == '_';
}
bool is_id_char(char c) {
  return is_id_start(c) || is_digit(c);
}
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
char to_upper(char c) {
  return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
}

// Skips spaces and `--` comments; the X3 skipper below does exactly the same.
It skip_ws(It p, It end) {
  for (;;) {
    if (p != end && is_space(*p)) {
      ++p;
    } else if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
      while (p != end && *p != '\n') ++p;
    } else {
      return p;
    }
  }
}

It id_end(It p, It end) {
  while (p != end && is_id_char(*p)) ++p;
  return p;
}

bool iequals_upper(std::string_view w, std::string_view upper) {
  if (w.size() != upper.size()) return false;
  for (size_t i = 0; i < w.size(); ++i) {
    if (to_upper(w[i]) != upper[i]) return false;
  }
  return true;
}

// (string_views: every name parsed is checked against all of them, and a `const char*` would
// be measured with strlen each time.)
constexpr std::string_view kReserved[] = {"SELECT", "FROM",    "FILTER", "NEXT",  "FOLD",
                                          "UNION",  "PUBLISH", "AS",     "AND",   "OR",
                                          "NOT",    "DUR",     "CREATE", "STREAM"};

// The shortest and the longest reserved word: most names are neither.
constexpr auto kReservedSizes = [] {
  std::pair<size_t, size_t> sizes{SIZE_MAX, 0};
  for (std::string_view r : kReserved) {
    sizes.first = std::min(sizes.first, r.size());
    sizes.second = std::max(sizes.second, r.size());
  }
  return sizes;
}();

bool is_reserved(std::string_view w) {
  if (w.size() < kReservedSizes.first || w.size() > kReservedSizes.second) return false;
  for (std::string_view r : kReserved) {
    if (iequals_upper(w, r)) return true;
  }
  return false;
}

// Matches keyword `upper` (case-insensitively, not followed by an identifier char) at p.
bool match_kw(It p, It end, std::string_view upper, It* after) {
  if (static_cast<size_t>(end - p) < upper.size()) return false;
  if (!iequals_upper(std::string_view(p, upper.size()), upper)) return false;
  p += upper.size();
  if (p != end && is_id_char(*p)) return false;
  *after = p;
  return true;
}

struct UnitName {
  std::string_view name;
  ast::TimeUnit unit;
};
constexpr UnitName kUnits[] = {
    {"US", ast::TimeUnit::Us},           {"USEC", ast::TimeUnit::Us},
    {"USECS", ast::TimeUnit::Us},        {"MICROSECOND", ast::TimeUnit::Us},
    {"MICROSECONDS", ast::TimeUnit::Us}, {"MS", ast::TimeUnit::Ms},
    {"MSEC", ast::TimeUnit::Ms},         {"MSECS", ast::TimeUnit::Ms},
    {"MILLISECOND", ast::TimeUnit::Ms},  {"MILLISECONDS", ast::TimeUnit::Ms},
    {"S", ast::TimeUnit::Sec},           {"SEC", ast::TimeUnit::Sec},
    {"SECS", ast::TimeUnit::Sec},        {"SECOND", ast::TimeUnit::Sec},
    {"SECONDS", ast::TimeUnit::Sec},     {"MIN", ast::TimeUnit::Min},
    {"MINS", ast::TimeUnit::Min},        {"MINUTE", ast::TimeUnit::Min},
    {"MINUTES", ast::TimeUnit::Min},     {"H", ast::TimeUnit::Hour},
    {"HR", ast::TimeUnit::Hour},         {"HRS", ast::TimeUnit::Hour},
    {"HOUR", ast::TimeUnit::Hour},       {"HOURS", ast::TimeUnit::Hour},
    {"DAY", ast::TimeUnit::Day},         {"DAYS", ast::TimeUnit::Day},
};

std::optional<ast::TimeUnit> find_unit(std::string_view w) {
  for (const auto& u : kUnits) {
    if (iequals_upper(w, u.name)) return u.unit;
  }
  return std::nullopt;
}

// After a space, a name that is not a unit is a misspelt unit only if it starts like one
// (`10 MINZ`, `10 Hourz`); otherwise it is left for the grammar (`FILTER{a > 1 T` lacks a '}').
bool looks_like_unit(std::string_view w) {
  size_t n = std::min<size_t>(2, w.size());
  for (const auto& u : kUnits) {
    if (u.name.size() >= n && iequals_upper(w.substr(0, n), u.name.substr(0, n))) return true;
  }
  return false;
}

std::string clip(std::string_view s) {
  return s.size() > 24 ? std::string(s.substr(0, 24)) + "..." : std::string(s);
}

// How the token at p reads in "found ..." of a message.
std::string describe(It p, It end) {
  if (p == end) return "end of input";
  if (is_id_char(*p)) {
    It q = p;
    while (q != end && (is_id_char(*q) || (is_digit(*p) && *q == '.'))) ++q;
    return "'" + clip(std::string_view(p, q - p)) + "'";
  }
  if (*p == '\'') return "a string literal";
  unsigned char c = static_cast<unsigned char>(*p);
  if (c > 0x20 && c < 0x7f) {
    if (end - p >= 2) {
      std::string_view two(p, 2);
      if (two == "<=" || two == ">=" || two == "<>" || two == "!=")
        return "'" + std::string(two) + "'";
    }
    return "'" + std::string(1, *p) + "'";
  }
  if (c == 0) return "a NUL byte";
  char buf[32];
  std::snprintf(buf, sizeof buf, "byte 0x%02X", static_cast<unsigned>(c));
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Parse state, reachable from every parser through the X3 context (x3::with<state_tag>).

struct State {
  It begin;  // of the whole script: positions count from here
  It end;    // of the statements this state parses (the whole script, or one chunk of it)
  const std::vector<uint32_t>& line_starts;  // byte offset of the first character of each line
  mutable size_t last_line = 1;              // pos(): the line of the last position asked for
  int nesting = 0;

  State(It begin, It end, const std::vector<uint32_t>& line_starts)
      : begin(begin), end(end), line_starts(line_starts) {}

  ast::Pos pos(It p) const {
    auto off = static_cast<uint32_t>(p - begin);
    // Parsing moves forward, so the line is nearly always the last one asked for or the next:
    // check those before searching (a script of a million lines is a million line starts).
    auto holds = [&](size_t line) {  // 1-based
      return line_starts[line - 1] <= off &&
             (line == line_starts.size() || off < line_starts[line]);
    };
    if (!holds(last_line)) {
      if (last_line < line_starts.size() && holds(last_line + 1)) {
        ++last_line;
      } else {
        auto it = std::upper_bound(line_starts.begin(), line_starts.end(), off);
        last_line = static_cast<size_t>(it - line_starts.begin());  // >= 1
      }
    }
    auto line = static_cast<uint32_t>(last_line);
    return ast::Pos{line, off - line_starts[line - 1] + 1, off};
  }

  std::string where(It p) const {
    ast::Pos ps = pos(p);
    return std::to_string(ps.line) + ":" + std::to_string(ps.column);
  }
};

struct state_tag;

template <typename Ctx>
State& state_of(Ctx const& ctx) {
  return x3::get<state_tag>(ctx);
}

// An error that is not "expected X": its message is final.
struct SyntaxError {
  It where;
  std::string message;
};

[[noreturn]] void fail_expected(It where, std::string what) {
  throw x3::expectation_failure<It>(where, what);
}

// Where to point at for an error found at `raw`: the next token, or, when only spaces and
// comments follow, just after the last token before `raw` (not on an empty last line).
It error_point(It raw, It begin, It end) {
  It p = skip_ws(raw, end);
  if (p != end) return p;
  while (raw > begin && is_space(raw[-1])) --raw;
  return raw;
}

SyntaxError to_error(x3::expectation_failure<It> const& e, It begin, It end) {
  It p = skip_ws(e.where(), end);
  return SyntaxError{error_point(e.where(), begin, end),
                     "expected " + e.which() + ", found " + describe(p, end)};
}

// ---------------------------------------------------------------------------------------------
// Parser-internal attributes: the AST node plus the depth of the tree built so far.

struct TExpr {
  ast::Expr e;
  int depth = 1;
};

struct TStream {
  ast::StreamExpr s;
  int depth = 1;
};

struct TQuery {
  ast::Query q;
  int depth = 1;
};

struct FoldArgs {
  ast::Box<ast::Expr> pred;
  ast::Box<ast::Expr> pred2;
  std::vector<ast::Aggregate> aggregates;
};

// Where an action's subject started.
struct At {
  It ptr;
  ast::Pos pos;
};

void check_expr_depth(int depth, At const& at) {
  if (depth > kMaxTreeDepth) {
    throw SyntaxError{at.ptr, "expression too deeply nested (more than " +
                                  std::to_string(kMaxTreeDepth) + " levels of operators)"};
  }
}

void check_stream_depth(int depth, At const& at) {
  if (depth > kMaxTreeDepth) {
    throw SyntaxError{at.ptr, "stream expression too deeply nested (more than " +
                                  std::to_string(kMaxTreeDepth) + " levels)"};
  }
}

// ---------------------------------------------------------------------------------------------
// Primitive parsers.

struct Skipper : x3::parser<Skipper> {
  using attribute_type = x3::unused_type;

  template <typename Ctx, typename RCtx, typename A>
  bool parse(It& first, It const& last, Ctx const&, RCtx&, A&) const {
    It p = skip_ws(first, last);
    if (p == first) return false;
    first = p;
    return true;
  }
};

struct Kw : x3::parser<Kw>, Described {
  using attribute_type = x3::unused_type;
  std::string_view word;  // upper case

  explicit Kw(std::string_view w) : word(w) {}
  std::string description() const { return std::string(word); }

  template <typename Ctx, typename RCtx, typename A>
  bool parse(It& first, It const& last, Ctx const& ctx, RCtx&, A&) const {
    x3::skip_over(first, last, ctx);
    It after;
    if (!match_kw(first, last, word, &after)) return false;
    first = after;
    return true;
  }
};

// An identifier that is not a reserved word. `strict`: a reserved word here is an error (where
// only a name can follow, e.g. after AS) rather than a mismatch (where a keyword may follow).
struct NameP : x3::parser<NameP>, Described {
  using attribute_type = std::string;
  const char* role;  // "an attribute name"
  bool strict;

  NameP(const char* r, bool s) : role(r), strict(s) {}
  std::string description() const { return role; }

  template <typename Ctx, typename RCtx, typename A>
  bool parse(It& first, It const& last, Ctx const& ctx, RCtx&, A& attr) const {
    x3::skip_over(first, last, ctx);
    if (first == last || !is_id_start(*first)) return false;
    It e = id_end(first, last);
    std::string_view w(first, e - first);
    if (is_reserved(w)) {
      if (strict) {
        throw SyntaxError{first,
                          "'" + std::string(w) + "' is a reserved word and cannot be " + role};
      }
      return false;
    }
    attr = std::string(w);
    first = e;
    return true;
  }
};

// INT, FLOAT or a duration literal `number unit`.
struct NumberP : x3::parser<NumberP>, Described {
  using attribute_type = ast::Expr;
  std::string description() const { return "a number"; }

  template <typename Ctx, typename RCtx, typename A>
  bool parse(It& first, It const& last, Ctx const& ctx, RCtx&, A& attr) const {
    x3::skip_over(first, last, ctx);
    It p = first;
    if (p == last) return false;
    if (*p == '.' && p + 1 != last && is_digit(p[1])) {
      throw SyntaxError{p, "a number must start with a digit: write 0.5, not .5"};
    }
    if (!is_digit(*p)) return false;
    while (p != last && is_digit(*p)) ++p;
    bool is_float = false;
    if (p != last && *p == '.') {
      if (p + 1 == last || !is_digit(p[1])) {
        throw SyntaxError{p, "expected digits after the decimal point"};
      }
      is_float = true;
      ++p;
      while (p != last && is_digit(*p)) ++p;
    }
    if (p != last && (*p == 'e' || *p == 'E')) {
      It q = p + 1;
      if (q != last && (*q == '+' || *q == '-')) ++q;
      if (q != last && is_digit(*q)) {
        is_float = true;
        p = q;
        while (p != last && is_digit(*p)) ++p;
      }
    }
    It num_end = p;
    ast::Expr e;
    e.pos = state_of(ctx).pos(first);
    if (is_float) {
      double v = 0;
      auto r = std::from_chars(first, num_end, v);
      if (r.ec != std::errc() || !std::isfinite(v)) {
        throw SyntaxError{first, "floating-point literal out of range"};
      }
      e.kind = ast::ExprKind::FloatLit;
      e.float_value = v;
      e.is_float = true;
    } else {
      int64_t v = 0;
      auto r = std::from_chars(first, num_end, v);
      if (r.ec != std::errc()) {
        throw SyntaxError{first, "integer literal out of range (the largest is " +
                                     std::to_string(INT64_MAX) + ")"};
      }
      e.kind = ast::ExprKind::IntLit;
      e.int_value = v;
    }
    // A time unit, with or without a space. A name glued to the number must be a unit; after
    // a space, only a name that starts like a unit is taken for a misspelt one.
    It q = skip_ws(num_end, last);
    if (q != last && is_id_start(*q)) {
      It w_end = id_end(q, last);
      std::string_view w(q, w_end - q);
      if (auto unit = find_unit(w)) {
        e.kind = ast::ExprKind::DurationLit;
        e.unit = *unit;
        p = w_end;
      } else if (q == num_end || (!is_reserved(w) && looks_like_unit(w))) {
        throw SyntaxError{
            q, "unknown time unit '" + clip(w) + "' (use US, MS, SEC, S, MIN, HOUR, H or DAY)"};
      }
    }
    attr = std::move(e);
    first = p;
    return true;
  }
};

// 'text' with '' for a quote; no line breaks inside.
struct StringP : x3::parser<StringP>, Described {
  using attribute_type = ast::Expr;
  std::string description() const { return "a string literal"; }

  template <typename Ctx, typename RCtx, typename A>
  bool parse(It& first, It const& last, Ctx const& ctx, RCtx&, A& attr) const {
    x3::skip_over(first, last, ctx);
    if (first == last) return false;
    if (*first == '"') {
      throw SyntaxError{first, "string literals use single quotes: 'text', not \"text\""};
    }
    if (*first != '\'') return false;
    It p = first + 1;
    std::string s;
    for (;;) {
      if (p == last || *p == '\n') throw SyntaxError{first, "unterminated string literal"};
      if (*p == '\'') {
        if (p + 1 != last && p[1] == '\'') {
          s += '\'';
          p += 2;
          continue;
        }
        ++p;
        break;
      }
      s += *p++;
    }
    ast::Expr e;
    e.kind = ast::ExprKind::StringLit;
    e.pos = state_of(ctx).pos(first);
    e.text = std::move(s);
    attr = std::move(e);
    first = p;
    return true;
  }
};

// `a`, `$.a`, `$1.a`, `$2.a`. A bare reserved word is a mismatch (a keyword may follow).
struct RefP : x3::parser<RefP>, Described {
  using attribute_type = ast::Expr;
  std::string description() const { return "an attribute reference"; }

  template <typename Ctx, typename RCtx, typename A>
  bool parse(It& first, It const& last, Ctx const& ctx, RCtx&, A& attr) const {
    x3::skip_over(first, last, ctx);
    It p = first;
    if (p == last) return false;
    ast::Expr e;
    e.kind = ast::ExprKind::Ref;
    if (*p == '$') {
      ++p;
      e.scope = ast::RefScope::Last;
      if (p != last && (*p == '1' || *p == '2')) {
        e.scope = *p == '1' ? ast::RefScope::First : ast::RefScope::Second;
        ++p;
      }
      if (p != last && is_digit(*p)) {
        It d = p;
        while (d != last && is_digit(*d)) ++d;
        throw SyntaxError{first, "invalid reference '" + clip(std::string_view(first, d - first)) +
                                     "': only $, $1 and $2 exist"};
      }
      std::string written(first, p);
      if (p == last || *p != '.') fail_expected(p, "'.' after '" + written + "'");
      ++p;
      if (p == last || !is_id_start(*p))
        fail_expected(p, "an attribute name after '" + written + ".'");
      It w = id_end(p, last);
      std::string_view name(p, w - p);
      if (is_reserved(name)) {
        throw SyntaxError{
            p, "'" + std::string(name) + "' is a reserved word and cannot be an attribute name"};
      }
      e.text = std::string(name);
      p = w;
    } else {
      if (!is_id_start(*p)) return false;
      It w = id_end(p, last);
      std::string_view name(p, w - p);
      if (is_reserved(name)) return false;
      e.text = std::string(name);
      p = w;
    }
    e.pos = state_of(ctx).pos(first);
    attr = std::move(e);
    first = p;
    return true;
  }
};

// `NAME` directly followed by '(' (which it leaves for the argument list): a function call.
struct CallHeadP : x3::parser<CallHeadP>, Described {
  using attribute_type = ast::Expr;
  std::string description() const { return "a function call"; }

  template <typename Ctx, typename RCtx, typename A>
  bool parse(It& first, It const& last, Ctx const& ctx, RCtx&, A& attr) const {
    x3::skip_over(first, last, ctx);
    if (first == last || !is_id_start(*first)) return false;
    It w = id_end(first, last);
    std::string_view name(first, w - first);
    if (is_reserved(name)) return false;
    It q = skip_ws(w, last);
    if (q == last || *q != '(') return false;
    ast::Expr e;
    e.kind = ast::ExprKind::Call;
    e.pos = state_of(ctx).pos(first);
    e.text = std::string(name);
    attr = std::move(e);
    first = w;
    return true;
  }
};

// ---------------------------------------------------------------------------------------------
// Directives.

// act(p, f): parse p into a fresh attribute, then f(rule value, attribute, At).
template <typename Subject, typename F>
struct ActD : x3::unary_parser<Subject, ActD<Subject, F>> {
  using base_type = x3::unary_parser<Subject, ActD<Subject, F>>;
  using attribute_type = x3::unused_type;
  static bool const has_action = true;
  static bool const handles_container = false;
  F f;

  ActD(Subject const& s, F fn) : base_type(s), f(fn) {}

  template <typename Ctx, typename RCtx, typename A>
  bool parse(It& first, It const& last, Ctx const& ctx, RCtx& rctx, A&) const {
    It save = first;
    It start = skip_ws(first, last);
    typename x3::traits::attribute_of<Subject, Ctx>::type a{};
    if (!this->subject.parse(first, last, ctx, rctx, a)) {
      first = save;
      return false;
    }
    f(rctx, a, At{start, state_of(ctx).pos(start)});
    return true;
  }
};

template <typename P, typename F>
ActD<typename x3::extension::as_parser<P>::value_type, F> act(P const& p, F f) {
  return {x3::as_parser(p), f};
}

// must(what)[p]: an expectation point; on failure "expected <what>".
template <typename Subject>
struct MustD : x3::unary_parser<Subject, MustD<Subject>> {
  using base_type = x3::unary_parser<Subject, MustD<Subject>>;
  static bool const is_pass_through_unary = true;
  const char* what;

  MustD(Subject const& s, const char* w) : base_type(s), what(w) {}

  template <typename Ctx, typename RCtx, typename A>
  bool parse(It& first, It const& last, Ctx const& ctx, RCtx& rctx, A& attr) const {
    if (this->subject.parse(first, last, ctx, rctx, attr)) return true;
    fail_expected(first, what);
  }
};

struct MustGen {
  const char* what;
  template <typename S>
  MustD<typename x3::extension::as_parser<S>::value_type> operator[](S const& s) const {
    return {x3::as_parser(s), what};
  }
};
MustGen must(const char* what) {
  return {what};
}

// nest[p]: one more level of parser recursion, capped.
template <typename Subject>
struct NestD : x3::unary_parser<Subject, NestD<Subject>> {
  using base_type = x3::unary_parser<Subject, NestD<Subject>>;
  static bool const is_pass_through_unary = true;

  explicit NestD(Subject const& s) : base_type(s) {}

  template <typename Ctx, typename RCtx, typename A>
  bool parse(It& first, It const& last, Ctx const& ctx, RCtx& rctx, A& attr) const {
    State& st = state_of(ctx);
    if (st.nesting >= kMaxNesting) {
      throw SyntaxError{skip_ws(first, last),
                        "nesting too deep (more than " + std::to_string(kMaxNesting) + " levels)"};
    }
    struct Guard {
      int& n;
      ~Guard() { --n; }
    } guard{++st.nesting};
    return this->subject.parse(first, last, ctx, rctx, attr);
  }
};

struct NestGen {
  template <typename S>
  NestD<typename x3::extension::as_parser<S>::value_type> operator[](S const& s) const {
    return NestD<typename x3::extension::as_parser<S>::value_type>{x3::as_parser(s)};
  }
};
const NestGen nest{};

// block(spec)[p]: [KEYWORD] open p close, with errors that name the opener and where it was.
struct BlockSpec {
  const char* kw;  // keyword before the opener, or nullptr
  char open;
  char close;
  const char* label;       // the opener as messages say it: "NEXT{", "'('"
  const char* inner;       // what may follow the opener: "a predicate"
  const char* close_what;  // what may close it: "'}'", "',' or ')'"
};

template <typename Subject>
struct BlockD : x3::unary_parser<Subject, BlockD<Subject>> {
  using base_type = x3::unary_parser<Subject, BlockD<Subject>>;
  static bool const is_pass_through_unary = true;
  BlockSpec spec;

  BlockD(Subject const& s, BlockSpec sp) : base_type(s), spec(sp) {}

  template <typename Ctx, typename RCtx, typename A>
  bool parse(It& first, It const& last, Ctx const& ctx, RCtx& rctx, A& attr) const {
    State& st = state_of(ctx);
    It start = skip_ws(first, last);
    It p = start;
    if (spec.kw) {
      It after;
      if (!match_kw(p, last, spec.kw, &after)) return false;
      p = skip_ws(after, last);
      if (p == last || *p != spec.open) {
        fail_expected(p, std::string("'") + spec.open + "' after " + spec.kw);
      }
    } else if (p == last || *p != spec.open) {
      return false;
    }
    ++p;
    It inner_start = skip_ws(p, last);
    if (!this->subject.parse(p, last, ctx, rctx, attr)) {
      fail_expected(inner_start, std::string(spec.inner) + " after " + spec.label);
    }
    p = skip_ws(p, last);
    if (p == last || *p != spec.close) {
      if (p == inner_start) {
        fail_expected(p, std::string(spec.inner) + " or '" + spec.close + "' after " + spec.label);
      }
      fail_expected(p, std::string(spec.close_what) + " to close " + spec.label + " started at " +
                           st.where(start));
    }
    first = p + 1;
    return true;
  }
};

struct BlockGen {
  BlockSpec spec;
  template <typename S>
  BlockD<typename x3::extension::as_parser<S>::value_type> operator[](S const& s) const {
    return {x3::as_parser(s), spec};
  }
};
BlockGen block(BlockSpec spec) {
  return {spec};
}

// Past a string, a comment (to its newline) or else one character at p (p != end).
It skip_lexeme(It p, It end) {
  if (*p == '\'') {
    ++p;
    while (p != end && *p != '\'' && *p != '\n') ++p;
    if (p != end && *p == '\'') ++p;
  } else if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
    while (p != end && *p != '\n') ++p;
  } else {
    ++p;
  }
  return p;
}

// The ')' matching the '(' at p, skipping strings and comments; nullptr if there is none.
It matching_paren(It p, It end) {
  int open = 0;
  while (p != end) {
    if (*p == '(') {
      ++open;
    } else if (*p == ')') {
      if (--open == 0) return p;
    } else if (*p == ';') {
      return nullptr;
    }
    const It next = skip_lexeme(p, end);
    if (*p == '\'' && (next - p < 2 || next[-1] != '\'')) return nullptr;  // unterminated string
    p = next;
  }
  return nullptr;
}

// backtrack(a, b): a, else b from the same place even if a failed by an exception; if both
// fail, the error that got further wins. Both produce a TExpr.
template <typename Left, typename Right>
struct BacktrackP : x3::parser<BacktrackP<Left, Right>> {
  using attribute_type = TExpr;
  static bool const has_action = Left::has_action || Right::has_action;
  Left left;
  Right right;

  BacktrackP(Left const& l, Right const& r) : left(l), right(r) {}

  template <typename Ctx, typename RCtx, typename A>
  bool parse(It& first, It const& last, Ctx const& ctx, RCtx& rctx, A& out) const {
    TExpr attr;
    if (!parse_either(first, last, ctx, rctx, attr)) return false;
    out = std::move(attr);
    return true;
  }

  template <typename Ctx, typename RCtx>
  bool parse_either(It& first, It const& last, Ctx const& ctx, RCtx& rctx, TExpr& attr) const {
    // Fast path, exact for valid input: after the ')' that matches a leading '(', a comparison
    // goes on with an arithmetic or comparison operator, a parenthesised predicate never does.
    It start = skip_ws(first, last);
    if (start != last && *start == '(') {
      if (It close = matching_paren(start, last)) {
        It next = skip_ws(close + 1, last);
        bool op =
            next != last && std::string_view("=!<>+-*/%^").find(*next) != std::string_view::npos;
        return op ? left.parse(first, last, ctx, rctx, attr)
                  : right.parse(first, last, ctx, rctx, attr);
      }
    }
    It save = first;
    std::optional<SyntaxError> e1;
    try {
      if (left.parse(first, last, ctx, rctx, attr)) return true;
    } catch (x3::expectation_failure<It> const& e) {
      e1 = to_error(e, state_of(ctx).begin, last);
    } catch (SyntaxError const& e) {
      e1 = e;
    }
    first = save;
    attr = TExpr{};
    std::optional<SyntaxError> e2;
    try {
      if (right.parse(first, last, ctx, rctx, attr)) return true;
    } catch (x3::expectation_failure<It> const& e) {
      e2 = to_error(e, state_of(ctx).begin, last);
    } catch (SyntaxError const& e) {
      e2 = e;
    }
    first = save;
    if (e1 && (!e2 || e1->where > e2->where)) throw *e1;
    if (e2) throw *e2;
    return false;
  }
};

template <typename L, typename R>
BacktrackP<L, R> backtrack(L const& l, R const& r) {
  return {l, r};
}

// ---------------------------------------------------------------------------------------------
// Tokens.

const Kw kw_select{"SELECT"}, kw_from{"FROM"}, kw_union{"UNION"}, kw_publish{"PUBLISH"},
    kw_as{"AS"}, kw_and{"AND"}, kw_or{"OR"}, kw_not{"NOT"}, kw_dur{"DUR"}, kw_create{"CREATE"},
    kw_stream{"STREAM"};

const NameP attr_name{"an attribute name", true};
const NameP new_stream_name{"a stream name", true};
const NameP stream_name{"a stream name", false};
const NameP type_name{"a type (INT, FLOAT or STRING)", false};
const NumberP number{};
const StringP string_lit{};
const RefP ref{};
const CallHeadP call_head{};

struct CmpOps : x3::symbols<ast::CmpOp> {
  CmpOps() {
    add("=", ast::CmpOp::Eq)("!=", ast::CmpOp::Ne)("<>", ast::CmpOp::Ne)("<", ast::CmpOp::Lt)(
        "<=", ast::CmpOp::Le)(">", ast::CmpOp::Gt)(">=", ast::CmpOp::Ge);
  }
};
const CmpOps cmp_op;

constexpr BlockSpec kNextBlock{"NEXT", '{', '}', "NEXT{", "a predicate", "'}'"};
constexpr BlockSpec kFoldBlock{"FOLD", '{', '}', "FOLD{", "a predicate or ','", "',' or '}'"};
constexpr BlockSpec kFilterBlock{"FILTER", '{', '}', "FILTER{", "a predicate", "'}'"};
constexpr BlockSpec kParenTerm{nullptr, '(', ')', "'('", "a term", "')'"};
constexpr BlockSpec kParenPred{nullptr, '(', ')', "'('", "a predicate", "')'"};
constexpr BlockSpec kCallArgs{nullptr, '(', ')', "'('", "a term", "',' or ')'"};
constexpr BlockSpec kSubquery{nullptr, '(', ')', "'('", "SELECT or a stream expression", "')'"};

// ---------------------------------------------------------------------------------------------
// Actions: f(rule value, subject attribute, At).

const auto set_val = [](auto& val, auto& a, At const&) { val = std::move(a); };

const auto set_leaf = [](TExpr& val, ast::Expr& a, At const&) { val = TExpr{std::move(a), 1}; };

const auto push_arg = [](TExpr& val, TExpr& a, At const& at) {
  val.depth = std::max(val.depth, a.depth + 1);
  check_expr_depth(val.depth, at);
  val.e.args.push_back(std::move(a.e));
};

// Makes the value so far the first operand of a new `kind` node.
void wrap(TExpr& val, ast::ExprKind kind, At const& at, ast::BinOp op = ast::BinOp::Add,
          ast::CmpOp cmp = ast::CmpOp::Eq) {
  TExpr n;
  n.e.kind = kind;
  n.e.op = op;
  n.e.cmp = cmp;
  n.e.pos = val.e.pos;
  n.depth = val.depth + 1;
  check_expr_depth(n.depth, at);
  n.e.args.push_back(std::move(val.e));
  val = std::move(n);
}

auto wrap_bin(ast::BinOp op) {
  return [op](TExpr& val, auto&, At const& at) { wrap(val, ast::ExprKind::Binary, at, op); };
}

const auto wrap_cmp = [](TExpr& val, ast::CmpOp& cmp, At const& at) {
  wrap(val, ast::ExprKind::Compare, at, ast::BinOp::Add, cmp);
};

auto unary_node(ast::ExprKind kind) {
  return [kind](TExpr& val, TExpr& a, At const& at) {
    TExpr n;
    n.e.kind = kind;
    n.e.pos = at.pos;
    n.depth = a.depth + 1;
    check_expr_depth(n.depth, at);
    n.e.args.push_back(std::move(a.e));
    val = std::move(n);
  };
}

const auto mk_dur = [](TExpr& val, auto&, At const& at) {
  val = TExpr{};
  val.e.kind = ast::ExprKind::Dur;
  val.e.pos = at.pos;
};

// `first {OP next}` as one flat And/Or node (or just `first`).
auto chain(ast::ExprKind kind) {
  return [kind](TExpr& val, auto& a, At const& at) {
    TExpr& head = boost::fusion::at_c<0>(a);
    std::vector<TExpr>& rest = boost::fusion::at_c<1>(a);
    if (rest.empty()) {
      val = std::move(head);
      return;
    }
    TExpr n;
    n.e.kind = kind;
    n.e.pos = head.e.pos;
    n.depth = head.depth + 1;
    n.e.args.push_back(std::move(head.e));
    for (auto& r : rest) {
      n.depth = std::max(n.depth, r.depth + 1);
      n.e.args.push_back(std::move(r.e));
    }
    check_expr_depth(n.depth, at);
    val = std::move(n);
  };
}

const auto push_back = [](auto& val, auto& a, At const&) { val.push_back(std::move(a)); };

const auto set_args = [](TExpr& val, std::vector<TExpr>& a, At const& at) {
  for (auto& arg : a) push_arg(val, arg, at);
};

// Streams.
const auto mk_name = [](TStream& val, std::string& a, At const& at) {
  val = TStream{};
  val.s.kind = ast::StreamKind::Name;
  val.s.pos = at.pos;
  val.s.name = std::move(a);
};

const auto start_filter = [](TStream& val, TExpr& a, At const& at) {
  val = TStream{};
  val.s.kind = ast::StreamKind::Filter;
  val.s.pos = at.pos;
  val.s.pred = std::move(a.e);
};

const auto start_next = [](TStream& val, auto& a, At const& at) {
  val = TStream{};
  val.s.kind = ast::StreamKind::Next;
  val.s.pos = at.pos;
  if (a) val.s.pred = std::move(a->e);
};

const auto start_fold = [](TStream& val, FoldArgs& a, At const& at) {
  val = TStream{};
  val.s.kind = ast::StreamKind::Fold;
  val.s.pos = at.pos;
  val.s.pred = std::move(a.pred);
  val.s.pred2 = std::move(a.pred2);
  val.s.aggregates = std::move(a.aggregates);
};

const auto push_input = [](TStream& val, TStream& a, At const& at) {
  val.depth = std::max(val.depth, a.depth + 1);
  check_stream_depth(val.depth, at);
  val.s.inputs.push_back(std::move(a.s));
};

// `val NEXT{..} right`: val becomes the left input of the NEXT/FOLD node `a`.
const auto attach_left = [](TStream& val, TStream& a, At const& at) {
  a.depth = std::max(a.depth, val.depth + 1);
  check_stream_depth(a.depth, at);
  a.s.inputs.insert(a.s.inputs.begin(), std::move(val.s));
  val = std::move(a);
};

const auto mk_union = [](TStream& val, auto& a, At const& at) {
  TStream& head = boost::fusion::at_c<0>(a);
  std::vector<TStream>& rest = boost::fusion::at_c<1>(a);
  if (rest.empty()) {
    val = std::move(head);
    return;
  }
  TStream n;
  n.s.kind = ast::StreamKind::Union;
  n.s.pos = head.s.pos;
  n.depth = head.depth + 1;
  n.s.inputs.push_back(std::move(head.s));
  for (auto& r : rest) {
    n.depth = std::max(n.depth, r.depth + 1);
    n.s.inputs.push_back(std::move(r.s));
  }
  check_stream_depth(n.depth, at);
  val = std::move(n);
};

// `(query)`: a query that only groups a stream expression is that stream expression.
const auto mk_subquery = [](TStream& val, TQuery& a, At const& at) {
  val = TStream{};
  if (!a.q.has_select && !a.q.publish) {
    val.s = std::move(a.q.from);
    val.depth = a.depth;
    return;
  }
  val.s.kind = ast::StreamKind::Subquery;
  val.s.pos = at.pos;
  val.s.subquery = std::make_shared<ast::Query>(std::move(a.q));
  val.depth = a.depth + 1;
  check_stream_depth(val.depth, at);
};

const auto fold_pred = [](FoldArgs& val, auto& a, At const&) {
  if (a) val.pred = std::move(a->e);
};
const auto fold_pred2 = [](FoldArgs& val, auto& a, At const&) {
  if (a) val.pred2 = std::move(a->e);
};
const auto fold_agg = [](FoldArgs& val, ast::Aggregate& a, At const&) {
  val.aggregates.push_back(std::move(a));
};

const auto agg_value = [](ast::Aggregate& val, TExpr& a, At const& at) {
  val = ast::Aggregate{};
  val.pos = at.pos;
  val.value = std::move(a.e);
};
const auto agg_name = [](ast::Aggregate& val, std::string& a, At const&) {
  val.name = std::move(a);
};

// Queries.
const auto q_start = [](TQuery& val, auto&, At const& at) {
  val = TQuery{};
  val.q.pos = at.pos;
};
const auto q_select = [](TQuery& val, auto&, At const&) { val.q.has_select = true; };
const auto q_item = [](TQuery& val, ast::SelectItem& a, At const&) {
  val.q.items.push_back(std::move(a));
};
const auto q_from = [](TQuery& val, TStream& a, At const&) {
  val.q.from = std::move(a.s);
  val.depth = a.depth;
};
const auto q_publish = [](TQuery& val, std::string& a, At const& at) {
  val.q.publish = std::move(a);
  val.q.publish_pos = at.pos;
};

const auto item_star = [](ast::SelectItem& val, auto&, At const& at) {
  val = ast::SelectItem{};
  val.pos = at.pos;
  val.star = true;
};
const auto item_value = [](ast::SelectItem& val, TExpr& a, At const& at) {
  val = ast::SelectItem{};
  val.pos = at.pos;
  val.value = std::move(a.e);
};
const auto item_alias = [](ast::SelectItem& val, std::string& a, At const&) {
  val.alias = std::move(a);
};
const auto item_check = [](ast::SelectItem& val, auto&, At const& at) {
  if (!val.alias && val.value.kind != ast::ExprKind::Ref) {
    throw SyntaxError{at.ptr, "expected AS name: only a bare attribute reference may omit AS"};
  }
};

// CREATE STREAM.
const auto c_start = [](ast::CreateStream& val, auto&, At const& at) {
  val = ast::CreateStream{};
  val.pos = at.pos;
};
const auto c_name = [](ast::CreateStream& val, std::string& a, At const&) {
  val.name = std::move(a);
};
const auto c_attr = [](ast::CreateStream& val, ast::AttrDecl& a, At const&) {
  val.attrs.push_back(std::move(a));
};
const auto ad_name = [](ast::AttrDecl& val, std::string& a, At const& at) {
  val = ast::AttrDecl{};
  val.pos = at.pos;
  val.name = std::move(a);
};
const auto ad_type = [](ast::AttrDecl& val, std::string& a, At const& at) {
  val.type = std::move(a);
  val.type_pos = at.pos;
};

// ---------------------------------------------------------------------------------------------
// The grammar (CEL.md §3).

x3::rule<class term_r, TExpr> const term = "a term";
x3::rule<class product_r, TExpr> const product = "a term";
x3::rule<class power_r, TExpr> const power = "a term";
x3::rule<class unary_t_r, TExpr> const unary_t = "a term";
x3::rule<class call_r, TExpr> const call = "a function call";
x3::rule<class call_args_r, std::vector<TExpr>> const call_args = "function arguments";
x3::rule<class pred_r, TExpr> const pred = "a predicate";
x3::rule<class conj_r, TExpr> const conj = "a predicate";
x3::rule<class neg_r, TExpr> const neg = "a predicate";
x3::rule<class comparison_r, TExpr> const comparison = "a comparison";
x3::rule<class paren_pred_r, TExpr> const paren_pred = "'(' predicate ')'";
x3::rule<class stream_expr_r, TStream> const stream_expr = "a stream expression";
x3::rule<class seq_expr_r, TStream> const seq_expr = "a stream expression";
x3::rule<class unary_s_r, TStream> const unary_s = "a stream name, '(' or FILTER";
x3::rule<class next_tail_r, TStream> const next_tail = "NEXT{...}";
x3::rule<class fold_tail_r, TStream> const fold_tail = "FOLD{...}";
x3::rule<class fold_args_r, FoldArgs> const fold_args = "FOLD arguments";
x3::rule<class aggregate_r, ast::Aggregate> const aggregate = "an aggregate 'term AS name'";
x3::rule<class item_r, ast::SelectItem> const item = "a select item";
x3::rule<class query_r, TQuery> const query = "SELECT or a stream expression";
x3::rule<class create_r, ast::CreateStream> const create = "CREATE STREAM";
x3::rule<class attr_decl_r, ast::AttrDecl> const attr_decl = "an attribute declaration";

template <typename Next>
auto binop(char c, ast::BinOp op, Next const& next, const char* what) {
  return act(x3::lit(c), wrap_bin(op)) >> act(must(what)[next], push_arg);
}

// term ::= product { ("+" | "-") product }
auto const term_def = act(product, set_val) >>
                      *(binop('+', ast::BinOp::Add, product, "a term after '+'") |
                        binop('-', ast::BinOp::Sub, product, "a term after '-'"));

// product ::= power { ("*" | "/" | "%") power }
auto const product_def = act(power, set_val) >>
                         *(binop('*', ast::BinOp::Mul, power, "a term after '*'") |
                           binop('/', ast::BinOp::Div, power, "a term after '/'") |
                           binop('%', ast::BinOp::Mod, power, "a term after '%'"));

// power ::= unary_t [ "^" power ]   (right-associative)
auto const power_def = act(unary_t, set_val) >>
                       -binop('^', ast::BinOp::Pow, nest[power], "a term after '^'");

// unary_t ::= "-" unary_t | literal | ref | DUR | func "(" [term {"," term}] ")" | "(" term ")"
auto const unary_t_def =
    act(x3::lit('-') >> must("a term after '-'")[nest[unary_t]], unary_node(ast::ExprKind::Neg)) |
    act(number, set_leaf) | act(string_lit, set_leaf) | act(kw_dur, mk_dur) | act(call, set_val) |
    act(ref, set_leaf) | act(block(kParenTerm)[nest[term]], set_val);

auto const call_def = act(call_head, set_leaf) >> act(block(kCallArgs)[call_args], set_args);

auto const call_args_def =
    -(act(term, push_back) >> *(x3::lit(',') >> act(must("a term after ','")[term], push_back)));

// pred ::= conj { OR conj }
auto const pred_def =
    act(conj >> *(kw_or >> must("a predicate after OR")[conj]), chain(ast::ExprKind::Or));

// conj ::= neg { AND neg }
auto const conj_def =
    act(neg >> *(kw_and >> must("a predicate after AND")[neg]), chain(ast::ExprKind::And));

// neg ::= [NOT] (term cmp term | "(" pred ")")
auto const neg_body = backtrack(comparison, paren_pred);
auto const neg_def =
    act(kw_not >> must("a comparison or '(' after NOT")[neg_body], unary_node(ast::ExprKind::Not)) |
    act(neg_body, set_val);

auto const comparison_def = act(term, set_val) >>
                            act(must("a comparison operator (=, !=, <>, <, <=, >, >=)")[cmp_op],
                                wrap_cmp) >>
                            act(must("a term after the comparison operator")[term], push_arg);

auto const paren_pred_def = act(block(kParenPred)[nest[pred]], set_val);

// stream_expr ::= seq_expr { UNION seq_expr }
auto const stream_expr_def =
    act(seq_expr >> *(kw_union >> must("a stream name, '(' or FILTER after UNION")[seq_expr]),
        mk_union);

// seq_expr ::= unary { NEXT "{" [pred] "}" unary | FOLD "{" ... "}" unary }   (left-assoc)
auto const seq_expr_def = act(unary_s, set_val) >>
                          *(act(next_tail, attach_left) | act(fold_tail, attach_left));

auto const next_tail_def = act(block(kNextBlock)[-pred], start_next) >>
                           act(must("a stream name, '(' or FILTER after NEXT{...}")[unary_s],
                               push_input);

auto const fold_tail_def = act(block(kFoldBlock)[fold_args], start_fold) >>
                           act(must("a stream name, '(' or FILTER after FOLD{...}")[unary_s],
                               push_input);

// [ [pred] "," [pred] [ "," [agg {"," agg} [","]] ] ]
auto const fold_args_def =
    &x3::lit('}') |
    (act(-pred, fold_pred) >>
     must("',' after the first FOLD predicate (FOLD{pred1, pred2} or FOLD{pred1, pred2, "
          "aggregates})")[x3::lit(',')] >>
     act(-pred, fold_pred2) >>
     -(x3::lit(',') >> -(act(aggregate, fold_agg) % x3::lit(',')) >> -x3::lit(',')));

// agg ::= term AS name
auto const aggregate_def = act(term, agg_value) >>
                           must("AS name: a FOLD aggregate is written 'term AS name'")[kw_as] >>
                           act(must("a name after AS")[attr_name], agg_name);

// unary ::= FILTER "{" pred "}" unary | name | "(" query ")"
auto const unary_s_def =
    (act(block(kFilterBlock)[pred], start_filter) >>
     act(must("a stream name, '(' or FILTER after FILTER{...}")[nest[unary_s]], push_input)) |
    act(stream_name, mk_name) | act(block(kSubquery)[nest[query]], mk_subquery);

// item ::= "*" | term [AS name]
auto const item_def =
    act(x3::lit('*'), item_star) |
    (act(term, item_value) >> -(kw_as >> act(must("a name after AS")[attr_name], item_alias)) >>
     act(x3::eps, item_check));

// query ::= [SELECT item {"," item} FROM] stream_expr [PUBLISH name]
auto const query_def =
    act(x3::eps, q_start) >>
    ((act(kw_select, q_select) >>
      act(must("a select item ('*' or a term) after SELECT")[item], q_item) >>
      *(x3::lit(',') >> act(must("a select item ('*' or a term) after ','")[item], q_item)) >>
      must("',' or FROM after the select item")[kw_from] >>
      act(must("a stream name, '(' or FILTER after FROM")[stream_expr], q_from)) |
     act(stream_expr, q_from)) >>
    -(kw_publish >> act(must("a stream name after PUBLISH")[new_stream_name], q_publish));

// CREATE STREAM name "(" attr TYPE {"," attr TYPE} ")"
auto const create_def = (act(kw_create, c_start) > kw_stream) >>
                        act(must("a stream name after CREATE STREAM")[new_stream_name], c_name) >>
                        (x3::eps > x3::lit('(')) >>
                        act(must("an attribute declaration 'name TYPE'")[attr_decl], c_attr) >>
                        *(x3::lit(',') >>
                          act(must("an attribute declaration 'name TYPE' after ','")[attr_decl],
                              c_attr)) >>
                        must("',' or ')' after the attribute declaration")[x3::lit(')')];

auto const attr_decl_def =
    act(attr_name, ad_name) >>
    act(must("a type (INT, FLOAT or STRING) after the attribute name")[type_name], ad_type);

BOOST_SPIRIT_DEFINE(term, product, power, unary_t, call, call_args, pred, conj, neg, comparison,
                    paren_pred, stream_expr, seq_expr, unary_s, next_tail, fold_tail, fold_args,
                    aggregate, item, query, create, attr_decl)

// ---------------------------------------------------------------------------------------------
// Statements.

ast::Statement parse_statement(State& st, It& p) {
  It after;
  if (match_kw(p, st.end, "CREATE", &after)) {
    ast::CreateStream c;
    if (!x3::phrase_parse(p, st.end, x3::with<state_tag>(st)[create], Skipper{}, c)) {
      throw SyntaxError{p, "expected CREATE STREAM"};
    }
    return c;
  }
  TQuery q;
  if (!x3::phrase_parse(p, st.end, x3::with<state_tag>(st)[query], Skipper{}, q)) {
    throw SyntaxError{p, "unexpected " + describe(p, st.end) +
                             ": expected a statement (CREATE STREAM, SELECT or a stream "
                             "expression)"};
  }
  return std::move(q.q);
}

// After an error: continue after the next `;` outside strings and comments.
It resync(It p, It end) {
  while (p != end) {
    if (*p == ';') return p + 1;
    p = skip_lexeme(p, end);
  }
  return end;
}

std::vector<uint32_t> line_starts_of(std::string_view text) {
  std::vector<uint32_t> starts{0};
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n') starts.push_back(static_cast<uint32_t>(i + 1));
  }
  return starts;
}

// Parses the statements from p to st.end into `out`, and each error (then resumes after the next
// `;`) into `errors`.
void parse_statements(State& st, It p, std::vector<ast::Statement>& out, Diagnostics& errors) {
  // Room for a statement per ';' at once, so that a large script's statements are not copied
  // at every doubling nor left with up to half their array unused (at a million queries, a
  // few hundred megabytes). No more than twice the text: semicolons in strings and comments
  // could otherwise ask for far more than the statements need.
  const auto size = static_cast<size_t>(st.end - p);
  const auto semicolons = static_cast<size_t>(std::count(p, st.end, ';'));
  out.reserve(std::min(semicolons + 1, 2 * size / sizeof(ast::Statement)));
  for (;;) {
    p = skip_ws(p, st.end);
    if (p == st.end) break;
    if (*p == ';') {
      ++p;
      continue;
    }
    std::optional<SyntaxError> err;
    try {
      ast::Statement stmt = parse_statement(st, p);
      p = skip_ws(p, st.end);
      if (p != st.end && *p != ';') {
        throw SyntaxError{p, "unexpected " + describe(p, st.end) +
                                 " after the end of the statement (missing ';'?)"};
      }
      out.push_back(std::move(stmt));
      continue;
    } catch (x3::expectation_failure<It> const& e) {
      err = to_error(e, st.begin, st.end);
    } catch (SyntaxError const& e) {
      err = e;
    }
    err->where = error_point(err->where, st.begin, st.end);
    errors.push_back(make_diagnostic(st.pos(err->where), err->message));
    st.nesting = 0;
    p = resync(err->where, st.end);
  }
}

// Where to cut [p, end) into `n` chunks of about equal size: just after a `;` outside strings
// and comments (as skip_ws and resync read them). In a script that parses, every such `;` ends
// a statement, so the chunks parse to the statements the whole would.
std::vector<It> cut_points(It p, It end, unsigned n) {
  std::vector<It> cuts{p};
  const It start = p;
  const auto size = static_cast<size_t>(end - p);
  for (unsigned k = 1; k < n; ++k) {
    const It target = start + size * k / n;
    while (p != end && (p < target || *p != ';')) p = skip_lexeme(p, end);
    if (p == end) break;
    cuts.push_back(++p);
  }
  cuts.push_back(end);
  return cuts;
}

// Parses the chunks on threads; false if any chunk had an error (or threw).
bool parse_chunks(const std::vector<It>& cuts, It begin, const std::vector<uint32_t>& line_starts,
                  ast::Script& script) {
  const size_t n = cuts.size() - 1;
  std::vector<std::vector<ast::Statement>> parts(n);
  std::vector<char> ok(n, 0);
  auto run = [&](size_t k) {
    try {
      State st(begin, cuts[k + 1], line_starts);
      Diagnostics errors;
      parse_statements(st, cuts[k], parts[k], errors);
      ok[k] = errors.empty();
    } catch (...) {
      ok[k] = 0;
    }
  };
  {
    std::vector<std::jthread> threads;
    for (size_t k = 1; k < n; ++k) threads.emplace_back(run, k);
    run(0);
  }
  if (std::find(ok.begin(), ok.end(), 0) != ok.end()) return false;
  size_t total = 0;
  for (const auto& part : parts) total += part.size();
  script.statements = std::move(parts[0]);
  script.statements.reserve(total);
  for (size_t k = 1; k < n; ++k) {
    std::move(parts[k].begin(), parts[k].end(), std::back_inserter(script.statements));
    parts[k] = {};
  }
  return true;
}

}  // namespace

ParseResult parse_script(std::string_view text, const ParseOptions& options) {
  ParseResult result;
  try {
    if (text.size() >= UINT32_MAX) {
      result.errors.push_back(Diagnostic{1, 1, "script too large (4 GiB or more)"});
      return result;
    }
    const std::vector<uint32_t> line_starts = line_starts_of(text);
    const It begin = text.data();
    const It end = begin + text.size();
    It p = begin;
    if (text.substr(0, 3) == "\xEF\xBB\xBF") p += 3;  // a UTF-8 byte order mark
    ast::Script script;
    // A large script is parsed in chunks on threads. A chunk with an error sends the whole
    // script through the one-thread parse below, which reports the errors as it always does.
    const auto chunks = static_cast<unsigned>(std::min<size_t>(
        options.threads, static_cast<size_t>(end - p) / std::max<size_t>(1, options.min_chunk)));
    if (chunks > 1) {
      const std::vector<It> cuts = cut_points(p, end, chunks);
      if (cuts.size() > 2 && parse_chunks(cuts, begin, line_starts, script)) {
        result.script = std::move(script);
        return result;
      }
      script = {};
    }
    State st(begin, end, line_starts);
    parse_statements(st, p, script.statements, result.errors);
    if (result.errors.empty()) result.script = std::move(script);
  } catch (std::exception const& e) {
    result.script.reset();
    result.errors.push_back(Diagnostic{0, 0, std::string("internal parser error: ") + e.what()});
  } catch (...) {
    result.script.reset();
    result.errors.push_back(Diagnostic{0, 0, "internal parser error"});
  }
  return result;
}

}  // namespace cayuga
