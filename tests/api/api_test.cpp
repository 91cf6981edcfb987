// The embedding API (include/cayuga/cayuga.h): scripts, errors, typed pushes, subscriptions,
// pull queues, removal, late policy, statistics and the thread-safety contract.
#include <cayuga/cayuga.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace cep = cayuga::api;

namespace {

constexpr const char* kStock = "CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\n";

struct Collector {
  std::vector<std::string> rows;
  cep::Engine::Callback cb() {
    return [this](const cep::Output& o) { rows.push_back(o.to_json()); };
  }
};

TEST(Api, WorkedExampleThroughCallback) {
  cep::Engine e;
  auto r = e.add_script(std::string(kStock) +
                        "SELECT * FROM Stock NEXT{$1.Name = $2.Name} Stock PUBLISH T5;");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r.queries.size(), 1u);
  EXPECT_EQ(r.queries[0].id, 1u);
  EXPECT_EQ(r.queries[0].stream, "T5");
  Collector c;
  ASSERT_TRUE(e.subscribe("T5", c.cb()).ok());
  uint32_t s = *e.stream_id("Stock");
  EXPECT_TRUE(e.push(s, 1, {"IBM", 10, 1}).ok());  // an INT for a FLOAT is accepted
  EXPECT_TRUE(e.push(s, 2, {"MSFT", 20.0, 1}).ok());
  EXPECT_TRUE(e.push(s, 3, {"IBM", 11.0, 1}).ok());
  EXPECT_TRUE(e.push(s, 3, {"IBM", 12.0, 1}).ok());
  EXPECT_TRUE(e.push(s, 4, {"MSFT", 21.0, 1}).ok());
  e.finish();
  std::vector<std::string> want = {
      R"({"stream":"T5","t0":1,"t1":3,"Name_1":"IBM","Price_1":10,"Volume_1":1,"Name":"IBM","Price":11,"Volume":1})",
      R"({"stream":"T5","t0":1,"t1":3,"Name_1":"IBM","Price_1":10,"Volume_1":1,"Name":"IBM","Price":12,"Volume":1})",
      R"({"stream":"T5","t0":2,"t1":4,"Name_1":"MSFT","Price_1":20,"Volume_1":1,"Name":"MSFT","Price":21,"Volume":1})"};
  EXPECT_EQ(c.rows, want);
  cep::Stats st = e.stats();
  EXPECT_EQ(st.events_in, 5u);
  EXPECT_EQ(st.outputs, 3u);
  EXPECT_EQ(st.queries, 1u);
  EXPECT_EQ(st.subscriptions, 1u);
  EXPECT_EQ(e.push(s, 9, {"IBM", 1.0, 1}).code, cep::Code::Closed);
}

TEST(Api, ScriptErrorsAreValuesWithPositions) {
  cep::Engine e;
  ASSERT_TRUE(e.add_script(kStock).ok());
  auto r = e.add_script("SELECT Name\nFROM FILTER{Prize > 1}(Stock) PUBLISH X;");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.queries.empty());
  EXPECT_EQ(r.errors[0].line, 2u);
  EXPECT_GT(r.errors[0].column, 0u);
  EXPECT_NE(r.errors[0].message.find("Prize"), std::string::npos);
  auto p = e.add_script("SELECT FROM;");
  EXPECT_FALSE(p.ok());
  EXPECT_FALSE(e.stream_id("X").has_value());
  EXPECT_TRUE(e.queries().empty());
}

TEST(Api, PushValidation) {
  cep::Engine e;
  ASSERT_TRUE(e.add_script(std::string(kStock) + "SELECT * FROM Stock PUBLISH All;").ok());
  uint32_t s = *e.stream_id("Stock");
  EXPECT_EQ(e.push(s, 1, {"IBM", 1.0}).code, cep::Code::InvalidArgument);       // arity
  EXPECT_EQ(e.push(s, 1, {"IBM", "x", 1}).code, cep::Code::InvalidArgument);    // type
  EXPECT_EQ(e.push(s, 1, {"IBM", 1.0, 1.5}).code, cep::Code::InvalidArgument);  // FLOAT for INT
  EXPECT_EQ(e.push(99, 1, {"IBM", 1.0, 1}).code, cep::Code::InvalidArgument);   // no stream
  EXPECT_EQ(e.push(*e.stream_id("All"), 1, {"IBM", 1.0, 1}).code,
            cep::Code::InvalidArgument);  // a published stream is not an input
  std::vector<cep::Value> v{"IBM", 1.0, 1};
  EXPECT_EQ(e.push("Nope", 1, v).code, cep::Code::InvalidArgument);
  EXPECT_TRUE(e.push("Stock", 1, v).ok());
  EXPECT_EQ(e.stats().rejected, 5u);
  EXPECT_EQ(e.subscribe("Stock", [](const cep::Output&) {}).status.code, cep::Code::NotFound);
}

TEST(Api, LatePolicies) {
  for (auto policy : {cep::LatePolicy::DropAndCount, cep::LatePolicy::Error}) {
    cep::Options o;
    o.late = policy;
    cep::Engine e(o);
    ASSERT_TRUE(e.add_script(kStock).ok());
    uint32_t s = *e.stream_id("Stock");
    EXPECT_TRUE(e.push(s, 10, {"A", 1.0, 1}).ok());
    cep::Status st = e.push(s, 5, {"A", 1.0, 1});
    EXPECT_EQ(st.code, policy == cep::LatePolicy::Error ? cep::Code::Late : cep::Code::Ok);
    std::vector<cep::Value> v{"A", 1.0, 1};
    std::vector<cep::Event> batch{{s, 11, v}, {s, 3, v}, {s, 12, v}};
    cep::BatchResult br = e.push_batch(batch);
    if (policy == cep::LatePolicy::Error) {
      EXPECT_EQ(br.accepted, 2u);
      ASSERT_EQ(br.failures.size(), 1u);
      EXPECT_EQ(br.failures[0].index, 1u);
    } else {
      EXPECT_EQ(br.accepted, 3u);
      EXPECT_EQ(br.late, 1u);
    }
    EXPECT_EQ(e.stats().late_events, 2u);
    EXPECT_EQ(e.stats().events_in, 3u);
  }
}

// push_batch converts the whole batch first (to announce events ahead to the engine): bad and
// late events are still reported at their own index, in order, and the rows are those of the
// same events pushed one by one.
TEST(Api, BatchWithBadAndLateEventsIsPushOneByOne) {
  const std::string script =
      std::string(kStock) +
      "SELECT * FROM Stock NEXT{$1.Name = $2.Name AND $2.Price > $1.Price} Stock PUBLISH Up;";
  std::vector<std::vector<cep::Value>> values;
  std::vector<int64_t> times;
  for (int k = 0; k < 40; ++k) {
    values.push_back({k % 3 ? "A" : "B", double(k % 7), k});  // (literals: Values do not copy)
    times.push_back(k / 2);
  }
  values[5] = {"A", 1.0};        // arity
  values[17] = {"A", "x", 1};    // type
  times[23] = 2;                 // late
  values[38] = {"B", 1.0, 1.5};  // FLOAT for INT
  cep::Options o;
  o.late = cep::LatePolicy::Error;
  cep::Engine batched(o), single(o);
  Collector cb, cs;
  for (auto* e : {&batched, &single}) ASSERT_TRUE(e->add_script(script).ok());
  ASSERT_TRUE(batched.subscribe("Up", cb.cb()).ok());
  ASSERT_TRUE(single.subscribe("Up", cs.cb()).ok());
  const uint32_t s = *batched.stream_id("Stock");
  std::vector<cep::Event> batch;
  for (size_t k = 0; k < values.size(); ++k) batch.push_back(cep::Event{s, times[k], values[k]});
  const cep::BatchResult br = batched.push_batch(batch);
  std::vector<size_t> failed_one_by_one;
  for (size_t k = 0; k < batch.size(); ++k)
    if (!single.push(batch[k]).ok()) failed_one_by_one.push_back(k);
  std::vector<size_t> failed;
  for (const auto& f : br.failures) failed.push_back(f.index);
  EXPECT_EQ(failed, (std::vector<size_t>{5, 17, 23, 38}));
  EXPECT_EQ(failed, failed_one_by_one);
  EXPECT_EQ(br.failures[2].status.code, cep::Code::Late);
  EXPECT_EQ(br.accepted, 36u);
  batched.finish();
  single.finish();
  ASSERT_GT(cs.rows.size(), 10u);
  EXPECT_EQ(
      cs.rows[0],
      R"({"stream":"Up","t0":0,"t1":1,"Name_1":"A","Price_1":1,"Volume_1":1,"Name":"A","Price":2,"Volume":2})");
  EXPECT_EQ(cb.rows, cs.rows);
}

TEST(Api, RemoveQueryStopsDelivery) {
  cep::Engine e;
  ASSERT_TRUE(e.add_script(kStock).ok());
  auto a = e.add_script("SELECT Name FROM FILTER{Price > 1}(Stock) PUBLISH A;");
  auto b = e.add_script("SELECT Name FROM A PUBLISH B;");  // reads A
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(b.queries[0].id, 2u);
  Collector ca, cb;
  e.subscribe("A", ca.cb());
  e.subscribe("B", cb.cb());
  uint32_t s = *e.stream_id("Stock");
  e.push(s, 1, {"X", 2.0, 1});
  ASSERT_TRUE(e.remove_query(a.queries[0].id).ok());
  EXPECT_EQ(e.remove_query(a.queries[0].id).code, cep::Code::NotFound);
  EXPECT_EQ(e.remove_query(77).code, cep::Code::NotFound);
  e.push(s, 2, {"Y", 2.0, 1});
  EXPECT_EQ(ca.rows.size(), 1u);  // A is gone
  EXPECT_EQ(cb.rows.size(), 1u);  // so B, reading A, gets nothing new
  auto qs = e.queries();
  ASSERT_EQ(qs.size(), 2u);
  EXPECT_TRUE(qs[0].removed);
  EXPECT_FALSE(qs[1].removed);
  for (const auto& st : e.streams()) {
    if (st.name == "A") {
      EXPECT_FALSE(st.delivering);
    }
  }
  EXPECT_EQ(e.stats().removed_queries, 1u);  // (the second removal of A failed)
  EXPECT_EQ(e.stats().queries, 1u);
}

TEST(Api, QueueOverflowPolicies) {
  for (auto policy : {cep::Overflow::Close, cep::Overflow::DropNewest}) {
    cep::Engine e;
    ASSERT_TRUE(e.add_script(std::string(kStock) + "SELECT * FROM Stock PUBLISH All;").ok());
    auto q = e.subscribe_queue("All", 2, policy);
    ASSERT_TRUE(q.ok());
    uint32_t s = *e.stream_id("Stock");
    for (int t = 1; t <= 5; ++t) e.push(s, t, {"A", 1.0, t});
    EXPECT_EQ(q.value->size(), 2u);
    EXPECT_EQ(q.value->dropped(), 3u);
    EXPECT_EQ(q.value->closed(), policy == cep::Overflow::Close);
    cep::OutputRow row;
    ASSERT_TRUE(q.value->pop(row));
    EXPECT_EQ(row.t1, 1);
    EXPECT_EQ(row.values[2].as_int(), 1);
    EXPECT_EQ(row.values[0].as_string(), "A");
  }
}

TEST(Api, BlockingQueueWithConsumerThread) {
  cep::Engine e;
  ASSERT_TRUE(e.add_script(std::string(kStock) + "SELECT * FROM Stock PUBLISH All;").ok());
  auto q = e.subscribe_queue("All", 4, cep::Overflow::Block).value;
  std::atomic<int> got{0};
  std::thread consumer([&] {
    cep::OutputRow row;
    int64_t last = 0;
    while (got < 1000 && q->pop(row, std::chrono::milliseconds(5000))) {
      EXPECT_EQ(row.t1, last + 1);
      last = row.t1;
      ++got;
    }
  });
  uint32_t s = *e.stream_id("Stock");
  for (int t = 1; t <= 1000; ++t) ASSERT_TRUE(e.push(s, t, {"A", 1.0, t}).ok());
  consumer.join();
  EXPECT_EQ(got, 1000);
  EXPECT_EQ(q->dropped(), 0u);
}

TEST(Api, ConcurrentPushersAreSerialized) {
  cep::Engine e;
  ASSERT_TRUE(e.add_script(std::string(kStock) + "SELECT * FROM Stock PUBLISH All;").ok());
  std::atomic<int> outputs{0};
  e.subscribe("All", [&](const cep::Output&) { ++outputs; });
  uint32_t s = *e.stream_id("Stock");
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) e.push(s, 1, {"A", 1.0, i});  // same t: never late
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(outputs, 2000);
  EXPECT_EQ(e.stats().events_in, 2000u);
}

TEST(Api, ReentrantCallsAreRefused) {
  cep::Engine e;
  ASSERT_TRUE(e.add_script(std::string(kStock) + "SELECT * FROM Stock PUBLISH All;").ok());
  cep::Code inner = cep::Code::Ok;
  uint64_t seen = 99;
  e.subscribe("All", [&](const cep::Output&) {
    inner = e.push("Stock", 5, {"B", 1.0, 1}).code;
    seen = e.stats().events_in;  // read-only calls are allowed
  });
  e.push(*e.stream_id("Stock"), 1, {"A", 1.0, 1});
  EXPECT_EQ(inner, cep::Code::WouldDeadlock);
  EXPECT_EQ(seen, 1u);
}

TEST(Api, UnsubscribeAndQueueLifetime) {
  auto e = std::make_unique<cep::Engine>();
  ASSERT_TRUE(e->add_script(std::string(kStock) + "SELECT * FROM Stock PUBLISH All;").ok());
  Collector c;
  uint64_t id = e->subscribe("All", c.cb()).value;
  auto q = e->subscribe_queue("All", 10).value;
  uint32_t s = *e->stream_id("Stock");
  e->push(s, 1, {"A", 1.0, 1});
  EXPECT_EQ(e->stats().subscriptions, 2u);
  EXPECT_TRUE(e->unsubscribe(id).ok());
  EXPECT_EQ(e->unsubscribe(id).code, cep::Code::NotFound);
  EXPECT_EQ(e->unsubscribe(12345).code, cep::Code::NotFound);
  EXPECT_EQ(e->stats().subscriptions, 1u);
  e->push(s, 2, {"A", 1.0, 1});
  EXPECT_EQ(c.rows.size(), 1u);
  EXPECT_EQ(q->size(), 2u);  // the stream's other subscriber still gets its rows
  e.reset();  // the queue outlives the engine
  EXPECT_TRUE(q->closed());
  EXPECT_EQ(q->close_reason(), "the engine was destroyed");
  cep::OutputRow row;
  EXPECT_TRUE(q->pop(row));
  EXPECT_EQ(row.values[0].as_string(), "A");  // interned: still valid
}

TEST(Api, OptionsAndBudget) {
  cep::Options o;
  o.unit = cep::TimeUnit::Seconds;
  o.jit = cep::JitMode::On;
  o.threads = 4;
  o.memory_budget = 1;
  cep::Engine e(o);
  EXPECT_EQ(e.options().jit, cep::JitMode::On);
  EXPECT_EQ(e.options().threads, 4u);
  ASSERT_TRUE(e.add_script(std::string(kStock) +
                           "SELECT * FROM FILTER{DUR < 2 MIN}(Stock NEXT{} Stock) PUBLISH P;")
                  .ok());
  uint32_t s = *e.stream_id("Stock");
  e.push(s, 1, {"A", 1.0, 1});
  e.advance_to(2);
  cep::Stats st = e.stats();
  EXPECT_EQ(st.instances, 1u);
  EXPECT_GT(st.memory_bytes, 0u);
  EXPECT_TRUE(st.over_budget);
  e.advance_to(1000);  // 2 MIN = 120 s passed: the instance expires
  st = e.stats();
  EXPECT_EQ(st.instances, 0u);
  EXPECT_FALSE(st.over_budget);
  EXPECT_EQ(st.current_time, 1000);
}

// Parallel batches keep the API's contract: the same rows in the same order, delivered before
// each push or push_batch call returns, whatever the thread count.
TEST(Api, ThreadsDeliverTheSameRowsBeforeEachCallReturns) {
  auto run = [](unsigned threads) {
    cep::Options o;
    o.threads = threads;
    cep::Engine e(o);
    EXPECT_EQ(e.options().threads, threads);
    EXPECT_TRUE(e.add_script(std::string(kStock) +
                             "SELECT * FROM Stock NEXT{$1.Name = $2.Name AND $2.Price > $1.Price} "
                             "Stock PUBLISH Up;\n"
                             "SELECT Name, Price_1 AS P0, Price AS P1 FROM FILTER{DUR < 6}(Stock "
                             "FOLD{$2.Name = $.Name, $2.Price >= $.Price,} Stock) PUBLISH Run;")
                    .ok());
    Collector c;
    EXPECT_TRUE(e.subscribe("Up", c.cb()).ok());
    EXPECT_TRUE(e.subscribe("Run", c.cb()).ok());
    const uint32_t s = *e.stream_id("Stock");
    std::vector<size_t> after_call;  // rows delivered when each call returned
    const char* names[] = {"S0", "S1", "S2", "S3", "S4", "S5", "S6", "S7"};
    std::vector<std::vector<cep::Value>> values;
    for (int t = 0; t < 300; ++t) {
      values.clear();
      std::vector<cep::Event> batch;
      for (int k = 0; k < 40; ++k)  // 40 simultaneous events over 8 names
        values.push_back({names[k % 8], double((t * 7 + k * 13) % 50), k});
      for (auto& v : values) batch.push_back(cep::Event{s, t, v});
      EXPECT_EQ(e.push_batch(batch).accepted, batch.size());
      after_call.push_back(c.rows.size());
      EXPECT_TRUE(e.push(s, t, {"S1", double(t % 9), 1}).ok());
      after_call.push_back(c.rows.size());
    }
    e.finish();
    return std::make_pair(c.rows, after_call);
  };
  const auto one = run(1);
  EXPECT_GT(one.first.size(), 10000u) << "too few rows to exercise parallel batches";
  const auto four = run(4);
  EXPECT_EQ(four.first, one.first);
  EXPECT_EQ(four.second, one.second);
}

TEST(Api, ValueBasics) {
  cep::Value i = 42, f = 1.5, s = "x";
  EXPECT_EQ(i.type(), cep::Type::Int);
  EXPECT_EQ(f.type(), cep::Type::Float);
  EXPECT_EQ(s.type(), cep::Type::String);
  EXPECT_EQ(i.to_string(), "42");
  EXPECT_EQ(f.to_string(), "1.5");
  EXPECT_EQ(s.to_string(), "x");
  EXPECT_EQ(i.as_float(), 42.0);
}

}  // namespace
