// libFuzzer target for the CEL front end: any byte string must parse without crashing, hanging
// or undefined behaviour, and the result must be well-formed (a script iff no errors; every error
// has a position and a message; dumping and rendering work). A script that parses goes through
// the analyzer and, when valid, the automaton builder and its text and DOT dumps: no text may
// crash the front end at any stage.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "compiler/analyzer.h"
#include "lang/parser.h"
#include "nfa/automaton.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  cayuga::ParseResult r = cayuga::parse_script(text);
  if (r.script.has_value() == !r.errors.empty()) __builtin_trap();
  uint32_t lines = 1;
  for (char c : text) lines += c == '\n';
  for (const auto& d : r.errors) {
    if (d.line == 0 || d.line > lines || d.column == 0 || d.message.empty()) __builtin_trap();
    if (d.message.rfind("internal parser error", 0) == 0) __builtin_trap();
    (void)d.render("fuzz.cel", text);
  }
  if (r.script) {
    std::string dump = cayuga::ast::dump(*r.script);
    // Parsing is deterministic.
    cayuga::ParseResult again = cayuga::parse_script(text);
    if (!again.script || cayuga::ast::dump(*again.script) != dump) __builtin_trap();

    cayuga::AnalyzeResult a = cayuga::analyze(*r.script);
    if (a.script.has_value() == !a.errors.empty()) __builtin_trap();
    for (const auto& d : a.errors) {
      if (d.message.empty()) __builtin_trap();
      (void)d.render("fuzz.cel", text);
    }
    if (a.script) {
      for (const auto& q : a.script->queries) (void)cayuga::dump(q.root);
      cayuga::nfa::Automaton automaton;
      if (cayuga::nfa::build(*a.script, automaton).empty()) {
        (void)cayuga::nfa::to_text(automaton);
        (void)cayuga::nfa::to_dot(automaton);
      }
    }
  }
  return 0;
}
