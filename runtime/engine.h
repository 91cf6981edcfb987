// The epoch engine: runs an automaton over a time-ordered event stream (CEL.md §7).
//
// Events arrive in non-decreasing t1. All events with one t1 form an epoch and see the instance
// state as it was when the epoch began: instances created in the epoch wait in per-node pending
// lists, consumed instances are only flagged, and both take effect when the epoch closes (the
// first event with a larger t1, `advance_to`, or `finish`). Outputs are handed to the sink at
// once, and a published stream's readers receive them in the same epoch, so order inside an epoch
// never changes the result.
//
// Thread-safety: an Engine is single-threaded; one thread calls push/advance_to/finish.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string_view>
#include <vector>

#include "compiler/analyzer.h"
#include "nfa/automaton.h"

namespace cayuga {

struct EngineStats {
  uint64_t events_in = 0;
  uint64_t outputs = 0;        // rows published on user-visible streams
  uint64_t epochs = 0;
  uint64_t late_events = 0;    // dropped: t1 before the current epoch
  uint64_t instances = 0;      // live instances now
  uint64_t peak_instances = 0;
  uint64_t expired = 0;        // instances freed because their DUR bound passed
  uint64_t div_by_zero = 0;
};

struct EngineOptions {
  EngineUnit unit = EngineUnit::Ms;
};

class Engine {
 public:
  // Called for every row published on a Published (user-visible) stream.
  using Sink = std::function<void(uint32_t stream, const Row& row)>;

  explicit Engine(EngineOptions options = {});

  // Compiles a script against the streams already in the engine and adds its streams and
  // queries. On error nothing is added.
  Diagnostics add_script(std::string_view text);

  const nfa::Automaton& automaton() const { return automaton_; }
  void set_sink(Sink sink) { sink_ = std::move(sink); }

  enum class PushResult { Ok, Late };
  // One input event; `values` has one slot per attribute of the stream's schema.
  PushResult push(uint32_t stream, int64_t t0, int64_t t1, const Slot* values);
  // Closes every epoch before `t` (heartbeat: frees expired instances on quiet streams).
  void advance_to(int64_t t);
  // Closes the current epoch (end of input).
  void finish();

  const EngineStats& stats() const { return stats_; }
  // The smallest t1 an event may still have (later ones are late).
  int64_t current_time() const { return epoch_open_ ? epoch_ : floor_; }

 private:
  struct NodeState {
    std::vector<Slot> slots;  // width slots per instance
    std::vector<int64_t> t0, t1;
    std::vector<uint8_t> consumed;
    std::vector<Slot> pending_slots;
    std::vector<int64_t> pending_t0, pending_t1;
    bool dirty = false;
    int64_t min_t0 = 0;  // of installed instances, for expiry
    size_t count() const { return t0.size(); }
  };

  void close_epoch();
  void deliver(uint32_t stream, const Slot* row, int64_t t0, int64_t t1);
  void process(uint32_t node, const Slot* event, int64_t t0, int64_t t1);
  void fire(const nfa::Node& node, const Slot* row, int64_t t0, int64_t t1);
  // A pending instance at `node`: its slots to fill.
  Slot* add_pending(uint32_t node, int64_t t0, int64_t t1);
  // ...copied from a row already in the node's layout (a FOLD's rebound copy).
  void add_instance(uint32_t node, const Slot* instance, int64_t t0, int64_t t1);
  // ...built from an incoming row through the node's `init` map.
  void add_from_row(uint32_t node, const Slot* row, int64_t t0, int64_t t1);
  void compact(NodeState& st, const nfa::Node& node, int64_t next_time);
  void mark_dirty(uint32_t node);

  // Scratch rows reused across events; a stack because publishing recurses into readers.
  std::vector<Slot>& scratch(size_t width);
  void release_scratch() { --scratch_top_; }

  EngineOptions options_;
  nfa::Automaton automaton_;
  std::vector<NodeState> state_;
  std::vector<uint32_t> bounded_nodes_;  // nodes with a DUR bound, checked for expiry
  std::vector<uint32_t> dirty_;          // nodes with consumed or pending instances this epoch
  Sink sink_;
  EngineStats stats_;
  EvalStats eval_stats_;
  int64_t epoch_ = INT64_MIN;  // t1 of the open epoch
  bool epoch_open_ = false;
  int64_t floor_ = INT64_MIN;  // events with a smaller t1 are late
  std::deque<std::vector<Slot>> scratch_;  // deque: growing keeps earlier rows in place
  size_t scratch_top_ = 0;
};

}  // namespace cayuga
