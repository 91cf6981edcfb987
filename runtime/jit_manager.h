// Moves an automaton's predicates and schema maps from the interpreter to JIT-compiled code.
//
// Modes (CLI `--jit`, EngineOptions::jit): `off` never compiles; `on` compiles every program of
// a script before add_script returns; `auto` (the default) compiles on a background thread, so a
// new query starts interpreted and switches to native code per program as soon as it is ready.
// A program the JIT cannot compile (or a host that cannot JIT at all) stays interpreted: JIT
// failure is logged once and never fails a query. Shapes are cached by the JIT, so queries that
// differ only in constants share one compiled function, and programs with the same bytecode
// (constants included) share one Native record.
//
// Thread-safety: the engine thread calls submit(), pause() and release(); the worker thread
// only reads the programs it was given and installs native code into them atomically. So the
// automaton may change while the worker compiles, as long as no program it may read moves or
// is destroyed: pause() must come before anything moves programs (nfa::build growing the
// nodes: BuildOptions::before_moving_nodes), and returns once the worker is idle; release()
// before a program is destroyed (a removed query's), and returns once the worker is done
// with it. Adding a script that does neither (the usual case) does not wait for the JIT.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "compiler/expr.h"
#include "compiler/jit/jit.h"
#include "nfa/automaton.h"

namespace cayuga {

enum class JitMode : uint8_t { Off, On, Auto };
const char* to_string(JitMode m);
std::optional<JitMode> parse_jit_mode(std::string_view s);

struct JitStats {
  uint64_t compiled = 0;  // programs running native code
  uint64_t failed = 0;    // programs left interpreted because the JIT refused them
  uint64_t shapes = 0;    // distinct compiled functions
  uint64_t records = 0;   // native records allocated (those freed by removed queries are reused)
  double compile_ms = 0;
  // Times a change of the automaton stopped the background compiler and dropped its queue
  // (JitManager::pause()): only when a build moves the nodes, so rarely.
  uint64_t pauses = 0;
  bool available = false;  // the host can JIT
};

// Drops the source expressions of the programs a build added to `a` (when no JIT runs): those
// of the nodes from `first_node` on, and of the emits `changes` says older nodes gained.
void release_sources(const nfa::Automaton& a, size_t first_node, const nfa::BuildChanges& changes);

class JitManager {
 public:
  explicit JitManager(JitMode mode);
  ~JitManager();

  // Queues every interpreted program of `a` (on: compiles them now).
  void submit(const nfa::Automaton& a);
  // submit() of the programs a build added to `a` (as release_sources() finds them), unless
  // pause() dropped queued ones since the last submit(): then of every program.
  void submit_added(const nfa::Automaton& a, size_t first_node, const nfa::BuildChanges& changes);
  // Stops the worker after the program it is compiling; queued programs are dropped (submit
  // them again after changing the automaton: submit_added() then submits every program).
  void pause();
  // Waits until every queued program is compiled (tests and benchmarks).
  void wait_idle();
  // A program that is about to be destroyed (its query was removed): takes it off the queue,
  // waits until the worker is not compiling it, and frees its native code (the code itself
  // goes when no other program shares its shape).
  void release(const Program& p);
  JitStats stats() const;

 private:
  // What an evaluation reads, the Native and (most programs have one or two) its constants,
  // in one cache line: a program meets its Native cold, and the constants behind another
  // pointer would be a second miss that waits for the first.
  static constexpr size_t kInlineConsts = 5;
  struct alignas(64) Installed {
    Program::Native native;
    Slot consts[kInlineConsts];
    jit::CompiledExpr code;
    // Programs running it: every program with this bytecode (Program::code_identity), so that
    // many queries sharing a predicate share one Native, which then stays in cache.
    size_t users = 0;
  };
  void worker();
  void compile_one(const Program* p);
  // Queues `todo` (on: compiles it now).
  void queue(const std::vector<const Program*>& todo);
  // Switches `p` to the native code of `in`, one more of its users (installed_mu_ held).
  void run_on(Installed& in, const Program* p);

  JitMode mode_;
  std::unique_ptr<jit::Jit> jit_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<const Program*> queue_;
  const Program* current_ = nullptr;  // the program the worker is compiling
  bool stop_ = false;
  bool dropped_ = false;  // pause() dropped queued programs since the last submit()
  uint64_t pauses_ = 0;
  mutable std::mutex installed_mu_;
  std::deque<Installed> installed_;                  // deque: Native addresses stay valid
  std::unordered_map<const void*, size_t> by_code_;  // live Installed by code_identity
  std::vector<size_t> free_;                         // installed_ no program runs any more
  uint64_t programs_ = 0;                            // programs running native code
  uint64_t failed_ = 0;
  bool warned_ = false;
  std::thread thread_;
};

}  // namespace cayuga
