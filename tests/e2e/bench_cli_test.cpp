// `cayuga-bench`, the benchmark sweep: its options and errors, the columns of a run that do not
// depend on timing (the same with every optimization switched off, and the same as `cayuga run`
// over the files --write produces).
//
// Also bench/ab.sh, which compares two builds of it in alternating pairs, bench/targets.sh,
// which measures issue 4's targets with it, and bench/ceiling, the kernel written for the
// walk's one query mix, whose outputs must be the engine's.
//
// CAYUGA_BENCH, CAYUGA_CEILING and CAYUGA_BIN are the executables, CAYUGA_SOURCE_DIR the
// repository.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tests/e2e/shell.h"

namespace {

namespace fs = std::filesystem;

using cayuga::test::Result;
using cayuga::test::slurp;

class BenchCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("cayuga_bench_cli_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  Result run(const std::string& binary, const std::string& args) {
    return cayuga::test::run_shell("'" + binary + "' " + args, dir_);
  }
  Result bench(const std::string& args) { return run(CAYUGA_BENCH, args); }

  // The whitespace-separated fields of a line.
  static std::vector<std::string> fields(const std::string& line) {
    std::istringstream in(line);
    std::vector<std::string> f;
    for (std::string x; in >> x;) f.push_back(x);
    return f;
  }
  // The fields of the last line of the table.
  static std::vector<std::string> last_row(const std::string& out) {
    std::string line;
    std::istringstream in(out);
    for (std::string l; std::getline(in, l);)
      if (!l.empty()) line = l;
    return fields(line);
  }
  // load, queries, jit, threads, then candidates per event, outputs and peak instances: the
  // columns that do not depend on timing or the allocator.
  static std::string exact_columns(const std::vector<std::string>& f) {
    if (f.size() != 13) return "(not a row of 13 fields)";
    return f[0] + " " + f[1] + " " + f[2] + " " + f[3] + " " + f[9] + " " + f[10] + " " + f[11];
  }

  fs::path dir_;
};

TEST_F(BenchCli, HelpAndBadOptions) {
  Result help = bench("--help");
  EXPECT_EQ(help.exit, 0);
  EXPECT_NE(help.out.find("--repeat N"), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("--write DIR"), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("--scaled"), std::string::npos) << help.out;

  Result bad = bench("--events many");
  EXPECT_EQ(bad.exit, 2);
  EXPECT_EQ(bad.err, "bad value 'many' for --events\n");
  Result list = bench("--queries 10,x");
  EXPECT_EQ(list.exit, 2);
  EXPECT_EQ(list.err, "bad value 'x' for --queries\n");
  // Before any output: the table's header is not printed for a sweep that cannot run.
  Result workload = bench("--workload walk,nope");
  EXPECT_EQ(workload.exit, 2);
  EXPECT_EQ(workload.out, "");
  EXPECT_EQ(workload.err, "unknown workload 'nope' (walk or stock)\n");
  Result jit = bench("--jit fast");
  EXPECT_EQ(jit.exit, 2);
  EXPECT_EQ(jit.out, "");
  EXPECT_EQ(jit.err, "--jit takes on, off, auto\n");
  Result zero = bench("--repeat 0");
  EXPECT_EQ(zero.exit, 2);
  EXPECT_EQ(zero.err, "--repeat must be at least 1\n");
  Result unknown = bench("--fast");
  EXPECT_EQ(unknown.exit, 2);
  EXPECT_EQ(unknown.err.rfind("unknown option --fast\nusage: cayuga-bench", 0), 0u) << unknown.err;
}

TEST_F(BenchCli, RowsDoNotDependOnTheOptimizations) {
  const std::string run = "--queries 100 --workload walk --events 20000";
  Result r = bench(run + " --jit off --repeat 3");
  ASSERT_EQ(r.exit, 0) << r.err;
  EXPECT_NE(r.out.find("(each row: the run with the median events/s of 3 runs)\n"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(exact_columns(last_row(r.out)), "walk 100 off 1 0.1 319 313");
  const std::pair<const char*, const char*> variants[] = {
      {"--jit off --no-merge", "walk 100 off 1 0.1 319 313"},
      {"--jit off --no-instance-index", "walk 100 off 1 0.1 319 313"},
      {"--jit off --threads 2", "walk 100 off 2 0.1 319 313"},
      {"--jit on", "walk 100 on 1 0.1 319 313"},
      // Without the index every event is handed to every START edge and node: more
      // candidates, the same matches.
      {"--jit off --no-index", "walk 100 off 1 172.0 319 313"},
  };
  for (const auto& [options, row] : variants)
    EXPECT_EQ(exact_columns(last_row(bench(run + " " + options).out)), row) << options;
}

// peak_MiB is each row's own peak: a small run after a big one reports less than the big one
// (the process's peak, which only grows, would report at least as much).
TEST_F(BenchCli, PeakResidentSetIsEachRowsOwn) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "a sanitizer's allocator keeps what is freed: a row's peak includes the rows "
                  "before it";
#endif
  Result r = bench("--queries 10000,10 --workload walk --events 2000 --jit off");
  ASSERT_EQ(r.exit, 0) << r.err;
  EXPECT_NE(r.out.find(" peak_inst  peak_MiB\n"), std::string::npos) << r.out;
  std::vector<double> peaks;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    const std::vector<std::string> f = fields(line);
    if (f.size() == 13 && f[0] == "walk") peaks.push_back(std::stod(f[12]));
  }
  ASSERT_EQ(peaks.size(), 2u) << r.out;
  EXPECT_GT(peaks[1], 0) << r.out;
  EXPECT_LT(peaks[1], peaks[0]) << r.out;
}

// --keyed: the last queries watch every symbol (keyed NEXT and FOLD nodes, whose buckets hint()
// fetches ahead); their rows do not depend on the optimizations either, nor on the hints.
TEST_F(BenchCli, KeyedQueriesDoNotDependOnTheOptimizations) {
  const std::string run = "--queries 100 --keyed 10 --workload walk --events 20000";
  const std::pair<const char*, const char*> variants[] = {
      {"--jit off", "walk 100 off 1 10.2 1329 1180"},
      {"--jit off --no-merge", "walk 100 off 1 10.2 1329 1180"},
      {"--jit off --no-instance-index", "walk 100 off 1 10.2 1329 1180"},
      {"--jit off --no-hint", "walk 100 off 1 10.2 1329 1180"},
      {"--jit off --threads 2", "walk 100 off 2 10.2 1329 1180"},
      {"--jit on", "walk 100 on 1 10.2 1329 1180"},
      {"--jit off --no-index", "walk 100 off 1 174.0 1329 1180"},
  };
  for (const auto& [options, row] : variants)
    EXPECT_EQ(exact_columns(last_row(bench(run + " " + options).out)), row) << options;
  EXPECT_NE(bench("--help").out.find("--keyed N"), std::string::npos);
}

// --churn: after the run, more generated queries are added one script each and some removed;
// the row stays the run's, and a line after it says how many calls were timed.
TEST_F(BenchCli, ChurnAddsAndRemovesQueriesAfterTheRun) {
  const Result r = bench("--queries 100 --workload walk --events 20000 --jit off --churn 25");
  ASSERT_EQ(r.exit, 0) << r.err;
  const std::vector<std::string> churn = last_row(r.out);
  ASSERT_GE(churn.size(), 12u) << r.out;
  EXPECT_EQ(churn[0] + " " + churn[1] + " " + churn[2], "churn: 25 queries");
  const size_t removed = r.out.find("; 10 removed: mean ");
  EXPECT_NE(removed, std::string::npos) << r.out;
  std::string row;  // the line before the churn line
  std::istringstream in(r.out);
  for (std::string l, previous; std::getline(in, l); previous = l)
    if (l.starts_with("churn:")) row = previous;
  EXPECT_EQ(
      exact_columns(fields(row)),
      exact_columns(last_row(bench("--queries 100 --workload walk --events 20000 --jit off").out)));
  EXPECT_NE(bench("--help").out.find("--churn N"), std::string::npos);
  // --removals: how many of them go (all 25 here, 40 asked).
  const Result all =
      bench("--queries 100 --workload walk --events 2000 --jit off --churn 25 --removals 40");
  ASSERT_EQ(all.exit, 0) << all.err;
  EXPECT_NE(all.out.find("; 25 removed: mean "), std::string::npos) << all.out;
  EXPECT_NE(bench("--help").out.find("--removals N"), std::string::npos);
  // --cycles: that many rounds of adds and removals, the live heap each one leaves.
  const Result cycles = bench(
      "--queries 100 --workload walk --events 2000 --jit off --churn 25 --removals 25 --cycles 3");
  ASSERT_EQ(cycles.exit, 0) << cycles.err;
  const std::vector<std::string> line = last_row(cycles.out);
  ASSERT_GE(line.size(), 3u) << cycles.out;
  EXPECT_EQ(line[0] + " " + line[1] + " " + line[2], "churn: 75 queries");
  EXPECT_NE(cycles.out.find("; 75 removed: mean "), std::string::npos) << cycles.out;
  const size_t heap = cycles.out.find("; live heap ");
  ASSERT_NE(heap, std::string::npos) << cycles.out;
  const std::string rest = cycles.out.substr(heap);
  EXPECT_EQ(std::count(rest.begin(), rest.end(), ','), 2) << rest;  // three numbers
  EXPECT_NE(rest.find(" MB (by cycle)\n"), std::string::npos) << rest;
  EXPECT_NE(bench("--help").out.find("--cycles N"), std::string::npos);
  EXPECT_EQ(bench("--queries 100 --churn 5 --cycles 0").exit, 2);
}

// --scaled gives each query count the walk that keeps the work per event constant, and says
// which: its rows are those of the equivalent explicit options.
TEST_F(BenchCli, ScaledSweepKeepsTheWorkPerEventConstant) {
  Result r = bench("--scaled --queries 50,100 --events 4000 --jit off");
  ASSERT_EQ(r.exit, 0) << r.err;
  const size_t fifty = r.out.find("(50 queries: --symbols 10 --tick-ms 200000)\nwalk ");
  const size_t hundred = r.out.find("(100 queries: --symbols 20 --tick-ms 100000)\nwalk ");
  ASSERT_NE(fifty, std::string::npos) << r.out;
  ASSERT_NE(hundred, std::string::npos) << r.out;
  EXPECT_LT(fifty, hundred) << r.out;
  EXPECT_EQ(exact_columns(last_row(r.out)), "walk 100 off 1 6.9 5185 137");
  Result same = bench(
      "--queries 100 --symbols 20 --tick-ms 100000 --workload walk --events 4000 "
      "--jit off");
  EXPECT_EQ(exact_columns(last_row(same.out)), "walk 100 off 1 6.9 5185 137");

  const std::pair<const char*, const char*> errors[] = {
      {"--scaled --symbols 10", "--scaled sets --symbols and --tick-ms itself\n"},
      {"--scaled --tick-ms 10", "--scaled sets --symbols and --tick-ms itself\n"},
      {"--scaled --workload walk,stock", "--scaled applies to the walk workload only\n"},
      {"--scaled --write out", "--scaled does not combine with --write\n"},
  };
  for (const auto& [options, message] : errors) {
    Result bad = bench(options);
    EXPECT_EQ(bad.exit, 2) << options;
    EXPECT_EQ(bad.err, message) << options;
  }
}

// The kernel of bench/ceiling runs the walk's queries and events as the engine does: the same
// outputs, with either layout. With 200 symbols and four events per epoch, epochs often hold two
// events of one symbol (both see the instances the epoch began with), and instances pile up to
// thousands.
TEST_F(BenchCli, CeilingKernelHasTheEnginesOutputs) {
  const std::string sizes = "--queries 1000 --symbols 200 --events 20000";
  Result engine = bench(sizes + " --workload walk --jit off");
  ASSERT_EQ(engine.exit, 0) << engine.err;
  EXPECT_EQ(exact_columns(last_row(engine.out)), "walk 1000 off 1 6.7 49479 14235");
  for (const char* layout : {"", " --per-query"}) {
    Result kernel = run(CAYUGA_CEILING, sizes + layout);
    ASSERT_EQ(kernel.exit, 0) << kernel.err;
    const std::string which = *layout ? " per query" : "";
    EXPECT_TRUE(
        std::regex_match(kernel.out, std::regex("queries 1000 symbols 200 events 20000" + which +
                                                ": [0-9]+ events/s, outputs 49479\n")))
        << kernel.out;
  }

  Result help = run(CAYUGA_CEILING, "--help");
  EXPECT_EQ(help.exit, 0);
  EXPECT_EQ(help.out.rfind("usage: ceiling [--queries N]", 0), 0u) << help.out;
  EXPECT_NE(help.out.find("--per-query"), std::string::npos) << help.out;
  const std::pair<const char*, const char*> errors[] = {
      {"--events 0", "ceiling: --events wants a positive number, not '0'\n"},
      {"--events", "ceiling: --events needs a value (--help for usage)\n"},
      {"--fast 1", "ceiling: unknown option --fast (--help for usage)\n"},
  };
  for (const auto& [options, message] : errors) {
    Result bad = run(CAYUGA_CEILING, options);
    EXPECT_EQ(bad.exit, 2) << options;
    EXPECT_EQ(bad.err, message) << options;
  }
}

// Enough events that prices written with fewer digits than they hold would change outputs (six
// significant digits gave 10,743 outputs here, not the in-memory run's 10,746).
TEST_F(BenchCli, WrittenWorkloadRunsTheSameThroughCayugaRun) {
  const std::string sweep = "--queries 1000 --workload walk --events 50000";
  Result w = bench(sweep + " --write '" + (dir_ / "w").string() + "'");
  ASSERT_EQ(w.exit, 0) << w.err;
  EXPECT_EQ(w.out, "wrote " + (dir_ / "w").string() + "/walk.txt (50000 events)\nwrote " +
                       (dir_ / "w").string() + "/walk_1000.cel (1000 queries)\n");
  const std::string script = slurp(dir_ / "w" / "walk_1000.cel");
  EXPECT_EQ(script.rfind("CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\n", 0), 0u);
  EXPECT_EQ(std::count(script.begin(), script.end(), '\n'), 1001);

  Result in_memory = bench(sweep + " --jit off");
  EXPECT_EQ(exact_columns(last_row(in_memory.out)), "walk 1000 off 1 0.7 10746 3693");
  Result end_to_end =
      run(CAYUGA_BIN, "run '" + (dir_ / "w" / "walk_1000.cel").string() + "' --events '" +
                          (dir_ / "w" / "walk.txt").string() + "' --stats -o /dev/null");
  ASSERT_EQ(end_to_end.exit, 0) << end_to_end.err;
  EXPECT_NE(end_to_end.err.find("\"outputs\":10746,"), std::string::npos) << end_to_end.err;
  EXPECT_NE(end_to_end.err.find("\"peak_instances\":3693,"), std::string::npos) << end_to_end.err;
}

// Two copies of one binary: every pair and the median in the documented form. The rates are
// timing, so only their shape is checked; the median is checked against the pairs it comes from.
TEST_F(BenchCli, AbScriptRunsAlternatingPairs) {
  const std::string ab = std::string("'") + CAYUGA_SOURCE_DIR + "/bench/ab.sh' ";
  const std::string two = std::string("'") + CAYUGA_BENCH + "' '" + CAYUGA_BENCH + "' ";
  Result r = cayuga::test::run_shell(
      ab + two + "3 --queries 10 --workload walk --events 2000 --jit off", dir_);
  ASSERT_EQ(r.exit, 0) << r.err;
  const std::regex pair(R"(pair ([0-9]+): A ([0-9]+) B ([0-9]+) B/A ([0-9]+\.[0-9]{3}))");
  std::istringstream lines(r.out);
  std::vector<double> ratios;
  std::string line;
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(std::getline(lines, line)) << r.out;
    std::smatch m;
    ASSERT_TRUE(std::regex_match(line, m, pair)) << line;
    EXPECT_EQ(m[1], std::to_string(i));
    const double ratio = std::stod(m[3]) / std::stod(m[2]);
    EXPECT_NEAR(std::stod(m[4]), ratio, 0.0006) << line;
    ratios.push_back(std::stod(m[4]));
  }
  std::sort(ratios.begin(), ratios.end());
  ASSERT_TRUE(std::getline(lines, line)) << r.out;
  char median[32];
  std::snprintf(median, sizeof median, "%.3f", ratios[1]);
  EXPECT_EQ(line, std::string("median B/A over 3 pairs: ") + median);
  EXPECT_FALSE(std::getline(lines, line)) << r.out;

  Result help = cayuga::test::run_shell(ab + "--help", dir_);
  EXPECT_EQ(help.exit, 0);
  EXPECT_EQ(help.out.rfind("Compares two builds of cayuga-bench", 0), 0u) << help.out;
  Result few = cayuga::test::run_shell(ab + "'" + CAYUGA_BENCH + "'", dir_);
  EXPECT_EQ(few.exit, 2);
  EXPECT_EQ(few.err, "usage: bench/ab.sh A B PAIRS [cayuga-bench options...] (--help for more)\n");
  Result zero = cayuga::test::run_shell(ab + two + "0", dir_);
  EXPECT_EQ(zero.exit, 2);
  EXPECT_EQ(zero.err, "bad PAIRS '0': a positive number\n");
  Result missing = cayuga::test::run_shell(ab + "'" + CAYUGA_BENCH + "' nope 1", dir_);
  EXPECT_EQ(missing.exit, 2);
  EXPECT_EQ(missing.err, "not an executable: nope\n");
  Result rows = cayuga::test::run_shell(
      ab + two + "1 --queries 10 --workload walk --events 2000 --jit off,on", dir_);
  EXPECT_EQ(rows.exit, 2);
  EXPECT_EQ(rows.err.rfind("the options must select one configuration", 0), 0u) << rows.err;
  Result failed = cayuga::test::run_shell(ab + two + "1 --events x", dir_);
  EXPECT_EQ(failed.exit, 1);
  EXPECT_NE(failed.err.find("bad value 'x' for --events"), std::string::npos) << failed.err;
}

// bench/targets.sh: issue 4's targets as one table. The numbers are timing, so each row is
// checked for its form, its sizes, and its ratio and "met" column against the numbers it shows
// (with one round, the ratio of the medians is the median of the rounds' ratios).
TEST_F(BenchCli, TargetsScriptPrintsOneRowPerTarget) {
  const fs::path build = fs::path(CAYUGA_BENCH).parent_path();
  ASSERT_EQ(fs::path(CAYUGA_BIN).parent_path(), build);
  const std::string targets = std::string("'") + CAYUGA_SOURCE_DIR + "/bench/targets.sh' ";
  Result r = cayuga::test::run_shell(targets + "--build '" + build.string() +
                                         "' --queries 100 --small 10 --million 200 "
                                         "--events 2000 --repeat 1",
                                     dir_);
  ASSERT_EQ(r.exit, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  std::smatch m;
  const auto next = [&](const char* pattern) {
    EXPECT_TRUE(std::getline(lines, line)) << r.out;
    const bool ok = std::regex_match(line, m, std::regex(pattern));
    EXPECT_TRUE(ok) << line;
    return ok;
  };
  const auto met = [](bool c) { return std::string(c ? "yes" : "no"); };
  next(R"(\| target \| measured \| met \|)");
  next(R"(\|---\|---\|---\|)");
  if (next(
          R"(\| 100 queries in memory, one thread: >= 2,000,000 events/s \| ([0-9]+) \(JIT off\), )"
          R"(([0-9]+) \(JIT on\) \| (yes|no) \|)")) {
    EXPECT_EQ(m[3], met(std::stod(m[1]) >= 2e6 || std::stod(m[2]) >= 2e6)) << line;
  }
  if (next(
          R"(\| 100 queries through `cayuga run`: >= 1,000,000 events/s \| ([0-9]+) \| (yes|no) \|)")) {
    EXPECT_EQ(m[2], met(std::stod(m[1]) >= 1e6)) << line;
  }
  if (next(R"(\| 10 -> 100 queries at constant work per event: < 2x the cost per event \| )"
           R"(([0-9]+) -> ([0-9]+) events/s: ([0-9]+\.[0-9]{2})x \(rounds: 1\) \| (yes|no) \|)")) {
    EXPECT_NEAR(std::stod(m[3]), std::stod(m[1]) / std::stod(m[2]), 0.006) << line;
    EXPECT_EQ(m[4], met(std::stod(m[3]) < 2)) << line;
  }
  if (next(R"(\| 200 queries register and compile: < 60 s, < 8 GiB \| ([0-9]+\.[0-9]) s, peak )"
           R"(([0-9]+) MiB \| (yes|no) \|)")) {
    EXPECT_EQ(m[3], met(std::stod(m[1]) < 60 && std::stod(m[2]) < 8192)) << line;
  }
  if (next(R"(\| an idle query: < 2,048 B \| ([0-9]+) B at 200 queries, ([0-9]+) B at 100 \| )"
           R"((yes|no) \|)")) {
    EXPECT_EQ(m[3], met(std::stod(m[1]) < 2048 && std::stod(m[2]) < 2048)) << line;
  }
  next(R"(\| native code against the interpreter, in memory \| JIT on / JIT off: )"
       R"([0-9]+\.[0-9]{2} \| \(a comparison\) \|)");
  EXPECT_FALSE(std::getline(lines, line)) << r.out;

  Result help = cayuga::test::run_shell(targets + "--help", dir_);
  EXPECT_EQ(help.exit, 0);
  EXPECT_EQ(help.out.rfind("Measures the targets of issue 4", 0), 0u) << help.out;
  Result bad = cayuga::test::run_shell(targets + "--repeat x", dir_);
  EXPECT_EQ(bad.exit, 2);
  EXPECT_EQ(bad.err, "bad value 'x' for --repeat\n");
  Result unknown = cayuga::test::run_shell(targets + "--fast 1", dir_);
  EXPECT_EQ(unknown.exit, 2);
  EXPECT_EQ(unknown.err.rfind("unknown option --fast\nusage: bench/targets.sh", 0), 0u)
      << unknown.err;
  Result missing = cayuga::test::run_shell(targets + "--build nope", dir_);
  EXPECT_EQ(missing.exit, 2);
  EXPECT_EQ(missing.err.rfind("not an executable: nope/cayuga-bench", 0), 0u) << missing.err;

  // A `cayuga run` that fails once, in the middle of --repeat 3, stops the script: no median
  // of the runs that did not fail.
  const fs::path flaky = dir_ / "flaky";
  fs::create_directories(flaky);
  fs::create_symlink(CAYUGA_BENCH, flaky / "cayuga-bench");
  {
    // Its first and third calls run cayuga; its second fails.
    const std::string first = (flaky / "first").string(), second = (flaky / "second").string();
    std::ofstream cayuga(flaky / "cayuga");
    cayuga << "#!/bin/sh\n"
           << "if [ -e '" << first << "' ] && [ ! -e '" << second << "' ]; then\n"
           << "  touch '" << second << "'; echo broken >&2; exit 3\n"
           << "fi\n"
           << "touch '" << first << "'\n"
           << "exec '" << CAYUGA_BIN << "' \"$@\"\n";
  }
  fs::permissions(flaky / "cayuga", fs::perms::owner_all);
  Result failed = cayuga::test::run_shell(targets + "--build '" + flaky.string() +
                                              "' --queries 100 --small 10 --million 0 "
                                              "--events 2000 --repeat 3",
                                          dir_);
  EXPECT_EQ(failed.exit, 1);
  EXPECT_EQ(failed.out, "");
  EXPECT_NE(failed.err.find("broken\nfailed: " + flaky.string() + "/cayuga run "),
            std::string::npos)
      << failed.err;
}

}  // namespace
