// Wiring a Registry to Prometheus: the catalog of ember's metrics (types, help texts, histogram
// buckets), this process's own gauges, and the GET /metrics route. docs/monitoring.md lists
// every metric; dashboards/ and prometheus.yml in this folder read them.
#pragma once

#include <memory>
#include <string>

#include "ember/monitoring/http_server.h"
#include "ember/monitoring/registry.h"

namespace ember::monitoring {

// Declares every metric ember records with its type, help text and (latencies, sizes) buckets.
void DescribeMetrics(Registry* registry);

// Adds a collector of this process's gauges: resident and peak resident bytes, CPU seconds,
// start time, and ember_info{role, rank, version} = 1.
void AddProcessCollector(Registry* registry, const std::string& role, int rank);

// Serves registry->Scrape() at GET /metrics (text/plain; version=0.0.4).
void AddMetricsRoute(HttpServer* server, Registry* registry);

// A rank's metrics endpoint: a registry with the catalog and process collector, served on its
// own HTTP server at /metrics and /healthz.
class MetricsExporter {
 public:
  MetricsExporter(const std::string& role, int rank);
  ~MetricsExporter();
  Registry& registry() { return registry_; }
  // Binds options.bind:options.port (0: ephemeral) and serves.
  Status Start(HttpServerOptions options);
  void Stop();
  int port() const { return server_ ? server_->port() : 0; }

 private:
  Registry registry_;
  std::unique_ptr<HttpServer> server_;
};

}  // namespace ember::monitoring
