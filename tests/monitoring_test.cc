#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cmath>
#include <mutex>
#include <thread>
#include <vector>

#include "ember/monitoring/exporter.h"
#include "ember/monitoring/http_server.h"
#include "ember/monitoring/recorder.h"
#include "ember/monitoring/registry.h"
#include "http_client.h"

namespace ember::monitoring {
namespace {

TEST(Recorder, NullRecorderAcceptsEverything) {
  Recorder* r = NullRecorder();
  ASSERT_NE(r, nullptr);
  r->AddCounter("x", 1);
  r->SetGauge("y", 2, {{"table", "0"}});
  r->Observe("z", 3);
  EXPECT_EQ(NullRecorder(), r);
}

TEST(Recorder, MemoryRecorderKeepsValuesPerLabelSet) {
  MemoryRecorder m;
  m.AddCounter("pulls_total", 2, {{"shard", "0"}});
  m.AddCounter("pulls_total", 3, {{"shard", "0"}});
  m.AddCounter("pulls_total", 7, {{"shard", "1"}});
  m.SetGauge("loss", 0.5);
  m.SetGauge("loss", 0.4);
  m.Observe("latency_seconds", 0.25);
  m.Observe("latency_seconds", 0.75);
  EXPECT_EQ(m.Counter("pulls_total", {{"shard", "0"}}), 5);
  EXPECT_EQ(m.Counter("pulls_total", {{"shard", "1"}}), 7);
  EXPECT_EQ(m.Counter("pulls_total"), 0);
  EXPECT_EQ(m.Gauge("loss"), 0.4);
  EXPECT_EQ(m.ObservationCount("latency_seconds"), 2u);
  EXPECT_EQ(m.ObservationSum("latency_seconds"), 1.0);
}

TEST(Recorder, MemoryRecorderIsThreadSafe) {
  MemoryRecorder m;
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) m.AddCounter("n", 1);
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(m.Counter("n"), 40000);
}

// The text exposition format 0.0.4: HELP/TYPE once per family, one line per label set, label
// values escaped, histograms as cumulative buckets ending in +Inf, then _sum and _count.
TEST(Registry, ExpositionFollowsTheTextFormat) {
  Registry r;
  r.Describe("pull_seconds", MetricType::kHistogram, "Pull latency.\nPer call, in seconds \\ wall", {0.1, 1, 0.5});
  r.Observe("pull_seconds", 0.05, {{"table", "3"}});
  r.Observe("pull_seconds", 0.5, {{"table", "3"}});  // on a bound: counts in that bucket ("le")
  r.Observe("pull_seconds", 7, {{"table", "3"}});
  r.AddCounter("train_samples_total", 1024);
  r.AddCounter("train_samples_total", 1024);
  r.AddCounter("train_samples_total", -5);  // counters never go down
  r.SetGauge("table_rows", 12, {{"table", "b"}, {"role", "server"}});
  r.SetGauge("table_rows", 7, {{"role", "server"}, {"table", "a \"quoted\"\\path\nline"}});
  const std::string want =
      "# HELP ember_pull_seconds Pull latency.\\nPer call, in seconds \\\\ wall\n"
      "# TYPE ember_pull_seconds histogram\n"
      "ember_pull_seconds_bucket{table=\"3\",le=\"0.1\"} 1\n"
      "ember_pull_seconds_bucket{table=\"3\",le=\"0.5\"} 2\n"
      "ember_pull_seconds_bucket{table=\"3\",le=\"1\"} 2\n"
      "ember_pull_seconds_bucket{table=\"3\",le=\"+Inf\"} 3\n"
      "ember_pull_seconds_sum{table=\"3\"} 7.55\n"
      "ember_pull_seconds_count{table=\"3\"} 3\n"
      "# TYPE ember_table_rows gauge\n"
      "ember_table_rows{role=\"server\",table=\"a \\\"quoted\\\"\\\\path\\nline\"} 7\n"
      "ember_table_rows{role=\"server\",table=\"b\"} 12\n"
      "# TYPE ember_train_samples_total counter\n"
      "ember_train_samples_total 2048\n";
  EXPECT_EQ(r.Exposition(), want);
}

TEST(Registry, NamesValuesAndTypeConflicts) {
  EXPECT_EQ(Registry::SanitizeName("9lives-per.sec"), "_lives_per_sec");
  EXPECT_EQ(Registry::FormatValue(std::nan("")), "NaN");
  EXPECT_EQ(Registry::FormatValue(-INFINITY), "-Inf");
  EXPECT_EQ(Registry::FormatValue(0.25), "0.25");
  EXPECT_EQ(Registry::FormatValue(0.1 + 0.2), "0.30000000000000004");  // shortest exact text
  EXPECT_EQ(Registry::FormatValue(1024), "1024");
  EXPECT_EQ(Registry::FormatValue(3e20), "3e+20");
  Registry r;
  r.Observe("latency", 0.003);  // undescribed: default buckets
  r.SetGauge("latency", 1);     // conflicting type: ignored and counted
  const std::string text = r.Exposition();
  EXPECT_NE(text.find("ember_latency_bucket{le=\"0.005\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("ember_latency_bucket{le=\"+Inf\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("ember_metrics_type_conflicts_total 1\n"), std::string::npos);
  // Label order does not make a new series; label names are sanitised.
  r.AddCounter("hits_total", 1, {{"a", "1"}, {"b-c", "2"}});
  r.AddCounter("hits_total", 2, {{"b-c", "2"}, {"a", "1"}});
  EXPECT_NE(r.Exposition().find("ember_hits_total{a=\"1\",b_c=\"2\"} 3\n"), std::string::npos) << r.Exposition();
}

TEST(Registry, ConcurrentRecordingLosesNothing) {
  Registry r;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        r.AddCounter("steps_total", 1);
        r.Observe("step_seconds", 0.01);
      }
    });
  for (auto& t : threads) t.join();
  const std::string text = r.Exposition();
  EXPECT_NE(text.find("ember_steps_total 40000\n"), std::string::npos);
  EXPECT_NE(text.find("ember_step_seconds_count 40000\n"), std::string::npos);
}

TEST(Registry, ScrapeRunsCollectorsFirst) {
  Registry r;
  int calls = 0;
  r.AddCollector([&](Recorder& rec) { rec.SetGauge("scrapes", ++calls); });
  EXPECT_EQ(r.Exposition(), "");  // Exposition alone runs nothing
  EXPECT_EQ(r.Scrape(), "# TYPE ember_scrapes gauge\nember_scrapes 1\n");
  EXPECT_NE(r.Scrape().find("ember_scrapes 2\n"), std::string::npos);
}

TEST(Exporter, CatalogAndProcessGauges) {
  Registry r;
  DescribeMetrics(&r);
  AddProcessCollector(&r, "train", 3);
  const std::string text = r.Scrape();
  EXPECT_NE(text.find("# HELP ember_process_resident_bytes Resident memory of this process.\n"), std::string::npos);
  EXPECT_NE(text.find("ember_info{rank=\"3\",role=\"train\",version=\""), std::string::npos) << text;
  // Described but never recorded families are not rendered (no empty TYPE lines).
  EXPECT_EQ(text.find("ember_train_samples_total"), std::string::npos);
  // Recording into a described histogram uses its buckets (10 µs and up).
  r.Observe("ps_pull_seconds", 3e-5);
  EXPECT_NE(r.Exposition().find("ember_ps_pull_seconds_bucket{le=\"5e-05\"} 1\n"), std::string::npos);
  EXPECT_NE(r.Exposition().find("ember_ps_pull_seconds_bucket{le=\"2.5e-05\"} 0\n"), std::string::npos);
  const std::string sample = "\nember_process_resident_bytes ";
  const auto at = text.find(sample);
  ASSERT_NE(at, std::string::npos);
  EXPECT_GT(std::stod(text.substr(at + sample.size())), 1e6);  // at least a MiB resident
}

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

using testing_util::Exchange;
using testing_util::Get;

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HttpServerOptions o;
    o.max_body_bytes = 64;
    o.recorder = &registry_;
    server_ = std::make_unique<HttpServer>(o);
    AddMetricsRoute(server_.get(), &registry_);
    server_->Route("POST", "/echo", [](const HttpRequest& r) {
      HttpResponse out;
      out.content_type = "text/plain";
      out.body = r.method + " " + r.path + " ?" + r.query + " [" + r.content_type + "] " + r.body;
      return out;
    });
    server_->Route("GET", "/boom", [](const HttpRequest&) -> HttpResponse { throw std::runtime_error("kaput"); });
    ASSERT_TRUE(server_->Start().ok());
    ASSERT_GT(server_->port(), 0);
  }
  Registry registry_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, ServesMetricsInTheTextFormat) {
  registry_.SetGauge("table_rows", 42, {{"table", "0"}});
  auto res = Exchange(server_->port(), Get("/metrics"));
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res[http::field::content_type], "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(res.body().find("ember_table_rows{table=\"0\"} 42\n"), std::string::npos) << res.body();
}

TEST_F(HttpServerTest, RoutesBodiesAndQueries) {
  auto res = Exchange(server_->port(),
                      "POST /echo?k=20 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
                      "7\r\nConnection: close\r\n\r\n{\"a\":1}");
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res.body(), "POST /echo ?k=20 [application/json] {\"a\":1}");
}

TEST_F(HttpServerTest, BadRequestsGetErrorsAndTheServerKeepsServing) {
  auto res = Exchange(server_->port(), Get("/nope"));
  EXPECT_EQ(res.result_int(), 404);
  EXPECT_EQ(res.body(), "{\"error\":\"no such path: /nope\"}\n");
  res = Exchange(server_->port(), "DELETE /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(res.result_int(), 405);
  EXPECT_EQ(res[http::field::allow], "GET");
  // Content-Length over max_body_bytes (64): refused before the body is read.
  res =
      Exchange(server_->port(), "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 65\r\n\r\n" + std::string(65, 'x'));
  EXPECT_EQ(res.result_int(), 413);
  EXPECT_EQ(res.body(), "{\"error\":\"request body over the limit of 64 bytes\"}\n");
  res = Exchange(server_->port(), "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: banana\r\n\r\n");
  EXPECT_EQ(res.result_int(), 400);
  res = Exchange(server_->port(), Get("/boom"));
  EXPECT_EQ(res.result_int(), 500);
  EXPECT_EQ(res.body(), "{\"error\":\"internal error: kaput\"}\n");
  // A client that sends garbage and leaves does not take the server down.
  {
    asio::io_context ioc;
    asio::ip::tcp::socket s(ioc);
    s.connect({asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(server_->port())});
    asio::write(s, asio::buffer(std::string("\x01\x02\x03 garbage\r\n\r\n")));
  }
  res = Exchange(server_->port(), Get("/metrics"));
  EXPECT_EQ(res.result_int(), 200);
  // Every answer was counted, unknown paths under "other".
  const std::string text = registry_.Exposition();
  EXPECT_NE(text.find("ember_http_requests_total{code=\"404\",path=\"other\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("ember_http_requests_total{code=\"405\",path=\"/metrics\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("ember_http_requests_total{code=\"413\",path=\"other\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("ember_http_requests_total{code=\"500\",path=\"/boom\"} 1\n"), std::string::npos);
}

TEST_F(HttpServerTest, KeepAliveAnswersSeveralRequestsOnOneConnection) {
  asio::io_context ioc;
  asio::ip::tcp::socket socket(ioc);
  socket.connect({asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(server_->port())});
  beast::flat_buffer buffer;
  for (int i = 0; i < 3; ++i) {
    const std::string body = "n" + std::to_string(i);
    asio::write(socket, asio::buffer("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n" + body));
    http::response<http::string_body> res;
    http::read(socket, buffer, res);
    EXPECT_EQ(res.body(), "POST /echo ? [] " + body);
    EXPECT_TRUE(res.keep_alive());
  }
}

// The connection cap: within the open-files limit, at least 16.
TEST(HttpServer, TheConnectionCapStaysWithinTheOpenFilesLimit) {
  EXPECT_EQ(HttpServer::MaxConnections(0, 1 << 20), 4096u);
  EXPECT_EQ(HttpServer::MaxConnections(0, 1024), 384u);  // (1024 - 256) / 2
  EXPECT_EQ(HttpServer::MaxConnections(100, 1 << 20), 100u);
  EXPECT_EQ(HttpServer::MaxConnections(100000, 20000), 9872u);
  EXPECT_EQ(HttpServer::MaxConnections(0, 300), 128u);
  EXPECT_EQ(HttpServer::MaxConnections(3, 1 << 20), 16u);
}

// A flood of connections that send nothing cannot lock clients out: at the cap, a new
// connection closes the one that has waited longest for a request's bytes. Connections busy
// with a request are never closed for a new one; that one is closed instead.
TEST(HttpServer, AtTheConnectionCapTheLongestIdleConnectionMakesRoom) {
  Registry registry;
  HttpServerOptions o;
  o.max_connections = 16;
  o.recorder = &registry;
  HttpServer server(o);
  AddMetricsRoute(&server, &registry);
  std::mutex mu;
  std::vector<HttpServer::Responder> held;
  server.RouteAsync("GET", "/hold", [&](HttpRequest, HttpServer::Responder respond) {
    std::lock_guard<std::mutex> lock(mu);
    held.push_back(std::move(respond));
  });
  ASSERT_TRUE(server.Start().ok());
  const auto gauge = [&](const std::string& name) {
    const std::string text = registry.Exposition(), key = "\nember_" + name + " ";
    const auto at = text.find(key);
    return at == std::string::npos ? -1.0 : std::stod(text.substr(at + key.size()));
  };
  const auto wait_for = [&](const std::string& name, double value) {
    for (int i = 0; i < 500 && gauge(name) != value; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return gauge(name);
  };
  const asio::ip::tcp::endpoint at{asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(server.port())};
  asio::io_context ioc;
  const auto closed_by_server = [&](asio::ip::tcp::socket& s) {
    char byte;
    beast::error_code ec;
    s.read_some(asio::buffer(&byte, 1), ec);  // blocks until the server closes it (or answers)
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  };
  // 16 connections that send nothing, opened one after another.
  std::vector<asio::ip::tcp::socket> idle;
  for (int i = 0; i < 16; ++i) {
    idle.emplace_back(ioc);
    idle.back().connect(at);
    ASSERT_EQ(wait_for("http_connections_open", i + 1), i + 1);
  }
  // A 17th client is answered; the first idle connection made room for it.
  auto res = Exchange(server.port(), Get("/metrics"));
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_TRUE(closed_by_server(idle[0]));
  EXPECT_EQ(gauge("http_connections_evicted_total"), 1);
  // The others are still open: each answers a request.
  for (int i = 1; i < 16; ++i) {
    asio::write(idle[i], asio::buffer(std::string("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")));
  }
  {
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (held.size() == 15) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_EQ(held.size(), 15u);
  }
  // 15 connections busy with a request (the 17th client's closed): a 16th busy one fills the cap.
  asio::ip::tcp::socket busy(ioc);
  busy.connect(at);
  asio::write(busy, asio::buffer(std::string("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")));
  for (int i = 0; i < 500; ++i) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (held.size() == 16) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(wait_for("http_connections_open", 16), 16);
  // Every connection busy: a new one is closed unanswered, and no busy one is touched.
  asio::ip::tcp::socket late(ioc);
  late.connect(at);
  EXPECT_TRUE(closed_by_server(late));
  EXPECT_EQ(gauge("http_connections_refused_total"), 1);
  // The held requests are answered on their connections.
  {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& respond : held) {
      HttpResponse r;
      r.body = "held";
      respond(std::move(r));
    }
  }
  beast::flat_buffer buffer;
  for (int i = 1; i < 16; ++i) {
    http::response<http::string_body> r;
    http::read(idle[i], buffer, r);
    EXPECT_EQ(r.body(), "held") << i;
    buffer.clear();
  }
  http::response<http::string_body> r;
  http::read(busy, buffer, r);
  EXPECT_EQ(r.body(), "held");
}

TEST(HttpServer, BindErrorsNameTheAddress) {
  HttpServerOptions o;
  o.bind = "not-an-address";
  HttpServer bad(o);
  Status st = bad.Start();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("bad bind address \"not-an-address\""), std::string::npos) << st.ToString();
  HttpServer first(HttpServerOptions{});
  ASSERT_TRUE(first.Start().ok());
  o.bind = "127.0.0.1";
  o.port = first.port();
  HttpServer second(o);
  st = second.Start();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("cannot listen on 127.0.0.1:" + std::to_string(first.port())), std::string::npos)
      << st.ToString();
}

}  // namespace
}  // namespace ember::monitoring
