// `cayuga serve` command line: options, signals, and the server's lifetime.
#include <signal.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>

#include "tools/serve/serve.h"

namespace cayuga::serve {

const char* const kServeUsage =
    "usage: cayuga serve [options]\n"
    "Runs CEL queries as an HTTP/JSON service (docs/service.md).\n"
    "\n"
    "  --listen HOST:PORT      HTTP address (default 127.0.0.1:7070; port 0 = ephemeral)\n"
    "  --script FILE.cel       load a script at start (repeatable)\n"
    "  --token TOKEN           require 'Authorization: Bearer TOKEN' (default: $CAYUGA_TOKEN);\n"
    "                          mandatory when HOST is not a loopback address\n"
    "  --ingest-port N         also accept JSON Lines / Cayuga-format lines on raw TCP port N\n"
    "  --time-unit us|ms|s     the engine's time unit (default ms)\n"
    "  --jit off|on|auto       native code for predicates (default auto)\n"
    "  --threads N             worker threads matching each batch of events (default 0: one\n"
    "                          per core); results are identical for every N\n"
    "  --heartbeat arrival|always|off   advance time on a timer (default arrival: once an\n"
    "                          event without a time was received)\n"
    "  --heartbeat-ms N        heartbeat period (default 100)\n"
    "  --queue-events N        bounded event queue (default 1048576)\n"
    "  --max-body BYTES        larger request bodies get 413 (default 16777216)\n"
    "  --subscriber-buffer BYTES  a subscriber further behind is disconnected (default 8388608)\n"
    "  --port-file FILE        write '<http port> <ingest port>' once listening\n";

namespace {

template <class T>
bool parse_num(const std::string& s, T& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

std::string parse_serve_args(const std::vector<std::string>& args, ServeConfig& cfg) {
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i], v;
    bool has_v = false;
    if (size_t eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      v = a.substr(eq + 1);
      a = a.substr(0, eq);
      has_v = true;
    }
    if (a == "--help" || a == "-h") return "help";
    auto value = [&]() -> bool {
      if (has_v) return true;
      if (i + 1 >= args.size()) return false;
      v = args[++i];
      return true;
    };
    auto bad = [&] { return "invalid value for " + a + ": '" + v + "'"; };
    if (a == "--listen") {
      if (!value()) return "--listen needs HOST:PORT";
      size_t colon = v.rfind(':');
      if (colon == std::string::npos) return "--listen needs HOST:PORT";
      std::string host = v.substr(0, colon);
      if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
      if (host.empty()) return "--listen needs a host (e.g. 127.0.0.1:7070)";
      if (!parse_num(v.substr(colon + 1), cfg.port)) return bad();
      cfg.host = host;
    } else if (a == "--script") {
      if (!value()) return "--script needs a file";
      cfg.script_files.push_back(v);
    } else if (a == "--token") {
      if (!value() || v.empty()) return "--token needs a value";
      cfg.token = v;
    } else if (a == "--ingest-port") {
      uint16_t p;
      if (!value() || !parse_num(v, p)) return bad();
      cfg.ingest_port = p;
    } else if (a == "--time-unit") {
      if (!value()) return bad();
      if (v == "us")
        cfg.unit = api::TimeUnit::Microseconds;
      else if (v == "ms")
        cfg.unit = api::TimeUnit::Milliseconds;
      else if (v == "s")
        cfg.unit = api::TimeUnit::Seconds;
      else
        return bad();
    } else if (a == "--jit") {
      if (!value()) return bad();
      if (v == "off")
        cfg.jit = api::JitMode::Off;
      else if (v == "on")
        cfg.jit = api::JitMode::On;
      else if (v == "auto")
        cfg.jit = api::JitMode::Auto;
      else
        return bad();
    } else if (a == "--threads") {
      if (!value() || !parse_num(v, cfg.threads)) return bad();
    } else if (a == "--heartbeat") {
      if (!value()) return bad();
      if (v == "arrival")
        cfg.heartbeat = HeartbeatMode::Arrival;
      else if (v == "always")
        cfg.heartbeat = HeartbeatMode::Always;
      else if (v == "off")
        cfg.heartbeat = HeartbeatMode::Off;
      else
        return bad();
    } else if (a == "--heartbeat-ms") {
      if (!value() || !parse_num(v, cfg.heartbeat_ms) || cfg.heartbeat_ms < 1) return bad();
    } else if (a == "--queue-events") {
      if (!value() || !parse_num(v, cfg.queue_events) || cfg.queue_events < 1) return bad();
    } else if (a == "--max-body") {
      if (!value() || !parse_num(v, cfg.max_body) || cfg.max_body < 1) return bad();
    } else if (a == "--subscriber-buffer") {
      if (!value() || !parse_num(v, cfg.subscriber_buffer) || cfg.subscriber_buffer < 1)
        return bad();
    } else if (a == "--port-file") {
      if (!value()) return bad();
      cfg.port_file = v;
    } else {
      return "unknown option '" + args[i] + "'";
    }
  }
  return {};
}

int serve_main(std::vector<std::string> args) {
  ServeConfig cfg;
  if (const char* t = std::getenv("CAYUGA_TOKEN"); t && *t) cfg.token = t;
  std::string err = parse_serve_args(args, cfg);
  if (err == "help") {
    std::fputs(kServeUsage, stdout);
    return 0;
  }
  if (!err.empty()) {
    std::fprintf(stderr, "cayuga serve: %s\n%s", err.c_str(), kServeUsage);
    return 2;
  }
  // Signals are taken synchronously by this thread; every thread started later inherits the
  // mask, so SIGTERM/SIGINT never interrupt a worker.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  Server server(cfg);
  if (std::string e = server.start(); !e.empty()) {
    std::fprintf(stderr, "cayuga serve: %s\n", e.c_str());
    return 1;
  }
  std::fprintf(stderr, "cayuga serve: listening on http://%s:%u", cfg.host.c_str(),
               server.http_port());
  if (server.ingest_port()) std::fprintf(stderr, ", TCP ingest on port %u", server.ingest_port());
  std::fprintf(stderr, "\n");
  int sig = 0;
  sigwait(&set, &sig);
  std::fprintf(stderr, "cayuga serve: signal %d, draining\n", sig);
  server.stop();
  api::Stats s = server.engine().stats();
  std::fprintf(stderr, "cayuga serve: stopped after %llu events, %llu outputs\n",
               static_cast<unsigned long long>(s.events_in),
               static_cast<unsigned long long>(s.outputs));
  return 0;
}

}  // namespace cayuga::serve
