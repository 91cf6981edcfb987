// Parsing CEL scripts (CEL.md §2–3) into the AST of lang/ast.h.
//
// The Boost.Spirit X3 grammar lives only in parser.cpp: it is heavy to compile and nothing else
// needs to see it. Parsing never throws and never crashes on any input; on error it returns
// diagnostics with line, column and what would have been valid at that point.
#pragma once

#include <optional>
#include <string_view>

#include "lang/ast.h"
#include "lang/diagnostic.h"

namespace cayuga {

struct ParseResult {
  std::optional<ast::Script> script;  // set iff errors is empty
  Diagnostics errors;
};

ParseResult parse_script(std::string_view text);

}  // namespace cayuga
