// The event loop of `cayuga run`: the sequential reference, the same loop reading its inputs a
// batch ahead, and the same loop with input parsing and output formatting on other threads.
//
// RunLoop::step() is the one place that decides what happens to an item of the merged input
// (push an event, report a bad line or a late event, stop or go on, show progress); both loops
// call it in input order on one thread at a time, so they print the same messages, stop after
// the same events and count the same things.
//
// run_pipeline() is a tbb::parallel_pipeline of five stages over batches of records:
//   1. serial:   cut a batch of raw records from one input (SplitReader::cut_batch);
//   2. parallel: parse it into events (SplitReader::parse_batch);
//   3. serial:   hand it to that input's BatchReader and step the loop while the merge has what
//                it needs (MergeReader::ready), collecting every row the engine's sink delivers;
//   4. parallel: format the collected rows (format_rows, in run_loop.cpp);
//   5. serial:   write the bytes (EventWriter::write_formatted).
// The merge by t1 happens in stage 3 over the parsed batches, exactly as over the readers, so
// inputs are cut independently: stage 1 cuts next from the input with the fewest batches cut but
// not yet read by the merge, and none more than a few batches ahead of it. Rows are collected in
// the order the sink delivers them (the engine may deliver rows of earlier events at an epoch's
// end or at finish()), and stage 3 records the stream of the row before each token's first, the
// only state formatting needs (CSV headers). Memory stays bounded whatever the output: stage 3
// hands its rows on after a few thousand and leaves the rest of the input for the next token,
// and when stage 1 has nothing to cut (every input cut to its end or far enough ahead) it sends
// a token without a batch, which only lets stage 3 go on.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>

#include "runtime/engine.h"
#include "runtime/io.h"

namespace cayuga::cli {

using Clock = std::chrono::steady_clock;

class RunLoop {
 public:
  // `progress`: print the progress line on stderr every second or so, counting from `started`.
  RunLoop(Engine& engine, MergeReader& input, bool skip_errors, bool progress,
          Clock::time_point started);
  // Handles the next item of the input: pushes an event, reports a bad line or a late event
  // on stderr. False when the run ends: at the end of the input, or at an error that stops it
  // (without --on-error skip; exit_code() is then 1).
  bool step();
  // The input has what the next step reads (always, unless batches still have to arrive).
  bool ready() const { return input_.ready(); }
  // After the last step: ends the progress line and closes the engine's last epoch.
  void finish();
  uint64_t bad_lines() const { return bad_lines_; }
  int exit_code() const { return exit_code_; }

 private:
  Engine& engine_;
  MergeReader& input_;
  const bool skip_errors_;
  const bool progress_;
  const Clock::time_point started_;
  Clock::time_point next_progress_;
  InputEvent ev_;
  uint64_t bad_lines_ = 0;
  int exit_code_ = 0;
};

// The reference: everything on the calling thread, rows written as the sink delivers them.
void run_sequential(RunLoop& loop, Engine& engine, EventWriter& writer);

// The same on the calling thread, with the inputs cut and parsed a batch at a time (a batch
// ahead of the loop), so that RunLoop::step can hint the engine about events ahead, which a
// reader parsing line by line cannot offer. For inputs that are files: a batch waits for its
// records, which on a pipe or a terminal would hold events back until more lines arrive.
// Rows are formatted and written a few hundred at a time, in `format`, the writer's.
// `loop` reads a MergeReader over `parsed`, one BatchReader per input of `inputs`, in order.
void run_batched(RunLoop& loop, Engine& engine, std::span<SplitReader* const> inputs,
                 std::span<BatchReader* const> parsed, OutputFormat format, EventWriter& writer);

// The pipeline on `threads` threads (a task_arena of that size). `loop` reads a MergeReader
// over `parsed`, one BatchReader per input of `inputs`, in the same order; the pipeline feeds
// them. `format` must be the writer's format.
void run_pipeline(RunLoop& loop, Engine& engine, std::span<SplitReader* const> inputs,
                  std::span<BatchReader* const> parsed, OutputFormat format, EventWriter& writer,
                  unsigned threads);

}  // namespace cayuga::cli
