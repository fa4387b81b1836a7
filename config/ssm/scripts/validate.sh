#!/usr/bin/env bash
# Validate: `inspec exec` of the app's profiles against every InService (green) instance of
# $asgName, one combined JSON report to s3://$reportsBucket/$resultPrefix/inspec-report.json, then
# result.json {passed, failed, skipped, reportKey}. Fails (after writing both) when more controls
# failed than $allowedFailedControls.
#
# Run by the ami-pipeline-<stage>-validate SSM document, which exports its parameters as environment
# variables of the same names: runConfigParameter artifactsBucket reportsBucket resultPrefix
# assetsPrefix region kmsKeyArn asgName allowedFailedControls, plus WORK_DIR.
#
# Profiles named in app.inspec.profiles are looked up under the pipeline's assets (config/inspec/)
# and then under $AMI_PIPELINE_SITE_DIR/inspec (default /etc/ami-pipeline/inspec), the builder's
# vendored profiles; nothing is fetched from the network. InSpec reaches the instances through SSM
# (the train-awsssm transport: `inspec plugin install train-awsssm` on the builder), so the app's
# instances need no inbound port and no key pair.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

init_step validate
require_params reportsBucket asgName allowedFailedControls
fetch_run_config

site_profiles="${AMI_PIPELINE_SITE_DIR:-/etc/ami-pipeline}/inspec"
profiles=''
rc_list profiles .app.inspec.profiles "$PROFILE_RE"
profile_dirs=()
for profile in "${RC_ITEMS[@]}"; do
  [[ /$profile/ != */./* && /$profile/ != */../* ]] || die "InSpec profile $profile must not contain . or .. segments"
  if [[ -f $ASSETS_DIR/inspec/$profile/inspec.yml ]]; then
    profile_dirs+=("$ASSETS_DIR/inspec/$profile")
  elif [[ -f $site_profiles/$profile/inspec.yml ]]; then
    profile_dirs+=("$site_profiles/$profile")
  else
    die "InSpec profile $profile is neither in the pipeline's assets (inspec/) nor in $site_profiles"
  fi
done
((${#profile_dirs[@]} > 0)) || die "run config .app.inspec.profiles is empty"
printf 'InSpec profiles: %s\n' "$profiles"

instances_json="$(aws autoscaling describe-auto-scaling-groups --region "$region" \
  --auto-scaling-group-names "$asgName" \
  --query "AutoScalingGroups[0].Instances[?LifecycleState=='InService'].InstanceId" --output json)" ||
  die "cannot describe the auto scaling group $asgName"
instances=()
while IFS= read -r instance; do
  [[ $instance =~ $INSTANCE_ID_RE ]] || die "auto scaling group $asgName lists an unexpected instance id"
  instances+=("$instance")
done < <(jq -r '.[]? // empty' <<<"$instances_json")
((${#instances[@]} > 0)) || die "auto scaling group $asgName has no InService instances to validate"

reports=()
for instance in "${instances[@]}"; do
  report="$WORK_DIR/inspec-$instance.json"
  status=0
  AWS_REGION="$region" inspec exec "${profile_dirs[@]}" --target "awsssm://$instance" \
    --reporter "json:$report" --no-color --chef-license=accept-silent || status=$?
  # 100: some controls failed, 101: some skipped; both are results, anything else is an error.
  case $status in
    0 | 100 | 101) ;;
    *) die "inspec exec failed on $instance (exit $status)" ;;
  esac
  jq -e '.profiles | type == "array"' "$report" >/dev/null 2>&1 || die "inspec exec wrote no JSON report for $instance"
  reports+=("$report")
done

# One report for the run: each instance's InSpec report as it was written.
report_file="$WORK_DIR/inspec-report.json"
instance_list="$(json_array "${instances[@]}")"
jq -s --arg asgName "$asgName" --argjson instances "$instance_list" \
  '{asgName: $asgName, reports: [range(0; length) as $i | {instanceId: $instances[$i], report: .[$i]}]}' \
  "${reports[@]}" >"$report_file"

# A control counts once, by profile and id: failed if it failed on any instance, else skipped if it
# was skipped (or had no results) on any instance, else passed.
counts="$(jq -c '
  def status: [.results[]?.status] as $s
    | if any($s[]; . == "failed") then "failed" elif any($s[]; . == "passed") then "passed" else "skipped" end;
  [.reports[].report.profiles[]? | .name as $profile | .controls[]? | {id: "\($profile)/\(.id)", status: status}]
  | group_by(.id)
  | map([.[].status] | if index("failed") then "failed" elif index("skipped") then "skipped" else "passed" end)
  | {passed: map(select(. == "passed")) | length, failed: map(select(. == "failed")) | length,
     skipped: map(select(. == "skipped")) | length}' "$report_file")"

report_key="$resultPrefix/inspec-report.json"
upload "$report_file" "$reportsBucket" "$report_key"
result="$(jq -c --arg reportKey "$report_key" '. + {reportKey: $reportKey}' <<<"$counts")"
write_result "$result"

failed="$(jq -r .failed <<<"$counts")"
allowed=$((10#$allowedFailedControls))
if ((failed > allowed)); then
  die "InSpec: $failed failed controls exceed the allowed $allowed (report s3://$reportsBucket/$report_key)"
fi
