#include "server/oip/protocol.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/oip/tensors.h"

#ifndef CROPSHIELD_VERSION
#define CROPSHIELD_VERSION "unknown"
#endif

namespace cropshield::oip {
namespace {

constexpr char kServerName[] = "cropshield-serve";
// The protocol extensions served (names as Triton reports them).
constexpr const char* kExtensions[] = {"model_configuration", "statistics"};

absl::StatusOr<cropshield::v1::ModelSpec> SpecFor(const std::string& name,
                                                  const std::string& version) {
  cropshield::v1::ModelSpec spec;
  spec.set_name(name);
  CS_ASSIGN_OR_RETURN(const int64_t parsed, ParseVersion(version));
  spec.set_version(parsed);
  return spec;
}

// The served model called `name` at `version` ("" = the served one); NOT_FOUND for others.
absl::StatusOr<std::shared_ptr<const engine::Model>> Resolve(const core::ModelRegistry& models,
                                                             const std::string& name,
                                                             const std::string& version) {
  CS_ASSIGN_OR_RETURN(const cropshield::v1::ModelSpec spec, SpecFor(name, version));
  return models.Get(spec);
}

}  // namespace

absl::StatusOr<std::unique_ptr<InferenceProtocol>> InferenceProtocol::Create(
    ProtocolOptions options, core::InferenceCore* core) {
  if (core == nullptr || !options.serving) {
    return absl::InvalidArgumentError("the inference protocol needs a core and a readiness check");
  }
  return std::unique_ptr<InferenceProtocol>(new InferenceProtocol(std::move(options), core));
}

bool InferenceProtocol::ServerReady() const {
  return options_.serving() && !core_->models().All().empty();
}

bool InferenceProtocol::ModelReady(const std::string& name, const std::string& version) const {
  return options_.serving() && Resolve(core_->models(), name, version).ok();
}

void InferenceProtocol::ServerMetadata(inference::ServerMetadataResponse* response) const {
  response->set_name(kServerName);
  response->set_version(CROPSHIELD_VERSION);
  for (const char* extension : kExtensions) response->add_extensions(extension);
}

absl::Status InferenceProtocol::ModelMetadata(const std::string& name, const std::string& version,
                                              inference::ModelMetadataResponse* response) const {
  CS_ASSIGN_OR_RETURN(auto model, Resolve(core_->models(), name, version));
  DescribeModel(*model, response);
  return absl::OkStatus();
}

absl::Status InferenceProtocol::ModelConfig(const std::string& name, const std::string& version,
                                            inference::ModelConfig* config) const {
  CS_ASSIGN_OR_RETURN(auto model, Resolve(core_->models(), name, version));
  DescribeConfig(*model, options_.batching, config);
  return absl::OkStatus();
}

absl::Status InferenceProtocol::ModelStatistics(
    const std::string& name, const std::string& version,
    inference::ModelStatisticsResponse* response) const {
  std::vector<std::shared_ptr<const engine::Model>> models;
  if (name.empty() && version.empty()) {
    models = core_->models().All();
  } else {
    CS_ASSIGN_OR_RETURN(auto model, Resolve(core_->models(), name, version));
    models.push_back(std::move(model));
  }
  for (const auto& model : models) {
    auto* stats = response->add_model_stats();
    stats->set_name(model->name());
    stats->set_version(absl::StrCat(model->version()));
    counters_.Fill(stats);
  }
  return absl::OkStatus();
}

absl::Status InferenceProtocol::StartInfer(const inference::ModelInferRequest& request,
                                           inference::ModelInferResponse* response,
                                           core::Responder* responder) {
  absl::Status started = [&]() -> absl::Status {
    CS_ASSIGN_OR_RETURN(cropshield::v1::ModelSpec spec,
                        SpecFor(request.model_name(), request.model_version()));
    CS_ASSIGN_OR_RETURN(const std::shared_ptr<const engine::Model> model,
                        core_->models().Get(spec));
    CS_ASSIGN_OR_RETURN(InferPlan plan,
                        PlanInfer(request, model->num_classes(), options_.max_photos_per_call));
    InferCall::Start(core_, request, std::move(spec), model->num_classes(), std::move(plan),
                     response, responder, &counters_);
    return absl::OkStatus();
  }();
  if (!started.ok()) counters_.Record(false, 0, 0);
  return started;
}

}  // namespace cropshield::oip
