// A minimal program embedding cayuga: one script, a callback subscription, a pull queue, a
// run-time query, typed events, a heartbeat and statistics. Its exact output is checked by
// tests/api (embed_sample_output).
#include <cayuga/cayuga.h>

#include <cstdio>
#include <vector>

namespace cep = cayuga::api;

int main() {
  cep::Engine engine(cep::Options{});  // milliseconds, late events dropped and counted

  cep::ScriptResult script = engine.add_script(R"(
    CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);
    SELECT * FROM Stock NEXT{$1.Name = $2.Name} Stock PUBLISH T5;
  )");
  if (!script.ok()) {
    for (const auto& e : script.errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
    return 1;
  }
  for (const auto& q : script.queries)
    std::printf("query %u publishes %s\n", q.id, q.stream.c_str());

  // Errors are values with a line and a column.
  cep::ScriptResult bad = engine.add_script("SELECT Prize FROM Stock PUBLISH Oops;");
  for (const auto& e : bad.errors) std::printf("error %s\n", e.to_string().c_str());

  // Push: callback, runs on the pushing thread.
  engine.subscribe("T5",
                   [](const cep::Output& out) { std::printf("%s\n", out.to_json().c_str()); });

  // Pull: a second query added at run time, read through a bounded queue.
  cep::ScriptResult rising =
      engine.add_script("SELECT Name, Price FROM FILTER{Price > 20}(Stock) PUBLISH Expensive;");
  auto queue = engine.subscribe_queue("Expensive", 16).value;

  const uint32_t stock = *engine.stream_id("Stock");
  engine.push(stock, 1, {"IBM", 10.0, 1});
  engine.push(stock, 2, {"MSFT", 20.0, 1});
  engine.push(stock, 3, {"IBM", 11.0, 1});
  engine.push(stock, 3, {"IBM", 12.0, 1});
  // A batch of typed events.
  std::vector<cep::Value> v1{"MSFT", 21.0, 1}, v2{"ORCL", 30, 5};
  std::vector<cep::Event> batch{{stock, 4, v1}, {stock, 5, v2}};
  cep::BatchResult br = engine.push_batch(batch);
  std::printf("batch accepted %zu\n", br.accepted);

  // Type errors are values too.
  cep::Status s = engine.push(stock, 6, {"IBM", "ten", 1});
  std::printf("push: %s: %s\n", cep::to_string(s.code), s.message.c_str());
  engine.push(stock, 2, {"IBM", 1.0, 1});  // late: dropped and counted

  cep::OutputRow row;
  while (queue->pop(row))
    std::printf("Expensive t=%lld %s %s\n", static_cast<long long>(row.t1),
                row.values[0].to_string().c_str(), row.values[1].to_string().c_str());

  engine.remove_query(rising.queries[0].id);
  engine.push(stock, 7, {"ORCL", 31.0, 1});
  std::printf("queued after removal: %zu\n", queue->size());

  engine.advance_to(100);  // heartbeat
  cep::Stats st = engine.stats();
  std::printf("events %llu late %llu outputs %llu queries %llu removed %llu\n",
              static_cast<unsigned long long>(st.events_in),
              static_cast<unsigned long long>(st.late_events),
              static_cast<unsigned long long>(st.outputs),
              static_cast<unsigned long long>(st.queries),
              static_cast<unsigned long long>(st.removed_queries));
  return 0;
}
