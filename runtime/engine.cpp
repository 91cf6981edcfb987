#include "runtime/engine.h"

#include <algorithm>
#include <climits>

namespace cayuga {

using nfa::Emit;
using nfa::Node;
using nfa::NodeKind;
using nfa::Stage;

Engine::Engine(EngineOptions options) : options_(options) {}

Diagnostics Engine::add_script(std::string_view text) {
  Catalog existing;
  for (const auto& s : automaton_.streams) {
    if (s.kind == nfa::StreamKind::Internal) continue;
    existing.streams[s.name] = StreamInfo{s.schema, s.kind == nfa::StreamKind::Input, {}};
  }
  AnalyzeResult analyzed = compile_script(text, AnalyzeOptions{options_.unit, &existing});
  if (!analyzed.script) return std::move(analyzed.errors);
  size_t first_node = automaton_.nodes.size();
  if (std::string err = nfa::build(*analyzed.script, automaton_); !err.empty())
    return {Diagnostic{0, 0, err}};
  state_.resize(automaton_.nodes.size());
  for (size_t n = first_node; n < automaton_.nodes.size(); ++n)
    if (automaton_.nodes[n].kind != NodeKind::Start &&
        automaton_.nodes[n].max_dur != nfa::kNoDurBound)
      bounded_nodes_.push_back(static_cast<uint32_t>(n));
  return {};
}

std::vector<Slot>& Engine::scratch(size_t width) {
  if (scratch_top_ == scratch_.size()) scratch_.emplace_back();
  std::vector<Slot>& buf = scratch_[scratch_top_++];
  buf.resize(width);
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
  // Expire against the new lower bound of future event times.
  for (uint32_t n : bounded_nodes_) {
    NodeState& st = state_[n];
    if (st.count() && t - st.min_t0 > automaton_.nodes[n].max_dur)
      compact(st, automaton_.nodes[n], t);
  }
}

void Engine::finish() {
  if (epoch_open_) close_epoch();
}

void Engine::deliver(uint32_t stream, const Slot* row, int64_t t0, int64_t t1) {
  for (uint32_t n : automaton_.streams[stream].readers) process(n, row, t0, t1);
}

void Engine::process(uint32_t n, const Slot* event, int64_t t0, int64_t t1) {
  const Node& node = automaton_.nodes[n];
  if (node.kind == NodeKind::Start) {
    fire(node, event, t0, t1);
    return;
  }
  NodeState& st = state_[n];
  const size_t count = st.count();  // installed instances only: the frozen state
  const uint32_t width = node.width;
  std::vector<Slot>& out = scratch(node.output.size());
  std::vector<Slot>* rebound = node.kind == NodeKind::Fold ? &scratch(width) : nullptr;
  for (size_t k = 0; k < count; ++k) {
    if (st.t1[k] >= t0) continue;
    const Slot* inst = st.slots.data() + k * width;
    EvalInput in;
    in.rows[0] = inst;
    in.rows[1] = event;
    in.dur = t1 - st.t0[k];
    if (!node.filter.eval_predicate(in, eval_stats_)) continue;
    st.consumed[k] = 1;
    mark_dirty(n);
    const Slot* rows[2] = {inst, event};
    if (node.kind == NodeKind::Fold) {
      if (!node.rebind.eval_predicate(in, eval_stats_)) continue;
      Slot* r = rebound->data();
      std::copy(inst, inst + width, r);
      for (const auto& [slot, prog] : node.aggregates) r[slot] = prog.eval_value(in, eval_stats_);
      std::copy(event, event + (width - node.last_base), r + node.last_base);
      add_instance(n, r, st.t0[k], t1);
      rows[0] = r;
    }
    for (size_t i = 0; i < node.output.size(); ++i)
      out[i] = rows[node.output[i].row][node.output[i].offset];
    fire(node, out.data(), st.t0[k], t1);
  }
  if (rebound) release_scratch();
  release_scratch();
}

void Engine::fire(const Node& node, const Slot* row, int64_t t0, int64_t t1) {
  for (const Emit& emit : node.emits) {
    const Slot* cur = row;
    size_t taken = 0;  // scratch rows taken for this emit
    bool pass = true;
    for (const Stage& stage : emit.stages) {
      EvalInput in;
      in.rows[0] = cur;
      in.rows[1] = cur;
      in.dur = t1 - t0;
      if (stage.kind == Stage::Kind::Filter) {
        if (!stage.pred.eval_predicate(in, eval_stats_)) {
          pass = false;
          break;
        }
      } else {
        std::vector<Slot>& next = scratch(stage.items.size());
        ++taken;
        for (size_t i = 0; i < stage.items.size(); ++i)
          next[i] = stage.items[i].eval_value(in, eval_stats_);
        cur = next.data();
      }
    }
    if (pass) {
      if (emit.kind == Emit::Kind::ToNode) {
        add_from_row(emit.target, cur, t0, t1);
      } else {
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
    }
    while (taken--) release_scratch();
  }
}

Slot* Engine::add_pending(uint32_t n, int64_t t0, int64_t t1) {
  NodeState& st = state_[n];
  size_t base = st.pending_slots.size();
  st.pending_slots.resize(base + automaton_.nodes[n].width);
  st.pending_t0.push_back(t0);
  st.pending_t1.push_back(t1);
  mark_dirty(n);
  return st.pending_slots.data() + base;
}

void Engine::add_instance(uint32_t n, const Slot* instance, int64_t t0, int64_t t1) {
  Slot* dst = add_pending(n, t0, t1);
  std::copy_n(instance, automaton_.nodes[n].width, dst);
}

void Engine::add_from_row(uint32_t n, const Slot* row, int64_t t0, int64_t t1) {
  Slot* dst = add_pending(n, t0, t1);
  const Node& node = automaton_.nodes[n];
  for (uint32_t k = 0; k < node.width; ++k) {
    int32_t src = node.init[k];
    dst[k] = src >= 0 ? row[src] : Slot{};
  }
}

void Engine::compact(NodeState& st, const Node& node, int64_t next_time) {
  const uint32_t width = node.width;
  const bool bounded = node.max_dur != nfa::kNoDurBound;
  size_t keep = 0;
  int64_t min_t0 = INT64_MAX;
  for (size_t k = 0; k < st.count(); ++k) {
    if (st.consumed[k]) continue;
    if (bounded && next_time - st.t0[k] > node.max_dur) {
      ++stats_.expired;
      continue;
    }
    if (keep != k) {
      std::copy_n(st.slots.data() + k * width, width, st.slots.data() + keep * width);
      st.t0[keep] = st.t0[k];
      st.t1[keep] = st.t1[k];
    }
    min_t0 = std::min(min_t0, st.t0[keep]);
    ++keep;
  }
  stats_.instances -= st.count() - keep;
  st.slots.resize(keep * width);
  st.t0.resize(keep);
  st.t1.resize(keep);
  st.consumed.assign(keep, 0);
  st.min_t0 = min_t0;
}

void Engine::mark_dirty(uint32_t n) {
  if (!state_[n].dirty) {
    state_[n].dirty = true;
    dirty_.push_back(n);
  }
}

void Engine::close_epoch() {
  epoch_open_ = false;
  const int64_t next_time = epoch_ + 1;  // every later event has t1 >= next_time
  floor_ = next_time;
  for (uint32_t n : bounded_nodes_) {
    const NodeState& st = state_[n];
    if (st.count() && next_time - st.min_t0 > automaton_.nodes[n].max_dur) mark_dirty(n);
  }
  for (uint32_t n : dirty_) {
    NodeState& st = state_[n];
    compact(st, automaton_.nodes[n], next_time);
    if (size_t added = st.pending_t0.size()) {
      st.slots.insert(st.slots.end(), st.pending_slots.begin(), st.pending_slots.end());
      st.t0.insert(st.t0.end(), st.pending_t0.begin(), st.pending_t0.end());
      st.t1.insert(st.t1.end(), st.pending_t1.begin(), st.pending_t1.end());
      st.consumed.resize(st.t0.size(), 0);
      for (int64_t t : st.pending_t0) st.min_t0 = std::min(st.min_t0, t);
      stats_.instances += added;
      st.pending_slots.clear();
      st.pending_t0.clear();
      st.pending_t1.clear();
    }
    st.dirty = false;
  }
  dirty_.clear();
  stats_.peak_instances = std::max(stats_.peak_instances, stats_.instances);
  stats_.div_by_zero = eval_stats_.div_by_zero;
}

}  // namespace cayuga
