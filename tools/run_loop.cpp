// The sequential run loop and the parse / engine / format pipeline around it (run_loop.h).
#include "tools/run_loop.h"

#include <tbb/concurrent_queue.h>
#include <tbb/info.h>
#include <tbb/parallel_pipeline.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <vector>

// Debian's libtbb is not built with ThreadSanitizer, so TSan cannot see that the pipeline runs
// a token's stages one after the other, and a serial stage's calls one after the other, on
// whichever threads. Under TSan the stages say so themselves (acquire on entry, release on
// exit, on the token and on the serial stage's state); elsewhere these are no-ops. TBB's own
// calls into what TSan intercepts (memcmp, delete[] on its internal structures, synchronized by
// TBB's uninstrumented atomics) are not ours to judge: those reports are suppressed.
#if defined(__SANITIZE_THREAD__)
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
extern "C" const char* __tsan_default_suppressions() {
  return "called_from_lib:libtbb.so\n";
}
#endif

namespace cayuga::cli {
namespace {

void tsan_acquire([[maybe_unused]] const void* p) {
#if defined(__SANITIZE_THREAD__)
  __tsan_acquire(const_cast<void*>(p));
#endif
}
void tsan_release([[maybe_unused]] const void* p) {
#if defined(__SANITIZE_THREAD__)
  __tsan_release(const_cast<void*>(p));
#endif
}

// One stage call: acquires `launch` (what the caller set up before the pipeline) and `a` and
// `b` on entry, releases `a` and `b` on exit.
class StageSync {
 public:
  StageSync(const void* launch, const void* a, const void* b = nullptr) : a_(a), b_(b) {
    tsan_acquire(launch);
    tsan_acquire(a_);
    if (b_) tsan_acquire(b_);
  }
  ~StageSync() {
    if (b_) tsan_release(b_);
    tsan_release(a_);
  }
  StageSync(const StageSync&) = delete;
  StageSync& operator=(const StageSync&) = delete;

 private:
  const void* a_;
  const void* b_;
};

}  // namespace

RunLoop::RunLoop(Engine& engine, MergeReader& input, bool skip_errors, bool progress,
                 Clock::time_point started)
    : engine_(engine),
      input_(input),
      skip_errors_(skip_errors),
      progress_(progress),
      started_(started),
      next_progress_(started + std::chrono::seconds(2)) {}

bool RunLoop::step() {
  EventReader::Status st = input_.next(ev_);
  if (st == EventReader::Status::End) return false;
  if (st == EventReader::Status::Error) {
    std::cerr << input_.error().to_string() << "\n";
    ++bad_lines_;
    if (!skip_errors_) {
      exit_code_ = 1;
      return false;
    }
    return true;
  }
  EventReader::Lookahead next;
  if (input_.peek(Engine::kHintDistance - 1, next)) {
    if (next.matched)
      engine_.hint(next.stream, next.values, next.candidates, next.generation);
    else
      engine_.hint(next.stream, next.values);
  }
  if (engine_.push(ev_.stream, ev_.row.t0, ev_.row.t1, ev_.row.values.data()) ==
      Engine::PushResult::Late) {
    std::cerr << input_.late_error(ev_.row.t1, engine_.current_time()).to_string() << "\n";
    if (!skip_errors_) {
      exit_code_ = 1;
      return false;
    }
  }
  if (progress_ && (engine_.stats().events_in & 0xffff) == 0 && Clock::now() >= next_progress_) {
    next_progress_ = Clock::now() + std::chrono::seconds(1);
    double secs = std::chrono::duration<double>(Clock::now() - started_).count();
    std::fprintf(stderr, "\r%llu events, %llu matches, %.0f events/s ",
                 static_cast<unsigned long long>(engine_.stats().events_in),
                 static_cast<unsigned long long>(engine_.stats().outputs),
                 engine_.stats().events_in / secs);
  }
  return true;
}

void RunLoop::finish() {
  if (progress_ && engine_.stats().events_in > 0xffff) std::fputc('\n', stderr);
  engine_.finish();
}

namespace {

// A batch is cut at whichever limit comes first: a few thousand records keep the parse tasks
// long enough to pay for themselves, 256 KiB keeps long lines from making huge batches.
constexpr size_t kBatchRecords = 4096;
constexpr size_t kBatchBytes = size_t{256} << 10;

// Each event's candidates (Engine::match), for Engine::hint.
void match_batch(const Engine& engine, EventBatch& batch) {
  batch.candidates.clear();
  auto& items = batch.items;
  engine.match_batch(
      items.size(),
      [&](size_t i) {
        const bool event = items[i].status == EventReader::Status::Event;
        return std::pair(items[i].stream, event ? batch.values.data() + items[i].first : nullptr);
      },
      batch.candidates,
      [&](size_t i, size_t first, size_t count) {
        items[i].cand_first = static_cast<uint32_t>(first);
        items[i].cand_count = static_cast<uint32_t>(count);
      });
  batch.generation = engine.generation();
  batch.matched = true;
}

// Rows go to the writer as the sink delivers them.
void write_rows(Engine& engine, EventWriter& writer) {
  const nfa::Automaton& automaton = engine.automaton();
  engine.set_sink([&](uint32_t stream, const RowView& row) {
    const nfa::Stream& s = automaton.streams[stream];
    writer.write(s.name, s.schema, row);
  });
}

// Rows the engine's sink delivered, kept flat to be formatted together.
struct OutRows {
  struct Row {
    uint32_t stream;
    int64_t t0, t1;
    size_t first;  // into values
    size_t count;
  };
  std::vector<Row> rows;
  std::vector<Slot> values;
  void add(uint32_t stream, const RowView& row) {
    // t0 and t1 as two 8-byte loads: the engine has just stored them so (Engine::publish), and
    // the one 16-byte load GCC would make of them cannot take them from the store buffer, so
    // it waited for every store before it to reach the cache (8% of the engine thread).
    int64_t t0 = row.t0, t1 = row.t1;
    asm("" : "+r"(t0), "+r"(t1));
    rows.push_back({stream, t0, t1, values.size(), row.values.size()});
    for (const Slot v : row.values) values.push_back(v);  // (a few: a memmove call costs more)
  }
  void clear() {
    rows.clear();
    values.clear();
  }
};

// Appends `out`'s rows to `bytes` in `format`; `previous` is the stream of the row written
// before the first (CSV headers). What formatting a row reads is cold: with a query per stream,
// its stream's record (a hundred thousand queries publish as many streams), and its strings'
// records in the interner (thousands of symbols). Both are asked for a few rows ahead, the
// stream first, then (once it is in) the strings its schema says the row holds.
void format_rows(const nfa::Automaton& automaton, OutputFormat format, const OutRows& out,
                 std::optional<uint32_t> previous, std::string& bytes) {
  constexpr size_t kStreamAhead = 8, kStringsAhead = 4;
  const Interner& interner = Interner::global();
  const auto& rows = out.rows;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i + kStreamAhead < rows.size()) {
      const char* s =
          reinterpret_cast<const char*>(&automaton.streams[rows[i + kStreamAhead].stream]);
      __builtin_prefetch(s);
      __builtin_prefetch(s + sizeof(nfa::Stream) - 1);  // (a record may straddle two lines)
    }
    if (i + kStringsAhead < rows.size()) {
      const OutRows::Row& r = rows[i + kStringsAhead];
      const Schema& schema = automaton.streams[r.stream].schema;
      for (size_t k = 0; k < r.count && k < schema.size(); ++k)
        if (schema.attrs[k].type == Type::String) interner.prefetch(out.values[r.first + k].s);
    }
    const OutRows::Row& r = rows[i];
    const nfa::Stream& s = automaton.streams[r.stream];
    const RowView row(r.t0, r.t1, std::span(out.values).subspan(r.first, r.count));
    std::optional<std::string_view> prev;
    if (previous) prev = automaton.streams[*previous].name;
    format_row(bytes, format, s.name, s.schema, row, prev);
    previous = r.stream;
  }
}

}  // namespace

void run_sequential(RunLoop& loop, Engine& engine, EventWriter& writer) {
  write_rows(engine, writer);
  while (loop.step()) {
  }
  loop.finish();
}

void run_batched(RunLoop& loop, Engine& engine, std::span<SplitReader* const> inputs,
                 std::span<BatchReader* const> parsed, OutputFormat format, EventWriter& writer) {
  // Rows are formatted a few hundred at a time (the input is a file, read a batch ahead
  // anyway), so that format_rows() can fetch their streams ahead, and written in blocks large
  // enough for the writer to pass on without copying them.
  constexpr size_t kFormatRows = 512;
  const nfa::Automaton& automaton = engine.automaton();
  OutRows out;
  std::optional<uint32_t> previous;
  std::string bytes;
  const auto format_out = [&] {
    if (out.rows.empty()) return;
    format_rows(automaton, format, out, previous, bytes);
    previous = out.rows.back().stream;
    out.clear();
  };
  const auto write_out = [&] {
    if (bytes.empty()) return;
    writer.write_formatted(bytes, automaton.streams[*previous].name);
    bytes.clear();
  };
  engine.set_sink([&](uint32_t stream, const RowView& row) { out.add(stream, row); });
  const size_t n = inputs.size();
  std::vector<uint64_t> cut(n, 0);
  std::vector<bool> ended(n, false);
  RecordBatch records;
  EventBatch events;
  do {
    // The batch being read and the next one, so that the loop's look-ahead sees past the end
    // of a batch.
    for (size_t i = 0; i < n; ++i)
      while (!ended[i] && cut[i] - parsed[i]->batches_done() < 2) {
        inputs[i]->cut_batch(records, kBatchRecords, kBatchBytes);
        ended[i] = records.ended;
        inputs[i]->parse_batch(records, events);
        parsed[i]->push(events);
        ++cut[i];
      }
    if (out.rows.size() >= kFormatRows) format_out();
    if (bytes.size() >= EventWriter::kBlock) write_out();
  } while (loop.step());
  loop.finish();
  format_out();
  write_out();
  engine.set_sink(nullptr);  // it refers to this function's locals
}

namespace {
// The engine stage hands its rows on once it has collected this many, and goes on with the
// next token, so a query with a flood of matches does not pile them up in memory.
constexpr size_t kMaxRows = 16384;

// One batch on its way through the pipeline; or no batch (input == kNoInput), a token that only
// lets the engine stage go on with what it has (after kMaxRows, or when nothing is to be cut).
constexpr size_t kNoInput = SIZE_MAX;
struct Token {
  size_t input = kNoInput;  // index into inputs / parsed
  RecordBatch records;
  EventBatch events;  // handed to the input's BatchReader by the engine stage
  OutRows out;        // the rows the engine's sink delivered during this token's engine stage
  std::optional<uint32_t> previous;  // stream of the row written before out.rows[0]
  std::string bytes;                 // the rows, formatted
};

}  // namespace

void run_pipeline(RunLoop& loop, Engine& engine, std::span<SplitReader* const> inputs,
                  std::span<BatchReader* const> parsed, OutputFormat format, EventWriter& writer,
                  unsigned threads) {
  const nfa::Automaton& automaton = engine.automaton();
  const size_t n = inputs.size();
  // The loop looks ahead through a single input only (MergeReader::peek).
  const bool match_ahead = n == 1;

  // Tokens are recycled so their buffers keep their capacity. At most `live` are in flight and
  // a token goes back to the free list before the pipeline counts it as done, so stage 1 always
  // finds one. A few per thread that can run at once keep every stage supplied.
  const size_t width = std::min<size_t>(threads, tbb::info::default_concurrency());
  const size_t live = 4 * width;
  std::vector<std::unique_ptr<Token>> tokens;
  tbb::concurrent_queue<Token*> free_tokens;
  for (size_t i = 0; i < live; ++i) {
    tokens.push_back(std::make_unique<Token>());
    free_tokens.push(tokens.back().get());
  }

  // Stage 1's bookkeeping, and what stage 3 tells it: batches of each input read to their end.
  // An input is cut at most `max_ahead` batches ahead of the merge: enough to keep every thread
  // parsing, and a bound on the memory when the engine stage is the slow one.
  const uint64_t max_ahead = live + 2;
  std::vector<uint64_t> cut(n, 0);
  std::vector<bool> cut_all(n, false);
  std::unique_ptr<std::atomic<uint64_t>[]> read(new std::atomic<uint64_t>[n]);
  for (size_t i = 0; i < n; ++i) read[i].store(0, std::memory_order_relaxed);
  std::atomic<bool> finished{false};  // the loop has ended: nothing more to do

  // Stage 3's state. The sink appends to `collected` in the engine stage (only stage 3 calls
  // the engine, so rows are only delivered there), which hands the rows to its token in one
  // copy at its end: the engine thread then writes rows into lines it owns, not into a
  // token's, which other threads' stages read and wrote last (measured faster:
  // docs/benchmarks.md).
  OutRows collected;
  std::optional<uint32_t> last_stream;
  engine.set_sink([&](uint32_t stream, const RowView& row) { collected.add(stream, row); });

  // ThreadSanitizer's view of the hand-offs (see StageSync).
  int launch = 0;
  auto sync = [&](const void* a, const void* b = nullptr) { return StageSync(&launch, a, b); };

  auto cut_stage = [&](tbb::flow_control& fc) -> Token* {
    StageSync stage = sync(&cut);
    if (finished.load(std::memory_order_acquire)) {
      fc.stop();
      return nullptr;
    }
    // The input the merge will run out of first: the fewest batches cut and not yet read.
    size_t best = kNoInput;
    uint64_t best_ahead = 0;
    for (size_t i = 0; i < n; ++i) {
      if (cut_all[i]) continue;
      const uint64_t ahead = cut[i] - read[i].load(std::memory_order_relaxed);
      if (ahead < max_ahead && (best == kNoInput || ahead < best_ahead)) {
        best = i;
        best_ahead = ahead;
      }
    }
    Token* t = nullptr;
    free_tokens.try_pop(t);
    StageSync token = sync(t);
    t->input = best;
    if (best != kNoInput) {
      inputs[best]->cut_batch(t->records, kBatchRecords, kBatchBytes);
      ++cut[best];
      cut_all[best] = t->records.ended;
    }
    return t;
  };

  // Parsing threads also look up each event's candidates, which the engine stage, the one
  // that cannot run in parallel, would otherwise do.
  auto parse_stage = [&](Token* t) -> Token* {
    StageSync stage = sync(t);
    if (t->input != kNoInput) {
      inputs[t->input]->parse_batch(t->records, t->events);
      if (match_ahead) match_batch(engine, t->events);
    }
    return t;
  };

  auto engine_stage = [&](Token* t) -> Token* {
    StageSync stage = sync(t, &collected);
    t->previous = last_stream;
    collected.clear();
    if (!finished.load(std::memory_order_relaxed)) {
      if (t->input != kNoInput) parsed[t->input]->push(t->events);
      while (loop.ready() && collected.rows.size() < kMaxRows) {
        if (!loop.step()) {
          loop.finish();
          finished.store(true, std::memory_order_release);
          break;
        }
      }
      for (size_t i = 0; i < n; ++i)
        read[i].store(parsed[i]->batches_done(), std::memory_order_relaxed);
    }
    t->out.rows.assign(collected.rows.begin(), collected.rows.end());
    t->out.values.assign(collected.values.begin(), collected.values.end());
    if (!t->out.rows.empty()) last_stream = t->out.rows.back().stream;
    return t;
  };

  auto format_stage = [&](Token* t) -> Token* {
    StageSync stage = sync(t);
    t->bytes.clear();
    format_rows(automaton, format, t->out, t->previous, t->bytes);
    return t;
  };

  auto write_stage = [&](Token* t) {
    {
      StageSync stage = sync(t, &writer);
      if (!t->out.rows.empty())
        writer.write_formatted(t->bytes, automaton.streams[t->out.rows.back().stream].name);
    }
    free_tokens.push(t);
  };

  tsan_release(&launch);
  tbb::task_arena arena(static_cast<int>(threads));
  arena.execute([&] {
    tbb::parallel_pipeline(
        live,
        tbb::make_filter<void, Token*>(tbb::filter_mode::serial_in_order, cut_stage) &
            tbb::make_filter<Token*, Token*>(tbb::filter_mode::parallel, parse_stage) &
            tbb::make_filter<Token*, Token*>(tbb::filter_mode::serial_in_order, engine_stage) &
            tbb::make_filter<Token*, Token*>(tbb::filter_mode::parallel, format_stage) &
            tbb::make_filter<Token*, void>(tbb::filter_mode::serial_in_order, write_stage));
  });
  // The serial stages' state is the caller's again.
  for (const void* state : {static_cast<const void*>(&cut), static_cast<const void*>(&collected),
                            static_cast<const void*>(&writer)})
    tsan_acquire(state);
  engine.set_sink(nullptr);  // it refers to this function's locals; finish() has run
}

}  // namespace cayuga::cli
