// Input readers, merge, input options and output writers (runtime/io.h).
#include "runtime/io.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <thread>

#include "runtime/io_internal.h"
#include "tests/unit/stock_bars_args.h"

namespace cayuga {
namespace {

const Schema kStock{{{"Name", Type::String}, {"Price", Type::Float}, {"Volume", Type::Int}}};
const Schema kTrade{{{"Sym", Type::String}, {"Qty", Type::Int}}};
const Schema kLogin{{{"User", Type::String}, {"Host", Type::String}}};

StreamTable make_streams() {
  StreamTable t;
  t.add({0, "Stock", &kStock});
  t.add({1, "Trade", &kTrade});
  t.add({2, "Logins", &kLogin});
  return t;
}

// One line per event ("Stock[1,1] IBM 10 1") or error ("ERR file:line: message").
std::string render(const StreamTable& streams, const InputEvent& ev) {
  const StreamDef* def = streams.find_id(ev.stream);
  std::string out =
      def->name + "[" + std::to_string(ev.row.t0) + "," + std::to_string(ev.row.t1) + "]";
  for (size_t i = 0; i < def->schema->size(); ++i) {
    out += ' ';
    Slot v = ev.row.values[i];
    switch (def->schema->attrs[i].type) {
      case Type::Int:
        out += std::to_string(v.i);
        break;
      case Type::Float:
        append_double(out, v.f);
        break;
      case Type::String:
        out += interned(v.s);
        break;
    }
  }
  return out;
}

std::vector<std::string> drain(EventReader& r, const StreamTable& streams) {
  std::vector<std::string> out;
  InputEvent ev;
  for (int guard = 0; guard < 100000; ++guard) {
    switch (r.next(ev)) {
      case EventReader::Status::Event:
        out.push_back(render(streams, ev));
        break;
      case EventReader::Status::Error:
        out.push_back("ERR " + r.error().to_string());
        break;
      case EventReader::Status::End:
        return out;
    }
  }
  ADD_FAILURE() << "reader did not end";
  return out;
}

InputSpec spec_of(InputFormat f, std::string stream = "", std::string path = "mem") {
  InputSpec s;
  s.path = std::move(path);
  s.stream = std::move(stream);
  s.format = f;
  return s;
}

std::unique_ptr<SplitReader> mem_reader(const InputSpec& spec, const std::string& text,
                                        const StreamTable& streams, std::string* err,
                                        EngineUnit unit = EngineUnit::Ms) {
  return open_reader(spec, memory_byte_source(text), streams, unit, err);
}

std::vector<std::string> read_text(const InputSpec& spec, const std::string& text,
                                   EngineUnit unit = EngineUnit::Ms) {
  StreamTable streams = make_streams();
  std::string err;
  auto r = mem_reader(spec, text, streams, &err, unit);
  if (!r) return {"OPEN " + err};
  return drain(*r, streams);
}

std::string open_error(const InputSpec& spec, const std::string& text) {
  StreamTable streams = make_streams();
  std::string err;
  auto r = mem_reader(spec, text, streams, &err);
  return r ? "opened" : err;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("cayuga_io_test_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

// ---------------------------------------------------------------------------------------------
// Streams and values

TEST(StreamTable, AddFindAndDuplicates) {
  StreamTable t = make_streams();
  EXPECT_EQ(t.find("Stock")->id, 0u);
  EXPECT_EQ(t.find_id(1)->name, "Trade");
  EXPECT_EQ(t.find("stock"), nullptr);  // case-sensitive
  EXPECT_FALSE(t.add({7, "Stock", &kStock}));
  EXPECT_FALSE(t.add({1, "Other", &kStock}));
  EXPECT_EQ(t.names(), "Stock, Trade, Logins");
}

TEST(Values, Int) {
  int64_t v = 0;
  EXPECT_EQ(parse_int_value("42", v), "");
  EXPECT_EQ(v, 42);
  EXPECT_EQ(parse_int_value("+7", v), "");
  EXPECT_EQ(v, 7);
  EXPECT_EQ(parse_int_value("-9223372036854775808", v), "");
  EXPECT_EQ(v, INT64_MIN);
  EXPECT_EQ(parse_int_value("9223372036854775808", v),
            "'9223372036854775808' is out of the INT range (64-bit)");
  EXPECT_EQ(parse_int_value("1.5", v), "'1.5' is not an integer");
  EXPECT_EQ(parse_int_value("1e3", v), "'1e3' is not an integer");
  EXPECT_EQ(parse_int_value("+-1", v), "'+-1' is not an integer");
  EXPECT_EQ(parse_int_value("", v), "empty value is not an integer");
}

// The per-thread cache in front of the interner keeps short texts in its ways and checks long
// ones against the interner: every length around that limit, the empty string, and more
// distinct values than the cache holds (so ways are evicted and reloaded) must come back as the
// interner's own ids, with their own texts.
TEST(Values, StringsInternedThroughTheCacheAreTheInternersIds) {
  std::vector<std::string> texts = {"",
                                    "a",
                                    std::string(22, 'x'),
                                    std::string(23, 'x'),
                                    std::string(24, 'x'),
                                    std::string(23, 'y') + "z",
                                    std::string(300, 'q')};
  for (int i = 0; i < 150000; ++i)
    texts.push_back("S" + std::to_string(i) + (i % 7 ? "" : std::string(20, '_')));
  for (int round = 0; round < 2; ++round)
    for (size_t k = 0; k < texts.size(); ++k) {
      const std::string& t = texts[round == 0 ? k : texts.size() - 1 - k];
      const uint64_t id = io_detail::intern_cached(t);
      ASSERT_EQ(id, intern(t)) << t;
      ASSERT_EQ(interned(id), t);
    }
  // Two texts that differ only past the kept length are told apart.
  EXPECT_NE(io_detail::intern_cached(std::string(23, 'x') + "1"),
            io_detail::intern_cached(std::string(23, 'x') + "2"));
}

// A batch's strings interned together (with the lookahead) get the interner's ids, each in its
// own slot: runs shorter and longer than the lookahead, the empty string, repeats.
TEST(Values, StringsInternedTogetherAreTheInternersIds) {
  for (size_t n : {0u, 1u, 7u, 8u, 9u, 1000u}) {
    std::vector<std::string> texts;
    for (size_t k = 0; k < n; ++k)
      texts.push_back(k % 5 == 0 ? "" : "B" + std::to_string(k % 37) + std::string(k % 30, '.'));
    std::vector<io_detail::DeferredString> strings;
    for (size_t k = 0; k < n; ++k) strings.push_back({2 * k + 1, texts[k]});
    std::vector<Slot> values(2 * n + 1, Slot{.i = -1});
    io_detail::intern_all(strings, values.data());
    for (size_t k = 0; k < n; ++k) {
      ASSERT_EQ(values[2 * k + 1].s, intern(texts[k])) << n << " " << texts[k];
      ASSERT_EQ(values[2 * k].i, -1);  // slots not listed are left alone
    }
    EXPECT_EQ(values[2 * n].i, -1);
  }
}

TEST(Values, Float) {
  double v = 0;
  EXPECT_EQ(parse_float_value("10", v), "");
  EXPECT_EQ(v, 10.0);
  EXPECT_EQ(parse_float_value("-2.5e-3", v), "");
  EXPECT_EQ(v, -2.5e-3);
  EXPECT_EQ(parse_float_value("inf", v), "");
  EXPECT_TRUE(std::isinf(v) && v > 0);
  EXPECT_EQ(parse_float_value("-Infinity", v), "");
  EXPECT_TRUE(std::isinf(v) && v < 0);
  EXPECT_EQ(parse_float_value("NaN", v), "");
  EXPECT_TRUE(std::isnan(v));
  EXPECT_EQ(parse_float_value("4.9e-324", v), "");  // subnormal: fine
  EXPECT_EQ(v, std::numeric_limits<double>::denorm_min());
  EXPECT_EQ(parse_float_value("1e400", v), "'1e400' is out of the FLOAT range");
  EXPECT_EQ(parse_float_value("abc", v), "'abc' is not a number");
  EXPECT_EQ(parse_float_value("0x10", v), "'0x10' is not a number");
  EXPECT_EQ(parse_float_value("1.5x", v), "'1.5x' is not a number");
}

TEST(Time, NumbersConvertToTheEngineUnit) {
  auto conv = [](std::string_view text, std::string_view fmt, EngineUnit engine) {
    TimeFormat tf;
    EXPECT_EQ(make_time_format(fmt, engine, 1970, tf), "");
    int64_t v = 0;
    std::string e = parse_time_value(text, tf, engine, v);
    return e.empty() ? std::to_string(v) : e;
  };
  EXPECT_EQ(conv("5", "", EngineUnit::Ms), "5");
  EXPECT_EQ(conv("1.5", "s", EngineUnit::Ms), "1500");
  EXPECT_EQ(conv("1704205740000", "ms", EngineUnit::Us), "1704205740000000");
  EXPECT_EQ(conv("1999", "us", EngineUnit::Ms), "1");  // rounds down
  EXPECT_EQ(conv("-1", "us", EngineUnit::Ms), "-1");   // floor, not toward zero
  EXPECT_EQ(conv("1704205740123", "ms", EngineUnit::S), "1704205740");
  EXPECT_EQ(conv("9223372036854775807", "s", EngineUnit::Ms),
            "time '9223372036854775807' is out of range");
  EXPECT_EQ(conv("12a", "ms", EngineUnit::Ms), "time '12a' is not a number of ms");
  EXPECT_EQ(conv("", "ms", EngineUnit::Ms), "time '' is not a number of ms");
}

TEST(Time, Datetimes) {
  auto conv = [](std::string_view text, std::string_view fmt, int year = 1970,
                 EngineUnit engine = EngineUnit::Ms) {
    TimeFormat tf;
    if (std::string e = make_time_format(fmt, engine, year, tf); !e.empty()) return e;
    int64_t v = 0;
    std::string e = parse_time_value(text, tf, engine, v);
    return e.empty() ? std::to_string(v) : e;
  };
  // date -u -d '2024-01-02 14:29:00' +%s → 1704205740
  EXPECT_EQ(conv("2024-01-02 14:29:00", "%Y-%m-%d %H:%M:%S"), "1704205740000");
  EXPECT_EQ(conv("2024-01-02T14:29:00.123", "%Y-%m-%dT%H:%M:%S"), "1704205740123");
  EXPECT_EQ(conv("2024-01-02T14:29:00.5Z", "%Y-%m-%dT%H:%M:%S.%fZ", 1970, EngineUnit::Us),
            "1704205740500000");
  EXPECT_EQ(conv("2024-01-02 14:29:00", "%Y-%m-%d %T", 1970, EngineUnit::S), "1704205740");
  // date -u -d '1970-12-10 06:55:46' +%s → 29660146 (syslog lines have no year: --year)
  EXPECT_EQ(conv("Dec 10 06:55:46", "%b %d %H:%M:%S"), "29660146000");
  EXPECT_EQ(conv("december  5 00:00:00", "%b %e %H:%M:%S", 2024), "1733356800000");
  EXPECT_EQ(conv("1969-12-31 23:59:59", "%Y-%m-%d %H:%M:%S"), "-1000");
  EXPECT_EQ(conv("2024-02-30 00:00:00", "%Y-%m-%d %H:%M:%S"),
            "time '2024-02-30 00:00:00': day 30 is out of range");
  EXPECT_EQ(conv("2024-01-02 24:00:00", "%Y-%m-%d %H:%M:%S"),
            "time '2024-01-02 24:00:00': hour 24 is out of range");
  EXPECT_EQ(conv("Foo 10 06:55:46", "%b %d %H:%M:%S"),
            "time 'Foo 10 06:55:46' does not match the format '%b %d %H:%M:%S'");
  EXPECT_EQ(conv("2024-01-02 14:29:00 extra", "%Y-%m-%d %H:%M:%S"),
            "time '2024-01-02 14:29:00 extra' does not match the format '%Y-%m-%d %H:%M:%S'");
  EXPECT_EQ(conv("x", "%Y-%q"),
            "time format '%Y-%q': unsupported conversion %q (supported: %Y %m %d %e %H %M %S %f "
            "%b %B %h %T %%)");
  EXPECT_EQ(conv("x", "minutes"),
            "time format 'minutes' is neither a unit (us, ms, s) nor a datetime pattern (e.g. "
            "%Y-%m-%d %H:%M:%S)");
}

// ---------------------------------------------------------------------------------------------
// Cayuga format

TEST(CayugaReader, GoodInput) {
  EXPECT_EQ(read_text(spec_of(InputFormat::Cayuga),
                      "IBM,10,1,Stock,1,1\n"
                      "MSFT, 20.5 , 2, Stock, 2, 2\r\n"
                      "\n"
                      "   \n"
                      "'A,B', 1e3 ,-5,Stock,3,4\n"
                      "'it''s',0.1,0,Stock,4,4\n"
                      "X,7,Trade,5,5"),
            (std::vector<std::string>{"Stock[1,1] IBM 10 1", "Stock[2,2] MSFT 20.5 2",
                                      "Stock[3,4] A,B 1000 -5", "Stock[4,4] it's 0.1 0",
                                      "Trade[5,5] X 7"}));
}

TEST(CayugaReader, ErrorsNameFileAndLineAndReadingContinues) {
  EXPECT_EQ(read_text(spec_of(InputFormat::Cayuga, "", "ev.txt"),
                      "IBM,10,Stock,1,1\n"
                      "a,b\n"
                      "IBM,10,1,Stok,1,1\n"
                      "IBM,abc,1,Stock,1,1\n"
                      "IBM,10,1.5,Stock,1,1\n"
                      "IBM,10,99999999999999999999,Stock,1,1\n"
                      "IBM,10,1,Stock,5,3\n"
                      "IBM,10,1,Stock,x,3\n"
                      "'IBM,10,1,Stock,1,1\n"
                      "'IBM'x,10,1,Stock,1,1\n"
                      "IBM,10,1,Stock,6,6\n"),
            (std::vector<std::string>{
                "ERR ev.txt:1: wrong number of fields: stream Stock has 3 attributes (Name, "
                "Price, Volume), the line has 2 values",
                "ERR ev.txt:2: malformed line: expected v1,...,vn,StreamName,t0,t1",
                "ERR ev.txt:3: unknown stream 'Stok' (input streams: Stock, Trade, Logins)",
                "ERR ev.txt:4: attribute Price (FLOAT): 'abc' is not a number",
                "ERR ev.txt:5: attribute Volume (INT): '1.5' is not an integer",
                "ERR ev.txt:6: attribute Volume (INT): '99999999999999999999' is out of the INT "
                "range (64-bit)",
                "ERR ev.txt:7: t0 (5) is after t1 (3)", "ERR ev.txt:8: t0: 'x' is not an integer",
                "ERR ev.txt:9: malformed line: unterminated quote in field 1",
                "ERR ev.txt:10: malformed line: text after the closing quote of field 1",
                "Stock[6,6] IBM 10 1"}));
}

TEST(CayugaReader, SpecWorkedExample) {
  // CEL.md §9 input, in one file.
  EXPECT_EQ(read_text(spec_of(InputFormat::Cayuga),
                      "IBM,10,1,Stock,1,1\nMSFT,20,1,Stock,2,2\nIBM,11,1,Stock,3,3\n"
                      "IBM,12,1,Stock,3,3\nMSFT,21,1,Stock,4,4\n")
                .size(),
            5u);
}

TEST(CayugaReader, ValueCapacityIsReused) {
  StreamTable streams = make_streams();
  std::string err;
  auto r =
      mem_reader(spec_of(InputFormat::Cayuga), "A,1,1,Stock,1,1\nB,2,2,Stock,2,2\n", streams, &err);
  ASSERT_TRUE(r) << err;
  InputEvent ev;
  ASSERT_EQ(r->next(ev), EventReader::Status::Event);
  const Slot* data = ev.row.values.data();
  ASSERT_EQ(r->next(ev), EventReader::Status::Event);
  EXPECT_EQ(ev.row.values.data(), data);
  EXPECT_EQ(r->next(ev), EventReader::Status::End);
  EXPECT_EQ(r->next(ev), EventReader::Status::End);
}

TEST(CayugaReader, MissingFile) {
  StreamTable streams = make_streams();
  std::string err;
  InputSpec s = spec_of(InputFormat::Cayuga, "", "/nonexistent/ev.txt");
  EXPECT_EQ(open_reader(s, streams, EngineUnit::Ms, &err), nullptr);
  EXPECT_EQ(err, "/nonexistent/ev.txt: cannot open: No such file or directory");
}

// ---------------------------------------------------------------------------------------------
// CSV

TEST(CsvReader, HeaderMappingQuotingAndTime) {
  InputSpec s = spec_of(InputFormat::Csv, "Stock", "bars.csv");
  s.time_column = "epoch_ms";
  s.time_format = "ms";
  s.map = {{"Name", "sym"}, {"Price", "close"}};
  EXPECT_EQ(read_text(s,
                      "\xEF\xBB\xBFsym,epoch_ms,open,close,Volume\r\n"
                      "NDSN,1704205740000,262.15,262.1,302\r\n"
                      "\"A,\"\"B\"\"\",1704205740001,1,2.5,3\n"
                      "\"multi\nline\",1704205740002,1,2,3\n"
                      "\" x \",1704205740003,,1,-4\n",
                      EngineUnit::Us),
            (std::vector<std::string>{"Stock[1704205740000000,1704205740000000] NDSN 262.1 302",
                                      "Stock[1704205740001000,1704205740001000] A,\"B\" 2.5 3",
                                      "Stock[1704205740002000,1704205740002000] multi\nline 2 3",
                                      "Stock[1704205740003000,1704205740003000]  x  1 -4"}));
}

TEST(CsvReader, DefaultTimeColumns) {
  EXPECT_EQ(read_text(spec_of(InputFormat::Csv, "Trade"), "Qty,t,Sym\n5,10,A\n"),
            (std::vector<std::string>{"Trade[10,10] A 5"}));
  EXPECT_EQ(read_text(spec_of(InputFormat::Csv, "Trade"), "t1,Sym,t0,Qty\n10,A,7,5\n9,B,10,1\n"),
            (std::vector<std::string>{"Trade[7,10] A 5", "ERR mem:3: t0 (10) is after t1 (9)"}));
}

TEST(CsvReader, OpenErrors) {
  InputSpec s = spec_of(InputFormat::Csv, "Stock", "bars.csv");
  s.map = {{"Price", "close"}};
  EXPECT_EQ(open_error(s, "sym,epoch_ms,close\n"),
            "bars.csv: missing column 'Name' for stream Stock; header: sym, epoch_ms, close");
  s.map = {{"Name", "sym"}, {"Price", "last"}};
  EXPECT_EQ(open_error(s, "sym,epoch_ms,close,Volume\n"),
            "bars.csv: missing column 'last' (mapped from attribute Price) for stream Stock; "
            "header: sym, epoch_ms, close, Volume");
  s.map = {{"Name", "sym"}, {"Price", "close"}};
  EXPECT_EQ(open_error(s, "sym,epoch_ms,close,Volume\n"),
            "bars.csv: missing time column: no column 't' (or 't0' and 't1'); name it with "
            "--time-column; header: sym, epoch_ms, close, Volume");
  s.time_column = "ts";
  EXPECT_EQ(open_error(s, "sym,epoch_ms,close,Volume\n"),
            "bars.csv: missing time column 'ts'; header: sym, epoch_ms, close, Volume");
  EXPECT_EQ(open_error(s, ""), "bars.csv: empty file: expected a header line");
  EXPECT_EQ(open_error(spec_of(InputFormat::Csv, "", "x.csv"), "t\n"),
            "x.csv: a CSV input needs its stream: --input Stream=x.csv");
  EXPECT_EQ(open_error(spec_of(InputFormat::Csv, "Nope", "x.csv"), "t\n"),
            "x.csv: unknown stream 'Nope' (input streams: Stock, Trade, Logins)");
  InputSpec bad = spec_of(InputFormat::Csv, "Trade", "x.csv");
  bad.time_format = "%Q";
  EXPECT_EQ(open_error(bad, "t,Sym,Qty\n"),
            "x.csv: time format '%Q': unsupported conversion %Q (supported: %Y %m %d %e %H %M %S "
            "%f %b %B %h %T %%)");
}

TEST(CsvReader, RecordErrors) {
  InputSpec s = spec_of(InputFormat::Csv, "Trade", "t.csv");
  s.time_column = "when";
  s.time_format = "%Y-%m-%d %H:%M:%S";
  EXPECT_EQ(read_text(s,
                      "Sym,Qty,when\n"
                      "A,1\n"
                      "A,x,2024-01-02 14:29:00\n"
                      "A,1,2024-01-02\n"
                      "A\"b,1,2024-01-02 14:29:00\n"
                      "\"A\"b,1,2024-01-02 14:29:00\n"
                      "B,2,2024-01-02 14:29:00\n"
                      "\"open,1,2024-01-02 14:29:00\n"
                      "C,3,2024-01-02 14:29:01\n"),
            (std::vector<std::string>{
                "ERR t.csv:2: wrong number of fields: the header has 3 columns, the record has 2",
                "ERR t.csv:3: attribute Qty (INT): 'x' is not an integer",
                "ERR t.csv:4: column when: time '2024-01-02' does not match the format "
                "'%Y-%m-%d %H:%M:%S'",
                "ERR t.csv:5: malformed CSV: quote inside unquoted field 1 (quote the whole field "
                "and double the quote)",
                "ERR t.csv:6: malformed CSV: text after the closing quote of field 1",
                "Trade[1704205740000,1704205740000] B 2",
                "ERR t.csv:8: malformed CSV: quoted field not closed before the end of the file"}));
}

// ---------------------------------------------------------------------------------------------
// JSON Lines

TEST(JsonlReader, GoodInput) {
  EXPECT_EQ(
      read_text(spec_of(InputFormat::Jsonl),
                "{\"stream\":\"Stock\",\"t\":5,\"Name\":\"IBM\",\"Price\":10,\"Volume\":1}\n"
                " { \"Volume\" : -2 , \"Price\" : 1.5e2, \"Name\" : \"caf\\u00e9 \\ud83d\\ude00\","
                " \"t0\" : 6, \"t1\": 9, \"stream\": \"Stock\", \"extra\": [1] }\n"
                "{\"stream\":\"Trade\",\"t\":10,\"Sym\":\"a\\\"b\\\\c\\/\\n\",\"Qty\":3}\n"
                "{\"stream\":\"Stock\",\"t\":11,\"Name\":\"N\",\"Price\":null,\"Volume\":0}\n"),
      (std::vector<std::string>{"Stock[5,5] IBM 10 1",
                                "ERR mem:2: malformed JSON: nested objects and arrays are not "
                                "supported (key 'extra')",
                                "Trade[10,10] a\"b\\c/\n 3", "Stock[11,11] N nan 0"}));
  EXPECT_EQ(read_text(spec_of(InputFormat::Jsonl),
                      "{\"Volume\":-2,\"Price\":1.5e2,\"Name\":\"caf\\u00e9 \\ud83d\\ude00\","
                      "\"t0\":6,\"t1\":9,\"stream\":\"Stock\",\"other\":true}\n"),
            (std::vector<std::string>{"Stock[6,9] caf\xC3\xA9 \xF0\x9F\x98\x80 150 -2"}));
}

TEST(JsonlReader, FixedStreamAndTimeOptions) {
  InputSpec s = spec_of(InputFormat::Jsonl, "Trade", "t.jsonl");
  s.time_column = "ts";
  s.time_format = "%Y-%m-%dT%H:%M:%S";
  s.map = {{"Sym", "symbol"}};
  EXPECT_EQ(
      read_text(
          s,
          "{\"ts\":\"2024-01-02T14:29:00\",\"symbol\":\"A\",\"Qty\":1}\n"
          "{\"stream\":\"Trade\",\"ts\":\"2024-01-02T14:29:01\",\"symbol\":\"B\",\"Qty\":2}\n"
          "{\"stream\":\"Stock\",\"ts\":\"2024-01-02T14:29:01\",\"symbol\":\"B\",\"Qty\":2}\n"),
      (std::vector<std::string>{
          "Trade[1704205740000,1704205740000] A 1", "Trade[1704205741000,1704205741000] B 2",
          "ERR t.jsonl:3: stream 'Stock' in an input fixed to stream 'Trade'"}));
}

TEST(JsonlReader, Errors) {
  EXPECT_EQ(
      read_text(spec_of(InputFormat::Jsonl, "", "in.jsonl"),
                "{\"stream\":\"Trade\",\"t\":1,\"Sym\":\"A\"}\n"
                "{\"stream\":\"Trade\",\"t\":1,\"Sym\":\"A\",\"Qty\":1.5}\n"
                "{\"stream\":\"Trade\",\"t\":1,\"Sym\":\"A\",\"Qty\":\"1\"}\n"
                "{\"stream\":\"Trade\",\"t\":1,\"Sym\":7,\"Qty\":1}\n"
                "{\"stream\":\"Trade\",\"t\":1,\"Sym\":\"\\ud83d\",\"Qty\":1}\n"
                "{\"stream\":\"Trade\",\"t\":1,\"Sym\":\"A\",\"Qty\":1} x\n"
                "{\"t\":1,\"Sym\":\"A\",\"Qty\":1}\n"
                "{\"stream\":\"Nope\",\"t\":1}\n"
                "{\"stream\":\"Trade\",\"t\":1,\"Sym\":\"A\",\"Sym\":\"B\",\"Qty\":1}\n"
                "{\"stream\":\"Trade\",\"Sym\":\"A\",\"Qty\":1}\n"
                "{\"stream\":\"Trade\",\"t0\":1,\"Sym\":\"A\",\"Qty\":1}\n"
                "{\"stream\":\"Trade\",\"t\":1.5,\"Sym\":\"A\",\"Qty\":1}\n"
                "{\"stream\":\"Trade\",\"t\":1,\"Sym\":\"a\tb\",\"Qty\":1}\n"
                "{\"stream\":\"Trade\",\"t\":01,\"Sym\":\"A\",\"Qty\":1}\n"
                "[1]\n"
                "{\"stream\":\"Trade\",\"t\":2,\"Sym\":\"ok\",\"Qty\":2}\n"),
      (std::vector<std::string>{
          "ERR in.jsonl:1: missing key 'Qty' for attribute Qty of stream Trade",
          "ERR in.jsonl:2: attribute Qty (INT): '1.5' is not an integer",
          "ERR in.jsonl:3: attribute Qty (INT): expected a JSON integer, got a string",
          "ERR in.jsonl:4: attribute Sym (STRING): expected a JSON string, got 7",
          "ERR in.jsonl:5: malformed JSON: invalid \\u escape: unpaired high surrogate",
          "ERR in.jsonl:6: malformed JSON: text after the JSON object at 'x'",
          "ERR in.jsonl:7: missing key 'stream' (or fix the stream: --input Stream=file)",
          "ERR in.jsonl:8: unknown stream 'Nope' (input streams: Stock, Trade, Logins)",
          "ERR in.jsonl:9: duplicate key 'Sym'",
          "ERR in.jsonl:10: missing time: no key 't' (or 't0' and 't1')",
          "ERR in.jsonl:11: missing key 't1' (t0 is given)",
          "Trade[1,1] A 1",  // "1.5" ms in an ms engine: fraction rounds down
          "ERR in.jsonl:13: malformed JSON: control character in a string (escape it as \\u00XX)",
          "ERR in.jsonl:14: malformed JSON: expected ',' or '}' at '1,\"Sym\":\"A\",\"Qty\":1}'",
          "ERR in.jsonl:15: malformed JSON: expected a JSON object '{'", "Trade[2,2] ok 2"}));
}

// ---------------------------------------------------------------------------------------------
// Regex

const char* kSshRegex =
    R"((?P<ts>\w+ +\d+ [\d:]+) \S+ sshd\[\d+\]: Failed password for (invalid user )?(?P<User>\S+) from (?P<Host>[\d.]+))";

InputSpec ssh_spec(std::string path) {
  InputSpec s = spec_of(InputFormat::Regex, "Logins", std::move(path));
  s.regex = kSshRegex;
  s.time_column = "ts";
  s.time_format = "%b %d %H:%M:%S";
  return s;
}

const char* kSshLines =
    "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186\n"
    "Dec 10 06:55:48 LabSZ sshd[24200]: Failed password for invalid user webmaster from "
    "173.234.31.186 port 38926 ssh2\n"
    "Dec 10 07:02:47 LabSZ sshd[24203]: Failed password for root from 5.36.59.76 port 42393 ssh2\n";

TEST(RegexReader, NamedGroupsAndSkippedLines) {
  StreamTable streams = make_streams();
  std::string err;
  InputSpec s = ssh_spec("auth.log");
  s.year = 2024;
  auto r = mem_reader(s, kSshLines, streams, &err);
  ASSERT_TRUE(r) << err;
  // date -u -d '2024-12-10 06:55:48' +%s → 1733813748
  EXPECT_EQ(drain(*r, streams), (std::vector<std::string>{
                                    "Logins[1733813748000,1733813748000] webmaster 173.234.31.186",
                                    "Logins[1733814167000,1733814167000] root 5.36.59.76"}));
  EXPECT_EQ(r->skipped(), 1u);
}

TEST(RegexReader, UnmatchedAsErrorsAndOpenErrors) {
  InputSpec s = ssh_spec("auth.log");
  s.skip_unmatched = false;
  auto got = read_text(s, kSshLines);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], "ERR auth.log:1: line does not match the regex");

  InputSpec bad = ssh_spec("auth.log");
  bad.regex = "(?P<User>\\S+";
  EXPECT_EQ(open_error(bad, ""), "auth.log: bad regex: missing ): (?P<User>\\S+");
  bad.regex = "(?P<ts>\\S+) (?P<User>\\S+)";
  EXPECT_EQ(open_error(bad, ""),
            "auth.log: the regex has no named group 'Host' for attribute Host of stream Logins "
            "(groups: User, ts)");
  bad = ssh_spec("auth.log");
  bad.time_column = "";
  EXPECT_EQ(open_error(bad, ""),
            "auth.log: the regex has no time group: name it (?P<t>...) or use --time-column "
            "(groups: Host, User, ts)");
  bad.stream = "";
  EXPECT_EQ(open_error(bad, ""),
            "auth.log: a regex input needs its stream: --input Stream=auth.log");
}

// ---------------------------------------------------------------------------------------------
// gzip, real data

TEST(Gzip, WrittenAndReadBack) {
  std::string path = temp_path("events.txt.gz");
  std::string err;
  {
    auto sink = open_output_sink(path, &err);
    ASSERT_TRUE(sink) << err;
    auto w = make_writer(OutputFormat::Cayuga, std::move(sink));
    Row row{3, 4, {string_slot(intern("IBM")), float_slot(10.5), int_slot(7)}};
    for (int i = 0; i < 20000; ++i) w->write("Stock", kStock, row);  // > one spill block
    ASSERT_TRUE(w->flush()) << w->error();
  }
  StreamTable streams = make_streams();
  InputSpec s = spec_of(format_from_path(path), "", path);
  EXPECT_EQ(s.format, InputFormat::Cayuga);
  auto r = open_reader(s, streams, EngineUnit::Ms, &err);
  ASSERT_TRUE(r) << err;
  auto got = drain(*r, streams);
  ASSERT_EQ(got.size(), 20000u);
  EXPECT_EQ(got.front(), "Stock[3,4] IBM 10.5 7");
  EXPECT_EQ(got.back(), "Stock[3,4] IBM 10.5 7");
  std::filesystem::remove(path);
}

TEST(PlainFiles, SinkAndSource) {
  std::string path = temp_path("events.jsonl");
  std::string err;
  {
    auto sink = open_output_sink(path, &err);
    ASSERT_TRUE(sink) << err;
    auto w = make_writer(OutputFormat::Jsonl, std::move(sink));
    w->write("Trade", kTrade, Row{4, 4, {string_slot(intern("Z")), int_slot(9)}});
  }  // the destructor flushes
  StreamTable streams = make_streams();
  auto r = open_reader(spec_of(format_from_path(path), "", path), streams, EngineUnit::Ms, &err);
  ASSERT_TRUE(r) << err;
  EXPECT_EQ(drain(*r, streams), (std::vector<std::string>{"Trade[4,4] Z 9"}));
  std::filesystem::remove(path);
  EXPECT_EQ(open_output_sink("/nonexistent/x.jsonl", &err), nullptr);
  EXPECT_EQ(err, "/nonexistent/x.jsonl: cannot create: No such file or directory");
}

TEST(RealData, OpenSshFailedPasswords) {
  // tests/data/logs/OpenSSH_2k.log (loghub, see tests/data/logs/LICENSE). Independently:
  //   grep -c 'Failed password' OpenSSH_2k.log                       → 520
  //   grep -cP '<the same regex>' OpenSSH_2k.log                     → 517
  // The 3 lines the regex leaves out: two "message repeated 5 times: [ Failed password ..." and
  // one "invalid user  0101" (two blanks). Every other line (2000 - 517) is skipped and counted.
  StreamTable streams = make_streams();
  std::string err;
  auto r = open_reader(ssh_spec(std::string(CAYUGA_SOURCE_DIR) + "/tests/data/logs/OpenSSH_2k.log"),
                       streams, EngineUnit::Ms, &err);
  ASSERT_TRUE(r) << err;
  auto got = drain(*r, streams);
  ASSERT_EQ(got.size(), 517u);
  EXPECT_EQ(r->skipped(), 2000u - 517u);
  for (const auto& line : got) ASSERT_EQ(line.rfind("Logins[", 0), 0u) << line;
  EXPECT_EQ(got.front(), "Logins[29660148000,29660148000] webmaster 173.234.31.186");
}

TEST(RealData, StockBarsSlice) {
  InputArgs parsed;
  std::string err;
  ASSERT_TRUE(parse_input_args(test::stock_bars_args(), parsed, &err)) << err;
  ASSERT_EQ(parsed.inputs.size(), 1u);
  EXPECT_EQ(parsed.inputs[0].format, InputFormat::Csv);
  StreamTable streams = make_streams();
  auto r = open_reader(parsed.inputs[0], streams, EngineUnit::Ms, &err);
  ASSERT_TRUE(r) << err;
  auto got = drain(*r, streams);
  ASSERT_EQ(got.size(), 5000u);  // zcat | tail -n +2 | wc -l → 5000
  EXPECT_EQ(got.front(), "Stock[1704205740000,1704205740000] NDSN 262.1 302");
  EXPECT_EQ(got.back(), "Stock[1704387960000,1704387960000] GWW 816.37 284");
}

// ---------------------------------------------------------------------------------------------
// Merge

TEST(MergeReader, OrdersByT1StableByReaderAndPassesErrorsThrough) {
  StreamTable streams = make_streams();
  std::string err;
  std::vector<std::unique_ptr<EventReader>> rs;
  rs.push_back(mem_reader(spec_of(InputFormat::Cayuga, "", "a"),
                          "a1,1,Trade,1,1\na3,1,Trade,3,3\na3b,1,Trade,3,3\na5,1,Trade,5,5\n",
                          streams, &err));
  rs.push_back(mem_reader(spec_of(InputFormat::Cayuga, "", "b"), "b3,1,Trade,3,3\nb4,1,Trade,4,4\n",
                          streams, &err));
  rs.push_back(mem_reader(spec_of(InputFormat::Cayuga, "", "c"),
                          "c2,1,Trade,2,2\nbad\nc3,1,Trade,3,3\nc1,1,Trade,1,1\n", streams, &err));
  rs.push_back(mem_reader(spec_of(InputFormat::Cayuga, "", "d"), "", streams, &err));
  MergeReader m(std::move(rs));
  EXPECT_EQ(drain(m, streams),
            (std::vector<std::string>{
                "Trade[1,1] a1 1", "Trade[2,2] c2 1",
                "ERR c:2: malformed line: expected v1,...,vn,StreamName,t0,t1",
                // t1 = 3: reader a first (both of its events), then b, then c.
                "Trade[3,3] a3 1", "Trade[3,3] a3b 1", "Trade[3,3] b3 1", "Trade[3,3] c3 1",
                // c goes back in time: merged as is, not reordered.
                "Trade[1,1] c1 1", "Trade[4,4] b4 1", "Trade[5,5] a5 1"}));
}

TEST(MergeReader, LateErrorNamesTheFileAndLineOfTheLastEvent) {
  StreamTable streams = make_streams();
  std::string err;
  std::vector<std::unique_ptr<EventReader>> rs;
  rs.push_back(mem_reader(spec_of(InputFormat::Cayuga, "", "events.txt"),
                          "IBM,10,1,Stock,1,1\n\nIBM,11,1,Stock,3,3\nIBM,12,1,Stock,2,2\n", streams,
                          &err));
  InputSpec csv = spec_of(InputFormat::Csv, "Trade", "t.csv");
  rs.push_back(mem_reader(csv, "t,Sym,Qty\n5,\"multi\nline\",1\n", streams, &err));
  MergeReader m(std::move(rs));
  InputEvent ev;
  std::vector<uint64_t> lines;
  while (m.next(ev) == EventReader::Status::Event) lines.push_back(m.line());
  // events.txt lines 1, 3 (after a blank line), 4; then t.csv's record starting at line 2.
  EXPECT_EQ(lines, (std::vector<uint64_t>{1, 3, 4, 2}));
  MergeReader m2([&] {
    std::vector<std::unique_ptr<EventReader>> v;
    v.push_back(mem_reader(spec_of(InputFormat::Cayuga, "", "events.txt"),
                           "IBM,10,1,Stock,1,1\nIBM,11,1,Stock,3,3\nIBM,12,1,Stock,2,2\n", streams,
                           &err));
    return v;
  }());
  for (int i = 0; i < 3; ++i) ASSERT_EQ(m2.next(ev), EventReader::Status::Event);
  EXPECT_EQ(m2.late_error(ev.row.t1, 3).to_string(),
            "events.txt:3: late event: t1 2 is before the current time 3 (input must be in "
            "non-decreasing t1)");
}

// ---------------------------------------------------------------------------------------------
// Input options

TEST(InputArgs, ExamplesFromTheCommandLine) {
  std::vector<std::string> args = {"script.cel",
                                   "--events",
                                   "all.txt",
                                   "--input",
                                   "Stock=bars.csv.gz",
                                   "--time-column",
                                   "epoch_ms",
                                   "--time-format",
                                   "ms",
                                   "--map",
                                   "Name=sym",
                                   "--map=Price=close",
                                   "--input",
                                   "Logins=OpenSSH_2k.log",
                                   "--regex",
                                   kSshRegex,
                                   "--time-column",
                                   "ts",
                                   "--time-format",
                                   "%b %d %H:%M:%S",
                                   "--year=2024",
                                   "--no-skip-unmatched",
                                   "--input",
                                   "S=file.jsonl",
                                   "--input",
                                   "-",
                                   "--format",
                                   "jsonl",
                                   "--input",
                                   "x=y=z.ndjson.gz",
                                   "--output",
                                   "out.jsonl"};
  InputArgs p;
  std::string err;
  ASSERT_TRUE(parse_input_args(args, p, &err)) << err;
  ASSERT_EQ(p.inputs.size(), 6u);
  EXPECT_EQ(p.rest, (std::vector<std::string>{"script.cel", "--output", "out.jsonl"}));
  EXPECT_EQ(p.inputs[0].path, "all.txt");
  EXPECT_EQ(p.inputs[0].stream, "");
  EXPECT_EQ(p.inputs[0].format, InputFormat::Cayuga);
  EXPECT_EQ(p.inputs[1].stream, "Stock");
  EXPECT_EQ(p.inputs[1].path, "bars.csv.gz");
  EXPECT_EQ(p.inputs[1].format, InputFormat::Csv);
  EXPECT_EQ(p.inputs[1].time_column, "epoch_ms");
  EXPECT_EQ(p.inputs[1].time_format, "ms");
  EXPECT_EQ(p.inputs[1].map, (std::vector<std::pair<std::string, std::string>>{
                                 {"Name", "sym"}, {"Price", "close"}}));
  EXPECT_EQ(p.inputs[2].format, InputFormat::Regex);
  EXPECT_EQ(p.inputs[2].regex, kSshRegex);
  EXPECT_EQ(p.inputs[2].year, 2024);
  EXPECT_FALSE(p.inputs[2].skip_unmatched);
  EXPECT_EQ(p.inputs[3].format, InputFormat::Jsonl);
  EXPECT_EQ(p.inputs[3].stream, "S");
  EXPECT_EQ(p.inputs[4].path, "-");
  EXPECT_EQ(p.inputs[4].format, InputFormat::Jsonl);
  EXPECT_EQ(p.inputs[5].stream, "x");
  EXPECT_EQ(p.inputs[5].path, "y=z.ndjson.gz");
  EXPECT_EQ(p.inputs[5].format, InputFormat::Jsonl);
}

TEST(InputArgs, Errors) {
  auto err_of = [](std::vector<std::string> args) {
    InputArgs p;
    std::string err;
    return parse_input_args(args, p, &err) ? std::string("ok") : err;
  };
  EXPECT_EQ(err_of({"--map", "A=b"}), "--map must follow an --input or --events");
  EXPECT_EQ(err_of({"--input"}), "--input needs a value");
  EXPECT_EQ(err_of({"--input", "S=x.csv", "--map", "A"}),
            "--map expects Attribute=source, got 'A'");
  EXPECT_EQ(err_of({"--input", "S=x.csv", "--map", "A=b", "--map", "A=c"}),
            "--map: attribute A is mapped twice");
  EXPECT_EQ(err_of({"--input", "x.txt", "--format", "xml"}),
            "unknown input format 'xml' (cayuga, csv, jsonl, regex)");
  EXPECT_EQ(err_of({"--input", "S=x.log", "--format", "regex"}),
            "x.log: a regex input needs --regex");
  EXPECT_EQ(err_of({"--input", "S=x.log", "--regex", "a", "--format", "csv"}),
            "x.log: --regex given but the format is csv");
  EXPECT_EQ(err_of({"--input", "S=x.log", "--year", "0"}),
            "--year expects a year 1..9999, got '0'");
  EXPECT_EQ(err_of({"--skip-unmatched"}), "--skip-unmatched must follow an --input");
  EXPECT_EQ(err_of({"--events", "all.txt", "--map", "A=b"}),
            "all.txt: --time-column, --time-format and --map do not apply to Cayuga-format input "
            "(v1,...,vn,Stream,t0,t1 in engine units)");
}

// ---------------------------------------------------------------------------------------------
// Writers

std::string write_all(OutputFormat f,
                      const std::vector<std::tuple<std::string, const Schema*, Row>>& evs) {
  auto sink = std::make_unique<StringSink>();
  StringSink* s = sink.get();
  auto w = make_writer(f, std::move(sink));
  for (const auto& [stream, schema, row] : evs) w->write(stream, *schema, row);
  EXPECT_TRUE(w->flush());
  return s->data;
}

const Schema kFloats{{{"a", Type::Float},
                      {"b", Type::Float},
                      {"c", Type::Float},
                      {"d", Type::Float},
                      {"e", Type::Float},
                      {"f", Type::Float},
                      {"g", Type::Float}}};
const Schema kStrings{{{"s", Type::String}, {"i", Type::Int}}};

Row float_row() {
  return Row{1,
             2,
             {float_slot(0.1), float_slot(1e300), float_slot(10.0), float_slot(-0.0),
              float_slot(std::numeric_limits<double>::quiet_NaN()),
              float_slot(std::numeric_limits<double>::infinity()),
              float_slot(-std::numeric_limits<double>::infinity())}};
}

const char kNasty[] =
    "q\"b\\n\nt\tc\x01 \xC3\xA9 bad\xFF trunc\xE2\x82 sur\xED\xA0\x80 ok\xF0\x9F\x98\x80";

TEST(Writers, JsonLines) {
  Row s{5, 9, {string_slot(intern(std::string(kNasty, sizeof kNasty - 1))), int_slot(-3)}};
  EXPECT_EQ(
      write_all(OutputFormat::Jsonl, {{"Pairs", &kFloats, float_row()}, {"S\"x", &kStrings, s}}),
      "{\"stream\":\"Pairs\",\"t0\":1,\"t1\":2,\"a\":0.1,\"b\":1e+300,\"c\":10,\"d\":-0,"
      "\"e\":null,\"f\":null,\"g\":null}\n"
      "{\"stream\":\"S\\\"x\",\"t0\":5,\"t1\":9,\"s\":\"q\\\"b\\\\n\\nt\\tc\\u0001 \xC3\xA9 "
      "bad\\ufffd trunc\\ufffd\\ufffd sur\\ufffd\\ufffd\\ufffd ok\xF0\x9F\x98\x80\",\"i\":-3}\n");
}

TEST(Writers, SpecExampleShape) {
  // CEL.md §9: {"stream":"Rising","t0":1,"t1":3,"Name":"IBM","Start":10,"Last":11,"cnt":2}
  const Schema rising{
      {{"Name", Type::String}, {"Start", Type::Float}, {"Last", Type::Float}, {"cnt", Type::Int}}};
  Row r{1, 3, {string_slot(intern("IBM")), float_slot(10.0), float_slot(11.0), int_slot(2)}};
  EXPECT_EQ(write_all(OutputFormat::Jsonl, {{"Rising", &rising, r}}),
            "{\"stream\":\"Rising\",\"t0\":1,\"t1\":3,\"Name\":\"IBM\",\"Start\":10,\"Last\":11,"
            "\"cnt\":2}\n");
}

TEST(Writers, Csv) {
  Row a{1, 1, {string_slot(intern("plain")), int_slot(1)}};
  Row b{2, 3, {string_slot(intern("a,\"b\"\nc")), int_slot(2)}};
  EXPECT_EQ(write_all(OutputFormat::Csv, {{"S", &kStrings, a},
                                          {"S", &kStrings, b},
                                          {"F", &kFloats, float_row()},
                                          {"S", &kStrings, a}}),
            "stream,t0,t1,s,i\n"
            "S,1,1,plain,1\n"
            "S,2,3,\"a,\"\"b\"\"\nc\",2\n"
            "stream,t0,t1,a,b,c,d,e,f,g\n"
            "F,1,2,0.1,1e+300,10,-0,nan,inf,-inf\n"
            "stream,t0,t1,s,i\n"
            "S,1,1,plain,1\n");
}

TEST(Writers, CayugaFormatRoundTrips) {
  Row a{1, 1, {string_slot(intern("IBM")), float_slot(10.0), int_slot(1)}};
  Row b{2, 5, {string_slot(intern(" it's, odd")), float_slot(0.1), int_slot(-7)}};
  std::string text =
      write_all(OutputFormat::Cayuga, {{"Stock", &kStock, a}, {"Stock", &kStock, b}});
  EXPECT_EQ(text, "IBM,10,1,Stock,1,1\n' it''s, odd',0.1,-7,Stock,2,5\n");
  EXPECT_EQ(read_text(spec_of(InputFormat::Cayuga), text),
            (std::vector<std::string>{"Stock[1,1] IBM 10 1", "Stock[2,5]  it's, odd 0.1 -7"}));
  EXPECT_EQ(write_all(OutputFormat::Cayuga, {{"F", &kFloats, float_row()}}),
            "0.1,1e+300,10,-0,nan,inf,-inf,F,1,2\n");
}

TEST(Writers, OriginalWitnessLines) {
  Row a{1, 3, {string_slot(intern("IBM")), float_slot(10.0), int_slot(1)}};
  EXPECT_EQ(write_all(OutputFormat::Witness, {{"T5", &kStock, a}}),
            "10,WITNESS,Name,IBM,Price,10,Volume,1,T5,1,3,\n");
}

// put_double's fast path (few decimals) against std::to_chars, whose bytes it must reproduce:
// decimals with 0 to 8 places around the fast path's limits, the cases where scientific notation
// is shorter, and arbitrary bit patterns.
TEST(Writers, PutDoubleIsToChars) {
  auto same = [](double v) {
    char fast[40], reference[40];
    const std::string got(fast, put_double(fast, v));
    const std::string want(reference, std::to_chars(reference, reference + 40, v).ptr);
    return got == want ? std::string() : got + " instead of " + want;
  };
  const double fixed[] = {
      0.0,      -0.0,         1,          -1,        0.5,     99.9472,    1e-6,
      1e-7,     0.0001,       0.00012,    0.001,     10000,   100000,     1200000,
      12000000, 2147483647.5, 2147483648, 0.1 + 0.2, 1.0 / 3, 123456.789, 999999.9999999,
      5e-324,   1e300,        -42.25};
  for (double v : fixed) EXPECT_EQ(same(v), "") << v;
  std::mt19937_64 rng(5);
  for (int i = 0; i < 1000000; ++i) {
    double v;
    if (i % 4 == 3) {
      uint64_t bits = rng();
      std::memcpy(&v, &bits, sizeof v);
      if (!std::isfinite(v)) continue;
    } else {
      const int places = static_cast<int>(rng() % 9);
      const uint64_t digits = rng() % (uint64_t{1} << (1 + rng() % 50));
      v = static_cast<double>(digits) / std::pow(10.0, places);
      if (rng() % 2) v = -v;
    }
    ASSERT_EQ(same(v), "") << i;
  }
}

TEST(Writers, FormatNames) {
  EXPECT_EQ(parse_output_format("jsonl"), OutputFormat::Jsonl);
  EXPECT_EQ(parse_output_format("witness"), OutputFormat::Witness);
  EXPECT_EQ(parse_output_format("xml"), std::nullopt);
  EXPECT_STREQ(to_string(OutputFormat::Csv), "csv");
}

// ---------------------------------------------------------------------------------------------
// Batches: cut_batch + parse_batch, read back through a BatchReader, give what next() gives

// drain() with the reader's line() and skipped() after every item, so that the counts are
// compared at each step, not only at the end.
std::vector<std::string> drain_counted(EventReader& r, const StreamTable& streams) {
  std::vector<std::string> out;
  InputEvent ev;
  for (int guard = 0; guard < 100000; ++guard) {
    EventReader::Status st = r.next(ev);
    std::string item = st == EventReader::Status::Event   ? render(streams, ev)
                       : st == EventReader::Status::Error ? "ERR " + r.error().to_string()
                                                          : "END";
    out.push_back(item + " @" + std::to_string(r.line()) + " skipped " +
                  std::to_string(r.skipped()));
    if (st == EventReader::Status::End) return out;
  }
  ADD_FAILURE() << "reader did not end";
  return out;
}

std::vector<std::string> drain_one_by_one(const InputSpec& spec, const std::string& text) {
  StreamTable streams = make_streams();
  std::string err;
  auto r = mem_reader(spec, text, streams, &err);
  if (!r) return {"OPEN " + err};
  return drain_counted(*r, streams);
}

// Cuts the whole input in batches of at most `records` records / `bytes` bytes, parses the
// batches last to first (parsing must not depend on the batches before), and reads them back.
std::vector<std::string> drain_batched(const InputSpec& spec, const std::string& text,
                                       size_t records, size_t bytes) {
  StreamTable streams = make_streams();
  std::string err;
  auto r = mem_reader(spec, text, streams, &err);
  if (!r) return {"OPEN " + err};
  std::vector<RecordBatch> cuts;
  do {
    cuts.emplace_back();
    r->cut_batch(cuts.back(), records, bytes);
  } while (!cuts.back().ended && cuts.size() < 100000);
  std::vector<EventBatch> parsed(cuts.size());
  for (size_t i = cuts.size(); i-- > 0;) r->parse_batch(cuts[i], parsed[i]);
  BatchReader b(spec.path);
  EXPECT_FALSE(b.ready());
  for (EventBatch& p : parsed) b.push(p);
  EXPECT_TRUE(b.ready());
  return drain_counted(b, streams);
}

// Every batch size gives the one-by-one result.
void expect_batches_match(const InputSpec& spec, const std::string& text) {
  const std::vector<std::string> want = drain_one_by_one(spec, text);
  for (size_t records : {1, 2, 3, 5, 1000})
    for (size_t bytes : {1, 40, 1 << 20})
      EXPECT_EQ(drain_batched(spec, text, records, bytes), want)
          << "records " << records << ", bytes " << bytes;
}

TEST(Batches, CayugaFormat) {
  const std::string text =
      "IBM,10,1,Stock,1,1\n\n   \nbad\nZ,2,Trade,2,2\n'a,b',1,Trade,3,3\nIBM,x,1,Stock,4,4\n"
      "Q,1,Nope,5,5\nIBM,11,2,Stock,6,6\n'open,1,Trade,7,7\nIBM,12,3,Stock,8,8";
  expect_batches_match(spec_of(InputFormat::Cayuga, "", "e.txt"), text);
  expect_batches_match(spec_of(InputFormat::Cayuga, "Trade", "e.txt"), text);
  // The reference itself, so that the comparison cannot pass on two empty results.
  EXPECT_EQ(drain_one_by_one(spec_of(InputFormat::Cayuga, "", "e.txt"), text).size(), 10u);
}

TEST(Batches, CsvWithRecordsOverSeveralLinesAndAnOpenQuoteAtTheEnd) {
  const std::string text =
      "t,Sym,Qty\n1,A,1\n2,\"multi\nline\n\",2\n\n3,B\n4,\"q\"\"x\",4\n5,C,zz\n6,D,6\n"
      "7,\"open\n8,E,8\n";
  expect_batches_match(spec_of(InputFormat::Csv, "Trade", "t.csv"), text);
  const auto want = drain_one_by_one(spec_of(InputFormat::Csv, "Trade", "t.csv"), text);
  ASSERT_EQ(want.size(), 8u);
  EXPECT_EQ(want[1], "Trade[2,2] multi\nline\n 2 @3 skipped 0");
  EXPECT_EQ(want[6],
            "ERR t.csv:11: malformed CSV: quoted field not closed before the end of the file @10 "
            "skipped 0");
}

TEST(Batches, JsonLines) {
  const std::string text =
      "{\"stream\":\"Trade\",\"t\":1,\"Sym\":\"A\",\"Qty\":1}\n"
      "{\"stream\":\"Stock\",\"t\":2,\"Name\":\"B\",\"Price\":null,\"Volume\":2}\n"
      "{\"stream\":\"Trade\",\"t\":3,\"Sym\":\"\\u00e9\",\"Qty\":1.5}\n"
      "[1]\n"
      "{\"stream\":\"Trade\",\"t0\":5,\"t1\":4,\"Sym\":\"C\",\"Qty\":1}\n"
      "{\"stream\":\"Trade\",\"t\":6,\"Sym\":\"D\",\"Qty\":6}";
  expect_batches_match(spec_of(InputFormat::Jsonl, "", "j.jsonl"), text);
  EXPECT_EQ(drain_one_by_one(spec_of(InputFormat::Jsonl, "", "j.jsonl"), text).size(), 7u);
}

TEST(Batches, RegexCountsSkippedLinesWhereNextDoes) {
  std::string text;
  for (int i = 0; i < 5; ++i) text += kSshLines;
  text += "Dec 99 07:02:47 LabSZ sshd[1]: Failed password for root from 1.2.3.4 port 1 ssh2\n";
  text += "no match at the end\nnor here\n";
  InputSpec s = ssh_spec("auth.log");
  expect_batches_match(s, text);
  const auto want = drain_one_by_one(s, text);
  ASSERT_EQ(want.size(), 12u);
  EXPECT_EQ(want[2], "Logins[29660148000,29660148000] webmaster 173.234.31.186 @5 skipped 2");
  EXPECT_EQ(want.back(), "END @15 skipped 7");
  s.skip_unmatched = false;
  expect_batches_match(s, text);
}

// A source that fails after its data: the cutting half reports the I/O error, then ends.
class FailingSource final : public ByteSource {
 public:
  explicit FailingSource(std::string data) : data_(std::move(data)) {}
  long read(char* buf, size_t cap) override {
    if (done_) return -1;
    done_ = true;
    size_t n = std::min(cap, data_.size());
    std::memcpy(buf, data_.data(), n);
    return static_cast<long>(n);
  }
  std::string error() const override { return "disk on fire"; }

 private:
  std::string data_;
  bool done_ = false;
};

// Cuts all of `r` into batches of at most `records` records, parses them in order and pushes
// them into `into`, as the CLI's pipeline does.
template <class Reader>
void push_all_batches(Reader& r, size_t records, BatchReader& into) {
  for (bool ended = false; !ended;) {
    RecordBatch rb;
    EventBatch eb;
    r.cut_batch(rb, records, 1 << 20);
    ended = rb.ended;
    r.parse_batch(rb, eb);
    into.push(eb);
  }
}

TEST(Batches, ReadErrorComesLastThenTheEnd) {
  StreamTable streams = make_streams();
  const std::string data = "IBM,10,1,Stock,1,1\nIBM,11,1,Stock,2,2\nIBM,1";
  std::string err;
  auto r = open_reader(spec_of(InputFormat::Cayuga, "", "e.txt"),
                       std::make_unique<FailingSource>(data), streams, EngineUnit::Ms, &err);
  ASSERT_TRUE(r) << err;
  const auto want = drain_counted(*r, streams);
  EXPECT_EQ(want, (std::vector<std::string>{
                      "Stock[1,1] IBM 10 1 @1 skipped 0", "Stock[2,2] IBM 11 1 @2 skipped 0",
                      "ERR e.txt: read error: disk on fire @2 skipped 0", "END @2 skipped 0"}));
  for (size_t records : {1, 2, 10}) {
    auto b = open_reader(spec_of(InputFormat::Cayuga, "", "e.txt"),
                         std::make_unique<FailingSource>(data), streams, EngineUnit::Ms, &err);
    BatchReader back("e.txt");
    push_all_batches(*b, records, back);
    EXPECT_EQ(drain_counted(back, streams), want) << records;
  }
}

// peek(k) sees the k-th item next() will return, when it is an event of a batch already pushed;
// a merge of one BatchReader sees what that reader sees, a merge of two sees nothing.
TEST(Batches, PeekSeesWhatNextWillReturn) {
  StreamTable streams = make_streams();
  const std::string text =
      "IBM,10,1,Stock,1,1\nbad\nIBM,11,2,Stock,2,2\nZ,2,Trade,3,3\nIBM,12,3,Stock,4,4\n"
      "IBM,13,4,Stock,5,5\nIBM,14,5,Stock,6,6\n";
  auto batched = [&](size_t records) {
    std::string err;
    auto r = mem_reader(spec_of(InputFormat::Cayuga, "", "e.txt"), text, streams, &err);
    EXPECT_TRUE(r) << err;
    auto b = std::make_unique<BatchReader>("e.txt");
    push_all_batches(*r, records, *b);
    return b;
  };
  // The items next() returns: an event rendered, or "" for anything else.
  std::vector<std::string> items;
  {
    auto b = batched(2);
    InputEvent ev;
    for (EventReader::Status st; (st = b->next(ev)) != EventReader::Status::End;)
      items.push_back(st == EventReader::Status::Event ? render(streams, ev) : "");
  }
  ASSERT_EQ(items.size(), 7u);
  auto peeked = [&](const EventReader& r, size_t k) -> std::string {
    EventReader::Lookahead next;
    if (!r.peek(k, next)) return "(none)";
    EXPECT_FALSE(next.matched);
    InputEvent ev;
    ev.stream = next.stream;
    ev.row.values.assign(next.values, next.values + streams.find_id(next.stream)->schema->size());
    return render(streams, ev);
  };
  // Renders without times (peek gives stream and values only).
  auto untimed = [](std::string item) {
    if (item.empty() || item == "(none)") return std::string("(none)");
    return item.erase(item.find('['), item.find(']') - item.find('[') + 1);
  };
  for (size_t records : {1, 2, 100}) {
    auto b = batched(records);
    InputEvent ev;
    for (size_t at = 0; at < items.size(); ++at) {
      for (size_t k = 0; k < 9; ++k) {
        const std::string want = at + k < items.size() ? untimed(items[at + k]) : "(none)";
        EXPECT_EQ(untimed(peeked(*b, k)), want)
            << "records " << records << " at " << at << " k " << k;
      }
      b->next(ev);
    }
  }
  std::vector<std::unique_ptr<EventReader>> one;
  one.push_back(batched(3));
  MergeReader merge(std::move(one));
  InputEvent ev;
  ASSERT_EQ(merge.next(ev), EventReader::Status::Event);
  EXPECT_EQ(peeked(merge, 0), "(none)");  // the bad line
  EXPECT_EQ(untimed(peeked(merge, 1)), "Stock IBM 11 2");
  std::vector<std::unique_ptr<EventReader>> two;
  two.push_back(batched(3));
  two.push_back(batched(3));
  MergeReader merge2(std::move(two));
  ASSERT_EQ(merge2.next(ev), EventReader::Status::Event);
  EXPECT_EQ(peeked(merge2, 1), "(none)");
}

// A batch whose events were matched (EventBatch::matched) shows each event's own candidates
// through peek(); a batch that was not shows none.
TEST(Batches, PeekSeesEachEventsCandidates) {
  StreamTable streams = make_streams();
  const std::string text = "IBM,10,1,Stock,1,1\nbad\nIBM,11,2,Stock,2,2\nIBM,12,3,Stock,3,3\n";
  std::string err;
  auto r = mem_reader(spec_of(InputFormat::Cayuga, "", "e.txt"), text, streams, &err);
  ASSERT_TRUE(r) << err;
  BatchReader b("e.txt");
  for (bool first = true, ended = false; !ended; first = false) {
    RecordBatch rb;
    EventBatch eb;
    r->cut_batch(rb, 3, 1 << 20);
    ended = rb.ended;
    r->parse_batch(rb, eb);
    if (first) {  // lines 1-3 matched, each event given {line, line + 100}; the rest not
      for (EventBatch::Item& item : eb.items) {
        if (item.status != EventReader::Status::Event) continue;
        item.cand_first = static_cast<uint32_t>(eb.candidates.size());
        item.cand_count = 2;
        eb.candidates.push_back(static_cast<uint32_t>(item.line));
        eb.candidates.push_back(static_cast<uint32_t>(item.line + 100));
      }
      eb.matched = true;
      eb.generation = 7;
    }
    b.push(eb);
  }
  auto peeked = [&](size_t k) {
    EventReader::Lookahead next;
    if (!b.peek(k, next)) return std::string("(none)");
    if (!next.matched) return std::string("unmatched");
    std::string out = "g" + std::to_string(next.generation);
    for (uint32_t c : next.candidates) out += " " + std::to_string(c);
    return out;
  };
  EXPECT_EQ(peeked(0), "g7 1 101");
  EXPECT_EQ(peeked(1), "(none)");  // the bad line
  EXPECT_EQ(peeked(2), "g7 3 103");
  EXPECT_EQ(peeked(3), "unmatched");
  EXPECT_EQ(peeked(4), "(none)");
}

// Several inputs through MergeReader: over the readers, and over BatchReaders fed one batch at
// a time (round robin) and read only while the merge is ready(), as the CLI's pipeline does.
TEST(Batches, MergeOverBatchReadersIsTheMergeOverReaders) {
  const std::string a =
      "a1,1,Trade,1,1\na3,1,Trade,3,3\nbad\na3b,1,Trade,3,3\na5,1,Trade,5,5\n"
      "a9,1,Trade,9,9\n";
  const std::string b = "t,Sym,Qty\n3,b3,1\n4,b4,x\n4,b4b,1\n2,back,1\n9,b9,1\n";
  std::string c;
  for (int i = 0; i < 3; ++i) c += kSshLines;
  const std::vector<std::pair<InputSpec, std::string>> inputs = {
      {spec_of(InputFormat::Cayuga, "", "a"), a},
      {spec_of(InputFormat::Csv, "Trade", "b.csv"), b},
      {ssh_spec("c.log"), c},
      {spec_of(InputFormat::Cayuga, "", "empty"), ""}};
  StreamTable streams = make_streams();
  std::string err;
  auto open_all = [&] {
    std::vector<std::unique_ptr<SplitReader>> rs;
    for (const auto& [spec, text] : inputs) rs.push_back(mem_reader(spec, text, streams, &err));
    return rs;
  };
  std::vector<std::unique_ptr<EventReader>> direct;
  for (auto& r : open_all()) direct.push_back(std::move(r));
  MergeReader reference(std::move(direct));
  const auto want = drain_counted(reference, streams);
  ASSERT_EQ(want.size(), 18u);  // a: 5 events and an error, b: 4 and an error, c: 6, the end
  EXPECT_EQ(want[0], "Trade[1,1] a1 1 @1 skipped 1");  // c's first head was read: 1 skipped

  for (size_t records : {1, 2, 4}) {
    auto sources = open_all();
    std::vector<BatchReader*> parsed;
    std::vector<std::unique_ptr<EventReader>> fed;
    for (auto& r : sources) {
      fed.push_back(std::make_unique<BatchReader>(std::string(r->name())));
      parsed.push_back(static_cast<BatchReader*>(fed.back().get()));
    }
    MergeReader m(std::move(fed));
    std::vector<bool> cut_all(sources.size(), false);
    std::vector<std::string> got;
    size_t turn = 0;
    InputEvent ev;
    while (got.empty() || got.back().rfind("END", 0) != 0) {
      if (m.ready()) {
        EventReader::Status st = m.next(ev);
        std::string item = st == EventReader::Status::Event   ? render(streams, ev)
                           : st == EventReader::Status::Error ? "ERR " + m.error().to_string()
                                                              : "END";
        got.push_back(item + " @" + std::to_string(m.line()) + " skipped " +
                      std::to_string(m.skipped()));
        continue;
      }
      size_t i = turn;
      while (cut_all[i % sources.size()] && i < turn + sources.size()) ++i;
      ASSERT_LT(i, turn + sources.size()) << "not ready with every input read to its end";
      i %= sources.size();
      RecordBatch rb;
      EventBatch eb;
      sources[i]->cut_batch(rb, records, 1 << 20);
      cut_all[i] = rb.ended;
      sources[i]->parse_batch(rb, eb);
      parsed[i]->push(eb);
      turn = i + 1;
    }
    EXPECT_EQ(got, want) << records;
  }
}

// Batches of one reader parsed on several threads at once: every string gets the interner's one
// id, also when the readers' per-thread string caches overflow (more distinct strings than slots).
TEST(Batches, ParsedOnSeveralThreadsAtOnce) {
  constexpr int kLines = 60000;
  std::string text;
  for (int i = 0; i < kLines; ++i)
    text += "threads_" + std::to_string((i * 7919) % 40000) + "," + std::to_string(i) + ",Trade," +
            std::to_string(i) + "," + std::to_string(i) + "\n";
  StreamTable streams = make_streams();
  std::string err;
  auto r = mem_reader(spec_of(InputFormat::Cayuga, "", "e.txt"), text, streams, &err);
  ASSERT_TRUE(r) << err;
  std::vector<RecordBatch> cuts;
  do {
    cuts.emplace_back();
    r->cut_batch(cuts.back(), 1000, 1 << 20);
  } while (!cuts.back().ended);
  std::vector<EventBatch> parsed(cuts.size());
  std::vector<std::thread> threads;
  for (size_t t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (size_t i = t; i < cuts.size(); i += 4) r->parse_batch(cuts[i], parsed[i]);
    });
  for (auto& th : threads) th.join();
  BatchReader back("e.txt");
  for (EventBatch& p : parsed) back.push(p);
  InputEvent ev;
  for (int i = 0; i < kLines; ++i) {
    ASSERT_EQ(back.next(ev), EventReader::Status::Event);
    const std::string want = "threads_" + std::to_string((i * 7919) % 40000);
    ASSERT_EQ(ev.row.values[0].s, intern(want)) << i;
    ASSERT_EQ(interned(ev.row.values[0].s), want) << i;
    ASSERT_EQ(ev.row.values[1].i, i);
  }
  EXPECT_EQ(back.next(ev), EventReader::Status::End);
}

// format_row() over chunks of rows, handed over with write_formatted(), writes what write()
// writes row by row, also across a chunk boundary where the stream changes (CSV headers) and
// for rows written with write() after formatted ones.
TEST(Writers, FormattedChunksAreTheRowByRowOutput) {
  Row a{1, 1, {string_slot(intern("a,'\"b")), int_slot(1)}};
  Row s{2, 3, {string_slot(intern("IBM")), float_slot(0.5), int_slot(2)}};
  const std::vector<std::tuple<std::string, const Schema*, Row>> rows = {
      {"S", &kStrings, a},          {"S", &kStrings, a}, {"Stock", &kStock, s},
      {"Stock", &kStock, s},        {"S", &kStrings, a}, {"F", &kFloats, float_row()},
      {"F", &kFloats, float_row()}, {"S", &kStrings, a}};
  for (OutputFormat f :
       {OutputFormat::Jsonl, OutputFormat::Csv, OutputFormat::Cayuga, OutputFormat::Witness}) {
    const std::string want = write_all(f, rows);
    for (size_t chunk = 1; chunk <= 3; ++chunk) {
      auto sink = std::make_unique<StringSink>();
      StringSink* out = sink.get();
      auto w = make_writer(f, std::move(sink));
      std::optional<std::string_view> previous;
      // Formatted chunks for all rows but the last, which goes through write().
      for (size_t i = 0; i + 1 < rows.size(); i += chunk) {
        std::string bytes;
        size_t end = std::min(i + chunk, rows.size() - 1);
        for (size_t k = i; k < end; ++k) {
          const auto& [stream, schema, row] = rows[k];
          format_row(bytes, f, stream, *schema, row, previous);
          previous = std::get<0>(rows[k]);
        }
        w->write_formatted(bytes, std::get<0>(rows[end - 1]));
      }
      const auto& [stream, schema, row] = rows.back();
      w->write(stream, *schema, row);
      ASSERT_TRUE(w->flush());
      EXPECT_EQ(out->data, want) << to_string(f) << ", chunks of " << chunk;
    }
  }
  // The reference has the headers to get right: 8 rows, 5 stream changes.
  const std::string csv = write_all(OutputFormat::Csv, rows);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 8 + 5);
}

}  // namespace
}  // namespace cayuga
