// cropshield: command-line client of CropShield Serve. The command line is parsed with CLI11 into
// cli::CliFlags; the commands (client/cli/commands.cc) call the server through the client library
// (cropshield::client::Client: deadlines, retries on UNAVAILABLE, round_robin over every address of
// dns:/// targets, TLS).
//
// Exit status: 0 success, 1 a call or the server failed (or an input could not be read), 2 a usage
// error (unknown command or flag, bad value, missing argument), for every command.
#include <CLI/CLI.hpp>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cli/commands.h"

namespace {

using cropshield::cli::CliFlags;
using cropshield::cli::ConnectionFlags;

constexpr char kDescription[] =
    "CropShield Serve command-line client: classify and explain photos of crop leaves, read the "
    "server's statistics, manage its caches and model.";

constexpr char kFooter[] =
    "Run `cropshield COMMAND --help` for the flags of a command, `cropshield --helpfull` for "
    "every flag.\n"
    "Exit status: 0 on success, 1 when a call or the server fails (the gRPC status is printed), "
    "2 on usage errors (unknown command or flag, bad value, missing argument).";

constexpr char kConnection[] = "Connection";
constexpr char kModel[] = "Model";

// Validators. CLI11's own numeric ones print their range with 300 digits.
CLI::Validator IntAtLeast(int64_t minimum) {
  return CLI::Validator(
      [minimum](std::string& value) -> std::string {
        int64_t parsed = 0;
        if (!absl::SimpleAtoi(value, &parsed) || parsed < minimum) {
          return absl::StrCat("must be an integer >= ", minimum, ", got '", value, "'");
        }
        return "";
      },
      absl::StrCat("INT>=", minimum));
}

CLI::Validator Fraction() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        double parsed = 0;
        if (!absl::SimpleAtod(value, &parsed) || !(parsed > 0 && parsed <= 1)) {
          return absl::StrCat("must be in (0, 1], got '", value, "'");
        }
        return "";
      },
      "(0,1]");
}

CLI::Validator NonNegative() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        double parsed = 0;
        if (!absl::SimpleAtod(value, &parsed) || !(parsed >= 0)) {
          return absl::StrCat("must be a number >= 0, got '", value, "'");
        }
        return "";
      },
      ">=0");
}

void AddConnectionOptions(CLI::App* app, ConnectionFlags* flags, bool admin,
                          const std::string& group) {
  app->add_option(
         "--target", flags->target,
         "Server address: host:port, or any gRPC target such as dns:///host:port (every "
         "address the name resolves to is a backend) or ipv4:10.0.0.1:50051,10.0.0.2:50051")
      ->group(group);
  app->add_option("--lb_policy", flags->lb_policy,
                  "Load balancing over the target's addresses: round_robin or pick_first (default: "
                  "round_robin for dns:///, host:port and ipv4:/ipv6: targets)")
      ->check(CLI::IsMember({"round_robin", "pick_first"}))
      ->group(group);
  app->add_option("--deadline_ms", flags->deadline_ms,
                  "Deadline of each call in milliseconds, retries included (reload-model: at "
                  "least 600000, loading and warming a model takes a while)")
      ->check(IntAtLeast(1))
      ->group(group);
  app->add_option("--max_attempts", flags->max_attempts,
                  "Attempts per call: UNAVAILABLE (and calls the server answers with a retry "
                  "pushback) are retried with exponential backoff within the deadline; 1 disables "
                  "retries")
      ->check(IntAtLeast(1))
      ->group(group);
  app->add_flag("--tls", flags->tls, "Connect with TLS (implied by --tls_ca / --tls_cert)")
      ->group(group);
  app->add_option("--tls_ca", flags->tls_ca,
                  "PEM file of the CA certificates that sign the server's certificate (default: "
                  "the system roots)")
      ->group(group);
  app->add_option("--tls_cert", flags->tls_cert,
                  "PEM client certificate chain for mutual TLS (with --tls_key)")
      ->group(group);
  app->add_option("--tls_key", flags->tls_key, "PEM private key of --tls_cert")->group(group);
  app->add_option("--tls_server_name", flags->tls_server_name,
                  "Check the server certificate against this name instead of the target's host")
      ->group(group);
  if (!admin) return;
  app->add_option("--token", flags->token,
                  "Admin token, sent as `authorization: Bearer` (default: the environment "
                  "variable CROPSHIELD_ADMIN_TOKEN)")
      ->group(group);
  app->add_flag("--allow_plaintext_token", flags->allow_plaintext_token,
                "Send the admin token even over a plaintext channel to a target that is not "
                "loopback (anyone on the path can read it); without it such a call is refused "
                "with status 2")
      ->group(group);
}

void AddModelOptions(CLI::App* app, CliFlags* flags, const std::string& name_help,
                     const std::string& version_help, const std::string& group) {
  app->add_option("--model_name", flags->model_name, name_help)->group(group);
  app->add_option("--model_version", flags->model_version, version_help)
      ->check(IntAtLeast(0))
      ->group(group);
}

void AddJsonFlag(CLI::App* app, CliFlags* flags) {
  app->add_flag("--json", flags->json,
                "Print the response as one line of JSON (numbers as numbers, strings escaped) "
                "instead of text");
}

void AddPredict(CLI::App& app, CliFlags* flags) {
  CLI::App* predict = app.add_subcommand(
      "predict",
      "Classify photos: files, directories (the .jpg/.jpeg/.png/.webp photos directly inside, "
      "sorted by name; other files are skipped) and - (standard input). Prints each photo's "
      "top classes (one JSON line per photo with --json); exits 1 when any photo fails.");
  predict->add_option("IMAGE", flags->inputs, "Photo file, directory of photos, or - for stdin")
      ->required()
      ->type_name("PATH")
      ->default_str("");
  predict->add_option("--top_k", flags->top_k, "Number of ranked classes to show")
      ->check(IntAtLeast(1));
  AddJsonFlag(predict, flags);
  AddModelOptions(predict, flags, "Model to ask (default: the server's default model)",
                  "Version of that model (0: the one served)", kModel);
  AddConnectionOptions(predict, &flags->connection, false, kConnection);
}

void AddExplain(CLI::App& app, CliFlags* flags) {
  CLI::App* explain = app.add_subcommand(
      "explain",
      "Explain one photo's classification with a class activation map (Grad-CAM and variants) "
      "and write the maps and images the flags ask for.");
  cropshield::cli::ExplainFlags* e = &flags->explain;
  explain->add_option("IMAGE", e->image, "Photo file, or - for standard input")
      ->required()
      ->type_name("PATH");
  explain->add_option("--out", e->out,
                      "Write the PNG heatmap (photo size, RGBA) to this .png file");
  explain->add_option("--overlay", e->overlay,
                      "Write the heatmap blended over the photo here: .png (PNG) or .jpg/.jpeg "
                      "(JPEG); other extensions are refused (the server encodes only these two)");
  explain->add_option("--raw", e->raw,
                      "Write the feature-resolution map as float32 (.npy with shape, else raw)");
  explain->add_option("--image_map", e->image_map,
                      "Write the map resampled onto the photo (float32, .npy or raw)");
  explain->add_option("--class", e->target_class,
                      "Class to explain, index or label (default: the top-1 prediction); an "
                      "unknown label gets the nearest labels suggested");
  explain->add_option("--method", e->method, "Class activation map method")
      ->check(CLI::IsMember({"grad_cam", "grad_cam_plus_plus", "hires_cam", "layer_cam"},
                            CLI::ignore_case));
  explain->add_option("--colormap", e->colormap, "Heatmap colours")
      ->check(CLI::IsMember({"jet", "turbo", "viridis"}, CLI::ignore_case));
  explain->add_option("--alpha", e->alpha, "Heatmap opacity in the overlay")->check(Fraction());
  explain->add_flag("--bypass_cache", e->bypass_cache,
                    "Recompute even if the server has the explanation cached");
  explain->add_option("--top_k", flags->top_k, "Predictions returned with the explanation")
      ->check(IntAtLeast(1));
  AddJsonFlag(explain, flags);
  AddModelOptions(explain, flags, "Model to ask (default: the server's default model)",
                  "Version of that model (0: the one served)", kModel);
  AddConnectionOptions(explain, &flags->connection, false, kConnection);
}

void AddStats(CLI::App& app, CliFlags* flags) {
  CLI::App* stats = app.add_subcommand(
      "stats", "Print the server's statistics: uptime, models, calls, latency, caches.");
  AddJsonFlag(stats, flags);
  AddModelOptions(stats, flags,
                  "Show only this model (exit 1 with NOT_FOUND when it is not served)",
                  "Show only this version", kModel);
  AddConnectionOptions(stats, &flags->connection, false, kConnection);
}

void AddClearCache(CLI::App& app, CliFlags* flags) {
  CLI::App* clear = app.add_subcommand(
      "clear-cache",
      "Admin: clear the explanation and Predict caches (all, or one model / version).");
  clear->add_flag("--all-replicas,--all_replicas", flags->all_replicas,
                  "Clear every replica: each address the target's DNS name resolves to (or each "
                  "address of an ipv4:/ipv6: list) in turn, printing one result per replica; "
                  "exit 1 if any replica fails");
  AddJsonFlag(clear, flags);
  AddModelOptions(clear, flags,
                  "Clear only this model's entries (exit 1 with NOT_FOUND when it is not served)",
                  "Clear only this version (0: all)", kModel);
  AddConnectionOptions(clear, &flags->connection, true, kConnection);
}

void AddReloadModel(CLI::App& app, CliFlags* flags) {
  CLI::App* reload = app.add_subcommand(
      "reload-model",
      "Admin: load, warm and swap in a model version from the server's repository.");
  AddJsonFlag(reload, flags);
  AddModelOptions(reload, flags,
                  "The served model's name, checked before reloading (NOT_FOUND otherwise)",
                  "Version to load (0: the highest in the repository)", kModel);
  AddConnectionOptions(reload, &flags->connection, true, kConnection);
}

void AddHealth(CLI::App& app, CliFlags* flags) {
  CLI::App* health = app.add_subcommand(
      "health",
      "Ask grpc.health.v1 once, without retries; print the status and exit 0 only when "
      "SERVING.");
  health->add_option("--service", flags->service,
                     "Service name to ask about (empty: the server as a whole)");
  AddModelOptions(health, flags,
                  "Also require this model to be served (exit 1 with NOT_FOUND otherwise)",
                  "Also require this version to be served", kModel);
  AddConnectionOptions(health, &flags->connection, false, kConnection);
}

void AddBenchPhotos(CLI::App* bench, cropshield::client::BenchOptions* b) {
  bench
      ->add_option("--images", b->images,
                   "A photo file, or a directory whose JPEG/PNG/WebP photos are loaded (by "
                   "content; greyscale images such as lesion masks and other files are skipped "
                   "and counted)")
      ->required();
  bench->add_option("--images_filter", b->images_filter,
                    "Load only the directory's files whose name matches this glob (e.g. '*.jpg')");
  bench->add_flag("--images_keep_greyscale", b->images_keep_greyscale,
                  "Also load greyscale images (skipped by default: they are masks, not photos)");
}

void AddBenchLoad(CLI::App* bench, cropshield::client::BenchOptions* b) {
  bench->add_option("--rpc", b->rpc, "RPC to call")->check(CLI::IsMember({"predict", "explain"}));
  bench->add_option("--concurrency", b->concurrency,
                    "Closed loop: calls kept in flight, or a list swept one step per level "
                    "(1,8,64); default 1");
  bench->add_option("--rate", b->rate,
                    "Open loop instead: requests/s with Poisson arrivals, or a list (20,50); "
                    "latency counts from each call's scheduled time");
  bench
      ->add_option(
          "--max_outstanding", b->max_outstanding,
          "Open loop: calls in flight at most; an arrival over it waits for a slot (counted as "
          "delayed, or dropped when the step ends first)")
      ->check(IntAtLeast(1));
  bench->add_option("--seed", b->seed, "Open loop: seed of the arrival schedule");
  bench
      ->add_option("--duration", b->duration_s,
                   "Seconds to measure per step (ignored when --requests is set)")
      ->check(NonNegative());
  bench->add_option("--requests", b->requests, "Closed loop: measure this many calls per step")
      ->check(IntAtLeast(0));
  bench->add_option("--warmup", b->warmup_s, "Seconds of unmeasured load before every step")
      ->check(NonNegative());
}

void AddBench(CLI::App& app, CliFlags* flags) {
  CLI::App* bench = app.add_subcommand(
      "bench",
      "Load generator for Predict or Explain (closed-loop concurrency sweeps or open-loop "
      "Poisson rates); prints a table row per step, writes JSON and CSV.");
  cropshield::client::BenchOptions* b = &flags->bench;
  AddBenchPhotos(bench, b);
  AddBenchLoad(bench, b);
  bench->add_option("--json,--bench_json", b->json_path,
                    "Write the settings, photo set and every step as JSON to this file");
  bench->add_option("--csv", b->csv_path, "Write one row per step as CSV to this file");
  bench->add_flag("--bench_bypass_cache", b->bypass_cache,
                  "Explain with bypass_cache, so every call computes (uncached Explain)");
  bench
      ->add_option("--connections", b->connections,
                   "Client connections (HTTP/2) the calls are spread over; large photos at high "
                   "concurrency need several, as a fleet of callers would have")
      ->check(IntAtLeast(1));
  bench
      ->add_flag("--progress", b->progress,
                 "Print a progress line every second to stderr (--progress=false: none)")
      ->default_str("true");
  bench->add_option("--top_k", flags->top_k, "Classes per Predict response")->check(IntAtLeast(1));
  AddModelOptions(bench, flags, "Model to call (default: the server's default model)",
                  "Version of that model (0: the one served)", kModel);
  AddConnectionOptions(bench, &flags->connection, false, kConnection);
}

// `--helpfull`: every flag of every command in absl's format (`--name (help); default: X;`),
// which tests/deploy reads to check the flags that probes and health checks pass.
void PrintAllFlags(const CLI::App& app) {
  std::map<std::string, std::vector<std::string>> commands_of;  // flag name -> commands
  for (const CLI::App* command : app.get_subcommands({})) {
    for (const CLI::Option* option : command->get_options()) {
      for (const std::string& name : option->get_lnames()) {
        commands_of[name].push_back(command->get_name());
      }
    }
  }
  std::cout << kDescription << "\n\n  Flags (`cropshield COMMAND --help` lists a command's own):\n";
  std::set<std::string> printed;
  for (const CLI::App* command : app.get_subcommands({})) {
    for (const CLI::Option* option : command->get_options()) {
      for (const std::string& name : option->get_lnames()) {
        if (name == "help" || !printed.insert(name).second) continue;
        std::string fallback = option->get_default_str();
        if (fallback.empty() && option->get_expected_min() == 0) {
          fallback = "false";  // a flag
        } else if (option->get_type_name().rfind("TEXT", 0) == 0 || fallback.empty()) {
          fallback = absl::StrCat("\"", fallback, "\"");
        }
        const std::vector<std::string>& commands = commands_of[name];
        const std::string scope = commands.size() == app.get_subcommands({}).size()
                                      ? ""
                                      : absl::StrCat(absl::StrJoin(commands, ", "), ": ");
        std::cout << "\n    --" << name << " (" << scope << option->get_description()
                  << "); default: " << fallback << ";\n";
      }
    }
  }
  std::cout << "\n" << kFooter << "\n";
}

int Dispatch(const CLI::App& app, const CliFlags& flags) {
  const std::string command = app.get_subcommands().front()->get_name();
  if (command == "predict") return cropshield::cli::RunPredict(flags);
  if (command == "explain") return cropshield::cli::RunExplain(flags);
  if (command == "stats") return cropshield::cli::RunStats(flags);
  if (command == "clear-cache") return cropshield::cli::RunClearCache(flags);
  if (command == "reload-model") return cropshield::cli::RunReloadModel(flags);
  if (command == "health") return cropshield::cli::RunHealth(flags);
  return cropshield::cli::RunBench(flags);
}

}  // namespace

int main(int argc, char** argv) {
  CliFlags flags;
  CLI::App app(kDescription, "cropshield");
  app.footer(kFooter);
  app.option_defaults()->always_capture_default();
  app.require_subcommand(1, 1);
  AddPredict(app, &flags);
  AddExplain(app, &flags);
  AddStats(app, &flags);
  AddClearCache(app, &flags);
  AddReloadModel(app, &flags);
  AddHealth(app, &flags);
  AddBench(app, &flags);
  app.add_flag_callback(
      "--helpfull",
      [&app] {
        PrintAllFlags(app);
        throw CLI::Success();
      },
      "Print every flag of every command and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (app.get_subcommands().empty() && argc > 1 && argv[1][0] != '-') {
      std::cerr << "cropshield: unknown command '" << argv[1] << "'\n";
    }
    return app.exit(e) == 0 ? cropshield::cli::kExitOk : cropshield::cli::kExitUsage;
  }
  return Dispatch(app, flags);
}
