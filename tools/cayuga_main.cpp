// The `cayuga` command line: check, explain and run CEL scripts.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "compiler/analyzer.h"
#include "lang/parser.h"
#include "nfa/automaton.h"
#include "runtime/engine.h"
#include "runtime/huge_pages.h"
#include "runtime/io.h"
#include "tools/run_loop.h"
#include "tools/serve/serve.h"

namespace {

using namespace cayuga;
using cli::Clock;

constexpr const char* kUsage =
    "usage: cayuga <command> [options]\n"
    "\n"
    "commands:\n"
    "  check SCRIPT.cel      compile only; print errors and exit 1 if there are any\n"
    "  explain SCRIPT.cel    print the typed queries, their output schemas and the automaton\n"
    "  run SCRIPT.cel        run the queries over event files and print the matches\n"
    "  serve                 the detection service: HTTP/JSON and TCP ingest (docs/service.md)\n"
    "\n"
    "`cayuga <command> --help` describes each command's options.\n";

constexpr const char* kCheckUsage =
    "usage: cayuga check SCRIPT.cel [--time-unit us|ms|s]\n"
    "Parses and type-checks the script. Exit 0 when it is valid; otherwise prints every error\n"
    "with its line and column and exits 1.\n";

constexpr const char* kExplainUsage =
    "usage: cayuga explain SCRIPT.cel [--dot] [--time-unit us|ms|s]\n"
    "Prints the parsed statements, each query's typed plan and output schema, and the\n"
    "automaton (nodes, predicates as interpreter bytecode, forward edges).\n"
    "  --dot    print only the automaton as a Graphviz DOT graph (`| dot -Tsvg > a.svg`)\n";

constexpr const char* kRunUsage =
    "usage: cayuga run SCRIPT.cel [inputs] [options]\n"
    "\n"
    "inputs (merged by time; see docs/input-output.md):\n"
    "  --events FILE|-           Cayuga format: v1,...,vn,Stream,t0,t1 (several streams)\n"
    "  --input [STREAM=]FILE     one input file; the format follows the extension\n"
    "                            (.csv, .jsonl/.ndjson/.json, else Cayuga; .gz is decompressed)\n"
    "    --format cayuga|csv|jsonl|regex   --regex RE   --time-column NAME\n"
    "    --time-format us|ms|s|DATETIME    --year N     --map ATTR=COLUMN\n"
    "    --skip-unmatched | --no-skip-unmatched   (modifiers apply to the preceding input)\n"
    "\n"
    "options:\n"
    "  --time-unit us|ms|s       the engine's time unit (default ms)\n"
    "  -o, --output FILE         write matches to FILE instead of stdout (.gz compresses)\n"
    "  --output-format F         jsonl (default), csv, cayuga or witness\n"
    "  --on-error stop|skip      on a bad input line or a timestamp going backwards: stop with\n"
    "                            exit 1 (default), or report it, count it and go on\n"
    "  --stats                   print run statistics as one JSON object on stderr at the end\n"
    "  --quiet                   no progress line\n"
    "  --threads N               threads for the run (default 0 = one per core): a large\n"
    "                            script is parsed in chunks at once, parsing input and\n"
    "                            formatting output run beside the engine, and the engine\n"
    "                            spreads large epochs; 1 = everything on one thread\n"
    "                            (also CAYUGA_THREADS=N); results do not change\n"
    "\n"
    "optimizations (each can be switched off; results do not change):\n"
    "  --jit on|off|auto         native code for predicates and schema maps: on = compile\n"
    "                            before the run, auto (default) = compile in the background\n"
    "                            and switch when ready, off = interpreter only\n"
    "  --no-merge                do not share identical automaton nodes across queries\n"
    "  --no-index                no global predicate index: every event visits every node\n"
    "  --no-instance-index       no per-node buckets for dynamic equalities\n"
    "  (or the environment: CAYUGA_JIT=..., CAYUGA_NO_MERGE=1, CAYUGA_NO_INDEX=1,\n"
    "   CAYUGA_NO_INSTANCE_INDEX=1)\n";

bool read_file(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

bool wants_help(const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (a == "--help" || a == "-h") return true;
  return false;
}

// Options shared by every command: the script path and the engine time unit.
struct Common {
  std::string script_path;
  std::string script;
  EngineUnit unit = EngineUnit::Ms;
};

// Consumes SCRIPT and --time-unit from `args`, leaving the rest. Returns an error message.
std::string take_common(std::vector<std::string>& args, Common& c) {
  std::vector<std::string> rest;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--time-unit" || a.rfind("--time-unit=", 0) == 0) {
      std::string v = a == "--time-unit" ? (i + 1 < args.size() ? args[++i] : "") : a.substr(12);
      auto u = parse_engine_unit(v);
      if (!u) return "--time-unit must be us, ms or s (got '" + v + "')";
      c.unit = *u;
    } else if (c.script_path.empty() && !a.empty() && a[0] != '-') {
      c.script_path = a;
    } else {
      rest.push_back(a);
    }
  }
  args = std::move(rest);
  if (c.script_path.empty()) return "missing SCRIPT.cel";
  if (!read_file(c.script_path, c.script)) return "cannot read " + c.script_path;
  return {};
}

int usage_error(const std::string& msg, const char* usage) {
  std::cerr << "cayuga: " << msg << "\n\n" << usage;
  return 2;
}

int cmd_check(std::vector<std::string> args) {
  if (wants_help(args)) return std::cout << kCheckUsage, 0;
  Common c;
  if (auto err = take_common(args, c); !err.empty()) return usage_error(err, kCheckUsage);
  if (!args.empty()) return usage_error("unknown option " + args[0], kCheckUsage);
  AnalyzeResult r = compile_script(c.script, AnalyzeOptions{c.unit, nullptr, resolve_threads(0)});
  if (!r.script) {
    std::cerr << render_all(r.errors, c.script_path, c.script);
    std::cerr << r.errors.size() << (r.errors.size() == 1 ? " error\n" : " errors\n");
    return 1;
  }
  std::cout << c.script_path << ": ok (" << r.script->inputs.size() << " input streams, "
            << r.script->queries.size() << " queries)\n";
  return 0;
}

int cmd_explain(std::vector<std::string> args) {
  if (wants_help(args)) return std::cout << kExplainUsage, 0;
  bool dot = false;
  std::erase_if(args, [&](const std::string& a) { return a == "--dot" ? (dot = true) : false; });
  Common c;
  if (auto err = take_common(args, c); !err.empty()) return usage_error(err, kExplainUsage);
  if (!args.empty()) return usage_error("unknown option " + args[0], kExplainUsage);
  ParseResult parsed = parse_script(c.script);
  if (!parsed.script) {
    std::cerr << render_all(parsed.errors, c.script_path, c.script);
    return 1;
  }
  AnalyzeResult r = analyze(*parsed.script, AnalyzeOptions{c.unit, nullptr});
  if (!r.script) {
    std::cerr << render_all(r.errors, c.script_path, c.script);
    return 1;
  }
  nfa::Automaton automaton;
  if (std::string err = nfa::build(*r.script, automaton); !err.empty()) {
    std::cerr << c.script_path << ": error: " << err << "\n";
    return 1;
  }
  if (dot) return std::cout << nfa::to_dot(automaton), 0;
  std::cout << "== statements\n" << ast::dump(*parsed.script) << "\n";
  for (const auto& q : r.script->queries) {
    std::cout << "== query " << q.number << " publishes " << q.publish << " "
              << q.root.schema.to_string() << "\n"
              << dump(q.root) << "\n";
  }
  std::cout << "== automaton\n" << nfa::to_text(automaton);
  return 0;
}

// A whole decimal number from 0 to `max`, or nullopt.
std::optional<unsigned> parse_count(const std::optional<std::string>& v, unsigned max) {
  unsigned n = 0;
  if (!v || v->empty()) return std::nullopt;
  auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (ec != std::errc() || end != v->data() + v->size() || n > max) return std::nullopt;
  return n;
}

int64_t peak_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;
}

int cmd_run(std::vector<std::string> args) {
  if (wants_help(args)) return std::cout << kRunUsage, 0;
  auto start = Clock::now();
  Common c;
  if (auto err = take_common(args, c); !err.empty()) return usage_error(err, kRunUsage);
  InputArgs inputs;
  std::string err;
  if (!parse_input_args(args, inputs, &err)) return usage_error(err, kRunUsage);
  std::string output_path = "-";
  OutputFormat output_format = OutputFormat::Jsonl;
  bool stats = false, quiet = false, skip_errors = false;
  EngineOptions engine_options = EngineOptions::from_env();
  engine_options.unit = c.unit;
  for (size_t i = 0; i < inputs.rest.size(); ++i) {
    const std::string& a = inputs.rest[i];
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 < inputs.rest.size()) return inputs.rest[++i];
      return std::nullopt;
    };
    if (a == "-o" || a == "--output") {
      auto v = value();
      if (!v) return usage_error(a + " needs a file", kRunUsage);
      output_path = *v;
    } else if (a == "--output-format") {
      auto v = value();
      auto f = v ? parse_output_format(*v) : std::nullopt;
      if (!f) return usage_error("--output-format must be jsonl, csv, cayuga or witness", kRunUsage);
      output_format = *f;
    } else if (a == "--on-error") {
      auto v = value();
      if (!v || (*v != "stop" && *v != "skip"))
        return usage_error("--on-error must be stop or skip", kRunUsage);
      skip_errors = *v == "skip";
    } else if (a == "--stats") {
      stats = true;
    } else if (a == "--quiet") {
      quiet = true;
    } else if (a == "--threads") {
      auto n = parse_count(value(), 1024);
      if (!n) return usage_error("--threads must be a number from 0 to 1024", kRunUsage);
      engine_options.threads = engine_options.compile_threads = *n;
    } else if (a == "--jit") {
      auto v = value();
      auto m = v ? parse_jit_mode(*v) : std::nullopt;
      if (!m) return usage_error("--jit must be on, off or auto", kRunUsage);
      engine_options.jit = *m;
    } else if (a == "--no-merge") {
      engine_options.merge = false;
    } else if (a == "--no-index") {
      engine_options.index = false;
    } else if (a == "--no-instance-index") {
      engine_options.instance_index = false;
    } else {
      return usage_error("unknown option " + a, kRunUsage);
    }
  }
  if (inputs.inputs.empty())
    return usage_error("no input: give --events FILE (or -) or --input STREAM=FILE", kRunUsage);

  Engine engine(engine_options);
  if (Diagnostics ds = engine.add_script(c.script); !ds.empty()) {
    std::cerr << render_all(ds, c.script_path, c.script);
    return 1;
  }
  const nfa::Automaton& automaton = engine.automaton();
  StreamTable streams;
  for (uint32_t id = 0; id < automaton.streams.size(); ++id) {
    const nfa::Stream& s = automaton.streams[id];
    if (s.kind == nfa::StreamKind::Input) streams.add(StreamDef{id, s.name, &s.schema});
  }
  std::vector<std::unique_ptr<SplitReader>> sources;
  for (const auto& spec : inputs.inputs) {
    auto r = open_reader(spec, streams, c.unit, &err);
    if (!r) {
      std::cerr << "cayuga: " << err << "\n";
      return 1;
    }
    sources.push_back(std::move(r));
  }
  // Several threads: the pipeline parses the inputs and the loop reads the parsed batches, one
  // BatchReader per input, merged the same way. One thread: the loop parses files a batch at a
  // time itself (so it can look ahead), and reads other inputs (stdin, pipes) line by line, so
  // that an event is handled as soon as its line arrives.
  const unsigned threads = resolve_threads(engine_options.threads);
  const bool pipeline = threads > 1;
  // (CAYUGA_READ_AHEAD=0: line by line on one thread whatever the input, for tests.)
  const char* read_ahead = std::getenv("CAYUGA_READ_AHEAD");
  const bool batched =
      pipeline || (!(read_ahead && std::string_view(read_ahead) == "0") &&
                   std::all_of(inputs.inputs.begin(), inputs.inputs.end(), [](const InputSpec& in) {
                     std::error_code ec;
                     return in.path != "-" && std::filesystem::is_regular_file(in.path, ec);
                   }));
  std::vector<std::unique_ptr<EventReader>> merged;
  std::vector<SplitReader*> split;
  std::vector<BatchReader*> parsed;
  for (auto& r : sources) {
    if (batched) {
      auto b = std::make_unique<BatchReader>(std::string(r->name()));
      split.push_back(r.get());
      parsed.push_back(b.get());
      merged.push_back(std::move(b));
    } else {
      merged.push_back(std::move(r));
    }
  }
  MergeReader reader(std::move(merged));
  auto sink = open_output_sink(output_path, &err);
  if (!sink) {
    std::cerr << "cayuga: " << err << "\n";
    return 1;
  }
  auto writer = make_writer(output_format, std::move(sink));
  auto compiled = Clock::now();

  cli::RunLoop loop(engine, reader, skip_errors, !quiet && isatty(STDERR_FILENO), compiled);
  if (pipeline)
    cli::run_pipeline(loop, engine, split, parsed, output_format, *writer, threads);
  else if (batched)
    cli::run_batched(loop, engine, split, parsed, output_format, *writer);
  else
    cli::run_sequential(loop, engine, *writer);
  int exit_code = loop.exit_code();
  const uint64_t bad_lines = loop.bad_lines();
  if (!writer->flush()) {
    std::cerr << "cayuga: " << writer->error() << "\n";
    exit_code = 1;
  }
  auto end = Clock::now();
  const EngineStats& s = engine.stats();
  if (exit_code != 0)
    std::cerr << "cayuga: stopped after " << s.events_in
              << " events (use --on-error skip to report and skip bad input)\n";
  else if (bad_lines + s.late_events > 0)
    std::cerr << "cayuga: skipped " << bad_lines << " bad lines and " << s.late_events
              << " late events\n";
  if (stats) {
    const JitStats js = engine.jit_stats();
    double compile_ms = std::chrono::duration<double, std::milli>(compiled - start).count();
    double run_ms = std::chrono::duration<double, std::milli>(end - compiled).count();
    std::fprintf(stderr,
                 "{\"events_in\":%llu,\"outputs\":%llu,\"epochs\":%llu,\"late_events\":%llu,"
                 "\"bad_lines\":%llu,\"unmatched_lines\":%llu,\"peak_instances\":%llu,"
                 "\"instances\":%llu,\"expired\":%llu,\"div_by_zero\":%llu,\"queries\":%zu,"
                 "\"nodes\":%zu,\"jit\":\"%s\",\"jit_compiled\":%llu,\"jit_shapes\":%llu,"
                 "\"jit_compile_ms\":%.3f,\"compile_ms\":%.3f,\"run_ms\":%.3f,"
                 "\"events_per_s\":%.0f,\"peak_rss_bytes\":%lld}\n",
                 static_cast<unsigned long long>(s.events_in),
                 static_cast<unsigned long long>(s.outputs),
                 static_cast<unsigned long long>(s.epochs),
                 static_cast<unsigned long long>(s.late_events),
                 static_cast<unsigned long long>(bad_lines),
                 static_cast<unsigned long long>(reader.skipped()),
                 static_cast<unsigned long long>(s.peak_instances),
                 static_cast<unsigned long long>(s.instances),
                 static_cast<unsigned long long>(s.expired),
                 static_cast<unsigned long long>(s.div_by_zero), automaton.queries.size(),
                 automaton.nodes.size(), to_string(engine_options.jit),
                 static_cast<unsigned long long>(js.compiled),
                 static_cast<unsigned long long>(js.shapes), js.compile_ms, compile_ms, run_ms,
                 run_ms > 0 ? s.events_in / (run_ms / 1000.0) : 0.0,
                 static_cast<long long>(peak_rss_bytes()));
  }
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  cayuga::use_huge_pages(argv);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return std::cerr << kUsage, 2;
  std::string cmd = args[0];
  args.erase(args.begin());
  if (cmd == "--help" || cmd == "-h" || cmd == "help") return std::cout << kUsage, 0;
  if (cmd == "check") return cmd_check(std::move(args));
  if (cmd == "explain") return cmd_explain(std::move(args));
  if (cmd == "run") return cmd_run(std::move(args));
  if (cmd == "serve") return cayuga::serve::serve_main(std::move(args));
  std::cerr << "cayuga: unknown command '" << cmd << "'\n\n" << kUsage;
  return 2;
}
