// `cayuga serve`: the detection service (docs/service.md).
//
// Architecture. One engine thread owns the engine's mutating calls: it takes batches of parsed
// events from a bounded queue (EventQueue, ingest.h), pushes them, and sends heartbeats. HTTP
// connections (Boost.Beast, synchronous, one thread per connection) and raw TCP ingest
// connections parse their input outside the engine lock and enqueue it. Subscribers get their
// own bounded byte buffer, filled by an engine callback on the engine thread and drained by the
// subscriber's connection thread; a subscriber whose buffer overflows is disconnected with a
// reason, so a slow reader never stalls the engine.
//
// Shutdown (stop(), or SIGTERM/SIGINT in serve_main): stop accepting, end every reading
// connection (a request already read completes), drain the queue into the engine, close the
// open epoch, then flush and end every subscriber stream (a subscriber that does not read for
// 5 s is cut off).
//
// Thread-safety: Server's public members may be called from any thread; stop() is idempotent.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cayuga/cayuga.h"

namespace cayuga::serve {

// The `cayuga serve` command: parses `args` (without "serve"), runs until SIGTERM/SIGINT, and
// returns the process exit code.
int serve_main(std::vector<std::string> args);

enum class HeartbeatMode : uint8_t {
  Arrival,  // only once some event used its arrival time (the default)
  Always,   // always: payload times must then be wall-clock times in engine units
  Off,      // never: time moves only with events and POST /v1/advance
};

struct ServeConfig {
  std::string host = "127.0.0.1";
  uint16_t port = 7070;                   // 0: an ephemeral port (see Server::http_port)
  int ingest_port = -1;                   // -1: no TCP ingest; 0: ephemeral
  std::vector<std::string> script_files;  // loaded at start
  std::string token;                      // bearer token; empty: no authentication
  api::TimeUnit unit = api::TimeUnit::Milliseconds;
  api::JitMode jit = api::JitMode::Auto;
  unsigned threads = 0;                // the engine's worker threads; 0 = one per core
  size_t queue_events = 1 << 20;       // bounded event queue
  size_t max_body = 16 << 20;          // larger request bodies get 413
  size_t subscriber_buffer = 8 << 20;  // bytes buffered per subscriber before disconnect
  int heartbeat_ms = 100;
  HeartbeatMode heartbeat = HeartbeatMode::Arrival;
  size_t max_connections = 512;
  std::string port_file;  // written once listening: "<http> <ingest>\n"
};

// Parses the command line into `cfg`. Returns "" or an error message; "help" for --help.
std::string parse_serve_args(const std::vector<std::string>& args, ServeConfig& cfg);
extern const char* const kServeUsage;

class Server {
 public:
  explicit Server(ServeConfig cfg);
  ~Server();  // stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Loads the scripts, binds and starts the threads. "" on success, else why it cannot start
  // (e.g. a non-loopback address without a token).
  std::string start();
  uint16_t http_port() const;
  uint16_t ingest_port() const;  // 0 when disabled
  // Graceful shutdown (see above); returns when every thread has ended.
  void stop();

  api::Engine& engine();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace cayuga::serve
