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

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
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
  // The candidates of a batch's events (cayuga::Engine::match: the edges and nodes the global
  // index sends each to), looked up on the calling thread ahead of push_slot_batch, which then
  // hands them to the engine's lookahead and the engine thread skips the index. For the
  // service's connection threads: it takes no engine lock, only a shared one against
  // add_script and remove_query, which change the index. The candidates carry the engine's
  // generation, and the engine ignores those of an older one (a script added since). While
  // one of those waits for the lock, nothing is looked up (`out` is left empty, and the engine
  // thread looks the events up itself), so that a stream of batches never holds it off.
  struct Matched {
    std::vector<uint32_t> candidates;
    std::vector<uint32_t> first;  // event i's are [first[i], first[i + 1])
    uint64_t generation = 0;
  };
  void match_batch(std::span<const SlotEvent> events, const Slot* slots, Matched& out) const;
  // `matched`: match_batch() of these events (if it looked them up), or null.
  void push_slot_batch(std::span<const SlotEvent> events, const Slot* slots, uint64_t* late,
                       const Matched* matched = nullptr);
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
  // Held exclusively (inside mu_) while add_script or remove_query changes the engine's index,
  // shared by match_batch(), which holds nothing else.
  mutable std::shared_mutex index_mu_;
  std::atomic<int> index_writers_{0};  // add_script or remove_query waiting for or in index_mu_
  // index_mu_ held exclusively, counted in index_writers_ from before it is waited for.
  struct IndexWriter {
    explicit IndexWriter(EngineImpl& e) : engine(e) {
      engine.index_writers_.fetch_add(1, std::memory_order_acq_rel);
      engine.index_mu_.lock();
    }
    ~IndexWriter() {
      engine.index_mu_.unlock();
      engine.index_writers_.fetch_sub(1, std::memory_order_acq_rel);
    }
    EngineImpl& engine;
  };
  cayuga::Engine engine_;
  std::vector<QueryRec> queries_;
  uint64_t removed_queries_ = 0;  // of queries_ (stats() reads no list: the service polls it)
  std::vector<std::vector<Sub>> subs_;     // by stream id
  std::vector<uint32_t> live_publishers_;  // by stream id
  // What on_row() reads of each stream, two bits (32 streams a word), kept from
  // live_publishers_ and subs_ (update_row_bits): whether a live query publishes it, and
  // whether it has subscribers. With a query per stream, a service of 100k queries reads a
  // 25 KB array that stays cached, not a count and a list that are cold at every output.
  static constexpr uint64_t kDelivering = 1, kSubscribed = 2;
  std::vector<uint64_t> row_bits_;
  uint64_t row_bits(uint32_t stream) const {
    return row_bits_[stream / 32] >> (stream % 32 * 2) & 3;
  }
  void update_row_bits(uint32_t stream);
  std::deque<std::vector<Field>> fields_;  // by stream id (deque: stable references)
  uint64_t next_sub_ = 1;
  // The stream of each open subscription, so that unsubscribing and on_destroy() look in one
  // stream's list rather than in every stream's (a million of them with a million queries).
  std::unordered_map<uint64_t, uint32_t> sub_stream_;
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
