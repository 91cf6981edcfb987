// The epoch engine: runs an automaton over a time-ordered event stream (CEL.md §7).
//
// Events arrive in non-decreasing t1. All events with one t1 form an epoch and see the instance
// state as it was when the epoch began: instances created in the epoch are invisible to its
// events (their t1 is the epoch's; see Records), consumed instances are only flagged and dropped
// when the epoch closes (the first event with a larger t1, `advance_to`, or `finish`). Outputs are
// handed to the sink at once, and a published stream's readers receive them in the same epoch, so
// order inside an epoch never changes the result.
//
// Where the time goes, and what keeps it proportional to the work an event really causes:
//  - the global predicate index (index/) of each stream sends an event only to the START edges
//    and NEXT/FOLD nodes whose guards it satisfies (all of each guard), and a START edge skips
//    the FILTERs its guard already says (Route); an edge that is its node's only way in rides
//    on the node's route (Route::feeds);
//  - a node with a dynamic equality (`$1.Name = $2.Name`) keeps its instances in buckets by that
//    value, so an event visits one bucket;
//  - a bucket is one array of instance records, compacted only when an epoch touched it;
//  - expiry of DUR-bounded instances is driven by a timing wheel of bucket deadlines
//    (expiry_wheel.h), never by a scan.
// Each of the three optimizations can be switched off (EngineOptions / environment) and the
// results must not change.
//
// Parallel epochs (EngineOptions::threads > 1). Every event of an epoch sees the same frozen
// state, so an epoch's work is order-independent (CEL.md §7). With several threads, push() runs
// the first events of an epoch at once, as with one thread (parallel_min_work / 8 of them: most
// epochs are too small to split), and buffers the rest of a bigger epoch; when the epoch closes
// (or the buffer fills, or flush()) the batch is cut into work items (event × candidate edge
// or node, large buckets split by instance range), the items are split into contiguous chunks
// run as TBB tasks, and each task records its effects (new instances, outputs, consumed
// instances) instead of applying them. The effects are then applied chunk by chunk, in order,
// so the sink sees the same rows in the same order and the buckets end up identical to a
// one-thread run. A batch with little work runs inline on the calling thread. Epoch-end
// compaction and expiry of many buckets are split the same way. Outputs of buffered events
// reach the sink when their batch runs, not at push().
//
// Thread-safety: one thread calls push/advance_to/finish (the engine uses its own workers).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "compiler/analyzer.h"
#include "index/stream_index.h"
#include "nfa/automaton.h"
#include "runtime/expiry_wheel.h"
#include "runtime/jit_manager.h"

namespace cayuga {

struct EngineStats {
  uint64_t events_in = 0;
  uint64_t outputs = 0;        // rows published on user-visible streams
  uint64_t epochs = 0;
  uint64_t late_events = 0;    // dropped: t1 before the current epoch
  uint64_t instances = 0;      // stored now (consumed ones until their epoch closes)
  uint64_t peak_instances = 0;  // the most stored at once (as each epoch closes)
  uint64_t expired = 0;        // instances freed because their DUR bound passed
  uint64_t div_by_zero = 0;
  uint64_t candidates = 0;     // edges and nodes the index handed events to
};

struct EngineOptions {
  EngineUnit unit = EngineUnit::Ms;
  bool merge = true;           // share identical nodes across queries
  bool index = true;           // global predicate index
  bool instance_index = true;  // per-node buckets for dynamic equalities
  JitMode jit = JitMode::Auto;  // predicates and schema maps as native code
  // Worker threads for an epoch's work (0 = one per core). Small epochs run inline whatever
  // the setting; outputs and state are identical for every thread count.
  unsigned threads = 0;
  // Threads that may parse a large script in add_script (0 = one per core); the queries and
  // any errors are the same for every count.
  unsigned compile_threads = 0;
  // Work items (an event × a candidate edge, or × an instance of a candidate node) below which
  // a batch runs inline on the calling thread; an epoch's first parallel_min_work / 8 events
  // are not buffered at all. Tests set it to 1 to force the parallel path.
  size_t parallel_min_work = 256;

  // Defaults, with CAYUGA_NO_MERGE=1, CAYUGA_NO_INDEX=1, CAYUGA_NO_INSTANCE_INDEX=1,
  // CAYUGA_JIT=off|on|auto, CAYUGA_THREADS=N, CAYUGA_COMPILE_THREADS=N and
  // CAYUGA_PARALLEL_MIN_WORK=N honoured.
  static EngineOptions from_env();
};

// A thread count as EngineOptions gives it: 0 means one per core.
unsigned resolve_threads(unsigned threads);

class Engine {
 public:
  // Called for every row published on a Published (user-visible) stream, with a view of the
  // row valid during the call (no copy is made for it).
  using Sink = std::function<void(uint32_t stream, const RowView& row)>;

  explicit Engine(EngineOptions options = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Compiles a script against the streams already in the engine and adds its streams and
  // queries. On error nothing is added.
  Diagnostics add_script(std::string_view text);

  // Removes query `id` (an index into automaton().queries): its outputs stop, and the nodes,
  // instances and native code no other query shares are freed. False if there is no such live
  // query. Allowed between events (also inside an epoch).
  bool remove_query(uint32_t id);

  const nfa::Automaton& automaton() const { return automaton_; }
  const EngineOptions& options() const { return options_; }
  void set_sink(Sink sink) { sink_ = std::move(sink); }

  enum class PushResult { Ok, Late };
  // One input event; `values` has one slot per attribute of the stream's schema.
  PushResult push(uint32_t stream, int64_t t0, int64_t t1, const Slot* values);
  // Lookahead: announces the event that will be pushed kHintDistance pushes from now (events
  // announced in the order they will be pushed; `values` as push() will get them). Each call
  // takes every announced event one step further along the cache misses its push would meet
  // (index entry, postings, routes, nodes and states, instances), so that by its push they are
  // cached, having overlapped with the work of the events before it. Only a hint: nothing else
  // depends on it, and a wrong or missing hint only costs time.
  static constexpr size_t kHintDistance = 5;
  void hint(uint32_t stream, const Slot* values);
  // hint() for an event whose candidates were looked up ahead by match(), on another thread: the
  // engine's thread then skips the index (its lookups and their cache misses). Candidates of
  // another generation() than the engine's now are not used.
  void hint(uint32_t stream, const Slot* values, std::span<const uint32_t> candidates,
            uint64_t generation);
  // The candidates of an event (the edges and nodes the global index sends it to: route
  // numbers, some with kRides), appended to `out`, for hint(). Const, and may run on other threads
  // while the engine runs events, as long as no script is added and no query removed meanwhile.
  void match(uint32_t stream, const Slot* values, std::vector<uint32_t>& out) const {
    if (stream >= index_.size()) return;
    index_[stream].match(values, out);
    for (const Delta& d : delta_)
      if (d.stream == stream) d.index.match(values, out);
  }
  // Lookahead for match() of an event a few lookups later, as two prefetching steps of it:
  // `postings` false asks for the index entries its lookup reads, true (a few lookups after
  // that, once they are in) for the postings they point to. Const, as match() is.
  void prefetch_match(uint32_t stream, const Slot* values, bool postings) const {
    if (stream >= index_.size()) return;
    if (postings)
      index_[stream].prefetch_postings(values);
    else
      index_[stream].prefetch_entries(values);
  }
  // match() of a batch of `n` events, for a thread that looks them up ahead of the engine's
  // (`cayuga run`'s parsing threads, the service's connection threads): each lookup is two
  // dependent cache misses (an index entry, then its postings), asked for with
  // prefetch_match() eight and four events ahead. `event(i)` returns event i's stream and
  // values (values null: not an event, skipped); its candidates are appended to `out`, and
  // `matched(i, first, count)` is told where. Const, as match() is.
  template <class EventOf, class Matched>
  void match_batch(size_t n, EventOf event, std::vector<uint32_t>& out, Matched matched) const {
    constexpr size_t kEntriesAhead = 8, kPostingsAhead = 4;
    const auto ahead = [&](size_t i, bool postings) {
      if (i >= n) return;
      const auto [stream, values] = event(i);
      if (values) prefetch_match(stream, values, postings);
    };
    for (size_t i = 0; i < kEntriesAhead; ++i) ahead(i, false);
    for (size_t i = 0; i < kPostingsAhead; ++i) ahead(i, true);
    for (size_t i = 0; i < n; ++i) {
      ahead(i + kEntriesAhead, false);
      ahead(i + kPostingsAhead, true);
      const auto [stream, values] = event(i);
      if (!values) continue;
      const size_t first = out.size();
      match(stream, values, out);
      matched(i, first, out.size() - first);
    }
  }
  // Changes whenever the automaton does (add_script, remove_query), and with it the candidates.
  uint64_t generation() const { return generation_; }
  // Routes added since the routes and the index were last built whole: add_script extends them
  // when a script brings only new nodes and START edges, and rebuilds them otherwise (and past
  // a few thousand added routes), as remove_query does. For tests and diagnostics.
  size_t added_routes() const { return routes_.size() - base_routes_; }
  // Instance-index buckets held (by every node with a key), for tests and diagnostics: as
  // many as keys with instances when the last epoch closed (plus those added since).
  size_t instance_buckets() const;
  // Buckets whose records are on the heap now (they outgrew the slots kept in place, and
  // have not been compacted back into them), for tests and diagnostics.
  size_t heap_buckets() const;
  // Heap blocks of records that buckets gave back, kept on the calling thread for the next
  // bucket that outgrows its slots there: how many of each size (36, 72, 144 and 288 slots);
  // and freeing them. For tests and diagnostics.
  static constexpr size_t kSpareSizes = 4;
  static std::array<size_t, kSpareSizes> spare_heap_blocks();
  static void free_spare_heap_blocks();
  // Closes every epoch before `t` (heartbeat: frees expired instances on quiet streams).
  void advance_to(int64_t t);
  // Closes the current epoch (end of input).
  void finish();

  // Runs the events buffered for a parallel batch now (outputs reach the sink), without
  // closing the epoch. A no-op with one thread, where every push runs at once.
  void flush();

  const EngineStats& stats() const;
  JitStats jit_stats() const { return jit_ ? jit_->stats() : JitStats{}; }
  // Blocks until the background JIT has compiled everything queued (benchmarks, tests).
  void wait_for_jit() {
    if (jit_) jit_->wait_idle();
  }
  // Worker threads in use (1: everything runs on the calling thread).
  unsigned threads() const;
  // The smallest t1 an event may still have (earlier ones are late).
  int64_t current_time() const { return epoch_open_ ? epoch_ : floor_; }

 private:
  // Instances of one node with one instance-index key (or all of them, without a key), as
  // records of kHeader + width slots: t0, t1, a consumed flag (written through std::atomic_ref
  // in parallel batches), then the values. An instance is stored as soon as it is made: its t1
  // is the open epoch's, so no event of that epoch can affect it (I.t1 < e.t0 fails), which is
  // all the pending list of CEL.md §7 asks. Consumed ones are only flagged until the close.
  //
  // `rows` keeps its first slots in place (a bucket of one or two instances, the common case, is
  // read with its header: one dependent cache miss less), then grows on the heap by doubling,
  // without zero-filling (a new record is written at once), and returns in place when a
  // compaction leaves few enough (shrink()).
  class Records {
   public:
    // Two NEXT or FOLD records over a 3-attribute stream (6 and 9 slots).
    static constexpr uint32_t kInline = 18;
    Records() = default;
    Records(Records&& o) noexcept { take(o); }
    Records& operator=(Records&& o) noexcept {
      if (this != &o) {
        release();
        take(o);
      }
      return *this;
    }
    ~Records() { release(); }
    Slot* data() { return data_; }
    const Slot* data() const { return data_; }
    size_t size() const { return size_; }
    bool on_heap() const { return data_ != inline_; }
    // `n` more slots at the end, uninitialized.
    Slot* append(size_t n) {
      if (size_ + n > cap_) grow(size_ + n);
      Slot* at = data_ + size_;
      size_ += static_cast<uint32_t>(n);
      return at;
    }
    // Keeps the first `n` slots (a compaction's), and moves them back in place when they fit
    // there again, freeing the heap: a bucket that outgrew its slots once (a FOLD's rebound and
    // a new instance behind the one they replace) would otherwise keep reading cold heap lines
    // after its state's first line, where in place its next visit reads the state's next lines.
    void shrink(size_t n) {
      size_ = static_cast<uint32_t>(n);
      if (on_heap() && size_ <= kInline) move_in();
    }

   private:
    void grow(size_t need);
    void move_in();
    void release() {
      if (on_heap()) std::free(data_);
    }
    void take(Records& o) {
      size_ = o.size_;
      cap_ = o.cap_;
      if (o.on_heap()) {
        data_ = o.data_;
      } else {
        data_ = inline_;
        std::copy_n(o.inline_, size_, inline_);
      }
      o.data_ = o.inline_;
      o.size_ = 0;
      o.cap_ = kInline;
    }
    Slot* data_ = inline_;  // inline_, or the heap
    uint32_t size_ = 0, cap_ = kInline;
    Slot inline_[kInline];
  };
  struct Bucket {
    uint32_t records = 0;
    bool dirty = false;             // on the list of buckets the epoch's close compacts
    bool consumed = false;          // an instance was consumed this epoch
    // NodeState::single only: the node has an instance-index key, and its buckets are
    // keyed_[node] (this one is unused).
    bool keyed = false;
    bool in_table = false;  // one of a Keyed's buckets (its expiry entries say so: kInTable)
    // When its oldest instance is past the node's DUR bound: expiry_of(the least t0), or
    // INT64_MAX (no instance, or no bound). Kept here so that neither expiring a lone instance
    // nor queueing the deadline reads the node or the records.
    int64_t expires = INT64_MAX;
    int64_t scheduled = INT64_MAX;  // expiry deadline queued in the wheel
    Records rows;
    size_t count() const { return records; }
    // A new record of kHeader + width slots at the end, for an instance over [t0, t1] of a
    // node of that width and DUR bound: returns its values, to be filled by the caller.
    Slot* add(uint32_t width, int64_t max_dur, int64_t t0, int64_t t1);
    Slot* add(const nfa::Node& node, int64_t t0, int64_t t1) {
      return add(node.width, node.max_dur, t0, t1);
    }
  };
  // The first epoch-close time `next_time` at which an instance begun at t0 is past `max_dur`
  // (it goes when next_time - t0 > max_dur): t0 + max_dur + 1, INT64_MAX for never, INT64_MIN
  // for a bound below every duration that t0 can have.
  static int64_t expiry_of(int64_t t0, int64_t max_dur) {
    int64_t last;
    if (max_dur == nfa::kNoDurBound) return INT64_MAX;
    if (__builtin_add_overflow(t0, max_dur, &last)) return max_dur > 0 ? INT64_MAX : INT64_MIN;
    return last == INT64_MAX ? INT64_MAX : last + 1;
  }
  static constexpr uint32_t kHeader = 3;
  // The buckets of a node with an instance-index key, by key value (index::equality_key):
  // an open-addressing table of (key, bucket id), at most half full, and the buckets, by id,
  // in chunks that never move (a visit holds its bucket while what it fires may add another):
  // of 4, 4, 8, 16 and 32 buckets, then of 64, so that a node with few keys holds little.
  // (Chunks of 16 throughout were 7% slower on the --keyed walk, chunks of 1, 2, 4, ... a
  // fifth.) A lookup reads one table line, then the bucket: hint() asks for both ahead
  // (slot_of(), then at(); see prefetch_keyed()). Nothing is allocated before the first bucket.
  // Bucket ids stay below kInTable (2^31). A bucket left empty when an epoch closes is
  // released: its key leaves the table and its id is given to the next new key, so that a node
  // whose keys come and go (hosts, users, orders) holds as many buckets as it has keys with
  // instances at once, not one per key ever seen.
  class Keyed {
   public:
    struct Entry {
      uint64_t key;
      uint32_t id;  // kEmpty: a free slot
    };
    static constexpr uint32_t kEmpty = UINT32_MAX;
    // Where the lookup of `key` begins (null before the first bucket).
    const Entry* slot_of(uint64_t key) const {
      return table_.empty() ? nullptr : &table_[home(key)];
    }
    // The bucket id of `key`, or kEmpty.
    uint32_t find(uint64_t key) const { return table_.empty() ? kEmpty : table_[probe(key)].id; }
    // The bucket id of `key`, with a new empty bucket if it had none.
    uint32_t find_or_add(uint64_t key);
    // Gives bucket `id` (empty) back: its key leaves the table, and the id and the bucket's
    // place go to a later key. Entries of the expiry wheel that still name the id do no harm:
    // its `scheduled` is reset, so they are stale, unless a later key's deadline equals one,
    // which is then that key's own.
    void release(uint32_t id);
    Bucket& at(uint32_t id) {
      const auto [chunk, offset] = place(id);
      return chunks_[chunk][offset];
    }
    const Bucket& at(uint32_t id) const { return const_cast<Keyed*>(this)->at(id); }
    // Bucket ids in use or released (ids run below it), and the buckets with a key now.
    uint32_t size() const { return size_; }
    uint32_t live() const { return size_ - static_cast<uint32_t>(free_.size()); }

   private:
    static constexpr size_t kMinSlots = 4;
    static constexpr uint32_t kSmall = 64;  // buckets in the chunks of 4 to 32
    // Where bucket `id` lives: its chunk and its offset in it. The layout is stated here only.
    static std::pair<uint32_t, uint32_t> place(uint32_t id) {
      if (id >= kSmall) return {(id >> 6) + 4, id & 63};
      const uint32_t c = std::bit_width(id >> 2);  // chunk c > 0 begins at id 2^(c+1)
      return {c, c == 0 ? id : id - (2u << c)};
    }
    // The number of buckets of chunk `c`.
    static uint32_t chunk_size(uint32_t c) { return c == 0 ? 4 : c < 5 ? 2u << c : 64; }
    // Fibonacci hashing: the top bits of key * 2^64/phi (string keys are small dense ids).
    size_t home(uint64_t key) const {
      return (key * 0x9E3779B97F4A7C15ull) >> (64 - std::countr_zero(table_.size()));
    }
    // The slot that holds `key`, or the free one where it would go (the table is not empty).
    size_t probe(uint64_t key) const {
      size_t i = home(key);
      while (table_[i].id != kEmpty && table_[i].key != key) i = (i + 1) & (table_.size() - 1);
      return i;
    }
    std::vector<Entry> table_;
    std::vector<std::unique_ptr<Bucket[]>> chunks_;
    std::vector<uint64_t> keys_;  // by bucket id: its key (for release())
    std::vector<uint32_t> free_;  // released ids, the last one reused first
    uint32_t size_ = 0;
  };
  struct alignas(64) NodeState {  // three cache lines
    // The node's DUR bound (nfa::Node::max_dur, copied whenever the automaton changes): all
    // that compacting and expiring its instances need of the node besides their stride (the
    // records' size over their count), so that they read no node. In the first line, with
    // the head of `single`, which every visit reads first.
    int64_t max_dur = nfa::kNoDurBound;
    Bucket single;  // the one bucket of a node without an instance-index key
    bool keyed() const { return single.keyed; }
    // Whether reading the inline records of `single`, or adding one behind them (`adding`),
    // touches the third line. A record added behind a whole one is taken to reach it.
    // (Without branches: its callers, the prefetch steps, meet both answers at random.)
    bool third_line_used(bool adding) const {
      const bool behind = adding & (single.count() > 0);
      return behind | (reinterpret_cast<const char*>(single.rows.data() + single.rows.size()) >
                       third_line());
    }
    const char* third_line() const { return reinterpret_cast<const char*>(this) + 128; }
  };
  static_assert(sizeof(NodeState) == 3 * 64, "third_line() is the last line of a state");
  // Bucket `id` of node `n`.
  Bucket& bucket(uint32_t n, uint32_t id) {
    return state_[n].keyed() ? keyed_[n]->at(id) : state_[n].single;
  }
  const Bucket& bucket(uint32_t n, uint32_t id) const {
    return state_[n].keyed() ? keyed_[n]->at(id) : state_[n].single;
  }
  // One emit as the runtime fires it, flattened (rebuild_routes) so that a cold output reads
  // one record: FILTERs that only bound DUR become `max_dur`, a trailing projection of plain
  // attributes (the usual SELECT) becomes `project`, and a target stream's flags are copied
  // here. What is left of the stages runs as before, between the two.
  struct Out {
    static constexpr size_t kMaxProject = 8;
    const nfa::Stage* stages = nullptr;  // the stages left to run
    int64_t max_dur = nfa::kNoDurBound;  // fires only when t1 - t0 <= max_dur
    uint32_t stage_count = 0;
    uint32_t target = 0;  // node or stream id
    uint32_t width = 0;   // ToStream: the stream's width; direct with a period: the node's
    nfa::Emit::Kind kind = nfa::Emit::Kind::ToNode;
    bool published = false, read = false;  // ToStream: see StreamUse
    // ToNode with nothing left between the row and the node (no stages, no projection) and a
    // node without an instance-index key: the instance is built straight from the row.
    bool direct = false;
    // ToStream with nothing left but the projection, on a stream only the user reads (the
    // usual SELECT of a query's last step): the row is projected and published inline.
    bool publish_only = false;
    // Direct: the node's instance is the row's first `period` slots, repeated (instance slot k
    // := row[k % period]; a NEXT's instance is the event, a FOLD's the event twice); 0: any
    // other `init`. With a period, the node's `width` is copied here, so that adding the
    // instance reads no node (its DUR bound is in its state: a START edge's node would be one
    // cold line more).
    uint8_t period = 0;
    uint8_t project_count = 0;             // 0: no projection folded
    uint8_t project[kMaxProject] = {};     // the produced row's slot k := row[project[k]]
    bool last = false;                     // the last emit of its route
    // ToStream: its query's start (query_start_); a row that begins earlier is not its output.
    // (INT64_MIN: the query was added before the first event, so no row begins earlier.)
    int64_t start = INT64_MIN;
    uint32_t owner = 0;  // ToStream: its query (nfa::Emit::owner), for retire_routes()
  };
  static_assert(sizeof(Out) == 64);
  // What the index hands an event to: one START edge, or a whole NEXT/FOLD node. Its emits
  // are outs_[k], outs_[k + 1], ..., the last flagged `last`, from k = first_out_[route]. The
  // route keeps a copy of what the inline cases of fire_out() read of the first emit (its DUR
  // bound, and a direct instance or a projected publish): a START edge has one emit and most
  // nodes too, and these are the usual ones, so an event reads one 32-byte route per candidate
  // (an event's candidates have neighbouring routes: two to a cache line) and outs_ only for
  // the rest.
  // Pointers into automaton_, rebuilt (rebuild_routes) whenever the automaton changes.
  struct alignas(32) Route {
    int64_t max_dur = nfa::kNoDurBound;      // the first emit's
    uint8_t project[Out::kMaxProject] = {};  // the first emit's
    uint32_t target = 0;                     // the first emit's
    // The NEXT/FOLD node; for a START edge, the node its first emit adds instances to (0: it
    // adds none), whose state prefetching reads.
    uint32_t node = 0;
    union {
      uint32_t outs = 0;  // spills: the first emit, in full, in outs_ (else first_out_ has it)
      // Otherwise, of a NEXT/FOLD node: the node whose fields a visit reads (see visit_node()).
      uint32_t visit;
    };
    uint8_t period = 0;                      // the first emit's
    union {  // the first emit's: publish_only's, or (a node's width) direct's
      uint8_t project_count = 0;
      uint8_t width;
    };
    bool edge : 1 = false;                   // a START edge (else the node)
    bool fold : 1 = false;    // the node is a FOLD (its visits read its second line too)
    bool any : 1 = false;     // there is an emit
    bool more : 1 = false;    // more than one
    bool direct : 1 = false;  // the first emit's (see Out)
    bool publish_only : 1 = false;
    bool to_node : 1 = false;     // a START edge to a node: its state is read
    bool reads_node : 1 = false;  // ... and its node (the first emit is not direct with a period)
    bool staged : 1 = false;   // the first emit has stages left
    // Firing reads outs_ on the calling thread: more than one emit, or a first one that is
    // neither direct nor publish_only.
    bool spills : 1 = false;
    // The lookahead (prefetch_nodes/instances) skips the route: a START edge that reads
    // nothing cold (it publishes its row, or its node's route is `fed` and fetches for it).
    bool bare : 1 = false;
    // A node route that fetches what a bare START edge into its node writes (the state's
    // second and third lines): the edge is a candidate only when the node is one too.
    bool fed : 1 = false;
    // A node route that a START edge rides on: the edge is the node's only way in, adds the
    // event as the instance (direct, with the stream's width as its period) and its guard is
    // the node's equality and more. It has no route or posting of its own: the index hands
    // out the node's route with kRides when the event passes the edge's guard too, and the
    // instance is added after the node's visit (ride()). Cleared when the node dies.
    bool feeds : 1 = false;
  };
  static_assert(sizeof(Route) == 32);
  // The node a visit of route `r`'s node reads its kind, width, programs and produced row from
  // (never its DUR bound, which is in its state). Nodes that visit alike share the first of
  // them (rebuild_routes): thousands of queries that differ only in their START filters and DUR
  // bounds then read one node's lines, which stay cached, instead of each its own cold ones.
  const nfa::Node& visit_node(const Route& r) const {
    return automaton_.nodes[r.spills ? r.node : r.visit];
  }
  // A candidate with this bit set (index::StreamIndex::kRides) is a route that `feeds`, whose
  // START edge fires for the event too.
  static constexpr uint32_t kRides = index::StreamIndex::kRides;
  static bool rides(uint32_t candidate) { return (candidate & kRides) != 0; }
  // One unit of a batch: a buffered event and one of its candidates (for a node: a range of
  // the instances of the bucket the event selects, so a large bucket spreads over tasks).
  struct Work {
    uint32_t event;  // index into batch_
    uint32_t route;  // with kRides: the START edge that rides on the route, for the event
    uint32_t bucket;
    uint32_t begin, end;
    size_t weight() const { return size_t{1} + (end - begin); }  // its share of the batch
  };
  // What one thread needs to run events: scratch rows and, for a worker of a parallel batch,
  // the effects it may not apply itself (new instances, outputs, consumed buckets), which are
  // applied in order once the batch is done.
  struct Context {
    // Scratch rows reused across events: a stack, because publishing recurses into readers.
    // Rows are carved from blocks that never move, so a row stays valid while later ones are
    // taken; ScratchRows::Scope gives back every row taken while it lived.
    class ScratchRows {
     public:
      ScratchRows() { next_block(0); }
      Slot* take(size_t width) {
        if (used_ + width > size_) next_block(width);
        Slot* row = blocks_[block_].slots.get() + used_;
        used_ += width;
        return row;
      }
      struct Scope {
        explicit Scope(ScratchRows& r) : rows(r), block(r.block_), used(r.used_), size(r.size_) {}
        ~Scope() {
          rows.block_ = block;
          rows.used_ = used;
          rows.size_ = size;
        }
        ScratchRows& rows;
        size_t block, used, size;
      };

     private:
      void next_block(size_t width);
      struct Block {
        std::unique_ptr<Slot[]> slots;
        size_t size = 0;
      };
      std::vector<Block> blocks_;
      // The block in use, the slots taken from it and its size (blocks_[block_].size, kept
      // here for take()). SIZE_MAX: before the first block.
      size_t block_ = SIZE_MAX, used_ = 0, size_ = 0;
    };
    ScratchRows scratch;
    std::deque<std::vector<uint32_t>> targets;
    size_t targets_top = 0;
    EvalStats eval;
    uint64_t candidates = 0;
    bool deferred = false;  // a worker: record effects instead of applying them
    struct Effect {
      bool output;      // an output row on stream `id`, or a new instance of node `id`
      uint32_t id;
      uint32_t offset;  // into `slots`
      int64_t t0, t1;
    };
    std::vector<Effect> effects;
    std::vector<Slot> slots;
    std::vector<std::pair<uint32_t, uint32_t>> dirty;  // (node, bucket) with a consumed instance
    std::vector<Work> work;  // the work items this task expanded

    // Records an effect and returns its `width` slots, to be filled before the next call.
    Slot* defer(bool output, uint32_t id, size_t width, int64_t t0, int64_t t1);
    std::vector<uint32_t>& scratch_targets();
  };
  struct BufferedEvent {
    uint32_t stream;
    uint32_t offset;  // into batch_slots_
    int64_t t0, t1;
  };
  struct Parallel;  // the TBB arena and the workers' contexts (engine.cpp)

  // The routes and the index, built anew from the whole automaton.
  void rebuild_routes();
  // rebuild_routes(), after dropping the nodes that removed queries left (dead_nodes_): their
  // ids go to the nodes after them, so that a service whose queries come and go does not grow.
  // The nodes from `first_new` on (those a build just added, none of them dead) keep their
  // order; returns where they start now, and renumbers the nodes `changes` names.
  size_t rebuild(size_t first_new, nfa::BuildChanges* changes);
  // Drops the dead nodes from the automaton and from every structure of the engine that holds
  // node ids (states, keyed buckets, the expiry wheel, the epoch's touched buckets); returns
  // each old id's new one (nfa::drop_dead_nodes). The routes must be rebuilt after it.
  std::vector<uint32_t> drop_dead_nodes();
  // After a build that only added nodes and START edges (`changes`; the streams and nodes
  // before it were `old_streams` and `old_nodes`): routes for what is new, appended after those
  // of the last full build and found through delta_, rebuilt with every route added since
  // that build. False when that does not apply (a node of the full build gained emits, a
  // stream gained its first reader, or the delta has grown large): rebuild_routes() must then
  // follow.
  bool extend_routes(size_t old_streams, size_t old_nodes, const nfa::BuildChanges& changes);
  // Appends routes for `readers` (by stream, the nodes whose routes to build: every node from
  // `first_node` on, and the START edges of those before it that delta_first_emit_ names) to
  // routes_, their emits to outs_, and indexes them in `into(stream)`.
  void build_routes(const std::function<index::StreamIndex&(uint32_t)>& into,
                    std::span<const std::pair<uint32_t, std::span<const uint32_t>>> readers,
                    uint32_t first_node);
  // For build_routes(): by node from `first_node` on, the START edge that will ride on the
  // node's route (see Route::feeds), or null; empty when none can.
  std::vector<const nfa::Emit*> find_riders(
      std::span<const std::pair<uint32_t, std::span<const uint32_t>>> readers, uint32_t first_node,
      const std::function<size_t(uint32_t)>& first_emit) const;
  // Counts node `n` among the keyed readers of its stream (keyed_readers_), if it is one.
  void add_keyed_reader(uint32_t n);
  // After nfa::remove_query() of query `id` (the nodes that died, and the emits erased from
  // nodes that live on): the routes of what went stay, but never fire, until the next full
  // build. False when rebuild_routes() is needed instead (a keyed reader list to redo, or more
  // than kMaxAddedRoutes routes retired since the full build, which events still meet as
  // candidates); the rebuild then replaces whatever it changed.
  bool retire_routes(uint32_t id, std::span<const uint32_t> dead,
                     std::span<const std::pair<uint32_t, uint32_t>> erased);
  // An Out's or a route's DUR bound when its emit is gone: t1 - t0 always exceeds it.
  static constexpr int64_t kNeverFires = INT64_MIN;
  // `e` as an Out; its first `skip` stages are left out (the index decides them).
  Out flatten(const nfa::Emit& e, size_t skip) const;
  void close_epoch();
  void run_batch();
  // Appends the work items of candidates [begin, end) of the batch to `out`; returns their
  // weight.
  size_t expand(size_t begin, size_t end, std::vector<Work>& out) const;
  void run_work(Context& cx, const Work& w);
  void apply_effects(size_t workers);
  bool find_bucket(uint32_t node, const Slot* event, uint32_t* bucket) const;
  // An event's candidates: those hint() found ahead for it (the calling thread's context only),
  // or else the index's, matched into a scratch list of `cx` (`matched` says which).
  const std::vector<uint32_t>& find_candidates(Context& cx, uint32_t stream, const Slot* row,
                                               bool& matched);
  // Ask the caches for what running the routes route_of(*it) of [first, last) reads: the
  // nodes, states and stages, then (once those are in) the instances and edges; a candidate
  // node's node line and the rest of its state only once its first line says it has instances
  // (engine.cpp). Into L1 for the event at hand; into L2 for one announced by hint(), which
  // needs them only later (fewer of the core's few outstanding L1 misses taken: measured 5-10%
  // faster).
  static constexpr int kToL1 = 3, kToL2 = 2;  // __builtin_prefetch locality
  template <int Locality, class It, class RouteOf>
  void prefetch_nodes(It first, It last, RouteOf route_of) const;
  template <int Locality, class It, class RouteOf>
  void prefetch_instances(It first, It last, RouteOf route_of) const;
  // Step `step` (0, 1, 2) of asking for the bucket an event of `stream` will visit at each
  // keyed node that reads the stream (keyed_readers_): the table slot of its key, then the
  // bucket, then its records if they are on the heap. One step per hint(), into L2, as the
  // steps above; they need no index, so they begin as the event is announced.
  void prefetch_keyed(uint32_t stream, const Slot* values, int step) const;
  static constexpr size_t kMaxKeyedReaders = 256;
  void deliver(Context& cx, uint32_t stream, const Slot* row, int64_t t0, int64_t t1);
  // Runs an event over the instances [begin, end) of a bucket of route `r`'s node.
  void process(Context& cx, const Route& r, uint32_t bucket, size_t begin, size_t end,
               const Slot* event, int64_t t0, int64_t t1);
  // Runs the emits of route `r` (a START edge, or a node that produced `row`).
  void fire(Context& cx, const Route& r, const Slot* row, int64_t t0, int64_t t1);
  // Adds the instance of the START edge that rides on route `r` (see Route::feeds), for an
  // event of `stream`.
  void ride(Context& cx, const Route& r, uint32_t stream, const Slot* row, int64_t t0, int64_t t1);
  // Runs one emit over `row`: an instance at a node or a row on a stream. The DUR bound, a
  // direct emit and a publish_only one are decided inline from `e`, the emit (an Out) or a
  // route's copy of its first (a Route); the rest is fire_stages() of full(), the emit itself
  // (only then looked up).
  template <class E, class Full>
  [[gnu::always_inline]] void fire_out(Context& cx, const E& e, Full full, const Slot* row,
                                       int64_t t0, int64_t t1) {
    if (t1 - t0 > e.max_dur) return;
    if (e.direct && !cx.deferred) {
      if (e.period)
        add_repeated(e.target, row, t0, t1, e.period, e.width);
      else
        add_direct(e.target, row, t0, t1);
    } else if (e.publish_only && !cx.deferred)
      publish_projected(e.target, e.project, e.project_count, row, t0, t1);
    else
      fire_stages(cx, full(), row, t0, t1);
  }
  // A publish_only emit: `row` projected by project[0, count) (none: as it is) and published.
  void publish_projected(uint32_t stream, const uint8_t* project, uint32_t count, const Slot* row,
                         int64_t t0, int64_t t1) {
    if (count == 0) return publish(stream, row, streams_[stream].width, t0, t1);
    Slot projected[Out::kMaxProject];
    for (uint32_t i = 0; i < count; ++i) projected[i] = row[project[i]];
    publish(stream, projected, count, t0, t1);
  }
  void fire_stages(Context& cx, const Out& o, const Slot* row, int64_t t0, int64_t t1);
  void publish(uint32_t stream, const Slot* row, uint32_t width, int64_t t0, int64_t t1);
  Bucket* bucket_for(uint32_t node, const Slot* instance, uint32_t* id);
  using BucketList = std::vector<std::pair<uint32_t, uint32_t>>;  // (node, bucket)
  // Adds an instance (see Records) and returns whether it was stored (a NaN key is not). On
  // the calling thread (`dirty` null) it is counted and its bucket's expiry queued at once; a
  // partition of apply_effects, which may do neither, puts the bucket on `dirty` instead, so
  // that the epoch's close queues it.
  bool add_instance(uint32_t node, const Slot* instance, int64_t t0, int64_t t1,
                    BucketList* dirty = nullptr);
  // Counts an instance just stored in bucket `id` (`b`) of node `n` and queues its expiry.
  void added(Bucket& b, uint32_t n, uint32_t id) {
    ++stats_.instances;
    schedule(b, n, id);
  }
  void add_from_row(Context& cx, uint32_t node, const Slot* row, int64_t t0, int64_t t1);
  // add_from_row() into a node without a key, on the calling thread: built in place.
  void add_direct(uint32_t node, const Slot* row, int64_t t0, int64_t t1);
  // add_direct() of an instance that repeats the row's first `period` slots (see Out), into a
  // node of `width` slots: reads no node.
  void add_repeated(uint32_t node, const Slot* row, int64_t t0, int64_t t1, uint32_t period,
                    uint32_t width);
  // `consumed`: an instance of the bucket was consumed (else only added to).
  void mark_dirty(uint32_t node, uint32_t bucket, bool consumed, BucketList& dirty) {
    Bucket& b = this->bucket(node, bucket);
    b.consumed |= consumed;
    if (!b.dirty) {
      b.dirty = true;
      dirty.emplace_back(node, bucket);
    }
  }
  void mark_dirty(uint32_t node, uint32_t bucket, bool consumed) {
    mark_dirty(node, bucket, consumed, dirty_);
  }
  // Drops consumed and (by `next_time`) expired instances; adds the change in live instances
  // to `delta` and the expired ones to `expired`.
  // (`max_dur`: its node's bound.)
  void compact(Bucket& b, int64_t max_dur, int64_t next_time, int64_t& delta, uint64_t& expired);
  // compact() of a bucket with more than one record; returns how many were expired.
  uint64_t compact_slow(Bucket& b, int64_t max_dur, int64_t next_time);
  // Compacts the buckets in `list` (in parallel when there are many), clears their dirty flags
  // and queues their next expiry.
  void compact_all(const BucketList& list, int64_t next_time);
  // Queues the next expiry of bucket `bucket` (`b`) of node `n`.
  void schedule(Bucket& b, uint32_t n, uint32_t bucket);
  // schedule() after a compaction at an epoch's close; a Keyed's bucket left empty is released
  // instead (Keyed::release). On the calling thread only.
  void settle(Bucket& b, uint32_t n, uint32_t bucket);
  // Recomputes when each bucket of node `n` expires, by the node's DUR bound now, and queues it
  // (remove_query(), when the bound narrowed).
  void requeue(uint32_t n);
  // Expiry by `next_time` in steps, so that other work hides their cache misses: the due
  // buckets are taken from the wheel and their states asked for (take_due, which adds to those
  // taken before: an epoch's are taken when it opens and again when it closes), their
  // records asked for (prefetch_due, of due_entries_[first, last)), then they are
  // compacted and requeued (expire_due, which empties the list). Of a long list, only the
  // first kDueAhead are asked for ahead (the others would push them out of the cache);
  // expire_due asks for the rest kDueAhead entries ahead of its compaction.
  static constexpr size_t kDueAhead = 16;
  // A bucket id as an expiry entry has it: with kInTable when the bucket is a Keyed's, so that
  // prefetching a due bucket need not read its node's state to find it.
  static constexpr uint32_t kInTable = 1u << 31;
  // A due entry's keyed bucket, or null: not a Keyed's, or its node was removed since.
  const Bucket* due_keyed(const ExpiryWheel::Entry& d) const {
    const Keyed* keyed = d.bucket & kInTable ? keyed_[d.node].get() : nullptr;
    return keyed ? &keyed->at(d.bucket & ~kInTable) : nullptr;
  }
  // The first line a due bucket's expiry reads: the bucket, if it is a Keyed's (whose node's
  // state stays cached: keyed nodes are few), else its node's state.
  const void* due_line(const ExpiryWheel::Entry& d) const {
    const Bucket* b = due_keyed(d);
    return b ? static_cast<const void*>(b) : &state_[d.node];
  }
  void take_due(int64_t next_time);
  void prefetch_due(size_t first, size_t last) const;
  void expire_due(int64_t next_time);

  EngineOptions options_;
  nfa::Automaton automaton_;
  std::vector<NodeState> state_;
  std::vector<std::unique_ptr<Keyed>> keyed_;  // by node: a node with a key's buckets
  std::vector<Route> routes_;
  std::vector<Out> outs_;  // every route's emits, in route order
  // By query: the least t0 of its outputs. A query added while events flow reports only the
  // matches that begin at or after the first epoch that can open once it is added, with or
  // without merging (a merged node may hold instances begun before the query existed).
  std::vector<int64_t> query_start_;
  // Per route, where in outs_ its emits begin: what Route::outs says when the route spills,
  // kept here for those that do not (a worker of a parallel batch runs every emit in full).
  std::vector<uint32_t> first_out_;
  const Out& first_out(const Route& r) const {
    return outs_[r.spills ? r.outs : first_out_[static_cast<size_t>(&r - routes_.data())]];
  }
  // Per stream, what running an edge to it needs (a compact copy of automaton_.streams).
  struct StreamUse {
    uint32_t width;  // attributes
    bool published;  // user-visible: rows go to the sink
    bool read;       // some node reads it
    static StreamUse of(const nfa::Stream& s) {
      return {static_cast<uint32_t>(s.schema.size()), s.kind == nfa::StreamKind::Published,
              !s.readers.empty()};
    }
  };
  std::vector<StreamUse> streams_;
  std::vector<index::StreamIndex> index_;  // per stream
  // By stream, the keyed nodes that read it, if there are at most kMaxKeyedReaders (hint()
  // fetches a bucket of each for every event); only up to the last stream that has some, since
  // most streams are queries' outputs (empty: hint() skips the keyed steps).
  std::vector<std::vector<uint32_t>> keyed_readers_;
  std::vector<std::pair<uint32_t, uint32_t>> dirty_;  // (node, bucket) touched this epoch
  std::vector<ExpiryWheel::Entry> due_entries_;       // taken by take_due, not expired yet
  std::vector<std::pair<uint32_t, uint32_t>> due_;    // scratch of expire_due
  ExpiryWheel deadlines_;
  Sink sink_;
  mutable EngineStats stats_;
  int64_t epoch_ = INT64_MIN;  // t1 of the open epoch
  bool epoch_open_ = false;
  size_t epoch_events_ = 0;    // pushed in the open epoch (with threads: see push())
  int64_t floor_ = INT64_MIN;  // events with a smaller t1 are late
  Context main_;               // the calling thread's
  // Events of the open epoch not run yet, and their work (only with more than one thread).
  std::vector<BufferedEvent> batch_;
  std::vector<Slot> batch_slots_;
  std::vector<std::pair<uint32_t, uint32_t>> cands_;  // (event, route) in one-thread order
  std::vector<Work> work_;
  std::unique_ptr<Parallel> par_;  // null: one thread
  // Events announced by hint(), a ring: ahead_[ahead_next_ - k - 1] was announced k calls ago.
  struct Ahead {
    uint32_t stream = 0;
    bool given = false;  // announced with its candidates (else they are found at step 2)
    std::vector<Slot> values;
    std::vector<uint32_t> candidates;  // from step 2 on, or given
  };
  // Both hint()s: `given`, the candidates found ahead, or null.
  void announce(uint32_t stream, const Slot* values, const std::span<const uint32_t>* given);
  // One more than the distance: the event being pushed is still there, and its push reuses the
  // candidates found ahead (find_candidates()).
  static constexpr size_t kAheadSlots = kHintDistance + 1;
  std::array<Ahead, kAheadSlots> ahead_;
  size_t ahead_next_ = 0, ahead_count_ = 0;
  uint64_t generation_ = 0;
  // Adding a script whose queries bring only new nodes and START edges (the usual case) does
  // not rebuild every route: routes_[0, base_routes_) and outs_[0, base_outs_) are the last
  // full build's, of the nodes before base_nodes_, indexed in index_; the routes after them
  // are those added since, indexed in delta_ (an index for each stream they read; none when
  // there are none), and an event's candidates are those of both. delta_first_emit_: the START
  // nodes of the full build that gained edges since, with their first new emit.
  static constexpr size_t kMaxAddedRoutes = 4096, kMaxAddedStreams = 8;
  struct Delta {
    uint32_t stream;
    index::StreamIndex index;
  };
  std::vector<Delta> delta_;
  std::unordered_map<uint32_t, uint32_t> delta_first_emit_;
  size_t base_routes_ = 0, base_outs_ = 0;
  uint32_t base_nodes_ = 0;
  size_t retired_routes_ = 0;          // of queries removed since the full build (retire_routes())
  size_t dead_nodes_ = 0;              // dead nodes in automaton_ (rebuild() drops them)
  // What retire_routes() looks up in the last full build's routes and outs, so that a removal
  // reads the query's own and not every route (those added since are few, and are scanned):
  // lists threaded through arrays, each ended by kNoLink. owned[q]: the first of query q's
  // outs to a stream; into[n]: the first out to node n; next_out[o]: the out after o in its
  // list. route_of[n]: node n's route; visitors[n]: the first route that visits through node
  // n (visit_node()), next_visitor[r]: the route after r.
  static constexpr uint32_t kNoLink = UINT32_MAX;
  struct Links {
    std::vector<uint32_t> owned, into, next_out, route_of, visitors, next_visitor;
  } links_;
  void link_routes();                  // links_ of the full build just made
  std::vector<uint32_t> keyed_count_;  // by stream: its live keyed readers
  // Last: its worker thread reads programs of automaton_, so it must stop first.
  std::unique_ptr<JitManager> jit_;
};

}  // namespace cayuga
