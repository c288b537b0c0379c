// Status and Result<T>: how every fallible call in ember reports failure.
//
// A Status is OK or carries a code and a message that names where the failure happened
// (file, line, field, request). Result<T> holds either a value or a non-OK Status.
// Invariant violations are not Statuses: EMBER_CHECK aborts with the values printed.
// Thread-safety: values; copy freely.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>
#include <utility>

namespace ember {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad config, bad input, malformed data
  kNotFound,
  kIoError,
  kCorruption,  // checksum mismatch, truncated file, malformed frame
  kFailedPrecondition,
  kUnavailable,  // a peer is gone
  kInternal,
};

class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
  static Status Corruption(std::string m) { return {StatusCode::kCorruption, std::move(m)}; }
  static Status FailedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "InvalidArgument: data.csv:12: expected 40 fields, got 39".
  std::string ToString() const;
  // Prefixes context: Status("x").WithContext("loading a") -> "loading a: x".
  Status WithContext(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

const char* StatusCodeName(StatusCode code);

template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT
    if (status_.ok()) status_ = Status::Internal("Result constructed from an OK status");
  }
  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T&& operator*() && { return std::move(*value_); }

 private:
  Status status_;
  std::optional<T> value_;
};

namespace internal {
[[noreturn]] void CheckFailed(const char* file, int line, const char* expr, const std::string& msg);
// Collects the message of a failed EMBER_CHECK and aborts when destroyed.
class CheckFailer {
 public:
  CheckFailer(const char* file, int line, const char* expr) : file_(file), line_(line), expr_(expr) {}
  [[noreturn]] ~CheckFailer() { CheckFailed(file_, line_, expr_, os_.str()); }
  std::ostream& stream() { return os_; }

 private:
  const char* file_;
  int line_;
  const char* expr_;
  std::ostringstream os_;
};
}  // namespace internal

}  // namespace ember

#define EMBER_RETURN_IF_ERROR(expr)        \
  do {                                     \
    ::ember::Status _ember_st = (expr);    \
    if (!_ember_st.ok()) return _ember_st; \
  } while (0)

#define EMBER_CONCAT_INNER(a, b) a##b
#define EMBER_CONCAT(a, b) EMBER_CONCAT_INNER(a, b)
#define EMBER_ASSIGN_OR_RETURN(lhs, expr) EMBER_ASSIGN_OR_RETURN_IMPL(EMBER_CONCAT(_ember_res_, __LINE__), lhs, expr)
#define EMBER_ASSIGN_OR_RETURN_IMPL(res, lhs, expr) \
  auto res = (expr);                                \
  if (!res.ok()) return res.status();               \
  lhs = std::move(res).value()

// EMBER_CHECK(a == b) << "context " << a;  aborts with the expression and message. The
// stream is only built when the check fails (no cost on the hot path).
#define EMBER_CHECK(cond)                               \
  switch (0)                                            \
  case 0:                                               \
  default:                                              \
    if (__builtin_expect(static_cast<bool>(cond), 1)) { \
    } else                                              \
      ::ember::internal::CheckFailer(__FILE__, __LINE__, #cond).stream()
