// The stable text dump of the AST: compact S-expressions, one line per statement.
//
// Format (every list is `(head arg ...)`, tokens separated by one space):
//
//   statement  (create Name (attr TYPE) ...)            TYPE as written
//              (query [(select item ...)] (from S) [(publish Name)])
//   item       *  |  expr  |  (as expr name)             bare `a` / `$1.a` without AS is just expr
//   stream S   (name N)
//              (filter S pred)
//              (next L R pred|_)
//              (fold L R pred1|_ pred2|_ (as expr name) ...)
//              (union S S ...)                            a chain, flattened
//              (subquery (query ...))      a parenthesised query with SELECT or PUBLISH;
//                                          `(S NEXT{} T)` is just its stream expression
//   expr       (int 5)  (float 1.5)  (str 'it''s')  (dur 10 min)  (dur 1.5 hour)  (DUR)
//              (ref a)  (ref $ a)  (ref 1 a)  (ref 2 a)
//              (neg x)  (+ a b)  (- a b)  (* a b)  (/ a b)  (% a b)  (^ a b)
//              (call NAME arg ...)
//              (cmp = a b)  with = != < <= > >=   (`<>` dumps as !=)
//              (and p q ...)  (or p q ...)  (not p)
//   empty predicate  _
//
// Floats print in the shortest form that reads back to the same double (std::to_chars);
// strings are re-quoted with '' for a quote; units print as us ms sec min hour day.
// Positions are not part of the dump.
#include "lang/ast.h"

#include <charconv>

namespace cayuga::ast {

namespace {

std::string float_text(double v) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    out += c;
    if (c == '\'') out += '\'';
  }
  out += '\'';
  return out;
}

std::string dump_pred(const Box<Expr>& p) {
  return p ? dump(*p) : "_";
}

}  // namespace

const char* to_string(BinOp op) {
  switch (op) {
    case BinOp::Add:
      return "+";
    case BinOp::Sub:
      return "-";
    case BinOp::Mul:
      return "*";
    case BinOp::Div:
      return "/";
    case BinOp::Mod:
      return "%";
    case BinOp::Pow:
      return "^";
  }
  return "?";
}

const char* to_string(CmpOp op) {
  switch (op) {
    case CmpOp::Eq:
      return "=";
    case CmpOp::Ne:
      return "!=";
    case CmpOp::Lt:
      return "<";
    case CmpOp::Le:
      return "<=";
    case CmpOp::Gt:
      return ">";
    case CmpOp::Ge:
      return ">=";
  }
  return "?";
}

const char* to_string(TimeUnit u) {
  switch (u) {
    case TimeUnit::Us:
      return "us";
    case TimeUnit::Ms:
      return "ms";
    case TimeUnit::Sec:
      return "sec";
    case TimeUnit::Min:
      return "min";
    case TimeUnit::Hour:
      return "hour";
    case TimeUnit::Day:
      return "day";
  }
  return "?";
}

std::string dump(const Expr& e) {
  auto list = [&](std::string head) {
    for (const auto& a : e.args) head += ' ' + dump(a);
    return '(' + head + ')';
  };
  switch (e.kind) {
    case ExprKind::IntLit:
      return "(int " + std::to_string(e.int_value) + ")";
    case ExprKind::FloatLit:
      return "(float " + float_text(e.float_value) + ")";
    case ExprKind::StringLit:
      return "(str " + quoted(e.text) + ")";
    case ExprKind::DurationLit:
      return "(dur " + (e.is_float ? float_text(e.float_value) : std::to_string(e.int_value)) +
             " " + to_string(e.unit) + ")";
    case ExprKind::Ref:
      switch (e.scope) {
        case RefScope::Bare:
          return "(ref " + e.text + ")";
        case RefScope::Last:
          return "(ref $ " + e.text + ")";
        case RefScope::First:
          return "(ref 1 " + e.text + ")";
        case RefScope::Second:
          return "(ref 2 " + e.text + ")";
      }
      return "(ref ? " + e.text + ")";
    case ExprKind::Dur:
      return "(DUR)";
    case ExprKind::Neg:
      return list("neg");
    case ExprKind::Binary:
      return list(to_string(e.op));
    case ExprKind::Call:
      return list("call " + e.text);
    case ExprKind::Compare:
      return list(std::string("cmp ") + to_string(e.cmp));
    case ExprKind::And:
      return list("and");
    case ExprKind::Or:
      return list("or");
    case ExprKind::Not:
      return list("not");
  }
  return "(?)";
}

std::string dump(const StreamExpr& s) {
  auto inputs = [&] {
    std::string out;
    for (const auto& in : s.inputs) out += ' ' + dump(in);
    return out;
  };
  switch (s.kind) {
    case StreamKind::Name:
      return "(name " + s.name + ")";
    case StreamKind::Filter:
      return "(filter" + inputs() + " " + dump_pred(s.pred) + ")";
    case StreamKind::Next:
      return "(next" + inputs() + " " + dump_pred(s.pred) + ")";
    case StreamKind::Fold: {
      std::string out = "(fold" + inputs() + " " + dump_pred(s.pred) + " " + dump_pred(s.pred2);
      for (const auto& a : s.aggregates) out += " (as " + dump(a.value) + " " + a.name + ")";
      return out + ")";
    }
    case StreamKind::Union:
      return "(union" + inputs() + ")";
    case StreamKind::Subquery:
      return "(subquery " + (s.subquery ? dump(*s.subquery) : std::string("_")) + ")";
  }
  return "(?)";
}

namespace {

std::string dump_query_body(const Query& q) {
  std::string out;
  if (q.has_select) {
    out += "(select";
    for (const auto& item : q.items) {
      out += ' ';
      if (item.star) {
        out += '*';
      } else if (item.alias) {
        out += "(as " + dump(item.value) + " " + *item.alias + ")";
      } else {
        out += dump(item.value);
      }
    }
    out += ") ";
  }
  out += "(from " + dump(q.from) + ")";
  if (q.publish) out += " (publish " + *q.publish + ")";
  return out;
}

}  // namespace

std::string dump(const Query& q) {
  return "(query " + dump_query_body(q) + ")";
}

std::string dump(const Statement& s) {
  if (const auto* c = std::get_if<CreateStream>(&s)) {
    std::string out = "(create " + c->name;
    for (const auto& a : c->attrs) out += " (" + a.name + " " + a.type + ")";
    return out + ")";
  }
  return dump(std::get<Query>(s));
}

std::string dump(const Script& s) {
  std::string out;
  for (size_t i = 0; i < s.statements.size(); ++i) {
    if (i) out += '\n';
    out += dump(s.statements[i]);
  }
  return out;
}

}  // namespace cayuga::ast
