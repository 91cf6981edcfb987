#include "lang/diagnostic.h"

namespace cayuga {

namespace {

// The text of 1-based line `line` of `source`, without its newline.
std::string_view line_text(std::string_view source, uint32_t line) {
  size_t start = 0;
  for (uint32_t l = 1; l < line; ++l) {
    size_t nl = source.find('\n', start);
    if (nl == std::string_view::npos) return {};
    start = nl + 1;
  }
  size_t end = source.find('\n', start);
  std::string_view text = source.substr(start, end == std::string_view::npos ? end : end - start);
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  return text;
}

}  // namespace

std::string Diagnostic::render(std::string_view file, std::string_view source) const {
  std::string out(file);
  if (line > 0) {
    out += ':' + std::to_string(line) + ':' + std::to_string(column);
  }
  out += ": error: " + message + "\n";
  if (line == 0) return out;
  std::string_view text = line_text(source, line);
  out += "  ";
  out += text;
  out += "\n  ";
  // Keep tabs so the caret lines up under the offending character.
  for (uint32_t c = 1; c < column && c - 1 < text.size(); ++c) out += text[c - 1] == '\t' ? '\t' : ' ';
  out += "^\n";
  return out;
}

std::string render_all(const Diagnostics& ds, std::string_view file, std::string_view source) {
  std::string out;
  for (const auto& d : ds) out += d.render(file, source);
  return out;
}

}  // namespace cayuga
