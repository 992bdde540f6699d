// The calls the core serves, and their one name table (Stats, Prometheus and logs use it).
#ifndef CROPSHIELD_SERVER_CORE_RPC_H_
#define CROPSHIELD_SERVER_CORE_RPC_H_

#include <array>

namespace cropshield::core {

enum class Rpc { kPredict, kExplain, kClearCache, kStats, kReloadModel };
inline constexpr int kRpcCount = 5;
inline constexpr std::array<const char*, kRpcCount> kRpcNames = {"Predict", "Explain", "ClearCache",
                                                                 "Stats", "ReloadModel"};

inline const char* RpcName(Rpc rpc) { return kRpcNames[static_cast<int>(rpc)]; }

}  // namespace cropshield::core

#endif  // CROPSHIELD_SERVER_CORE_RPC_H_
