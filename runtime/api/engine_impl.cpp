// EngineImpl: the locked, query-registry wrapper around the epoch engine (see engine_impl.h).
#include "runtime/api/engine_impl.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace cayuga::api::detail {

namespace {

// The engine whose callback the current thread is running, to refuse re-entrant calls (they
// would deadlock on the engine's mutex).
thread_local const EngineImpl* tl_in_callback = nullptr;

// Marks the current thread as inside `e`'s engine calls; restores the previous mark, so an
// engine pushing into another engine from a callback stays protected.
class CallbackScope {
 public:
  explicit CallbackScope(const EngineImpl* e) : prev_(tl_in_callback) { tl_in_callback = e; }
  ~CallbackScope() { tl_in_callback = prev_; }

 private:
  const EngineImpl* prev_;
};

Status deadlock() {
  return {Code::WouldDeadlock, "called from inside a callback of the same engine"};
}

// Pushes events [0, n) of a batch in order with the engine's lookahead (Engine::hint): event
// i + kHintDistance is announced as event i is pushed, and the first ones before the first
// push, so that every event's cache misses overlap with the work of the events before it (at
// 100k queries, a push without it waits on most of them). `announce(i)` hints event i (or
// nothing, for one that will not be pushed); `push(i)` pushes it and returns false to stop.
template <class Announce, class Push>
void push_with_lookahead(size_t n, Announce announce, Push push) {
  constexpr size_t kAhead = cayuga::Engine::kHintDistance;
  for (size_t i = 0; i < std::min(n, kAhead); ++i) announce(i);
  for (size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) announce(i + kAhead);
    if (!push(i)) return;
  }
}

}  // namespace

EngineUnit to_engine_unit(TimeUnit u) {
  switch (u) {
    case TimeUnit::Microseconds:
      return EngineUnit::Us;
    case TimeUnit::Milliseconds:
      return EngineUnit::Ms;
    case TimeUnit::Seconds:
      return EngineUnit::S;
  }
  return EngineUnit::Ms;
}

Type to_api_type(cayuga::Type t) {
  switch (t) {
    case cayuga::Type::Int:
      return Type::Int;
    case cayuga::Type::Float:
      return Type::Float;
    case cayuga::Type::String:
      return Type::String;
  }
  return Type::Int;
}

namespace {

cayuga::EngineOptions engine_options(const Options& o) {
  cayuga::EngineOptions e;  // merging and the indexes on: they never change results
  e.unit = to_engine_unit(o.unit);
  e.threads = o.threads;
  switch (o.jit) {
    case JitMode::Off:
      e.jit = cayuga::JitMode::Off;
      break;
    case JitMode::On:
      e.jit = cayuga::JitMode::On;
      break;
    case JitMode::Auto:
      e.jit = cayuga::JitMode::Auto;
      break;
  }
  return e;
}

}  // namespace

EngineImpl::EngineImpl(Options opts) : options(opts), engine_(engine_options(opts)) {
  options.threads = engine_.threads();
  engine_.set_sink([this](uint32_t stream, const RowView& row) { on_row(stream, row); });
  snap_ = std::make_shared<StreamSnapshot>();
}

EngineImpl::~EngineImpl() {
  for (auto& list : subs_)
    for (auto& s : list)
      if (s.closer) s.closer();
}

void EngineImpl::on_destroy(uint64_t id, std::function<void()> closer) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  const auto it = sub_stream_.find(id);
  if (it == sub_stream_.end()) return;
  for (auto& s : subs_[it->second])
    if (s.id == id) s.closer = std::move(closer);
}

bool EngineImpl::in_callback() const {
  return tl_in_callback == this;
}

void EngineImpl::refresh_streams() {
  const auto& streams = engine_.automaton().streams;
  subs_.resize(streams.size());
  live_publishers_.resize(streams.size());
  row_bits_.resize((streams.size() + 31) / 32);
  while (fields_.size() < streams.size()) {
    const Schema& s = streams[fields_.size()].schema;
    std::vector<Field> f;
    for (const auto& a : s.attrs) f.push_back(Field{a.name, to_api_type(a.type)});
    fields_.push_back(std::move(f));
  }
  for (const auto& n : engine_.automaton().nodes)
    max_width_ = std::max<uint32_t>(max_width_, std::max<uint32_t>(n.width, 1));

  auto snap = std::make_shared<StreamSnapshot>();
  {
    std::lock_guard lock(snap_mu_);
    snap->version = snap_->version + 1;
  }
  for (size_t id = 0; id < streams.size(); ++id) {
    if (streams[id].kind != nfa::StreamKind::Input) continue;
    snap->schemas.push_back(streams[id].schema);
    snap->table.add(StreamDef{static_cast<uint32_t>(id), streams[id].name, &snap->schemas.back()});
  }
  std::lock_guard lock(snap_mu_);
  snap_ = std::move(snap);
}

std::shared_ptr<const StreamSnapshot> EngineImpl::snapshot() const {
  std::lock_guard lock(snap_mu_);
  return snap_;
}

ScriptResult EngineImpl::add_script(std::string_view text) {
  ScriptResult r;
  if (in_callback()) {
    r.errors.push_back(Error{0, 0, deadlock().message});
    return r;
  }
  std::lock_guard<std::recursive_mutex> lock(mu_);
  const size_t before = engine_.automaton().queries.size();
  Diagnostics ds;
  {
    IndexWriter writer(*this);
    ds = engine_.add_script(text);
  }
  if (!ds.empty()) {
    for (auto& d : ds) r.errors.push_back(Error{d.line, d.column, std::move(d.message)});
    return r;
  }
  refresh_streams();
  // The automaton lists a script's queries in dependency order; report them in script order.
  const auto& all = engine_.automaton().queries;
  std::vector<uint32_t> added;
  for (size_t i = before; i < all.size(); ++i) added.push_back(static_cast<uint32_t>(i));
  std::sort(added.begin(), added.end(),
            [&](uint32_t a, uint32_t b) { return all[a].number < all[b].number; });
  for (uint32_t index : added) {
    const nfa::QueryInfo& q = all[index];
    QueryInfo info;
    info.id = static_cast<uint32_t>(queries_.size() + 1);
    info.stream = q.publish;
    info.stream_id = q.stream;
    queries_.push_back(QueryRec{info, index});
    ++live_publishers_[q.stream];
    update_row_bits(q.stream);
    r.queries.push_back(info);
  }
  return r;
}

Status EngineImpl::remove_query(uint32_t id) {
  if (in_callback()) return deadlock();
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (id == 0 || id > queries_.size()) return {Code::NotFound, "no query " + std::to_string(id)};
  QueryInfo& q = queries_[id - 1].info;
  if (q.removed) return {Code::NotFound, "query " + std::to_string(id) + " was already removed"};
  q.removed = true;
  ++removed_queries_;
  --live_publishers_[q.stream_id];
  update_row_bits(q.stream_id);
  IndexWriter writer(*this);
  engine_.remove_query(queries_[id - 1].automaton_index);
  return {};
}

std::vector<QueryInfo> EngineImpl::queries() const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  std::vector<QueryInfo> out;
  for (const auto& q : queries_) out.push_back(q.info);
  return out;
}

std::vector<StreamInfo> EngineImpl::streams() const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  std::vector<StreamInfo> out;
  const auto& streams = engine_.automaton().streams;
  for (size_t id = 0; id < streams.size(); ++id) {
    const auto& s = streams[id];
    if (s.kind == nfa::StreamKind::Internal) continue;
    StreamInfo info;
    info.id = static_cast<uint32_t>(id);
    info.name = s.name;
    info.kind = s.kind == nfa::StreamKind::Input ? StreamKind::Input : StreamKind::Published;
    info.fields = fields_[id];
    info.delivering = info.kind == StreamKind::Input || live_publishers_[id] > 0;
    out.push_back(std::move(info));
  }
  return out;
}

std::optional<uint32_t> EngineImpl::stream_id(std::string_view name) const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  int64_t id = engine_.automaton().find_stream(name);
  if (id < 0 || engine_.automaton().streams[id].kind == nfa::StreamKind::Internal)
    return std::nullopt;
  return static_cast<uint32_t>(id);
}

const std::string& EngineImpl::stream_name(uint32_t stream) const {
  return engine_.automaton().streams[stream].name;
}
const Schema& EngineImpl::stream_schema(uint32_t stream) const {
  return engine_.automaton().streams[stream].schema;
}
const std::vector<Field>& EngineImpl::stream_fields(uint32_t stream) const {
  return fields_[stream];
}

Status EngineImpl::push_locked(uint32_t stream, int64_t t0, int64_t t1, const Slot* values,
                               bool flush) {
  if (closed_) return {Code::Closed, "the engine was finished"};
  const auto& streams = engine_.automaton().streams;
  if (stream >= streams.size() || streams[stream].kind != nfa::StreamKind::Input) {
    ++rejected_;
    return {Code::InvalidArgument, "stream " + std::to_string(stream) + " is not an input stream"};
  }
  const int64_t now = engine_.current_time();
  cayuga::Engine::PushResult r;
  {
    CallbackScope scope(this);
    r = engine_.push(stream, t0, t1, values);
    // With several threads the engine buffers the epoch's events; running them now keeps the
    // contract that a push's outputs reach the callbacks before it returns.
    if (flush) engine_.flush();
  }
  if (r == cayuga::Engine::PushResult::Late && options.late == LatePolicy::Error)
    return {Code::Late, "late event: t=" + std::to_string(t1) + " is before the current time " +
                            std::to_string(now)};
  return {};
}

Status EngineImpl::push_slots(uint32_t stream, int64_t t0, int64_t t1, const Slot* values) {
  if (in_callback()) return deadlock();
  std::lock_guard<std::recursive_mutex> lock(mu_);
  return push_locked(stream, t0, t1, values);
}

void EngineImpl::match_batch(std::span<const SlotEvent> events, const Slot* slots,
                             Matched& out) const {
  out.candidates.clear();
  out.first.clear();
  if (index_writers_.load(std::memory_order_acquire) > 0) return;  // (see the header)
  std::shared_lock<std::shared_mutex> lock(index_mu_);
  engine_.match_batch(
      events.size(),
      [&](size_t i) { return std::pair(events[i].stream, slots + events[i].offset); },
      out.candidates,
      [&](size_t, size_t first, size_t) { out.first.push_back(static_cast<uint32_t>(first)); });
  out.first.push_back(static_cast<uint32_t>(out.candidates.size()));
  out.generation = engine_.generation();
}

void EngineImpl::push_slot_batch(std::span<const SlotEvent> events, const Slot* slots,
                                 uint64_t* late, const Matched* matched) {
  const bool given = matched && matched->first.size() == events.size() + 1;
  std::lock_guard<std::recursive_mutex> lock(mu_);
  const uint64_t before = engine_.stats().late_events;
  {
    CallbackScope scope(this);
    push_with_lookahead(
        events.size(),
        [&](size_t i) {
          const Slot* values = slots + events[i].offset;
          if (!given) return engine_.hint(events[i].stream, values);
          const uint32_t at = matched->first[i], count = matched->first[i + 1] - at;
          engine_.hint(events[i].stream, values,
                       std::span<const uint32_t>(matched->candidates.data() + at, count),
                       matched->generation);
        },
        [&](size_t i) {
          if (closed_) return false;
          const SlotEvent& e = events[i];
          engine_.push(e.stream, e.t0, e.t1, slots + e.offset);
          return true;
        });
    engine_.flush();  // the whole batch at once: this is where several threads pay
  }
  if (late) *late += engine_.stats().late_events - before;
}

Status EngineImpl::check_event(const Event& e, std::vector<Slot>& slots) const {
  const auto& streams = engine_.automaton().streams;
  if (e.stream >= streams.size() || streams[e.stream].kind != nfa::StreamKind::Input)
    return {Code::InvalidArgument,
            "stream " + std::to_string(e.stream) + " is not an input stream"};
  const Schema& schema = streams[e.stream].schema;
  if (e.values.size() != schema.size())
    return {Code::InvalidArgument, streams[e.stream].name + " has " +
                                       std::to_string(schema.size()) + " attributes, got " +
                                       std::to_string(e.values.size()) + " values"};
  slots.resize(schema.size());
  for (size_t i = 0; i < schema.size(); ++i) {
    const Value& v = e.values[i];
    const Attribute& a = schema.attrs[i];
    bool ok = true;
    switch (a.type) {
      case cayuga::Type::Int:
        ok = v.type() == Type::Int;
        slots[i].i = v.as_int();
        break;
      case cayuga::Type::Float:
        ok = v.type() == Type::Float || v.type() == Type::Int;
        slots[i].f = v.as_float();
        break;
      case cayuga::Type::String:
        ok = v.type() == Type::String;
        if (ok) slots[i].s = intern(v.as_string());
        break;
    }
    if (!ok)
      return {Code::InvalidArgument, streams[e.stream].name + "." + a.name + " is " +
                                         cayuga::to_string(a.type) + ", got " +
                                         to_string(v.type())};
  }
  return {};
}

Status EngineImpl::push_values(const Event& e) {
  if (in_callback()) return deadlock();
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (closed_) return {Code::Closed, "the engine was finished"};
  if (Status s = check_event(e, scratch_); !s.ok()) {
    ++rejected_;
    return s;
  }
  return push_locked(e.stream, e.t, e.t, scratch_.data());
}

BatchResult EngineImpl::push_value_batch(std::span<const Event> events) {
  BatchResult r;
  if (in_callback()) {
    for (size_t i = 0; i < events.size(); ++i) r.failures.push_back({i, deadlock()});
    return r;
  }
  std::lock_guard<std::recursive_mutex> lock(mu_);
  // Every event is converted first, so that each can be announced to the engine
  // (Engine::hint) a few pushes before its own.
  constexpr size_t kBad = SIZE_MAX;
  std::vector<Status> bad;  // the conversion failures, in order
  batch_at_.assign(events.size(), kBad);
  batch_slots_.clear();
  for (size_t i = 0; i < events.size(); ++i) {
    Status s = check_event(events[i], scratch_);
    if (!s.ok()) {
      bad.push_back(std::move(s));
      continue;
    }
    batch_at_[i] = batch_slots_.size();
    batch_slots_.insert(batch_slots_.end(), scratch_.begin(), scratch_.end());
  }
  auto next_bad = bad.begin();
  push_with_lookahead(
      events.size(),
      [&](size_t i) {
        if (batch_at_[i] != kBad)
          engine_.hint(events[i].stream, batch_slots_.data() + batch_at_[i]);
      },
      [&](size_t i) {
        if (batch_at_[i] == kBad) {
          Status s = std::move(*next_bad++);
          if (s.code == Code::InvalidArgument) ++rejected_;
          r.failures.push_back({i, std::move(s)});
          return true;
        }
        const uint64_t late_before = engine_.stats().late_events;
        Status s = push_locked(events[i].stream, events[i].t, events[i].t,
                               batch_slots_.data() + batch_at_[i], false);
        if (!s.ok()) {
          r.failures.push_back({i, std::move(s)});
          return true;
        }
        ++r.accepted;
        if (engine_.stats().late_events != late_before) ++r.late;
        return true;
      });
  CallbackScope scope(this);
  engine_.flush();
  return r;
}

Status EngineImpl::advance_to(int64_t t) {
  if (in_callback()) return deadlock();
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (closed_) return {Code::Closed, "the engine was finished"};
  CallbackScope scope(this);
  engine_.advance_to(t);
  return {};
}

Status EngineImpl::finish() {
  if (in_callback()) return deadlock();
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (closed_) return {};
  {
    CallbackScope scope(this);
    engine_.finish();
  }
  closed_ = true;
  return {};
}

int64_t EngineImpl::current_time() const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  return engine_.current_time();
}

Stats EngineImpl::stats() const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  const EngineStats& es = engine_.stats();
  Stats s;
  s.events_in = es.events_in;
  s.rejected = rejected_;
  s.late_events = es.late_events;
  s.outputs = outputs_;
  s.epochs = es.epochs;
  s.instances = es.instances;
  s.peak_instances = es.peak_instances;
  s.expired = es.expired;
  s.div_by_zero = es.div_by_zero;
  s.removed_queries = removed_queries_;
  s.queries = queries_.size() - removed_queries_;
  s.subscriptions = sub_stream_.size();
  // Per instance: its slots plus t0, t1 and a consumed flag (runtime/engine.h NodeState).
  s.memory_bytes = es.instances * (uint64_t{max_width_} * sizeof(Slot) + 17);
  s.memory_budget = options.memory_budget;
  s.over_budget = options.memory_budget != 0 && s.memory_bytes > options.memory_budget;
  s.current_time = engine_.current_time();
  return s;
}

void EngineImpl::update_row_bits(uint32_t stream) {
  const uint64_t bits =
      (live_publishers_[stream] > 0 ? kDelivering : 0) | (subs_[stream].empty() ? 0 : kSubscribed);
  const unsigned shift = stream % 32 * 2;
  uint64_t& word = row_bits_[stream / 32];
  word = (word & ~(uint64_t{3} << shift)) | bits << shift;
}

void EngineImpl::on_row(uint32_t stream, const RowView& row) {
  if (stream / 32 >= row_bits_.size()) return;
  const uint64_t bits = row_bits(stream);
  if (!(bits & kDelivering)) return;
  ++outputs_;
  if (bits & kSubscribed)
    for (const Sub& s : subs_[stream]) s.cb(stream, row);
}

Result<uint64_t> EngineImpl::subscribe_rows(std::string_view stream, RowCallback cb) {
  if (in_callback()) return {deadlock(), 0};
  std::lock_guard<std::recursive_mutex> lock(mu_);
  int64_t id = engine_.automaton().find_stream(stream);
  if (id < 0 || engine_.automaton().streams[id].kind != nfa::StreamKind::Published)
    return {{Code::NotFound, "no published stream " + std::string(stream)}, 0};
  const uint64_t sub = next_sub_++;
  subs_[id].push_back(Sub{sub, std::move(cb), {}});
  update_row_bits(static_cast<uint32_t>(id));
  sub_stream_.emplace(sub, static_cast<uint32_t>(id));
  return {{}, sub};
}

Status EngineImpl::unsubscribe(uint64_t id) {
  if (in_callback()) return deadlock();
  std::lock_guard<std::recursive_mutex> lock(mu_);
  const auto found = sub_stream_.find(id);
  if (found == sub_stream_.end()) return {Code::NotFound, "no subscription " + std::to_string(id)};
  const uint32_t stream = found->second;
  sub_stream_.erase(found);
  std::erase_if(subs_[stream], [&](const Sub& s) { return s.id == id; });
  update_row_bits(stream);
  return {};
}

}  // namespace cayuga::api::detail
