#!/usr/bin/env bash
# Deploys one release to several Rollbridge hosts, one host after the other.
#
#   RB_HOSTS="web1 web2" rolling-deploy.sh --release-path /srv/shop/releases/42 --release-id 42
#
# Every argument is passed to `rollbridge deploy` on each host. Each host
# deploys without a gap of its own (its daemon keeps serving the old release
# until the new one is healthy), so the balancer keeps both hosts in.
# The first host whose deploy fails stops the roll: the script exits 1 naming
# it, and the hosts after it stay on the old release.
#
# RB_HOSTS       the hosts, separated by spaces or newlines (required)
# RB_DEPLOY_CMD  instead of `ssh $host rollbridge deploy ARGS`, run this with
#                bash, the host in $RB_HOST and the arguments in "$@", e.g.
#                RB_DEPLOY_CMD='rollbridge deploy --config "/srv/$RB_HOST/rollbridge.json" "$@"'
set -euo pipefail

hosts=${RB_HOSTS:-}
if [[ -z "${hosts//[[:space:]]/}" ]]; then
  echo "rolling-deploy: set RB_HOSTS to the hosts to deploy, e.g. RB_HOSTS=\"web1 web2\"" >&2
  exit 2
fi
read -r -d '' -a list <<<"$hosts" || true

deploy_one() {
  local host=$1
  shift
  if [[ -n "${RB_DEPLOY_CMD:-}" ]]; then
    RB_HOST=$host bash -c "$RB_DEPLOY_CMD" rolling-deploy "$@"
  else
    # ssh joins its arguments into one command line: quote each one.
    ssh -o BatchMode=yes -- "$host" "rollbridge deploy$(printf ' %q' "$@")"
  fi
}

done_hosts=()
for i in "${!list[@]}"; do
  host=${list[$i]}
  echo "rolling-deploy: deploying to $host ($((i + 1))/${#list[@]})" >&2
  if ! deploy_one "$host" "$@"; then
    echo "rolling-deploy: deploy failed on $host; stopped there." >&2
    echo "rolling-deploy: new release on: ${done_hosts[*]:-(none)}" >&2
    echo "rolling-deploy: still on the old release: ${list[*]:$i}" >&2
    exit 1
  fi
  done_hosts+=("$host")
done
echo "rolling-deploy: all ${#list[@]} hosts deployed" >&2
