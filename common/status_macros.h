// Early-return helpers for absl::Status / absl::StatusOr.
#ifndef CROPSHIELD_COMMON_STATUS_MACROS_H_
#define CROPSHIELD_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define CS_CONCAT_INNER_(a, b) a##b
#define CS_CONCAT_(a, b) CS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define CS_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::absl::Status cs_status_ = (expr);      \
    if (!cs_status_.ok()) return cs_status_; \
  } while (false)

// `CS_ASSIGN_OR_RETURN(auto x, MakeX());` declares x from an OK StatusOr or returns its status.
#define CS_ASSIGN_OR_RETURN(lhs, expr) \
  CS_ASSIGN_OR_RETURN_IMPL_(CS_CONCAT_(cs_statusor_, __LINE__), lhs, expr)
#define CS_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                              \
  if (!statusor.ok()) return statusor.status();        \
  lhs = std::move(statusor).value()

#endif  // CROPSHIELD_COMMON_STATUS_MACROS_H_
