// Progress reporting for long work: a redrawn line with rate and ETA on a terminal, a log
// line every `log_interval_s` seconds otherwise.
//
// Not thread-safe: one owner calls Update/Finish. Writes to the FILE* given (stderr usually).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace ember {

class ProgressReporter {
 public:
  struct Options {
    std::string label = "progress";
    std::string unit = "rows";
    double total = 0;            // 0 = unknown (no ETA, no percentage)
    bool tty = false;            // redraw one line with '\r'
    double log_interval_s = 10;  // when not a tty
    FILE* out = stderr;
  };
  explicit ProgressReporter(Options options);

  // `done` is in units; `fraction` overrides done/total for the ETA when >= 0 (e.g. bytes
  // read of a file whose row count is unknown). `extra` is appended (e.g. "loss 0.45").
  void Update(double done, double fraction = -1, const std::string& extra = "");
  void Finish(double done, const std::string& extra = "");
  // Formats seconds as "1h02m", "3m05s", "12s".
  static std::string FormatDuration(double seconds);

 private:
  std::string Line(double done, double fraction, const std::string& extra) const;
  Options options_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_;
  bool drew_ = false;
};

// True when stderr is a terminal.
bool StderrIsTty();

}  // namespace ember
