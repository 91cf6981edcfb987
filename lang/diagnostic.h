// Errors of every front-end stage, as values (never exceptions across stage boundaries).
//
// A diagnostic names the line and column, and renders the offending source line with a caret:
//
//   query.cel:3:28: error: unknown attribute 'Prize' in $2; Stock has: Name, Price, Volume
//     FROM Stock NEXT{$1.Name = $2.Prize} Stock
//                                ^
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lang/ast.h"

namespace cayuga {

struct Diagnostic {
  uint32_t line = 0;  // 1-based; 0 when the error has no position (e.g. a missing file)
  uint32_t column = 0;
  std::string message;

  // "<file>:<line>:<col>: error: <message>\n  <source line>\n  <caret>\n".
  std::string render(std::string_view file, std::string_view source) const;
};

using Diagnostics = std::vector<Diagnostic>;

inline Diagnostic make_diagnostic(const ast::Pos& pos, std::string message) {
  return Diagnostic{pos.line, pos.column, std::move(message)};
}

// Renders every diagnostic in order.
std::string render_all(const Diagnostics& ds, std::string_view file, std::string_view source);

}  // namespace cayuga
