#!/usr/bin/env bash
# Mints an HS256 JWT for the quick-start config (examples/quickstart.yaml).
#
#   scripts/demo-token.sh SUB [SECRET]
#
# SUB becomes the `sub` claim (ward's x-user-id); SECRET defaults to the
# demo secret in examples/quickstart.yaml. The token carries kid "demo",
# iat = now, exp = now + 3600, email = SUB@example.com and roles
# ["reader","demo"]. Needs only bash, openssl and base64.
#
# FOR LOCAL DEMOS ONLY: the default secret is public.

set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ -z "$1" ]; then
    echo "usage: $0 SUB [SECRET]" >&2
    exit 2
fi

SUB="$1"
SECRET="${2:-ward-demo-secret-DO-NOT-USE-IN-PRODUCTION}"

case "$SUB" in
    *[\"\\]* | *[[:cntrl:]]*)
        echo "$0: SUB must not contain quotes, backslashes or control characters" >&2
        exit 2
        ;;
esac

# base64url without padding (RFC 7515 §2), from stdin.
b64url() {
    base64 | tr -d '\n=' | tr '+/' '-_'
}

NOW=$(date +%s)
EXP=$((NOW + 3600))

HEADER='{"alg":"HS256","typ":"JWT","kid":"demo"}'
PAYLOAD=$(printf '{"sub":"%s","email":"%s@example.com","roles":["reader","demo"],"iat":%d,"exp":%d}' \
    "$SUB" "$SUB" "$NOW" "$EXP")

SIGNING_INPUT="$(printf '%s' "$HEADER" | b64url).$(printf '%s' "$PAYLOAD" | b64url)"
SIGNATURE=$(printf '%s' "$SIGNING_INPUT" | openssl dgst -sha256 -hmac "$SECRET" -binary | b64url)

printf '%s.%s\n' "$SIGNING_INPUT" "$SIGNATURE"
