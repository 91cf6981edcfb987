// Text forms of the typed algebra (compiler/typed.h), used by tests and `cayuga explain`.
//
// dump(TExpr) alone knows no schemas and prints references by index (`$1[0]`, `$[1]`, `$2[2]`);
// dump(Plan) knows each operator's input schemas and prints them by name (`$1.Name`, `$.Price`,
// `$2.Name`). Implicit promotions are visible as `float(...)`. The format is stable: tests compare
// it literally.
#include "compiler/typed.h"

#include <charconv>
#include <cmath>

namespace cayuga {

const char* to_string(Func f) {
  switch (f) {
    case Func::Contains:
      return "CONTAINS";
    case Func::Similarity:
      return "SIMILARITY";
    case Func::Abs:
      return "ABS";
    case Func::Min:
      return "MIN";
    case Func::Max:
      return "MAX";
    case Func::Length:
      return "LENGTH";
    case Func::Lower:
      return "LOWER";
    case Func::Upper:
      return "UPPER";
  }
  return "?";
}

namespace {

// Attribute names of the rows an expression reads; null: print indices.
struct Names {
  const Schema* first = nullptr;  // First and Last
  const Schema* second = nullptr;
};

std::string float_text(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, ec == std::errc() ? end : buf);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

const char* op_text(TOp op) {
  switch (op) {
    case TOp::Add:
      return "+";
    case TOp::Sub:
      return "-";
    case TOp::Mul:
      return "*";
    case TOp::Div:
      return "/";
    case TOp::Mod:
      return "%";
    case TOp::Pow:
      return "^";
    case TOp::Eq:
      return "=";
    case TOp::Ne:
      return "!=";
    case TOp::Lt:
      return "<";
    case TOp::Le:
      return "<=";
    case TOp::Gt:
      return ">";
    case TOp::Ge:
      return ">=";
    case TOp::And:
      return "AND";
    case TOp::Or:
      return "OR";
    default:
      return "?";
  }
}

std::string ref_text(const TExpr& e, const Names& n) {
  std::string prefix = e.side == Side::First ? "$1" : e.side == Side::Last ? "$" : "$2";
  const Schema* s = e.side == Side::Second ? n.second : n.first;
  if (s && e.index < s->size()) return prefix + "." + s->attrs[e.index].name;
  return prefix + "[" + std::to_string(e.index) + "]";
}

std::string dump_expr(const TExpr& e, const Names& n) {
  switch (e.op) {
    case TOp::Const:
      switch (e.type) {
        case Type::Int:
          return std::to_string(e.value.i);
        case Type::Float:
          return float_text(e.value.f);
        case Type::String:
          return quote(interned(e.value.s));
      }
      return "?";
    case TOp::Ref:
      return ref_text(e, n);
    case TOp::Dur:
      return "DUR";
    case TOp::True:
      return "TRUE";
    case TOp::ToFloat:
      return "float(" + (e.kids.empty() ? "" : dump_expr(e.kids[0], n)) + ")";
    case TOp::Neg:
      return "-" + (e.kids.empty() ? "" : dump_expr(e.kids[0], n));
    case TOp::Not:
      return "NOT " + (e.kids.empty() ? "" : dump_expr(e.kids[0], n));
    case TOp::Call: {
      std::string out = std::string(to_string(e.func)) + "(";
      for (size_t i = 0; i < e.kids.size(); ++i) out += (i ? ", " : "") + dump_expr(e.kids[i], n);
      return out + ")";
    }
    default: {  // binary arithmetic, comparisons, AND/OR
      std::string out = "(";
      for (size_t i = 0; i < e.kids.size(); ++i) {
        if (i) out += std::string(" ") + op_text(e.op) + " ";
        out += dump_expr(e.kids[i], n);
      }
      return out + ")";
    }
  }
}

const char* kind_text(PlanKind k) {
  switch (k) {
    case PlanKind::Source:
      return "Source";
    case PlanKind::Filter:
      return "Filter";
    case PlanKind::Select:
      return "Select";
    case PlanKind::Next:
      return "Next";
    case PlanKind::Fold:
      return "Fold";
    case PlanKind::Union:
      return "Union";
  }
  return "?";
}

void dump_plan(const Plan& p, int depth, std::string& out) {
  const std::string pad(static_cast<size_t>(depth) * 2, ' ');
  const std::string pad2 = pad + "  ";
  out += pad + kind_text(p.kind);
  if (p.kind == PlanKind::Source) out += " " + p.stream;
  out += " " + p.schema.to_string() + "\n";
  Names n;
  if (!p.inputs.empty()) n.first = &p.inputs[0].schema;
  if (p.inputs.size() > 1 && (p.kind == PlanKind::Next || p.kind == PlanKind::Fold))
    n.second = &p.inputs[1].schema;
  switch (p.kind) {
    case PlanKind::Filter:
    case PlanKind::Next:
      if (p.pred) out += pad2 + "pred: " + dump_expr(*p.pred, n) + "\n";
      break;
    case PlanKind::Fold:
      if (p.pred) out += pad2 + "pred: " + dump_expr(*p.pred, n) + "\n";
      if (p.pred2) out += pad2 + "rebind: " + dump_expr(*p.pred2, n) + "\n";
      for (const auto& a : p.aggregates) {
        std::string target = n.first && a.target < n.first->size()
                                 ? n.first->attrs[a.target].name
                                 : "[" + std::to_string(a.target) + "]";
        out += pad2 + "agg " + target + " := " + dump_expr(a.value, n) + "\n";
      }
      break;
    case PlanKind::Select:
      for (size_t i = 0; i < p.items.size(); ++i) {
        std::string name = i < p.schema.size() ? p.schema.attrs[i].name : "?";
        out += pad2 + name + " := " + dump_expr(p.items[i], n) + "\n";
      }
      break;
    default:
      break;
  }
  for (const auto& in : p.inputs) dump_plan(in, depth + 1, out);
}

}  // namespace

std::string dump(const TExpr& e) {
  return dump_expr(e, Names{});
}

std::string dump(const Plan& p) {
  std::string out;
  dump_plan(p, 0, out);
  return out;
}

}  // namespace cayuga
