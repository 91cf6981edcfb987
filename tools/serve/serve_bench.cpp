// cayuga-serve-bench: sustained event rate through the service, end to end over loopback.
//
//   cayuga-serve-bench [--seconds N] [--batch N] [--clients N]
//
// Starts a server in-process on ephemeral ports with one pass-through query
// (SELECT * FROM FILTER{Price >= 0}(Stock)) and one subscriber reading its output, then runs
// two phases: HTTP (N clients POSTing JSON Lines batches, arrival time, retrying on 503) and
// TCP ingest (one connection streaming Cayuga-format lines with increasing times). A phase's
// rate is events processed by the engine / wall time until the queue is drained. Build in
// Release for meaningful numbers.
// clang-format off
#include <utility>  // first: Boost 1.74's asio/awaitable.hpp uses std::exchange without it
// clang-format on
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "tools/serve/serve.h"

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr const char* kScript =
    "CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\n"
    "SELECT * FROM FILTER{Price >= 0}(Stock) PUBLISH All;\n";

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
};

Phase run_http(double seconds, int clients, int batch) {
  cayuga::serve::ServeConfig cfg;
  cfg.port = 0;
  cfg.subscriber_buffer = size_t{1} << 30;
  cayuga::serve::Server srv(cfg);
  srv.start();
  const uint16_t port = srv.http_port();
  {
    net::io_context ioc;
    tcp::socket s(ioc);
    s.connect(local(port));
    beast::flat_buffer b;
    post(s, b, "/v1/scripts", kScript);
  }
  std::atomic<uint64_t> lines{0};
  std::thread sub([&] { drain_subscription(port, lines); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::atomic<uint64_t> accepted{0}, retries{0};
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration<double>(seconds);
  std::vector<std::thread> threads;
  for (int k = 0; k < clients; ++k)
    threads.emplace_back([&, k] {
      std::string body;
      for (int i = 0; i < batch; ++i)
        body += "{\"stream\":\"Stock\",\"Name\":\"S" + std::to_string((k * batch + i) % 100) +
                "\",\"Price\":" + std::to_string(i) + ".5,\"Volume\":" + std::to_string(i) + "}\n";
      net::io_context ioc;
      tcp::socket s(ioc);
      s.connect(local(port));
      beast::flat_buffer b;
      while (Clock::now() < deadline) {
        int st = post(s, b, "/v1/events", body);
        if (st == 200) {
          accepted += batch;
        } else if (st == 503) {
          ++retries;
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
      }
    });
  for (auto& t : threads) t.join();
  while (srv.engine().stats().events_in < accepted)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  Phase p{accepted, std::chrono::duration<double>(Clock::now() - start).count(), retries};
  srv.stop();
  sub.join();
  if (lines != accepted + 1)
    std::fprintf(stderr, "LOST OUTPUT: %llu lines for %llu events\n",
                 static_cast<unsigned long long>(lines.load()),
                 static_cast<unsigned long long>(accepted.load()));
  return p;
}

Phase run_tcp(double seconds) {
  cayuga::serve::ServeConfig cfg;
  cfg.port = 0;
  cfg.ingest_port = 0;
  cfg.subscriber_buffer = size_t{1} << 30;
  cayuga::serve::Server srv(cfg);
  srv.start();
  const uint16_t port = srv.http_port();
  {
    net::io_context ioc;
    tcp::socket s(ioc);
    s.connect(local(port));
    beast::flat_buffer b;
    post(s, b, "/v1/scripts", kScript);
  }
  std::atomic<uint64_t> lines{0};
  std::thread sub([&] { drain_subscription(port, lines); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  net::io_context ioc;
  tcp::socket s(ioc);
  s.connect(local(srv.ingest_port()));
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration<double>(seconds);
  uint64_t sent = 0;
  int64_t t = 1;
  std::string chunk;
  while (Clock::now() < deadline) {
    chunk.clear();
    for (int i = 0; i < 1000; ++i, ++t)
      chunk += "S" + std::to_string(t % 100) + "," + std::to_string(t % 1000) + ".5," +
               std::to_string(t) + ",Stock," + std::to_string(t) + "," + std::to_string(t) + "\n";
    net::write(s, net::buffer(chunk));
    sent += 1000;
  }
  s.shutdown(tcp::socket::shutdown_send);
  std::string rest;
  boost::system::error_code ec;
  net::read(s, net::dynamic_buffer(rest), ec);
  while (srv.engine().stats().events_in < sent)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  Phase p{sent, std::chrono::duration<double>(Clock::now() - start).count(), 0};
  srv.stop();
  sub.join();
  if (lines != sent + 1)
    std::fprintf(stderr, "LOST OUTPUT: %llu lines for %llu events\n",
                 static_cast<unsigned long long>(lines.load()),
                 static_cast<unsigned long long>(sent));
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 5;
  int batch = 1000, clients = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--seconds") seconds = std::stod(argv[i + 1]);
    if (a == "--batch") batch = std::stoi(argv[i + 1]);
    if (a == "--clients") clients = std::stoi(argv[i + 1]);
  }
  Phase h = run_http(seconds, clients, batch);
  std::printf(
      "http  %d clients x %d-event batches: %llu events in %.2f s = %.0f events/s (%llu 503s)\n",
      clients, batch, static_cast<unsigned long long>(h.events), h.seconds, h.events / h.seconds,
      static_cast<unsigned long long>(h.retries));
  Phase t = run_tcp(seconds);
  std::printf("tcp   1 connection, cayuga lines:   %llu events in %.2f s = %.0f events/s\n",
              static_cast<unsigned long long>(t.events), t.seconds, t.events / t.seconds);
  return 0;
}
