// Regex line reader (RE2): named groups become attributes, one group is the time.
#include <re2/re2.h>

#include <map>

#include "runtime/io_internal.h"

namespace cayuga::io_detail {
namespace {

std::string group_names(const std::map<std::string, int>& groups) {
  std::string out;
  for (const auto& [name, idx] : groups) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out.empty() ? "none" : out;
}

class RegexReader final : public LineBasedReader {
 public:
  RegexReader(const InputSpec& spec, std::unique_ptr<ByteSource> src, const StreamDef& def,
              EngineUnit unit, TimeFormat tf)
      : LineBasedReader(spec.path, std::move(src)),
        def_(def),
        unit_(unit),
        tf_(std::move(tf)),
        skip_(spec.skip_unmatched),
        re_(spec.regex, RE2::Quiet) {}

  std::string open(const InputSpec& spec) {
    if (!re_.ok()) return "bad regex: " + re_.error();
    const auto& groups = re_.NamedCapturingGroups();
    auto find = [&](std::string_view name) -> int {
      auto it = groups.find(std::string(name));
      return it == groups.end() ? -1 : it->second;
    };
    for (const auto& a : def_.schema->attrs) {
      std::string_view g = mapped_name(spec, a.name);
      int idx = find(g);
      if (idx < 0)
        return "the regex has no named group " + quote_for_message(g) + " for attribute " + a.name +
               " of stream " + def_.name + " (groups: " + group_names(groups) + ")";
      groups_.push_back(idx);
    }
    if (!spec.time_column.empty()) {
      t0_ = t1_ = find(spec.time_column);
      if (t0_ < 0)
        return "the regex has no named group " + quote_for_message(spec.time_column) +
               " for the time (groups: " + group_names(groups) + ")";
    } else if (int t = find("t"); t >= 0) {
      t0_ = t1_ = t;
    } else if (int a = find("t0"), b = find("t1"); a >= 0 && b >= 0) {
      t0_ = a;
      t1_ = b;
    } else {
      return "the regex has no time group: name it (?P<t>...) or use --time-column (groups: " +
             group_names(groups) + ")";
    }
    return {};
  }

 private:
  struct Scratch final : ParseScratch {
    std::vector<re2::StringPiece> match;  // group 0 and every capturing group
  };
  std::unique_ptr<ParseScratch> make_scratch() const override {
    auto sc = std::make_unique<Scratch>();
    sc->match.resize(static_cast<size_t>(re_.NumberOfCapturingGroups()) + 1);
    return sc;
  }

  Parsed parse_record(char* data, size_t size, ParseScratch& scratch, InputEvent& out,
                      std::string& error) const override {
    std::vector<re2::StringPiece>& match = static_cast<Scratch&>(scratch).match;
    re2::StringPiece line(data, size);
    if (!re_.Match(line, 0, size, RE2::UNANCHORED, match.data(), static_cast<int>(match.size())))
      return skip_ ? Parsed::Skip : failed(error, "line does not match the regex");
    // A group that did not take part in the match reads as "".
    auto group = [&](int idx) {
      const re2::StringPiece& g = match[static_cast<size_t>(idx)];
      return g.data() ? std::string_view(g.data(), g.size()) : std::string_view();
    };
    if (std::string e = read_fields(
            def_, tf_, unit_, t0_, t1_, groups_, group,
            [&](int k) { return "group " + name_of(k); }, out);
        !e.empty())
      return failed(error, e);
    return Parsed::Event;
  }

  std::string name_of(int idx) const {
    for (const auto& [name, i] : re_.NamedCapturingGroups())
      if (i == idx) return name;
    return std::to_string(idx);
  }

  const StreamDef& def_;
  EngineUnit unit_;
  TimeFormat tf_;
  bool skip_;
  RE2 re_;
  std::vector<int> groups_;  // attribute i ← capturing group groups_[i]
  int t0_ = -1, t1_ = -1;
};

}  // namespace

std::unique_ptr<SplitReader> make_regex_reader(const InputSpec& spec,
                                               std::unique_ptr<ByteSource> src,
                                               const StreamTable& streams, EngineUnit unit,
                                               std::string* error) {
  if (spec.regex.empty()) {
    *error = spec.path + ": a regex input needs --regex";
    return nullptr;
  }
  const StreamDef* def = nullptr;
  TimeFormat tf;
  if (!fixed_stream_input(spec, streams, unit, "regex", def, tf, error)) return nullptr;
  auto r = std::make_unique<RegexReader>(spec, std::move(src), *def, unit, std::move(tf));
  if (std::string e = r->open(spec); !e.empty()) {
    *error = spec.path + ": " + e;
    return nullptr;
  }
  return r;
}

}  // namespace cayuga::io_detail
