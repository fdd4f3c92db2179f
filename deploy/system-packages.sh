#!/bin/sh
# The Debian packages dualcam-rt needs beyond Python:  system-packages.sh test|demo
# Installs the missing ones (root: `apt-get update` once, then `apt-get install`); when not root it
# stops with one line giving the command. Nothing missing: it returns at once, without apt.
set -eu

# demo (`serve` on sim://): nothing; the wheels carry their libraries (libsndfile in soundfile,
# FFmpeg in OpenCV).
demo=""
# test: a real PulseAudio server and PortAudio for the microphone and `listen` tests, Chromium (and
# libatomic1 for Playwright's Node.js driver) for the dashboard test, the recordings the
# sound-bank tests build their `ci` bank from (~13 MB; deploy/install-sound-sources.sh ci).
test="pulseaudio pulseaudio-utils libportaudio2 libasound2-plugins chromium libatomic1
 sound-theme-freedesktop yaru-theme-sound sound-icons lmms-common"

case "${1:-}" in
  demo) wanted=$demo ;;
  test) wanted=$test ;;
  *) echo "usage: $0 test|demo" >&2; exit 2 ;;
esac
# Debian's own python3 makes no venv without its venv package.
"${PYTHON:-python3}" -c "import ensurepip" 2>/dev/null || wanted="$wanted python3-venv"

[ -n "$wanted" ] || exit 0
if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "system-packages.sh: not a Debian system; make sure the equivalents of these are installed:" $wanted >&2
  exit 0
fi
missing=""
for p in $wanted; do
  dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || missing="$missing $p"
done
[ -n "$missing" ] || exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "make $1 needs system packages; install them with: sudo apt-get update && sudo apt-get install -y --no-install-recommends$missing" >&2
  exit 1
fi
echo "installing system packages for make $1:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086  # one word per package
apt-get install -y -qq --no-install-recommends $missing >/dev/null
