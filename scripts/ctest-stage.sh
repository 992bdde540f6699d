# Sourced by scripts/test.sh and scripts/test-sanitizers.sh: runs one CTest stage and says what it
# ran, so that a green log cannot hide a stage that ran nothing or skipped tests.
#
#   ctest_stage NAME BUILD_DIR [ctest arguments...]
#
# Logs "stage NAME: N tests (ctest -N ...)" before running, fails when the selection is empty,
# runs ctest (output also in BUILD_DIR/ctest-NAME.log), and fails the stage when a test did not
# run (skipped or disabled) unless it has the label gpu (those skip on hosts without CUDA). Appends
# one line per stage to $CROPSHIELD_STAGE_SUMMARY when set (scripts/test.sh prints them at the end).
# Environment assignments before the call (ASAN_OPTIONS=... ctest_stage ...) reach the tests.

stage_log() { echo "stage: $*"; }

# Appends a line to the run's summary (no-op outside scripts/test.sh).
stage_summary() {
  if [[ -n ${CROPSHIELD_STAGE_SUMMARY:-} ]]; then
    printf '%s\n' "$*" >>"$CROPSHIELD_STAGE_SUMMARY"
  fi
}

ctest_stage() {
  local name=$1 dir=$2
  shift 2
  local count
  count=$(ctest --test-dir "$dir" -N "$@" | sed -n 's/^Total Tests: *\([0-9]*\)$/\1/p')
  if [[ -z $count || $count -eq 0 ]]; then
    stage_log "$name: no tests selected in $dir by: ctest -N $*"
    stage_summary "$name: FAILED, no tests selected"
    return 1
  fi
  stage_log "$name: $count tests in $dir (ctest -N $*)"
  local log=$dir/ctest-$name.log rc start=$SECONDS
  # ctest's own exit status, whatever the caller's pipefail and errexit settings.
  { ctest --test-dir "$dir" "$@" 2>&1 && echo 0 >"$log.rc" || echo $? >"$log.rc"; } | tee "$log"
  rc=$(<"$log.rc")
  rm -f "$log.rc"
  local seconds=$((SECONDS - start))

  # Tests that did not run: "  12 - name (Skipped)" / "(Disabled)" under "did not run:".
  local gpu_tests not_run test why skipped_gpu=0 unexpected=()
  gpu_tests=$(ctest --test-dir "$dir" -N -L '^gpu$' | sed -n 's/^ *Test *#[0-9]*: \(.*\)$/\1/p')
  not_run=$(sed -n '/^The following tests did not run:/,/^$/p' "$log" |
    sed -n 's/^[[:space:]]*[0-9]* - \(.*\) (\(.*\))$/\1 \2/p')
  while read -r test why; do
    [[ -n $test ]] || continue
    if [[ $why == Skipped ]] && grep -qxF "$test" <<<"$gpu_tests"; then
      skipped_gpu=$((skipped_gpu + 1))
    else
      unexpected+=("$test ($why)")
    fi
  done <<<"$not_run"
  local failed
  failed=$(sed -n 's/^[0-9]*% tests passed, \([0-9]*\) tests\{0,1\} failed out of [0-9]*$/\1/p' "$log")
  [[ -n $failed ]] || failed="?"
  local ran=$((count - skipped_gpu - ${#unexpected[@]}))
  local line="$name: $count tests: $((ran - ${failed/\?/0})) passed, $failed failed"
  ((skipped_gpu == 0)) || line+=", $skipped_gpu gpu tests skipped (no CUDA device)"
  if ((${#unexpected[@]})); then
    line+=", ${#unexpected[@]} did not run: ${unexpected[*]}"
    stage_log "$name: tests that did not run and are not gpu tests: ${unexpected[*]}" \
      "(a skip is a failure here; only tests labelled gpu may skip, on hosts without CUDA)"
    ((rc != 0)) || rc=1
  fi
  line+=" ($seconds s)"
  stage_log "$line"
  stage_summary "$line"
  return "$rc"
}
