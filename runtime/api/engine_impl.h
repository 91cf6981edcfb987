// The implementation behind cayuga::api::Engine (include/cayuga/cayuga.h), private to the
// library and the service.
//
// EngineImpl wraps the single-threaded epoch engine (runtime/engine.h) with one mutex, a query
// registry (ids, removal), per-stream subscriber lists and a snapshot of the input streams that
// parsers can use without taking the engine lock. It works on internal rows (Slot arrays); the
// public Engine converts Values to and from Slots, and the service (tools/serve) feeds Slots
// parsed by the runtime's readers straight in.
//
// Thread-safety: every public member takes `mu_`, except snapshot(), which takes `snap_mu_`
// only. Row callbacks run with `mu_` held, on the thread that pushed; a call back into the
// same EngineImpl from a callback returns Code::WouldDeadlock (detected per thread).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "cayuga/cayuga.h"
#include "runtime/engine.h"
#include "runtime/io.h"

namespace cayuga::api::detail {

// The input streams at one moment, for parsers running outside the engine lock. Owns copies of
// the schemas, so it stays valid however the engine grows.
struct StreamSnapshot {
  uint64_t version = 0;
  std::deque<Schema> schemas;  // deque: StreamTable holds pointers into it
  StreamTable table;           // input streams only; ids are engine stream ids
};

EngineUnit to_engine_unit(TimeUnit u);
Type to_api_type(cayuga::Type t);


struct EngineImpl {
  // Gets the engine's view of the row (Engine::Sink), valid during the call.
  using RowCallback = std::function<void(uint32_t stream, const RowView& row)>;

  explicit EngineImpl(Options options);
  ~EngineImpl();  // runs the closers of subscriptions still open

  Options options;

  ScriptResult add_script(std::string_view text);
  Status remove_query(uint32_t id);
  std::vector<QueryInfo> queries() const;
  std::vector<StreamInfo> streams() const;
  std::optional<uint32_t> stream_id(std::string_view name) const;

  // One event as slots (one per attribute; strings already interned). `values` must match the
  // stream's schema: only the stream id and kind are checked here.
  Status push_slots(uint32_t stream, int64_t t0, int64_t t1, const Slot* values);
  // Several events under one lock (the service's engine thread). `late` counts the late ones.
  struct SlotEvent {
    uint32_t stream;
    int64_t t0, t1;
    size_t offset;  // into the slot array
  };
  void push_slot_batch(std::span<const SlotEvent> events, const Slot* slots, uint64_t* late);
  // Checks and converts public values, then pushes (the public push / push_batch).
  Status push_values(const Event& e);
  BatchResult push_value_batch(std::span<const Event> events);

  Status advance_to(int64_t t);
  Status finish();
  Stats stats() const;
  int64_t current_time() const;

  // Subscribes to a published stream by name. The callback also sees the stream's schema.
  Result<uint64_t> subscribe_rows(std::string_view stream, RowCallback cb);
  Status unsubscribe(uint64_t id);
  // Called when the engine is destroyed while subscription `id` is open (closes pull queues).
  void on_destroy(uint64_t id, std::function<void()> closer);
  // Stream name and schema of a stream id (valid while the engine lives: streams are never
  // removed, and the automaton is only appended to under `mu_`; call from a callback or with
  // the id of a stream known to exist).
  const std::string& stream_name(uint32_t stream) const;
  const Schema& stream_schema(uint32_t stream) const;
  const std::vector<Field>& stream_fields(uint32_t stream) const;

  std::shared_ptr<const StreamSnapshot> snapshot() const;

  // True when the calling thread is inside a callback of this engine.
  bool in_callback() const;

 private:
  struct Sub {
    uint64_t id;
    RowCallback cb;
    std::function<void()> closer;
  };
  struct QueryRec {
    QueryInfo info;
    uint32_t automaton_index = 0;  // in engine_.automaton().queries
  };

  Status check_event(const Event& e, std::vector<Slot>& slots) const;  // mu_ held
  // `flush`: run the engine's buffered events before returning (batches flush once, at the end).
  Status push_locked(uint32_t stream, int64_t t0, int64_t t1, const Slot* values,
                     bool flush = true);
  void on_row(uint32_t stream, const RowView& row);
  void refresh_streams();  // after add_script, mu_ held

  mutable std::recursive_mutex mu_;  // recursive: read-only calls from callbacks are fine
  cayuga::Engine engine_;
  std::vector<QueryRec> queries_;
  std::vector<std::vector<Sub>> subs_;     // by stream id
  std::vector<uint32_t> live_publishers_;  // by stream id
  std::deque<std::vector<Field>> fields_;  // by stream id (deque: stable references)
  uint64_t next_sub_ = 1;
  uint64_t sub_count_ = 0;
  uint64_t outputs_ = 0;
  uint64_t rejected_ = 0;
  uint32_t max_width_ = 0;
  bool closed_ = false;
  std::vector<Slot> scratch_;
  std::vector<Slot> batch_slots_;  // push_value_batch: the converted events
  std::vector<size_t> batch_at_;   // ... where each starts in batch_slots_ (SIZE_MAX: bad)

  mutable std::mutex snap_mu_;
  std::shared_ptr<const StreamSnapshot> snap_;
};

}  // namespace cayuga::api::detail
