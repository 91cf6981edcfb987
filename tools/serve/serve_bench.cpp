// cayuga-serve-bench: sustained event rate through the service, end to end over loopback.
//
//   cayuga-serve-bench [--seconds N] [--batch N] [--clients N] [--queries N] [--symbols N]
//                      [--phase http|tcp|both] [--jit on|off|auto] [--threads N]
//
// Starts a server in-process on ephemeral ports and runs two phases: HTTP (N clients POSTing
// JSON Lines batches, arrival time, retrying on 503) and TCP ingest (one connection streaming
// Cayuga-format lines with increasing times). The events are cayuga-bench's random walk over
// --symbols symbols. Without --queries, the service runs one pass-through query
// (SELECT * FROM FILTER{Price >= 0}(Stock)) and one subscriber reads its output: every event
// must come back, and a phase that loses one fails the run. With --queries N it runs N queries
// of cayuga-bench's generated mix (bench/workload.h) instead, the service at scale, and reports
// the engine's outputs. A phase's rate is events processed by the engine / wall time until the
// queue is drained. Build in Release for meaningful numbers.
// clang-format off
#include <utility>  // first: Boost 1.74's asio/awaitable.hpp uses std::exchange without it
// clang-format on
#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/workload.h"
#include "tools/serve/serve.h"

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr const char* kUsage =
    "usage: cayuga-serve-bench [options]\n"
    "Runs the detection service in-process on loopback and measures the events/s it\n"
    "sustains: HTTP clients POSTing JSON Lines batches, then one raw TCP connection\n"
    "streaming Cayuga-format lines. Events are a random walk over --symbols symbols.\n"
    "\n"
    "  --seconds N          length of each phase (default 5)\n"
    "  --clients N          HTTP clients (default 2)\n"
    "  --batch N            events per HTTP request (default 1000)\n"
    "  --queries N          run N generated stock queries (cayuga-bench's mix) and report\n"
    "                       their outputs; 0 (default): one pass-through query whose every\n"
    "                       output a subscriber must read back (exit 1 on a loss)\n"
    "  --symbols N          symbols of the walk and of the queries (default 20000)\n"
    "  --phase http|tcp|both  which phases to run (default both)\n"
    "  --jit on|off|auto    the service's --jit (default auto)\n"
    "  --threads N          the service's --threads: the engine's worker threads\n"
    "                       (default 0 = one per core)\n";

constexpr const char* kSchema = "CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\n";
constexpr const char* kPassThrough = "SELECT * FROM FILTER{Price >= 0}(Stock) PUBLISH All;\n";

struct Options {
  double seconds = 5;
  size_t clients = 2, batch = 1000, queries = 0, symbols = 20000, threads = 0;
  bool http = true, tcp = true;
  cayuga::api::JitMode jit = cayuga::api::JitMode::Auto;
};

// The walk's events, each formatted once: `Name,Price,Volume,Stock,` for TCP (the times are
// added as it is sent) and a JSON line for HTTP. Sent round and round, shifted in time.
struct Events {
  std::vector<std::string> line_heads, json;
  std::vector<int64_t> times;
  int64_t span = 0;  // the walk's time span plus a tick: a round's shift
};

Events make_events(const Options& o) {
  // 262,144 events, 4 every 100 ms as in cayuga-bench's walk (its seed too).
  constexpr size_t kPool = 1 << 18;
  const std::vector<std::string> symbols = cayuga::bench::synthetic_symbols(o.symbols);
  const auto walk = cayuga::bench::random_walk(kPool, symbols, 4, 100, 7);
  Events ev;
  for (const auto& e : walk) {
    const std::string_view name = cayuga::interned(e.values[0].s);
    const std::string p = cayuga::bench::price_text(e), v = std::to_string(e.values[2].i);
    ev.line_heads.push_back(std::string(name) + "," + p + "," + v + ",Stock,");
    ev.json.push_back("{\"stream\":\"Stock\",\"Name\":\"" + std::string(name) +
                      "\",\"Price\":" + p + ",\"Volume\":" + v + "}\n");
    ev.times.push_back(e.t);
  }
  ev.span = walk.back().t - walk.front().t + 100;
  return ev;
}

std::string script(const Options& o) {
  if (o.queries == 0) return std::string(kSchema) + kPassThrough;
  cayuga::bench::QueryMix mix;
  mix.queries = o.queries;
  mix.symbols = o.symbols;
  return cayuga::bench::generate_queries(mix, cayuga::bench::synthetic_symbols(o.symbols));
}

tcp::endpoint local(uint16_t port) {
  return {net::ip::make_address("127.0.0.1"), port};
}

int post(tcp::socket& s, beast::flat_buffer& buf, const std::string& target,
         const std::string& body) {
  http::request<http::string_body> req{http::verb::post, target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.body() = body;
  req.prepare_payload();
  http::write(s, req);
  http::response<http::string_body> res;
  http::read(s, buf, res);
  return res.result_int();
}

// Reads a subscription to the end, counting lines.
void drain_subscription(uint16_t port, std::atomic<uint64_t>& lines) {
  net::io_context ioc;
  tcp::socket s(ioc);
  s.connect(local(port));
  std::string req =
      "GET /v1/subscribe/All HTTP/1.1\r\nHost: x\r\nAccept: application/x-ndjson\r\n\r\n";
  net::write(s, net::buffer(req));
  std::vector<char> buf(1 << 16);
  boost::system::error_code ec;
  char prev = 0;  // a result line ends with "}\n"; chunk framing lines do not
  for (;;) {
    size_t n = s.read_some(net::buffer(buf), ec);
    for (size_t i = 0; i < n; ++i) {
      lines += buf[i] == '\n' && prev == '}';
      prev = buf[i];
    }
    if (ec) return;
  }
}

struct Phase {
  uint64_t events = 0;
  double seconds = 0;
  uint64_t retries = 0;
  uint64_t outputs = 0, peak_instances = 0;
  bool lost = false;
};

// A started server with the bench's script and, for the pass-through query, its subscriber;
// finish() waits until the engine has taken `sent` events and stops everything.
class Bench {
 public:
  Bench(const Options& o, bool ingest) : o_(o) {
    cayuga::serve::ServeConfig cfg;
    cfg.port = 0;
    cfg.ingest_port = ingest ? 0 : -1;
    cfg.jit = o.jit;
    cfg.threads = static_cast<unsigned>(o.threads);
    cfg.subscriber_buffer = size_t{1} << 30;
    cfg.max_body = size_t{1} << 30;  // (a script of a million queries is some 160 MB)
    srv_ = std::make_unique<cayuga::serve::Server>(cfg);
    if (std::string err = srv_->start(); !err.empty()) {
      std::fprintf(stderr, "cayuga-serve-bench: the server did not start: %s\n", err.c_str());
      std::exit(1);
    }
    {
      net::io_context ioc;
      tcp::socket s(ioc);
      s.connect(local(srv_->http_port()));
      beast::flat_buffer b;
      if (int st = post(s, b, "/v1/scripts", script(o)); st != 200) {
        std::fprintf(stderr, "cayuga-serve-bench: POST /v1/scripts answered %d\n", st);
        std::exit(1);
      }
    }
    if (o.queries == 0) {
      sub_ = std::thread([this] { drain_subscription(srv_->http_port(), lines_); });
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  cayuga::serve::Server& server() { return *srv_; }
  Phase finish(uint64_t sent, Clock::time_point start, uint64_t retries) {
    while (srv_->engine().stats().events_in < sent)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const cayuga::api::Stats stats = srv_->engine().stats();
    Phase p{sent, std::chrono::duration<double>(Clock::now() - start).count(), retries,
            stats.outputs, stats.peak_instances};
    srv_->stop();
    if (sub_.joinable()) sub_.join();
    // (The pass-through query's stream also carries one line more than the events.)
    if (o_.queries == 0 && lines_ != sent + 1) {
      std::fprintf(stderr, "LOST OUTPUT: %llu lines for %llu events\n",
                   static_cast<unsigned long long>(lines_.load()),
                   static_cast<unsigned long long>(sent));
      p.lost = true;
    }
    return p;
  }

 private:
  const Options& o_;
  std::unique_ptr<cayuga::serve::Server> srv_;
  std::atomic<uint64_t> lines_{0};
  std::thread sub_;
};

Phase run_http(const Options& o, const Events& ev) {
  Bench bench(o, false);
  const uint16_t port = bench.server().http_port();
  // The walk cut into request bodies, which client k sends in turn from the k-th on.
  std::vector<std::string> bodies;
  for (size_t i = 0; i < ev.json.size(); i += o.batch) {
    std::string body;
    for (size_t k = i; k < std::min(i + o.batch, ev.json.size()); ++k) body += ev.json[k];
    bodies.push_back(std::move(body));
  }
  std::atomic<uint64_t> accepted{0}, retries{0};
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration<double>(o.seconds);
  std::vector<std::thread> threads;
  for (size_t k = 0; k < o.clients; ++k)
    threads.emplace_back([&, k] {
      net::io_context ioc;
      tcp::socket s(ioc);
      s.connect(local(port));
      beast::flat_buffer b;
      for (size_t next = k % bodies.size(); Clock::now() < deadline;) {
        const std::string& body = bodies[next];
        int st = post(s, b, "/v1/events", body);
        if (st == 200) {
          accepted += std::min(o.batch, ev.json.size() - next * o.batch);  // (its events)
          next = (next + o.clients) % bodies.size();
        } else if (st == 503) {
          ++retries;
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
      }
    });
  for (auto& t : threads) t.join();
  return bench.finish(accepted, start, retries);
}

Phase run_tcp(const Options& o, const Events& ev) {
  Bench bench(o, true);
  net::io_context ioc;
  tcp::socket s(ioc);
  s.connect(local(bench.server().ingest_port()));
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration<double>(o.seconds);
  uint64_t sent = 0;
  std::string chunk;
  char time[24];
  for (size_t i = 0, round = 0; Clock::now() < deadline;) {
    chunk.clear();
    for (int n = 0; n < 1000; ++n) {
      const int64_t t = ev.times[i] + static_cast<int64_t>(round) * ev.span;
      const std::string_view at(time, std::to_chars(time, time + sizeof time, t).ptr);
      chunk += ev.line_heads[i];
      chunk += at;
      chunk += ',';
      chunk += at;
      chunk += '\n';
      if (++i == ev.times.size()) i = 0, ++round;
    }
    net::write(s, net::buffer(chunk));
    sent += 1000;
  }
  s.shutdown(tcp::socket::shutdown_send);
  std::string rest;
  boost::system::error_code ec;
  net::read(s, net::dynamic_buffer(rest), ec);
  return bench.finish(sent, start, 0);
}

void print(const char* what, const Phase& p) {
  std::printf("%s %llu events in %.2f s = %.0f events/s, %llu outputs, %llu peak instances", what,
              static_cast<unsigned long long>(p.events), p.seconds, p.events / p.seconds,
              static_cast<unsigned long long>(p.outputs),
              static_cast<unsigned long long>(p.peak_instances));
  if (p.retries) std::printf(" (%llu 503s)", static_cast<unsigned long long>(p.retries));
  std::printf("\n");
  std::fflush(stdout);
}

// "" or what is wrong with the command line.
std::string parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "-h" || a == "--help") return "help";
    if (i + 1 >= argc) return std::string(a) + " needs a value";
    const std::string_view v = argv[++i];
    if (a == "--phase") {
      if (v != "http" && v != "tcp" && v != "both") return "--phase wants http, tcp or both";
      o.http = v != "tcp";
      o.tcp = v != "http";
      continue;
    }
    if (a == "--jit") {
      if (v == "on")
        o.jit = cayuga::api::JitMode::On;
      else if (v == "off")
        o.jit = cayuga::api::JitMode::Off;
      else if (v == "auto")
        o.jit = cayuga::api::JitMode::Auto;
      else
        return "--jit wants on, off or auto";
      continue;
    }
    size_t n = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    const bool zero_ok = a == "--queries" || a == "--threads";
    if (ec != std::errc() || end != v.data() + v.size() || (n == 0 && !zero_ok))
      return std::string(a) + " wants a " + (zero_ok ? "number" : "positive number") + ", not '" +
             std::string(v) + "'";
    if (a == "--seconds")
      o.seconds = static_cast<double>(n);
    else if (a == "--clients")
      o.clients = n;
    else if (a == "--batch")
      o.batch = n;
    else if (a == "--queries")
      o.queries = n;
    else if (a == "--symbols")
      o.symbols = n;
    else if (a == "--threads")
      o.threads = n;
    else
      return "unknown option " + std::string(a);
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (std::string err = parse(argc, argv, o); err == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  } else if (!err.empty()) {
    std::fprintf(stderr, "cayuga-serve-bench: %s (--help for usage)\n", err.c_str());
    return 2;
  }
  const Events ev = make_events(o);
  bool lost = false;
  if (o.http) {
    const Phase p = run_http(o, ev);
    char what[96];
    std::snprintf(what, sizeof what, "http  %zu clients x %zu-event batches:", o.clients, o.batch);
    print(what, p);
    lost |= p.lost;
  }
  if (o.tcp) {
    const Phase p = run_tcp(o, ev);
    print("tcp   1 connection, cayuga lines:  ", p);
    lost |= p.lost;
  }
  return lost ? 1 : 0;
}
