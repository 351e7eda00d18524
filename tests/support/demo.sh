#!/usr/bin/env bash
# make demo: the real binary against a local fixture Cost Explorer, printing the events.
# stdout holds only the events (one JSON line each); everything else goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/../.."
# Where cargo built them: $CARGO_TARGET_DIR (relative to the top, as cargo takes it), else target.
build="${CARGO_TARGET_DIR:-target}/debug"
work=$(mktemp -d)
trap 'kill "$fake" 2>/dev/null || true; rm -rf "$work"' EXIT
"$build/examples/fake-cost-explorer" --url-file "$work/url" >/dev/null &
fake=$!
for _ in $(seq 100); do [[ -s $work/url ]] && break; sleep 0.05; done
[[ -s $work/url ]] || { echo "demo: the fixture Cost Explorer did not start" >&2; exit 1; }
cat >"$work/config.yml" <<YAML
target: "-"
endpoint: "$(cat "$work/url")"
YAML
cat >"$work/secret.yml" <<YAML
access_key_id: "AKIDEXAMPLE"
secret_access_key: "demo-secret-not-real"
YAML
echo "# source-aws-billing once --date 2022-06-13 --target -   (fixture Cost Explorer at $(cat "$work/url"))" >&2
"$build/source-aws-billing" once --date 2022-06-13 --config "$work/config.yml" --secret "$work/secret.yml"
