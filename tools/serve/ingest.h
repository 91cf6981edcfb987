// The service's ingest path: parsing lines into typed events, and the bounded queue that feeds
// the engine thread.
//
// Parsing runs on the connection threads, outside the engine lock, against a snapshot of the
// input streams (api::detail::StreamSnapshot). Each line is JSON Lines when its first non-blank
// character is '{', otherwise the Cayuga event format (CEL.md §8); both go through the runtime's
// readers (runtime/io.h), so the service accepts exactly what `cayuga run` accepts. A JSON line
// without a time key ("t", or "t0" and "t1") gets the arrival time: it is stamped when its batch
// enters the queue, so stamps never go backwards in queue order.
//
// EventQueue is a bounded multi-producer, single-consumer queue of batches, counted in events.
// Producers either fail fast when it is full (HTTP: 503 + Retry-After) or wait (the TCP port:
// the socket is no longer read, so TCP flow control slows the sender). A batch handed to the
// queue is accepted: the engine thread processes every queued batch before it exits.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/api/engine_impl.h"

namespace cayuga::serve {

using api::detail::EngineImpl;
using api::detail::StreamSnapshot;

struct LineError {
  uint64_t line = 0;  // 1-based within the request body or TCP connection
  std::string message;
};

struct Batch {
  std::vector<EngineImpl::SlotEvent> events;
  std::vector<Slot> slots;
  std::vector<uint32_t> arrival;  // indexes of events whose time is the arrival time
  EngineImpl::Matched matched;    // the events' candidates, looked up as they were parsed
  // A heartbeat request (POST /v1/advance): after the events, advance the engine to this time.
  int64_t advance = INT64_MIN;
  size_t size() const { return events.size(); }
};

// Parses `text` (lines separated by '\n'; the last line may lack it). Line numbers start at
// `first_line`. Errors beyond `max_errors` are counted in *error_count but not listed.
void parse_lines(std::string_view text, const StreamSnapshot& snap, EngineUnit unit,
                 uint64_t first_line, Batch& out, std::vector<LineError>& errors, size_t max_errors,
                 uint64_t* error_count);

// Now, in engine units since the Unix epoch.
int64_t now_units(EngineUnit unit);

class EventQueue {
 public:
  EventQueue(size_t capacity, EngineUnit unit) : capacity_(capacity), unit_(unit) {}

  // Non-blocking: false when the batch does not fit (an empty queue takes any batch).
  bool try_push(Batch&& b);
  // Waits for room; false when the queue was closed (the batch is then not accepted).
  bool push_wait(Batch&& b);
  // Engine thread: takes every queued batch, waiting up to `timeout` for one. `*heartbeat` is
  // set to the time every later arrival stamp will be at least (taken under the queue lock).
  // False when the queue is closed and empty.
  bool pop_all(std::vector<Batch>& out, std::chrono::milliseconds timeout, int64_t* heartbeat);
  // Engine thread: `n` events of popped batches were processed (frees room).
  void done(size_t n);
  // No more pushes; pop_all drains what is queued.
  void close();

  size_t depth() const;  // events queued or being processed
  size_t capacity() const { return capacity_; }
  uint64_t accepted() const;  // events ever accepted
  bool saw_arrival() const;   // some accepted event used its arrival time

 private:
  // Stamps `b`'s events that use their arrival time, queues it and wakes a reader (mu_ held).
  void enqueue(Batch&& b);

  mutable std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::deque<Batch> q_;
  size_t capacity_;
  size_t depth_ = 0;
  uint64_t accepted_ = 0;
  int64_t last_stamp_ = INT64_MIN;
  bool saw_arrival_ = false;
  bool closed_ = false;
  EngineUnit unit_;
};

}  // namespace cayuga::serve
