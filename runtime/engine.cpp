#include "runtime/engine.h"

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <unordered_map>

// Debian's libtbb is not built with ThreadSanitizer, so TSan cannot see that handing a task to
// a TBB worker orders it after what the caller did before, and reports races inside TBB. Under
// TSan, tasks therefore run on a small pool of std::threads synchronized by a mutex (TsanPool),
// whose hand-offs it does see; the engine code the tasks run is the same.
#if defined(__SANITIZE_THREAD__)
#define CAYUGA_TSAN 1
#include <condition_variable>
#include <mutex>
#include <thread>
#else
#define CAYUGA_TSAN 0
#endif
#include <tbb/global_control.h>
#include <tbb/info.h>
#include <tbb/parallel_for.h>
#include <tbb/task_group.h>
#include <tbb/task_arena.h>

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
  if (const char* t = std::getenv("CAYUGA_COMPILE_THREADS"); t && *t)
    o.compile_threads = static_cast<unsigned>(std::strtoul(t, nullptr, 10));
  if (const char* w = std::getenv("CAYUGA_PARALLEL_MIN_WORK"); w && *w)
    o.parallel_min_work = std::max<size_t>(1, std::strtoull(w, nullptr, 10));
  return o;
}

unsigned resolve_threads(unsigned threads) {
  return threads ? threads : static_cast<unsigned>(tbb::info::default_concurrency());
}

Engine::Engine(EngineOptions options)
    : options_(options),
      jit_(options.jit == JitMode::Off ? nullptr : std::make_unique<JitManager>(options.jit)) {
  const unsigned threads = resolve_threads(options_.threads);
  if (threads > 1) par_ = std::make_unique<Parallel>(threads);
}

Engine::~Engine() = default;

namespace {
constexpr size_t kTrimAfter = size_t{1} << 20;  // script bytes
}  // namespace

Diagnostics Engine::add_script(std::string_view text) {
  // The engine's streams as a script sees them: all but queries' internal ones.
  class Existing : public StreamSource {
   public:
    explicit Existing(const nfa::Automaton& a) : a_(a) {}
    std::optional<StreamInfo> find(std::string_view name) const override {
      const int64_t id = a_.find_stream(name);
      if (id < 0 || a_.streams[id].kind == nfa::StreamKind::Internal) return std::nullopt;
      const nfa::Stream& s = a_.streams[id];
      return StreamInfo{s.schema, s.kind == nfa::StreamKind::Input, {}};
    }
    std::vector<std::string> names() const override {
      std::vector<std::string> out;
      for (const nfa::Stream& s : a_.streams)
        if (s.kind != nfa::StreamKind::Internal) out.push_back(s.name);
      return out;
    }

   private:
    const nfa::Automaton& a_;
  };
  const Existing existing(automaton_);
  AnalyzeResult analyzed = compile_script(
      text, AnalyzeOptions{options_.unit, &existing, resolve_threads(options_.compile_threads)});
  if (!analyzed.script) return std::move(analyzed.errors);
  run_batch();  // buffered events see the queries that were there when they were pushed
  const size_t old_streams = automaton_.streams.size();
  nfa::BuildChanges changes;
  nfa::BuildOptions build{options_.merge, options_.index, options_.instance_index, {}};
  // The JIT worker goes on compiling during the build, unless the build moves the programs
  // it reads (JitManager). Paused once, it stays idle until submit_added() below.
  bool paused = false;
  if (jit_)
    build.before_moving_nodes = [&] {
      if (!paused) jit_->pause();
      paused = true;
    };
  // (A build that fails does so before it changes anything, so before any pause.)
  if (std::string err = nfa::build(std::move(*analyzed.script), automaton_, build, &changes);
      !err.empty())
    return {Diagnostic{0, 0, err}};
  // The new queries start with the first epoch that can still open (docs/semantics-notes.md):
  // before any event, that is every epoch (INT64_MIN, and their outputs are never checked).
  const int64_t start = epoch_open_ ? (epoch_ == INT64_MAX ? epoch_ : epoch_ + 1) : floor_;
  query_start_.resize(automaton_.queries.size(), start);
  const size_t old_nodes = state_.size();
  state_.resize(automaton_.nodes.size());
  keyed_.resize(automaton_.nodes.size());
  for (size_t n = old_nodes; n < automaton_.nodes.size(); ++n) {
    if (options_.instance_index && automaton_.nodes[n].key_slot >= 0) {
      state_[n].single.keyed = true;
      keyed_[n] = std::make_unique<Keyed>();
    }
  }
  size_t first_new = old_nodes;
  if (!extend_routes(old_streams, old_nodes, changes)) first_new = rebuild(old_nodes, &changes);
  if (jit_)
    jit_->submit_added(automaton_, first_new, changes);
  else
    release_sources(automaton_, first_new, changes);  // no JIT will ever read them
#if defined(__GLIBC__)
  // A large script's tree and plans are freed by now, much of them in the arenas of the threads
  // that parsed it, where this thread's allocations never reuse them: give them back.
  if (text.size() >= kTrimAfter) malloc_trim(0);
#endif
  return {};
}

bool Engine::remove_query(uint32_t id) {
  if (id >= automaton_.queries.size() || automaton_.queries[id].removed) return false;
  run_batch();
  // The JIT worker goes on compiling: only the programs destroyed here are taken from it.
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
  // The DUR bounds of the query's nodes, which removing it may narrow (nfa::remove_query).
  std::vector<std::pair<uint32_t, int64_t>> bounds;
  for (uint32_t n : automaton_.queries[id].nodes) bounds.emplace_back(n, state_[n].max_dur);
  std::vector<std::pair<uint32_t, uint32_t>> erased;
  std::vector<uint32_t> dead =
      nfa::remove_query(automaton_, id, release_stages, release_node, &erased);
  for (uint32_t n : dead) {
    NodeState& st = state_[n];
    stats_.instances -= st.single.count();
    if (st.keyed())
      for (uint32_t id = 0; id < keyed_[n]->size(); ++id)
        stats_.instances -= keyed_[n]->at(id).count();
    st = NodeState{};  // the node is unreachable: nothing will touch its state again
    keyed_[n].reset();
  }
  dead_nodes_ += dead.size();
  std::erase_if(dirty_, [&](const auto& d) { return automaton_.nodes[d.first].dead; });
  // A node whose widest way out was the query's has a narrower DUR bound now: its buckets'
  // deadlines are recomputed and queued, so that their instances go when the new bound passes.
  for (const auto& [n, before] : bounds) {
    if (automaton_.nodes[n].dead) continue;
    state_[n].max_dur = automaton_.nodes[n].max_dur;
    if (state_[n].max_dur < before) requeue(n);
  }
  if (!retire_routes(id, dead, erased)) {
    rebuild(automaton_.nodes.size(), nullptr);
    if (jit_) jit_->submit_added(automaton_, automaton_.nodes.size(), {});  // (see rebuild())
  }
  return true;
}

bool Engine::retire_routes(uint32_t id, std::span<const uint32_t> dead,
                           std::span<const std::pair<uint32_t, uint32_t>> erased) {
  // The keyed readers that died, by stream. A stream with too many for the lookahead may now
  // have few enough: its list is then rebuilt with everything.
  std::unordered_map<uint32_t, uint32_t> keyed_dead;
  for (uint32_t n : dead)
    if (options_.instance_index && automaton_.nodes[n].key_slot >= 0)
      ++keyed_dead[automaton_.nodes[n].stream];
  for (const auto& [s, count] : keyed_dead)
    if (keyed_count_[s] > kMaxKeyedReaders && keyed_count_[s] - count <= kMaxKeyedReaders)
      return false;
  ahead_count_ = 0;
  ++generation_;
  for (const auto& [s, count] : keyed_dead) {
    keyed_count_[s] -= count;
    if (s < keyed_readers_.size())
      std::erase_if(keyed_readers_[s], [&](uint32_t n) { return automaton_.nodes[n].dead; });
  }
  // The START edges added since the full build are found by their emits' positions, which
  // the erased emits before them move down.
  for (auto& [n, first] : delta_first_emit_) {
    uint32_t below = 0;
    for (const auto& [m, k] : erased) below += m == n && k < first;
    first -= below;
  }
  // Routes stay where they are until the next full build: an emit of the query (to its
  // stream, or to a node that died with it) gets a DUR bound no row meets, so it never fires,
  // and neither does a route's copy of it. Of the full build's routes, the links lead to the
  // query's own; those added since are scanned.
  const auto is_dead = [&](uint32_t n) { return std::binary_search(dead.begin(), dead.end(), n); };
  // An out of route `k` that goes: the route too, if it is the route's first.
  const auto retire = [&](size_t o, size_t k) {
    outs_[o].max_dur = kNeverFires;
    Route& r = routes_[k];
    if (first_out_[k] != o || !r.any || r.max_dur == kNeverFires) return;
    r.max_dur = kNeverFires;
    retired_routes_ += r.edge;  // (a node's route counts below, once its node is dead)
  };
  const Links& l = links_;
  const auto base_route_of = [&](uint32_t o) {  // (first_out_ rises with the route)
    const auto end = first_out_.begin() + static_cast<ptrdiff_t>(base_routes_);
    return static_cast<size_t>(std::upper_bound(first_out_.begin(), end, o) - first_out_.begin()) -
           1;
  };
  const auto retire_list = [&](uint32_t head) {
    for (uint32_t o = head; o != kNoLink; o = l.next_out[o]) retire(o, base_route_of(o));
  };
  if (id < l.owned.size()) retire_list(l.owned[id]);
  for (uint32_t n : dead) {
    if (n >= l.into.size()) continue;
    retire_list(l.into[n]);
    if (l.route_of[n] == kNoLink) continue;
    ++retired_routes_;
    routes_[l.route_of[n]].feeds = false;  // (its riding edge went with it)
  }
  for (size_t k = base_routes_; k < routes_.size(); ++k) {
    Route& r = routes_[k];
    const uint32_t end = k + 1 < routes_.size() ? first_out_[k + 1] : uint32_t(outs_.size());
    for (uint32_t o = first_out_[k]; o < end; ++o) {
      const Out& out = outs_[o];
      if (out.kind == Emit::Kind::ToStream ? out.owner == id : is_dead(out.target)) retire(o, k);
    }
    if (r.edge || !is_dead(r.node)) continue;
    ++retired_routes_;
    r.feeds = false;
  }
  // Nodes that visited through a dead one (see visit_node()) visit through one of them that
  // is alive, in the full build's routes and in those added since (whose nodes visit through
  // one of their own).
  for (uint32_t n : dead) {
    if (n >= l.visitors.size()) continue;
    uint32_t instead = kNoLink;
    for (uint32_t k = l.visitors[n]; k != kNoLink; k = l.next_visitor[k]) {
      Route& r = routes_[k];
      if (automaton_.nodes[r.node].dead) continue;
      if (instead == kNoLink) instead = r.node;
      r.visit = instead;
    }
    if (instead == kNoLink) continue;
    // (The new one had no visitors: it visited through `n` itself.)
    links_.visitors[instead] = std::exchange(links_.visitors[n], kNoLink);
  }
  std::unordered_map<uint32_t, uint32_t> visit_instead;
  for (size_t k = base_routes_; k < routes_.size(); ++k) {
    Route& r = routes_[k];
    if (r.edge || r.spills || automaton_.nodes[r.node].dead || !is_dead(r.visit)) continue;
    r.visit = visit_instead.try_emplace(r.visit, r.node).first->second;
  }
  return retired_routes_ <= kMaxAddedRoutes;
}

void Engine::requeue(uint32_t n) {
  const int64_t max_dur = state_[n].max_dur;
  const auto one = [&](Bucket& b, uint32_t id) {
    if (b.records == 0) return;
    const uint32_t stride = static_cast<uint32_t>(b.rows.size()) / b.records;
    int64_t min_t0 = INT64_MAX;
    for (uint32_t k = 0; k < b.records; ++k) min_t0 = std::min(min_t0, b.rows.data()[k * stride].i);
    b.expires = expiry_of(min_t0, max_dur);
    schedule(b, n, id);
  };
  if (!state_[n].keyed()) return one(state_[n].single, 0);
  for (uint32_t id = 0; id < keyed_[n]->size(); ++id) one(keyed_[n]->at(id), id);
}

size_t Engine::rebuild(size_t first_new, nfa::BuildChanges* changes) {
  if (dead_nodes_ > 0) {
    const std::vector<uint32_t> to = drop_dead_nodes();
    first_new -=
        std::count(to.begin(), to.begin() + static_cast<ptrdiff_t>(first_new), nfa::kDroppedNode);
    if (changes)
      for (auto& [n, emits] : changes->extended) n = to[n];  // (nodes that gained emits live)
  }
  rebuild_routes();
  return first_new;
}

std::vector<uint32_t> Engine::drop_dead_nodes() {
  // The nodes' programs move: the JIT worker must not be reading them. (It drops what it had
  // queued, which JitManager::submit_added() then queues again.)
  if (jit_) jit_->pause();
  std::vector<uint32_t> to = nfa::drop_dead_nodes(automaton_);
  size_t kept = 0;
  for (size_t n = 0; n < to.size(); ++n) {
    if (to[n] == nfa::kDroppedNode) continue;
    if (kept != n) {
      state_[kept] = std::move(state_[n]);
      keyed_[kept] = std::move(keyed_[n]);
    }
    ++kept;
  }
  state_.resize(kept);  // (the capacity stays, for the nodes of later queries)
  keyed_.resize(kept);
  static_assert(ExpiryWheel::kDrop == nfa::kDroppedNode);
  deadlines_.renumber([&](uint32_t n) { return to[n]; });
  for (auto& [n, bucket] : dirty_) n = to[n];  // (a dead node's left it when the node died)
  for (ExpiryWheel::Entry& d : due_entries_) d.node = to[d.node];
  std::erase_if(due_entries_, [](const auto& d) { return d.node == nfa::kDroppedNode; });
  dead_nodes_ = 0;
  return to;
}

void Engine::rebuild_routes() {
  for (size_t n = 0; n < state_.size(); ++n) state_[n].max_dur = automaton_.nodes[n].max_dur;
  streams_.clear();
  for (const nfa::Stream& s : automaton_.streams) streams_.push_back(StreamUse::of(s));
  routes_.clear();
  outs_.clear();
  first_out_.clear();
  delta_.clear();
  delta_first_emit_.clear();
  keyed_readers_.clear();
  keyed_count_.assign(automaton_.streams.size(), 0);
  std::vector<std::pair<uint32_t, std::span<const uint32_t>>> readers;
  for (uint32_t s = 0; s < automaton_.streams.size(); ++s)
    if (!automaton_.streams[s].readers.empty())
      readers.emplace_back(s, automaton_.streams[s].readers);
  // An index up to the last stream with readers (every query publishes a stream, which most
  // often nothing reads: an index each would be 160 bytes per query).
  index_.assign(readers.empty() ? 0 : readers.back().first + 1, index::StreamIndex());
  build_routes([&](uint32_t s) -> index::StreamIndex& { return index_[s]; }, readers, 0);
  for (size_t n = 0; n < automaton_.nodes.size(); ++n) add_keyed_reader(static_cast<uint32_t>(n));
  base_routes_ = routes_.size();
  base_outs_ = outs_.size();
  base_nodes_ = static_cast<uint32_t>(automaton_.nodes.size());
  retired_routes_ = 0;
  link_routes();
}

void Engine::link_routes() {
  Links& l = links_;
  l.owned.assign(automaton_.queries.size(), kNoLink);
  l.into.assign(automaton_.nodes.size(), kNoLink);
  l.route_of.assign(automaton_.nodes.size(), kNoLink);
  l.visitors.assign(automaton_.nodes.size(), kNoLink);
  l.next_out.assign(outs_.size(), kNoLink);
  l.next_visitor.assign(routes_.size(), kNoLink);
  const auto push = [](uint32_t& head, uint32_t& next, size_t k) {
    next = head;
    head = static_cast<uint32_t>(k);
  };
  for (size_t o = outs_.size(); o-- > 0;) {
    const Out& out = outs_[o];
    push(out.kind == Emit::Kind::ToStream ? l.owned[out.owner] : l.into[out.target], l.next_out[o],
         o);
  }
  for (size_t k = routes_.size(); k-- > 0;) {
    const Route& r = routes_[k];
    if (r.edge) continue;
    l.route_of[r.node] = static_cast<uint32_t>(k);
    if (!r.spills) push(l.visitors[r.visit], l.next_visitor[k], k);
  }
}

void Engine::add_keyed_reader(uint32_t n) {
  const Node& node = automaton_.nodes[n];
  if (node.dead || !state_[n].keyed()) return;
  const uint32_t s = node.stream;
  if (keyed_readers_.size() <= s) keyed_readers_.resize(s + 1);
  if (++keyed_count_[s] <= kMaxKeyedReaders)
    keyed_readers_[s].push_back(n);
  else
    keyed_readers_[s].clear();  // too many to fetch for every event
}

bool Engine::extend_routes(size_t old_streams, size_t old_nodes, const nfa::BuildChanges& changes) {
  // Only new nodes and new START edges: an older node with new emits would need its route
  // (and its emits in outs_) redone, and a stream that gains its first reader changes how
  // every emit to it fires (StreamUse::read).
  for (const auto& [n, before] : changes.extended)
    if (automaton_.nodes[n].kind != NodeKind::Start && n < base_nodes_) return false;
  for (size_t n = old_nodes; n < automaton_.nodes.size(); ++n) {
    const uint32_t s = automaton_.nodes[n].stream;
    if (s < old_streams && !streams_[s].read) return false;
  }
  // Every route added since the full build is built again with the new ones, so the added
  // routes are kept few (the full build comes back every few thousand: at 100k queries about
  // a millisecond per query added, on average), and so are the streams they read (an event
  // looks for its stream among them).
  if (routes_.empty() || routes_.size() - base_routes_ > kMaxAddedRoutes) return false;
  std::vector<std::pair<uint32_t, uint32_t>> reads;  // (stream, node) of every added route
  for (size_t k = 0; k < changes.extended.size(); ++k) {
    const uint32_t n = changes.extended[k].first;
    if (n < base_nodes_) delta_first_emit_.try_emplace(n, changes.extended[k].second);
  }
  for (const auto& [n, first] : delta_first_emit_)
    reads.emplace_back(automaton_.nodes[n].stream, n);
  for (uint32_t n = base_nodes_; n < automaton_.nodes.size(); ++n)
    if (!automaton_.nodes[n].dead) reads.emplace_back(automaton_.nodes[n].stream, n);
  std::sort(reads.begin(), reads.end());
  std::vector<uint32_t> nodes;
  std::vector<std::pair<uint32_t, std::span<const uint32_t>>> readers;
  nodes.reserve(reads.size());
  for (size_t k = 0; k < reads.size(); ++k) nodes.push_back(reads[k].second);
  for (size_t k = 0; k < reads.size();) {
    size_t end = k;
    while (end < reads.size() && reads[end].first == reads[k].first) ++end;
    readers.emplace_back(reads[k].first, std::span<const uint32_t>(nodes.data() + k, end - k));
    k = end;
  }
  if (readers.size() > kMaxAddedStreams) {
    delta_first_emit_.clear();  // (rebuild_routes() starts over)
    return false;
  }
  // (Nodes of an earlier delta may have gained emits, and with them a wider bound.)
  for (size_t n = base_nodes_; n < state_.size(); ++n)
    state_[n].max_dur = automaton_.nodes[n].max_dur;
  for (size_t s = old_streams; s < automaton_.streams.size(); ++s)
    streams_.push_back(StreamUse::of(automaton_.streams[s]));
  // (match() looks at the delta only for a stream that has an index: an empty one will do.)
  const size_t indexed = index_.size();
  if (!readers.empty()) index_.resize(std::max(indexed, size_t{readers.back().first} + 1));
  for (size_t s = indexed; s < index_.size(); ++s) index_[s].prepare();
  keyed_count_.resize(automaton_.streams.size(), 0);
  for (size_t n = old_nodes; n < automaton_.nodes.size(); ++n)
    add_keyed_reader(static_cast<uint32_t>(n));
  routes_.resize(base_routes_);
  first_out_.resize(base_routes_);
  outs_.resize(base_outs_);
  delta_.clear();
  for (const auto& [s, ns] : readers) delta_.push_back(Delta{s, {}});
  build_routes(
      [&](uint32_t s) -> index::StreamIndex& {
        return std::find_if(delta_.begin(), delta_.end(),
                            [&](const Delta& d) { return d.stream == s; })
            ->index;
      },
      readers, base_nodes_);
  return true;
}

std::vector<const Emit*> Engine::find_riders(
    std::span<const std::pair<uint32_t, std::span<const uint32_t>>> readers, uint32_t first_node,
    const std::function<size_t(uint32_t)>& first_emit) const {
  if (!options_.index) return {};  // (without an index, every route is a candidate anyway)
  // The emits whose routes get built: a START node's from first_emit(), another node's if it
  // is new. Every emit into a node that gets a route is among them (a node of an earlier
  // build never gains an emit into a new one: extend_routes()).
  const auto each_emit = [&](auto fn) {
    for (const auto& [s, nodes] : readers)
      for (uint32_t n : nodes) {
        const Node& node = automaton_.nodes[n];
        if (node.dead || (node.kind != NodeKind::Start && n < first_node)) continue;
        for (size_t k = node.kind == NodeKind::Start ? first_emit(n) : 0; k < node.emits.size();
             ++k)
          fn(s, node, node.emits[k]);
      }
  };
  // (By node from first_node on: only those get routes here.)
  const size_t new_nodes = automaton_.nodes.size() - first_node;
  std::vector<uint8_t> ways_in(new_nodes, 0);  // 2: two or more
  each_emit([&](uint32_t, const Node&, const Emit& e) {
    if (e.kind != Emit::Kind::ToNode || e.target < first_node) return;
    uint8_t& ways = ways_in[e.target - first_node];
    ways = std::min(ways + 1, 2);
  });
  std::vector<const Emit*> riders(new_nodes, nullptr);
  each_emit([&](uint32_t s, const Node& from, const Emit& e) {
    if (from.kind != NodeKind::Start || e.kind != Emit::Kind::ToNode || e.target < first_node ||
        ways_in[e.target - first_node] != 1)
      return;
    const Node& node = automaton_.nodes[e.target];
    if (node.dead || node.stream != s || node.guard.size() != 1 ||
        node.guard[0].op != nfa::Atom::Op::Eq || !index::StreamIndex::checks_all(node.guard) ||
        !index::StreamIndex::checks_all(e.guard) ||
        std::find(e.guard.begin(), e.guard.end(), node.guard[0]) == e.guard.end())
      return;
    // (With the whole guard checked, the index decides the exact stages.)
    const Out o = flatten(e, e.exact_stages);
    if (o.direct && o.period == streams_[s].width && o.max_dur == nfa::kNoDurBound)
      riders[e.target - first_node] = &e;
  });
  return riders;
}

void Engine::build_routes(const std::function<index::StreamIndex&(uint32_t)>& into,
                          std::span<const std::pair<uint32_t, std::span<const uint32_t>>> readers,
                          uint32_t first_node) {
  ahead_count_ = 0;  // their candidates are route numbers of the old routes
  ++generation_;
  const size_t first_route = routes_.size();
  // The emits of START node `n` that get routes here: from the first, or (a delta) from the
  // first one added since the full build.
  const auto first_emit = [&](uint32_t n) -> size_t {
    if (n >= first_node) return 0;
    const auto it = delta_first_emit_.find(n);
    return it == delta_first_emit_.end() ? automaton_.nodes[n].emits.size() : it->second;
  };
  // Per route, its emits and how many leading stages of them the index decides.
  struct Emits {
    std::span<const Emit> emits;
    size_t skip;
  };
  std::vector<Emits> emits;
  std::vector<std::pair<size_t, size_t>> stream_routes;  // per stream, its routes [first, last)
  static const std::vector<nfa::Atom> kNoGuard;
  const std::vector<const Emit*> riders = find_riders(readers, first_node, first_emit);
  const auto rider_of = [&](uint32_t n) {  // (null: none)
    return riders.empty() || n < first_node ? nullptr : riders[n - first_node];
  };
  for (const auto& [s, nodes] : readers) {
    const size_t first = routes_.size();
    // Routes in four kinds, in this order: NEXT nodes, FOLD nodes, START edges to a node, other
    // START edges. The index hands an event its candidates in this order (see renumber()), so
    // a visit runs before the event's own edges add instances to the node (which it would only
    // skip: they begin in this epoch), and the loops over the candidates meet one kind after
    // the other instead of at random.
    const auto kind_of = [&](const Node& node, const Emit* e) {
      if (!e) return node.kind == NodeKind::Fold ? 1 : 0;
      return e->kind == Emit::Kind::ToNode ? 2 : 3;
    };
    const auto add = [&](const std::vector<nfa::Atom>& guard) {
      return into(s).add(static_cast<uint32_t>(routes_.size()), options_.index ? guard : kNoGuard);
    };
    for (int kind = 0; kind < 4; ++kind) {
      for (uint32_t n : nodes) {
        const Node& node = automaton_.nodes[n];
        if (node.dead) continue;
        if (node.kind == NodeKind::Start) {
          for (size_t k = first_emit(n); k < node.emits.size(); ++k) {
            const Emit& e = node.emits[k];
            if (kind_of(node, &e) != kind) continue;
            if (e.kind == Emit::Kind::ToNode && rider_of(e.target) == &e)
              continue;  // (it rides on its node's route)
            // The leading FILTERs that only restate the guard need not run when the index
            // checks all of it.
            const size_t skip = add(e.guard) && options_.index ? e.exact_stages : 0;
            Route r;
            r.node = n;
            r.edge = true;
            routes_.push_back(r);
            emits.push_back({{&e, 1}, skip});
          }
        } else if (n >= first_node && kind_of(node, nullptr) == kind) {
          Route r;
          if (const Emit* e = rider_of(n)) {
            // The edge's guard is the node's equality and more: the rest is what it adds.
            std::vector<nfa::Atom> rest = e->guard;
            rest.erase(std::find(rest.begin(), rest.end(), node.guard[0]));
            into(s).add_rider(static_cast<uint32_t>(routes_.size()), node.guard[0], rest);
            r.feeds = true;
          } else {
            add(node.guard);
          }
          r.node = n;
          r.fold = node.kind == NodeKind::Fold;
          routes_.push_back(r);
          emits.push_back({node.emits, 0});
        }
      }
    }
    into(s).prepare();
    // An event's candidates are then neighbours in routes_.
    const std::vector<Route> before(routes_.begin() + first, routes_.end());
    const std::vector<Emits> emits_before(emits.begin() + (first - first_route), emits.end());
    for (auto [from, to] : into(s).renumber()) {
      routes_[to] = before[from - first];
      emits[to - first_route] = emits_before[from - first];
    }
    stream_routes.emplace_back(first, routes_.size());
  }
  // The first live node of each visit signature (see visit_node()).
  struct Signature {
    const void* filter;
    const void* rebind;
    const void* output;
    size_t outputs;
    uint32_t width, last_base;
    uint8_t kind;
    bool filter_true;
    bool operator==(const Signature&) const = default;
  };
  struct SignatureHash {
    size_t operator()(const Signature& g) const {
      return std::hash<const void*>()(g.filter) ^ std::hash<const void*>()(g.rebind) * 31 ^
             std::hash<const void*>()(g.output) * 131 ^ g.width * 8191 ^ g.kind;
    }
  };
  std::unordered_map<Signature, uint32_t, SignatureHash> visits;
  const auto visit_of = [&](uint32_t n) -> uint32_t {
    const Node& node = automaton_.nodes[n];
    // (Aggregates are rare: a FOLD with any visits its own node.)
    if (!node.aggregates.empty()) return n;
    const Signature g{node.filter.code_identity(),
                      node.rebind.code_identity(),
                      node.output.data(),
                      node.output.size(),
                      node.width,
                      node.last_base,
                      static_cast<uint8_t>(node.kind),
                      node.filter_true};
    return visits.try_emplace(g, n).first->second;
  };
  first_out_.resize(routes_.size());
  for (size_t k = first_route; k < routes_.size(); ++k) {
    Route& r = routes_[k];
    const auto [list, skip] = emits[k - first_route];
    r.outs = first_out_[k] = static_cast<uint32_t>(outs_.size());
    if (list.empty()) continue;
    for (const Emit& e : list) outs_.push_back(flatten(e, skip));
    outs_.back().last = true;
    const Out& first = outs_[r.outs];
    r.any = true;
    r.more = list.size() > 1;
    r.max_dur = first.max_dur;
    std::copy(std::begin(first.project), std::end(first.project), r.project);
    r.project_count = first.project_count;
    if (first.direct) r.width = static_cast<uint8_t>(first.width);  // (it has no projection)
    r.target = first.target;
    r.period = first.period;
    r.direct = first.direct;
    r.publish_only = first.publish_only;
    r.to_node = r.edge && first.kind == Emit::Kind::ToNode;
    r.reads_node = r.to_node && !(r.direct && r.period != 0);
    if (r.edge) r.node = r.to_node ? r.target : 0;  // the state the edge's firing reads
    r.staged = first.stage_count > 0;
    r.spills = r.more || (!r.direct && !r.publish_only);
    // An edge that only publishes its row reads nothing but the route. (Not spilling, its
    // one emit is publish_only, which has no stages left.)
    r.bare = r.edge && !r.to_node && !r.spills;
  }
  // A START edge that adds an instance to a node without a key, reading no node, is bare too
  // when the node's own route is a candidate whenever the edge is (the node's guard is part of
  // the edge's, or there is no index): the node's route then asks for the lines the edge
  // writes (`fed`). Nearly every START edge of a NEXT or FOLD query is such an edge. (In a
  // delta, a new edge's node is new too: its route is in the same part.)
  const auto part_of = [](const std::vector<nfa::Atom>& part, const std::vector<nfa::Atom>& all) {
    return std::all_of(part.begin(), part.end(), [&](const nfa::Atom& a) {
      return std::find(all.begin(), all.end(), a) != all.end();
    });
  };
  // By node, its route on the stream at hand (kNone: none there). Most streams (queries'
  // outputs) have few routes or none: the table is set and reset per stream, not cleared.
  constexpr uint32_t kNone = UINT32_MAX;
  std::vector<uint32_t> node_route(state_.size(), kNone);
  for (const auto& [first, last] : stream_routes) {
    for (size_t k = first; k < last; ++k)
      if (!routes_[k].edge) node_route[routes_[k].node] = static_cast<uint32_t>(k);
    for (size_t k = first; k < last; ++k) {
      Route& r = routes_[k];
      // (Reading no node, its first emit is direct: no stages left, a node without a key. Not
      // spilling, it is the only one.)
      if (!r.to_node || r.reads_node || r.spills) continue;
      const uint32_t own = node_route[r.node];
      if (own == kNone) continue;
      if (options_.index &&
          !part_of(automaton_.nodes[r.node].guard, emits[k - first_route].emits[0].guard))
        continue;
      r.bare = true;
      routes_[own].fed = true;
    }
    for (size_t k = first; k < last; ++k)
      if (!routes_[k].edge) node_route[routes_[k].node] = kNone;
  }
  // (Once every route knows whether it spills: one that does keeps `outs`.)
  for (size_t k = first_route; k < routes_.size(); ++k)
    if (!routes_[k].edge && !routes_[k].spills) routes_[k].visit = visit_of(routes_[k].node);
}

Engine::Out Engine::flatten(const Emit& e, size_t skip) const {
  Out o;
  o.target = e.target;
  o.kind = e.kind;
  o.owner = e.owner;
  if (e.kind == Emit::Kind::ToStream) {
    const StreamUse& s = streams_[e.target];
    o.width = s.width;
    o.published = s.published;
    o.read = s.read;
  }
  // DUR is the same for every stage (they do not change t0, t1), so a FILTER that only bounds
  // it can be checked first wherever it stands.
  std::span<const Stage> rest(e.stages.begin() + skip, e.stages.end());
  const auto bound = [&](const Stage& st) {
    const bool only = st.kind == Stage::Kind::Filter && st.dur_only;
    if (only) o.max_dur = std::min(o.max_dur, st.max_dur);
    return only;
  };
  while (!rest.empty() && bound(rest.front())) rest = rest.subspan(1);
  while (!rest.empty() && bound(rest.back())) rest = rest.first(rest.size() - 1);
  if (!rest.empty()) {
    const Stage& last = rest.back();
    const size_t width = last.project.size();
    const bool small = last.kind == Stage::Kind::Map && width > 0 && width <= Out::kMaxProject &&
                       std::all_of(last.project.begin(), last.project.end(),
                                   [](uint32_t slot) { return slot <= UINT8_MAX; });
    if (small) {
      o.project_count = static_cast<uint8_t>(width);
      std::copy(last.project.begin(), last.project.end(), o.project);
      rest = rest.first(rest.size() - 1);
    }
  }
  o.stages = rest.data();
  o.stage_count = static_cast<uint32_t>(rest.size());
  o.direct = e.kind == Emit::Kind::ToNode && rest.empty() && o.project_count == 0 &&
             !state_[e.target].keyed();
  if (e.kind == Emit::Kind::ToStream) o.start = query_start_[e.owner];
  o.publish_only = e.kind == Emit::Kind::ToStream && rest.empty() && o.published && !o.read &&
                   o.start == INT64_MIN;
  if (o.direct) {
    const nfa::Node& node = automaton_.nodes[e.target];
    const auto repeats = [&](uint32_t p) {
      if (p > UINT8_MAX || node.width % p != 0) return false;
      for (uint32_t k = 0; k < node.width; ++k)
        if (node.init[k] != static_cast<int32_t>(k % p)) return false;
      return true;
    };
    const bool small = node.width <= UINT8_MAX;  // (a route keeps the width in a byte)
    for (uint32_t p = 1; small && p <= node.width && o.period == 0; ++p)
      if (repeats(p)) o.period = static_cast<uint8_t>(p);
    if (o.period) o.width = node.width;
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// Parallel batches.

// Work below which a batch runs inline is EngineOptions::parallel_min_work (TBB task start-up
// costs a few microseconds, an item a few hundred nanoseconds); a task gets at least a quarter
// of it, and epoch-end compaction goes parallel from half as many buckets.

// A bucket with more instances than this is split into ranges of this many instances.
constexpr uint32_t kSplitInstances = 2048;
// Buffered events after which a batch runs even though its epoch is still open.
constexpr size_t kMaxBatchEvents = 8192;

#if CAYUGA_TSAN
// Fork-join over `threads` std::threads: run(n, body) hands out body(0..n-1) and returns when
// all have run; start() returns at once and wait() joins.
class TsanPool {
 public:
  explicit TsanPool(unsigned threads) {
    for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~TsanPool() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void start(size_t n, std::function<void(size_t)> body) {
    std::lock_guard lock(mu_);
    body_ = std::move(body);
    total_ = n;
    next_ = 0;
    left_ = n;
    wake_.notify_all();
  }
  void wait() {
    std::unique_lock lock(mu_);
    done_.wait(lock, [&] { return left_ == 0; });
  }

 private:
  void loop() {
    std::unique_lock lock(mu_);
    for (;;) {
      wake_.wait(lock, [&] { return stop_ || next_ < total_; });
      if (stop_) return;
      const size_t i = next_++;
      lock.unlock();
      body_(i);
      lock.lock();
      if (--left_ == 0) done_.notify_all();
    }
  }
  std::mutex mu_;
  std::condition_variable wake_, done_;
  std::function<void(size_t)> body_;
  size_t total_ = 0, next_ = 0, left_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};
#endif

struct Engine::Parallel {
  explicit Parallel(unsigned threads) : arena(static_cast<int>(threads)), threads(threads) {
    // More threads than cores (tests oversubscribe on purpose) needs TBB's process-wide cap
    // raised, for as long as this engine lives.
    if (threads > static_cast<unsigned>(tbb::info::default_concurrency()))
      cap.emplace(tbb::global_control::max_allowed_parallelism, threads);
  }
  // Runs body(0), ..., body(n - 1) as tasks; returns when all are done.
  template <class F>
  void run(size_t n, const F& body) {
#if CAYUGA_TSAN
    start(n, body);
    wait();
#else
    arena.execute([&] { tbb::parallel_for(size_t{0}, n, [&](size_t i) { body(i); }); });
#endif
  }
  // Starts body(0), ..., body(n - 1) as tasks and returns at once; wait() joins them. The
  // tasks hold copies of `body` (what it refers to must live until wait()).
  template <class F>
  void start(size_t n, const F& body) {
#if CAYUGA_TSAN
    pool.start(n, body);
#else
    arena.execute([&] {
      for (size_t i = 0; i < n; ++i) group.run([body, i] { body(i); });
    });
#endif
  }
  void wait() {
#if CAYUGA_TSAN
    pool.wait();
#else
    arena.execute([&] { group.wait(); });
#endif
  }

  // Worker contexts for `n` tasks.
  void grow(size_t n) {
    while (workers.size() < n) {
      workers.push_back(std::make_unique<Context>());
      workers.back()->deferred = true;
    }
  }
  std::optional<tbb::global_control> cap;
  tbb::task_arena arena;
  unsigned threads;
  std::vector<std::unique_ptr<Context>> workers;  // one per task, reused across batches
  std::vector<BucketList> dirty;                  // apply_effects: per node partition
  tbb::task_group group;                          // start() / wait()
#if CAYUGA_TSAN
  TsanPool pool{threads};
#endif
};

unsigned Engine::threads() const { return par_ ? par_->threads : 1; }

void Engine::flush() { run_batch(); }

const EngineStats& Engine::stats() const {
  stats_.div_by_zero = main_.eval.div_by_zero;
  stats_.candidates = main_.candidates;
  if (par_)
    for (const auto& w : par_->workers) {
      stats_.div_by_zero += w->eval.div_by_zero;
      stats_.candidates += w->candidates;
    }
  return stats_;
}

void Engine::Context::ScratchRows::next_block(size_t width) {
  block_ = block_ == SIZE_MAX ? 0 : block_ + 1;
  constexpr size_t kBlockSlots = 1024;
  if (block_ == blocks_.size()) blocks_.emplace_back();
  Block& b = blocks_[block_];
  if (!b.slots || b.size < width) {  // a new block, or a free one too small for this row
    b.size = std::max(kBlockSlots, width);
    b.slots = std::make_unique_for_overwrite<Slot[]>(b.size);
  }
  used_ = 0;
  size_ = b.size;
}

Slot* Engine::Context::defer(bool output, uint32_t id, size_t width, int64_t t0, int64_t t1) {
  const size_t offset = slots.size();
  effects.push_back(Effect{output, id, static_cast<uint32_t>(offset), t0, t1});
  slots.resize(offset + width);
  return slots.data() + offset;
}

std::vector<uint32_t>& Engine::Context::scratch_targets() {
  if (targets_top == targets.size()) targets.emplace_back();
  std::vector<uint32_t>& buf = targets[targets_top++];
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
    epoch_events_ = 0;
    ++stats_.epochs;
    take_due(epoch_ + 1);  // (see close_epoch())
  }
  ++stats_.events_in;
  // The first events of an epoch run at once, as with one thread: most epochs are too small for
  // a parallel batch to pay (a batch would buffer them only to run them inline at the epoch's
  // end). From the event that makes the epoch big on, the rest of the epoch is buffered. Both
  // see the same frozen state, and outputs keep their order.
  if (!par_ || (batch_.empty() && ++epoch_events_ <= options_.parallel_min_work / 8)) {
    deliver(main_, stream, values, t0, t1);
    return PushResult::Ok;
  }
  // Buffered with its candidates; an event without any is done.
  ScratchGuard guard(main_.targets_top);
  bool matched;
  const std::vector<uint32_t>& candidates = find_candidates(main_, stream, values, matched);
  main_.candidates += candidates.size();
  if (candidates.empty()) return PushResult::Ok;
  const uint32_t e = static_cast<uint32_t>(batch_.size());
  batch_.push_back(BufferedEvent{stream, static_cast<uint32_t>(batch_slots_.size()), t0, t1});
  batch_slots_.insert(batch_slots_.end(), values, values + streams_[stream].width);
  for (uint32_t c : candidates) {
    cands_.emplace_back(e, c);
    main_.candidates += rides(c);  // (a riding edge counts too, as in deliver())
  }
  if (batch_.size() >= kMaxBatchEvents) run_batch();
  return PushResult::Ok;
}

void Engine::advance_to(int64_t t) {
  if (t <= floor_ || (epoch_open_ && t <= epoch_)) return;
  if (epoch_open_) close_epoch();
  floor_ = t;
  take_due(t);
  prefetch_due(0, kDueAhead);
  expire_due(t);
}

void Engine::finish() {
  if (epoch_open_) close_epoch();
}

// Instances only come and go between batches (effects are applied after one), so the buckets
// and bucket sizes found here stay valid until the batch has run.
size_t Engine::expand(size_t begin, size_t end, std::vector<Work>& out) const {
  size_t total = 0;
  for (size_t i = begin; i < end; ++i) {
    const auto [e, c] = cands_[i];
    const uint32_t target = c & ~kRides;
    const Route& r = routes_[target];
    if (r.edge) {
      out.push_back(Work{e, target, 0, 0, 0});
      total += out.back().weight();
      continue;
    }
    uint32_t bucket;
    if (find_bucket(r.node, batch_slots_.data() + batch_[e].offset, &bucket)) {
      const uint32_t count = static_cast<uint32_t>(this->bucket(r.node, bucket).count());
      for (uint32_t k = 0; k < count; k += kSplitInstances) {
        out.push_back(Work{e, target, bucket, k, std::min(count, k + kSplitInstances)});
        total += out.back().weight();
      }
    }
    if (rides(c)) {  // the riding edge, after the visit
      out.push_back(Work{e, c, 0, 0, 0});
      total += out.back().weight();
    }
  }
  return total;
}

void Engine::run_batch() {
  if (batch_.empty()) return;
  const size_t min_work = options_.parallel_min_work;
  const size_t chunk_min = std::max<size_t>(1, min_work / 4);
  if (cands_.size() >= min_work) {
    // Many candidates: each task expands and runs a contiguous range of them in one pass (one
    // fork-join). Eight ranges per thread let TBB even out ranges that meet big buckets.
    const size_t n = std::min<size_t>(par_->threads * 8, cands_.size() / chunk_min);
    par_->grow(n);
    par_->run(n, [&](size_t c) {
      Context& cx = *par_->workers[c];
      cx.work.clear();
      expand(cands_.size() * c / n, cands_.size() * (c + 1) / n, cx.work);
      for (const Work& w : cx.work) run_work(cx, w);
    });
    apply_effects(n);
  } else {
    // Few candidates, maybe over big buckets: items in one-thread order, bucket ranges split,
    // cut into chunks of about equal weight (four per thread), or run inline when light.
    const auto route = [](const auto& c) { return c.second; };
    prefetch_nodes<kToL1>(cands_.begin(), cands_.end(), route);
    prefetch_instances<kToL1>(cands_.begin(), cands_.end(), route);
    work_.clear();
    const size_t total = expand(0, cands_.size(), work_);
    if (total < min_work) {
      for (const Work& w : work_) run_work(main_, w);
    } else {
      const size_t chunks = std::clamp<size_t>(total / chunk_min, 1, par_->threads * 4);
      std::vector<size_t> cut{0};
      size_t acc = 0;
      for (size_t i = 0; i < work_.size() && cut.size() < chunks; ++i) {
        acc += work_[i].weight();
        if (acc * chunks >= total * cut.size()) cut.push_back(i + 1);
      }
      if (cut.back() != work_.size()) cut.push_back(work_.size());
      const size_t n = cut.size() - 1;
      par_->grow(n);
      par_->run(n, [&](size_t c) {
        Context& cx = *par_->workers[c];
        for (size_t i = cut[c]; i < cut[c + 1]; ++i) run_work(cx, work_[i]);
      });
      apply_effects(n);
    }
  }
  batch_.clear();
  batch_slots_.clear();
  cands_.clear();
}

void Engine::run_work(Context& cx, const Work& w) {
  const BufferedEvent& ev = batch_[w.event];
  const Slot* row = batch_slots_.data() + ev.offset;
  const Route& r = routes_[w.route & ~kRides];
  if (rides(w.route))
    ride(cx, r, ev.stream, row, ev.t0, ev.t1);
  else if (r.edge)
    fire(cx, r, row, ev.t0, ev.t1);
  else
    process(cx, r, w.bucket, w.begin, w.end, row, ev.t0, ev.t1);
}

// Applies what the workers recorded as a one-thread run would have: outputs in order, on the
// calling thread (the sink's contract); new instances and consumed marks partitioned by node
// over the workers meanwhile, each partition in order (only the order inside a bucket shows).
void Engine::apply_effects(size_t workers) {
  std::atomic<uint64_t> stored{0};
  auto instances = [&](size_t part, size_t parts, BucketList& dirty) {
    uint64_t count = 0;
    for (size_t c = 0; c < workers; ++c) {
      const Context& cx = *par_->workers[c];
      for (const Context::Effect& e : cx.effects)
        if (!e.output && e.id % parts == part)
          count += add_instance(e.id, cx.slots.data() + e.offset, e.t0, e.t1, &dirty);
      for (auto [n, bucket] : cx.dirty)
        if (n % parts == part) mark_dirty(n, bucket, true, dirty);
    }
    stored += count;
  };
  size_t effects = 0;
  for (size_t c = 0; c < workers; ++c)
    effects += par_->workers[c]->effects.size() + par_->workers[c]->dirty.size();
  const size_t parts = effects < options_.parallel_min_work ? 0 : par_->threads;
  if (parts == 0) {
    instances(0, 1, dirty_);
  } else {
    par_->dirty.resize(parts);
    par_->start(parts, [&](size_t p) { instances(p, parts, par_->dirty[p]); });
  }
  for (size_t c = 0; c < workers; ++c) {
    const Context& cx = *par_->workers[c];
    for (const Context::Effect& e : cx.effects)
      if (e.output) publish(e.id, cx.slots.data() + e.offset, streams_[e.id].width, e.t0, e.t1);
  }
  if (parts != 0) {
    par_->wait();
    for (BucketList& d : par_->dirty) {
      dirty_.insert(dirty_.end(), d.begin(), d.end());
      d.clear();
    }
  }
  stats_.instances += stored;
  for (size_t c = 0; c < workers; ++c) {
    Context& cx = *par_->workers[c];
    cx.effects.clear();
    cx.slots.clear();
    cx.dirty.clear();
  }
}

// ---------------------------------------------------------------------------------------------
// Running one event.

[[gnu::always_inline]] inline bool Engine::find_bucket(uint32_t n, const Slot* event,
                                                       uint32_t* bucket) const {
  const NodeState& ns = state_[n];
  *bucket = 0;
  if (ns.keyed()) {
    const Node& node = automaton_.nodes[n];
    uint64_t key;
    if (!index::equality_key(event[node.key_attr], node.key_type, key)) return false;
    *bucket = keyed_[n]->find(key);
    if (*bucket == Keyed::kEmpty) return false;
  }
  return this->bucket(n, *bucket).count() != 0;
}

[[gnu::always_inline]] inline const std::vector<uint32_t>& Engine::find_candidates(Context& cx,
                                                                                   uint32_t stream,
                                                                                   const Slot* row,
                                                                                   bool& matched) {
  matched = false;
  if (&cx == &main_ && ahead_count_ == kAheadSlots) {
    // The event hint() announced kHintDistance calls ago, if this is it.
    const Ahead& a = ahead_[ahead_next_];
    if (a.stream == stream && std::equal(a.values.begin(), a.values.end(), row,
                                         [](Slot x, Slot y) { return x.s == y.s; }))
      return a.candidates;
  }
  matched = true;
  std::vector<uint32_t>& out = cx.scratch_targets();
  match(stream, row, out);
  return out;
}

void Engine::deliver(Context& cx, uint32_t stream, const Slot* row, int64_t t0, int64_t t1) {
  ScratchGuard guard(cx.targets_top);
  bool matched;
  const std::vector<uint32_t>& candidates = find_candidates(cx, stream, row, matched);
  if (matched && candidates.size() > 1) {  // (hint() fetched those of a hinted event)
    const auto id = [](uint32_t route) { return route; };
    prefetch_nodes<kToL1>(candidates.begin(), candidates.end(), id);
    prefetch_instances<kToL1>(candidates.begin(), candidates.end(), id);
  }
  cx.candidates += candidates.size();
  for (uint32_t c : candidates) {
    const Route& r = routes_[c & ~kRides];
    uint32_t bucket;
    if (r.edge) {
      fire(cx, r, row, t0, t1);
      continue;
    }
    if (find_bucket(r.node, row, &bucket))
      process(cx, r, bucket, 0, this->bucket(r.node, bucket).count(), row, t0, t1);
    if (rides(c)) {  // (after the visit, as the edge's own route came after the node's)
      ++cx.candidates;
      ride(cx, r, stream, row, t0, t1);
    }
  }
}

[[gnu::always_inline]] inline void Engine::ride(Context& cx, const Route& r, uint32_t stream,
                                                const Slot* row, int64_t t0, int64_t t1) {
  if (!r.feeds) return;  // (its node died)
  // The instance is the event repeated (the edge is direct, with the stream's width as its
  // period) over the node's width, which the node it visits through shares.
  const uint32_t period = streams_[stream].width, width = visit_node(r).width;
  if (!cx.deferred) return add_repeated(r.node, row, t0, t1, period, width);
  Slot* values = cx.defer(false, r.node, width, t0, t1);
  for (uint32_t k = 0; k < width; ++k) values[k] = row[k % period];
}

// An event's candidates are cold (their queries' symbol was last seen long ago): ask for the
// routes' nodes, states and stages, then for the instances and edges those point to, so that
// the cache misses of all candidates overlap instead of queueing one after another. A candidate
// node is fetched in two steps: the first line of its state, which says whether it has any
// instance (about 40% of candidate nodes have none, and their visit reads nothing else), then,
// only for those with instances, the node, the rest of the state and the records. A START edge
// adds an instance whatever the bucket holds: its node and state come in the first step.
namespace {

// `c ? a : b` without a branch. The prefetch steps below run once per candidate, and what a
// candidate needs fetched (an edge or a node, instances or none) changes from one to the next:
// no predictor learns it, and GCC compiles a plain `?:` here into branches. A step that has
// nothing to fetch for a candidate asks again for the candidate's route, which is cached.
[[gnu::always_inline]] inline const void* pick(bool c, const void* a, const void* b) {
#if defined(__x86_64__)
  asm("test %1, %1\n\tcmovne %2, %0" : "+r"(b) : "r"(c), "r"(a) : "cc");
  return b;
#else
  return c ? a : b;
#endif
}

// Asks for the second, third and fourth lines that `bytes` of records from `data` reach, if
// `ask` (each line they do not reach asks for `none`, a cached line, instead). The records'
// first line is the caller's: it may be inline in the state. (Most buckets hold a few
// records: about three where visits and expiry read them, which with the first one's offset
// in its line often reach a third or fourth line.)
template <int Locality>
[[gnu::always_inline]] inline void prefetch_record_lines(bool ask, const char* data, size_t bytes,
                                                         const void* none) {
  const size_t span = (reinterpret_cast<uintptr_t>(data) & 63) + bytes;
  __builtin_prefetch(pick(ask & (span > 64), data + 64, none), 0, Locality);
  __builtin_prefetch(pick(ask & (span > 128), data + 128, none), 0, Locality);
  __builtin_prefetch(pick(ask & (span > 192), data + 192, none), 0, Locality);
}

}  // namespace

template <int Locality, class It, class RouteOf>
void Engine::prefetch_nodes(It first, It last, RouteOf route_of) const {
  for (It it = first; it != last; ++it) {
    const uint32_t c = route_of(*it);
    const Route& r = routes_[c & ~kRides];
    if (r.bare) continue;
    const void* self = &r;
    // A START edge that adds an instance, or a node's route with a riding edge that fires.
    const bool adds = r.to_node | r.fed | rides(c);
    // (outs_ is only indexed when the route spills: otherwise `outs` is `visit`.)
    __builtin_prefetch(pick(r.spills, outs_.data() + (r.outs & -uint32_t{r.spills}), self), 0,
                       Locality);
    // A node's state's first line (it says whether there is anything to visit); a START edge's
    // node and state, if it adds an instance (nodes and states are line-aligned). An edge to a
    // stream reads state 0's line, which is cached.
    const char* state = reinterpret_cast<const char*>(&state_[r.node]);
    __builtin_prefetch(state, 0, Locality);
    __builtin_prefetch(pick(adds, state + 64, self), 0, Locality);
    __builtin_prefetch(pick(r.reads_node, &automaton_.nodes[r.node], self), 0, Locality);
  }
  // Prefetches are no side effect to GCC, which would otherwise find these functions pure and
  // drop every call to them.
  asm volatile("" ::: "memory");
}

template <int Locality, class It, class RouteOf>
void Engine::prefetch_instances(It first, It last, RouteOf route_of) const {
  for (It it = first; it != last; ++it) {
    const uint32_t c = route_of(*it);
    const Route& r = routes_[c & ~kRides];
    if (r.bare) continue;
    const bool adds = r.to_node | r.fed | rides(c);  // (as in prefetch_nodes())
    // The stages left in the first emit (an edge has one emit; most nodes too).
    if (r.staged) __builtin_prefetch(outs_[r.outs].stages, 0, Locality);
    const NodeState& ns = state_[r.node];
    const void* self = &r;
    const bool keyed = ns.keyed();
    const Bucket& b = ns.single;
    // A visit reads the node and the rest of the state, if there is anything to visit.
    const bool visit = (!r.edge) & (keyed | (b.count() != 0));
    const char* node = reinterpret_cast<const char*>(&visit_node(r));
    const char* state = reinterpret_cast<const char*>(&ns);
    __builtin_prefetch(pick(visit, node, self), 0, Locality);
    __builtin_prefetch(pick(visit & r.fold, node + 64, self), 0, Locality);
    __builtin_prefetch(pick(visit & !keyed, state + 64, self), 0, Locality);
    // The records, read by a visit or added to by an edge (a keyed node's bucket is found by
    // key at the visit): on the heap, or inline in the state's third line.
    const bool records = (visit | adds) & !keyed;
    const bool heap = b.rows.on_heap();
    const char* data = reinterpret_cast<const char*>(b.rows.data());
    const bool third = ns.third_line_used(r.edge | r.fed | rides(c));
    __builtin_prefetch(pick(records & heap, data, pick(records & third, ns.third_line(), self)), 0,
                       Locality);
    // (A branch: records are on the heap only in a bucket that outgrew its slots until the
    // epoch's close, a few visits in a hundred, so it is predicted.)
    if (records & heap) [[unlikely]]
      prefetch_record_lines<Locality>(true, data, b.rows.size() * sizeof(Slot), self);
  }
  asm volatile("" ::: "memory");
}

void Engine::prefetch_keyed(uint32_t stream, const Slot* values, int step) const {
  if (stream >= keyed_readers_.size()) return;
  for (uint32_t n : keyed_readers_[stream]) {
    const Node& node = automaton_.nodes[n];  // (a few nodes, which stay cached)
    uint64_t key;
    if (!index::equality_key(values[node.key_attr], node.key_type, key)) continue;
    const Keyed& keyed = *keyed_[n];
    if (step == 0) {
      __builtin_prefetch(keyed.slot_of(key), 0, kToL2);
      continue;
    }
    const uint32_t id = keyed.find(key);
    if (id == Keyed::kEmpty) continue;
    const Bucket& b = keyed.at(id);
    const char* head = reinterpret_cast<const char*>(&b);
    if (step == 1) {  // the bucket, with its inline records
      __builtin_prefetch(head, 0, kToL2);
      __builtin_prefetch(head + 64, 0, kToL2);
      __builtin_prefetch(head + 128, 0, kToL2);
      __builtin_prefetch(head + sizeof(Bucket) - 1, 0, kToL2);
    } else if (b.rows.on_heap()) {
      const char* data = reinterpret_cast<const char*>(b.rows.data());
      __builtin_prefetch(data, 0, kToL2);
      prefetch_record_lines<kToL2>(true, data, b.rows.size() * sizeof(Slot), data);
    }
  }
  asm volatile("" ::: "memory");
}

void Engine::hint(uint32_t stream, const Slot* values) {
  announce(stream, values, nullptr);
}

void Engine::hint(uint32_t stream, const Slot* values, std::span<const uint32_t> candidates,
                  uint64_t generation) {
  announce(stream, values, generation == generation_ ? &candidates : nullptr);
}

void Engine::announce(uint32_t stream, const Slot* values, const std::span<const uint32_t>* given) {
  if (stream >= index_.size()) return;
  // The event announced k calls ago takes step k of the chain its push will walk: the index
  // entry (step 0, below), its postings, the candidates and their routes, their nodes and
  // states, their instances. Each step reads only what the step before fetched.
  const auto id = [](uint32_t route) { return route; };
  // ago(k): the event announced k calls ago. The steps run from the oldest event to the newest,
  // so no branch depends on k.
  const auto ago = [&](size_t k) -> Ahead& {
    return ahead_[ahead_next_ >= k ? ahead_next_ - k : ahead_next_ + kAheadSlots - k];
  };
  static_assert(kHintDistance == 5, "one step per call below");
  if (!keyed_readers_.empty()) {
    if (ahead_count_ >= 2) prefetch_keyed(ago(2).stream, ago(2).values.data(), 2);
    if (ahead_count_ >= 1) prefetch_keyed(ago(1).stream, ago(1).values.data(), 1);
  }
  if (ahead_count_ >= 4) {
    const Ahead& a = ago(4);
    prefetch_instances<kToL2>(a.candidates.begin(), a.candidates.end(), id);
  }
  if (ahead_count_ >= 3) {
    const Ahead& a = ago(3);
    prefetch_nodes<kToL2>(a.candidates.begin(), a.candidates.end(), id);
  }
  if (ahead_count_ >= 2) {
    Ahead& a = ago(2);
    if (!a.given) {
      a.candidates.clear();
      match(a.stream, a.values.data(), a.candidates);
    }
    for (uint32_t c : a.candidates) __builtin_prefetch(&routes_[c & ~kRides], 0, kToL2);
  }
  if (ahead_count_ >= 1) {
    const Ahead& a = ago(1);
    if (!a.given) index_[a.stream].prefetch_postings(a.values.data());
  }
  Ahead& a = ahead_[ahead_next_];
  a.stream = stream;
  const uint32_t width = streams_[stream].width;
  a.values.resize(width);  // (copied in a loop: a memmove call costs more for a few slots)
  for (uint32_t i = 0; i < width; ++i) a.values[i] = values[i];
  a.given = given != nullptr;
  if (!keyed_readers_.empty()) prefetch_keyed(stream, values, 0);
  if (given)
    a.candidates.assign(given->begin(), given->end());
  else
    index_[stream].prefetch_entries(values);
  ahead_next_ = ahead_next_ + 1 == kAheadSlots ? 0 : ahead_next_ + 1;
  ahead_count_ = std::min(ahead_count_ + 1, kAheadSlots);
  asm volatile("" ::: "memory");
}

[[gnu::always_inline]] inline void Engine::process(Context& cx, const Route& r, uint32_t bucket_id,
                                                   size_t begin, size_t end, const Slot* event,
                                                   int64_t t0, int64_t t1) {
  const uint32_t n = r.node;
  const Node& node = visit_node(r);  // (its DUR bound is not n's: state_[n].max_dur is)
  Bucket& b = bucket(n, bucket_id);
  const uint32_t width = node.width;
  const uint32_t stride = kHeader + width;
  // The produced row and a FOLD's rebound instance: on the stack when they are small (the
  // usual case), else scratch rows.
  constexpr size_t kOnStack = 32;
  Slot on_stack[kOnStack];
  const bool fold = node.kind == NodeKind::Fold;
  const size_t need = node.output.size() + (width & -uint32_t{fold});  // (a branch mispredicts)
  std::optional<Context::ScratchRows::Scope> scope;
  Slot* out = on_stack;
  if (need > kOnStack) {
    scope.emplace(cx.scratch);
    out = cx.scratch.take(need);
  }
  Slot* rebound = out + node.output.size();  // a FOLD's
  bool consumed_any = false;
  for (size_t k = begin; k < end; ++k) {
    // Re-read every time: adding an instance (a FOLD rebinding) may move the records.
    Slot* rec = b.rows.data() + k * stride;
    if (rec[1].i >= t0) continue;
    const int64_t inst_t0 = rec[0].i;
    const Slot* inst = rec + kHeader;
    EvalInput in;
    in.rows[0] = inst;
    in.rows[1] = event;
    in.dur = t1 - inst_t0;
    if (!node.filter_true && !node.filter.eval_predicate(in, cx.eval)) continue;
    // Several tasks may consume the same instance: the flag is only ever set.
    std::atomic_ref<int64_t> consumed(rec[2].i);
    if (!consumed.load(std::memory_order_relaxed)) {
      consumed.store(1, std::memory_order_relaxed);
      consumed_any = true;
    }
    const Slot* rows[2] = {inst, event};
    if (fold) {
      if (!node.rebind.eval_predicate(in, cx.eval)) continue;
      // The rebound instance is built where it is kept: a new record of this same bucket, or a
      // deferred effect (a keyed node's goes through scratch to its bucket). Not built in
      // scratch and copied: the copy's wide loads of slots just stored one by one are not
      // forwarded from the store buffer, and wait for every store before them to reach the
      // cache.
      const bool here = !cx.deferred && !state_[n].keyed();
      Slot* dst = rebound;
      if (cx.deferred) {
        dst = cx.defer(false, n, width, inst_t0, t1);
      } else if (here) {
        dst = b.add(width, state_[n].max_dur, inst_t0, t1);  // (may move the records)
        inst = b.rows.data() + k * stride + kHeader;
        in.rows[0] = inst;
      }
      std::copy(inst, inst + width, dst);
      for (const auto& [slot, prog] : node.aggregates) dst[slot] = prog.eval_value(in, cx.eval);
      std::copy(event, event + (width - node.last_base), dst + node.last_base);
      if (here)
        added(b, n, 0);
      else if (!cx.deferred)
        add_instance(n, dst, inst_t0, t1);
      rows[0] = dst;
    }
    for (size_t i = 0; i < node.output.size(); ++i)
      out[i] = rows[node.output[i].row][node.output[i].offset];
    fire(cx, r, out, inst_t0, t1);
  }
  if (consumed_any) {
    if (cx.deferred) cx.dirty.emplace_back(n, bucket_id);
    else
      mark_dirty(n, bucket_id, true);
  }
}

[[gnu::always_inline]] inline void Engine::fire(Context& cx, const Route& r, const Slot* row,
                                                int64_t t0, int64_t t1) {
  if (!r.any) return;
  // The first emit, from the route's copy.
  fire_out(
      cx, r, [&]() -> const Out& { return first_out(r); }, row, t0, t1);
  if (!r.more) return;
  for (const Out* o = &outs_[r.outs + 1];; ++o) {
    fire_out(
        cx, *o, [o]() -> const Out& { return *o; }, row, t0, t1);
    if (o->last) return;
  }
}

void Engine::fire_stages(Context& cx, const Out& o, const Slot* row, int64_t t0, int64_t t1) {
  if (t0 < o.start) return;  // a match begun before its query
  Context::ScratchRows::Scope scope(cx.scratch);
  const Slot* cur = row;
  for (const Stage* it = o.stages; it != o.stages + o.stage_count; ++it) {
    const Stage& stage = *it;
    EvalInput in;
    in.rows[0] = cur;
    in.rows[1] = cur;
    in.dur = t1 - t0;
    if (stage.kind == Stage::Kind::Filter) {
      if (!stage.pred.eval_predicate(in, cx.eval)) return;
    } else {
      Slot* next = cx.scratch.take(stage.types.size());
      if (!stage.project.empty()) {
        for (size_t i = 0; i < stage.project.size(); ++i) next[i] = cur[stage.project[i]];
      } else {
        for (size_t i = 0; i < stage.items.size(); ++i)
          next[i] = stage.items[i].eval_value(in, cx.eval);
      }
      cur = next;
    }
  }
  if (o.project_count) {
    Slot* next = cx.scratch.take(o.project_count);
    for (size_t i = 0; i < o.project_count; ++i) next[i] = cur[o.project[i]];
    cur = next;
  }
  if (o.kind == Emit::Kind::ToNode) {
    add_from_row(cx, o.target, cur, t0, t1);
    return;
  }
  if (o.published) {
    if (cx.deferred)
      std::copy_n(cur, o.width, cx.defer(true, o.target, o.width, t0, t1));
    else
      publish(o.target, cur, o.width, t0, t1);
  }
  if (o.read) deliver(cx, o.target, cur, t0, t1);
}

void Engine::publish(uint32_t stream, const Slot* row, uint32_t width, int64_t t0, int64_t t1) {
  ++stats_.outputs;
  if (!sink_) return;
  sink_(stream, RowView{t0, t1, {row, width}});
}

// ---------------------------------------------------------------------------------------------
// Instance state.

inline Slot* Engine::Bucket::add(uint32_t width, int64_t max_dur, int64_t t0, int64_t t1) {
  ++records;
  expires = std::min(expires, expiry_of(t0, max_dur));
  Slot* rec = rows.append(kHeader + width);
  rec[0].i = t0;
  rec[1].i = t1;
  rec[2].i = 0;  // not consumed
  return rec + kHeader;
}

Engine::Bucket* Engine::bucket_for(uint32_t n, const Slot* instance, uint32_t* id) {
  NodeState& ns = state_[n];
  *id = 0;
  if (!ns.keyed()) return &ns.single;
  const Node& node = automaton_.nodes[n];
  uint64_t key;
  // A NaN key equals nothing: such an instance can never be affected, so it is never stored.
  if (!index::equality_key(instance[node.key_slot], node.key_type, key)) return nullptr;
  *id = keyed_[n]->find_or_add(key);
  return &keyed_[n]->at(*id);
}

uint32_t Engine::Keyed::find_or_add(uint64_t key) {
  if (table_.empty()) table_.assign(kMinSlots, Entry{0, kEmpty});
  const size_t i = probe(key);
  if (table_[i].id != kEmpty) return table_[i].id;
  uint32_t id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
    keys_[id] = key;
  } else {
    id = size_++;
    if (const auto [chunk, offset] = place(id); offset == 0)
      chunks_.push_back(std::make_unique<Bucket[]>(chunk_size(chunk)));
    keys_.push_back(key);
  }
  at(id).in_table = true;
  table_[i] = Entry{key, id};
  if (2 * live() <= table_.size()) return id;
  // Over half full: twice the slots, every entry placed again.
  std::vector<Entry> old =
      std::exchange(table_, std::vector<Entry>(2 * table_.size(), Entry{0, kEmpty}));
  for (const Entry& e : old)
    if (e.id != kEmpty) table_[probe(e.key)] = e;  // (keys are distinct: probe finds a free slot)
  return id;
}

void Engine::Keyed::release(uint32_t id) {
  Bucket& b = at(id);
  b = Bucket{};  // (frees records on the heap; `scheduled` matches no entry of the wheel)
  b.in_table = true;
  free_.push_back(id);
  // Linear probing: the entries after the freed slot, up to the next free one, move back into
  // it when their home is not between it and them, so that every lookup still finds its key.
  const size_t mask = table_.size() - 1;
  size_t hole = probe(keys_[id]);
  table_[hole].id = kEmpty;
  for (size_t j = (hole + 1) & mask; table_[j].id != kEmpty; j = (j + 1) & mask) {
    const size_t h = home(table_[j].key);
    const bool stays = hole < j ? hole < h && h <= j : hole < h || h <= j;
    if (stays) continue;
    table_[hole] = table_[j];
    table_[j].id = kEmpty;
    hole = j;
  }
}

size_t Engine::heap_buckets() const {
  size_t n = 0;
  for (size_t k = 0; k < state_.size(); ++k) {
    if (!state_[k].keyed()) n += state_[k].single.rows.on_heap();
    if (k < keyed_.size() && keyed_[k])
      for (uint32_t id = 0; id < keyed_[k]->size(); ++id) n += keyed_[k]->at(id).rows.on_heap();
  }
  return n;
}

size_t Engine::instance_buckets() const {
  size_t n = 0;
  for (const auto& k : keyed_)
    if (k) n += k->live();
  return n;
}

bool Engine::add_instance(uint32_t n, const Slot* instance, int64_t t0, int64_t t1,
                          BucketList* dirty) {
  uint32_t id;
  Bucket* b = bucket_for(n, instance, &id);
  if (!b) return false;
  const Node& node = automaton_.nodes[n];
  std::copy_n(instance, node.width, b->add(node, t0, t1));
  if (dirty)
    mark_dirty(n, id, false, *dirty);
  else
    added(*b, n, id);
  return true;
}

namespace {

// The instance a node makes of an incoming row: slot k := row[init[k]], or zero.
inline void init_instance(const Node& node, const Slot* row, Slot* out) {
  const int32_t* init = node.init.data();
  for (uint32_t k = 0; k < node.width; ++k) out[k] = init[k] >= 0 ? row[init[k]] : Slot{};
}

}  // namespace

void Engine::add_direct(uint32_t n, const Slot* row, int64_t t0, int64_t t1) {
  const Node& node = automaton_.nodes[n];
  Bucket& b = state_[n].single;
  init_instance(node, row, b.add(node, t0, t1));
  added(b, n, 0);
}

[[gnu::always_inline]] inline void Engine::add_repeated(uint32_t n, const Slot* row, int64_t t0,
                                                        int64_t t1, uint32_t period,
                                                        uint32_t width) {
  NodeState& ns = state_[n];
  Bucket& b = ns.single;
  Slot* values = b.add(width, ns.max_dur, t0, t1);
  if (period == 3) {  // a 3-attribute stream: slot copies (std::copy_n calls memmove)
    const Slot a = row[0], b1 = row[1], c = row[2];
    // A NEXT's instance is the event, a FOLD's the event twice: the second copy lands on the
    // first when there is none, rather than a branch on which it is.
    Slot* second = values + 3 * (width >= 6);
    values[0] = a, values[1] = b1, values[2] = c;
    second[0] = a, second[1] = b1, second[2] = c;
    for (uint32_t k = 6; k < width; k += 3) {
      values[k] = a;
      values[k + 1] = b1;
      values[k + 2] = c;
    }
  } else {
    for (uint32_t k = 0; k < width; ++k) values[k] = row[k % period];
  }
  added(b, n, 0);
}

void Engine::add_from_row(Context& cx, uint32_t n, const Slot* row, int64_t t0, int64_t t1) {
  if (!cx.deferred && !state_[n].keyed()) return add_direct(n, row, t0, t1);  // the common case
  const Node& node = automaton_.nodes[n];
  Context::ScratchRows::Scope scope(cx.scratch);
  Slot* inst = cx.deferred ? cx.defer(false, n, node.width, t0, t1) : cx.scratch.take(node.width);
  init_instance(node, row, inst);
  if (!cx.deferred) add_instance(n, inst, t0, t1);
}

namespace {

// Heap blocks of records, kept per thread by size for the next grow() on the same thread:
// Records::move_in() and a grow from one heap block to a larger one give theirs back. Capacities
// double from 2 * kInline, so the first kClasses of them are classes. In the 100k walk a bucket
// outgrows its slots about once every two events, mostly a FOLD's (a rebound and a new instance
// behind the one they replace), and moves back at the epoch's close: an epoch frees and takes
// many blocks, more than the allocator's own per-thread cache keeps (seven a size in glibc).
// Some grow further (about one grow in eight): with only the first size kept, their larger
// blocks went back to the allocator and took the first size's with them, until the list ran dry
// and one grow in four called the allocator.
struct SpareBlocks {
  static constexpr size_t kFirst = 36;  // slots: 2 * Records::kInline (asserted in grow())
  static constexpr size_t kClasses = Engine::kSpareSizes;
  static constexpr size_t kMaxBytes = size_t{1} << 20;  // per class
  std::vector<Slot*> blocks[kClasses];
  ~SpareBlocks() { free_all(); }
  void free_all() {
    for (auto& list : blocks) {
      for (Slot* b : list) std::free(b);
      list.clear();
    }
  }
  // The class of a block of `cap` slots, or kClasses if it has none.
  static size_t class_of(size_t cap) {
    const size_t k = std::countr_zero(cap / kFirst);
    return k < kClasses && cap == kFirst << k ? k : kClasses;
  }
  Slot* take(size_t cap) {
    const size_t k = class_of(cap);
    if (k < kClasses && !blocks[k].empty()) {
      Slot* b = blocks[k].back();
      blocks[k].pop_back();
      return b;
    }
    Slot* b = static_cast<Slot*>(std::malloc(cap * sizeof(Slot)));
    if (!b) throw std::bad_alloc();
    return b;
  }
  void give(Slot* b, size_t cap) {
    const size_t k = class_of(cap);
    if (k < kClasses && blocks[k].size() * cap * sizeof(Slot) < kMaxBytes)
      blocks[k].push_back(b);
    else
      std::free(b);
  }
};
thread_local SpareBlocks spare_blocks;

}  // namespace

std::array<size_t, Engine::kSpareSizes> Engine::spare_heap_blocks() {
  std::array<size_t, kSpareSizes> n;
  for (size_t k = 0; k < n.size(); ++k) n[k] = spare_blocks.blocks[k].size();
  return n;
}

void Engine::free_spare_heap_blocks() {
  spare_blocks.free_all();
}

void Engine::Records::grow(size_t need) {
  static_assert(SpareBlocks::kFirst == 2 * kInline);
  size_t cap = 2 * size_t{cap_};
  while (cap < need) cap *= 2;
  Slot* heap = spare_blocks.take(cap);
  std::copy_n(data_, size_, heap);
  if (on_heap()) spare_blocks.give(data_, cap_);
  data_ = heap;
  cap_ = static_cast<uint32_t>(cap);
}

void Engine::Records::move_in() {
  std::copy_n(data_, size_, inline_);
  spare_blocks.give(data_, cap_);
  data_ = inline_;
  cap_ = kInline;
}

[[gnu::always_inline]] inline void Engine::compact(Bucket& b, int64_t max_dur, int64_t next_time,
                                                   int64_t& delta, uint64_t& expired) {
  const bool expiring = next_time >= b.expires;
  if (!b.consumed && !expiring) return;  // nothing consumed, nothing expired
  if (b.records != 1) {
    const int64_t before = b.count();
    expired += compact_slow(b, max_dur, next_time);
    delta += static_cast<int64_t>(b.count()) - before;
    return;
  }
  // One record (about half of the buckets expiry visits): it goes, consumed or expired, or
  // stays. Only a consumed bucket's record is read (a consumed instance marks its bucket), so
  // expiring a lone instance reads neither it nor the node.
  const bool consumed = b.consumed && b.rows.data()[2].i;
  b.consumed = false;
  if (!consumed && !expiring) return;
  expired += consumed ? 0 : 1;
  --delta;
  b.records = 0;
  b.rows.shrink(0);
  b.expires = INT64_MAX;
}

namespace {

// The loop of compact_slow() for records of `Stride` slots (0: `stride`, known only at run
// time). A kept record moves down over dropped ones as one fixed-size copy when the stride is
// known: most strides are 6 or 9 slots, and a loop of slot copies cost three times as much.
template <uint32_t Stride>
size_t compact_records(Slot* rows, size_t records, uint32_t stride, bool bounded, int64_t max_dur,
                       int64_t next_time, uint64_t& expired, int64_t& min_t0) {
  if constexpr (Stride != 0) stride = Stride;
  size_t keep = 0;
  for (size_t k = 0; k < records; ++k) {
    const Slot* rec = rows + k * stride;
    if (rec[2].i) continue;
    if (bounded && next_time - rec[0].i > max_dur) {
      ++expired;
      continue;
    }
    min_t0 = std::min(min_t0, rec[0].i);
    if (keep != k) {  // (records never overlap: `keep` < `k`)
      if constexpr (Stride != 0)
        std::memcpy(rows + keep * Stride, rec, Stride * sizeof(Slot));
      else
        std::copy_n(rec, stride, rows + keep * stride);
    }
    ++keep;
  }
  return keep;
}

}  // namespace

uint64_t Engine::compact_slow(Bucket& b, int64_t max_dur, int64_t next_time) {
  b.consumed = false;
  if (b.records == 0) return 0;
  const uint32_t stride = static_cast<uint32_t>(b.rows.size()) / b.records;
  const bool bounded = max_dur != nfa::kNoDurBound;
  uint64_t expired = 0;
  int64_t min_t0 = INT64_MAX;
  Slot* rows = b.rows.data();
  const auto run = [&]<uint32_t Stride>() {
    return compact_records<Stride>(rows, b.records, stride, bounded, max_dur, next_time, expired,
                                   min_t0);
  };
  size_t keep;
  switch (stride) {  // a NEXT over a 3-attribute stream keeps 3 values, a FOLD 6
    case kHeader + 3:
      keep = run.template operator()<kHeader + 3>();
      break;
    case kHeader + 6:
      keep = run.template operator()<kHeader + 6>();
      break;
    default:
      keep = run.template operator()<0>();
  }
  b.rows.shrink(keep * stride);
  b.records = static_cast<uint32_t>(keep);
  b.expires = keep ? expiry_of(min_t0, max_dur) : INT64_MAX;
  return expired;
}

// Queues the bucket's next expiry: the first time at which its oldest instance is past the
// node's DUR bound. Stale entries (the bucket changed since) are skipped when they come due. A
// queued deadline that is not later than the new one stays: waking early is harmless (the
// bucket is compacted and queued again), and buckets touched every epoch would otherwise flood
// the wheel with stale entries.
[[gnu::always_inline]] inline void Engine::schedule(Bucket& b, uint32_t n, uint32_t bucket) {
  if (b.expires < b.scheduled) {  // (INT64_MAX: nothing to expire)
    b.scheduled = b.expires;
    deadlines_.add(b.expires, n, bucket | (b.in_table ? kInTable : 0));
  }
}

[[gnu::always_inline]] inline void Engine::settle(Bucket& b, uint32_t n, uint32_t bucket) {
  if (b.records == 0 && b.in_table) return keyed_[n]->release(bucket);
  schedule(b, n, bucket);
}

void Engine::compact_all(const BucketList& list, int64_t next_time) {
  // Per bucket: the change in live instances and the expired count.
  auto one = [&](uint32_t n, uint32_t id, int64_t& delta, uint64_t& expired) {
    Bucket& b = bucket(n, id);
    compact(b, state_[n].max_dur, next_time, delta, expired);
    return &b;
  };
  // On the calling thread only (the wheel is not shared).
  auto requeue = [&](Bucket& b, uint32_t n, uint32_t id) {
    b.dirty = false;
    settle(b, n, id);
  };
  int64_t delta = 0;
  uint64_t expired = 0;
  if (!par_ || list.size() < options_.parallel_min_work / 2 + 1) {
    for (auto [n, id] : list) requeue(*one(n, id, delta, expired), n, id);  // one pass
  } else {
    std::atomic<int64_t> total_delta{0};
    std::atomic<uint64_t> total_expired{0};
    const size_t tasks = std::min<size_t>(par_->threads * 4, list.size());
    par_->run(tasks, [&](size_t c) {
      int64_t d = 0;
      uint64_t x = 0;
      for (size_t i = list.size() * c / tasks; i < list.size() * (c + 1) / tasks; ++i)
        one(list[i].first, list[i].second, d, x);
      total_delta += d;
      total_expired += x;
    });
    delta = total_delta;
    expired = total_expired;
    for (auto [n, id] : list) requeue(bucket(n, id), n, id);
  }
  stats_.instances += delta;
  stats_.expired += expired;
}

void Engine::take_due(int64_t next_time) {
  const size_t before = due_entries_.size();
  deadlines_.take_until(next_time, due_entries_);
  // Due buckets are cold: ask for the states' first lines before reading any (as
  // prefetch_nodes does). Those lines say how much more a bucket's compaction reads. (Of a
  // long list, the first ones: expire_due() asks for the rest as it goes.)
  for (size_t i = before; i < std::min(due_entries_.size(), 2 * kDueAhead); ++i)
    __builtin_prefetch(due_line(due_entries_[i]));
}

void Engine::prefetch_due(size_t first, size_t last) const {
  // A lone instance that was not consumed goes with what the state's first line holds;
  // otherwise the records are read too: ask for them. (Addresses chosen without branches, as
  // in prefetch_instances(); the state itself stands for nothing to fetch.)
  for (size_t i = first; i < std::min(last, due_entries_.size()); ++i) {
    const ExpiryWheel::Entry& d = due_entries_[i];
    if (const Bucket* keyed = due_keyed(d)) {  // its records, inline or on the heap
      const Bucket& b = *keyed;
      const bool records = (b.records != 1) | b.consumed;
      const char* data = reinterpret_cast<const char*>(b.rows.data());
      __builtin_prefetch(pick(records, data, &b));
      prefetch_record_lines<3>(records, data, b.rows.size() * sizeof(Slot), &b);
      continue;
    }
    const NodeState& ns = state_[d.node];
    const Bucket& b = ns.single;
    const char* state = reinterpret_cast<const char*>(&ns);
    // (A keyed node's records are in its buckets, which are not asked for.)
    const bool records = (!ns.keyed()) & ((b.records != 1) | b.consumed);
    const bool heap = records & b.rows.on_heap();
    const char* data = reinterpret_cast<const char*>(b.rows.data());
    __builtin_prefetch(pick(heap, data, pick(records, state + 64, state)));
    __builtin_prefetch(pick(records & !heap & ns.third_line_used(false), ns.third_line(), state));
    prefetch_record_lines<3>(heap, data, b.rows.size() * sizeof(Slot), state);
  }
  // As in prefetch_nodes(): without this, GCC finds the function pure and drops every call
  // to it (it did until this line was added, so the due records were never asked for).
  asm volatile("" ::: "memory");
}

void Engine::expire_due(int64_t next_time) {
  // The buckets to compact: those whose entry is the deadline queued for them (a dead node's
  // state was reset: its `scheduled` matches no entry), and not compacted at this epoch's end
  // anyway (dirty).
  const auto due = [&](const ExpiryWheel::Entry& d) -> Bucket* {
    Bucket& b = bucket(d.node, d.bucket & ~kInTable);
    if (b.scheduled != d.deadline) return nullptr;  // superseded
    b.scheduled = INT64_MAX;
    return b.dirty ? nullptr : &b;
  };
  if (par_ && due_entries_.size() > options_.parallel_min_work / 2) {  // (may go parallel)
    due_.clear();
    for (const ExpiryWheel::Entry& d : due_entries_)
      if (due(d)) due_.emplace_back(d.node, d.bucket & ~kInTable);
    due_entries_.clear();
    compact_all(due_, next_time);
    return;
  }
  int64_t delta = 0;
  uint64_t expired = 0;
  const size_t count = due_entries_.size();
  for (size_t i = 0; i < count; ++i) {
    // A long list's states and records are asked for as the loop goes.
    if (i + 2 * kDueAhead < count) __builtin_prefetch(due_line(due_entries_[i + 2 * kDueAhead]));
    if (i + kDueAhead < count) prefetch_due(i + kDueAhead, i + kDueAhead + 1);
    const ExpiryWheel::Entry& d = due_entries_[i];
    Bucket* b = due(d);
    if (!b) continue;
    compact(*b, state_[d.node].max_dur, next_time, delta, expired);
    settle(*b, d.node, d.bucket & ~kInTable);
  }
  due_entries_.clear();
  stats_.instances += delta;
  stats_.expired += expired;
}

void Engine::close_epoch() {
  run_batch();
  epoch_open_ = false;
  const int64_t next_time = epoch_ + 1;  // every later event has t1 >= next_time
  floor_ = next_time;
  // Instances only grow during an epoch: this is its most.
  stats_.peak_instances = std::max(stats_.peak_instances, stats_.instances);
  // The buckets due by now were taken when the epoch opened (push()), so their states had the
  // epoch to come in; deadlines queued since then that are due already join them. Their
  // records are asked for before the compaction of the epoch's own buckets (which queues
  // no deadline this close reaches: what it keeps expires later), whose work hides the misses.
  take_due(next_time);
  prefetch_due(0, kDueAhead);
  compact_all(dirty_, next_time);
  dirty_.clear();
  expire_due(next_time);
}

}  // namespace cayuga
