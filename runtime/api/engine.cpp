// cayuga::api::Engine and OutputQueue: the public embedding API over EngineImpl.
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <deque>

#include "cayuga/cayuga.h"
#include "runtime/api/engine_impl.h"

namespace cayuga::api {

using detail::EngineImpl;

const char* to_string(Type t) {
  switch (t) {
    case Type::Int:
      return "INT";
    case Type::Float:
      return "FLOAT";
    case Type::String:
      return "STRING";
  }
  return "?";
}

const char* to_string(Code c) {
  switch (c) {
    case Code::Ok:
      return "ok";
    case Code::InvalidArgument:
      return "invalid argument";
    case Code::ScriptError:
      return "script error";
    case Code::NotFound:
      return "not found";
    case Code::Late:
      return "late";
    case Code::WouldDeadlock:
      return "would deadlock";
    case Code::Closed:
      return "closed";
  }
  return "?";
}

std::string Value::to_string() const {
  switch (type_) {
    case Type::Int:
      return std::to_string(i_);
    case Type::Float: {
      std::string s;
      append_double(s, f_);
      return s;
    }
    case Type::String:
      return std::string(as_string());
  }
  return {};
}

std::string Error::to_string() const {
  return std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

std::string Output::to_json() const {
  std::string out = "{\"stream\":";
  append_json_string(out, stream_name);
  out += ",\"t0\":" + std::to_string(t0) + ",\"t1\":" + std::to_string(t1);
  for (size_t i = 0; i < values.size() && i < fields.size(); ++i) {
    out += ',';
    append_json_string(out, fields[i].name);
    out += ':';
    const Value& v = values[i];
    switch (v.type()) {
      case Type::Int:
        out += std::to_string(v.as_int());
        break;
      case Type::Float:
        if (std::isfinite(v.as_float()))
          append_double(out, v.as_float());
        else
          out += "null";
        break;
      case Type::String:
        append_json_string(out, v.as_string());
        break;
    }
  }
  out += '}';
  return out;
}

namespace {

// Converts an internal row into public values (strings view the interner: process lifetime).
void to_values(const Schema& schema, const RowView& row, std::vector<Value>& out) {
  out.clear();
  for (size_t i = 0; i < schema.size(); ++i) {
    const Slot v = row.values[i];
    switch (schema.attrs[i].type) {
      case cayuga::Type::Int:
        out.emplace_back(v.i);
        break;
      case cayuga::Type::Float:
        out.emplace_back(v.f);
        break;
      case cayuga::Type::String:
        out.emplace_back(interned(v.s));
        break;
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// OutputQueue.

struct OutputQueue::State {
  mutable std::mutex mu;
  std::condition_variable not_empty, not_full;
  std::deque<OutputRow> rows;
  size_t capacity = 0;
  Overflow overflow = Overflow::Close;
  uint64_t dropped = 0;
  bool closed = false;
  std::string reason;

  void close(std::string why) {
    std::lock_guard lock(mu);
    if (closed) return;
    closed = true;
    reason = std::move(why);
    not_empty.notify_all();
    not_full.notify_all();
  }
  // Runs on the engine's pushing thread.
  void offer(OutputRow&& row) {
    std::unique_lock lock(mu);
    if (closed) {
      ++dropped;
      return;
    }
    if (rows.size() >= capacity) {
      switch (overflow) {
        case Overflow::Block:
          not_full.wait(lock, [&] { return closed || rows.size() < capacity; });
          if (closed) {
            ++dropped;
            return;
          }
          break;
        case Overflow::DropNewest:
          ++dropped;
          return;
        case Overflow::Close:
          ++dropped;
          closed = true;
          reason = "overflow: the queue held " + std::to_string(capacity) + " rows";
          not_empty.notify_all();
          return;
      }
    }
    rows.push_back(std::move(row));
    not_empty.notify_one();
  }
};

OutputQueue::OutputQueue(std::shared_ptr<State> s, std::weak_ptr<EngineImpl> engine,
                         uint64_t subscription)
    : state_(std::move(s)), engine_(std::move(engine)), subscription_(subscription) {}

OutputQueue::~OutputQueue() {
  state_->close("unsubscribed");  // first: a Block-ed pusher wakes up and drops
  if (auto e = engine_.lock()) e->unsubscribe(subscription_);
}

bool OutputQueue::pop(OutputRow& out, std::chrono::milliseconds timeout) {
  std::unique_lock lock(state_->mu);
  if (!state_->not_empty.wait_for(lock, timeout,
                                  [&] { return !state_->rows.empty() || state_->closed; }))
    return false;
  if (state_->rows.empty()) return false;
  out = std::move(state_->rows.front());
  state_->rows.pop_front();
  state_->not_full.notify_one();
  return true;
}

size_t OutputQueue::size() const {
  std::lock_guard lock(state_->mu);
  return state_->rows.size();
}
size_t OutputQueue::capacity() const {
  return state_->capacity;
}
uint64_t OutputQueue::dropped() const {
  std::lock_guard lock(state_->mu);
  return state_->dropped;
}
bool OutputQueue::closed() const {
  std::lock_guard lock(state_->mu);
  return state_->closed;
}
std::string OutputQueue::close_reason() const {
  std::lock_guard lock(state_->mu);
  return state_->reason;
}

// ---------------------------------------------------------------------------------------------
// Engine.

Engine::Engine(Options options) : impl_(std::make_shared<EngineImpl>(options)) {}
Engine::~Engine() = default;

const Options& Engine::options() const {
  return impl_->options;
}

ScriptResult Engine::add_script(std::string_view text) {
  return impl_->add_script(text);
}
Status Engine::remove_query(uint32_t id) {
  return impl_->remove_query(id);
}
std::vector<QueryInfo> Engine::queries() const {
  return impl_->queries();
}
std::vector<StreamInfo> Engine::streams() const {
  return impl_->streams();
}
std::optional<uint32_t> Engine::stream_id(std::string_view name) const {
  return impl_->stream_id(name);
}

Status Engine::push(const Event& event) {
  return impl_->push_values(event);
}

Status Engine::push(std::string_view stream, int64_t t, std::span<const Value> values) {
  std::optional<uint32_t> id = impl_->stream_id(stream);
  if (!id) return {Code::InvalidArgument, "unknown stream " + std::string(stream)};
  return impl_->push_values(Event{*id, t, values});
}

BatchResult Engine::push_batch(std::span<const Event> events) {
  return impl_->push_value_batch(events);
}

Status Engine::advance_to(int64_t t) {
  return impl_->advance_to(t);
}
Status Engine::finish() {
  return impl_->finish();
}
Stats Engine::stats() const {
  return impl_->stats();
}

Result<uint64_t> Engine::subscribe(std::string_view stream, Callback callback) {
  EngineImpl* impl = impl_.get();
  return impl_->subscribe_rows(stream,
                               [impl, cb = std::move(callback), values = std::vector<Value>()](
                                   uint32_t id, const RowView& row) mutable {
                                 const Schema& schema = impl->stream_schema(id);
                                 to_values(schema, row, values);
                                 Output out;
                                 out.stream = id;
                                 out.stream_name = impl->stream_name(id);
                                 out.t0 = row.t0;
                                 out.t1 = row.t1;
                                 out.values = values;
                                 out.fields = impl->stream_fields(id);
                                 cb(out);
                               });
}

Status Engine::unsubscribe(uint64_t subscription) {
  return impl_->unsubscribe(subscription);
}

Result<std::unique_ptr<OutputQueue>> Engine::subscribe_queue(std::string_view stream,
                                                             size_t capacity, Overflow overflow) {
  if (capacity == 0) return {{Code::InvalidArgument, "queue capacity must be at least 1"}, nullptr};
  auto state = std::make_shared<OutputQueue::State>();
  state->capacity = capacity;
  state->overflow = overflow;
  EngineImpl* impl = impl_.get();
  Result<uint64_t> sub =
      impl_->subscribe_rows(stream, [impl, state](uint32_t id, const RowView& row) {
        OutputRow out;
        out.stream = id;
        out.t0 = row.t0;
        out.t1 = row.t1;
        to_values(impl->stream_schema(id), row, out.values);
        state->offer(std::move(out));
      });
  if (!sub.ok()) return {sub.status, nullptr};
  impl_->on_destroy(sub.value, [state] { state->close("the engine was destroyed"); });
  return {{}, std::unique_ptr<OutputQueue>(new OutputQueue(state, impl_, sub.value))};
}

}  // namespace cayuga::api
