#include "runtime/jit_manager.h"

#include <algorithm>
#include <cstdio>
#include <functional>

namespace cayuga {

const char* to_string(JitMode m) {
  switch (m) {
    case JitMode::Off: return "off";
    case JitMode::On: return "on";
    case JitMode::Auto: return "auto";
  }
  return "?";
}

std::optional<JitMode> parse_jit_mode(std::string_view s) {
  if (s == "off") return JitMode::Off;
  if (s == "on") return JitMode::On;
  if (s == "auto") return JitMode::Auto;
  return std::nullopt;
}

namespace {

// Program::source() references rows directly: First = row 0, Second = row 1.
SlotRef resolved_ref(Side side, uint32_t index) {
  return SlotRef{static_cast<uint8_t>(side == Side::Second ? 1 : 0), index};
}

// The programs of `node`'s emits from the `first_emit`-th on.
template <typename F>
void for_each_emit_program(const nfa::Node& node, size_t first_emit, const F& f) {
  for (size_t k = first_emit; k < node.emits.size(); ++k)
    for (const auto& stage : node.emits[k].stages) {
      if (stage.kind == nfa::Stage::Kind::Filter) f(stage.pred);
      for (const auto& item : stage.items) f(item);
    }
}

// Every program of `node`.
template <typename F>
void for_each_node_program(const nfa::Node& node, const F& f) {
  if (node.dead) return;
  if (node.kind != nfa::NodeKind::Start) f(node.filter);
  if (node.kind == nfa::NodeKind::Fold) {
    f(node.rebind);
    for (const auto& agg : node.aggregates) f(agg.second);
  }
  for_each_emit_program(node, 0, f);
}

template <typename F>
void for_each_program(const nfa::Automaton& a, const F& f) {
  for (const auto& node : a.nodes) for_each_node_program(node, f);
}

// The programs a build added: those of the nodes from `first_node` on, and of the emits that
// `changes` says older nodes gained.
template <typename F>
void for_each_added_program(const nfa::Automaton& a, size_t first_node,
                            const nfa::BuildChanges& changes, const F& f) {
  for (size_t n = first_node; n < a.nodes.size(); ++n) for_each_node_program(a.nodes[n], f);
  for (const auto& [n, before] : changes.extended)
    if (!a.nodes[n].dead) for_each_emit_program(a.nodes[n], before, f);
}

// A visitor for the loops above that collects, into `todo`, the programs that still need
// native code.
auto to_compile(std::vector<const Program*>& todo) {
  return [&todo](const Program& p) {
    if (!p.has_native() && !p.always_true()) todo.push_back(&p);
  };
}

}  // namespace

void release_sources(const nfa::Automaton& a, size_t first_node, const nfa::BuildChanges& changes) {
  for_each_added_program(a, first_node, changes, [](const Program& p) { p.release_source(); });
}

JitManager::JitManager(JitMode mode) : mode_(mode) {
  if (mode_ == JitMode::Off) return;
  std::string error;
  jit_ = jit::Jit::create(&error);
  if (!jit_) {
    std::fprintf(stderr, "cayuga: JIT unavailable (%s); running interpreted\n", error.c_str());
    return;
  }
  if (mode_ == JitMode::Auto) thread_ = std::thread([this] { worker(); });
}

JitManager::~JitManager() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void JitManager::submit(const nfa::Automaton& a) {
  if (!jit_) return;
  std::vector<const Program*> todo;
  for_each_program(a, to_compile(todo));
  dropped_ = false;
  queue(todo);
}

void JitManager::submit_added(const nfa::Automaton& a, size_t first_node,
                              const nfa::BuildChanges& changes) {
  if (!jit_) return;
  if (dropped_) return submit(a);
  std::vector<const Program*> todo;
  for_each_added_program(a, first_node, changes, to_compile(todo));
  queue(todo);
}

void JitManager::queue(const std::vector<const Program*>& todo) {
  if (mode_ == JitMode::On) {
    for (const Program* p : todo) compile_one(p);
    return;
  }
  {
    std::lock_guard lock(mu_);
    queue_.insert(queue_.end(), todo.begin(), todo.end());
  }
  cv_.notify_all();
}

void JitManager::pause() {
  std::unique_lock lock(mu_);
  ++pauses_;
  dropped_ |= !queue_.empty();
  queue_.clear();
  cv_.wait(lock, [&] { return current_ == nullptr; });
}

void JitManager::wait_idle() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return queue_.empty() && current_ == nullptr; });
}

void JitManager::worker() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    const Program* p = current_ = queue_.front();
    queue_.pop_front();
    lock.unlock();
    compile_one(p);
    lock.lock();
    current_ = nullptr;
    cv_.notify_all();
  }
}

void JitManager::compile_one(const Program* p) {
  {
    std::lock_guard lock(installed_mu_);
    if (auto it = by_code_.find(p->code_identity()); it != by_code_.end()) {
      run_on(installed_[it->second], p);
      return;
    }
  }
  std::string error;
  jit::CompiledExpr code = p->kind() == Program::Kind::Predicate
                               ? jit_->compile_predicate(p->source(), resolved_ref, &error)
                               : jit_->compile_value(p->source(), resolved_ref, &error);
  std::lock_guard lock(installed_mu_);
  if (!code) {
    ++failed_;
    if (!warned_) {
      std::fprintf(stderr, "cayuga: JIT could not compile a program (%s); it stays interpreted\n",
                   error.c_str());
      warned_ = true;
    }
    return;
  }
  // A freed record has no users left: no program points at it.
  size_t slot = installed_.size();
  if (free_.empty()) {
    installed_.emplace_back();
  } else {
    slot = free_.back();
    free_.pop_back();
  }
  Installed& in = installed_[slot];
  in.native = Program::Native{};
  in.code = std::move(code);
  if (in.code.kind() == Program::Kind::Predicate) in.native.predicate = in.code.predicate_fn();
  else in.native.value = in.code.value_fn();
  const auto& consts = in.code.consts();
  const bool inline_consts = consts.size() <= kInlineConsts;
  if (inline_consts) std::copy(consts.begin(), consts.end(), in.consts);
  in.native.consts = inline_consts ? in.consts : consts.data();
  by_code_.emplace(p->code_identity(), slot);
  run_on(in, p);
}

void JitManager::run_on(Installed& in, const Program* p) {
  ++in.users;
  ++programs_;
  p->install_native(&in.native);
  p->release_source();
}

void JitManager::release(const Program& p) {
  if (thread_.joinable()) {
    std::unique_lock lock(mu_);
    std::erase(queue_, &p);
    cv_.wait(lock, [&] { return current_ != &p; });
  }
  const Program::Native* n = p.native();
  if (!n) return;
  std::lock_guard lock(installed_mu_);
  // (A program is released once, just before it is destroyed; one whose record is not the live
  // record of its bytecode is not counted.)
  auto it = by_code_.find(p.code_identity());
  if (it == by_code_.end() || &installed_[it->second].native != n) return;
  --programs_;
  Installed& in = installed_[it->second];
  if (--in.users > 0) return;
  in.code.reset();
  free_.push_back(it->second);
  by_code_.erase(it);
}

JitStats JitManager::stats() const {
  JitStats s;
  s.available = jit_ != nullptr;
  if (!jit_) return s;
  jit::Jit::Stats js = jit_->stats();
  s.shapes = js.live_shapes;
  s.compile_ms = js.compile_ms_total;
  {
    std::lock_guard lock(mu_);
    s.pauses = pauses_;
  }
  std::lock_guard lock(installed_mu_);
  s.compiled = programs_;
  s.records = installed_.size();
  s.failed = failed_;
  return s;
}

}  // namespace cayuga
