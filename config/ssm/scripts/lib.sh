# shellcheck shell=bash
# shellcheck disable=SC2034 # the constants and globals here are used by the scripts that source it
# Shared by bake.sh, provision.sh and validate.sh on the builder host; sourced, never run.
#
# The SSM command documents (config/ssm/*.yml) export every document parameter as an environment
# variable named exactly like the parameter (runConfigParameter, artifactsBucket, …) and WORK_DIR,
# the command's private work directory, then run `bash <step>.sh`. Everything else comes from the
# run config (an SSM SecureString) and is checked against strict patterns before any tool sees it.
#
# Rules kept throughout: no eval, every expansion quoted, tool arguments built as arrays, secrets
# only in 0600 files (umask 077), errors as one line on stderr (the pipeline reports its tail).

# The document parameters (environment variables; an unset one is refused by require_params).
runConfigParameter="${runConfigParameter-}" artifactsBucket="${artifactsBucket-}" reportsBucket="${reportsBucket-}"
resultPrefix="${resultPrefix-}" assetsPrefix="${assetsPrefix-}" region="${region-}" kmsKeyArn="${kmsKeyArn-}"
amiId="${amiId-}" lockTable="${lockTable-}" mode="${mode-}" asgName="${asgName-}"
allowedFailedControls="${allowedFailedControls-}"

# Bracket expressions such as [a-z] must mean ASCII, whatever the builder's locale.
export LC_ALL=C
umask 077
# A failure inside $(…) must stop the script too, not just the substitution's subshell.
shopt -s inherit_errexit

# Same strings as PARAMETER_PATTERNS in shared/commands/contract.ts and the documents'
# allowedPattern (test/scripts/documents.test.ts keeps the three equal).
declare -rA PARAMETER_PATTERNS=(
  [runConfigParameter]='^/ami-pipeline/[a-z][a-z0-9]{1,9}/[a-z][a-z0-9-]{1,38}[a-z0-9]/[a-f0-9]{20}$'
  [artifactsBucket]='^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$'
  [reportsBucket]='^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$'
  [resultPrefix]='^[a-z][a-z0-9]{1,9}/[a-z][a-z0-9-]{1,38}[a-z0-9]/[a-f0-9]{20}/(bake|provision|validate)$'
  [assetsPrefix]='^tooling/[A-Za-z0-9._-]{1,64}$'
  [region]='^[a-z]{2}(-[a-z]+)+-[0-9]$'
  [kmsKeyArn]='^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[a-f0-9-]{36}$'
  [amiId]='^ami-[a-f0-9]{8,17}$'
  [lockTable]='^[A-Za-z0-9_.-]{3,255}$'
  [mode]='^(apply|destroy)$'
  [asgName]='^[A-Za-z0-9_.-]{1,255}$'
  [allowedFailedControls]='^[0-9]{1,4}$'
  [executionTimeout]='^[1-9][0-9]{0,5}$'
)

# Patterns for values read from the run config (mirroring shared/trigger/message.ts and
# shared/config/app.ts, minus anything a shell or a tool could misread).
readonly APP_ID_RE='^[a-z][a-z0-9-]{1,38}[a-z0-9]$'
readonly STAGE_RE='^[a-z][a-z0-9]{1,9}$'
readonly RUN_ID_RE='^[a-f0-9]{20}$'
readonly VERSION_RE='^[A-Za-z0-9._-]{1,64}$'
readonly BUILD_ID_RE='^[A-Za-z0-9][A-Za-z0-9._:/#@+-]{0,127}$'
readonly AMI_ID_RE='^ami-[a-f0-9]{8,17}$'
readonly SNAPSHOT_ID_RE='^snap-[a-f0-9]{8,17}$'
readonly INSTANCE_ID_RE='^i-[a-f0-9]{8,17}$'
readonly INSTANCE_TYPE_RE='^[a-z][a-z0-9-]*[0-9][a-z0-9-]*\.[a-z0-9]+$'
readonly SSM_PARAMETER_NAME_RE='^/[A-Za-z0-9_./-]{1,1000}$'
readonly CHEF_RUN_LIST_ITEM_RE='^(recipe|role)\[[A-Za-z0-9_:.-]+\]$'
# The artifact key deliberately excludes the quote that S3's "safe characters" (and the trigger
# schema) allow: the URI is handed to a shell on the build instance.
readonly ARTIFACT_URI_RE='^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[A-Za-z0-9!_.*()/-]{1,1024}$'
readonly SHA256_RE='^[a-f0-9]{64}$'
readonly UINT_RE='^[0-9]{1,6}$'
readonly HEALTH_CHECK_PATH_RE='^/[A-Za-z0-9._~/-]{0,255}$'
readonly SERVICE_RE='^[a-z0-9][a-z0-9-]{0,63}$'
readonly LOG_GROUP_RE='^[A-Za-z0-9_/.#-]{1,512}$'
readonly PROFILE_RE='^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$'
# Tags are checked inside jq (they only ever travel in JSON files); \A and \z, not ^ and $, because
# Oniguruma's $ also matches before a trailing newline.
readonly TAG_KEY_JQ_RE='\A[A-Za-z0-9 _.:/=+@-]{1,128}\z'
readonly TAG_VALUE_JQ_RE='\A[A-Za-z0-9 _.:/=+@-]{0,256}\z'

# die <reason>: one line on stderr, exit 1.
die() {
  printf '%s: %s\n' "${STEP:-ami-pipeline}" "$*" >&2
  exit 1
}

# require_params <name>…: every named environment variable is set and matches its pattern.
# The value is not echoed: it failed validation, so it may hold anything, newlines included.
require_params() {
  local name value
  for name in "$@"; do
    [[ -n ${PARAMETER_PATTERNS[$name]+x} ]] || die "internal: no pattern for parameter $name"
    value="${!name-}"
    [[ -n $value ]] || die "parameter $name is not set (the command document exports it)"
    [[ $value =~ ${PARAMETER_PATTERNS[$name]} ]] || die "parameter $name does not match ${PARAMETER_PATTERNS[$name]}"
  done
}

# init_step <step>: common start of every script. Checks the parameters shared by all steps,
# that resultPrefix and runConfigParameter name the same run and this step, and prepares WORK_DIR.
init_step() {
  STEP="$1"
  require_params runConfigParameter artifactsBucket resultPrefix assetsPrefix region kmsKeyArn
  local stage app run
  IFS=/ read -r _ _ stage app run <<<"$runConfigParameter"
  [[ $resultPrefix == "$stage/$app/$run/$STEP" ]] ||
    die "resultPrefix $resultPrefix does not belong to $runConfigParameter and step $STEP"
  RUN_STAGE="$stage" RUN_APP_ID="$app" RUN_ID="$run"

  ASSETS_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd -P)"
  if [[ -z ${WORK_DIR-} ]]; then
    WORK_DIR="$(mktemp -d)"
    # shellcheck disable=SC2064 # expand now: WORK_DIR is fixed from here on
    trap "rm -rf -- '$WORK_DIR'" EXIT
  fi
  [[ -d $WORK_DIR && -O $WORK_DIR ]] || die "WORK_DIR $WORK_DIR is not a directory owned by $(id -un)"
  chmod 700 "$WORK_DIR"
  RUN_CONFIG="$WORK_DIR/run-config.json"
  RESULT_FILE="$WORK_DIR/result.json"
  # No update checks from Packer/Terraform, no interactive prompts, no AWS CLI v2 pager.
  export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0 AWS_PAGER=
}

# fetch_run_config: the run config SecureString into a 0600 file (never printed), then checks that
# it describes the run the parameters name, with the stage's key and bucket.
fetch_run_config() {
  if ! aws ssm get-parameter --region "$region" --name "$runConfigParameter" --with-decryption \
    --query Parameter.Value --output text >"$RUN_CONFIG"; then
    die "cannot read the run config $runConfigParameter"
  fi
  local app_id stage run_id key bucket rc_region
  rc_read app_id .release.appId "$APP_ID_RE" \
    stage .run.stage "$STAGE_RE" \
    run_id .run.runId "$RUN_ID_RE" \
    key .platform.kmsKeyArn "${PARAMETER_PATTERNS[kmsKeyArn]}" \
    bucket .platform.artifactsBucket "${PARAMETER_PATTERNS[artifactsBucket]}" \
    rc_region .run.region "${PARAMETER_PATTERNS[region]}"
  [[ $app_id == "$RUN_APP_ID" && $stage == "$RUN_STAGE" && $run_id == "$RUN_ID" ]] ||
    die "run config names run $stage/$app_id/$run_id, not the one in $runConfigParameter"
  [[ $key == "$kmsKeyArn" ]] || die "run config platform.kmsKeyArn differs from the kmsKeyArn parameter"
  [[ $bucket == "$artifactsBucket" ]] || die "run config platform.artifactsBucket differs from the artifactsBucket parameter"
  [[ $rc_region == "$region" ]] || die "run config run.region differs from the region parameter"
}

# rc_read <variable> <jq path> <pattern> [<variable> <jq path> <pattern>]…: reads run config values
# (strings, or numbers as text) in one jq pass and assigns each to its variable once it matches its
# pattern; otherwise exits with the reason. jq hands every value over JSON-encoded, one per line, so
# a newline inside a value can neither split it nor be lost (as $(…) drops trailing newlines).
# Callers declare the variables before the call (shellcheck cannot see through printf -v).
rc_read() {
  local names=() paths=() patterns=() out lines=() i
  while (($# >= 3)); do
    names+=("$1") paths+=("$2") patterns+=("$3")
    shift 3
  done
  (($# == 0)) || die "internal: rc_read takes variable/path/pattern triples"
  out="$(IFS=,
    jq -r "[${paths[*]}][]"' | if type == "string" then tojson elif type == "number" then tostring | tojson
      else "null" end' "$RUN_CONFIG" 2>/dev/null)" || die "run config $runConfigParameter is not JSON of the expected shape"
  mapfile -t lines <<<"$out"
  ((${#lines[@]} == ${#names[@]})) || die "run config $runConfigParameter is not JSON of the expected shape"
  for i in "${!names[@]}"; do
    json_checked "${lines[$i]}" "run config ${paths[$i]}" "${patterns[$i]}"
    printf -v "${names[$i]}" '%s' "$REPLY"
  done
}

# rc_list <variable> <jq path> <pattern>: the string array at <path> (absent = empty), every
# element checked, assigned to <variable> as a compact JSON array (and to RC_ITEMS as a bash array).
rc_list() {
  local out lines=() line json='' sep=''
  RC_ITEMS=()
  out="$(jq -r "($2) // [] | if type == \"array\" then .[] | if type == \"string\" then tojson else \"null\" end
    else error(\"not an array\") end" "$RUN_CONFIG" 2>/dev/null)" || die "run config $2 is not a list"
  [[ -z $out ]] || mapfile -t lines <<<"$out"
  for line in "${lines[@]}"; do
    json_checked "$line" "run config $2[]" "$3"
    RC_ITEMS+=("$REPLY")
    json+="$sep\"$REPLY\"" sep=,
  done
  printf -v "$1" '[%s]' "$json"
}

# json_checked <JSON text> <what> <pattern>: REPLY = the string the JSON text encodes, if it matches
# <pattern>. A JSON escape means a quote, backslash or control character, which no pattern admits.
json_checked() {
  [[ $1 != null ]] || die "$2 is missing or not a string"
  [[ $1 == \"*\" && $1 != *\\* ]] || die "$2 does not match $3"
  REPLY="${1:1:${#1}-2}"
  [[ $REPLY =~ $3 ]] || die "$2 does not match $3"
}

# rc_tags <jq path>…: the string maps at the paths merged left to right, keys and values checked.
rc_tags() {
  local path filter='{}'
  for path in "$@"; do filter="$filter + ($path // {})"; done
  jq -ce --arg k "$TAG_KEY_JQ_RE" --arg v "$TAG_VALUE_JQ_RE" "$filter"' |
    if type == "object" and all(to_entries[]; (.key | test($k)) and (.value | type == "string" and test($v)))
    then . else error("bad tags") end' "$RUN_CONFIG" 2>/dev/null ||
    die "run config tags ($*) must map $TAG_KEY_JQ_RE to $TAG_VALUE_JQ_RE"
}

# json_array <value>…: the arguments, each already matched against a strict pattern, as a compact
# JSON array of strings.
json_array() {
  local value json='' sep=''
  for value in "$@"; do
    [[ $value =~ ^[A-Za-z0-9_.:/@+=#-]*$ ]] || die "internal: json_array got a value it cannot encode"
    json+="$sep\"$value\"" sep=,
  done
  printf '[%s]' "$json"
}

# upload <file> <bucket> <key>: SSE-KMS with the stage key, whatever the bucket default.
upload() {
  aws s3 cp --region "$region" --only-show-errors "$1" "s3://$2/$3" \
    --sse aws:kms --sse-kms-key-id "$kmsKeyArn" >&2 || die "cannot upload s3://$2/$3"
}

# write_result <json>: result.json in WORK_DIR, uploaded where command-completed reads it.
write_result() {
  printf '%s\n' "$1" >"$RESULT_FILE"
  upload "$RESULT_FILE" "$artifactsBucket" "$resultPrefix/result.json"
  printf '%s result: %s\n' "$STEP" "$1"
}
