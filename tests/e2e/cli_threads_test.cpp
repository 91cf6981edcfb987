// `cayuga run` on one thread reading line by line (the sequential reference loop), on one
// thread reading files a batch ahead, and on several (input parsing and output formatting in a
// pipeline around the engine, tools/run_loop.h) must print the same bytes: stdout, stderr (but
// the timing fields of --stats) and the exit code, for every input and output format, merged
// inputs, and every error path. The inputs have tens of thousands of events so that they are
// cut into many batches and the output spans many of them.
//
// CAYUGA_BIN is the cayuga executable, CAYUGA_SOURCE_DIR the repository (tests/data, samples).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/e2e/shell.h"

namespace {

namespace fs = std::filesystem;

const std::string kSource = CAYUGA_SOURCE_DIR;

using cayuga::test::Result;
using cayuga::test::slurp;

void spit(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

// A small deterministic generator (the tests must not depend on std::rand's implementation).
struct Lcg {
  uint64_t s;
  uint32_t next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(s >> 33);
  }
  uint32_t below(uint32_t n) { return next() % n; }
};

// Symbols, some of which need quoting in one format or another.
std::string symbol(uint32_t i) {
  switch (i % 23) {
    case 0:
      return "A,B";
    case 1:
      return "it's";
    case 2:
      return "say \"hi\"";
    default:
      return "S" + std::to_string(i % 37);
  }
}

std::string cayuga_field(const std::string& s) {
  if (s.find_first_of(",'") == std::string::npos) return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

constexpr const char* kScript = R"(CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);
CREATE STREAM Trade (Sym STRING, Qty INT);
SELECT Name, Price FROM FILTER{Volume > 900}(Stock) PUBLISH Big;
SELECT Sym, Qty FROM FILTER{Qty < 40}(Trade) PUBLISH Small;
SELECT Name, Price_1 AS First, Price AS Second
FROM FILTER{DUR < 2 SECONDS}(Stock NEXT{$1.Name = $2.Name AND $2.Price > $1.Price * 1.02} Stock)
PUBLISH Rise;
SELECT Sym, Qty_1 AS First, Qty AS Last, cnt
FROM FILTER{cnt = 3}(
  (SELECT Sym, Qty, 1 AS cnt FROM Trade)
  FOLD{$2.Sym = $.Sym AND DUR < 1 SECONDS, , $.cnt + 1 AS cnt} Trade)
PUBLISH Burst;
)";

// The regex input: trade lines among lines the pattern does not match (skipped and counted).
constexpr const char* kTradeRegex = R"((?P<ts>\d+) trade (?P<Sym>\S+) qty=(?P<Qty>\S+))";

class CliThreads : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("cayuga_cli_threads_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    spit(dir_ / "q.cel", kScript);

    // 40000 events of both streams in the Cayuga format, several per millisecond (epochs).
    Lcg rng{7};
    std::string events;
    int64_t t = 0;
    for (int i = 0; i < 40000; ++i) {
      t += rng.below(3);
      if (rng.below(3) == 0)
        events += cayuga_field(symbol(rng.below(1000))) + "," + std::to_string(rng.below(60)) +
                  ",Trade," + std::to_string(t) + "," + std::to_string(t) + "\n";
      else
        events += cayuga_field(symbol(rng.below(1000))) + "," +
                  std::to_string(100 + rng.below(1000) / 100.0) + "," +
                  std::to_string(rng.below(1000)) + ",Stock," + std::to_string(t) + "," +
                  std::to_string(t) + "\n";
      if (i % 5000 == 4999) events += "\n";  // blank lines are passed over
    }
    spit(dir_ / "events.txt", events);
    ASSERT_EQ(std::system(("gzip -c " + (dir_ / "events.txt").string() + " > " +
                           (dir_ / "events.txt.gz").string())
                              .c_str()),
              0);

    // Stock as CSV (30000 records, some names with a line break inside quotes) and Trade as
    // JSON Lines and as a log for the regex, over the same time range.
    std::string csv = "t,Name,Price,Volume\n";
    std::string jsonl, log;
    t = 0;
    for (int i = 0; i < 30000; ++i) {
      t += rng.below(4);
      std::string name = i % 997 == 0 ? "multi\nline" : symbol(rng.below(1000));
      csv += std::to_string(t) + "," + csv_field(name) + "," +
             std::to_string(100 + rng.below(1000) / 100.0) + "," + std::to_string(rng.below(1000)) +
             "\n";
      if (i % 3 == 0)
        jsonl += "{\"t\":" + std::to_string(t) +
                 ",\"stream\":\"Trade\",\"Sym\":" + json_string(symbol(rng.below(1000))) +
                 ",\"Qty\":" + std::to_string(rng.below(60)) + "}\n";
      // Symbols of their own: the same trade from two inputs would double the FOLD's runs.
      if (i % 3 == 1)
        log += std::to_string(t) + " trade L" + std::to_string(rng.below(20)) +
               " qty=" + std::to_string(rng.below(60)) + "\n";
      if (i % 7 == 0) log += std::to_string(t) + " heartbeat\n";
    }
    spit(dir_ / "stocks.csv", csv);
    spit(dir_ / "trades.jsonl", jsonl);
    spit(dir_ / "trades.log", log);

    // Bad input: a malformed line after 20000 events; a line 15001 that goes back in time;
    // and for --on-error skip, bad lines and late events spread over the file.
    std::vector<std::string> lines;
    {
      std::istringstream in(events);
      for (std::string l; std::getline(in, l);)
        if (!l.empty()) lines.push_back(l);
    }
    auto join = [](const std::vector<std::string>& ls) {
      std::string out;
      for (const auto& l : ls) out += l + "\n";
      return out;
    };
    std::vector<std::string> bad = lines;
    bad[20000] = "IBM,oops,1,Stock,1,1";
    spit(dir_ / "bad.txt", join(bad));
    std::vector<std::string> late = lines;
    late[15000] = "IBM,1,1,Stock,0,0";
    spit(dir_ / "late.txt", join(late));
    std::vector<std::string> many = lines;
    for (size_t i = 1000; i < many.size(); i += 2711)
      many[i] = i % 2 ? "IBM,1,1,Stock,0,0" : "no,such,Stream,1,1";
    spit(dir_ / "many_bad.txt", join(many));
  }

  static void TearDownTestSuite() { fs::remove_all(dir_); }

  // Runs `cayuga run q.cel <args>` in the data directory, with `env` (VAR=value ...) set.
  static Result run(const std::string& args, const std::string& env = "") {
    return cayuga::test::run_shell(
        "cd '" + dir_.string() + "' && " + env + " '" + std::string(CAYUGA_BIN) + "' run " + args,
        dir_);
  }

  // The timing fields of --stats, which differ from run to run.
  static std::string without_timing(const std::string& err) {
    static const std::regex timing(
        R"re("(jit_compile_ms|compile_ms|run_ms|events_per_s|peak_rss_bytes)":[0-9.]+)re");
    return std::regex_replace(err, timing, "\"$1\":#");
  }

  // Runs `args` on one thread reading line by line (the reference loop), then on one thread
  // reading files a batch ahead, and with --threads 2 and 4; every run must give the bytes of
  // the first, and that one the expected exit code. Returns the reference.
  static Result same_on_all_threads(const std::string& args, int exit_code = 0) {
    Result ref = run(args + " --threads 1", "CAYUGA_READ_AHEAD=0");
    EXPECT_EQ(ref.exit, exit_code) << args << "\n" << ref.err;
    for (int threads : {1, 2, 4}) {
      Result r = run(args + " --threads " + std::to_string(threads));
      EXPECT_EQ(r.exit, ref.exit) << args << " --threads " << threads;
      EXPECT_TRUE(r.out == ref.out) << args << " --threads " << threads << ": stdout differs ("
                                    << r.out.size() << " vs " << ref.out.size() << " bytes)";
      EXPECT_EQ(without_timing(r.err), without_timing(ref.err)) << args << " --threads " << threads;
    }
    return ref;
  }

  static size_t lines(const std::string& s) { return std::count(s.begin(), s.end(), '\n'); }

  static fs::path dir_;
};

fs::path CliThreads::dir_;

const std::string kStockCsv = "--input Stock=stocks.csv";
const std::string kTradesJsonl = "--input trades.jsonl";
const std::string kTradesLog =
    "--input Trade=trades.log --regex '" + std::string(kTradeRegex) + "' --time-column ts";

// Lines of `text` that start with `prefix`.
size_t count_lines_starting(const std::string& text, const std::string& prefix) {
  size_t n = 0;
  for (size_t at = 0; at < text.size(); at = text.find('\n', at) + 1) {
    if (text.compare(at, prefix.size(), prefix) == 0) ++n;
    if (text.find('\n', at) == std::string::npos) break;
  }
  return n;
}

TEST_F(CliThreads, CayugaFormatInEveryOutputFormat) {
  for (const char* format : {"jsonl", "csv", "cayuga", "witness"}) {
    Result r =
        same_on_all_threads(std::string("q.cel --events events.txt --output-format ") + format);
    EXPECT_GT(lines(r.out), 10000u) << format;  // many batches of output
    EXPECT_EQ(r.err, "") << format;
    // CSV repeats its header at every change of stream: the streams interleave, so headers
    // fall on batch boundaries too, where the formatting stage must know the previous stream.
    if (std::string(format) == "csv") {
      EXPECT_GT(count_lines_starting(r.out, "stream,"), 1000u);
    }
  }
}

TEST_F(CliThreads, CsvWithRecordsOverSeveralLines) {
  Result r = same_on_all_threads("q.cel " + kStockCsv);
  EXPECT_GT(lines(r.out), 1000u);
  EXPECT_NE(r.out.find("multi\\nline"), std::string::npos);
  same_on_all_threads("q.cel " + kStockCsv + " --output-format csv");
}

TEST_F(CliThreads, JsonLinesAndRegex) {
  Result j = same_on_all_threads("q.cel " + kTradesJsonl + " --output-format cayuga");
  EXPECT_GT(lines(j.out), 1000u);
  // The log's heartbeat lines are skipped and counted (stats: unmatched_lines).
  Result r = same_on_all_threads("q.cel " + kTradesLog + " --stats --jit on");
  EXPECT_GT(lines(r.out), 1000u);
  EXPECT_EQ(r.err.find("\"unmatched_lines\":0,"), std::string::npos) << r.err;
}

TEST_F(CliThreads, GzipAndStdin) {
  Result plain = run("q.cel --events events.txt --threads 1");
  Result gz = same_on_all_threads("q.cel --events events.txt.gz");
  EXPECT_EQ(gz.out, plain.out);
  Result in = same_on_all_threads("q.cel --events - < events.txt");
  EXPECT_EQ(in.out, plain.out);
  Result gz_in = same_on_all_threads("q.cel --events - < events.txt.gz");
  EXPECT_EQ(gz_in.out, plain.out);
}

TEST_F(CliThreads, MergedInputsInEveryOutputFormat) {
  const std::string inputs =
      "q.cel --events events.txt " + kStockCsv + " " + kTradesJsonl + " " + kTradesLog;
  for (const char* format : {"jsonl", "csv", "cayuga", "witness"}) {
    Result r = same_on_all_threads(inputs + " --output-format " + format + " --stats --jit on");
    EXPECT_GT(lines(r.out), 10000u) << format;
    EXPECT_NE(r.err.find("\"events_in\":"), std::string::npos);
  }
  // The same inputs in another order (ties in t1 go to the input named first).
  Result r = same_on_all_threads("q.cel " + kTradesJsonl + " --events events.txt.gz " + kStockCsv +
                                 " --output-format csv");
  EXPECT_GT(lines(r.out), 10000u);
}

TEST_F(CliThreads, RealStockBarsAndLogs) {
  const std::string data = kSource + "/tests/data/";
  Result stocks = same_on_all_threads(
      kSource + "/samples/stocks.cel --input Stock=" + data +
      "stocks/bars_1min_2024_SW_TPL.csv.gz --time-column epoch_ms --time-format ms --map "
      "Name=sym --map Price=close --map Volume=volume --stats --jit on");
  EXPECT_EQ(lines(stocks.out), 66u);  // LargeTradeRebound 7, DoubleTop 59 (samples/README.md)
  EXPECT_NE(stocks.err.find("\"events_in\":69038,"), std::string::npos) << stocks.err;
  const std::string ts = " --time-column ts --time-format '%b %d %H:%M:%S'";
  Result ssh = same_on_all_threads(
      kSource + "/samples/logins.cel --input Failed=" + data +
      "logs/OpenSSH_2k.log --regex '(?P<ts>\\w+ +\\d+ [\\d:]+) \\S+ sshd\\[\\d+\\]: Failed "
      "password for (invalid user )?(?P<User>\\S+) from (?P<Host>[\\d.]+)'" +
      ts + " --input Accepted=" + data +
      "logs/OpenSSH_2k.log --regex '(?P<ts>\\w+ +\\d+ [\\d:]+) \\S+ sshd\\[\\d+\\]: Accepted "
      "password for (?P<User>\\S+) from (?P<Host>[\\d.]+)'" +
      ts + " --stats --jit on");
  EXPECT_EQ(lines(ssh.out), 442u);  // BruteForce 442 (samples/README.md)
  Result linux_log = same_on_all_threads(
      kSource + "/samples/logins.cel --input Failed=" + data +
      "logs/Linux_Jun_Jul.log.gz --regex '(?P<ts>\\w+ +\\d+ [\\d:]+) \\S+ "
      "sshd\\(pam_unix\\)\\[\\d+\\]: authentication failure;.* rhost=(?P<Host>\\S+)( "
      "+user=(?P<User>\\S+))?'" +
      ts + " --output-format csv");
  EXPECT_EQ(lines(linux_log.out), 672u + 1u);  // 672 matches and the CSV header
}

// Dozens of matches per event: the engine stage hands rows on in parts and goes on with tokens
// that carry no batch, also after the last batch has been cut.
TEST_F(CliThreads, FloodOfMatches) {
  spit(dir_ / "flood.cel", R"(CREATE STREAM Trade (Sym STRING, Qty INT);
SELECT Sym, Qty FROM Trade PUBLISH Each;
SELECT Sym, Qty_1 AS First, Qty AS Last, cnt
FROM FILTER{cnt >= 2}(
  (SELECT Sym, Qty, 1 AS cnt FROM Trade)
  FOLD{$2.Sym = $.Sym AND DUR < 1 SECONDS, , $.cnt + 1 AS cnt} Trade)
PUBLISH Runs;
)");
  Result r =
      same_on_all_threads("flood.cel " + kTradesJsonl + " --output-format csv --stats --jit on");
  // 10000 events, more than 5 rows each: over 16384 rows for a batch of 4096 records.
  EXPECT_GT(lines(r.out), 50000u);
  EXPECT_GT(count_lines_starting(r.out, "stream,"), 1000u);
}

TEST_F(CliThreads, BadLineStopsAfterTheSameEvents) {
  Result r = same_on_all_threads("q.cel --events bad.txt --stats --jit on", 1);
  EXPECT_NE(r.err.find("bad.txt:20001: attribute Price (FLOAT): 'oops' is not a number"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("cayuga: stopped after 20000 events"), std::string::npos) << r.err;
  EXPECT_GT(lines(r.out), 1000u);  // the matches before the bad line, and those finish() adds
  // Merged with other inputs: the run stops at the same point of the merge, with the same
  // counts (unmatched_lines of the regex input included).
  Result m = same_on_all_threads(
      "q.cel " + kTradesLog + " --events bad.txt " + kTradesJsonl + " --stats --jit on", 1);
  EXPECT_NE(m.err.find("bad.txt:20001: "), std::string::npos) << m.err;
}

TEST_F(CliThreads, LateEventStops) {
  Result r = same_on_all_threads("q.cel --events late.txt --output-format csv", 1);
  EXPECT_NE(r.err.find("late.txt:15001: late event: t1 0 is before the current time"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("cayuga: stopped after 15000 events"), std::string::npos)
      << r.err;  // not the late one
}

TEST_F(CliThreads, SkippedLinesAndLateEventsReportedInOrder) {
  Result r = same_on_all_threads("q.cel --events many_bad.txt " + kTradesJsonl +
                                 " --on-error skip --stats --jit on");
  EXPECT_GT(lines(r.err), 10u);
  // Every 2711th line from line 1001: unknown streams and late events by turns.
  EXPECT_NE(r.err.find("many_bad.txt:1001: unknown stream 'Stream'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("many_bad.txt:3712: late event"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("cayuga: skipped 8 bad lines and 7 late events"), std::string::npos)
      << r.err;
}

TEST_F(CliThreads, ThreadsOption) {
  Result bad = run("q.cel --events events.txt --threads x");
  EXPECT_EQ(bad.exit, 2);
  EXPECT_NE(bad.err.find("--threads must be a number from 0 to 1024"), std::string::npos);
  Result help = run("--help");
  EXPECT_NE(help.out.find("--threads N"), std::string::npos);
  // 0 (the default): one thread per core, same output.
  Result ref = run("q.cel --events events.txt --threads 1");
  Result all = run("q.cel --events events.txt --threads 0");
  EXPECT_EQ(all.exit, 0);
  EXPECT_TRUE(all.out == ref.out);
}

}  // namespace
