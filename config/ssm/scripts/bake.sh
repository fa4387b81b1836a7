#!/usr/bin/env bash
# Bake: `packer build` of the app's AMI (encrypted with the stage key) from the run config, then
# result.json {amiId, snapshotIds, region} to s3://$artifactsBucket/$resultPrefix/result.json.
#
# Run by the ami-pipeline-<stage>-bake SSM document, which exports its parameters as environment
# variables of the same names: runConfigParameter artifactsBucket resultPrefix assetsPrefix region
# kmsKeyArn, plus WORK_DIR (private, removed after the command). Optional: AMI_PIPELINE_SITE_DIR
# (default /etc/ami-pipeline) may hold packer.pkrvars.hcl with the builder site's settings (subnet,
# instance profile, …); the run's own values are applied after it and win.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

init_step bake
fetch_run_config

app_id="$RUN_APP_ID"
stage="$RUN_STAGE"
version='' build_id='' artifact_uri='' artifact_sha256='' instance_type='' volume_size='' run_list=''
source_ami='' base_parameter=''
rc_read version .release.version "$VERSION_RE" \
  build_id .release.buildId "$BUILD_ID_RE" \
  artifact_uri .release.artifact.s3Uri "$ARTIFACT_URI_RE" \
  artifact_sha256 .release.artifact.sha256 "$SHA256_RE" \
  instance_type .app.bake.instanceType "$INSTANCE_TYPE_RE" \
  volume_size .app.bake.volumeSizeGiB '^[0-9]{1,4}$'
rc_list run_list .app.bake.chefRunList "$CHEF_RUN_LIST_ITEM_RE"
[[ $run_list != '[]' ]] || die "run config .app.bake.chefRunList is empty"

if jq -e '.app.baseImage | has("amiId")' "$RUN_CONFIG" >/dev/null 2>&1; then
  rc_read source_ami .app.baseImage.amiId "$AMI_ID_RE"
else
  rc_read base_parameter .app.baseImage.ssmParameter "$SSM_PARAMETER_NAME_RE"
  source_ami="$(aws ssm get-parameter --region "$region" --name "$base_parameter" \
    --query Parameter.Value --output text)" || die "cannot read the base image parameter $base_parameter"
  [[ $source_ami =~ $AMI_ID_RE ]] || die "base image parameter $base_parameter does not hold an AMI id"
fi

tags="$(rc_tags .app.tags .platform.tags)"
tags="$(jq -c --arg name "$app_id-$version" --arg version "$version" --arg build "$build_id" \
  '. + {Name: $name, "ami-pipeline:version": $version, "ami-pipeline:build-id": $build}' <<<"$tags")"

# Chef attributes may hold secrets: they only ever live in this 0600 file (umask 077 in lib.sh).
chef_attributes="$WORK_DIR/chef-attributes.json"
jq -e '.app.bake.chefAttributes // {} | if type == "object" then . else error("not an object") end' \
  "$RUN_CONFIG" >"$chef_attributes" 2>/dev/null || die "run config .app.bake.chefAttributes is not an object"

manifest="$WORK_DIR/packer-manifest.json"
rm -f -- "$manifest" # the manifest post-processor appends to an existing file
var_file="$WORK_DIR/bake.pkrvars.json"
jq -n \
  --arg app_id "$app_id" --arg version "$version" --arg build_id "$build_id" --arg run_id "$RUN_ID" \
  --arg stage "$stage" --arg region "$region" --arg kms_key_arn "$kmsKeyArn" \
  --arg source_ami "$source_ami" --arg instance_type "$instance_type" \
  --argjson volume_size "$volume_size" --argjson chef_run_list "$run_list" \
  --arg chef_attributes_file "$chef_attributes" --arg artifact_s3_uri "$artifact_uri" \
  --arg artifact_sha256 "$artifact_sha256" --argjson tags "$tags" --arg manifest_path "$manifest" \
  '$ARGS.named' >"$var_file"

packer_args=(build -machine-readable -color=false)
site_vars="${AMI_PIPELINE_SITE_DIR:-/etc/ami-pipeline}/packer.pkrvars.hcl"
[[ -f $site_vars ]] && packer_args+=("-var-file=$site_vars")
packer_args+=("-var-file=$var_file" "$ASSETS_DIR/packer/app.pkr.hcl")

status=0
(cd "$WORK_DIR" && PACKER_CACHE_DIR="$WORK_DIR/packer_cache" packer "${packer_args[@]}") || status=$?
((status == 0)) || die "packer build failed (exit $status); see the command output for Packer's log"

# artifact_id of this run's build: "<region>:ami-…[,<region>:ami-…]".
artifact_id="$(jq -r '.last_run_uuid as $run | [.builds[]? | select(.packer_run_uuid == $run)]
  | last | .artifact_id // empty' "$manifest" 2>/dev/null || true)"
ami_id=""
IFS=, read -r -a artifacts <<<"$artifact_id"
for artifact in "${artifacts[@]}"; do
  [[ $artifact == "$region:"* ]] && ami_id="${artifact#"$region:"}"
done
[[ $ami_id =~ $AMI_ID_RE ]] || die "packer produced no AMI in $region (manifest $manifest has no artifact for this run)"

snapshots="$(aws ec2 describe-images --region "$region" --image-ids "$ami_id" \
  --query 'Images[0].BlockDeviceMappings[].Ebs.SnapshotId' --output json)" ||
  die "cannot describe the new AMI $ami_id"
snapshot_ids=()
while IFS= read -r snapshot; do
  [[ $snapshot =~ $SNAPSHOT_ID_RE ]] || die "AMI $ami_id has an unexpected snapshot id"
  snapshot_ids+=("$snapshot")
done < <(jq -r '.[]? // empty' <<<"$snapshots")
((${#snapshot_ids[@]} > 0)) || die "AMI $ami_id has no EBS snapshots"

snapshot_list="$(json_array "${snapshot_ids[@]}")"
result="$(jq -cn --arg amiId "$ami_id" --argjson snapshotIds "$snapshot_list" --arg region "$region" '$ARGS.named')"
write_result "$result"
