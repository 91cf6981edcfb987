// Parsing CEL scripts (CEL.md §2–3) into the AST of lang/ast.h.
//
// The Boost.Spirit X3 grammar lives only in parser.cpp: it is heavy to compile and nothing else
// needs to see it. Parsing never throws and never crashes on any input; on error it returns
// diagnostics with line, column and what would have been valid at that point.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include "lang/ast.h"
#include "lang/diagnostic.h"

namespace cayuga {

struct ParseResult {
  std::optional<ast::Script> script;  // set iff errors is empty
  Diagnostics errors;
};

struct ParseOptions {
  // Threads that may parse a large script: it is cut at `;`s outside strings and comments into
  // this many chunks of at least min_chunk bytes, parsed at once. The statements and errors are
  // those of a one-thread parse: a chunk with an error has the whole script parsed again on one
  // thread, which reports the errors.
  unsigned threads = 1;
  size_t min_chunk = size_t{1} << 20;
};

ParseResult parse_script(std::string_view text, const ParseOptions& options = {});

}  // namespace cayuga
