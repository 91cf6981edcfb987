#include "runtime/engine.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>

namespace cayuga {

using nfa::Emit;
using nfa::Node;
using nfa::NodeKind;
using nfa::Stage;

namespace {

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::strcmp(v, "0") != 0;
}

// Restores a LIFO scratch stack on scope exit.
struct ScratchGuard {
  size_t& top;
  size_t saved;
  explicit ScratchGuard(size_t& t) : top(t), saved(t) {}
  ~ScratchGuard() { top = saved; }
};

}  // namespace

EngineOptions EngineOptions::from_env() {
  EngineOptions o;
  o.merge = !env_flag("CAYUGA_NO_MERGE");
  o.index = !env_flag("CAYUGA_NO_INDEX");
  o.instance_index = !env_flag("CAYUGA_NO_INSTANCE_INDEX");
  if (const char* j = std::getenv("CAYUGA_JIT"))
    if (auto mode = parse_jit_mode(j)) o.jit = *mode;
  if (const char* t = std::getenv("CAYUGA_THREADS"); t && *t)
    o.threads = static_cast<unsigned>(std::strtoul(t, nullptr, 10));
  return o;
}

Engine::Engine(EngineOptions options)
    : options_(options),
      jit_(options.jit == JitMode::Off ? nullptr : std::make_unique<JitManager>(options.jit)) {}

Engine::~Engine() = default;

Diagnostics Engine::add_script(std::string_view text) {
  Catalog existing;
  for (const auto& s : automaton_.streams) {
    if (s.kind == nfa::StreamKind::Internal) continue;
    existing.streams[s.name] = StreamInfo{s.schema, s.kind == nfa::StreamKind::Input, {}};
  }
  AnalyzeResult analyzed = compile_script(text, AnalyzeOptions{options_.unit, &existing});
  if (!analyzed.script) return std::move(analyzed.errors);
  if (jit_) jit_->pause();  // the build may move programs the JIT worker is reading
  if (std::string err = nfa::build(*analyzed.script, automaton_, {options_.merge}); !err.empty()) {
    if (jit_) jit_->submit(automaton_);  // what pause() dropped from the queue
    return {Diagnostic{0, 0, err}};
  }
  state_.resize(automaton_.nodes.size());
  for (size_t n = 0; n < automaton_.nodes.size(); ++n) {
    NodeState& st = state_[n];
    if (st.buckets.empty() && !automaton_.nodes[n].dead) {
      st.keyed = options_.instance_index && automaton_.nodes[n].key_slot >= 0;
      if (!st.keyed) st.buckets.push_back(std::make_unique<Bucket>());
    }
  }
  rebuild_routes();
  if (jit_) jit_->submit(automaton_);
  else release_sources(automaton_);  // no JIT will ever read them
  return {};
}

bool Engine::remove_query(uint32_t id) {
  if (id >= automaton_.queries.size() || automaton_.queries[id].removed) return false;
  if (jit_) jit_->pause();
  auto release_stages = [&](const Emit& e) {
    if (!jit_) return;
    for (const Stage& st : e.stages) {
      jit_->release(st.pred);
      for (const auto& item : st.items) jit_->release(item);
    }
  };
  auto release_node = [&](const Node& n) {
    if (!jit_) return;
    jit_->release(n.filter);
    jit_->release(n.rebind);
    for (const auto& agg : n.aggregates) jit_->release(agg.second);
  };
  std::vector<uint32_t> dead = nfa::remove_query(automaton_, id, release_stages, release_node);
  for (uint32_t n : dead) {
    NodeState& st = state_[n];
    for (const auto& b : st.buckets) stats_.instances -= b->count();
    st.buckets.clear();
    st.by_key.clear();
    st.keyed = true;  // no bucket will ever be made: the node is unreachable
  }
  std::erase_if(dirty_, [&](const auto& d) { return automaton_.nodes[d.first].dead; });
  rebuild_routes();
  if (jit_) jit_->submit(automaton_);
  return true;
}

void Engine::rebuild_routes() {
  routes_.clear();
  index_.assign(automaton_.streams.size(), index::StreamIndex());
  static const std::vector<nfa::Atom> kNoGuard;
  for (uint32_t s = 0; s < automaton_.streams.size(); ++s) {
    for (uint32_t n : automaton_.streams[s].readers) {
      const Node& node = automaton_.nodes[n];
      if (node.dead) continue;
      if (node.kind == NodeKind::Start) {
        for (size_t e = 0; e < node.emits.size(); ++e) {
          index_[s].add(static_cast<uint32_t>(routes_.size()),
                        options_.index ? node.emits[e].guard : kNoGuard);
          routes_.push_back(Route{&node.emits[e], n});
        }
      } else {
        index_[s].add(static_cast<uint32_t>(routes_.size()), options_.index ? node.guard : kNoGuard);
        routes_.push_back(Route{nullptr, n});
      }
    }
    index_[s].prepare();
  }
}

const EngineStats& Engine::stats() const {
  stats_.div_by_zero = eval_stats_.div_by_zero;
  return stats_;
}

std::vector<Slot>& Engine::scratch(size_t width) {
  if (scratch_top_ == scratch_.size()) scratch_.emplace_back();
  std::vector<Slot>& buf = scratch_[scratch_top_++];
  buf.resize(width);
  return buf;
}

std::vector<uint32_t>& Engine::scratch_targets() {
  if (targets_top_ == targets_.size()) targets_.emplace_back();
  std::vector<uint32_t>& buf = targets_[targets_top_++];
  buf.clear();
  return buf;
}

Engine::PushResult Engine::push(uint32_t stream, int64_t t0, int64_t t1, const Slot* values) {
  if (t1 < floor_) {
    ++stats_.late_events;
    return PushResult::Late;
  }
  if (epoch_open_ && t1 > epoch_) close_epoch();
  if (!epoch_open_) {
    epoch_ = floor_ = t1;
    epoch_open_ = true;
    ++stats_.epochs;
  }
  ++stats_.events_in;
  deliver(stream, values, t0, t1);
  return PushResult::Ok;
}

void Engine::advance_to(int64_t t) {
  if (t <= floor_ || (epoch_open_ && t <= epoch_)) return;
  if (epoch_open_) close_epoch();
  floor_ = t;
  expire_until(t);
}

void Engine::finish() {
  if (epoch_open_) close_epoch();
}

void Engine::deliver(uint32_t stream, const Slot* row, int64_t t0, int64_t t1) {
  ScratchGuard guard(targets_top_);
  std::vector<uint32_t>& candidates = scratch_targets();
  index_[stream].match(row, candidates);
  stats_.candidates += candidates.size();
  for (uint32_t target : candidates) {
    const Route& r = routes_[target];
    if (r.emit) fire_emit(*r.emit, row, t0, t1);
    else process(r.node, row, t0, t1);
  }
}

void Engine::process(uint32_t n, const Slot* event, int64_t t0, int64_t t1) {
  const Node& node = automaton_.nodes[n];
  if (node.kind == NodeKind::Start) {
    fire(node, event, t0, t1);
    return;
  }
  NodeState& ns = state_[n];
  uint32_t bucket_id = 0;
  if (ns.keyed) {
    uint64_t key;
    if (!index::equality_key(event[node.key_attr], node.key_type, key)) return;
    auto it = ns.by_key.find(key);
    if (it == ns.by_key.end()) return;
    bucket_id = it->second;
  }
  Bucket& b = *ns.buckets[bucket_id];
  const size_t count = b.count();  // installed instances only: the frozen state
  if (count == 0) return;
  const uint32_t width = node.width;
  ScratchGuard guard(scratch_top_);
  std::vector<Slot>& out = scratch(node.output.size());
  Slot* rebound = node.kind == NodeKind::Fold ? scratch(width).data() : nullptr;
  for (size_t k = 0; k < count; ++k) {
    if (b.t1[k] >= t0) continue;
    const Slot* inst = b.slots.data() + k * width;
    EvalInput in;
    in.rows[0] = inst;
    in.rows[1] = event;
    in.dur = t1 - b.t0[k];
    if (!node.filter.eval_predicate(in, eval_stats_)) continue;
    if (!b.consumed[k]) {
      b.consumed[k] = 1;
      mark_dirty(n, bucket_id);
    }
    const Slot* rows[2] = {inst, event};
    if (node.kind == NodeKind::Fold) {
      if (!node.rebind.eval_predicate(in, eval_stats_)) continue;
      std::copy(inst, inst + width, rebound);
      for (const auto& [slot, prog] : node.aggregates)
        rebound[slot] = prog.eval_value(in, eval_stats_);
      std::copy(event, event + (width - node.last_base), rebound + node.last_base);
      add_instance(n, rebound, b.t0[k], t1);
      rows[0] = rebound;
    }
    for (size_t i = 0; i < node.output.size(); ++i)
      out[i] = rows[node.output[i].row][node.output[i].offset];
    fire(node, out.data(), b.t0[k], t1);
  }
}

void Engine::fire(const Node& node, const Slot* row, int64_t t0, int64_t t1) {
  for (const Emit& emit : node.emits) fire_emit(emit, row, t0, t1);
}

void Engine::fire_emit(const Emit& emit, const Slot* row, int64_t t0, int64_t t1) {
  ScratchGuard guard(scratch_top_);
  const Slot* cur = row;
  for (const Stage& stage : emit.stages) {
    EvalInput in;
    in.rows[0] = cur;
    in.rows[1] = cur;
    in.dur = t1 - t0;
    if (stage.kind == Stage::Kind::Filter) {
      if (!stage.pred.eval_predicate(in, eval_stats_)) return;
    } else {
      std::vector<Slot>& next = scratch(stage.types.size());
      if (!stage.project.empty()) {
        for (size_t i = 0; i < stage.project.size(); ++i) next[i] = cur[stage.project[i]];
      } else {
        for (size_t i = 0; i < stage.items.size(); ++i)
          next[i] = stage.items[i].eval_value(in, eval_stats_);
      }
      cur = next.data();
    }
  }
  if (emit.kind == Emit::Kind::ToNode) {
    add_from_row(emit.target, cur, t0, t1);
    return;
  }
  const nfa::Stream& s = automaton_.streams[emit.target];
  if (s.kind == nfa::StreamKind::Published) {
    ++stats_.outputs;
    if (sink_) {
      Row r;
      r.t0 = t0;
      r.t1 = t1;
      r.values.assign(cur, cur + s.schema.size());
      sink_(emit.target, r);
    }
  }
  deliver(emit.target, cur, t0, t1);
}

Engine::Bucket* Engine::bucket_for(uint32_t n, const Slot* instance, uint32_t* id) {
  NodeState& ns = state_[n];
  if (!ns.keyed) {
    *id = 0;
    return ns.buckets[0].get();
  }
  const Node& node = automaton_.nodes[n];
  uint64_t key;
  // A NaN key equals nothing: such an instance can never be affected, so it is never stored.
  if (!index::equality_key(instance[node.key_slot], node.key_type, key)) return nullptr;
  auto [it, fresh] = ns.by_key.try_emplace(key, static_cast<uint32_t>(ns.buckets.size()));
  if (fresh) ns.buckets.push_back(std::make_unique<Bucket>());
  *id = it->second;
  return ns.buckets[it->second].get();
}

Slot* Engine::add_pending(uint32_t n, const Slot* instance, int64_t t0, int64_t t1) {
  uint32_t id;
  Bucket* b = bucket_for(n, instance, &id);
  if (!b) return nullptr;
  const uint32_t width = automaton_.nodes[n].width;
  size_t base = b->pending_slots.size();
  b->pending_slots.resize(base + width);
  b->pending_t0.push_back(t0);
  b->pending_t1.push_back(t1);
  mark_dirty(n, id);
  return b->pending_slots.data() + base;
}

void Engine::add_instance(uint32_t n, const Slot* instance, int64_t t0, int64_t t1) {
  if (Slot* dst = add_pending(n, instance, t0, t1))
    std::copy_n(instance, automaton_.nodes[n].width, dst);
}

void Engine::add_from_row(uint32_t n, const Slot* row, int64_t t0, int64_t t1) {
  const Node& node = automaton_.nodes[n];
  ScratchGuard guard(scratch_top_);
  std::vector<Slot>& inst = scratch(node.width);
  for (uint32_t k = 0; k < node.width; ++k) {
    int32_t src = node.init[k];
    inst[k] = src >= 0 ? row[src] : Slot{};
  }
  add_instance(n, inst.data(), t0, t1);
}

void Engine::mark_dirty(uint32_t n, uint32_t bucket) {
  Bucket& b = *state_[n].buckets[bucket];
  if (!b.dirty) {
    b.dirty = true;
    dirty_.emplace_back(n, bucket);
  }
}

void Engine::compact(Bucket& b, const Node& node, int64_t next_time) {
  const uint32_t width = node.width;
  const bool bounded = node.max_dur != nfa::kNoDurBound;
  size_t keep = 0;
  int64_t min_t0 = INT64_MAX;
  for (size_t k = 0; k < b.count(); ++k) {
    if (b.consumed[k]) continue;
    if (bounded && next_time - b.t0[k] > node.max_dur) {
      ++stats_.expired;
      continue;
    }
    if (keep != k) {
      std::copy_n(b.slots.data() + k * width, width, b.slots.data() + keep * width);
      b.t0[keep] = b.t0[k];
      b.t1[keep] = b.t1[k];
    }
    min_t0 = std::min(min_t0, b.t0[keep]);
    ++keep;
  }
  stats_.instances -= b.count() - keep;
  b.slots.resize(keep * width);
  b.t0.resize(keep);
  b.t1.resize(keep);
  b.consumed.assign(keep, 0);
  b.min_t0 = min_t0;
}

// Queues the bucket's next expiry: the first time at which its oldest instance is past the
// node's DUR bound. Stale heap entries (the bucket changed since) are skipped when popped.
void Engine::schedule(uint32_t n, uint32_t bucket) {
  const Node& node = automaton_.nodes[n];
  Bucket& b = *state_[n].buckets[bucket];
  if (node.max_dur == nfa::kNoDurBound || b.count() == 0) return;
  int64_t deadline = b.min_t0 > INT64_MAX - node.max_dur - 1 ? INT64_MAX
                                                              : b.min_t0 + node.max_dur + 1;
  if (deadline < b.scheduled) {
    b.scheduled = deadline;
    deadlines_.push(Deadline{deadline, n, bucket});
  }
}

void Engine::expire_until(int64_t next_time) {
  while (!deadlines_.empty() && deadlines_.top().time <= next_time) {
    Deadline d = deadlines_.top();
    deadlines_.pop();
    if (automaton_.nodes[d.node].dead) continue;
    Bucket& b = *state_[d.node].buckets[d.bucket];
    if (b.scheduled != d.time) continue;  // superseded
    b.scheduled = INT64_MAX;
    if (b.dirty) continue;  // compacted and rescheduled at this epoch's end anyway
    compact(b, automaton_.nodes[d.node], next_time);
    schedule(d.node, d.bucket);
  }
}

void Engine::close_epoch() {
  epoch_open_ = false;
  const int64_t next_time = epoch_ + 1;  // every later event has t1 >= next_time
  floor_ = next_time;
  for (auto [n, id] : dirty_) {
    Bucket& b = *state_[n].buckets[id];
    compact(b, automaton_.nodes[n], next_time);
    if (size_t added = b.pending_t0.size()) {
      b.slots.insert(b.slots.end(), b.pending_slots.begin(), b.pending_slots.end());
      b.t0.insert(b.t0.end(), b.pending_t0.begin(), b.pending_t0.end());
      b.t1.insert(b.t1.end(), b.pending_t1.begin(), b.pending_t1.end());
      b.consumed.resize(b.t0.size(), 0);
      for (int64_t t : b.pending_t0) b.min_t0 = std::min(b.min_t0, t);
      stats_.instances += added;
      b.pending_slots.clear();
      b.pending_t0.clear();
      b.pending_t1.clear();
    }
    b.dirty = false;
    // A queued deadline that is not later than the new one stays: waking early is harmless
    // (the bucket is compacted and queued again), and buckets touched every epoch would
    // otherwise flood the heap with stale entries.
    schedule(n, id);
  }
  dirty_.clear();
  stats_.peak_instances = std::max(stats_.peak_instances, stats_.instances);
  expire_until(next_time);
}

}  // namespace cayuga
