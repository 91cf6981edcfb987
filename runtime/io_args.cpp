// Input options of the command line (--input, --events and their modifiers).
#include <charconv>

#include "runtime/io.h"

namespace cayuga {

const char* to_string(InputFormat f) {
  switch (f) {
    case InputFormat::Cayuga:
      return "cayuga";
    case InputFormat::Csv:
      return "csv";
    case InputFormat::Jsonl:
      return "jsonl";
    case InputFormat::Regex:
      return "regex";
  }
  return "?";
}

std::optional<InputFormat> parse_input_format(std::string_view s) {
  if (s == "cayuga") return InputFormat::Cayuga;
  if (s == "csv") return InputFormat::Csv;
  if (s == "jsonl" || s == "json" || s == "ndjson") return InputFormat::Jsonl;
  if (s == "regex") return InputFormat::Regex;
  return std::nullopt;
}

InputFormat format_from_path(std::string_view path) {
  if (path.size() > 3 && path.substr(path.size() - 3) == ".gz") path.remove_suffix(3);
  auto ext = [&](std::string_view e) {
    return path.size() > e.size() && path.substr(path.size() - e.size()) == e;
  };
  if (ext(".csv")) return InputFormat::Csv;
  if (ext(".jsonl") || ext(".ndjson") || ext(".json")) return InputFormat::Jsonl;
  return InputFormat::Cayuga;
}

namespace {

bool is_identifier(std::string_view s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

struct Pending {
  bool format_given = false;
  bool is_events = false;
};

}  // namespace

bool parse_input_args(std::span<const std::string> args, InputArgs& out, std::string* error) {
  std::string scratch;
  if (!error) error = &scratch;
  out = InputArgs{};
  std::vector<Pending> pending;
  auto fail = [&](std::string msg) {
    *error = std::move(msg);
    return false;
  };
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    std::string_view opt = arg, inline_value;
    bool has_inline = false;
    if (arg.rfind("--", 0) == 0) {
      if (size_t eq = arg.find('='); eq != std::string_view::npos) {
        opt = arg.substr(0, eq);
        inline_value = arg.substr(eq + 1);
        has_inline = true;
      }
    }
    static constexpr std::string_view kValued[] = {"--events", "--input",       "--format",
                                                   "--regex",  "--time-column", "--time-format",
                                                   "--map",    "--year"};
    bool valued = false;
    for (auto v : kValued) valued |= opt == v;
    if (opt == "--skip-unmatched" || opt == "--no-skip-unmatched") {
      if (has_inline) return fail(std::string(opt) + " takes no value");
      if (out.inputs.empty()) return fail(std::string(opt) + " must follow an --input");
      out.inputs.back().skip_unmatched = opt == "--skip-unmatched";
      continue;
    }
    if (!valued) {
      out.rest.emplace_back(arg);
      continue;
    }
    std::string value;
    if (has_inline) {
      value = inline_value;
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return fail(std::string(opt) + " needs a value");
    }
    if (opt == "--events" || opt == "--input") {
      InputSpec spec;
      Pending p;
      p.is_events = opt == "--events";
      std::string_view v = value;
      if (size_t eq = v.find('=');
          !p.is_events && eq != std::string_view::npos && is_identifier(v.substr(0, eq))) {
        spec.stream = v.substr(0, eq);
        v.remove_prefix(eq + 1);
      }
      if (v.empty()) return fail(std::string(opt) + " needs a file name ('-' for stdin)");
      spec.path = v;
      out.inputs.push_back(std::move(spec));
      pending.push_back(p);
      continue;
    }
    if (out.inputs.empty()) return fail(std::string(opt) + " must follow an --input or --events");
    InputSpec& spec = out.inputs.back();
    if (opt == "--format") {
      auto f = parse_input_format(value);
      if (!f) return fail("unknown input format '" + value + "' (cayuga, csv, jsonl, regex)");
      spec.format = *f;
      pending.back().format_given = true;
    } else if (opt == "--regex") {
      if (value.empty()) return fail("--regex needs a pattern");
      spec.regex = value;
    } else if (opt == "--time-column") {
      spec.time_column = value;
    } else if (opt == "--time-format") {
      spec.time_format = value;
    } else if (opt == "--map") {
      size_t eq = value.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == value.size())
        return fail("--map expects Attribute=source, got '" + value + "'");
      std::string attr = value.substr(0, eq);
      for (const auto& [a, s] : spec.map)
        if (a == attr) return fail("--map: attribute " + attr + " is mapped twice");
      spec.map.emplace_back(attr, value.substr(eq + 1));
    } else if (opt == "--year") {
      int y = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), y);
      if (ec != std::errc() || p != value.data() + value.size() || y < 1 || y > 9999)
        return fail("--year expects a year 1..9999, got '" + value + "'");
      spec.year = y;
    }
  }
  for (size_t k = 0; k < out.inputs.size(); ++k) {
    InputSpec& spec = out.inputs[k];
    if (!pending[k].format_given) {
      if (!spec.regex.empty())
        spec.format = InputFormat::Regex;
      else if (pending[k].is_events)
        spec.format = InputFormat::Cayuga;
      else
        spec.format = format_from_path(spec.path);
    }
    if (!spec.regex.empty() && spec.format != InputFormat::Regex)
      return fail(spec.path + ": --regex given but the format is " + to_string(spec.format));
    if (spec.format == InputFormat::Regex && spec.regex.empty())
      return fail(spec.path + ": a regex input needs --regex");
    // Cayuga-format lines carry their own stream, schema order and engine-unit times.
    if (spec.format == InputFormat::Cayuga &&
        (!spec.time_column.empty() || !spec.time_format.empty() || !spec.map.empty()))
      return fail(spec.path + ": --time-column, --time-format and --map do not apply to " +
                  "Cayuga-format input (v1,...,vn,Stream,t0,t1 in engine units)");
  }
  return true;
}

}  // namespace cayuga
