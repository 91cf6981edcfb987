// Name resolution, typing and output schemas (CEL.md §4–5): AST → typed algebra.
//
// The analyzer reports every error it can find in one pass (not just the first), each with the
// line and column of the offending token and what would have been valid there (the attributes
// that exist, the streams that exist, the types that would fit).
#pragma once

#include <optional>
#include <string_view>

#include "compiler/typed.h"
#include "lang/ast.h"
#include "lang/diagnostic.h"

namespace cayuga {

struct AnalyzeOptions {
  EngineUnit unit = EngineUnit::Ms;
  // Streams of the running engine that the script may read (resubscription across scripts).
  // Asked by name, so a script costs the streams it names, not all of the engine's.
  const StreamSource* existing = nullptr;
  // compile_script: the threads that may parse a large script (ParseOptions::threads).
  unsigned threads = 1;
};

struct AnalyzeResult {
  std::optional<AnalyzedScript> script;  // set iff errors is empty
  Diagnostics errors;
};

AnalyzeResult analyze(const ast::Script& script, const AnalyzeOptions& options = {});

// parse_script + analyze.
AnalyzeResult compile_script(std::string_view text, const AnalyzeOptions& options = {});

}  // namespace cayuga
