// The service (tools/serve) over real loopback sockets on ephemeral ports: the query / event /
// subscribe cycle, bad input, limits, auth, broken connections, backpressure, slow
// subscribers, TCP ingest, and a bounded load test that checks nothing accepted is lost.
// clang-format off
#include <utility>  // first: Boost 1.74's asio/awaitable.hpp uses std::exchange without it
// clang-format on
#include "tools/serve/serve.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <thread>

#include "tools/serve/ingest.h"

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using cayuga::serve::ServeConfig;
using cayuga::serve::Server;

constexpr const char* kScript =
    "CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\n"
    "SELECT * FROM Stock NEXT{$1.Name = $2.Name} Stock PUBLISH T5;\n"
    "SELECT * FROM Stock PUBLISH All;\n";

struct Reply {
  int status = 0;
  std::string body;
  std::string retry_after;
};

// One HTTP request on a fresh connection.
Reply request(uint16_t port, http::verb method, const std::string& target,
              const std::string& body = {}, const std::string& token = {}) {
  net::io_context ioc;
  tcp::socket sock(ioc);
  sock.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, "127.0.0.1");
  if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  req.body() = body;
  req.prepare_payload();
  http::write(sock, req);
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 << 20);
  http::read(sock, buf, parser);
  Reply r;
  r.status = parser.get().result_int();
  r.body = parser.get().body();
  if (auto it = parser.get().find(http::field::retry_after); it != parser.get().end())
    r.retry_after = std::string(it->value());
  return r;
}

Reply post(uint16_t port, const std::string& target, const std::string& body,
           const std::string& token = {}) {
  return request(port, http::verb::post, target, body, token);
}
Reply get(uint16_t port, const std::string& target, const std::string& token = {}) {
  return request(port, http::verb::get, target, {}, token);
}

// A streaming subscription read line by line (application/x-ndjson).
class Subscription {
 public:
  Subscription(uint16_t port, const std::string& stream, int rcvbuf = 0) : sock_(ioc_) {
    sock_.open(tcp::v4());
    if (rcvbuf) sock_.set_option(net::socket_base::receive_buffer_size(rcvbuf));
    sock_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    http::request<http::empty_body> req{http::verb::get, "/v1/subscribe/" + stream, 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::accept, "application/x-ndjson");
    http::write(sock_, req);
    parser_.body_limit(boost::none);
    http::read_header(sock_, buf_, parser_);
    status = parser_.get().result_int();
  }
  // The next line of the stream, or "" at its end.
  std::string next_line() {
    for (;;) {
      if (size_t nl = pending_.find('\n'); nl != std::string::npos) {
        std::string line = pending_.substr(0, nl);
        pending_.erase(0, nl + 1);
        return line;
      }
      if (done_) return {};
      char chunk[65536];
      parser_.get().body().data = chunk;
      parser_.get().body().size = sizeof chunk;
      boost::system::error_code ec;
      http::read_some(sock_, buf_, parser_, ec);
      if (ec == http::error::need_buffer) ec = {};
      pending_.append(chunk, sizeof chunk - parser_.get().body().size);
      if (ec || parser_.is_done()) done_ = true;
    }
  }
  void close() {
    boost::system::error_code ec;
    sock_.close(ec);
  }
  int status = 0;

 private:
  net::io_context ioc_;
  tcp::socket sock_;
  beast::flat_buffer buf_;
  http::response_parser<http::buffer_body> parser_;
  std::string pending_;
  bool done_ = false;
};

std::string stock_line(const std::string& name, double price, int64_t volume, int64_t t = -1) {
  std::string s = "{\"stream\":\"Stock\",";
  if (t >= 0) s += "\"t\":" + std::to_string(t) + ",";
  return s + "\"Name\":\"" + name + "\",\"Price\":" + std::to_string(price) +
         ",\"Volume\":" + std::to_string(volume) + "}\n";
}

uint64_t stat(uint16_t port, const std::string& key) {
  std::string body = get(port, "/v1/stats").body;
  size_t p = body.find("\"" + key + "\":");
  if (p == std::string::npos) return UINT64_MAX;
  return std::stoull(body.substr(p + key.size() + 3));
}

std::unique_ptr<Server> start(ServeConfig cfg = {}) {
  cfg.port = 0;
  auto s = std::make_unique<Server>(cfg);
  std::string err = s->start();
  EXPECT_EQ(err, "");
  return s;
}

// Scripts in, events in, rows out, a query removed; with `threads` engine workers.
void query_event_subscribe_cycle(unsigned threads) {
  ServeConfig cfg;
  cfg.threads = threads;
  auto srv = start(cfg);
  if (threads != 0) {
    EXPECT_EQ(srv->engine().options().threads, threads);
  }
  const uint16_t port = srv->http_port();
  EXPECT_EQ(get(port, "/health").body, "{\"status\":\"ok\"}\n");
  Reply r = post(port, "/v1/scripts", kScript);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{\"queries\":[{\"id\":1,\"stream\":\"T5\"},{\"id\":2,\"stream\":\"All\"}]}\n");

  Subscription sub(port, "T5");
  ASSERT_EQ(sub.status, 200);
  r = post(port, "/v1/events",
           stock_line("IBM", 10, 1, 1) + stock_line("MSFT", 20, 1, 2) + "IBM,11,1,Stock,3,3\n" +
               stock_line("IBM", 12, 1, 3) + stock_line("MSFT", 21, 1, 4));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{\"accepted\":5}\n");
  EXPECT_EQ(
      sub.next_line(),
      R"({"stream":"T5","t0":1,"t1":3,"Name_1":"IBM","Price_1":10,"Volume_1":1,"Name":"IBM","Price":11,"Volume":1})");
  EXPECT_EQ(
      sub.next_line(),
      R"({"stream":"T5","t0":1,"t1":3,"Name_1":"IBM","Price_1":10,"Volume_1":1,"Name":"IBM","Price":12,"Volume":1})");
  EXPECT_EQ(
      sub.next_line(),
      R"({"stream":"T5","t0":2,"t1":4,"Name_1":"MSFT","Price_1":20,"Volume_1":1,"Name":"MSFT","Price":21,"Volume":1})");

  EXPECT_EQ(get(port, "/v1/queries").body,
            "{\"queries\":[{\"id\":1,\"stream\":\"T5\",\"removed\":false},{\"id\":2,\"stream\":"
            "\"All\",\"removed\":false}]}\n");
  EXPECT_EQ(request(port, http::verb::delete_, "/v1/queries/1").body, "{\"removed\":1}\n");
  EXPECT_EQ(request(port, http::verb::delete_, "/v1/queries/1").status, 404);
  EXPECT_EQ(request(port, http::verb::delete_, "/v1/queries/x").status, 404);
  EXPECT_NE(get(port, "/v1/queries").body.find("\"removed\":true"), std::string::npos);
  // A removed query delivers nothing more; other queries go on.
  Subscription all(port, "All");
  EXPECT_EQ(post(port, "/v1/events", stock_line("IBM", 13, 1, 5)).status, 200);
  EXPECT_NE(all.next_line().find("\"t1\":5"), std::string::npos);
  EXPECT_EQ(stat(port, "outputs"), 9u);  // 3 T5 rows, 6 All rows
  srv->stop();
  EXPECT_EQ(sub.next_line(), R"({"end":"server shutting down"})");
  EXPECT_EQ(sub.next_line(), "");
}

TEST(Serve, QueryEventSubscribeCycle) {
  query_event_subscribe_cycle(0);
}

// `cayuga serve --threads 4`: the workers are there and the rows are the same.
TEST(Serve, QueryEventSubscribeCycleWithFourThreads) {
  query_event_subscribe_cycle(4);
}

TEST(Serve, BadInputIsRejectedPerLine) {
  ServeConfig cfg;
  cfg.max_body = 1 << 20;
  auto srv = start(cfg);
  const uint16_t port = srv->http_port();
  ASSERT_EQ(post(port, "/v1/scripts", kScript).status, 200);
  Reply r =
      post(port, "/v1/events",
           stock_line("A", 1, 1, 1) + "{not json\n" +
               "{\"stream\":\"Stock\",\"t\":1,\"Name\":\"A\",\"Price\":\"x\",\"Volume\":1}\n" +
               "\n" + "{\"stream\":\"Nope\",\"t\":1}\n" +
               "{\"stream\":\"Stock\",\"t\":1,\"Name\":\"A\",\"Price\":1,\"Volume\":1.5}\n" +
               "A,1,1,Stock\n" + stock_line("B", 2, 1, 2));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("\"accepted\":2,\"rejected\":5"), std::string::npos) << r.body;
  for (int line : {2, 3, 5, 6, 7})
    EXPECT_NE(r.body.find("{\"line\":" + std::to_string(line) + ","), std::string::npos)
        << line << r.body;
  EXPECT_NE(r.body.find("unknown stream 'Nope'"), std::string::npos);

  // Script errors: line and column.
  r = post(port, "/v1/scripts", "SELECT *\nFROM FILTER{Prize > 1}(Stock);");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("{\"errors\":[{\"line\":2,\"column\":"), std::string::npos) << r.body;

  // Oversized body: 413, and the server keeps serving.
  r = post(port, "/v1/events", std::string((1 << 20) + 10, ' '));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(get(port, "/nope").status, 404);
  EXPECT_EQ(get(port, "/v1/events").status, 405);
  EXPECT_EQ(get(port, "/v1/subscribe/Nope").status, 404);
  EXPECT_EQ(get(port, "/v1/subscribe/Stock").status, 404);  // input streams are not published
  EXPECT_EQ(stat(port, "bad_lines"), 5u);
  EXPECT_EQ(stat(port, "events_accepted"), 2u);
}

TEST(Serve, OversizedDefaultLimit) {
  auto srv = start();
  std::string big(17 << 20, '\n');
  EXPECT_EQ(post(srv->http_port(), "/v1/events", big).status, 413);
  EXPECT_EQ(get(srv->http_port(), "/health").status, 200);
}

TEST(Serve, Auth) {
  ServeConfig cfg;
  cfg.token = "s3cret";
  cfg.ingest_port = 0;
  auto srv = start(cfg);
  const uint16_t port = srv->http_port();
  EXPECT_EQ(get(port, "/health").status, 401);
  EXPECT_EQ(get(port, "/health", "wrong").status, 401);
  EXPECT_EQ(get(port, "/metrics").status, 401);
  EXPECT_EQ(post(port, "/v1/scripts", kScript).status, 401);
  EXPECT_EQ(get(port, "/health", "s3cret").status, 200);
  EXPECT_EQ(post(port, "/v1/scripts", kScript, "s3cret").status, 200);
  EXPECT_EQ(get(port, "/v1/stats", "s3cret").status, 200);

  // TCP ingest: the first line must be AUTH <token>.
  net::io_context ioc;
  tcp::socket bad(ioc);
  bad.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), srv->ingest_port()));
  net::write(bad, net::buffer(std::string("A,1,1,Stock,1,1\n")));
  std::string reply;
  boost::system::error_code ec;
  net::read(bad, net::dynamic_buffer(reply), ec);
  EXPECT_NE(reply.find("AUTH"), std::string::npos);

  // Non-loopback without a token: refused.
  ServeConfig open;
  open.host = "0.0.0.0";
  open.port = 0;
  Server s(open);
  EXPECT_NE(s.start().find("without a token"), std::string::npos);
}

TEST(Serve, BrokenConnections) {
  auto srv = start();
  const uint16_t port = srv->http_port();
  ASSERT_EQ(post(port, "/v1/scripts", kScript).status, 200);
  net::io_context ioc;
  {  // Headers promise a body that never comes.
    tcp::socket s(ioc);
    s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    net::write(s, net::buffer(std::string("POST /v1/events HTTP/1.1\r\nHost: x\r\n"
                                          "Content-Length: 1000\r\n\r\n") +
                              stock_line("A", 1, 1, 1)));
  }
  {  // Half a request line.
    tcp::socket s(ioc);
    s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    net::write(s, net::buffer(std::string("GET /heal")));
  }
  {  // Garbage.
    tcp::socket s(ioc);
    s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    net::write(s, net::buffer(std::string("\x01\x02 nonsense\r\n\r\n")));
    std::string reply;
    boost::system::error_code ec;
    net::read(s, net::dynamic_buffer(reply), ec);
    EXPECT_NE(reply.find("400"), std::string::npos);
  }
  {  // A subscriber that goes away.
    Subscription sub(port, "All");
    sub.close();
  }
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(post(port, "/v1/events", stock_line("A", 1, 1, i)).status, 200);
  for (int i = 0; i < 100 && stat(port, "subscribers") != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(stat(port, "subscribers"), 0u);
  EXPECT_EQ(stat(port, "events_accepted"), 5u);  // nothing of the broken request
  EXPECT_EQ(get(port, "/health").status, 200);
}

TEST(Serve, QueueFullGives503) {
  ServeConfig cfg;
  cfg.queue_events = 4;
  auto srv = start(cfg);
  const uint16_t port = srv->http_port();
  ASSERT_EQ(post(port, "/v1/scripts", kScript).status, 200);
  // Stall the engine thread: a blocking pull queue nobody reads.
  auto q = srv->engine().subscribe_queue("All", 1, cayuga::api::Overflow::Block).value;
  int busy = 0;
  std::string retry;
  for (int i = 0; i < 20 && busy == 0; ++i) {
    Reply r = post(port, "/v1/events", stock_line("A", 1, 1, 1) + stock_line("A", 1, 1, 1));
    if (r.status == 503) {
      ++busy;
      retry = r.retry_after;
    }
  }
  EXPECT_EQ(busy, 1);
  EXPECT_EQ(retry, "1");
  q.reset();  // the engine goes on
  // ... on its own thread: the queue has room again once it has processed the stalled batches
  // (until then another 503 would be correct).
  for (int i = 0; i < 500 && stat(port, "queue_depth") != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(stat(port, "queue_depth"), 0u);
  EXPECT_EQ(post(port, "/v1/events", stock_line("A", 1, 1, 2)).status, 200);
  EXPECT_GE(stat(port, "busy_rejections"), 1u);
}

TEST(Serve, SlowSubscriberIsDisconnected) {
  ServeConfig cfg;
  cfg.subscriber_buffer = 64 << 10;
  auto srv = start(cfg);
  const uint16_t port = srv->http_port();
  ASSERT_EQ(post(port, "/v1/scripts", kScript).status, 200);
  Subscription slow(port, "All", 4096);
  std::string batch;
  for (int i = 0; i < 20000; ++i) batch += stock_line("ABCDEFGHIJ", i, i, 1);
  for (int k = 0; k < 10 && stat(port, "subscribers_dropped") == 0; ++k)
    ASSERT_EQ(post(port, "/v1/events", batch).status, 200);
  // The engine was not stalled: everything accepted was processed.
  for (int i = 0; i < 200 && stat(port, "queue_depth") != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(stat(port, "events_processed"), stat(port, "events_accepted"));
  EXPECT_EQ(stat(port, "subscribers_dropped"), 1u);
  std::string line, last;
  while (!(line = slow.next_line()).empty()) last = line;
  EXPECT_NE(last.find("{\"end\":\"slow subscriber"), std::string::npos) << last;
}

TEST(Serve, TcpIngest) {
  ServeConfig cfg;
  cfg.ingest_port = 0;
  auto srv = start(cfg);
  const uint16_t port = srv->http_port();
  ASSERT_EQ(post(port, "/v1/scripts", kScript).status, 200);
  Subscription sub(port, "All");
  net::io_context ioc;
  tcp::socket s(ioc);
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), srv->ingest_port()));
  net::write(s, net::buffer(stock_line("A", 1, 1, 1) + "B,2,2,Stock,2,2\nbad line\n" +
                            "C,3,3,Stock,3,3"));  // the last line ends with the connection
  s.shutdown(tcp::socket::shutdown_send);
  std::string reply;
  boost::system::error_code ec;
  net::read(s, net::dynamic_buffer(reply), ec);
  EXPECT_NE(reply.find("{\"line\":3,"), std::string::npos) << reply;
  EXPECT_NE(sub.next_line().find("\"Name\":\"A\""), std::string::npos);
  EXPECT_NE(sub.next_line().find("\"Name\":\"B\""), std::string::npos);
  EXPECT_NE(sub.next_line().find("\"Name\":\"C\""), std::string::npos);
}

// The engine thread pushes each ingested batch with the engine's lookahead (every event
// announced a few pushes ahead of its own): the rows are those of the same events pushed one by
// one through the API, in the same order.
TEST(Serve, TcpIngestRowsAreThoseOfEventsPushedOneByOne) {
  const std::string script =
      "CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\n"
      "SELECT Name, Price_1 AS First, Price AS Second FROM FILTER{DUR < 30}("
      "FILTER{Volume > 3}(Stock) NEXT{$1.Name = $2.Name AND $2.Price > $1.Price} Stock) "
      "PUBLISH Up;\n"
      "SELECT Name, Price_1 AS Start, Price AS Last FROM FILTER{DUR < 60}("
      "FILTER{Name = 'S1'}(Stock) FOLD{$2.Name = $.Name, $2.Price > $.Price,} Stock) "
      "PUBLISH Run;\n";
  // 900 events of 7 symbols, three to a time, each price a step of a walk.
  std::string lines;
  std::vector<std::vector<cayuga::api::Value>> values;
  std::vector<int64_t> times;
  int price[7] = {50, 50, 50, 50, 50, 50, 50};
  const std::string names[7] = {"S0", "S1", "S2", "S3", "S4", "S5", "S6"};  // (Values view them)
  for (int k = 0; k < 900; ++k) {
    const int s = (k * 5) % 7;
    price[s] += (k * 37) % 5 - 2;
    const std::string& name = names[s];
    values.push_back({name, double(price[s]), k % 10});
    times.push_back(k / 3);
    lines += name + "," + std::to_string(price[s]) + "," + std::to_string(k % 10) + ",Stock," +
             std::to_string(k / 3) + "," + std::to_string(k / 3) + "\n";
  }

  ServeConfig cfg;
  cfg.ingest_port = 0;
  auto srv = start(cfg);
  const uint16_t port = srv->http_port();
  ASSERT_EQ(post(port, "/v1/scripts", script).status, 200);
  Subscription up(port, "Up"), run(port, "Run");
  net::io_context ioc;
  tcp::socket s(ioc);
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), srv->ingest_port()));
  net::write(s, net::buffer(lines));
  s.shutdown(tcp::socket::shutdown_send);
  std::string reply;
  boost::system::error_code ec;
  net::read(s, net::dynamic_buffer(reply), ec);
  EXPECT_EQ(reply, "");
  for (int i = 0; i < 500 && stat(port, "events_accepted") != 900; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  srv->stop();  // closes the last epoch and ends the streams
  const auto rest = [](Subscription& sub) {
    std::vector<std::string> rows;
    for (std::string line = sub.next_line(); !line.empty(); line = sub.next_line())
      rows.push_back(line);
    EXPECT_EQ(rows.empty() ? "" : rows.back(), R"({"end":"server shutting down"})");
    if (!rows.empty()) rows.pop_back();
    return rows;
  };
  const std::vector<std::string> served_up = rest(up), served_run = rest(run);

  cayuga::api::Engine one_by_one;
  ASSERT_TRUE(one_by_one.add_script(script).ok());
  std::vector<std::string> want_up, want_run;
  ASSERT_TRUE(
      one_by_one
          .subscribe("Up", [&](const cayuga::api::Output& o) { want_up.push_back(o.to_json()); })
          .ok());
  ASSERT_TRUE(
      one_by_one
          .subscribe("Run", [&](const cayuga::api::Output& o) { want_run.push_back(o.to_json()); })
          .ok());
  const uint32_t stock = *one_by_one.stream_id("Stock");
  for (size_t k = 0; k < values.size(); ++k)
    ASSERT_TRUE(one_by_one.push(cayuga::api::Event{stock, times[k], values[k]}).ok());
  ASSERT_TRUE(one_by_one.finish().ok());

  ASSERT_EQ(want_up.size(), 266u);
  ASSERT_EQ(want_run.size(), 78u);
  EXPECT_EQ(want_up[0], R"({"stream":"Up","t0":1,"t1":4,"Name":"S4","First":48,"Second":50})");
  EXPECT_EQ(served_up, want_up);
  EXPECT_EQ(served_run, want_run);
}

// A connection thread looks up a batch's candidates as it parses it; a script added before the
// engine thread pushes the batch changes the index, and those candidates are then not used (the
// engine's generation): the new query's rows are there.
TEST(Serve, CandidatesLookedUpBeforeAScriptIsAddedAreNotUsed) {
  cayuga::api::Engine engine;
  cayuga::api::detail::EngineImpl& core = *engine.impl();
  ASSERT_TRUE(engine
                  .add_script("CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\n"
                              "SELECT Name, Price FROM FILTER{Price > 10}(Stock) PUBLISH A;")
                  .ok());
  std::vector<std::string> rows;
  const auto collect = [&](const cayuga::api::Output& o) { rows.push_back(o.to_json()); };
  ASSERT_TRUE(engine.subscribe("A", collect).ok());
  cayuga::serve::Batch b;
  std::vector<cayuga::serve::LineError> errors;
  // Eight events: the first three are pushed with the candidates looked up ahead (the last
  // few of a batch have nothing to announce after them, and are looked up as they are pushed).
  std::string text;
  const int prices[8] = {15, 25, 5, 30, 12, 22, 8, 40};
  for (int t = 1; t <= 8; ++t)
    text += "IBM," + std::to_string(prices[t - 1]) + ",1,Stock," + std::to_string(t) + "," +
            std::to_string(t) + "\n";
  cayuga::serve::parse_lines(text, *core.snapshot(), cayuga::EngineUnit::Ms, 1, b, errors, 10,
                             nullptr);
  ASSERT_EQ(errors.size(), 0u);
  core.match_batch(b.events, b.slots.data(), b.matched);
  ASSERT_EQ(b.matched.first, (std::vector<uint32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8}));  // A's edge
  ASSERT_TRUE(
      engine.add_script("SELECT Name, Price FROM FILTER{Price > 20}(Stock) PUBLISH B;").ok());
  ASSERT_TRUE(engine.subscribe("B", collect).ok());
  core.push_slot_batch(b.events, b.slots.data(), nullptr, &b.matched);
  ASSERT_TRUE(engine.finish().ok());
  EXPECT_EQ(rows, (std::vector<std::string>{
                      R"({"stream":"A","t0":1,"t1":1,"Name":"IBM","Price":15})",
                      R"({"stream":"A","t0":2,"t1":2,"Name":"IBM","Price":25})",
                      R"({"stream":"B","t0":2,"t1":2,"Name":"IBM","Price":25})",
                      R"({"stream":"A","t0":4,"t1":4,"Name":"IBM","Price":30})",
                      R"({"stream":"B","t0":4,"t1":4,"Name":"IBM","Price":30})",
                      R"({"stream":"A","t0":5,"t1":5,"Name":"IBM","Price":12})",
                      R"({"stream":"A","t0":6,"t1":6,"Name":"IBM","Price":22})",
                      R"({"stream":"B","t0":6,"t1":6,"Name":"IBM","Price":22})",
                      R"({"stream":"A","t0":8,"t1":8,"Name":"IBM","Price":40})",
                      R"({"stream":"B","t0":8,"t1":8,"Name":"IBM","Price":40})",
                  }));
}

TEST(Serve, ArrivalTimeAndHeartbeat) {
  ServeConfig cfg;
  cfg.heartbeat_ms = 20;
  auto srv = start(cfg);
  const uint16_t port = srv->http_port();
  ASSERT_EQ(post(port, "/v1/scripts", kScript).status, 200);
  Subscription sub(port, "All");
  const int64_t before = cayuga::serve::now_units(cayuga::EngineUnit::Ms);
  ASSERT_EQ(post(port, "/v1/events", stock_line("A", 1, 1)).status, 200);
  std::string line = sub.next_line();
  size_t p = line.find("\"t1\":");
  ASSERT_NE(p, std::string::npos);
  EXPECT_GE(std::stoll(line.substr(p + 5)), before);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_GE(stat(port, "heartbeats"), 1u);
  EXPECT_GE(static_cast<int64_t>(stat(port, "current_time")), before + 50);
  // POST /v1/advance.
  EXPECT_EQ(post(port, "/v1/advance?t=x", "").status, 400);
}

// Load: concurrent HTTP publishers (retrying on 503) and a TCP publisher against two
// subscribers; every accepted event reaches both subscribers. Bounded to a few seconds.
TEST(Serve, LoadNothingAcceptedIsLost) {
  ServeConfig cfg;
  cfg.ingest_port = 0;
  cfg.queue_events = 5000;  // small: publishers meet backpressure
  cfg.subscriber_buffer = 256 << 20;
  auto srv = start(cfg);
  const uint16_t port = srv->http_port();
  ASSERT_EQ(post(port, "/v1/scripts",
                 "CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\n"
                 "SELECT * FROM FILTER{Price >= 0}(Stock) PUBLISH All;")
                .status,
            200);
  Subscription sub1(port, "All"), sub2(port, "All");
  std::atomic<uint64_t> accepted{0}, retries{0};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  std::vector<std::thread> pubs;
  for (int k = 0; k < 3; ++k)
    pubs.emplace_back([&, k] {
      std::string batch;
      for (int i = 0; i < 500; ++i) batch += stock_line("P" + std::to_string(k), i, i);
      while (std::chrono::steady_clock::now() < deadline) {
        Reply r = post(port, "/v1/events", batch);
        if (r.status == 200)
          accepted += 500;
        else if (r.status == 503)
          ++retries;
        else
          ADD_FAILURE() << r.status << r.body;
      }
    });
  pubs.emplace_back([&] {
    net::io_context ioc;
    tcp::socket s(ioc);
    s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), srv->ingest_port()));
    std::string chunk;
    for (int i = 0; i < 1000; ++i) chunk += stock_line("T", i, i);
    uint64_t sent = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      net::write(s, net::buffer(chunk));
      sent += 1000;
    }
    s.shutdown(tcp::socket::shutdown_send);
    std::string rest;
    boost::system::error_code ec;
    net::read(s, net::dynamic_buffer(rest), ec);  // the server read everything
    EXPECT_EQ(rest, "");
    accepted += sent;
  });
  std::atomic<uint64_t> got1{0}, got2{0};
  std::thread r1([&] {
    while (!sub1.next_line().empty()) ++got1;
  });
  std::thread r2([&] {
    while (!sub2.next_line().empty()) ++got2;
  });
  auto T = [t0 = std::chrono::steady_clock::now()] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  for (auto& t : pubs) t.join();
  std::fprintf(stderr, "joined %.2f\n", T());
  for (int i = 0; i < 500 && stat(port, "events_accepted") != accepted; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(stat(port, "events_accepted"), accepted.load());
  std::fprintf(stderr, "accepted %.2f\n", T());
  srv->stop();  // drains and ends the subscriber streams
  std::fprintf(stderr, "stopped %.2f\n", T());
  r1.join();
  r2.join();
  std::fprintf(stderr, "read %.2f\n", T());
  // Each stream ends with its {"end":...} line.
  EXPECT_EQ(got1, accepted + 1);
  EXPECT_EQ(got2, accepted + 1);
  EXPECT_EQ(srv->engine().stats().late_events, 0u);
  std::printf("load: %llu events accepted, %llu 503 retries\n",
              static_cast<unsigned long long>(accepted.load()),
              static_cast<unsigned long long>(retries.load()));
}

}  // namespace
