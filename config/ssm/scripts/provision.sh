#!/usr/bin/env bash
# Provision: Terraform in two layers, one state each in the encrypted artifacts bucket, locked in
# $lockTable.
#   app      config/terraform/app      ALB, listener, security groups: made by the first release, then kept
#            state tfstate/<appId>/<environment>/app.tfstate
#   release  config/terraform/release  launch template (the new AMI), ASG, target group = green
#            state tfstate/<appId>/<environment>/release-<runId>.tfstate (one per run)
# mode=apply:   app layer, then release layer; result.json {launchTemplateId, asgName,
#               targetGroupArn, albDns, terraformStateVersion}
# mode=destroy: the release layer of this run only (compensation); result.json {destroyed: true}
#
# Run by the ami-pipeline-<stage>-provision SSM document, which exports its parameters as
# environment variables of the same names: runConfigParameter artifactsBucket resultPrefix
# assetsPrefix region kmsKeyArn amiId lockTable mode, plus WORK_DIR. Optional: AMI_PIPELINE_SITE_DIR
# (default /etc/ami-pipeline) may hold terraform.tfvars.json with the site's network settings; it is
# given to both layers before the run's own values.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

init_step provision
require_params amiId lockTable mode
fetch_run_config

app_id="$RUN_APP_ID"
environment='' version='' build_id='' port='' instance_type='' min_size='' max_size='' volume_size=''
health_check_path='' health_check_status='' services='' log_group_names=''
rc_read environment .release.environment "$STAGE_RE" \
  version .release.version "$VERSION_RE" \
  build_id .release.buildId "$BUILD_ID_RE" \
  port .app.runtime.port "$UINT_RE" \
  instance_type .app.runtime.instanceType "$INSTANCE_TYPE_RE" \
  min_size .app.runtime.minSize "$UINT_RE" \
  max_size .app.runtime.maxSize "$UINT_RE" \
  volume_size .app.bake.volumeSizeGiB '^[0-9]{1,4}$' \
  health_check_path .app.runtime.healthCheckPath "$HEALTH_CHECK_PATH_RE" \
  health_check_status .app.runtime.healthCheckExpectedStatus '^[1-5][0-9]{2}$'
rc_list services .app.services "$SERVICE_RE"
rc_list log_group_names '[.app.logGroups[]?.name]' "$LOG_GROUP_RE"
tags="$(rc_tags .app.tags .platform.tags)"

state_prefix="tfstate/$app_id/$environment"
release_state_key="$state_prefix/release-$RUN_ID.tfstate"
site_vars="${AMI_PIPELINE_SITE_DIR:-/etc/ami-pipeline}/terraform.tfvars.json"

# release_state_exists: whether this run's release state object is in the bucket (404 = no; any
# other error stops the script, so a permissions problem never passes for "nothing to destroy").
release_state_exists() {
  local err
  if err="$(aws s3api head-object --region "$region" --bucket "$artifactsBucket" --key "$release_state_key" \
    --query VersionId --output text 2>&1 >/dev/null)"; then
    return 0
  fi
  [[ $err == *"(404)"* || $err == *"Not Found"* ]] && return 1
  die "cannot check s3://$artifactsBucket/$release_state_key: ${err//$'\n'/ }"
}

# prepare_layer <layer>: a private copy of the layer, so its .terraform/ stays in WORK_DIR.
prepare_layer() {
  rm -rf -- "$WORK_DIR/terraform-$1"
  cp -R -- "$ASSETS_DIR/terraform/$1" "$WORK_DIR/terraform-$1"
  rm -rf -- "$WORK_DIR/terraform-$1/.terraform"
}

# tf_init <layer> <state key>
tf_init() {
  terraform -chdir="$WORK_DIR/terraform-$1" init -input=false -no-color -reconfigure \
    "-backend-config=bucket=$artifactsBucket" \
    "-backend-config=key=$2" \
    "-backend-config=region=$region" \
    "-backend-config=encrypt=true" \
    "-backend-config=kms_key_id=$kmsKeyArn" \
    "-backend-config=dynamodb_table=$lockTable" ||
    die "terraform init of the $1 layer failed (state s3://$artifactsBucket/$2)"
}

# tf <layer> <apply|destroy> <var file>
tf() {
  local args=("$2" -input=false -no-color -auto-approve)
  if [[ -f $site_vars ]]; then args+=("-var-file=$site_vars"); fi
  args+=("-var-file=$3")
  terraform -chdir="$WORK_DIR/terraform-$1" "${args[@]}" || die "terraform $2 of the $1 layer failed"
}

# tf_outputs <layer>: `terraform output -json` flattened to {name: value}.
tf_outputs() {
  local out
  out="$(terraform -chdir="$WORK_DIR/terraform-$1" output -no-color -json)" ||
    die "terraform output of the $1 layer failed"
  jq -ce 'with_entries(.value |= .value)' <<<"$out" 2>/dev/null || die "terraform output of the $1 layer is not JSON"
}

# output_string <outputs json> <name> <pattern>
output_string() {
  local value
  value="$(jq -j --arg name "$2" '.[$name] | if type == "string" then . else error("missing") end' <<<"$1" \
    2>/dev/null && printf x)" || die "terraform output $2 is missing or not a string"
  value="${value%x}"
  [[ $value =~ $3 ]] || die "terraform output $2 does not match $3"
  printf '%s' "$value"
}

if [[ $mode == destroy ]] && ! release_state_exists; then
  # Nothing was applied for this run, so there is nothing to undo.
  write_result '{"destroyed":true}'
  exit 0
fi

prepare_layer app
prepare_layer release

# Values both layers declare.
app_var_file="$WORK_DIR/app.tfvars.json"
jq -n --arg app_id "$app_id" --arg environment "$environment" --arg stage "$RUN_STAGE" \
  --arg region "$region" --arg kms_key_arn "$kmsKeyArn" --argjson port "$port" --argjson tags "$tags" \
  '$ARGS.named' >"$app_var_file"

tf_init app "$state_prefix/app.tfstate"
# In destroy mode the app layer is only read: its outputs are inputs of the release layer.
if [[ $mode == apply ]]; then tf app apply "$app_var_file"; fi
app_outputs="$(tf_outputs app)"
vpc_id="$(output_string "$app_outputs" vpc_id '^vpc-[a-f0-9]{8,17}$')"
instance_sg="$(output_string "$app_outputs" instance_security_group_id '^sg-[a-f0-9]{8,17}$')"
alb_dns="$(output_string "$app_outputs" alb_dns_name '^[A-Za-z0-9.-]{1,255}$')"
listener_arn="$(output_string "$app_outputs" listener_arn \
  '^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:[0-9]{12}:listener/app/[A-Za-z0-9-]+/[a-f0-9]+/[a-f0-9]+$')"
subnet_ids="$(jq -ce '.subnet_ids | if type == "array" and length > 0
  and all(type == "string" and test("\\Asubnet-[a-f0-9]{8,17}\\z")) then . else error("bad") end' \
  <<<"$app_outputs" 2>/dev/null)" || die "terraform output subnet_ids of the app layer is not a list of subnet ids"

release_var_file="$WORK_DIR/release.tfvars.json"
jq --arg run_id "$RUN_ID" --arg app_version "$version" --arg build_id "$build_id" --arg ami_id "$amiId" \
  --arg instance_type "$instance_type" --argjson min_size "$min_size" --argjson max_size "$max_size" \
  --argjson volume_size "$volume_size" --arg health_check_path "$health_check_path" \
  --argjson health_check_status "$health_check_status" --argjson services "$services" \
  --argjson log_group_names "$log_group_names" --arg vpc_id "$vpc_id" --argjson subnet_ids "$subnet_ids" \
  --arg instance_security_group_id "$instance_sg" --arg listener_arn "$listener_arn" \
  '. + $ARGS.named' "$app_var_file" >"$release_var_file"

tf_init release "$release_state_key"

if [[ $mode == destroy ]]; then
  tf release destroy "$release_var_file"
  write_result '{"destroyed":true}'
  exit 0
fi

tf release apply "$release_var_file"
release_outputs="$(tf_outputs release)"
launch_template_id="$(output_string "$release_outputs" launch_template_id '^lt-[a-f0-9]{8,17}$')"
asg_name="$(output_string "$release_outputs" asg_name "${PARAMETER_PATTERNS[asgName]}")"
target_group_arn="$(output_string "$release_outputs" target_group_arn \
  '^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:[0-9]{12}:targetgroup/[A-Za-z0-9-]+/[a-f0-9]+$')"
state_version="$(aws s3api head-object --region "$region" --bucket "$artifactsBucket" --key "$release_state_key" \
  --query VersionId --output text)" || die "cannot read the version of s3://$artifactsBucket/$release_state_key"
[[ $state_version =~ ^[A-Za-z0-9._-]{1,1024}$ && $state_version != None && $state_version != null ]] ||
  die "s3://$artifactsBucket/$release_state_key has no version id (is the bucket versioned?)"

result="$(jq -cn --arg launchTemplateId "$launch_template_id" --arg asgName "$asg_name" \
  --arg targetGroupArn "$target_group_arn" --arg albDns "$alb_dns" --arg terraformStateVersion "$state_version" \
  '$ARGS.named')"
write_result "$result"
