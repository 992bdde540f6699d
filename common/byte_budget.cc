#include "common/byte_budget.h"

#include <algorithm>
#include <utility>

namespace cropshield {

ByteBudget::Reservation& ByteBudget::Reservation::operator=(Reservation&& other) noexcept {
  if (this != &other) {
    Release();
    budget_ = std::exchange(other.budget_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void ByteBudget::Reservation::Release() {
  if (budget_ != nullptr) budget_->used_.fetch_sub(bytes_, std::memory_order_relaxed);
  budget_ = nullptr;
  bytes_ = 0;
}

std::optional<ByteBudget::Reservation> ByteBudget::TryReserve(int64_t bytes) {
  bytes = std::max<int64_t>(0, bytes);
  int64_t used = used_.load(std::memory_order_relaxed);
  do {
    if (capacity_ > 0 && used + bytes > capacity_) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      return std::nullopt;
    }
  } while (!used_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
  Reservation reservation;
  reservation.budget_ = this;
  reservation.bytes_ = bytes;
  return reservation;
}

}  // namespace cropshield
