// The model a command's --model_name / --model_version address, checked against Stats.
#ifndef CROPSHIELD_CLIENT_CLI_MODELS_H_
#define CROPSHIELD_CLIENT_CLI_MODELS_H_

#include "absl/status/statusor.h"
#include "cropshield/v1/cropshield.pb.h"

namespace cropshield::cli {

// True when `spec` names a model or a version (else it means "the server's default").
bool IsSet(const v1::ModelSpec& spec);

// The model of `stats` that `spec` addresses: with no name the first (the default), with a version
// only that version. NOT_FOUND naming what is served otherwise, as the server's Predict answers.
absl::StatusOr<const v1::ModelInfo*> FindModel(const v1::StatsResponse& stats,
                                               const v1::ModelSpec& spec);

}  // namespace cropshield::cli

#endif  // CROPSHIELD_CLIENT_CLI_MODELS_H_
