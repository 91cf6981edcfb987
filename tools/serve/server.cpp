// The service: HTTP endpoints, subscriber streams, TCP ingest, the engine thread and shutdown.
// See serve.h for the architecture and docs/service.md for the protocol.
// clang-format off
#include <utility>  // first: Boost 1.74's asio/awaitable.hpp uses std::exchange without it
// clang-format on
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "runtime/api/engine_impl.h"
#include "tools/serve/ingest.h"
#include "tools/serve/serve.h"

namespace cayuga::serve {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

namespace {

constexpr size_t kMaxListedErrors = 100;
constexpr size_t kMaxTcpLine = 1 << 20;

std::string json_str(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

std::string errors_json(const std::vector<LineError>& errors) {
  std::string out = "[";
  for (size_t i = 0; i < errors.size(); ++i) {
    if (i) out += ',';
    out += "{\"line\":" + std::to_string(errors[i].line) +
           ",\"message\":" + json_str(errors[i].message) + "}";
  }
  return out + "]";
}

bool token_matches(std::string_view given, std::string_view want) {
  if (given.size() != want.size()) return false;
  unsigned diff = 0;  // constant time in the token's length
  for (size_t i = 0; i < want.size(); ++i) diff |= static_cast<unsigned>(given[i] ^ want[i]);
  return diff == 0;
}

// A subscriber's bounded output buffer: filled on the engine thread, drained by its connection.
// The connection thread waits in poll() on both `wake_fd` and its socket, so it sees new output,
// the end of the stream and the client going away (which no write may reveal for a long time)
// alike.
struct Subscriber {
  Subscriber() : wake_fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~Subscriber() {
    if (wake_fd >= 0) ::close(wake_fd);
  }
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;
  // Wakes the connection thread (after `buf` or `closed` changed).
  void wake() {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(wake_fd, &one, sizeof one);
  }

  const int wake_fd;  // an eventfd; -1 if it could not be created
  std::mutex mu;
  std::string buf;
  bool closed = false;
  std::string reason;
  bool sse = true;
  size_t limit = 0;
  uint64_t rows = 0;
};

}  // namespace

struct Server::Impl {
  explicit Impl(ServeConfig c)
      : cfg(std::move(c)),
        engine(api::Options{.unit = cfg.unit, .jit = cfg.jit, .threads = cfg.threads}),
        core(engine.impl().get()),
        unit(api::detail::to_engine_unit(cfg.unit)),
        queue(cfg.queue_events, unit) {}

  ServeConfig cfg;
  api::Engine engine;
  EngineImpl* core;
  EngineUnit unit;
  EventQueue queue;

  net::io_context ioc;
  std::unique_ptr<tcp::acceptor> http_acc, ingest_acc;
  std::thread io_thread, engine_thread;
  uint16_t http_port = 0, ingest_port = 0;
  bool started = false, stopped = false;
  std::mutex stop_mu;
  std::atomic<bool> stopping{false};

  // Connections: fds for shutdown(), and counts to wait for.
  struct Conn {
    int fd;
    bool subscriber;
  };
  std::mutex conn_mu;
  std::condition_variable conn_cv;
  std::map<uint64_t, Conn> conns;
  uint64_t next_conn = 1;
  // Connection threads are never detached: their sockets belong to `ioc`, so every one must
  // have ended before `ioc` is destroyed. A running thread is in `conn_threads`; once it is
  // done with its socket and with *this it moves its own handle to `finished_threads`, which
  // the acceptor joins before starting the next one; stop() joins all that remain.
  std::map<uint64_t, std::thread> conn_threads;  // guarded by conn_mu
  std::vector<std::thread> finished_threads;     // guarded by conn_mu
  std::set<std::shared_ptr<Subscriber>> subscribers;  // guarded by conn_mu

  // Counters.
  std::atomic<uint64_t> http_requests{0}, busy_rejections{0}, bad_lines{0}, processed{0},
      late_in_queue{0}, subscribers_dropped{0}, ingest_connections{0}, auth_failures{0},
      heartbeats{0};

  std::string start();
  void stop();
  void accept_next(tcp::acceptor& acc, bool ingest);
  void run_connection(tcp::socket sock, uint64_t id, bool ingest);
  void http_session(tcp::socket& sock, uint64_t id);
  void ingest_session(tcp::socket& sock);
  // Parses `text` into `b` (parse_lines) and looks up its events' candidates in the engine's
  // index (EngineImpl::match_batch): both on the calling connection thread, so that the engine
  // thread only pushes.
  void parse(std::string_view text, uint64_t first_line, Batch& b, std::vector<LineError>& errors,
             uint64_t* error_count) {
    parse_lines(text, *core->snapshot(), unit, first_line, b, errors, kMaxListedErrors,
                error_count);
    core->match_batch(b.events, b.slots.data(), b.matched);
  }
  void subscribe_session(tcp::socket& sock, uint64_t id, const Request& req,
                         std::string_view stream);
  Response handle(const Request& req);
  Response json(http::status st, const Request& req, std::string body);
  bool authorized(const Request& req) const;
  void engine_loop();
  void join_finished_threads();
  std::string stats_json();
  std::string metrics_text();
  void set_subscriber(uint64_t id) {
    std::lock_guard lock(conn_mu);
    if (auto it = conns.find(id); it != conns.end()) it->second.subscriber = true;
    conn_cv.notify_all();
  }
};

// ---------------------------------------------------------------------------------------------
// Start and stop.

std::string Server::Impl::start() {
  boost::system::error_code ec;
  std::string host = cfg.host == "localhost" ? "127.0.0.1" : cfg.host;
  auto addr = net::ip::make_address(host, ec);
  if (ec) return "invalid listen address '" + cfg.host + "'";
  if (!addr.is_loopback() && cfg.token.empty())
    return "refusing to listen on non-loopback address " + cfg.host +
           " without a token (--token or CAYUGA_TOKEN)";
  for (const auto& path : cfg.script_files) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return "cannot read script " + path;
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    api::ScriptResult r = engine.add_script(text);
    if (!r.ok()) {
      std::string msg = "script " + path + " has errors:";
      for (const auto& e : r.errors) msg += "\n  " + path + ":" + e.to_string();
      return msg;
    }
  }
  auto open = [&](uint16_t port, std::unique_ptr<tcp::acceptor>& acc) -> std::string {
    acc = std::make_unique<tcp::acceptor>(ioc);
    tcp::endpoint ep(addr, port);
    acc->open(ep.protocol(), ec);
    if (!ec) acc->set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acc->bind(ep, ec);
    if (!ec) acc->listen(net::socket_base::max_listen_connections, ec);
    if (ec) return "cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message();
    return {};
  };
  if (std::string e = open(cfg.port, http_acc); !e.empty()) return e;
  http_port = http_acc->local_endpoint().port();
  if (cfg.ingest_port >= 0) {
    if (std::string e = open(static_cast<uint16_t>(cfg.ingest_port), ingest_acc); !e.empty())
      return e;
    ingest_port = ingest_acc->local_endpoint().port();
  }
  if (!cfg.port_file.empty()) {
    std::ofstream pf(cfg.port_file);
    pf << http_port << ' ' << ingest_port << '\n';
  }
  started = true;
  engine_thread = std::thread([this] { engine_loop(); });
  accept_next(*http_acc, false);
  if (ingest_acc) accept_next(*ingest_acc, true);
  io_thread = std::thread([this] { ioc.run(); });
  return {};
}

void Server::Impl::stop() {
  std::lock_guard stop_lock(stop_mu);
  if (!started || stopped) return;
  stopped = true;
  stopping = true;
  // 1. No new connections.
  net::post(ioc, [this] {
    boost::system::error_code ec;
    http_acc->close(ec);
    if (ingest_acc) ingest_acc->close(ec);
  });
  io_thread.join();
  // 2. End every reading connection; a request already read is still answered.
  {
    std::unique_lock lock(conn_mu);
    for (auto& [id, c] : conns)
      if (!c.subscriber) ::shutdown(c.fd, SHUT_RD);
    conn_cv.wait(lock, [&] {
      for (auto& [id, c] : conns)
        if (!c.subscriber) return false;
      return true;
    });
  }
  // 3. Drain the queue into the engine and close the epoch.
  queue.close();
  engine_thread.join();
  // 4. Flush and end the subscriber streams.
  std::unique_lock lock(conn_mu);
  for (const auto& s : subscribers) {
    std::lock_guard sl(s->mu);
    if (!s->closed) {
      s->closed = true;
      s->reason = "server shutting down";
    }
    s->wake();
  }
  // A subscriber that does not read blocks its connection thread in a write: after a grace
  // period, cut such connections so shutdown always ends.
  if (!conn_cv.wait_for(lock, std::chrono::seconds(5), [&] { return conns.empty(); }))
    for (auto& [id, c] : conns) ::shutdown(c.fd, SHUT_RDWR);
  conn_cv.wait(lock, [&] { return conns.empty(); });
  // 5. Join every connection thread (each has closed its socket by now, but may still be on
  // its way out), so none touches `ioc` or *this after stop() returns.
  std::vector<std::thread> threads = std::move(finished_threads);
  finished_threads.clear();
  for (auto& [id, t] : conn_threads) threads.push_back(std::move(t));
  conn_threads.clear();
  lock.unlock();
  for (auto& t : threads) t.join();
}

void Server::Impl::join_finished_threads() {
  std::vector<std::thread> done;
  {
    std::lock_guard lock(conn_mu);
    done.swap(finished_threads);
  }
  for (auto& t : done) t.join();  // each has released conn_mu for the last time: ends at once
}

void Server::Impl::accept_next(tcp::acceptor& acc, bool ingest) {
  acc.async_accept([this, &acc, ingest](boost::system::error_code ec, tcp::socket sock) {
    if (ec == net::error::operation_aborted || !acc.is_open()) return;
    if (!ec) {
      join_finished_threads();
      std::unique_lock lock(conn_mu);
      if (conns.size() >= cfg.max_connections || stopping) {
        lock.unlock();
        if (!ingest) {
          static const std::string busy =
              "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
              "Retry-After: 1\r\nConnection: close\r\nContent-Length: 35\r\n\r\n"
              "{\"error\":\"too many connections\"}\r\n";
          boost::system::error_code wec;
          net::write(sock, net::buffer(busy), wec);
        }
        ++busy_rejections;
      } else {
        const uint64_t id = next_conn++;
        conns[id] = Conn{sock.native_handle(), false};
        // Started under conn_mu, so the handle is stored before the thread can look for it.
        conn_threads.emplace(id, std::thread([this, s = std::move(sock), id, ingest]() mutable {
          run_connection(std::move(s), id, ingest);
          std::lock_guard done_lock(conn_mu);
          if (auto it = conn_threads.find(id); it != conn_threads.end()) {
            finished_threads.push_back(std::move(it->second));
            conn_threads.erase(it);
          }
        }));
      }
    }
    accept_next(acc, ingest);
  });
}

void Server::Impl::run_connection(tcp::socket sock, uint64_t id, bool ingest) {
  boost::system::error_code ec;
  sock.set_option(tcp::no_delay(true), ec);
  if (ingest)
    ingest_session(sock);
  else
    http_session(sock, id);
  // Deregister before closing, so stop() never shuts down a reused descriptor.
  {
    std::lock_guard lock(conn_mu);
    conns.erase(id);
    conn_cv.notify_all();
  }
  sock.shutdown(tcp::socket::shutdown_both, ec);
  sock.close(ec);
}

// ---------------------------------------------------------------------------------------------
// The engine thread.

void Server::Impl::engine_loop() {
  std::vector<Batch> batches;
  int64_t heartbeat = 0;
  auto last_beat = std::chrono::steady_clock::now();
  const auto period = std::chrono::milliseconds(std::max(cfg.heartbeat_ms, 1));
  while (queue.pop_all(batches, period, &heartbeat)) {
    for (Batch& b : batches) {
      if (!b.events.empty()) {
        uint64_t late = 0;
        core->push_slot_batch(b.events, b.slots.data(), &late, &b.matched);
        late_in_queue += late;
      }
      if (b.advance != INT64_MIN) core->advance_to(b.advance);
      processed += b.size();
      queue.done(b.size());
    }
    const auto now = std::chrono::steady_clock::now();
    const bool beat = cfg.heartbeat == HeartbeatMode::Always ||
                      (cfg.heartbeat == HeartbeatMode::Arrival && queue.saw_arrival());
    if (beat && cfg.heartbeat_ms > 0 && now - last_beat >= period) {
      core->advance_to(heartbeat);
      ++heartbeats;
      last_beat = now;
    }
  }
  core->finish();
}

// ---------------------------------------------------------------------------------------------
// HTTP.

bool Server::Impl::authorized(const Request& req) const {
  if (cfg.token.empty()) return true;
  auto it = req.find(http::field::authorization);
  if (it == req.end()) return false;
  std::string_view v(it->value().data(), it->value().size());
  constexpr std::string_view kBearer = "Bearer ";
  if (v.substr(0, kBearer.size()) != kBearer) return false;
  return token_matches(v.substr(kBearer.size()), cfg.token);
}

Response Server::Impl::json(http::status st, const Request& req, std::string body) {
  Response res{st, req.version()};
  res.set(http::field::server, "cayuga");
  res.set(http::field::content_type, "application/json");
  res.body() = std::move(body) + "\n";
  res.prepare_payload();
  return res;
}

void Server::Impl::http_session(tcp::socket& sock, uint64_t id) {
  beast::flat_buffer buffer;
  boost::system::error_code ec;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(cfg.max_body);
    parser.header_limit(64 * 1024);
    http::read_header(sock, buffer, parser, ec);
    auto fail_and_close = [&](http::status st, std::string body) {
      Request dummy;
      Response res = json(st, parser.is_header_done() ? parser.get() : dummy, std::move(body));
      res.keep_alive(false);
      http::write(sock, res, ec);
      // Read what the client still sends, so it sees the response rather than a reset.
      sock.shutdown(tcp::socket::shutdown_send, ec);
      char sink[65536];
      size_t drained = 0;
      while (drained < 2 * cfg.max_body + (1 << 20)) {
        size_t n = sock.read_some(net::buffer(sink), ec);
        if (ec) break;
        drained += n;
      }
    };
    if (ec == http::error::body_limit) {
      ++http_requests;
      fail_and_close(
          http::status::payload_too_large,
          "{\"error\":\"request body larger than " + std::to_string(cfg.max_body) + " bytes\"}");
      return;
    }
    if (ec) {
      if (ec != http::error::end_of_stream && ec != net::error::eof &&
          ec != net::error::connection_reset && ec != net::error::not_connected) {
        ++http_requests;
        fail_and_close(http::status::bad_request,
                       "{\"error\":" + json_str("bad request: " + ec.message()) + "}");
      }
      return;
    }
    ++http_requests;
    const Request& head = parser.get();
    if (!authorized(head)) {
      ++auth_failures;
      fail_and_close(http::status::unauthorized, "{\"error\":\"missing or wrong bearer token\"}");
      return;
    }
    if (auto it = head.find(http::field::expect);
        it != head.end() && beast::iequals(it->value(), "100-continue")) {
      static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      net::write(sock, net::buffer(kContinue), ec);
      if (ec) return;
    }
    http::read(sock, buffer, parser, ec);
    if (ec == http::error::body_limit) {
      fail_and_close(
          http::status::payload_too_large,
          "{\"error\":\"request body larger than " + std::to_string(cfg.max_body) + " bytes\"}");
      return;
    }
    if (ec) return;  // broken connection mid-body: nothing of it was accepted
    Request req = parser.release();
    std::string_view target(req.target().data(), req.target().size());
    constexpr std::string_view kSub = "/v1/subscribe/";
    if (req.method() == http::verb::get && target.substr(0, kSub.size()) == kSub) {
      std::string_view stream = target.substr(kSub.size());
      stream = stream.substr(0, stream.find('?'));
      subscribe_session(sock, id, req, stream);
      return;
    }
    Response res = handle(req);
    res.keep_alive(req.keep_alive() && !stopping);
    http::write(sock, res, ec);
    if (ec || !res.keep_alive()) return;
  }
}

Response Server::Impl::handle(const Request& req) {
  std::string_view target(req.target().data(), req.target().size());
  std::string_view path = target.substr(0, target.find('?'));
  std::string_view query =
      target.find('?') == std::string_view::npos ? "" : target.substr(target.find('?') + 1);
  const http::verb m = req.method();
  auto not_allowed = [&] {
    return json(http::status::method_not_allowed, req, "{\"error\":\"method not allowed\"}");
  };

  if (path == "/health") {
    if (m != http::verb::get) return not_allowed();
    return stopping ? json(http::status::service_unavailable, req, "{\"status\":\"stopping\"}")
                    : json(http::status::ok, req, "{\"status\":\"ok\"}");
  }
  if (path == "/v1/stats") {
    if (m != http::verb::get) return not_allowed();
    return json(http::status::ok, req, stats_json());
  }
  if (path == "/metrics") {
    if (m != http::verb::get) return not_allowed();
    Response res{http::status::ok, req.version()};
    res.set(http::field::content_type, "text/plain; version=0.0.4");
    res.body() = metrics_text();
    res.prepare_payload();
    return res;
  }
  if (path == "/v1/scripts") {
    if (m != http::verb::post) return not_allowed();
    api::ScriptResult r = engine.add_script(req.body());
    if (!r.ok()) {
      std::string out = "{\"errors\":[";
      for (size_t i = 0; i < r.errors.size(); ++i) {
        const auto& e = r.errors[i];
        if (i) out += ',';
        out += "{\"line\":" + std::to_string(e.line) + ",\"column\":" + std::to_string(e.column) +
               ",\"message\":" + json_str(e.message) + "}";
      }
      return json(http::status::bad_request, req, out + "]}");
    }
    std::string out = "{\"queries\":[";
    for (size_t i = 0; i < r.queries.size(); ++i) {
      if (i) out += ',';
      out += "{\"id\":" + std::to_string(r.queries[i].id) +
             ",\"stream\":" + json_str(r.queries[i].stream) + "}";
    }
    return json(http::status::ok, req, out + "]}");
  }
  if (path == "/v1/queries") {
    if (m != http::verb::get) return not_allowed();
    std::string out = "{\"queries\":[";
    bool first = true;
    for (const auto& q : engine.queries()) {
      if (!first) out += ',';
      first = false;
      out += "{\"id\":" + std::to_string(q.id) + ",\"stream\":" + json_str(q.stream) +
             ",\"removed\":" + (q.removed ? "true" : "false") + "}";
    }
    return json(http::status::ok, req, out + "]}");
  }
  constexpr std::string_view kQuery = "/v1/queries/";
  if (path.substr(0, kQuery.size()) == kQuery) {
    if (m != http::verb::delete_) return not_allowed();
    uint32_t id = 0;
    std::string_view num = path.substr(kQuery.size());
    auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), id);
    if (ec != std::errc() || p != num.data() + num.size())
      return json(http::status::not_found, req, "{\"error\":\"no such query\"}");
    api::Status s = engine.remove_query(id);
    if (!s.ok())
      return json(http::status::not_found, req, "{\"error\":" + json_str(s.message) + "}");
    return json(http::status::ok, req, "{\"removed\":" + std::to_string(id) + "}");
  }
  if (path == "/v1/streams") {
    if (m != http::verb::get) return not_allowed();
    std::string out = "{\"streams\":[";
    bool first = true;
    for (const auto& s : engine.streams()) {
      if (!first) out += ',';
      first = false;
      out += "{\"name\":" + json_str(s.name) +
             ",\"kind\":" + (s.kind == api::StreamKind::Input ? "\"input\"" : "\"published\"") +
             ",\"fields\":[";
      for (size_t i = 0; i < s.fields.size(); ++i) {
        if (i) out += ',';
        out += "{\"name\":" + json_str(s.fields[i].name) + ",\"type\":\"" +
               api::to_string(s.fields[i].type) + "\"}";
      }
      out += "]}";
    }
    return json(http::status::ok, req, out + "]}");
  }
  if (path == "/v1/events") {
    if (m != http::verb::post) return not_allowed();
    if (stopping)
      return json(http::status::service_unavailable, req, "{\"error\":\"server shutting down\"}");
    Batch b;
    std::vector<LineError> errors;
    uint64_t error_count = 0;
    parse(req.body(), 1, b, errors, &error_count);
    bad_lines += error_count;
    const size_t n = b.size();
    if (n > 0 && !queue.try_push(std::move(b))) {
      ++busy_rejections;
      Response res = json(http::status::service_unavailable, req,
                          "{\"error\":\"event queue full, retry later\",\"accepted\":0}");
      res.set(http::field::retry_after, "1");
      return res;
    }
    if (error_count > 0)
      return json(http::status::bad_request, req,
                  "{\"accepted\":" + std::to_string(n) + ",\"rejected\":" +
                      std::to_string(error_count) + ",\"errors\":" + errors_json(errors) + "}");
    return json(http::status::ok, req, "{\"accepted\":" + std::to_string(n) + "}");
  }
  if (path == "/v1/advance") {
    if (m != http::verb::post) return not_allowed();
    Batch b;
    b.advance = now_units(unit);
    if (query.substr(0, 2) == "t=") {
      std::string_view num = query.substr(2);
      num = num.substr(0, num.find('&'));
      auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), b.advance);
      if (ec != std::errc() || p != num.data() + num.size())
        return json(http::status::bad_request, req, "{\"error\":\"t must be an integer\"}");
    }
    const int64_t t = b.advance;
    if (!queue.try_push(std::move(b)))
      return json(http::status::service_unavailable, req, "{\"error\":\"server shutting down\"}");
    return json(http::status::ok, req, "{\"advance\":" + std::to_string(t) + "}");
  }
  return json(http::status::not_found, req, "{\"error\":\"no such endpoint\"}");
}

void Server::Impl::subscribe_session(tcp::socket& sock, uint64_t id, const Request& req,
                                     std::string_view stream) {
  boost::system::error_code ec;
  auto sub = std::make_shared<Subscriber>();
  auto accept = req.find(http::field::accept);
  sub->sse = !(accept != req.end() &&
               accept->value().find("application/x-ndjson") != beast::string_view::npos);
  sub->limit = cfg.subscriber_buffer;
  if (stopping || sub->wake_fd < 0) {
    Response res = json(http::status::service_unavailable, req,
                        stopping ? "{\"error\":\"shutting down\"}"
                                 : "{\"error\":\"cannot subscribe: out of descriptors\"}");
    res.keep_alive(false);
    http::write(sock, res, ec);
    return;
  }
  EngineImpl* c = core;
  std::atomic<uint64_t>* dropped = &subscribers_dropped;
  api::Result<uint64_t> r =
      core->subscribe_rows(stream, [sub, c, dropped](uint32_t s, const RowView& row) {
        std::lock_guard lock(sub->mu);
        if (sub->closed) return;
        const size_t before = sub->buf.size();
        if (sub->sse) sub->buf += "data: ";
        append_json_row(sub->buf, c->stream_name(s), c->stream_schema(s), row);
        sub->buf += sub->sse ? "\n\n" : "\n";
        if (sub->buf.size() > sub->limit) {
          sub->buf.resize(before);
          sub->closed = true;
          sub->reason = "slow subscriber: more than " + std::to_string(sub->limit) +
                        " bytes waiting to be sent";
          ++*dropped;
        } else {
          ++sub->rows;
        }
        if (before == 0 || sub->closed) sub->wake();  // else the reader has not drained yet
      });
  if (!r.ok()) {
    Response res =
        json(http::status::not_found, req, "{\"error\":" + json_str(r.status.message) + "}");
    res.keep_alive(false);
    http::write(sock, res, ec);
    return;
  }
  {
    std::lock_guard lock(conn_mu);
    subscribers.insert(sub);
  }
  set_subscriber(id);

  http::response<http::empty_body> res{http::status::ok, req.version()};
  res.set(http::field::server, "cayuga");
  res.set(http::field::content_type, sub->sse ? "text/event-stream" : "application/x-ndjson");
  res.set(http::field::cache_control, "no-cache");
  res.chunked(true);
  res.keep_alive(false);
  http::response_serializer<http::empty_body> sr{res};
  http::write_header(sock, sr, ec);
  if (!ec && sub->sse) {
    std::string hello = ": subscribed to " + std::string(stream) + "\n\n";
    net::write(sock, http::make_chunk(net::buffer(hello)), ec);
  }
  std::string out;
  while (!ec) {
    bool closed;
    std::string reason;
    {
      std::lock_guard lock(sub->mu);
      out.swap(sub->buf);
      sub->buf.clear();
      closed = sub->closed;
      reason = sub->reason;
    }
    if (out.empty() && !closed) {
      // Wait for output, the end, the client going away, or the keep-alive period. A wake that
      // comes after the check above leaves the eventfd readable, so none is lost.
      pollfd fds[2] = {{sub->wake_fd, POLLIN, 0}, {sock.native_handle(), POLLIN | POLLRDHUP, 0}};
      const int n = ::poll(fds, 2, 15000);
      if (n < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (fds[0].revents & POLLIN) {
        uint64_t count;
        [[maybe_unused]] ssize_t r = ::read(sub->wake_fd, &count, sizeof count);
      }
      if (fds[1].revents) {
        // The client sends nothing after its request: end of stream or an error means it is
        // gone. Stray bytes are discarded.
        char sink[4096];
        const ssize_t got = ::recv(sock.native_handle(), sink, sizeof sink, MSG_DONTWAIT);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
          break;
      }
      if (n == 0 && sub->sse) {
        static const std::string kKeepAlive = ": keep-alive\n\n";
        net::write(sock, http::make_chunk(net::buffer(kKeepAlive)), ec);
      }
      continue;
    }
    if (!out.empty()) {
      net::write(sock, http::make_chunk(net::buffer(out)), ec);
      out.clear();
    }
    if (closed && !ec) {
      std::string end = sub->sse ? "event: end\ndata: {\"reason\":" + json_str(reason) + "}\n\n"
                                 : "{\"end\":" + json_str(reason) + "}\n";
      net::write(sock, http::make_chunk(net::buffer(end)), ec);
      if (!ec) net::write(sock, http::make_chunk_last(), ec);
      break;
    }
  }
  core->unsubscribe(r.value);
  std::lock_guard lock(conn_mu);
  subscribers.erase(sub);
}

// ---------------------------------------------------------------------------------------------
// Raw TCP ingest: lines in, per-line errors out ({"line":N,"error":"..."}).

void Server::Impl::ingest_session(tcp::socket& sock) {
  ++ingest_connections;
  boost::system::error_code ec;
  std::string buf;
  std::vector<char> tmp(1 << 16);
  uint64_t line = 1;
  bool authed = cfg.token.empty();
  auto reply = [&](const std::string& s) {
    boost::system::error_code wec;
    net::write(sock, net::buffer(s), wec);
  };
  for (;;) {
    size_t n = sock.read_some(net::buffer(tmp), ec);
    buf.append(tmp.data(), n);
    const bool eof = static_cast<bool>(ec);
    size_t upto = eof ? buf.size() : buf.rfind('\n');
    upto = upto == std::string::npos ? 0 : (eof ? upto : upto + 1);
    if (!authed && upto > 0) {
      size_t nl = buf.find('\n');
      std::string_view first = std::string_view(buf).substr(0, std::min(nl, buf.size()));
      if (!first.empty() && first.back() == '\r') first.remove_suffix(1);
      constexpr std::string_view kAuth = "AUTH ";
      if (first.substr(0, kAuth.size()) != kAuth ||
          !token_matches(first.substr(kAuth.size()), cfg.token)) {
        ++auth_failures;
        reply("{\"line\":1,\"error\":\"the first line must be AUTH <token>\"}\n");
        return;
      }
      authed = true;
      const size_t cut = std::min(nl == std::string::npos ? buf.size() : nl + 1, buf.size());
      buf.erase(0, cut);
      upto -= cut;
      ++line;
    }
    if (upto > 0) {
      std::string_view chunk = std::string_view(buf).substr(0, upto);
      Batch b;
      std::vector<LineError> errors;
      uint64_t error_count = 0;
      parse(chunk, line, b, errors, &error_count);
      bad_lines += error_count;
      line += static_cast<uint64_t>(std::count(chunk.begin(), chunk.end(), '\n'));
      if (b.size() > 0 && !queue.push_wait(std::move(b))) return;  // shutting down
      if (!errors.empty()) {
        std::string out;
        for (const auto& e : errors)
          out +=
              "{\"line\":" + std::to_string(e.line) + ",\"error\":" + json_str(e.message) + "}\n";
        reply(out);
      }
      buf.erase(0, upto);
    }
    if (buf.size() > kMaxTcpLine) {
      reply("{\"line\":" + std::to_string(line) + ",\"error\":\"line longer than " +
            std::to_string(kMaxTcpLine) + " bytes\"}\n");
      return;
    }
    if (eof) return;
  }
}

// ---------------------------------------------------------------------------------------------
// Statistics.

std::string Server::Impl::stats_json() {
  api::Stats s = engine.stats();
  size_t subs;
  {
    std::lock_guard lock(conn_mu);
    subs = subscribers.size();
  }
  auto u = [](uint64_t v) { return std::to_string(v); };
  return std::string("{") + "\"events_accepted\":" + u(queue.accepted()) +
         ",\"events_processed\":" + u(processed) + ",\"events_in\":" + u(s.events_in) +
         ",\"late_events\":" + u(s.late_events) + ",\"bad_lines\":" + u(bad_lines) +
         ",\"outputs\":" + u(s.outputs) + ",\"epochs\":" + u(s.epochs) +
         ",\"instances\":" + u(s.instances) + ",\"peak_instances\":" + u(s.peak_instances) +
         ",\"expired\":" + u(s.expired) + ",\"div_by_zero\":" + u(s.div_by_zero) +
         ",\"queries\":" + u(s.queries) + ",\"removed_queries\":" + u(s.removed_queries) +
         ",\"memory_bytes\":" + u(s.memory_bytes) +
         ",\"current_time\":" + std::to_string(s.current_time) +
         ",\"queue_depth\":" + u(queue.depth()) + ",\"queue_capacity\":" + u(queue.capacity()) +
         ",\"subscribers\":" + u(subs) + ",\"subscribers_dropped\":" + u(subscribers_dropped) +
         ",\"busy_rejections\":" + u(busy_rejections) + ",\"http_requests\":" + u(http_requests) +
         ",\"ingest_connections\":" + u(ingest_connections) +
         ",\"auth_failures\":" + u(auth_failures) + ",\"heartbeats\":" + u(heartbeats) + "}";
}

std::string Server::Impl::metrics_text() {
  api::Stats s = engine.stats();
  size_t subs;
  {
    std::lock_guard lock(conn_mu);
    subs = subscribers.size();
  }
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, double v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
           name + " ";
    append_double(out, v);
    out += "\n";
  };
  auto d = [](uint64_t v) { return static_cast<double>(v); };
  metric("cayuga_events_accepted_total", "counter", "Events accepted into the queue.",
         d(queue.accepted()));
  metric("cayuga_events_processed_total", "counter", "Events handed to the engine.", d(processed));
  metric("cayuga_late_events_total", "counter", "Events dropped as late.", d(s.late_events));
  metric("cayuga_bad_lines_total", "counter", "Input lines rejected as malformed.", d(bad_lines));
  metric("cayuga_outputs_total", "counter", "Rows published to subscribers.", d(s.outputs));
  metric("cayuga_epochs_total", "counter", "Epochs closed or opened.", d(s.epochs));
  metric("cayuga_instances", "gauge", "Live partial matches.", d(s.instances));
  metric("cayuga_memory_bytes", "gauge", "Estimated instance memory.", d(s.memory_bytes));
  metric("cayuga_queries", "gauge", "Live queries.", d(s.queries));
  metric("cayuga_queue_depth", "gauge", "Events waiting for the engine.", d(queue.depth()));
  metric("cayuga_queue_capacity", "gauge", "Capacity of the event queue.", d(queue.capacity()));
  metric("cayuga_subscribers", "gauge", "Open subscriber streams.", d(subs));
  metric("cayuga_subscribers_dropped_total", "counter", "Subscribers disconnected as too slow.",
         d(subscribers_dropped));
  metric("cayuga_busy_rejections_total", "counter", "Requests refused with 503.",
         d(busy_rejections));
  metric("cayuga_http_requests_total", "counter", "HTTP requests read.", d(http_requests));
  metric("cayuga_auth_failures_total", "counter", "Requests with a missing or wrong token.",
         d(auth_failures));
  return out;
}

// ---------------------------------------------------------------------------------------------

Server::Server(ServeConfig cfg) : impl_(std::make_unique<Impl>(std::move(cfg))) {}
Server::~Server() {
  impl_->stop();
}
std::string Server::start() {
  return impl_->start();
}
uint16_t Server::http_port() const {
  return impl_->http_port;
}
uint16_t Server::ingest_port() const {
  return impl_->ingest_port;
}
void Server::stop() {
  impl_->stop();
}
api::Engine& Server::engine() {
  return impl_->engine;
}

}  // namespace cayuga::serve
