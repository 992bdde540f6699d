// A byte budget shared by concurrent work: a reservation succeeds only while everything reserved
// stays within the capacity, so the memory that the reservations stand for is bounded as a whole.
// The server reserves request bytes and Explain render/response bytes per call, and releases them
// when gRPC is done with the call.
//
// Thread-safety: ByteBudget is thread-safe. A Reservation is a value owned by one thread at a
// time; it must not outlive its budget.
#ifndef CROPSHIELD_COMMON_BYTE_BUDGET_H_
#define CROPSHIELD_COMMON_BYTE_BUDGET_H_

#include <atomic>
#include <cstdint>
#include <optional>

namespace cropshield {

class ByteBudget {
 public:
  // Bytes that are given back when it is destroyed or Release()d.
  class Reservation {
   public:
    Reservation() = default;
    Reservation(Reservation&& other) noexcept { *this = std::move(other); }
    Reservation& operator=(Reservation&& other) noexcept;
    Reservation(const Reservation&) = delete;
    Reservation& operator=(const Reservation&) = delete;
    ~Reservation() { Release(); }

    int64_t bytes() const { return bytes_; }
    void Release();

   private:
    friend class ByteBudget;
    ByteBudget* budget_ = nullptr;
    int64_t bytes_ = 0;
  };

  // capacity <= 0: unlimited (reservations always succeed and are still counted).
  explicit ByteBudget(int64_t capacity) : capacity_(capacity) {}
  ByteBudget(const ByteBudget&) = delete;
  ByteBudget& operator=(const ByteBudget&) = delete;

  // `bytes` (>= 0) if they fit next to what is reserved now; nullopt otherwise.
  std::optional<Reservation> TryReserve(int64_t bytes);

  int64_t capacity() const { return capacity_; }
  int64_t used() const { return used_.load(std::memory_order_relaxed); }
  // Reservations refused since construction.
  int64_t refused() const { return refused_.load(std::memory_order_relaxed); }

 private:
  const int64_t capacity_;
  std::atomic<int64_t> used_{0};
  std::atomic<int64_t> refused_{0};
};

}  // namespace cropshield

#endif  // CROPSHIELD_COMMON_BYTE_BUDGET_H_
