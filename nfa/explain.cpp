// Text and Graphviz DOT forms of an automaton, for `cayuga explain`.
#include <sstream>

#include "nfa/automaton.h"

namespace cayuga::nfa {

namespace {

const char* kind_name(NodeKind k) {
  switch (k) {
    case NodeKind::Start: return "START";
    case NodeKind::Next: return "NEXT";
    case NodeKind::Fold: return "FOLD";
  }
  return "?";
}

const char* stream_kind(StreamKind k) {
  switch (k) {
    case StreamKind::Input: return "input";
    case StreamKind::Published: return "published";
    case StreamKind::Internal: return "internal";
  }
  return "?";
}

// Indents every line of a multi-line listing.
std::string indent(const std::string& text, const std::string& pad) {
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    out += pad + text.substr(start, nl - start) + "\n";
    start = nl + 1;
  }
  return out;
}

std::string slot_list(const SharedArray<SlotRef>& refs) {
  std::string out;
  for (size_t i = 0; i < refs.size(); ++i) {
    if (i) out += ' ';
    out += (refs[i].row == 0 ? "i" : "e") + std::to_string(refs[i].offset);
  }
  return out;
}

std::string target_name(const Automaton& a, const Emit& e) {
  return e.kind == Emit::Kind::ToNode ? "node " + std::to_string(e.target)
                                      : "stream " + a.streams[e.target].name;
}

std::string dot_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\l";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

std::string to_text(const Automaton& a) {
  std::ostringstream out;
  out << "streams:\n";
  for (size_t i = 0; i < a.streams.size(); ++i) {
    const Stream& s = a.streams[i];
    out << "  " << i << " " << s.name << " " << s.schema.to_string() << " " << stream_kind(s.kind)
        << "\n";
  }
  out << "nodes:\n";
  for (size_t n = 0; n < a.nodes.size(); ++n) {
    const Node& node = a.nodes[n];
    out << "  node " << n << " " << kind_name(node.kind) << " reads " << a.streams[node.stream].name
        << " (query q" << node.query << ")\n";
    if (node.kind != NodeKind::Start) {
      out << "    instance width " << node.width;
      if (node.max_dur != kNoDurBound) out << ", freed when DUR > " << node.max_dur;
      out << "\n    filter:\n" << indent(node.filter.disassemble(), "      ");
    }
    if (node.kind == NodeKind::Fold) {
      out << "    rebind:\n" << indent(node.rebind.disassemble(), "      ");
      for (const auto& [slot, prog] : node.aggregates)
        out << "    aggregate i" << slot << " :=\n" << indent(prog.disassemble(), "      ");
      out << "    last values at i" << node.last_base << "\n";
    }
    out << "    output " << node.output_schema.to_string() << " = " << slot_list(node.output)
        << "\n";
    for (const auto& e : node.emits) {
      out << "    -> " << target_name(a, e) << "\n";
      for (const auto& st : e.stages) {
        if (st.kind == Stage::Kind::Filter) {
          out << "       filter:\n" << indent(st.pred.disassemble(), "         ");
        } else {
          out << "       map:";
          for (uint32_t slot : st.project) out << " r" << slot;
          out << "\n";
          for (size_t k = 0; k < st.items.size(); ++k)
            out << "         item " << k << ":\n" << indent(st.items[k].disassemble(), "           ");
        }
      }
    }
  }
  return out.str();
}

std::string label(const Automaton& a, uint32_t node) {
  const Node& n = a.nodes[node];
  return "q" + std::to_string(n.query) + ".n" + std::to_string(node) + " " + kind_name(n.kind) +
         " " + a.streams[n.stream].name;
}

std::string to_dot(const Automaton& a) {
  std::ostringstream out;
  out << "digraph cayuga {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n";
  for (size_t i = 0; i < a.streams.size(); ++i) {
    const Stream& s = a.streams[i];
    if (s.kind == StreamKind::Input) continue;
    out << "  s" << i << " [shape=ellipse, label=\"" << dot_escape(s.name) << "\"];\n";
  }
  for (size_t n = 0; n < a.nodes.size(); ++n) {
    const Node& node = a.nodes[n];
    std::string label = std::to_string(n) + " " + kind_name(node.kind) + " " +
                        a.streams[node.stream].name + "\n";
    if (node.kind != NodeKind::Start) label += "filter:\n" + node.filter.disassemble();
    if (node.kind == NodeKind::Fold) label += "rebind:\n" + node.rebind.disassemble();
    out << "  n" << n << " [label=\"" << dot_escape(label) << "\""
        << (node.kind == NodeKind::Start ? ", style=rounded" : "") << "];\n";
    if (node.kind == NodeKind::Fold) out << "  n" << n << " -> n" << n << " [label=\"rebind\"];\n";
    for (const auto& e : node.emits) {
      std::string stages;
      for (const auto& st : e.stages)
        stages += st.kind == Stage::Kind::Filter ? "filter\n" + st.pred.disassemble() : "map\n";
      out << "  n" << n << " -> " << (e.kind == Emit::Kind::ToNode ? "n" : "s") << e.target
          << " [label=\"" << dot_escape(stages) << "\"];\n";
    }
  }
  for (size_t i = 0; i < a.streams.size(); ++i)
    for (uint32_t r : a.streams[i].readers)
      if (a.streams[i].kind != StreamKind::Input)
        out << "  s" << i << " -> n" << r << " [style=dashed];\n";
  out << "}\n";
  return out.str();
}

}  // namespace cayuga::nfa
