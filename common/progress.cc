#include "ember/common/progress.h"

#include <unistd.h>

#include <cmath>

namespace ember {

bool StderrIsTty() { return ::isatty(STDERR_FILENO) == 1; }

ProgressReporter::ProgressReporter(Options options)
    : options_(std::move(options)), start_(std::chrono::steady_clock::now()), last_(start_) {}

std::string ProgressReporter::FormatDuration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  const long t = static_cast<long>(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof(buf), "%ldh%02ldm", t / 3600, (t % 3600) / 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof(buf), "%ldm%02lds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof(buf), "%lds", t);
  return buf;
}

std::string ProgressReporter::Line(double done, double fraction, const std::string& extra) const {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (fraction < 0 && options_.total > 0) fraction = done / options_.total;
  const double rate = elapsed > 0 ? done / elapsed : 0;
  char buf[256];
  std::string line = options_.label + ": ";
  std::snprintf(buf, sizeof(buf), "%.0f %s, %.0f %s/s", done, options_.unit.c_str(), rate, options_.unit.c_str());
  line += buf;
  if (fraction >= 0) {
    std::snprintf(buf, sizeof(buf), ", %.1f%%", 100.0 * std::min(1.0, fraction));
    line += buf;
    if (fraction > 0) line += ", ETA " + FormatDuration(elapsed * (1 - fraction) / fraction);
  }
  line += ", elapsed " + FormatDuration(elapsed);
  if (!extra.empty()) line += ", " + extra;
  return line;
}

void ProgressReporter::Update(double done, double fraction, const std::string& extra) {
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_).count();
  if (options_.tty) {
    if (since < 0.2) return;
    std::fprintf(options_.out, "\r\033[K%s", Line(done, fraction, extra).c_str());
    drew_ = true;
  } else {
    if (since < options_.log_interval_s) return;
    std::fprintf(options_.out, "%s\n", Line(done, fraction, extra).c_str());
  }
  std::fflush(options_.out);
  last_ = now;
}

void ProgressReporter::Finish(double done, const std::string& extra) {
  if (options_.tty && drew_) std::fprintf(options_.out, "\r\033[K");
  std::fprintf(options_.out, "%s\n", Line(done, options_.total > 0 ? 1.0 : -1, extra).c_str());
  std::fflush(options_.out);
}

}  // namespace ember
