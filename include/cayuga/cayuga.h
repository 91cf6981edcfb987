// The cayuga embedding API: run CEL queries (docs/CEL.md) inside a C++ program.
//
// Design. One class, cayuga::api::Engine, owns a running set of queries. Scripts are added and
// queries removed while it runs; events are pushed as typed values (no string parsing); the
// results of any published stream reach the program through a callback or a bounded pull queue.
// Nothing here throws: every failure is a value (Status, or Error with line and column for
// scripts). The header is self-contained: none of the engine's internal headers leak through,
// so the internals can change without breaking programs built against this API.
//
// Time. Every event carries one timestamp `t` in the engine's time unit (Options::unit). Events
// must arrive in non-decreasing `t` across all streams; an earlier one is late (Options::late).
// All events with the same `t` form one epoch (CEL.md §7) and are matched against the state as
// it was when the epoch began. advance_to(t) is the heartbeat: it declares that no event before
// `t` will come, which closes the open epoch and frees instances whose DUR bound has passed.
//
// Removing a query (remove_query) stops delivering its outputs; it does not unload its
// automaton. See the comment on remove_query for the exact contract.
//
// Thread-safety contract:
//   * An Engine is internally synchronized: every method may be called from any thread; calls
//     are serialized by one mutex (they do not run in parallel).
//   * Callbacks run on the thread that called push/push_batch/advance_to/finish, while that call
//     holds the engine's lock, in the order the outputs are produced. A callback must not call
//     back into the same Engine: such calls return Code::WouldDeadlock instead of blocking.
//     Keep callbacks short; hand heavy work to another thread (or use an OutputQueue).
//   * OutputQueue is thread-safe: any number of threads may pop while the engine pushes.
//   * Values handed to callbacks and queues stay valid for the life of the process: strings are
//     interned in a process-wide table that never shrinks.
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cayuga::api {

namespace detail {
struct EngineImpl;
}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Values.

enum class Type : uint8_t { Int, Float, String };
const char* to_string(Type t);  // "INT", "FLOAT", "STRING"

// One attribute value: INT (int64), FLOAT (double) or STRING. A Value built from a string only
// refers to it (no copy): the text must stay alive until push() returns. Values produced by the
// engine refer to interned strings, valid for the process lifetime.
class Value {
 public:
  Value() : type_(Type::Int), i_(0) {}
  template <std::integral I>
  Value(I v) : type_(Type::Int), i_(static_cast<int64_t>(v)) {}  // NOLINT: implicit on purpose
  template <std::floating_point F>
  Value(F v) : type_(Type::Float), f_(static_cast<double>(v)) {}                  // NOLINT
  Value(std::string_view s) : type_(Type::String), s_(s.data()), n_(s.size()) {}  // NOLINT
  Value(const char* s) : Value(std::string_view(s)) {}                            // NOLINT
  Value(const std::string& s) : Value(std::string_view(s)) {}                     // NOLINT

  Type type() const { return type_; }
  int64_t as_int() const { return type_ == Type::Int ? i_ : 0; }
  // An INT reads as a double, so FLOAT attributes may be given integers.
  double as_float() const {
    return type_ == Type::Float ? f_ : type_ == Type::Int ? static_cast<double>(i_) : 0.0;
  }
  std::string_view as_string() const {
    return type_ == Type::String ? std::string_view(s_, n_) : std::string_view();
  }
  // "42", "1.5" (shortest round-trip), "IBM" (strings unquoted).
  std::string to_string() const;

 private:
  Type type_;
  union {
    int64_t i_;
    double f_;
    const char* s_;
  };
  size_t n_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Status values.

enum class Code : uint8_t {
  Ok,
  InvalidArgument,  // bad event (unknown stream, wrong arity or type), bad option
  ScriptError,      // the script did not compile; see errors
  NotFound,         // unknown query or stream id
  Late,             // an event before the current time (with LatePolicy::Error)
  WouldDeadlock,    // called from inside one of this engine's callbacks
  Closed,           // the engine was finished
};
const char* to_string(Code c);

// A compile error: 1-based line and column in the script text (0 when it has no position).
struct Error {
  uint32_t line = 0;
  uint32_t column = 0;
  std::string message;
  std::string to_string() const;  // "3:28: unknown attribute ..."
};

struct Status {
  Code code = Code::Ok;
  std::string message;
  bool ok() const { return code == Code::Ok; }
};

template <class T>
struct Result {
  Status status;
  T value{};
  bool ok() const { return status.ok(); }
};

// ---------------------------------------------------------------------------------------------
// Options.

enum class TimeUnit : uint8_t { Microseconds, Milliseconds, Seconds };
// Predicates and maps as native code (LLVM): Off = interpreter only; On = compile before running;
// Auto = interpret while compiling in the background. Results are identical in every mode.
enum class JitMode : uint8_t { Off, On, Auto };
enum class LatePolicy : uint8_t {
  DropAndCount,  // a late event is dropped and counted (Stats::late_events); push returns Ok
  Error,         // ... and push returns Code::Late (push_batch lists it in errors)
};

struct Options {
  TimeUnit unit = TimeUnit::Milliseconds;
  JitMode jit = JitMode::Auto;
  // Worker threads for an epoch's work; 0 = one per core (options() then reports the number
  // in use). The events of one push_batch call are matched in parallel when there is enough
  // work; outputs, their order and the state are the same for every thread count, and still
  // reach callbacks before the push call returns.
  unsigned threads = 0;
  LatePolicy late = LatePolicy::DropAndCount;
  // Bytes of instance state (an estimate, see Stats::memory_bytes) above which Stats reports
  // over_budget. 0 = no budget. Not enforced: nothing is rejected when it is exceeded.
  uint64_t memory_budget = 0;
};

// ---------------------------------------------------------------------------------------------
// Streams, queries, events and outputs.

struct Field {
  std::string name;
  Type type;
};

enum class StreamKind : uint8_t { Input, Published };

struct StreamInfo {
  uint32_t id = 0;  // use with push() and subscribe(); stable for the engine's life
  std::string name;
  StreamKind kind = StreamKind::Input;
  std::vector<Field> fields;
  // Published streams whose every publishing query was removed deliver nothing.
  bool delivering = true;
};

struct QueryInfo {
  uint32_t id = 0;     // engine-wide, 1-based, never reused
  std::string stream;  // the stream it publishes (its PUBLISH name, or q<N>)
  uint32_t stream_id = 0;
  bool removed = false;
};

struct ScriptResult {
  std::vector<QueryInfo> queries;  // in script order
  std::vector<Error> errors;       // empty on success; on error nothing was added
  bool ok() const { return errors.empty(); }
};

// An input event: a point in time with one value per attribute, in schema order.
struct Event {
  uint32_t stream = 0;
  int64_t t = 0;
  std::span<const Value> values;
};

// A result handed to a callback. `values` is valid only during the call (copy it to keep it;
// the strings it refers to stay valid for good).
struct Output {
  uint32_t stream = 0;
  std::string_view stream_name;
  int64_t t0 = 0;
  int64_t t1 = 0;
  std::span<const Value> values;
  std::span<const Field> fields;
  // The CEL.md §8 JSON object, without a trailing newline:
  // {"stream":"Pairs","t0":5,"t1":9,"Name_1":"IBM",...}
  std::string to_json() const;
};

// An owned copy of an Output, as held by an OutputQueue.
struct OutputRow {
  uint32_t stream = 0;
  int64_t t0 = 0;
  int64_t t1 = 0;
  std::vector<Value> values;
};

struct BatchResult {
  size_t accepted = 0;  // events handed to the engine (late events dropped by policy count too)
  size_t late = 0;      // of those, dropped as late (LatePolicy::DropAndCount)
  struct Failure {
    size_t index;  // position in the batch
    Status status;
  };
  std::vector<Failure> failures;  // events rejected; the others were still pushed, in order
};

struct Stats {
  uint64_t events_in = 0;    // events accepted by the engine (not late)
  uint64_t rejected = 0;     // events refused by push (bad stream, arity, type)
  uint64_t late_events = 0;  // dropped: before the current time
  uint64_t outputs = 0;      // rows delivered to subscribers (removed queries excluded)
  uint64_t epochs = 0;
  uint64_t instances = 0;  // live partial matches
  uint64_t peak_instances = 0;
  uint64_t expired = 0;  // instances freed because their DUR bound passed
  uint64_t div_by_zero = 0;
  uint64_t queries = 0;  // live (not removed) queries
  uint64_t removed_queries = 0;
  uint64_t subscriptions = 0;
  uint64_t memory_bytes = 0;  // estimate of instance state: instances x widest instance
  uint64_t memory_budget = 0;
  bool over_budget = false;
  int64_t current_time = 0;  // the smallest t an event may still have
};

// ---------------------------------------------------------------------------------------------
// Pull subscription: a bounded, thread-safe queue of outputs.

enum class Overflow : uint8_t {
  Block,       // the pushing thread waits for room (never pop on that thread!)
  DropNewest,  // the new output is dropped and counted (dropped())
  Close,       // the queue is closed with reason "overflow"; later outputs are dropped
};

class OutputQueue {
 public:
  ~OutputQueue();
  OutputQueue(const OutputQueue&) = delete;
  OutputQueue& operator=(const OutputQueue&) = delete;

  // Waits up to `timeout` for an output. False on timeout, or when closed and empty.
  bool pop(OutputRow& out, std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  size_t size() const;
  size_t capacity() const;
  uint64_t dropped() const;
  // Closed: unsubscribed, overflowed (Overflow::Close) or the engine was destroyed. Rows already
  // queued can still be popped.
  bool closed() const;
  std::string close_reason() const;

  struct State;  // implementation detail

 private:
  friend class Engine;
  OutputQueue(std::shared_ptr<State> s, std::weak_ptr<detail::EngineImpl> engine,
              uint64_t subscription);
  std::shared_ptr<State> state_;
  std::weak_ptr<detail::EngineImpl> engine_;  // unsubscribed on destruction if still alive
  uint64_t subscription_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The engine.

class Engine {
 public:
  explicit Engine(Options options = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const Options& options() const;

  // Compiles a script (CREATE STREAM statements and queries) against the streams already in the
  // engine and starts its queries. On any error nothing is added.
  ScriptResult add_script(std::string_view cel_text);

  // Stops delivering the query's outputs and marks it removed. Its automaton keeps running until
  // the engine is destroyed (state is not reclaimed), so queries reading its stream keep working
  // and no other query loses its partial matches. Rows of a stream are delivered as long as one
  // live query publishes it: a query that shares its PUBLISH name with a live one (a union)
  // therefore keeps contributing to that stream. NotFound for an unknown or removed id.
  Status remove_query(uint32_t query_id);

  std::vector<QueryInfo> queries() const;  // including removed ones
  std::vector<StreamInfo> streams() const;
  std::optional<uint32_t> stream_id(std::string_view name) const;

  // Pushes one event. InvalidArgument: unknown or non-input stream, wrong number of values, a
  // value of the wrong type (an INT is accepted for a FLOAT). Late: see LatePolicy.
  Status push(const Event& event);
  Status push(std::string_view stream, int64_t t, std::span<const Value> values);
  Status push(uint32_t stream, int64_t t, std::initializer_list<Value> values) {
    return push(Event{stream, t, std::span<const Value>(values.begin(), values.size())});
  }
  Status push(std::string_view stream, int64_t t, std::initializer_list<Value> values) {
    return push(stream, t, std::span<const Value>(values.begin(), values.size()));
  }
  // Pushes events in order under one lock; a bad event is reported and skipped.
  BatchResult push_batch(std::span<const Event> events);

  // Heartbeat: no event before `t` will come. Closes the epoch and frees expired instances.
  Status advance_to(int64_t t);
  // Closes the open epoch (end of input). Pushing afterwards returns Closed.
  Status finish();

  Stats stats() const;

  // Callback subscription to a published stream (see the thread-safety contract above).
  using Callback = std::function<void(const Output&)>;
  Result<uint64_t> subscribe(std::string_view stream, Callback callback);
  // After it returns, the callback is not running and will not be called again (unless called
  // from inside a callback of this engine, which returns WouldDeadlock).
  Status unsubscribe(uint64_t subscription);

  // Pull subscription. The queue holds at most `capacity` rows.
  Result<std::unique_ptr<OutputQueue>> subscribe_queue(std::string_view stream, size_t capacity,
                                                       Overflow overflow = Overflow::Close);

  // Implementation access for the cayuga service (not part of the stable API).
  const std::shared_ptr<detail::EngineImpl>& impl() const { return impl_; }

 private:
  std::shared_ptr<detail::EngineImpl> impl_;
};

}  // namespace cayuga::api
